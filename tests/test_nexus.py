"""The Third-Party Messaging API: POST /nexus/v3/channels/{channel_id}/messages."""

import hashlib
import hmac
import json

import pytest

from channels_app.models import Contact, Interaction, Message
from tests.factories import ChannelFactory, InteractionFactory

SECRET = "channel-secret"


def _signed(body: bytes, secret: str = SECRET, algorithm: str = "sha1") -> dict:
    digest = hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()
    header = "HTTP_X_HUB_SIGNATURE" if algorithm == "sha1" else "HTTP_X_HUB_SIGNATURE_256"
    return {header: f"{algorithm}={digest}"}


def _text(message_id="m-1", client="16504661149", text="Hello", **channel):
    return {
        "type": "Text",
        "text": text,
        "channel": {"messageId": message_id, "from": {"id": client, "nickname": "Ann"}, "to": {"id": "0123456789"},
                    **channel},
    }


@pytest.fixture
def sms_channel(tenant):
    return ChannelFactory(
        channel_id="0123456789", name="SMS", tenant=tenant, media_type="sms", transport="webhook",
        business_id="0123456789", webhook_url="http://127.0.0.1:9/hook", secret=SECRET, inbound_route_by_call="1:sms",
    )


def post(client, body: dict | bytes, channel_id="0123456789", headers=None, **extra):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(f"/nexus/v3/channels/{channel_id}/messages", raw, content_type="application/json",
                       **(headers if headers is not None else _signed(raw)), **extra)


@pytest.mark.django_db
def test_a_signed_customer_message_opens_an_interaction(client, sms_channel):
    # when
    response = post(client, {"messages": [_text()]}, HTTP_X_B3_TRACEID="05bb858a")

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == {"code": 0}
    message = Message.objects.get()
    assert body["data"]["ids"] == [message.pk]
    assert (message.direction, message.text, message.trace_id) == ("inbound", "Hello", "05bb858a")
    interaction = message.interaction
    assert (interaction.type, interaction.subtype, interaction.queue) == ("Inbound", "InboundNew", "1:sms")
    assert interaction.user_data["_umsMsgPlainText"] == "Hello"
    assert interaction.user_data["_msg_ProfileNickname"] == "Ann"
    assert interaction.last_customer_message_at is not None


@pytest.mark.django_db
def test_the_next_message_continues_the_interaction_and_duplicates_store_nothing(client, sms_channel):
    first = post(client, {"messages": [_text("m-1")]}).json()["data"]["ids"][0]

    again = post(client, {"messages": [_text("m-1")]}).json()["data"]["ids"][0]
    second = post(client, {"messages": [_text("m-2", text="More")]}).json()["data"]["ids"][0]

    assert again == first
    assert second != first
    assert Message.objects.count() == 2
    assert Interaction.objects.count() == 1
    assert Contact.objects.count() == 1


