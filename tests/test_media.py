"""Media, locations and e-mail both ways (API.md, second part): signed links, inbound attachments fetched
from a real server on 127.0.0.1 (with every kind of bad input), outbound attachments after their text in
order, agent files, locations with their map link, e-mail replies."""

import hashlib
import hmac
import io
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from channels_app.choices import MediaType, Transport
from channels_app.models import (
    Channel,
    Delivery,
    DeliveryState,
    Message,
    MessageAttachment,
    Tenant,
)
from channels_app.services.channels import channel_save
from channels_app.services.deliveries import delivery_attempt
from channels_app.services.media import message_attachment_fetch, message_attachments_refetch
from channels_app.services.options import option_set
from channels_app.services.standard_responses import attachment_create
from channels_app.signed_links import signed_path
from tests.conftest import member
from tests.file_server import Served, start_file_server

SECRET = "channel-secret"
PDF = b"%PDF-1.4\n" + b"the customer's bill " * 50 + b"\n%%EOF\n"


def test_a_fetch_that_cannot_make_its_temporary_file_leaves_no_deadline_timer(files, monkeypatch):
    import threading

    from channels_app import media_fetch

    def disk_full():
        raise OSError(28, "No space left on device")

    files.files["/a.pdf"] = Served(PDF)
    monkeypatch.setattr(media_fetch.tempfile, "TemporaryFile", disk_full)
    timers = {t for t in threading.enumerate() if isinstance(t, threading.Timer)}

    with pytest.raises(OSError):
        media_fetch.fetch(files.url("/a.pdf"), timeout=5.0, deadline=120.0)

    # then no timer thread waits out the 120 s deadline of a fetch that never started
    assert {t for t in threading.enumerate() if isinstance(t, threading.Timer) and t.is_alive()} - timers == set()


def test_a_read_timeout_that_ends_at_the_deadline_is_the_deadline(files, monkeypatch):
    # given a silent server, a read timeout as long as the deadline, and a deadline timer that comes late
    # (on a busy machine the read's timeout and the timer end at the same moment: either may come first)
    from channels_app import media_fetch

    files.files["/silent.pdf"] = Served(PDF, delay=5.0)
    monkeypatch.setattr(media_fetch._Cutoff, "_cut", lambda self: None)

    with pytest.raises(media_fetch.FetchFailed) as failed:
        media_fetch.fetch(files.url("/silent.pdf"), timeout=30.0, deadline=1.0)

    # then the reason is the deadline, whichever ended the wait
    assert (str(failed.value), failed.value.retry) == ("the transfer took longer than 1 s", True)


def png_bytes(width=800, height=600) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def files():
    server = start_file_server()
    yield server
    server.stop()


@pytest.fixture
def sms_channel(tenant):
    return channel_save(
        channel=Channel(channel_id="0123456789", name="SMS", tenant=tenant, media_type="sms", transport="webhook",
                        business_id="0123456789", webhook_url="http://127.0.0.1:9/hook", secret=SECRET),
        inbound_route_by_call="1:sms",
    )


def nexus(client, messages: list, channel_id="0123456789"):
    raw = json.dumps({"messages": messages}).encode()
    signature = "sha1=" + hmac.new(SECRET.encode(), raw, hashlib.sha1).hexdigest()
    return client.post(f"/nexus/v3/channels/{channel_id}/messages", raw, content_type="application/json",
                       HTTP_X_HUB_SIGNATURE=signature)


def text_with(attachments: list, message_id="m-1", text="") -> dict:
    return {"type": "Text", "text": text, "attachments": attachments,
            "channel": {"messageId": message_id, "from": {"id": "16504661149"}, "to": {"id": "0123456789"}}}


def fetch_all(message_id: str) -> list[MessageAttachment]:
    for attachment in MessageAttachment.objects.filter(message_id=message_id):
        while message_attachment_fetch(attachment_id=attachment.pk) is not None:
            pass  # a retry that may pass: tried again at once here (the task waits with backoff)
    return list(MessageAttachment.objects.filter(message_id=message_id).order_by("position"))


