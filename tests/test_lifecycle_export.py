"""The right of access (API.md, "Data lifecycle"; issue 26, item 3): a zip a person can read."""

import io
import json
import zipfile
from datetime import datetime

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from channels_app.models import CampaignRecipient, Contact, ContactOptOut, MediaState, WhatsAppMedia
from channels_app.services.contacts import contact_identify
from tests.conftest import _client_for, member
from tests.factories import ChannelFactory, StandardResponseFactory, TenantFactory
from tests.lifecycle_data import campaign_with_recipients, conversation

NUMBER = "15556667777"


def _customer(channel):
    first = conversation(channel, client_id=NUMBER, ended_at=timezone.now(), text="My passport, as asked")
    second = conversation(channel, client_id=NUMBER, text="And a voice note", with_file=False)
    contact = first.contact
    Contact.objects.filter(pk=contact.pk).update(first_name="Ann", last_name="Lee", attributes={"Plan": "Gold"})
    voice = second.messages.get(direction="inbound")
    stored = default_storage.save("whatsapp/test/voice.ogg", ContentFile(b"OggS voice"))
    WhatsAppMedia.objects.create(message=voice, media_id="m-1", kind="audio", mime_type="audio/ogg", file=stored,
                                 size=10, state=MediaState.STORED)
    ContactOptOut.objects.create(contact=contact, channel=channel, source="keyword")
    campaign = campaign_with_recipients(channel, StandardResponseFactory(tenant=channel.tenant), state="completed",
                                        finished_at=timezone.now(), client_ids=(NUMBER, "15550000001"))
    CampaignRecipient.objects.filter(campaign=campaign, client_id=NUMBER).update(
        message=first.messages.get(direction="outbound"))
    conversation(channel, client_id="15550000001", text="someone else")
    return contact, campaign


def _zip(answer) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(answer.streaming_content)))


@pytest.mark.django_db
def test_the_export_is_a_zip_with_an_indented_contact_json_and_the_files(staff_api, channel):
    # given
    contact, campaign = _customer(channel)
    # when
    answer = staff_api.get(f"/api/contacts/{contact.pk}/export/")
    # then
    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/zip"
    assert f'filename="contact-{contact.pk}.zip"' in answer["Content-Disposition"]
    archive = _zip(answer)
    names = archive.namelist()
    assert "contact.json" in names
    files = sorted((name for name in names if name.startswith("files/")), key=lambda name: "audio" in name)
    assert len(files) == 2
    assert files[0].endswith("_from-customer_passport.jpg") and files[1].endswith("_from-customer_audio.ogg")
    assert archive.read(files[0]) == b"\xff\xd8\xff picture" and archive.read(files[1]) == b"OggS voice"
    text = archive.read("contact.json").decode()
    assert text.startswith('{\n  "exported_at": ')  # indented for a person to read
    document = json.loads(text)
    assert document["contact"]["first_name"] == "Ann" and document["contact"]["attributes"] == {"Plan": "Gold"}
    datetime.fromisoformat(document["contact"]["created_at"])  # ISO dates
    assert [i["messages"][0]["text"] for i in document["interactions"]] == ["My passport, as asked",
                                                                           "And a voice note"]
    assert document["interactions"][0]["messages"][0]["files"][0]["file"] == files[0]
    assert document["interactions"][0]["messages"][0]["direction"] == "from-customer"
    assert document["opt_outs"] == [{"channel": channel.channel_id, "source": "keyword",
                                     "created_at": document["opt_outs"][0]["created_at"]}]
    assert [(row["campaign"], row["client_id"], row["contact_fields"]) for row in document["campaign_rows"]] == [
        (campaign.pk, NUMBER, {"FirstName": "Ann"})]
    assert "someone else" not in text


@pytest.mark.django_db
def test_exporting_another_tenants_or_an_erased_contact_is_a_404(staff_api, channel):
    theirs = contact_identify(channel=ChannelFactory(tenant=TenantFactory(id=2, name="Other"), channel_id="o"),
                              client_id=NUMBER)
    assert staff_api.get(f"/api/contacts/{theirs.pk}/export/").status_code == 404
    ours = contact_identify(channel=channel, client_id=NUMBER)
    assert staff_api.post(f"/api/contacts/{ours.pk}/erase/").status_code == 200
    assert staff_api.get(f"/api/contacts/{ours.pk}/export/").status_code == 404


@pytest.mark.django_db
def test_exporting_needs_view_contact(channel):
    contact = contact_identify(channel=channel, client_id=NUMBER)
    assert _client_for(member("cm", "Campaign manager", tenants=[channel.tenant])).get(
        f"/api/contacts/{contact.pk}/export/").status_code == 403
    assert _client_for(member("agent2", "WhatsApp agent", tenants=[channel.tenant])).get(
        f"/api/contacts/{contact.pk}/export/").status_code == 200


@pytest.mark.django_db
def test_the_contact_page_has_an_export_button(channel):
    contact, _ = _customer(channel)
    client = Client()
    client.force_login(member("dpo", "Administrator", tenants=[channel.tenant]))
    page = client.get(f"/admin/channels_app/contact/{contact.pk}/change/")
    url = f"/admin/channels_app/contact/{contact.pk}/export/"
    assert url.encode() in page.content
    answer = client.get(url)
    assert answer.status_code == 200 and answer["Content-Type"] == "application/zip"
    assert "contact.json" in _zip(answer).namelist()


@pytest.mark.django_db
def test_the_export_holds_the_notes_agents_wrote_on_the_contacts_interactions(staff_api, channel, staff_user):
    from channels_app.services.routing import interaction_note_add

    # given a conversation with a note
    contact, _ = _customer(channel)
    interaction = contact.interactions.order_by("created_at").first()
    interaction_note_add(interaction=interaction, author=staff_user, text="Asked for the passport again")

    # when the contact's data is exported
    document = json.loads(_zip(staff_api.get(f"/api/contacts/{contact.pk}/export/")).read("contact.json"))

    # then the note is in its interaction
    notes = {record["id"]: record["notes"] for record in document["interactions"]}
    assert [note["text"] for note in notes[interaction.pk]] == ["Asked for the passport again"]