@pytest.mark.django_db
def test_sha256_signature_is_accepted(client, sms_channel):
    raw = json.dumps({"messages": [_text()]}).encode()

    assert post(client, raw, headers=_signed(raw, algorithm="sha256")).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "forge",
    [
        lambda raw: {},
        lambda raw: _signed(raw, secret="wrong"),
        lambda raw: {"HTTP_X_HUB_SIGNATURE": _signed(raw)["HTTP_X_HUB_SIGNATURE"].upper()},
        lambda raw: {"HTTP_X_HUB_SIGNATURE": _signed(raw)["HTTP_X_HUB_SIGNATURE"][:-2]},
        lambda raw: {"HTTP_X_HUB_SIGNATURE": _signed(raw)["HTTP_X_HUB_SIGNATURE"].replace("sha1=", "sha256=")},
        lambda raw: _signed(raw + b" "),
    ],
)
def test_forged_requests_are_401_and_store_nothing(client, sms_channel, forge):
    raw = json.dumps({"messages": [_text()]}).encode()

    response = post(client, raw, headers=forge(raw))

    assert response.status_code == 401
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_unknown_channel_is_404(client, sms_channel):
    assert post(client, {"messages": [_text()]}, channel_id="nope").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "JSON"),
        ({"messages": []}, "messages"),
        ({"messages": [{"type": "Fax"}]}, "messages[0].type"),
        ({"messages": [_text(), {"type": "Text", "channel": {"messageId": "x", "from": {"id": "1"}}}]},
         "messages[1].text"),
        ({"messages": [_text(time="yesterday")]}, "channel.time"),
        ({"messages": [{"type": "Receipt", "status": "Lost", "channel": {"messageId": "x"}}]}, "status"),
        # What PostgreSQL cannot store is refused, not a server error.
        ({"messages": [_text(text="a\x00b")]}, "messages[0].text holds a NUL"),
        ({"messages": [_text(message_id="m" * 201)]}, "messages[0].channel.messageId is longer"),
        ({"messages": [_text(client="1" * 201)]}, "messages[0].channel.from.id is longer"),
        ({"messages": [{"type": "Receipt", "status": "Failed", "channel": {"messageId": "x" * 201}}]},
         "messages[0].channel.messageId is longer"),
        ({"messages": [{"type": "Receipt", "status": "Failed", "reasons": [{"code": 350, "message": "\x00"}],
                        "channel": {"messageId": "x"}}]}, "NUL"),
        # found by bench/fuzz.py: a 500 (unhashable type), a 500 (offset PostgreSQL cannot store), accepted
        ({"messages": [{"type": {}, "status": "Delivered", "channel": {"messageId": "x"}}]}, "messages[0].type"),
        ({"messages": [_text(time="0001-01-01T00:00:00+19:44")]}, "channel.time"),
        ({"messages": [{"type": "Receipt", "status": "Failed", "channel": {"messageId": "x"}, "reasons": {}}]},
         "reasons"),
    ],
)
def test_invalid_structure_is_400_with_code_520_and_nothing_is_stored(client, sms_channel, body, field):
    response = post(client, body)

    assert response.status_code == 400
    assert response.json()["status"]["code"] == 520
    assert field in response.json()["status"]["message"]
    assert not Message.objects.exists()
    assert not Interaction.objects.exists()


@pytest.mark.django_db
def test_a_long_trace_id_is_cut_to_200_characters(client, sms_channel):
    response = post(client, {"messages": [_text()]}, HTTP_X_B3_TRACEID="t" * 300)

    assert response.status_code == 200
    assert Message.objects.get().trace_id == "t" * 200


@pytest.mark.django_db
def test_email_message(client, tenant):
    ChannelFactory(channel_id="company.com", name="Mail", tenant=tenant, media_type="email", transport="webhook",
                   business_id="no-reply@company.com", webhook_url="http://127.0.0.1:9/hook", secret=SECRET,
                   inbound_route_by_call="1:mail")
    email = {
        "type": "Email", "subject": "Subject",
        "content": [{"type": "text", "text": "Plain text email body"}, {"type": "html", "text": "<p>Html</p>"}],
        "context": {"replyTo": {"id": "reply-to@company.com", "name": "Responder"}},
        "channel": {
            "messageId": "f7acbac6", "from": {"id": "recipient-1@mail.com"}, "to": {"id": "no-reply@company.com"}
        },
    }

    response = post(client, {"messages": [email]}, channel_id="company.com")

    assert response.status_code == 200, response.json()
    message = Message.objects.get()
    assert message.text == "Plain text email body"
    assert message.payload["subject"] == "Subject"
    assert message.payload["context"]["replyTo"]["id"] == "reply-to@company.com"
    contact = message.interaction.contact  # the customer's address is their contact's e-mail
    assert (contact.client_id, contact.email, contact.phone_number) == ("recipient-1@mail.com",) * 2 + ("",)


