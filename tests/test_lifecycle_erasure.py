"""The right to erasure (API.md, "Data lifecycle"; issue 26, item 2): every table that holds a contact's
data, the counts that must stay, the audit entry without personal data, one transaction per contact."""

import json

import pytest
from django.apps import apps
from django.core.files.storage import default_storage
from django.utils import timezone

from channels_app.models import (
    AuditEntry,
    CampaignRecipient,
    Contact,
    ContactOptOut,
    Delivery,
    DeliveryAttempt,
    Interaction,
    Message,
    MessageAttachment,
    WhatsAppInbox,
)
from channels_app.services import erasure
from channels_app.services.campaigns import campaign_counts
from channels_app.services.contacts import contact_identify
from channels_app.services.erasure import NO_PERSONAL_DATA, PERSONAL_DATA, contact_erase
from tests.conftest import _client_for, member
from tests.factories import ChannelFactory, StandardResponseFactory, TenantFactory
from tests.lifecycle_data import campaign_with_recipients, conversation, stored_names

NUMBER = "15556667777"


# --- the one list -----------------------------------------------------------------------------------------------


def test_every_model_of_the_project_is_listed_as_holding_personal_data_or_not():
    """A new model must say whether it holds a customer's data (services/erasure.py): add its erasure step
    to PERSONAL_DATA, or its reason to NO_PERSONAL_DATA."""
    ours = {model._meta.label for model in apps.get_app_config("channels_app").get_models()}
    listed = set(PERSONAL_DATA) | set(NO_PERSONAL_DATA)
    assert not set(PERSONAL_DATA) & set(NO_PERSONAL_DATA)
    assert sorted(ours - listed) == [], "models of channels_app in neither list of services/erasure.py"
    assert sorted(listed - ours) == [], "listed models that do not exist"


def test_every_model_that_points_at_personal_data_is_erased_too():
    """Any model of any app with a relation to a model holding personal data (a note on an interaction, an
    offer of one) holds personal data itself, or names why not."""
    missing = []
    for model in apps.get_models():
        label = model._meta.label
        if label in PERSONAL_DATA or label in NO_PERSONAL_DATA:
            continue
        for field in model._meta.get_fields():
            if (field.many_to_one or field.one_to_one or field.many_to_many) and field.concrete \
                    and field.related_model is not None and field.related_model._meta.label in PERSONAL_DATA:
                missing.append(f"{label}.{field.name}")
    assert missing == []


# --- erasing ----------------------------------------------------------------------------------------------------


def _customer_everywhere(channel):
    """The customer NUMBER with two conversations (files, deliveries, attempts), an opt-out, rows in a
    finished and a running campaign, a raw webhook and an audit entry naming them; and another customer."""
    now = timezone.now()
    first = conversation(channel, client_id=NUMBER, ended_at=now)
    second = conversation(channel, client_id=NUMBER)
    contact = first.contact
    assert second.contact_id == contact.pk
    Contact.objects.filter(pk=contact.pk).update(first_name="Ann", last_name="Lee", email="ann.lee@example.com",
                                                 phone_number=f"+{NUMBER}")
    contact.refresh_from_db()
    ContactOptOut.objects.create(contact=contact, channel=channel, source="keyword")
    response = StandardResponseFactory(tenant=channel.tenant)
    finished = campaign_with_recipients(channel, response, state="completed", finished_at=now,
                                        client_ids=(NUMBER, "15550000009"))
    CampaignRecipient.objects.filter(campaign=finished, client_id=NUMBER).update(
        message=first.messages.get(direction="outbound"))
    running = campaign_with_recipients(channel, response, state="running", finished_at=None,
                                       client_ids=(NUMBER, "15550000008"))
    sent_running = campaign_with_recipients(channel, response, state="running", finished_at=None,
                                            client_ids=("15550000007",))
    CampaignRecipient.objects.filter(campaign=sent_running).update(
        client_id=NUMBER, message=second.messages.get(direction="outbound"))
    WhatsAppInbox.objects.create(channel=channel, body=json.dumps({"contacts": [{"wa_id": NUMBER}],
                                                                   "text": "my card 4111"}))
    WhatsAppInbox.objects.create(channel=channel, body=json.dumps({"contacts": [{"wa_id": "15550000009"}]}))
    AuditEntry.objects.create(tenant=channel.tenant, action="update", object_type="campaign", object_id="1",
                              object_repr=f"list with +{NUMBER}", changes={"note": ["", f"call +{NUMBER}"],
                                                                          "name": ["a", "b"]})
    other = conversation(channel, client_id="15550000009", ended_at=now)
    return contact, [first, second], other, {"finished": finished, "running": running, "sent": sent_running}


