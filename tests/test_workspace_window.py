"""The workspace's interaction window, reply area and contact panel (issue 24, items 3 to 5): the API they read
and change. The contact's details edited (PATCH /api/contacts/{id}/, tenant-scoped, Contact - change), the directory
searched by `contact.directory-search-attributes`, the message events the transcript shows (origination time,
location, files, and again when a customer's file is stored), and opening a conversation of 200 messages and 5
earlier interactions in a fixed number of SQL statements (bench/workspace.py measures its time).
The browser journey is tests/test_workspace_window_browser.py."""

import io
import json
from datetime import timedelta
from unittest import mock

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image
from rest_framework.renderers import JSONRenderer

from channels_app.api.serializers import MessageSerializer, TranscriptMessageSerializer
from channels_app.models import AgentEvent, Attachment, Contact, Interaction, Message, MessageAttachment
from channels_app.options_catalog import IW
from channels_app.services.media import message_attachment_fetch, messages_media
from channels_app.services.options import option_set
from channels_app.services.transcripts import MESSAGE_FIELDS
from tests.conftest import member
from tests.factories import ChannelFactory, TenantFactory
from tests.file_server import Served, start_file_server
from tests.test_routing_api import (  # noqa: F401 (fixtures)
    Client,
    accepted,
    admin_api,
    agents,
    customer_writes,
    whatsapp,
    workspace_queue,
)

# --- the contact panel ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_agent_edits_the_contacts_details(agents, accepted):  # noqa: F811
    ann = agents[0]
    contact = accepted.contact

    response = ann.patch(f"/api/contacts/{contact.pk}/", {
        "first_name": "Johnny", "last_name": "Walker", "email": "johnny@example.com", "nickname": "JW",
        "attributes": {"Title": "Mr", "MyFC_BillAmount": "$129.99"}})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["first_name"], body["last_name"], body["email"], body["nickname"]) == (
        "Johnny", "Walker", "johnny@example.com", "JW")
    assert body["attributes"] == {"Title": "Mr", "MyFC_BillAmount": "$129.99"}
    contact.refresh_from_db()
    assert contact.first_name == "Johnny" and contact.attributes["Title"] == "Mr"
    assert contact.phone_number == body["phone_number"]  # the identity is not the panel's to change


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "field"), [
    ({"email": "not an address"}, "email"),
    ({"first_name": "x" * 201}, "first_name"),
    ({"first_name": "Jo\u0000hn"}, "first_name"),
    ({"attributes": ["Title"]}, "attributes"),
    ({"attributes": {"Title": 5}}, "attributes"),
    ({"attributes": {"Title": "x" * 1001}}, "attributes"),
    ({"first_name": "Johnny", "email": "johnny@"}, "email"),  # the valid part is not written either
])
def test_bad_contact_details_are_400_naming_the_field_and_nothing_is_written(agents, accepted, body, field):  # noqa: F811
    ann = agents[0]
    before = Contact.objects.values().get(pk=accepted.contact_id)

    response = ann.patch(f"/api/contacts/{accepted.contact_id}/", body)

    assert response.status_code == 400
    assert field in str(response.json())
    assert Contact.objects.values().get(pk=accepted.contact_id) == before


@pytest.mark.django_db
def test_another_tenants_contact_is_not_found_and_editing_needs_the_permission(agents, accepted, tenant):  # noqa: F811
    other = Contact.objects.create(tenant=TenantFactory(id=2, name="Other"), phone_number="+15550001111",
                                   first_name="Eve")
    planner = Client(member("planner", "Campaign manager", tenants=[tenant]))

    assert agents[0].patch(f"/api/contacts/{other.pk}/", {"first_name": "Mallory"}).status_code == 404
    assert planner.patch(f"/api/contacts/{accepted.contact_id}/", {"first_name": "Mallory"}).status_code == 403
    assert Contact.objects.get(pk=other.pk).first_name == "Eve"
    assert Contact.objects.get(pk=accepted.contact_id).first_name != "Mallory"


@pytest.mark.django_db
def test_the_directory_searches_the_attributes_the_option_names(agents, accepted, tenant):  # noqa: F811
    ann = agents[0]
    Contact.objects.create(tenant=tenant, phone_number="+15550002222", first_name="Maria", last_name="Lopez",
                           attributes={"City": "Madrid"})
    Contact.objects.create(tenant=tenant, phone_number="+15550003333", first_name="Mario", last_name="Rossi",
                           email="lopez@example.com")
    Contact.objects.create(tenant=TenantFactory(id=2, name="Other"), phone_number="+15550004444",
                           first_name="Maria", last_name="Lopez")

    def found(words):
        response = ann.get(f"/api/contacts/?directory={words}")
        assert response.status_code == 200
        return sorted(row["first_name"] for row in response.json()["results"])

    # the default: LastName, FirstName, PhoneNumber, EmailAddress, _msg_ProfileNickname; every word must match
    assert found("lopez") == ["Maria", "Mario"]
    assert found("maria lopez") == ["Maria"]
    assert found("madrid") == []
    option_set(section=IW, name="contact.directory-search-attributes", value="LastName,City")
    assert found("lopez") == ["Maria"]  # not Mario: the e-mail address is no longer searched
    assert found("madrid") == ["Maria"]