# --- signed links ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_signed_link_serves_the_file_without_credentials_and_refuses_a_changed_or_expired_one(client, tenant):
    attachment = attachment_create(tenant=tenant, uploaded_file=SimpleUploadedFile("bill.pdf", PDF), name="bill.pdf")
    path = signed_path(storage_name=attachment.file.name, content_type="application/pdf", file_name="bill.pdf")
    token = path.split("/")[2]

    served = client.get(path)
    tampered = client.get(path.replace(token, token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]))
    renamed = client.get(path.replace("bill.pdf", "other.pdf"))
    expired = client.get(signed_path(storage_name=attachment.file.name, content_type="application/pdf",
                                     file_name="bill.pdf", now=time.time() - 8 * 24 * 3600))

    assert served.status_code == 200
    assert b"".join(served.streaming_content) == PDF
    assert served["Content-Type"] == "application/pdf"
    assert (tampered.status_code, renamed.status_code, expired.status_code) == (403, 403, 403)


# --- inbound attachments ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_image_attachment_is_answered_at_once_then_stored_with_a_thumbnail(client, sms_channel, files, staff_api):
    image = png_bytes()
    files.files["/photo.png"] = Served(image, headers={"Content-Type": "image/png"})

    response = nexus(client, [text_with([{"url": files.url("/photo.png"), "contentType": "image/png",
                                          "fileName": "photo.png", "size": len(image)}])])

    assert response.status_code == 200
    message = Message.objects.get()
    assert message.text == ""
    assert files.requests == []  # not fetched while the request was answered
    pending = staff_api.get(f"/api/interactions/{message.interaction_id}/").json()["messages"][0]["attachments"]
    assert [(a["status"], a["url"]) for a in pending] == [("pending", None)]

    [stored] = fetch_all(message.pk)

    assert (stored.status, stored.content_type, stored.size) == ("stored", "image/png", len(image))
    assert stored.thumbnail.name
    with Image.open(stored.thumbnail.open("rb")) as thumbnail:
        assert max(thumbnail.size) <= 320
    shown = staff_api.get(f"/api/interactions/{message.interaction_id}/").json()["messages"][0]["attachments"]
    assert shown[0]["status"] == "stored" and shown[0]["fileName"] == "photo.png" and shown[0]["size"] == len(image)
    download = client.get(urlsplit(shown[0]["url"]).path)
    assert b"".join(download.streaming_content) == image
    assert client.get(urlsplit(shown[0]["thumbnailUrl"]).path).status_code == 200


def _bad_inputs(files) -> dict:
    """fileName -> (attachment as sent, what the reason says)."""
    big = 100 * 1024 * 1024 + 1
    files.files.update({
        "/ok.pdf": Served(PDF),
        "/redirect.pdf": Served(b"", status=302, headers={"Location": "http://127.0.0.1:9/elsewhere.pdf"}),
        "/slow.pdf": Served(PDF, delay=2.0),
        "/lies-size.pdf": Served(PDF),
        "/lies-type.png": Served(PDF),
        "/huge.pdf": Served(big, prefix=b"%PDF-1.4\n"),
        "/huge-unannounced.pdf": Served(big, prefix=b"%PDF-1.4\n", content_length=False),
        "/script.pdf": Served(b"<script>alert(1)</script>"),
        "/gone.pdf": Served(b"gone", status=404),
    })
    return {
        "ok.pdf": ({"url": files.url("/ok.pdf")}, None),
        "ftp.pdf": ({"url": "ftp://127.0.0.1/ftp.pdf"}, "not an http(s) URL"),
        "blocked.pdf": ({"url": "http://169.254.169.254/latest/meta-data/blocked.pdf"}, "blocked address"),
        "redirect.pdf": ({"url": files.url("/redirect.pdf")}, "HTTP 302: redirects are not followed"),
        "slow.pdf": ({"url": files.url("/slow.pdf")}, "timed out"),
        "lies-size.pdf": ({"url": files.url("/lies-size.pdf"), "size": 10}, f"is {len(PDF)} bytes, not the 10"),
        "lies-type.png": ({"url": files.url("/lies-type.png"), "contentType": "image/png"}, "application/pdf"),
        "huge.pdf": ({"url": files.url("/huge.pdf")}, "larger than 100 MB (Content-Length"),
        "huge-unannounced.pdf": ({"url": files.url("/huge-unannounced.pdf")}, "larger than 100 MB: reading stopped"),
        "script.pdf": ({"url": files.url("/script.pdf")}, "not a supported attachment"),
        "gone.pdf": ({"url": files.url("/gone.pdf")}, "HTTP 404"),
    }


