"""WhatsApp Cloud API channels (API.md "WhatsApp Cloud API channels"): the
webhook (verification, signature, Meta's example payloads replayed and what
is stored), the transport against the Graph API stand-in, templates."""

import hashlib
import hmac
import itertools
import json
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from channels_app.choices import MediaType, Transport
from channels_app.errors import ExecutionFailed
from channels_app.models import (
    Channel,
    Interaction,
    MediaState,
    Message,
    MessageStatus,
    StandardResponse,
    TemplateStatus,
    WhatsAppInbox,
    WhatsAppMedia,
    WhatsAppTemplate,
)
from channels_app.services.channels import channel_save
from channels_app.services.contacts import contact_identify
from channels_app.services.interactions import interaction_create, message_new_outbound
from channels_app.services.invitations import invite_to_chat
from channels_app.services.templates import template_send_to_meta, templates_sync
from channels_app.services.whatsapp_cloud import whatsapp_inbox_process, whatsapp_media_fetch
from channels_app.transports import TRANSPORTS, OutgoingMessage, SendOutcome
from channels_app.transports.whatsapp_cloud import cloud_config_forget, cloud_messages, throttle_slot
from tests.file_server import Served, start_file_server
from tests.graph_stand_in import GraphStandIn

FIXTURES = Path(__file__).parent / "fixtures" / "whatsapp_cloud"
SPEC_RESPONSE = json.loads((Path(__file__).parent / "fixtures" / "invite_to_chat_standard_response.json").read_text())
APP_SECRET = "meta-app-secret"
CUSTOMER = "16505551234"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def signed(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def stand_in(settings):
    running = GraphStandIn(app_secret=APP_SECRET).start()
    settings.GRAPH_API_BASE = running.base
    yield running
    running.stop()


@pytest.fixture
def cloud(tenant, stand_in):
    channel = channel_save(
        channel=Channel(
            channel_id="channel-wa-cloud", name="WhatsApp Cloud", tenant=tenant, media_type=MediaType.WHATSAPP,
            transport=Transport.WHATSAPP_CLOUD, business_id="15550783881", phone_number_id="106540352242922",
            waba_id="102290129340398", access_token=stand_in.token, app_secret=APP_SECRET,
            verify_token="my-verify-token", retry_attempts=3, retry_timeout_seconds=60,
        ),
        endpoints=["1:session-chat"], inbound_route_by_call="1:session-chat",
    )
    cloud_config_forget(channel.channel_id)
    yield channel
    cloud_config_forget(channel.channel_id)


def post_webhook(body: bytes, signature: str | None = "valid", channel_id: str = "channel-wa-cloud"):
    headers = {}
    if signature == "valid":
        headers["HTTP_X_HUB_SIGNATURE_256"] = signed(body)
    elif signature:
        headers["HTTP_X_HUB_SIGNATURE_256"] = signature
    return Client().post(f"/whatsapp/{channel_id}/webhook", body, content_type="application/json", **headers)


def replay(name: str) -> None:
    """Meta's example payload: posted signed, then processed as the task does."""
    response = post_webhook(fixture(name))
    assert response.status_code == 200, response.content
    inbox = WhatsAppInbox.objects.order_by("-pk").first()
    assert whatsapp_inbox_process(inbox_id=inbox.pk)


def outbound(channel, external_id: str, payload: dict | None = None) -> Message:
    contact = contact_identify(channel=channel, client_id=CUSTOMER)
    interaction = interaction_create(channel=channel, contact=contact, client_id=CUSTOMER, queue="1:session-chat",
                                     outbound=True, user_data={})
    message = message_new_outbound(interaction=interaction, payload=payload or {"type": "Text", "text": "Hi"})
    message.status, message.external_id = MessageStatus.SENT, external_id
    message.save()
    return message


# --- the webhook: verification and signature --------------------------------------------------------------------


@pytest.mark.django_db
def test_verification_answers_the_challenge_only_to_the_verify_token(cloud):
    path = "/whatsapp/channel-wa-cloud/webhook"

    good = Client().get(path, {"hub.mode": "subscribe", "hub.verify_token": "my-verify-token", "hub.challenge": "1158"})
    wrong = Client().get(path, {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1158"})

    assert (good.status_code, good.content) == (200, b"1158")
    assert wrong.status_code == 403
    assert Client().get("/whatsapp/unknown/webhook", {"hub.mode": "subscribe"}).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, signed(b"other body"), "sha1=abc"])
def test_unsigned_or_wrongly_signed_webhooks_are_401_and_store_nothing(cloud, signature):
    response = post_webhook(fixture("text.json"), signature=signature)

    assert response.status_code == 401
    assert not WhatsAppInbox.objects.exists() and not Message.objects.exists()


@pytest.mark.django_db
def test_a_signed_webhook_is_stored_first_and_answered_at_once(cloud, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        started = time.perf_counter()
        response = post_webhook(fixture("text.json"))
        elapsed = time.perf_counter() - started

    assert response.status_code == 200 and elapsed < 0.2
    assert WhatsAppInbox.objects.get().body == fixture("text.json").decode()
    assert not Message.objects.exists()  # the task does the work
    assert len(callbacks) == 1


# --- messages of each type --------------------------------------------------------------------------------------

EXPECTED = {
    "text.json": ("Hello, I have a question about my bill", {"whatsapp": {"type": "text"}}),
    "location.json": ("", {"type": "Location", "location": {
        "latitude": 37.4847483695049, "longitude": -122.1473373086664, "name": "Philz Coffee",
        "address": "101 Forest Ave, Palo Alto, CA 94301"}}),
    "image.json": ("The meter reading", {}),
    "audio.json": ("", {}),
    "video.json": ("How it looks", {}),
    "document.json": ("My contract", {}),
    "sticker.json": ("", {}),
    "button_template_reply.json": ("Remind me later", {"reply": {
        "type": "button", "payload": "Remind me later", "text": "Remind me later"}}),
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_message_type_becomes_a_customer_message(cloud, name):
    replay(name)

    message = Message.objects.get()
    text, payload = EXPECTED[name]
    assert message.direction == "inbound" and message.text == text
    assert message.channel_message_id == json.loads(fixture(name))["entry"][0]["changes"][0]["value"][
        "messages"][0]["id"]
    for key, value in payload.items():
        assert message.payload[key] == value
    interaction = message.interaction
    assert interaction.client_id == CUSTOMER and interaction.contact.nickname == "Kerry Fisher"
    assert interaction.last_customer_message_at.timestamp() == 1603059201


def replay_body(body: dict) -> Message:
    post_webhook(json.dumps(body).encode())
    assert whatsapp_inbox_process(inbox_id=WhatsAppInbox.objects.order_by("-pk").first().pk)
    return Message.objects.order_by("-pk").first()


def location_webhook(**location) -> dict:
    body = json.loads(fixture("location.json"))
    body["entry"][0]["changes"][0]["value"]["messages"][0]["location"].update(location)
    return body


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,<b>x</b>", "ftp://example.com/map"])
def test_a_location_url_that_is_not_http_is_left_out_as_on_nexus(cloud, url):
    message = replay_body(location_webhook(url=url))

    assert message.payload["type"] == "Location"
    assert message.payload["location"] == EXPECTED["location.json"][1]["location"]  # the place kept, not its url


@pytest.mark.django_db
def test_a_location_keeps_an_http_url(cloud):
    message = replay_body(location_webhook(url="https://maps.example.com/?q=philz"))

    assert message.payload["location"]["url"] == "https://maps.example.com/?q=philz"


@pytest.mark.django_db
def test_a_location_out_of_range_is_unsupported_as_on_nexus(cloud):
    message = replay_body(location_webhook(latitude=123.0))

    assert message.payload["type"] == "Unsupported" and "location" not in message.payload


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["image.json", "audio.json", "video.json", "document.json", "sticker.json"])
def test_media_are_fetched_from_the_graph_api_into_storage(cloud, stand_in, name):
    raw = json.loads(fixture(name))["entry"][0]["changes"][0]["value"]["messages"][0]
    kind = raw["type"]
    stand_in.add_media(raw[kind]["id"], b"file bytes of " + kind.encode(), raw[kind]["mime_type"])
    replay(name)
    media = WhatsAppMedia.objects.get()
    assert (media.kind, media.media_id, media.state) == (kind, raw[kind]["id"], MediaState.PENDING)

    assert whatsapp_media_fetch(media_pk=media.pk) == MediaState.STORED

    media.refresh_from_db()
    assert media.file.read() == b"file bytes of " + kind.encode() and media.size == len(media.file)
    assert media.message.payload["whatsapp"]["media"]["id"] == raw[kind]["id"]


@pytest.mark.django_db
def test_a_media_larger_than_the_limit_is_not_stored(cloud, stand_in, settings):
    settings.WHATSAPP_MEDIA_MAX_BYTES = 10
    raw = json.loads(fixture("image.json"))["entry"][0]["changes"][0]["value"]["messages"][0]
    stand_in.add_media(raw["image"]["id"], b"eleven byte", raw["image"]["mime_type"])
    replay("image.json")
    media = WhatsAppMedia.objects.get()

    assert whatsapp_media_fetch(media_pk=media.pk) == MediaState.PENDING

    media.refresh_from_db()
    assert "larger than 10 bytes" in media.error and not media.file and media.attempts == 1


@pytest.mark.django_db
def test_a_media_download_longer_than_media_fetch_total_seconds_is_cut_off(cloud, stand_in, settings):
    # given a media whose bytes come from a server that sends one every 0.2 s
    settings.MEDIA_FETCH_TOTAL_SECONDS = 1.0
    files = start_file_server()
    try:
        files.files["/slow.jpg"] = Served(b"\xff\xd8\xff" + b"jpeg bytes" * 10, trickle=0.2)
        raw = json.loads(fixture("image.json"))["entry"][0]["changes"][0]["value"]["messages"][0]
        stand_in.add_media(raw["image"]["id"], b"", raw["image"]["mime_type"], url=files.url("/slow.jpg"))
        replay("image.json")
        media = WhatsAppMedia.objects.get()

        # when it is fetched
        started = time.monotonic()
        state = whatsapp_media_fetch(media_pk=media.pk)
        took = time.monotonic() - started
    finally:
        files.stop()

    # then the attempt ends at the deadline and is tried again later
    assert took < 4.0
    assert state == MediaState.PENDING
    media.refresh_from_db()
    assert media.error == "the transfer took longer than 1 s" and not media.file


@pytest.mark.django_db
def test_a_media_the_graph_api_does_not_have_fails_after_its_attempts(cloud):
    replay("image.json")
    media = WhatsAppMedia.objects.get()

    states = [whatsapp_media_fetch(media_pk=media.pk) for _ in range(3)]

    assert states == [MediaState.PENDING, MediaState.PENDING, MediaState.FAILED]
    assert "1003383421387256" in WhatsAppMedia.objects.get().error


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "answered", "reply"), [
    ("interactive_button_reply.json", "wamid.OUTBOUND-BUTTONS", {"type": "button_reply", "id": "pay-now",
                                                                 "title": "Pay now"}),
    ("interactive_list_reply.json", "wamid.OUTBOUND-LIST", {"type": "list_reply", "id": "plan-premium",
                                                            "title": "Premium",
                                                            "description": "All channels, 24/7"}),
])
def test_interactive_replies_are_linked_to_the_message_they_answer(cloud, name, answered, reply):
    sent = outbound(cloud, answered)

    replay(name)

    message = Message.objects.get(direction="inbound")
    assert message.payload["reply"] == reply and message.text == reply["title"]
    assert message.payload["inReplyTo"] == sent.pk
    assert message.interaction_id == sent.interaction_id  # the customer's open session continues


