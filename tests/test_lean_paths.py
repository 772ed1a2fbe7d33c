"""The hot paths served without DRF and with only the middleware they need (channels_app/lean.py) answer
byte for byte as DRF and the whole middleware list answered: status, headers and body of each success and
error, against answers recorded before the change (tests/fixtures/lean_paths_answers.json; with
RECORD_LEAN_ANSWERS=1 the test writes that file instead of comparing)."""

import hashlib
import hmac
import json
import os
import re
from pathlib import Path

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from channels_app.models import Interaction, Message
from channels_app.services.interactions import customer_message_receive
from tests.conftest import member
from tests.factories import ChannelFactory, TenantFactory

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED = FIXTURES / "lean_paths_answers.json"
SECRET = "channel-secret"
TRACE = {"HTTP_X_B3_TRACEID": "05bb858a0f1e2d3c"}
TIME = re.compile(rb'"\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)"')


def _signed(body: bytes) -> dict:
    return {"HTTP_X_HUB_SIGNATURE": "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()}


def _text(message_id: str, text: str = "Hello") -> dict:
    return {"type": "Text", "text": text,
            "channel": {"messageId": message_id, "from": {"id": "16504661149", "nickname": "Ann"},
                        "to": {"id": "0123456789"}}}


def _answer(response, ids) -> dict:
    """What a client sees of an answer; the ids and times made by the request replaced by placeholders."""
    body = response.content
    for made in ids:
        body = body.replace(made.encode(), b"<id>")
    body = TIME.sub(b'"<time>"', body)
    headers = {name: value for name, value in response.headers.items()}
    return {
        "status": response.status_code,
        "headers": dict(sorted(headers.items())),
        "cookies": sorted(response.cookies),
        "body": body.decode("utf-8", "backslashreplace"),
    }


@pytest.fixture
def sms_channel(tenant):
    return ChannelFactory(
        channel_id="0123456789", name="SMS", tenant=tenant, media_type="sms", transport="webhook",
        business_id="0123456789", webhook_url="http://127.0.0.1:9/hook", secret=SECRET, inbound_route_by_call="1:sms",
    )


def _token(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def assert_answers_as_recorded(answers: dict, recorded_file: Path, record_variable: str) -> None:
    """Each answer equal to the one recorded in `recorded_file` under its name, and no name more or less; with
    the environment variable `record_variable` set, the answers are written to the file instead (re-recorded)."""
    if os.environ.get(record_variable):
        recorded_file.write_text(json.dumps(answers, indent=1, ensure_ascii=False) + "\n")
    recorded = json.loads(recorded_file.read_text())
    for name in recorded:
        assert answers[name] == recorded[name], name
    assert answers.keys() == recorded.keys()


def _made() -> set[str]:
    return set(Message.objects.values_list("pk", flat=True)) | set(Interaction.objects.values_list("pk", flat=True))


def _nexus_cases(client, sms_channel):
    good = json.dumps({"messages": [_text("m-1")]}).encode()
    not_json = b'{"messages": ['
    wrong_type = json.dumps({"messages": [{"type": "Video"}]}).encode()
    no_text = json.dumps({"messages": [_text("m-2", text="")]}).encode()
    too_big = b" " * 1001  # DATA_UPLOAD_MAX_MEMORY_SIZE is 1000 here
    base = "/nexus/v3/channels/0123456789/messages"
    yield "nexus ok", lambda: client.post(base, good, content_type="application/json", **_signed(good), **TRACE)
    yield "nexus duplicate", lambda: client.post(base, good, content_type="application/json", **_signed(good),
                                                 **TRACE)
    yield "nexus sha256", lambda: client.post(base, good, content_type="application/json", **TRACE,
                                              HTTP_X_HUB_SIGNATURE_256="sha256=" + hmac.new(
                                                  SECRET.encode(), good, hashlib.sha256).hexdigest())
    yield "nexus no signature", lambda: client.post(base, good, content_type="application/json", **TRACE)
    yield "nexus wrong signature", lambda: client.post(base, good, content_type="application/json", **TRACE,
                                                       HTTP_X_HUB_SIGNATURE="sha1=00")
    yield "nexus unknown channel", lambda: client.post("/nexus/v3/channels/nope/messages", good,
                                                       content_type="application/json", **_signed(good), **TRACE)
    yield "nexus odd channel", lambda: client.post("/nexus/v3/channels/caf%C3%A9%E2%80%A8%22x/messages", good,
                                                   content_type="application/json", **_signed(good), **TRACE)
    yield "nexus not json", lambda: client.post(base, not_json, content_type="application/json",
                                                **_signed(not_json), **TRACE)
    yield "nexus wrong type", lambda: client.post(base, wrong_type, content_type="application/json",
                                                  **_signed(wrong_type), **TRACE)
    yield "nexus no text", lambda: client.post(base, no_text, content_type="application/json",
                                               **_signed(no_text), **TRACE)
    yield "nexus no content type", lambda: client.generic("POST", base, good, content_type="", **_signed(good),
                                                          **TRACE)
    yield "nexus too big", lambda: client.post(base, too_big, content_type="application/json", **TRACE)
    yield "nexus no trace id", lambda: client.post(base, good, content_type="application/json", **_signed(good),
                                                   HTTP_X_B3_TRACEID="05bb858a0f1e2d3c")
    yield "nexus any accepted", lambda: client.post(base, good, content_type="application/json", **_signed(good),
                                                    HTTP_ACCEPT="application/json, */*", **TRACE)
    yield "nexus get", lambda: client.get(base, **TRACE)
    yield "nexus put", lambda: client.put(base, good, content_type="application/json", **TRACE)


def _esp_cases(client, user, no_right):
    validate = json.dumps({"ReferenceId": 1, "AppName": "DMS 91", "Service": "Messaging",
                           "Method": "ValidateContact",
                           "Parameters": {"_umsChannel": "channel-whatsapp-REAL", "Id": "+1-631-555-1002"}}).encode()
    unknown = json.dumps({"ReferenceId": 2, "AppName": "DMS 91", "Service": "Nope", "Method": "Nope",
                          "Parameters": {}}).encode()
    nul = b'{"ReferenceId": 3, "Service": "Messaging\\u0000", "Method": "ValidateContact", "Parameters": {}}'
    token = {"HTTP_AUTHORIZATION": f"Token {_token(user)}"}
    other = {"HTTP_AUTHORIZATION": f"Token {_token(no_right)}"}

    def post(body, **headers):
        return lambda: client.post("/esp", body, content_type="application/json", **TRACE, **headers)

    yield "esp validate", post(validate, **token)
    yield "esp unknown method", post(unknown, **token)
    yield "esp not json", post(b"{", **token)
    yield "esp not an object", post(b"[1, 2]", **token)
    yield "esp empty", post(b"", **token)
    yield "esp nul", post(nul, **token)
    yield "esp no token", post(validate)
    yield "esp wrong token", post(validate, HTTP_AUTHORIZATION="Token 0123456789abcdef")
    yield "esp token without key", post(validate, HTTP_AUTHORIZATION="Token")
    yield "esp token with spaces", post(validate, HTTP_AUTHORIZATION="Token a b")
    yield "esp basic", post(validate, HTTP_AUTHORIZATION="Basic YTpi")
    yield "esp no right", post(validate, **other)
    yield "esp big reference id", post(validate.replace(b'"ReferenceId": 1', b'"ReferenceId": 1180591620717411303424'),
                                       **token)
    yield "esp nan reference id", post(validate.replace(b'"ReferenceId": 1', b'"ReferenceId": NaN'), **token)
    yield "esp lone surrogate", post(validate.replace(b'"Messaging"', b'"Messaging\\ud800"'), **token)
    yield "esp utf-16", post(validate.decode().encode("utf-16"), **token)
    yield "esp json indented", post(validate, HTTP_ACCEPT="application/json; indent=2", **token)
    yield "esp plain text accepted", post(validate, HTTP_ACCEPT="text/plain", **token)
    yield "esp get", lambda: client.get("/esp", **token, **TRACE)


@pytest.mark.django_db
def test_hot_paths_answer_as_recorded(tenant, channel, sms_channel, settings):
    # given
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    user = member("esp-and-agent", "WhatsApp agent", "ESP client", tenants=[tenant], password="agent-pass-123",
                  is_staff=False)
    no_right = member("no-rights", tenants=[tenant], is_staff=False)
    client = Client()
    cases = [*_nexus_cases(client, sms_channel), *_esp_cases(client, user, no_right)]
    message, _ = customer_message_receive(channel=channel, client_id="15556667777", text="Hi",
                                          channel_message_id="c1")
    session = message.interaction
    session_client = Client(enforce_csrf_checks=True)
    session_client.force_login(user)
    token = {"HTTP_AUTHORIZATION": f"Token {_token(user)}"}

    def agent(body, interaction=session.pk, who=client, **headers):
        return lambda: who.post(f"/api/interactions/{interaction}/messages/", body,
                                content_type="application/json", **TRACE, **headers)

    cases += [
        ("agent text", agent(b'{"text": "How can I help?"}', **token)),
        ("agent empty", agent(b"{}", **token)),
        ("agent not json", agent(b'{"text": ', **token)),
        ("agent unknown interaction", agent(b'{"text": "x"}', interaction="nope", **token)),
        ("agent no token", agent(b'{"text": "x"}')),
        ("agent wrong token", agent(b'{"text": "x"}', HTTP_AUTHORIZATION="Token 0123456789abcdef")),
        ("agent no right", agent(b'{"text": "x"}', HTTP_AUTHORIZATION=f"Token {_token(no_right)}")),
        ("agent session without csrf", agent(b'{"text": "x"}', who=session_client)),
        ("agent nan", agent(b'{"text": NaN}', **token)),
        ("agent bom", agent(b'\xef\xbb\xbf{"text": "x"}', **token)),
        ("agent nul", agent(b'{"text": "a\\u0000"}', **token)),
        ("agent big number", agent(b'{"text": "x", "location": 123456789012345678901234567890}', **token)),
        ("agent not utf-8", agent(b'{"text": "\xff"}', **token)),
        ("agent list", agent(b"[" * 450 + b"]" * 450, **token)),
        ("agent form", lambda: client.post(f"/api/interactions/{session.pk}/messages/", {"text": "x"}, **TRACE,
                                           **token)),
    ]

    # when
    answers = {}
    for name, call in cases:
        response = call()
        answers[name] = _answer(response, _made())

    # then
    assert_answers_as_recorded(answers, RECORDED, "RECORD_LEAN_ANSWERS")


@pytest.mark.django_db
def test_hot_paths_skip_the_middleware_they_do_not_use(tenant, channel, sms_channel):
    # given
    user = member("agent", "WhatsApp agent", tenants=[tenant], is_staff=False)
    message, _ = customer_message_receive(channel=channel, client_id="15556667777", text="Hi",
                                          channel_message_id="c1")
    token = {"HTTP_AUTHORIZATION": f"Token {_token(user)}"}
    agent_url = f"/api/interactions/{message.interaction_id}/messages/"

    # when
    body = json.dumps({"messages": [_text("m-1")]}).encode()
    client = Client()
    agent = client.post(agent_url, b'{"text": "Hello"}', content_type="application/json", **token)
    browser = Client()
    browser.force_login(user)
    agent_in_browser = browser.post(agent_url, b'{"text": "Hello"}', content_type="application/json", **token)
    lean = client.post("/nexus/v3/channels/0123456789/messages", body, content_type="application/json",
                       **_signed(body))
    esp = client.post("/esp", b"{}", content_type="application/json")
    negotiated = client.post("/esp", b"{}", content_type="application/json", HTTP_ACCEPT="text/html")

    # then: no session was opened for them (SessionMiddleware sets request.session), the trace id is answered
    assert (lean.status_code, esp.status_code) == (200, 401)
    assert not hasattr(lean.wsgi_request, "session") and not hasattr(esp.wsgi_request, "session")
    assert lean["X-B3-TraceId"] and esp["X-B3-TraceId"]
    assert hasattr(negotiated.wsgi_request, "session")  # anything but JSON asked for: DRF's whole path
    assert (agent.status_code, agent_in_browser.status_code) == (202, 202)
    assert not hasattr(agent.wsgi_request, "session")
    assert hasattr(agent_in_browser.wsgi_request, "session")  # a cookie: the session's path, as before


def test_the_lean_agent_path_refuses_another_tenants_interaction_and_a_user_without_the_right(tenant, channel):
    # given: an interaction of the tenant, an agent of another tenant, and a member of the tenant without the right
    message, _ = customer_message_receive(channel=channel, client_id="15556667777", text="Hi",
                                          channel_message_id="c1")
    other_tenant = TenantFactory(id=2, name="Other")
    outsider = member("outsider", "WhatsApp agent", tenants=[other_tenant], is_staff=False)
    no_right = member("no-right", tenants=[tenant], is_staff=False)
    url = f"/api/interactions/{message.interaction_id}/messages/"
    client = Client()

    # when
    foreign = client.post(url, b'{"text": "x"}', content_type="application/json",
                          HTTP_AUTHORIZATION=f"Token {_token(outsider)}")
    refused = client.post(url, b'{"text": "x"}', content_type="application/json",
                          HTTP_AUTHORIZATION=f"Token {_token(no_right)}")

    # then: the lean path answered (no session), as the DRF view would, and nothing was stored
    assert (foreign.status_code, refused.status_code) == (404, 403)
    assert not hasattr(foreign.wsgi_request, "session") and not hasattr(refused.wsgi_request, "session")
    assert not Message.objects.filter(interaction_id=message.interaction_id, direction="outbound").exists()