@pytest.mark.django_db
def test_bad_attachments_fail_with_their_reason_and_nothing_else_is_lost(client, sms_channel, files, settings):
    settings.MEDIA_FETCH_TIMEOUT = 0.5
    settings.MEDIA_FETCH_ATTEMPTS = 2
    cases = _bad_inputs(files)
    sent = [{**attachment, "fileName": name} for name, (attachment, _) in cases.items()]

    response = nexus(client, [text_with(sent[:6], text="Here are my files"), text_with(sent[6:], "m-2", "More"),
                              text_with([], "m-3", "And a text")])

    assert response.status_code == 200
    first, second, third = Message.objects.order_by("created_at")
    assert (first.text, second.text, third.text) == ("Here are my files", "More", "And a text")
    outcome = {a.file_name: (a.status, a.reason) for a in [*fetch_all(first.pk), *fetch_all(second.pk)]}
    for name, (_, reason) in cases.items():
        status, said = outcome[name]
        if reason is None:
            assert (status, said) == ("stored", ""), name
        else:
            assert status == "failed" and reason in said, (name, said)
    assert files.requests.count("/slow.pdf") == 2  # a timeout is tried again, up to MEDIA_FETCH_ATTEMPTS
    assert files.requests.count("/redirect.pdf") == 1  # a redirect is not
    assert "/elsewhere.pdf" not in files.requests


@pytest.mark.django_db
def test_a_failed_fetch_can_be_retried_and_a_5xx_is_retried_with_backoff(client, sms_channel, files, settings):
    settings.MEDIA_FETCH_ATTEMPTS = 2
    answers = iter([Served(b"busy", status=503), Served(b"busy", status=503), Served(PDF), Served(PDF)])
    files.files["/later.pdf"] = lambda: next(answers)
    nexus(client, [text_with([{"url": files.url("/later.pdf"), "fileName": "later.pdf"}])])
    attachment = MessageAttachment.objects.get()

    first_wait = message_attachment_fetch(attachment_id=attachment.pk)
    assert first_wait == settings.MEDIA_FETCH_RETRY_SECONDS
    assert message_attachment_fetch(attachment_id=attachment.pk) is None
    attachment.refresh_from_db()
    assert (attachment.status, attachment.reason) == ("failed", "HTTP 503")

    assert message_attachments_refetch(attachment_ids=[attachment.pk]) == 1
    message_attachment_fetch(attachment_id=attachment.pk)
    attachment.refresh_from_db()
    assert (attachment.status, attachment.size) == ("stored", len(PDF))


@pytest.fixture
def trickling_tls():
    """An https URL whose server answers the TLS handshake with a record announcing 16 KB, then sends it one
    byte every 0.2 s."""
    listener = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()

    def serve():
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                try:
                    connection.sendall(b"\x16\x03\x03\x40\x00")  # handshake, TLS 1.2, 16384 bytes
                    while not stopping.wait(0.2):
                        connection.sendall(b"\x00")
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}/slow.pdf"
    stopping.set()
    listener.close()