@pytest.mark.django_db
def test_a_repeated_message_id_stores_nothing_new(cloud):
    replay("text.json")
    replay("text.json")

    assert Message.objects.count() == 1
    assert WhatsAppInbox.objects.filter(processed_at__isnull=False).count() == 2


@pytest.mark.django_db
def test_processing_a_stored_webhook_twice_changes_nothing(cloud):
    replay("text.json")
    inbox = WhatsAppInbox.objects.get()

    assert whatsapp_inbox_process(inbox_id=inbox.pk) is False
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_an_unknown_type_is_kept_as_unsupported_and_the_rest_is_processed(cloud):
    replay("unsupported_reaction.json")

    unsupported, text = Message.objects.order_by("created_at", "id")
    assert unsupported.payload["type"] == "Unsupported"
    assert unsupported.payload["whatsapp"]["raw"]["reaction"]["emoji"] == "\N{THUMBS UP SIGN}"
    assert text.text == "and one more thing"


# --- statuses ---------------------------------------------------------------------------------------------------

STATUS_FILES = ["status_sent.json", "status_delivered.json", "status_read.json"]


@pytest.mark.django_db
@pytest.mark.parametrize("order", list(itertools.permutations(STATUS_FILES)))
def test_statuses_are_receipts_in_any_order_and_read_comes_after_delivered(cloud, order):
    sent = outbound(cloud, "wamid.OUTBOUND-TEXT")

    for name in order:
        replay(name)

    sent.refresh_from_db()
    assert sent.status == MessageStatus.READ and sent.delivered_at is not None


