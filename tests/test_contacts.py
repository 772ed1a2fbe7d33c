"""Contact Identification when contacts are created: one statement creates the missing contacts and says
which it created; a contact a concurrent request created first (between our read and our insert) is found,
never duplicated and never an error."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels_app.bulk import bulk_insert_new
from channels_app.models import Contact
from channels_app.services.contacts import ContactClaim, _contacts_create, contacts_identify
from tests.conftest import require_or_skip


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


def _plan_nodes(node):
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


@pytest.mark.django_db
@pytest.mark.parametrize("by", ["phone", "client id"])
def test_a_batch_s_contacts_are_read_key_by_key_without_statistics(channel, by):
    require_or_skip(connection.vendor == "postgresql", "query plans are PostgreSQL's")
    # given: 20,000 contacts of the tenant in a table never analyzed (a new database, or autovacuum behind a
    # campaign that creates them), where an IN list of a batch's keys was planned as a read of every contact
    phone, client_id = ("'+1555' || lpad(n::text, 7, '0')", "''") if by == "phone" else ("''", "'client-' || n")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO channels_app_contact (phone_number, client_id, first_name, last_name, email, nickname, "
            f"attributes, created_at, updated_at, tenant_id, country) SELECT {phone}, {client_id}, '', '', '', '', "
            "'{}', now(), now(), %s, '' FROM generate_series(1, 20000) n", [channel.tenant_id])
    keys = [f"+1555{n:07d}" if by == "phone" else f"client-{n}" for n in range(10001, 10201)]
    claims = [ContactClaim(client_id=key.lstrip("+"), phone_number=key) if by == "phone"
              else ContactClaim(client_id=key) for key in keys]
    # when
    with CaptureQueriesContext(connection) as captured:
        contacts = contacts_identify(channel=channel, claims=claims)
    lookup = captured.captured_queries[0]["sql"]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {lookup}")
        (plan,) = cursor.fetchone()
    # then: the 200 contacts found (none created), each read alone through its unique index
    assert len({contact.pk for contact in contacts}) == 200 and Contact.objects.count() == 20000
    scans = [node for node in _plan_nodes(plan[0]["Plan"]) if node.get("Relation Name") == "channels_app_contact"]
    assert scans and all(node["Node Type"] == "Index Scan" for node in scans), scans
    assert sum(node["Actual Rows"] * node["Actual Loops"] + node.get("Rows Removed by Filter", 0)
               for node in scans) == 200, scans