@pytest.mark.django_db
@pytest.mark.parametrize("server", ["a byte every 0.2 s", "no answer for 5 s", "a TLS handshake a byte every 0.2 s"])
def test_a_transfer_longer_than_media_fetch_total_seconds_is_cut_off(
    client, sms_channel, files, settings, server, request
):
    # given a server that never makes a read wait MEDIA_FETCH_TIMEOUT, yet takes longer than the whole deadline
    settings.MEDIA_FETCH_TIMEOUT = 30.0
    settings.MEDIA_FETCH_TOTAL_SECONDS = 1.0
    settings.MEDIA_FETCH_ATTEMPTS = 2
    files.files["/trickle.pdf"] = Served(PDF, trickle=0.2)
    files.files["/silent.pdf"] = Served(PDF, delay=5.0)
    url = {"a byte every 0.2 s": lambda: files.url("/trickle.pdf"),
           "no answer for 5 s": lambda: files.url("/silent.pdf"),
           "a TLS handshake a byte every 0.2 s": lambda: request.getfixturevalue("trickling_tls")}[server]()
    nexus(client, [text_with([{"url": url, "fileName": "slow.pdf"}])])
    attachment = MessageAttachment.objects.get()

    # when it is fetched
    started = time.monotonic()
    retry_in = message_attachment_fetch(attachment_id=attachment.pk)
    took = time.monotonic() - started

    # then the attempt ends at the deadline, and may be tried again later
    assert took < 4.0
    assert retry_in == settings.MEDIA_FETCH_RETRY_SECONDS
    attachment.refresh_from_db()
    assert (attachment.status, attachment.reason) == ("pending", "the transfer took longer than 1 s")


@pytest.mark.django_db
def test_a_failed_attachment_is_shown_in_the_admin_with_its_reason_and_fetched_again(
    client, sms_channel, files, staff_user
):
    nexus(client, [text_with([{"url": "ftp://127.0.0.1/x.pdf", "fileName": "x.pdf"}])])
    attachment = MessageAttachment.objects.get()
    message_attachment_fetch(attachment_id=attachment.pk)
    client.force_login(staff_user)

    page = client.get("/admin/channels_app/messageattachment/?status=failed").content.decode()
    transcript = client.get(f"/admin/channels_app/interaction/{attachment.message.interaction_id}/change/")
    action = client.post("/admin/channels_app/messageattachment/", {
        "action": "fetch_again", "_selected_action": [attachment.pk]})

    assert "not an http(s) URL" in page
    assert "not an http(s) URL" in transcript.content.decode()
    assert action.status_code == 302
    attachment.refresh_from_db()
    assert attachment.status == "pending"


@pytest.mark.django_db
def test_a_request_with_an_unsupported_type_is_refused_whole(client, sms_channel):
    response = nexus(client, [text_with([], "m-1", "kept?"), {"type": "Sticker", "channel": {
        "messageId": "m-2", "from": {"id": "16504661149"}}}])

    assert response.status_code == 400
    assert response.json()["status"]["code"] == 520
    assert "messages[1].type" in response.json()["status"]["message"]
    assert Message.objects.count() == 0


# --- locations ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_customer_location_is_shown_with_the_map_link_of_the_options(client, sms_channel, staff_api, staff_user):
    option_set(section="interaction-workspace", name="whatsappsession.location-map.browse.query",
               value="https://maps.example/?q={LATITUDE},{LONGITUDE}")
    location = {"latitude": 52.37, "longitude": 4.89, "name": "Dam Square", "address": "Dam, Amsterdam"}

    response = nexus(client, [{"type": "Location", "location": location, "channel": {
        "messageId": "loc-1", "from": {"id": "16504661149"}}}])
    bad = nexus(client, [{"type": "Location", "location": {"latitude": 91, "longitude": 0}, "channel": {
        "messageId": "loc-2", "from": {"id": "16504661149"}}}])

    assert response.status_code == 200
    assert bad.status_code == 400 and "latitude" in bad.json()["status"]["message"]
    message = Message.objects.get()
    shown = staff_api.get(f"/api/interactions/{message.interaction_id}/").json()["messages"][0]["location"]
    assert shown == {**location, "mapUrl": "https://maps.example/?q=52.37,4.89"}
    client.force_login(staff_user)
    page = client.get(f"/admin/channels_app/interaction/{message.interaction_id}/change/").content.decode()
    assert "https://maps.example/?q=52.37,4.89" in page and "Dam Square" in page


# --- outbound: agent files, order, e-mail ---------------------------------------------------------------------