@pytest.mark.django_db
def test_a_failed_status_keeps_metas_errors_as_reasons(cloud):
    sent = outbound(cloud, "wamid.OUTBOUND-TEXT")

    replay("status_failed.json")

    sent.refresh_from_db()
    assert sent.status == MessageStatus.FAILED
    assert sent.reasons == [{"code": 131026, "message": "Message undeliverable: Message Undeliverable."}]


@pytest.mark.django_db
def test_a_status_before_the_send_answer_is_kept_for_the_message(cloud):
    replay("status_delivered.json")
    sent = outbound(cloud, "wamid.OUTBOUND-TEXT")
    from channels_app.services.receipts import early_receipts_apply

    early_receipts_apply(channel_id=cloud.pk, external_id="wamid.OUTBOUND-TEXT")

    sent.refresh_from_db()
    assert sent.status == MessageStatus.DELIVERED


# --- template status updates ------------------------------------------------------------------------------------


@pytest.fixture
def template(cloud, staff_api):
    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    return WhatsAppTemplate.objects.create(standard_response_id=SPEC_RESPONSE["id"], channel=cloud,
                                           name="bill_reminder", language="en", template_id="594425479261596")


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "status", "reason"), [
    ("template_approved.json", TemplateStatus.APPROVED, ""),
    ("template_rejected.json", TemplateStatus.REJECTED, "INCORRECT_CATEGORY"),
    ("template_paused.json", TemplateStatus.PAUSED, ""),
    ("template_disabled.json", TemplateStatus.DISABLED, ""),
])
def test_template_status_updates_set_the_templates_status(template, name, status, reason):
    replay(name)

    template.refresh_from_db()
    assert (template.status, template.reason) == (status, reason)


