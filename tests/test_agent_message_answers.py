"""An agent's message, `POST /api/interactions/{id}/messages/`, answers each success and each error exactly as it
answered before the plain text was read without the serializer, the interaction without the ORM and the answer
without AgentMessageResultSerializer (issue 25): status, headers and body, by the lean door (a token) and by DRF's
(a browser's session), against answers recorded before the change (tests/fixtures/agent_message_answers.json; with
RECORD_AGENT_MESSAGE_ANSWERS=1 the test writes that file instead of comparing)."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from channels_app.api import serializers
from channels_app.api.agent_messages import agent_message_data, plain_text
from channels_app.models import Delivery, Interaction, Message, Queue, QueueRouting
from channels_app.services.interactions import customer_message_receive
from channels_app.services.options import option_set
from tests.conftest import member
from tests.factories import ChannelFactory, TenantFactory
from tests.test_lean_paths import FIXTURES, TRACE, _answer, _made, _token, assert_answers_as_recorded

RECORDED = FIXTURES / "agent_message_answers.json"
IW = "interaction-workspace"


def _opened(channel, client_id: str) -> Interaction:
    message, _ = customer_message_receive(channel=channel, client_id=client_id, text="Hi",
                                          channel_message_id=f"in-{client_id}")
    return message.interaction


@pytest.fixture
def sessions(tenant, channel):
    """The interactions of the cases, by name, and the users who send to them."""
    option_set(section=IW, name="whatsappsession.max-text-message-size", value=20, channel=channel)
    notifying = ChannelFactory(channel_id="whatsapp-notifying", name="WhatsApp with notifications", tenant=tenant,
                               media_type="whatsapp", transport="webhook", business_id="19251113333",
                               webhook_url="http://127.0.0.1:9/hook", inbound_route_by_call="1:session-chat")
    for name, value in (("whatsappsession.enable-free-msg-timespan-monitoring", True),
                        ("whatsappsession.default-notification-text", "We have news: {{1}}"),
                        ("whatsappsession.default-notification-id", "news_1"),
                        ("whatsappsession.default-notification-language", "en")):
        option_set(section=IW, name=name, value=value, channel=notifying)
    sms = ChannelFactory(channel_id="sms-1", name="SMS", tenant=tenant, media_type="sms", transport="webhook",
                         business_id="0123456789", webhook_url="http://127.0.0.1:9/hook",
                         inbound_route_by_call="1:sms")
    email = ChannelFactory(channel_id="email-1", name="Mail", tenant=tenant, media_type="email",
                           transport="webhook", business_id="help@example.com", webhook_url="http://127.0.0.1:9/hook",
                           inbound_route_by_call="1:mail")
    held_channel = ChannelFactory(channel_id="sms-held", name="SMS held", tenant=tenant, media_type="sms",
                                  transport="webhook", business_id="0123456780", webhook_url="http://127.0.0.1:9/hook",
                                  inbound_route_by_call="1:held")
    Queue.objects.create(tenant=tenant, key="1:held", routing=QueueRouting.WORKSPACE)
    other_tenant = TenantFactory(id=2, name="Other")
    foreign_channel = ChannelFactory(channel_id="foreign", name="Foreign", tenant=other_tenant, media_type="sms",
                                     transport="webhook", business_id="0123456781",
                                     webhook_url="http://127.0.0.1:9/hook", inbound_route_by_call="2:sms")
    agent = member("agent", "WhatsApp agent", tenants=[tenant], is_staff=False)
    holder = member("holder", "WhatsApp agent", tenants=[tenant], is_staff=False)
    sms_only = member("sms-only", tenants=[tenant], is_staff=False)
    sms_only.user_permissions.add(*Permission.objects.filter(codename__in=["view_interaction", "add_message"]))
    homeless = member("homeless", "WhatsApp agent", is_staff=False)
    root = get_user_model().objects.create_superuser("root", "", "root-pass-123")

    found = {
        "whatsapp": _opened(channel, "15550000001"),
        "closed": _opened(channel, "15550000002"),
        "notified": _opened(notifying, "15550000003"),
        "ended": _opened(channel, "15550000004"),
        "sms": _opened(sms, "15550000005"),
        "email": _opened(email, "ann@example.com"),
        "held": _opened(held_channel, "15550000006"),
        "foreign": _opened(foreign_channel, "15550000007"),
    }
    long_ago = timezone.now() - timedelta(hours=25)
    for name in ("closed", "notified"):
        Interaction.objects.filter(pk=found[name].pk).update(last_customer_message_at=long_ago)
    Interaction.objects.filter(pk=found["ended"].pk).update(state="ended")
    Interaction.objects.filter(pk=found["held"].pk).update(assigned_to=holder, state="active")
    users = {"agent": agent, "holder": holder, "sms-only": sms_only, "homeless": homeless, "root": root}
    return found, users


def _cases(found, users):
    token = {name: {"HTTP_AUTHORIZATION": f"Token {_token(user)}"} for name, user in users.items()}
    lean = Client()
    browser = Client()
    browser.force_login(users["agent"])

    def post(body: bytes, session: str = "whatsapp", who: str = "agent", content_type="application/json",
             client=None):
        interaction = found[session].pk if session in found else session
        headers = {} if client is browser else token[who]
        return lambda: (client or lean).post(f"/api/interactions/{interaction}/messages/", body,
                                             content_type=content_type, **TRACE, **headers)

    yield "text", post(b'{"text": "How can I help?"}')
    yield "text with line separators and emoji", post('{"text": "a\u2028b\u2029c \U0001f600 caf\u00e9"}'.encode())
    yield "text escaped pair", post(b'{"text": "\\ud83d\\ude00"}')
    yield "text and an unknown field", post(b'{"text": "Hello", "colour": "blue"}')
    yield "text a number", post(b'{"text": 42}')
    yield "text only spaces", post(b'{"text": "   "}')
    yield "text empty", post(b'{"text": ""}')
    yield "text null", post(b'{"text": null}')
    yield "text a list", post(b'{"text": ["a"]}')
    yield "text and a location", post(b'{"text": "a", "location": {"latitude": 1, "longitude": 2}}')
    yield "text with a header attachment", post(b'{"text": "a", "header_attachment": 3}')
    yield "text too long", post(b'{"text": "' + "\u00e9".encode() * 11 + b'"}')
    yield "text at the limit", post(b'{"text": "' + "\u00e9".encode() * 10 + b'"}')
    yield "text nul", post(b'{"text": "a\\u0000b"}')
    yield "text lone surrogate", post(b'{"text": "a\\ud800"}')
    yield "empty object", post(b"{}")
    yield "empty body", post(b"")
    yield "a list", post(b'["text"]')
    yield "a string", post(b'"text"')
    yield "bad json", post(b'{"text": ')
    yield "bad json to an unknown interaction", post(b'{"text": ', session="nope")
    yield "unknown interaction", post(b'{"text": "x"}', session="nope")
    yield "wrong content type", post(b'{"text": "x"}', content_type="text/plain")
    yield "closed window", post(b'{"text": "Are you there?"}', session="closed")
    yield "closed window, sent as a notification", post(b'{"text": "Are you there?"}', session="notified")
    yield "ended", post(b'{"text": "x"}', session="ended")
    yield "sms", post(b'{"text": "Your code"}', session="sms")
    yield "email", post(b'{"text": "Dear Ann,\\n\\n<b>thanks</b>"}', session="email")
    yield "another tenant's interaction", post(b'{"text": "x"}', session="foreign")
    yield "a member of no tenant", post(b'{"text": "x"}', who="homeless")
    yield "a superuser, another tenant's interaction", post(b'{"text": "x"}', session="foreign", who="root")
    yield "held by another agent", post(b'{"text": "x"}', session="held")
    yield "held by the agent", post(b'{"text": "Mine"}', session="held", who="holder")
    yield "no whatsapp right", post(b'{"text": "x"}', who="sms-only")
    yield "no whatsapp right, sms", post(b'{"text": "x"}', session="sms", who="sms-only")
    yield "browser text", post(b'{"text": "From the page"}', client=browser)
    yield "browser too long", post(b'{"text": "' + b"x" * 21 + b'"}', client=browser)
    yield "browser closed window", post(b'{"text": "x"}', session="closed", client=browser)
    yield "browser another tenant's interaction", post(b'{"text": "x"}', session="foreign", client=browser)
    yield "browser empty text", post(b'{"text": ""}', client=browser)


@pytest.mark.django_db
def test_agent_messages_answer_as_recorded(sessions):
    # given
    found, users = sessions
    # when
    answers = {name: _answer(call(), _made()) for name, call in _cases(found, users)}
    # then
    assert_answers_as_recorded(answers, RECORDED, "RECORD_AGENT_MESSAGE_ANSWERS")


@pytest.mark.django_db
def test_a_refused_message_stores_nothing(sessions):
    # given
    found, users = sessions
    # when
    statuses = [call().status_code for _name, call in _cases(found, users)]
    # then: each accepted message was stored once with its delivery; nothing of a refused one
    sent = Message.objects.filter(direction="outbound")
    assert 202 in statuses and sent.count() == statuses.count(202) < len(statuses)
    assert Delivery.objects.filter(message__in=sent, state="pending").count() == sent.count()


@pytest.mark.parametrize("body", [
    {"text": "x"}, {"text": "a\u2028b"},
])
def test_a_plain_text_is_read_as_the_serializer_reads_it(body):
    validated = serializers.AgentMessageSerializer(data=body)
    assert validated.is_valid()
    assert plain_text(body) == dict(validated.validated_data)


@pytest.mark.parametrize("body", [
    {}, {"text": ""}, {"text": None}, {"text": 1}, {"text": "a\x00"}, {"text": "a\ud800"}, {"text": "a", "b": 1},
    {"standard_response_id": "x"}, {"location": {}}, ["text"], "text", None, {"text": True},
])
def test_any_other_body_is_left_to_the_serializer(body):
    assert plain_text(body) is None


@pytest.mark.django_db
def test_the_answer_is_the_result_serializers_representation(channel, settings):
    # given: messages with every field the answer shows, set and unset, in UTC and in another time zone
    interaction = _opened(channel, "15550000009")
    moment = timezone.now().replace(microsecond=123456)
    shapes = [
        {},
        {"origin_time": moment, "sent_at": moment, "delivered_at": moment + timedelta(seconds=1),
         "external_id": "wamid.1", "trace_id": "05bb858a0f1e2d3c", "status": "delivered",
         "reasons": [{"code": 350, "message": "caf\u00e9"}]},
        {"payload": {"type": "Notification", "text": "a\u2028b", "template": {"name": "n", "parameters": ["x"]}},
         "text": "a\u2028b"},
    ]
    for zone in ("UTC", "America/New_York"):
        settings.TIME_ZONE = zone
        for shape in shapes:
            fields = {"text": "Hello", "payload": {"type": "Text", "text": "Hello"}, "status": "queued", **shape}
            message = Message.objects.create(interaction=interaction, channel=channel, direction="outbound",
                                             **fields)
            for sent_as in ("text", "notification"):
                # when
                written = agent_message_data(message, sent_as)
                # then
                message.sent_as = sent_as
                assert written == serializers.AgentMessageResultSerializer(message).data
                assert list(written) == list(serializers.AgentMessageResultSerializer(message).data)