@pytest.mark.django_db
def test_erasing_a_contact_removes_or_strips_everything_that_holds_their_data(
        staff_api, channel, django_capture_on_commit_callbacks):
    # given
    contact, interactions, other, campaigns = _customer_everywhere(channel)
    files = stored_names(interactions)
    counts = {name: campaign_counts(campaign=campaign) for name, campaign in campaigns.items()}
    # when
    with django_capture_on_commit_callbacks(execute=True):
        answer = staff_api.post(f"/api/contacts/{contact.pk}/erase/")
    # then
    assert answer.status_code == 200, answer.content
    assert answer.json()["erased"] == {
        "interactions": 2, "messages": 4, "files": 4, "deliveries": 2, "delivery_attempts": 2, "campaign_rows": 3,
        "opt_outs": 1, "webhooks": 1, "audit_entries": 1, "contacts": 1}
    assert not Contact.objects.filter(pk=contact.pk).exists()
    assert not Interaction.objects.filter(pk__in=[i.pk for i in interactions]).exists()
    assert not Message.objects.filter(interaction_id__in=[i.pk for i in interactions]).exists()
    assert Message.objects.filter(interaction=other).count() == 2
    assert Delivery.objects.count() == 1 and DeliveryAttempt.objects.count() == 1
    assert MessageAttachment.objects.count() == 1
    assert not any(default_storage.exists(name) for name in files)
    assert all(default_storage.exists(name) for name in stored_names([other]))
    assert not ContactOptOut.objects.exists()
    assert WhatsAppInbox.objects.count() == 1
    # campaign rows: stripped, counted as before; a row not yet sent is refused rather than sent later
    for row in CampaignRecipient.objects.filter(campaign__in=campaigns.values()).exclude(
            client_id__in=["15550000009", "15550000008"]):
        assert row.client_id.startswith("(erased)") and row.contact_fields == {} and row.custom_properties == {}
    assert campaign_counts(campaign=campaigns["finished"]) == counts["finished"]
    assert campaign_counts(campaign=campaigns["sent"]) == counts["sent"]
    running = counts["running"]
    assert campaign_counts(campaign=campaigns["running"]) == {
        **running, "refused": running["refused"] + 1, "pending": running["pending"] - 1}
    assert not CampaignRecipient.objects.filter(campaign__state="running", message__isnull=True, error="",
                                                client_id__startswith="(erased)").exists()
    # audit: values naming them scrubbed; the erasure recorded with no personal data
    scrubbed = AuditEntry.objects.get(object_type="campaign", object_id="1", action="update")
    assert scrubbed.changes == {"note": ["(erased)", "(erased)"], "name": ["a", "b"]}
    assert scrubbed.object_repr == "(erased)"
    entry = AuditEntry.objects.get(action="erase")
    assert (entry.object_type, entry.object_id, entry.username) == ("contact", str(contact.pk), "operator")
    written = json.dumps([entry.object_repr, entry.changes])
    for personal in (NUMBER, "Ann", "Lee", "ann.lee", "4111"):
        assert personal not in written


@pytest.mark.django_db
def test_the_next_message_from_the_same_number_makes_a_new_contact(staff_api, channel):
    contact = contact_identify(channel=channel, client_id=NUMBER)
    assert staff_api.post(f"/api/contacts/{contact.pk}/erase/").status_code == 200
    again = contact_identify(channel=channel, client_id=NUMBER)
    assert again.pk != contact.pk and again.first_name == ""


@pytest.mark.django_db
def test_erasing_another_tenants_or_an_erased_contact_is_a_404(channel):
    # given
    other_channel = ChannelFactory(tenant=TenantFactory(id=2, name="Other"), channel_id="other")
    theirs = contact_identify(channel=other_channel, client_id=NUMBER)
    ours = contact_identify(channel=channel, client_id=NUMBER)
    api = _client_for(member("dpo", "Administrator", tenants=[channel.tenant]))
    # then
    assert api.post(f"/api/contacts/{theirs.pk}/erase/").status_code == 404
    assert Contact.objects.filter(pk=theirs.pk).exists()
    assert api.post(f"/api/contacts/{ours.pk}/erase/").status_code == 200
    assert api.post(f"/api/contacts/{ours.pk}/erase/").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("group", ["WhatsApp senior agent", "Campaign manager", "ESP client"])
def test_erasing_needs_erase_contact(channel, group):
    contact = contact_identify(channel=channel, client_id=NUMBER)
    api = _client_for(member("someone", group, tenants=[channel.tenant]))
    assert api.post(f"/api/contacts/{contact.pk}/erase/").status_code == 403
    assert Contact.objects.filter(pk=contact.pk).exists()


@pytest.mark.django_db
def test_an_erasure_that_fails_half_way_leaves_nothing_half_erased(channel, monkeypatch,
                                                                   django_capture_on_commit_callbacks):
    # given
    contact, interactions, _, _ = _customer_everywhere(channel)
    files = stored_names(interactions)
    rows = {model: model.objects.count() for model in (Interaction, Message, Delivery, ContactOptOut,
                                                       CampaignRecipient, WhatsAppInbox)}

    def storage_of_opt_outs_breaks(_):
        raise RuntimeError("the database went away")

    monkeypatch.setitem(PERSONAL_DATA, "channels_app.ContactOptOut", storage_of_opt_outs_breaks)
    # when
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        contact_erase(contact=contact)
    # then
    assert Contact.objects.filter(pk=contact.pk).exists()
    assert {model: model.objects.count() for model in rows} == rows
    assert CampaignRecipient.objects.filter(client_id=NUMBER).count() == 3
    assert all(default_storage.exists(name) for name in files)
    assert not AuditEntry.objects.filter(action="erase").exists()