# --- the transport against the stand-in -------------------------------------------------------------------------


def outgoing(channel, payload: dict, client_id: str = CUSTOMER) -> OutgoingMessage:
    return OutgoingMessage(message_id="M1", interaction_id="I1", channel_id=channel.channel_id,
                           media_type="whatsapp", business_id=channel.business_id, client_id=client_id,
                           payload=payload)


@pytest.mark.django_db
def test_a_text_is_sent_to_the_graph_api_and_accepted_with_its_wamid(cloud, stand_in):
    result = TRANSPORTS["whatsapp_cloud"].send(outgoing(cloud, {"type": "Text", "text": "Hello"}))

    assert result.outcome == SendOutcome.ACCEPTED and result.external_id.startswith("wamid.")
    (request,) = stand_in.sends()
    assert request.path == "/v21.0/106540352242922/messages"
    assert request.body == {"messaging_product": "whatsapp", "recipient_type": "individual", "to": CUSTOMER,
                            "type": "text", "text": {"body": "Hello", "preview_url": False}}


@pytest.mark.django_db
def test_throttling_is_retried_and_the_window_is_failed_with_its_reason(cloud, stand_in):
    stand_in.throttle_every = 1
    throttled = TRANSPORTS["whatsapp_cloud"].send(outgoing(cloud, {"type": "Text", "text": "Hello"}))
    stand_in.throttle_every = 0
    stand_in.outside_window.add(CUSTOMER)
    closed = TRANSPORTS["whatsapp_cloud"].send(outgoing(cloud, {"type": "Text", "text": "Hello"}))

    assert throttled.outcome == SendOutcome.RETRY and "130429" in throttled.error
    assert closed.outcome == SendOutcome.FAILED and "outside the 24-hour window" in closed.error