# --- the transcript's events ---------------------------------------------------------------------------------------


def _events(user, kind="message"):
    return [event.data for event in AgentEvent.objects.filter(user=user, kind=kind).order_by("pk")]


@pytest.mark.django_db
def test_a_message_event_carries_the_origination_time_and_a_location_with_its_map_link(agents, accepted, whatsapp):  # noqa: F811
    from channels_app.services.interactions import customer_message_receive

    ann = agents[0]
    option_set(section=IW, name="whatsappsession.location-map.browse.query",
               value="https://maps.example/?q={LATITUDE},{LONGITUDE}")
    written = timezone.now() - timedelta(minutes=10)
    location = {"latitude": 52.37, "longitude": 4.89, "name": "Dam Square"}

    customer_message_receive(channel=whatsapp, client_id=accepted.client_id, text="Here I am",
                             channel_message_id="loc-1", origin_time=written,
                             extra_payload={"type": "Location", "location": location})

    event = _events(ann.user)[-1]
    assert event["origin_time"].startswith(written.strftime("%Y-%m-%dT%H:%M:%S"))
    assert event["location"] == {**location, "mapUrl": "https://maps.example/?q=52.37,4.89"}
    customer_message_receive(channel=whatsapp, client_id=accepted.client_id, text="Hi", channel_message_id="t-2")
    plain = _events(ann.user)[-1]
    assert "location" not in plain and "attachments" not in plain and plain["origin_time"] is None
    assert "subject" not in plain


@pytest.mark.django_db
def test_a_message_event_carries_an_emails_subject_not_its_payload(agents, tenant):  # noqa: F811
    from channels_app.services.interactions import customer_message_receive

    # given ann holds a customer's e-mail
    ann = agents[0]
    email = ChannelFactory(channel_id="company.com", tenant=tenant, media_type="email", transport="webhook",
                           business_id="support@company.com", webhook_url="http://127.0.0.1:9/hook")
    first, _ = customer_message_receive(channel=email, client_id="maria@mail.example", text="The lamp is broken",
                                        channel_message_id="mail-1", extra_payload={"subject": "Order 42", "content": [
                                            {"type": "text", "text": "The lamp is broken"},
                                            {"type": "html", "text": "<p>The lamp is broken</p>"}]})
    Interaction.objects.filter(pk=first.interaction_id).update(assigned_to=ann.user, state="active")

    # when the customer writes again, and ann answers
    customer_message_receive(channel=email, client_id="maria@mail.example", text="Any news?",
                             channel_message_id="mail-2", extra_payload={"subject": "Re: Order 42", "content": [
                                 {"type": "text", "text": "Any news?"}]})
    answer = ann.post(f"/api/interactions/{first.interaction_id}/messages/", {"text": "We send another"})

    # then both events carry the subject the transcript shows above the text, and the text, not the payload
    assert answer.status_code == 202, answer.content
    received, sent = _events(ann.user)[-2:]
    assert (received["subject"], received["text"]) == ("Re: Order 42", "Any news?")
    assert (sent["subject"], sent["text"]) == ("Re: Order 42", "We send another")
    assert "payload" not in received and "content" not in sent


@pytest.mark.django_db
def test_a_customers_file_reaches_the_transcript_again_once_stored_with_its_thumbnail(
        agents, accepted, whatsapp, django_capture_on_commit_callbacks):  # noqa: F811
    from channels_app.parsing import InboundText
    from channels_app.services.inbound import _accept

    ann = agents[0]
    picture = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 30, 30)).save(picture, format="PNG")
    server = start_file_server()
    server.files["/photo.png"] = Served(picture.getvalue(), headers={"Content-Type": "image/png"})
    try:
        with django_capture_on_commit_callbacks(execute=False):
            _accept(whatsapp, [InboundText(
                channel_message_id="f-1", client_id=accepted.client_id, nickname="", business_id="", time=None,
                text="", extra={}, attachments=((server.url("/photo.png"), "image/png", "photo.png",
                                                 len(picture.getvalue())),))], "", look_for_duplicates=False)
        attachment = MessageAttachment.objects.get()
        message_attachment_fetch(attachment_id=attachment.pk)
    finally:
        server.stop()

    first, pending, stored = _events(ann.user)[-3:]
    assert first["id"] == pending["id"] == stored["id"] == attachment.message_id
    assert [item["status"] for item in pending["attachments"]] == ["pending"]
    [shown] = stored["attachments"]
    assert shown["status"] == "stored" and shown["fileName"] == "photo.png"
    assert shown["url"] and shown["thumbnailUrl"]


