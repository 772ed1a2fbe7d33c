"""The per-channel circuit (API.md, "Agent workflow": "ESP 901 also answers a channel whose transport is
known to be down ... until one succeeds"), as channels_app.models.configuration.CIRCUIT_RULE words it: deliveries
in a row that do not get through open it, InviteToChat answers 901, campaigns wait, and the next delivery that
gets any other answer closes it. Also InviteToChat on SMS, an extension."""

import copy
import html
import json
import re
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_app.choices import MediaType, Transport
from channels_app.models import CampaignRecipient, Channel, Delivery, Interaction
from channels_app.services.campaigns import campaign_run_batch, campaign_transition
from channels_app.services.channels import channel_save
from channels_app.services.deliveries import delivery_attempt
from channels_app.services.interactions import customer_message_receive

FIXTURES = Path(__file__).parent / "fixtures"
SPEC_REQUEST = json.loads((FIXTURES / "invite_to_chat_request.json").read_text())
SPEC_RESPONSE = json.loads((FIXTURES / "invite_to_chat_standard_response.json").read_text())
TEXT_RESPONSE = {"id": "T1", "name": "Hello", "content_type": "text", "body": "Hello <$Contact.FirstName$>"}


@pytest.fixture
def threshold(settings):
    settings.CIRCUIT_FAILURE_THRESHOLD = 3
    return 3


def _deliveries(agent_api, channel, count: int) -> list[int]:
    message, _ = customer_message_receive(channel=channel, client_id="15556667777", text="Hi", channel_message_id="c1")
    ids = []
    for number in range(count):
        sent = agent_api.post(f"/api/interactions/{message.interaction_id}/messages/", {"text": f"Answer {number}"},
                              format="json")
        assert sent.status_code == 202, sent.json()
        ids.append(Delivery.objects.get(message_id=sent.json()["id"]).pk)
    return ids


def _make_due(delivery_id: int) -> None:
    Delivery.objects.filter(pk=delivery_id).update(next_attempt_at=timezone.now(), lease_until=None)


@pytest.mark.django_db
def test_consecutive_5xx_open_the_circuit_and_a_success_closes_it(agent_api, staff_api, webhook_channel, receiver,
                                                                  threshold, client, admin_client):
    # given: the third party answers 503 to three deliveries in a row
    receiver.plan.extend([503, 503, 503])
    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    ids = _deliveries(agent_api, webhook_channel, 3)

    # when
    for delivery_id in ids[:2]:
        delivery_attempt(delivery_id=delivery_id)
    webhook_channel.refresh_from_db()
    still_up = (webhook_channel.consecutive_failures, webhook_channel.down_since)
    delivery_attempt(delivery_id=ids[2])
    webhook_channel.refresh_from_db()

    # then: down, and InviteToChat says so in the spec's words
    assert still_up == (2, None)
    assert webhook_channel.consecutive_failures == 3 and webhook_channel.down_since is not None
    invited = agent_api.post("/esp", SPEC_REQUEST, format="json")
    assert invited.status_code == 502
    error = invited.json()["Error"]
    assert error["Code"] == 901
    assert error["Message"].startswith("InviteToChat connection with channel-whatsapp-REAL failed")
    health = client.get("/healthz?detail=1")
    assert health.status_code == 200 and health.json()["channels_down"] == 1
    assert "channels_down_ids" not in health.json()  # no names to anonymous callers
    assert admin_client.get("/healthz?detail=1").json()["channels_down_ids"] == ["channel-whatsapp-REAL"]
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok", "broker": "ok"}
    assert re.search(r"down for \d+ s", admin_client.get("/admin/channels_app/channel/").content.decode())

    # when: the relay's next attempt of a due delivery gets through
    _make_due(ids[0])
    result = delivery_attempt(delivery_id=ids[0])

    # then: closed again
    webhook_channel.refresh_from_db()
    assert result.outcome == "accepted"
    assert (webhook_channel.consecutive_failures, webhook_channel.down_since) == (0, None)
    assert agent_api.post("/esp", SPEC_REQUEST, format="json").status_code == 200


@pytest.mark.django_db
def test_connection_errors_count_and_4xx_answers_close(agent_api, channel, receiver, settings):
    # given: the conftest channel's webhook, where nothing listens
    settings.CIRCUIT_FAILURE_THRESHOLD = 1
    ids = _deliveries(agent_api, channel, 2)

    delivery_attempt(delivery_id=ids[0])
    channel.refresh_from_db()
    assert channel.down_since is not None and "Error" in Delivery.objects.get(pk=ids[0]).last_error

    # when: the third party is there again, but refuses the message (4xx): it is reachable
    Channel.objects.filter(pk=channel.pk).update(webhook_url=receiver.url)
    receiver.plan.append(400)
    delivery_attempt(delivery_id=ids[1])

    channel.refresh_from_db()
    assert (channel.consecutive_failures, channel.down_since) == (0, None)


@pytest.mark.django_db
def test_a_success_on_a_healthy_channel_writes_nothing_to_the_channel(agent_api, webhook_channel, receiver):
    (delivery_id,) = _deliveries(agent_api, webhook_channel, 1)

    with CaptureQueriesContext(connection) as queries:
        assert delivery_attempt(delivery_id=delivery_id).outcome == "accepted"

    assert not [q["sql"] for q in queries.captured_queries if 'UPDATE "channels_app_channel"' in q["sql"]]