@pytest.mark.django_db
def test_a_refused_token_marks_the_channel_and_later_sends_fail_without_asking_meta(cloud, stand_in):
    stand_in.refuse_token = True

    first = TRANSPORTS["whatsapp_cloud"].send(outgoing(cloud, {"type": "Text", "text": "Hello"}))
    cloud_config_forget(cloud.channel_id)
    second = TRANSPORTS["whatsapp_cloud"].send(outgoing(cloud, {"type": "Text", "text": "Hello"}))

    assert first.outcome == SendOutcome.FAILED and "access token refused" in first.error
    assert second.outcome == SendOutcome.FAILED and "needs attention" in second.error
    assert len(stand_in.sends()) == 1
    health = Client().get("/healthz?detail=1").json()
    assert health["channels_needing_attention"] == 1  # which one only to an admin session
    assert "channels_needing_attention_ids" not in health
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", password="root-pass-123"))
    detail = admin.get("/healthz?detail=1").json()
    assert detail["channels_needing_attention_ids"][0]["channel"] == "channel-wa-cloud"
    assert set(Client().get("/healthz").json()) == {"status", "database", "broker"}
    # a new token clears the mark
    cloud.refresh_from_db()
    cloud.access_token = "a-new-token"
    channel_save(channel=cloud)
    assert Channel.objects.get(pk=cloud.pk).needs_attention == ""


def test_our_content_types_map_to_the_cloud_apis():
    link = lambda item: f"https://files.example/{item.get('attachment')}"  # noqa: E731

    notification = cloud_messages({"type": "Notification", "text": "Dear John", "template": {
        "name": "bill_reminder", "language": "en", "parameters": ["John", "$1"]}}, link=link)
    rich = cloud_messages({"type": "RichMedia", "text": "t", "template": {"name": "promo", "language": "fr",
                                                                          "parameters": ["A"]},
                           "header": {"type": "image", "attachment": 7},
                           "buttons": [{"type": "quick_reply", "text": "Yes"},
                                       {"type": "url", "text": "Go", "url": "https://x/", "dynamic": True,
                                        "parameter": "abc"}]}, link=link)
    buttons = cloud_messages({"type": "ReplyButtons", "text": "Pick", "footer": "f",
                              "header": {"type": "text", "text": "H"},
                              "buttons": [{"id": "a", "title": "A"}]}, link=link)
    listing = cloud_messages({"type": "List", "text": "Pick", "button": "Open",
                              "sections": [{"title": "S", "rows": [{"id": "r", "title": "R"}]}]}, link=link)
    location = cloud_messages({"type": "Location", "location": {"latitude": 1.5, "longitude": 2.5, "name": "N"}})
    text_and_file = cloud_messages({"type": "Text", "text": "See", "attachments": [
        {"attachment": 9, "name": "a.pdf", "mimeType": "application/pdf"}]}, link=link)

    assert notification == [{"type": "template", "template": {"name": "bill_reminder", "language": {"code": "en"},
                              "components": [{"type": "body", "parameters": [
                                  {"type": "text", "text": "John"}, {"type": "text", "text": "$1"}]}]}}]
    assert rich[0]["template"]["components"] == [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://files.example/7"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "A"}]},
        {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload",
                                                                                   "payload": "Yes"}]},
        {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "abc"}]},
    ]
    assert buttons == [{"type": "interactive", "interactive": {
        "type": "button", "body": {"text": "Pick"}, "header": {"type": "text", "text": "H"}, "footer": {"text": "f"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]}}}]
    assert listing[0]["interactive"]["action"] == {"button": "Open", "sections": [
        {"title": "S", "rows": [{"id": "r", "title": "R"}]}]}
    assert location == [{"type": "location", "location": {"latitude": 1.5, "longitude": 2.5, "name": "N"}}]
    assert text_and_file[1] == {"type": "document", "document": {"link": "https://files.example/9",
                                                                 "filename": "a.pdf"}}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_throttle_spaces_sends_by_the_channels_rate(cloud):
    # 2 a second: the 40 slots stay ahead of the clock as long as each takes under 500 ms to book (at 20 a second
    # one call slower than 50 ms, on a loaded machine, let the clock overtake the slots and restart them from now).
    slots = [throttle_slot(channel_pk=cloud.pk, per_second=2) for _ in range(40)]

    gaps = [later - earlier for earlier, later in zip(slots, slots[1:], strict=False)]
    assert all(abs(gap - 0.5) < 0.001 for gap in gaps), gaps