# --- opening a conversation: a fixed number of statements ----------------------------------------------------------


@pytest.mark.django_db
def test_opening_a_conversation_of_200_messages_and_5_earlier_ones_takes_a_fixed_number_of_statements(
        agents, accepted, whatsapp):  # noqa: F811
    ann = agents[0]
    option_set(section=IW, name="whatsappsession.transcript-interactions-count", value="5")
    now = timezone.now()

    def fill(interaction, count):
        Message.objects.bulk_create([
            Message(interaction=interaction, channel=whatsapp, direction="inbound" if n % 2 else "outbound",
                    text=f"message {n}", status="received" if n % 2 else "delivered")
            for n in range(count)])

    for days in range(1, 6):
        earlier = Interaction.objects.create(channel=whatsapp, contact=accepted.contact, client_id=accepted.client_id,
                                             type="Inbound", subtype="InboundNew", state="ended", queue=accepted.queue,
                                             session_options=accepted.session_options)
        Interaction.objects.filter(pk=earlier.pk).update(created_at=now - timedelta(days=days))
        fill(earlier, 20)
    Interaction.objects.filter(pk=accepted.pk).update(
        session_options={**accepted.session_options, "whatsappsession.transcript-interactions-count": 5})

    def opening():
        """The requests the page makes when the agent opens the conversation."""
        with CaptureQueriesContext(connection) as queries:
            for path in (f"/api/interactions/{accepted.pk}/", f"/api/contacts/{accepted.contact_id}/",
                         f"/api/interactions/{accepted.pk}/history/",
                         f"/api/interactions/?contact={accepted.contact_id}"):
                response = ann.get(path)
                assert response.status_code == 200, (path, response.content)
        return len(queries), response

    small, _ = opening()
    fill(accepted, 199)
    large, _ = opening()

    assert ann.get(f"/api/interactions/{accepted.pk}/").json()["messages"].__len__() == 200
    assert len(ann.get(f"/api/interactions/{accepted.pk}/history/").json()["interactions"]) == 5
    assert large == small, "a statement per message or per interaction (N+1)"
    assert large <= 40


# --- the transcript's JSON: written without a serializer per message, the serializers' JSON all the same ------------