@pytest.fixture
def conversation(client, webhook_channel):
    """A customer message on the webhook channel, so the WhatsApp window is open."""
    raw = json.dumps({"messages": [{"type": "Text", "text": "Hi", "channel": {
        "messageId": "c-1", "from": {"id": "15556667777"}}}]}).encode()
    signature = "sha1=" + hmac.new(SECRET.encode(), raw, hashlib.sha1).hexdigest()
    client.post(f"/nexus/v3/channels/{webhook_channel.channel_id}/messages", raw, content_type="application/json",
                HTTP_X_HUB_SIGNATURE=signature)
    return Message.objects.get(channel_message_id="c-1").interaction


def _upload(api, name="bill.pdf", content=PDF) -> int:
    upload = io.BytesIO(content)
    upload.name = name
    return api.post("/api/attachments/", {"file": upload}, format="multipart").json()["id"]


@pytest.mark.django_db
def test_an_agent_file_leaves_after_the_text_and_not_before_it_is_accepted(
    client, staff_api, conversation, receiver
):
    attachment_id = _upload(staff_api)

    answer = staff_api.post(f"/api/interactions/{conversation.pk}/messages/",
                            {"text": "Your bill", "attachments": [attachment_id]}, format="json")

    assert answer.status_code == 202
    text_delivery, file_delivery = Delivery.objects.order_by("pk")
    assert (text_delivery.state, file_delivery.state, file_delivery.after_id) == (
        "pending", "waiting", text_delivery.pk)
    assert delivery_attempt(delivery_id=file_delivery.pk) is None  # waits for the text
    delivery_attempt(delivery_id=text_delivery.pk)
    file_delivery.refresh_from_db()
    assert file_delivery.state == DeliveryState.PENDING
    delivery_attempt(delivery_id=file_delivery.pk)
    first, second = (r.json() for r in receiver.wait_for(2))
    assert (first["type"], first["text"], "attachments" in first) == ("Text", "Your bill", False)
    [media] = second["attachments"]
    assert {k: media[k] for k in ("contentType", "fileName", "size")} == {
        "contentType": "application/pdf", "fileName": "bill.pdf", "size": len(PDF)}
    path = urlsplit(media["url"]).path
    assert b"".join(client.get(path).streaming_content) == PDF  # no credentials
    token = path.split("/")[2]
    assert client.get(path.replace(token, token[:-3] + "xyz")).status_code == 403


@pytest.mark.django_db
def test_files_wait_for_a_text_that_fails_and_fail_with_it(staff_api, conversation, receiver):
    receiver.plan.append(400)
    staff_api.post(f"/api/interactions/{conversation.pk}/messages/",
                   {"text": "Your bill", "attachments": [_upload(staff_api), _upload(staff_api, "b.pdf")]},
                   format="json")
    text_delivery = Delivery.objects.order_by("pk").first()

    delivery_attempt(delivery_id=text_delivery.pk)

    states = list(Delivery.objects.order_by("pk").values_list("state", flat=True))
    assert states == ["failed", "failed", "failed"]
    assert len(receiver.received) == 1
    assert Message.objects.filter(reasons__0__message="Not sent: the message before it failed.").count() == 2


@pytest.mark.django_db
def test_agent_files_need_can_send_files_on_whatsapp_and_the_callers_tenant(staff_api, conversation, tenant):
    other = Tenant.objects.create(id=2, name="Other")
    foreign = attachment_create(tenant=other, uploaded_file=SimpleUploadedFile("x.pdf", PDF), name="x.pdf")
    from django.contrib.auth.models import Permission

    from tests.conftest import _client_for

    agent = member("plain-agent", tenants=[tenant])  # may write on WhatsApp, not send files
    agent.user_permissions.set(Permission.objects.filter(
        codename__in=["view_interaction", "add_message", "whatsapp_can_use", "add_attachment"]))

    refused = _client_for(agent).post(f"/api/interactions/{conversation.pk}/messages/",
                                      {"text": "x", "attachments": [_upload(staff_api)]}, format="json")
    unknown = staff_api.post(f"/api/interactions/{conversation.pk}/messages/",
                             {"text": "x", "attachments": [foreign.pk]}, format="json")

    assert refused.status_code == 403 and "whatsapp_can_send_files" in refused.content.decode()
    assert unknown.status_code == 400 and f"Unknown attachment id(s): {foreign.pk}" in unknown.content.decode()