# --- templates --------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_notification_is_submitted_as_a_template_and_follows_its_status(cloud, stand_in, staff_api):
    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201

    response = staff_api.post(f"/api/standard-responses/{SPEC_RESPONSE['id']}/submit/",
                              {"channel": "channel-wa-cloud"}, format="json")

    assert response.status_code == 202, response.content
    assert response.json()["template_status"] == "PENDING"
    row = WhatsAppTemplate.objects.get()
    assert template_send_to_meta(template_pk=row.pk) == "PENDING"
    sent = stand_in.templates["bill_reminder"]
    assert [c["type"] for c in sent["components"]] == ["BODY"]
    assert sent["components"][0]["example"]["body_text"][0][0] == "FirstName LastName"
    stand_in.approve("bill_reminder")
    assert staff_api.post("/api/channels/channel-wa-cloud/sync-templates/").status_code == 202
    assert templates_sync(channel_pk=cloud.pk) == 1
    shown = staff_api.get(f"/api/standard-responses/{SPEC_RESPONSE['id']}/").json()["templates"]
    assert shown[0]["template_status"] == "APPROVED" and shown[0]["channel"] == "channel-wa-cloud"


@pytest.mark.django_db
def test_submitting_refuses_other_content_and_channels(cloud, staff_api, channel):
    assert staff_api.post("/api/standard-responses/", {"id": "TXT1", "name": "t", "content_type": "text",
                                                       "body": "Hi"}, format="json").status_code == 201
    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201

    text = staff_api.post("/api/standard-responses/TXT1/submit/", {"channel": "channel-wa-cloud"}, format="json")
    webhook = staff_api.post(f"/api/standard-responses/{SPEC_RESPONSE['id']}/submit/",
                             {"channel": channel.channel_id}, format="json")

    assert text.status_code == 400 and webhook.status_code == 400


@pytest.mark.django_db
def test_the_creation_rate_per_waba_is_respected(cloud, staff_api, settings):
    settings.WHATSAPP_TEMPLATE_CREATIONS_PER_HOUR = 1
    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    path = f"/api/standard-responses/{SPEC_RESPONSE['id']}/submit/"

    assert staff_api.post(path, {"channel": "channel-wa-cloud"}, format="json").status_code == 202
    assert staff_api.post(path, {"channel": "channel-wa-cloud"}, format="json").status_code == 429


@pytest.mark.django_db
@pytest.mark.parametrize("status", [None, "PENDING", "REJECTED", "PAUSED", "DISABLED"])
def test_invite_to_chat_refuses_a_template_not_approved(cloud, staff_api, status):
    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    if status:
        WhatsAppTemplate.objects.create(standard_response_id=SPEC_RESPONSE["id"], channel=cloud,
                                        name="bill_reminder", language="en", status=status)

    with pytest.raises(ExecutionFailed, match="template not approved"):
        invite_to_chat(channel=cloud, client_id=CUSTOMER, standard_response_id=SPEC_RESPONSE["id"])
    assert not Interaction.objects.exists()