@pytest.mark.django_db
def test_receipts_update_the_message_and_unknown_ids_are_ignored(client, sms_channel):
    interaction = InteractionFactory(channel=sms_channel, client_id="16504661149", queue="1:sms", outbound=False,
                                     user_data={})
    sent = Message.objects.create(interaction=interaction, channel=sms_channel, direction="outbound", text="Hi",
                                  status="sent", external_id="1613474523265-0")
    receipt = {"type": "Receipt", "status": "Failed", "reasons": [{"code": 350, "message": "Account suspended."}],
               "channel": {"messageId": "1613474523265-0"}}
    unknown = {"type": "Receipt", "status": "Delivered", "channel": {"messageId": "nobody"}}

    response = post(client, {"messages": [receipt, unknown]})

    assert response.status_code == 200
    assert response.json()["data"]["ids"] == [sent.pk, ""]
    sent.refresh_from_db()
    assert sent.status == "failed"
    assert sent.reasons == [{"code": 350, "message": "Account suspended."}]


@pytest.mark.django_db
def test_an_invalid_message_in_a_request_rejects_all_of_it(client, sms_channel):
    response = post(client, {"messages": [_text("ok-1"), {"type": "Text"}]})

    assert response.status_code == 400
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_a_time_with_an_offset_postgresql_cannot_store_is_kept_in_utc(client, sms_channel):
    response = post(client, {"messages": [_text(time="2026-01-01T20:00:00+19:44")]})  # was a 500

    assert response.status_code == 200
    assert Message.objects.get().origin_time.isoformat() == "2026-01-01T00:16:00+00:00"


@pytest.mark.django_db
def test_a_new_secret_takes_effect_on_the_next_message_although_channels_are_cached(client, sms_channel):
    # given the channel was read (and kept: selectors.channels_by_id) for a first message
    assert post(client, {"messages": [_text("m-1")]}).status_code == 200

    # when its secret is changed, as the admin and the API save it
    sms_channel.secret = "a-new-secret"
    sms_channel.save(update_fields=["secret"])

    # then the old secret is refused at once, and the new one accepted
    raw = json.dumps({"messages": [_text("m-2")]}).encode()
    assert post(client, raw, headers=_signed(raw)).status_code == 401
    assert post(client, raw, headers=_signed(raw, "a-new-secret")).status_code == 200


@pytest.mark.django_db
def test_a_customer_is_found_through_the_unique_index_not_by_reading_every_contact(sms_channel):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from channels_app.services.contacts import contact_identify
    from tests.conftest import require_or_skip

    require_or_skip(connection.vendor == "postgresql", "query plans are PostgreSQL's")
    with CaptureQueriesContext(connection) as queries:
        contact_identify(channel=sms_channel, client_id="16504661149", phone_number="+16504661149")
    lookup = next(q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT"))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the plan a big table gets, on a small one
        cursor.execute(f"EXPLAIN {lookup}")
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "contact_unique_phone" in plan, plan


# --- the README's signed request, pasted as a reader would -------------------------------------------------------


def _readme_block(marker: str) -> str:
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    after = readme.split(f"<!-- {marker} -->", 1)[1]
    import textwrap

    return textwrap.dedent(after.split("```sh\n", 1)[1].split("```", 1)[0])


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("marker", ["signed-nexus-request", "signed-nexus-request-python"])
def test_the_readme_signed_request_is_accepted(live_server, tenant, marker):
    import shutil
    import subprocess

    from tests.conftest import require_or_skip

    require_or_skip(bool(shutil.which("curl") and shutil.which("openssl")), "curl and openssl are not installed")
    ChannelFactory(channel_id="channel-whatsapp-REAL", tenant=tenant, transport="webhook",
                   webhook_url="http://127.0.0.1:9/hook", secret="the-channel-secret",
                   inbound_route_by_call="1:session-chat")
    script = _readme_block(marker)
    # the reader's values: the README names the variables it wants on its first line
    script = "\n".join(
        f"BASE={live_server.url} CHANNEL=channel-whatsapp-REAL SECRET=the-channel-secret"
        if line.startswith("BASE=") else line for line in script.splitlines())

    answer = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)

    assert '"code":0' in answer.stdout.replace(" ", ""), (answer.stdout, answer.stderr)
    assert Message.objects.get().text == "Hello from the README"