def test_the_transcript_writes_the_fields_its_serializers_document():
    assert list(MESSAGE_FIELDS) == MessageSerializer.Meta.fields
    assert TranscriptMessageSerializer.Meta.fields == [*MESSAGE_FIELDS, "attachments", "location"]


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris"])  # PostgreSQL writes the transcript in UTC
def test_the_transcript_and_the_history_are_the_serializers_json_of_each_message(agents, accepted, whatsapp, zone):  # noqa: F811
    # given, in the conversation and in an earlier one of the contact: a delayed message, a customer's files
    # (stored with a thumbnail, failed, pending), a location, an agent's files (one since deleted) refused by
    # the channel with a reason, a message read, and one sent at a whole second with a line separator
    ann = agents[0]
    option_set(section=IW, name="whatsappsession.location-map.browse.query",
               value="https://maps.example/?q={LATITUDE},{LONGITUDE}")
    now = timezone.now()
    earlier = Interaction.objects.create(channel=whatsapp, contact=accepted.contact, client_id=accepted.client_id,
                                         type="Inbound", subtype="InboundNew", state="ended", queue=accepted.queue,
                                         session_options=accepted.session_options, disposition="Resolved")
    Interaction.objects.filter(pk=earlier.pk).update(created_at=now - timedelta(days=1))
    bill = Attachment(tenant=whatsapp.tenant, name="bill.pdf", kind="document", mime_type="application/pdf", size=4)
    bill.file.save("bill.pdf", ContentFile(b"%PDF"), save=True)
    for interaction in (earlier, accepted):
        Message.objects.create(interaction=interaction, channel=whatsapp, direction="inbound", text="Hello é 😀",
                               payload={"type": "Text", "text": "Hello é 😀"}, status="received",
                               origin_time=now - timedelta(minutes=5))
        files = Message.objects.create(interaction=interaction, channel=whatsapp, direction="inbound", text="",
                                       payload={"type": "Text", "text": ""}, status="received")
        MessageAttachment.objects.create(message=files, position=1, source_url="http://files.example/b.pdf",
                                         file_name="b.pdf", status="failed", reason="too big",
                                         declared_content_type="application/pdf", declared_size=9)
        stored = MessageAttachment(message=files, position=0, source_url="http://files.example/a.png",
                                   file_name="a.png", status="stored", content_type="image/png", size=3)
        stored.file.save("a.png", ContentFile(b"png"), save=False)
        stored.thumbnail.save("a-thumb.jpg", ContentFile(b"jpg"), save=True)
        MessageAttachment.objects.create(message=files, position=2, source_url="http://files.example/c",
                                         file_name="c", status="pending")
        Message.objects.create(interaction=interaction, channel=whatsapp, direction="inbound", text="Here", payload={
            "type": "Location", "text": "Here", "location": {"latitude": 1.5, "longitude": 2.25, "name": "Home"}},
            status="received")
        Message.objects.create(interaction=interaction, channel=whatsapp, direction="outbound", text="The bill",
                               payload={"type": "Text", "text": "The bill", "attachments": [
                                   {"attachment": bill.pk, "url": "https://old.example/link", "fileName": "bill.pdf"},
                                   {"attachment": 999999, "fileName": "gone.pdf"}]},
                               status="failed", reasons=[{"code": 350, "message": "Refused"}], external_id="ext-1",
                               trace_id="trace-1", sent_at=now)
        Message.objects.create(interaction=interaction, channel=whatsapp, direction="outbound", text="ok",
                               payload={"type": "Text", "text": "ok"}, status="read", sent_at=now,
                               delivered_at=now + timedelta(seconds=1, microseconds=7))
    whole = Message.objects.create(interaction=accepted, channel=whatsapp, direction="outbound",
                                   text='a\u2028b "quoted" \\ \t\x01', payload={"type": "Text", "text": "a\u2028b"},
                                   status="sent", sent_at=now.replace(microsecond=0))

    def serialized(interaction, *, media: bool) -> list:
        """What a serializer per message writes: the model's JSON, with the media view of the admin."""
        messages = list(interaction.messages.prefetch_related("attachments").order_by("created_at", "id"))
        views = messages_media(messages=messages, channel=whatsapp) if media else {}
        rows = [MessageSerializer(message).data for message in messages]
        if media:
            rows = [{**row, "attachments": views.get(row["id"], {}).get("attachments", []),
                     "location": views.get(row["id"], {}).get("location")} for row in rows]
        return json.loads(JSONRenderer().render(rows))

    with mock.patch("time.time", return_value=1.8e9), timezone.override(zone):  # the links signed at one second
        # when the agent opens the conversation and its older messages
        opened = ann.get(f"/api/interactions/{accepted.pk}/")
        older = ann.get(f"/api/interactions/{accepted.pk}/history/")

        # then every message is as its serializer writes it, with the same files and location
        assert opened.status_code == 200 and older.status_code == 200
        assert opened.json()["messages"] == serialized(accepted, media=True)
        [shown_earlier] = older.json()["interactions"]
        assert shown_earlier["messages"] == serialized(earlier, media=False)
    files = opened.json()["messages"][-5]["attachments"]
    assert [(item["fileName"], item["status"]) for item in files] == [
        ("a.png", "stored"), ("b.pdf", "failed"), ("c", "pending")]
    assert files[0]["thumbnailUrl"] and files[1]["reason"] == "too big"
    assert opened.json()["messages"][-4]["location"]["mapUrl"] == "https://maps.example/?q=1.5,2.25"
    assert [item.get("status") for item in opened.json()["messages"][-3]["attachments"]] == ["stored", None]
    # DRF's writing: a whole second without a fraction, U+2028 escaped (a strict JavaScript subset)
    assert opened.json()["messages"][-1]["id"] == whole.pk
    if zone == "UTC":
        assert f'"sent_at":"{now.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S")}Z"'.encode() in opened.content
    assert "\u2028".encode() not in opened.content and b"a\\u2028b" in opened.content


@pytest.mark.django_db
def test_the_transcript_written_as_it_is_reads_the_same_indented_and_in_the_browsable_api(agents, accepted):  # noqa: F811
    # given a conversation with messages
    ann = agents[0]
    Message.objects.bulk_create([
        Message(interaction=accepted, channel=accepted.channel, direction="inbound", text=f"message {n}",
                status="received") for n in range(3)])

    # when the agent reads it compact, indented and as the browsable API's page
    compact = ann.get(f"/api/interactions/{accepted.pk}/", HTTP_ACCEPT="application/json")
    indented = ann.get(f"/api/interactions/{accepted.pk}/", HTTP_ACCEPT="application/json; indent=2")
    page = ann.get(f"/api/interactions/{accepted.pk}/", HTTP_ACCEPT="text/html")

    # then the same object, the messages last, as InteractionSerializer orders its fields
    assert compact.status_code == indented.status_code == page.status_code == 200
    assert json.loads(indented.content) == json.loads(compact.content)
    assert b'\n  "messages": [\n' in indented.content
    assert list(json.loads(compact.content))[-1] == "messages" and len(compact.json()["messages"]) >= 3
    assert b"message 2" in page.content