@pytest.mark.django_db
def test_an_agent_location_leaves_in_the_customers_shape(staff_api, conversation):
    answer = staff_api.post(f"/api/interactions/{conversation.pk}/messages/",
                            {"location": {"latitude": 1.5, "longitude": -2, "name": "Shop"}}, format="json")

    assert answer.status_code == 202
    assert Message.objects.get(pk=answer.json()["id"]).payload == {
        "type": "Location", "text": "Shop", "location": {"latitude": 1.5, "longitude": -2, "name": "Shop"}}


@pytest.mark.django_db
def test_an_email_reply_carries_the_subject_of_the_first_email(client, staff_api, tenant):
    channel = channel_save(channel=Channel(
        channel_id="company.com", name="Support", tenant=tenant, media_type=MediaType.EMAIL,
        transport=Transport.WEBHOOK, business_id="support@company.com", webhook_url="http://127.0.0.1:9/hook",
        secret=SECRET), inbound_route_by_call="1:email")

    def email(message_id, subject):
        return {"type": "Email", "subject": subject, "content": [{"type": "text", "text": "My order"}],
                "channel": {"messageId": message_id, "from": {"id": "ann@mail.example"}}}

    nexus(client, [email("e-1", "Order 42"), email("e-2", "Another subject")], channel_id=channel.channel_id)
    interaction = Message.objects.get(channel_message_id="e-1").interaction
    long_text = "Thank you <Ann> & welcome.\nSecond line " + "x" * 5000  # past WhatsApp's 4096 bytes

    answer = staff_api.post(f"/api/interactions/{interaction.pk}/messages/", {"text": long_text}, format="json")

    assert interaction.user_data | {} and Message.objects.get(channel_message_id="e-2").interaction == interaction
    interaction.refresh_from_db()
    assert interaction.user_data["Subject"] == "Order 42"
    assert answer.status_code == 202
    sent = Message.objects.get(pk=answer.json()["id"])
    payload = sent.payload
    assert payload["type"] == "Email" and payload["subject"] == "Re: Order 42"
    assert sent.text == long_text == answer.json()["text"]  # the transcript's text is what the agent wrote
    assert payload["content"][0] == {"type": "text", "text": long_text}
    assert payload["content"][1]["type"] == "html" and "&lt;Ann&gt; &amp; welcome.<br>" in payload["content"][1]["text"]
    assert payload["context"] == {"replyTo": {"id": "support@company.com", "name": "Support"}}


@pytest.mark.django_db
def test_cr_lf_in_an_email_subject_never_reaches_the_replys_subject(client, staff_api, tenant):
    # given: a customer's subject that would add a header line to the reply
    channel = channel_save(channel=Channel(
        channel_id="company.com", name="Support", tenant=tenant, media_type=MediaType.EMAIL,
        transport=Transport.WEBHOOK, business_id="support@company.com", webhook_url="http://127.0.0.1:9/hook",
        secret=SECRET), inbound_route_by_call="1:email")
    nexus(client, [{"type": "Email", "subject": "Order 42\r\nBcc: everyone@example.com\n",
                    "content": [{"type": "text", "text": "My order"}],
                    "channel": {"messageId": "e-1", "from": {"id": "ann@mail.example"}}}],
          channel_id=channel.channel_id)
    interaction = Message.objects.get(channel_message_id="e-1").interaction

    # when
    answer = staff_api.post(f"/api/interactions/{interaction.pk}/messages/", {"text": "Thanks"}, format="json")

    # then
    assert answer.status_code == 202, answer.json()
    assert Message.objects.get(pk=answer.json()["id"]).payload["subject"] == "Re: Order 42 Bcc: everyone@example.com"


def test_a_reply_subject_is_one_line_whatever_was_kept():
    from channels_app.services.email import reply_subject

    assert reply_subject("Order 42\r\nBcc: x@example.com") == "Re: Order 42 Bcc: x@example.com"
    assert reply_subject("RE: a\u2028b") == "RE: a b"
    assert reply_subject("\r\n") == "Re:"
