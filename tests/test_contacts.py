"""Contact Identification when contacts are created: one statement creates the missing contacts and says
which it created; a contact a concurrent request created first (between our read and our insert) is found,
never duplicated and never an error."""

import pytest

from channels_app.bulk import bulk_insert_new
from channels_app.models import Contact
from channels_app.services.contacts import ContactClaim, _contacts_create, contacts_identify


@pytest.mark.django_db
def test_new_customers_get_one_contact_each_with_their_properties(channel):
    claims = [ContactClaim(client_id="15556667777", phone_number="+15556667777", properties={"FirstName": "Ada"}),
              ContactClaim(client_id="15556668888", properties={"FirstName": "Grace", "Tier": "gold"}),
              ContactClaim(client_id="15556667777", phone_number="+15556667777")]

    contacts = contacts_identify(channel=channel, claims=claims)

    assert contacts[0].pk == contacts[2].pk and contacts[0].pk != contacts[1].pk
    stored = {c.phone_number: (c.pk, c.first_name, c.attributes) for c in Contact.objects.all()}
    assert stored == {"+15556667777": (contacts[0].pk, "Ada", {}),
                      "+15556668888": (contacts[1].pk, "Grace", {"Tier": "gold"})}


@pytest.mark.django_db
def test_the_insert_returns_only_the_rows_it_created(channel):
    first = Contact.objects.create(tenant_id=channel.tenant_id, phone_number="+15556667777", client_id="15556667777")

    created = bulk_insert_new(Contact, [
        Contact(tenant_id=channel.tenant_id, phone_number="+15556667777", client_id="15556667777"),  # exists
        Contact(tenant_id=channel.tenant_id, phone_number="+15556668888", client_id="15556668888"),
    ], returning=["phone_number"])

    assert [phone for _pk, phone in created] == ["+15556668888"]
    assert Contact.objects.count() == 2 and Contact.objects.get(phone_number="+15556667777").pk == first.pk


@pytest.mark.django_db
def test_a_contact_created_by_someone_else_first_is_found_not_duplicated(channel):
    # given a concurrent request created the contact after our read found none
    theirs = Contact.objects.create(tenant_id=channel.tenant_id, phone_number="+15556667777",
                                    client_id="15556667777", first_name="Ada")
    missing = {("phone", "+15556667777"): Contact(tenant_id=channel.tenant_id, phone_number="+15556667777",
                                                   client_id="15556667777"),
               ("client", "ada@example.com"): Contact(tenant_id=channel.tenant_id, client_id="ada@example.com")}

    # when we create what we thought was missing
    created = _contacts_create(channel.tenant_id, missing)

    # then theirs is used, ours is created once, nothing is duplicated
    assert created[("phone", "+15556667777")].pk == theirs.pk
    assert created[("phone", "+15556667777")].first_name == "Ada"
    assert created[("client", "ada@example.com")].pk == Contact.objects.get(client_id="ada@example.com").pk
    assert Contact.objects.count() == 2