@pytest.mark.django_db
def test_invite_to_chat_sends_an_approved_template(cloud, staff_api):
    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    WhatsAppTemplate.objects.create(standard_response_id=SPEC_RESPONSE["id"], channel=cloud, name="bill_reminder",
                                    language="en", status=TemplateStatus.APPROVED)
    fields = {"FirstName": "John", "LastName": "Smith", "MyFC_BillAmount": "$1", "MyFC_Date": "May 1"}

    invitation = invite_to_chat(channel=cloud, client_id=CUSTOMER, standard_response_id=SPEC_RESPONSE["id"],
                                contact_fields=fields,
                                custom_properties={"CustomProp_Date": "May 2", "CustomProp Time": "3 PM"})

    assert Message.objects.get(pk=invitation.message_id).payload["template"]["name"] == "bill_reminder"
    assert StandardResponse.objects.count() == 1


# --- opt-out and templates on the other paths -------------------------------------------------------------------


@pytest.mark.django_db
def test_stop_and_start_through_the_cloud_webhook(cloud):
    from channels_app.models import ContactOptOut

    replay("stop.json")
    assert ContactOptOut.objects.get().channel == cloud
    confirmation = Message.objects.get(direction="outbound")
    assert confirmation.text.startswith("You will receive no more messages")
    assert confirmation.delivery.state == "pending"  # through the normal delivery path

    replay("start.json")
    assert not ContactOptOut.objects.exists()


@pytest.mark.django_db
def test_a_campaign_refuses_its_recipients_while_the_template_is_not_approved(cloud, staff_api):
    from channels_app.models import CampaignRecipient
    from channels_app.services.campaigns import campaign_create, campaign_run_batch, campaign_transition

    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    rows = [{"client_id": CUSTOMER, "Contact": FIELDS_OF_SPEC, "CustomProperties": CUSTOM_OF_SPEC}]
    campaign, _ = campaign_create(name="Bills", channel=cloud, rows=rows,
                                  standard_response=StandardResponse.objects.get(pk=SPEC_RESPONSE["id"]))
    campaign_transition(campaign_id=campaign.pk, action="start")

    campaign_run_batch(campaign_id=campaign.pk)

    recipient = CampaignRecipient.objects.get()
    assert recipient.message is None and "template not approved" in recipient.error


FIELDS_OF_SPEC = {"FirstName": "John", "LastName": "Smith", "MyFC_BillAmount": "$1", "MyFC_Date": "May 1"}
CUSTOM_OF_SPEC = {"CustomProp_Date": "May 2", "CustomProp Time": "3 PM"}


# --- the stand-in's status webhooks and the demo -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_stand_in_sends_signed_statuses_back_that_become_receipts(live_server, stand_in, tenant):
    channel = channel_save(channel=Channel(
        channel_id="channel-wa-cloud", name="Cloud", tenant=tenant, media_type=MediaType.WHATSAPP,
        transport=Transport.WHATSAPP_CLOUD, business_id="15550783881", phone_number_id="106540352242922",
        access_token=stand_in.token, app_secret=APP_SECRET, verify_token="v"))
    cloud_config_forget(channel.channel_id)
    stand_in.webhook_url = f"{live_server.url}/whatsapp/channel-wa-cloud/webhook"
    result = TRANSPORTS["whatsapp_cloud"].send(outgoing(channel, {"type": "Text", "text": "Hello"}))
    sent = outbound(channel, result.external_id)

    deadline = time.monotonic() + 10
    while not WhatsAppInbox.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    for inbox in WhatsAppInbox.objects.all():
        whatsapp_inbox_process(inbox_id=inbox.pk)

    sent.refresh_from_db()
    assert sent.status == MessageStatus.DELIVERED


@pytest.mark.django_db
def test_the_demo_has_a_cloud_channel_only_when_asked(tenant):
    from django.core.management import call_command

    call_command("seed_demo")
    assert not Channel.objects.filter(transport="whatsapp_cloud").exists()

    call_command("seed_demo", "--graph-stand-in")
    assert Channel.objects.get(transport="whatsapp_cloud").channel_id == "channel-wa-cloud-demo"