@pytest.mark.django_db
def test_a_campaign_waits_while_its_channel_is_down_and_resumes_once_it_is_up(staff_api, webhook_channel, receiver):
    # given: a running campaign on a channel that is down
    assert staff_api.post("/api/standard-responses/", TEXT_RESPONSE, format="json").status_code == 201
    created = staff_api.post("/api/campaigns/", {
        "name": "Hello", "channel": webhook_channel.channel_id, "standard_response": "T1",
        "recipients": [{"client_id": f"1555000000{n}", "Contact": {"FirstName": "Jo"}} for n in range(3)],
    }, format="json")
    campaign_id = created.json()["id"]
    campaign_transition(campaign_id=campaign_id, action="start")
    Channel.objects.filter(pk=webhook_channel.pk).update(consecutive_failures=5, down_since=timezone.now())

    # when
    handled = campaign_run_batch(campaign_id=campaign_id)

    # then: nothing sent, every recipient still pending (not failed)
    assert handled == 0
    assert not receiver.received
    assert CampaignRecipient.objects.filter(campaign_id=campaign_id, message__isnull=True, error="").count() == 3
    assert staff_api.get(f"/api/campaigns/{campaign_id}/").json()["state"] == "running"

    # when: the circuit closes (a delivery succeeded)
    Channel.objects.filter(pk=webhook_channel.pk).update(consecutive_failures=0, down_since=None)
    handled = campaign_run_batch(campaign_id=campaign_id)

    # then
    assert handled == 3
    assert len(receiver.wait_for(3)) == 3


@pytest.mark.django_db
def test_a_campaign_probes_a_channel_down_for_a_while_with_one_recipient(staff_api, webhook_channel, receiver):
    assert staff_api.post("/api/standard-responses/", TEXT_RESPONSE, format="json").status_code == 201
    created = staff_api.post("/api/campaigns/", {
        "name": "Hello", "channel": webhook_channel.channel_id, "standard_response": "T1",
        "recipients": [{"client_id": f"1555000000{n}", "Contact": {"FirstName": "Jo"}} for n in range(3)],
    }, format="json")
    campaign_id = created.json()["id"]
    campaign_transition(campaign_id=campaign_id, action="start")
    Channel.objects.filter(pk=webhook_channel.pk).update(
        consecutive_failures=5, down_since=timezone.now() - timezone.timedelta(minutes=5))

    campaign_run_batch(campaign_id=campaign_id)

    assert CampaignRecipient.objects.filter(campaign_id=campaign_id, message__isnull=False).count() == 1
    webhook_channel.refresh_from_db()
    assert webhook_channel.down_since is None  # the probe got through


# --- InviteToChat on SMS: an extension ------------------------------------------------------------------------


@pytest.fixture
def sms_channel(tenant):
    return channel_save(
        channel=Channel(channel_id="channel-sms", name="SMS", tenant=tenant, media_type=MediaType.SMS,
                        transport=Transport.SIMULATOR, business_id="19251113333"),
        endpoints=["1:sms-chat"], inbound_route_by_call="1:sms-chat",
    )


@pytest.mark.django_db
def test_invite_to_chat_on_sms_sends_text_and_refuses_templates(agent_api, staff_api, sms_channel):
    assert staff_api.post("/api/standard-responses/", TEXT_RESPONSE, format="json").status_code == 201
    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    request = copy.deepcopy(SPEC_REQUEST)
    request["Parameters"].update(_umsChannel="channel-sms", StandardResponseId="T1")

    text = agent_api.post("/esp", request, format="json")
    request["Parameters"]["StandardResponseId"] = SPEC_RESPONSE["id"]
    template = agent_api.post("/esp", request, format="json")

    assert text.status_code == 200, text.json()
    session = Interaction.objects.get(pk=text.json()["Result"]["_umsChatSessionId"])
    assert session.messages.get().text == "Hello John"
    assert template.status_code == 422 and template.json()["Error"]["Code"] == 920


def _words(text: str) -> str:
    return " ".join(text.replace("`", "").replace("*", "").split())


@pytest.mark.django_db
def test_what_opens_the_circuit_is_worded_once_and_shown_everywhere(agent_api, staff_api, channel, admin_client):
    """Issue 22: one wording (CIRCUIT_RULE, the model's help text) in the README, the admin and ESP 901."""
    from channels_app.models.configuration import CIRCUIT_FAILURE, CIRCUIT_RULE

    readme = _words((Path(__file__).resolve().parent.parent / "README.md").read_text())
    assert _words(CIRCUIT_RULE) in readme
    assert Channel._meta.get_field("down_since").help_text.endswith(CIRCUIT_RULE)
    page = admin_client.get(f"/admin/channels_app/channel/{channel.pk}/change/").content.decode()
    assert CIRCUIT_RULE in html.unescape(page)
    assert CIRCUIT_RULE in admin_client.get("/api/schema/?format=json").json()["paths"]["/esp"]["post"]["description"]

    Channel.objects.filter(pk=channel.pk).update(down_since=timezone.now(), consecutive_failures=5)
    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    error = agent_api.post("/esp", SPEC_REQUEST, format="json").json()["Error"]
    assert error["Code"] == 901 and f"5 deliveries in a row {CIRCUIT_FAILURE}" in error["Message"]