def test_the_steps_run_in_an_order_that_never_leaves_a_row_pointing_at_an_erased_one():
    steps = list(PERSONAL_DATA)
    assert steps.index("channels_app.CampaignRecipient") < steps.index("channels_app.Message")
    assert steps.index("channels_app.Interaction") < steps.index("channels_app.Contact")
    assert erasure.ERASED == "(erased)"


# --- the admin --------------------------------------------------------------------------------------------------


def _admin_of(tenant, *groups):
    from django.test import Client

    client = Client()
    client.force_login(member("dpo", *groups, tenants=[tenant]))
    return client


@pytest.mark.django_db
def test_the_admin_erase_action_asks_first_then_erases(channel):
    # given
    contact = conversation(channel, client_id=NUMBER, ended_at=timezone.now()).contact
    client = _admin_of(channel.tenant, "Administrator")
    changelist = "/admin/channels_app/contact/"
    # when: the action asks first
    page = client.post(changelist, {"action": "erase_contacts", "_selected_action": [contact.pk]})
    # then
    assert page.status_code == 200
    assert b"This cannot be undone" in page.content and b'id="erase-contacts"' in page.content
    assert Contact.objects.filter(pk=contact.pk).exists()
    # when: confirmed
    done = client.post(changelist, {"action": "erase_contacts", "_selected_action": [contact.pk], "confirm": "yes"},
                       follow=True)
    # then
    assert not Contact.objects.filter(pk=contact.pk).exists()
    assert f"Contact {contact.pk} erased (1 interactions, 2 messages, 2 files".encode() in done.content


@pytest.mark.django_db
def test_the_contact_page_has_an_erase_button_with_a_confirmation(channel):
    contact = contact_identify(channel=channel, client_id=NUMBER)
    client = _admin_of(channel.tenant, "Administrator")
    page = client.get(f"/admin/channels_app/contact/{contact.pk}/change/")
    erase_url = f"/admin/channels_app/contact/{contact.pk}/erase/"
    assert erase_url.encode() in page.content
    confirmation = client.get(erase_url)
    assert b"Erase this contact?" in confirmation.content and Contact.objects.filter(pk=contact.pk).exists()
    assert client.post(erase_url).status_code == 302
    assert not Contact.objects.filter(pk=contact.pk).exists()
    assert client.get(erase_url).status_code == 404


@pytest.mark.django_db
def test_the_admin_offers_no_erasure_without_erase_contact(channel):
    contact = contact_identify(channel=channel, client_id=NUMBER)
    client = _admin_of(channel.tenant, "WhatsApp senior agent")  # sees contacts, may not erase them
    page = client.get("/admin/channels_app/contact/")
    assert page.status_code == 200 and b"erase_contacts" not in page.content
    assert b"/erase/" not in client.get(f"/admin/channels_app/contact/{contact.pk}/change/").content
    assert client.post(f"/admin/channels_app/contact/{contact.pk}/erase/").status_code == 403
    assert client.post("/admin/channels_app/contact/", {"action": "erase_contacts", "_selected_action": [contact.pk],
                                                        "confirm": "yes"}).status_code in (200, 302)
    assert Contact.objects.filter(pk=contact.pk).exists()


@pytest.mark.django_db
def test_erasure_takes_the_notes_and_the_agents_live_events_of_the_contacts_interactions(tenant):
    from channels_app.models import AgentEvent, InteractionNote
    from channels_app.services.agent_events import events_add, message_data
    from channels_app.services.routing import interaction_note_add

    # given a conversation with a note, and events an agent's stream carried about it (its message's text)
    channel = ChannelFactory(tenant=tenant)
    interaction = conversation(channel, client_id=NUMBER, with_file=False)
    contact = contact_identify(channel=channel, client_id=NUMBER)
    Interaction.objects.filter(pk=interaction.pk).update(contact=contact)
    agent = member("ann", "WhatsApp agent", tenants=[tenant])
    interaction_note_add(interaction=interaction, author=agent, text="Customer lost card 4111")
    events_add(user_ids=[agent.pk], kind="message", data=message_data(interaction.messages.first()))
    events_add(user_ids=[agent.pk], kind="interaction", data={"id": interaction.pk, "change": "assigned"})
    other = conversation(channel, client_id="15550001111", with_file=False)
    events_add(user_ids=[agent.pk], kind="message", data=message_data(other.messages.first()))

    # when the contact is erased
    erased = contact_erase(contact=contact)

    # then its notes and its events are gone, another customer's event stays
    assert not InteractionNote.objects.filter(interaction_id=interaction.pk).exists()
    assert erased["agent_events"] == 2
    assert [event.data["interaction"] for event in AgentEvent.objects.all()] == [other.pk]
