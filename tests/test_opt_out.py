"""Opt-out on every channel type (API.md "Opt-out"): stop and start keywords
(/nexus and the WhatsApp Cloud API webhook alike), the confirmation text, the
per-channel state on the contact, InviteToChat (920), campaigns (recipient
refused, `opted out`), agents inside an open session, the API."""

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from channels_app.choices import MediaType, Transport
from channels_app.models import (
    Campaign,
    CampaignRecipient,
    Channel,
    Contact,
    ContactOptOut,
    Interaction,
    Message,
    StandardResponse,
)
from channels_app.services.campaigns import campaign_create, campaign_run_batch, campaign_transition
from channels_app.services.channels import channel_save
from channels_app.services.options import option_set

FIXTURES = Path(__file__).parent / "fixtures"
SPEC_RESPONSE = json.loads((FIXTURES / "invite_to_chat_standard_response.json").read_text())
CLIENT = "16504661149"
FIELDS = {"FirstName": "John", "LastName": "Smith", "MyFC_BillAmount": "$1", "MyFC_Date": "May 1"}
CUSTOM = {"CustomProp_Date": "May 2", "CustomProp Time": "3 PM"}


@pytest.fixture
def sms(tenant):
    return channel_save(
        channel=Channel(channel_id="0123456789", name="SMS", tenant=tenant, media_type=MediaType.SMS,
                        transport=Transport.SIMULATOR, business_id="0123456789", secret="channel-secret"),
        endpoints=["1:session-chat"], inbound_route_by_call="1:session-chat",
    )


def nexus(client, text: str, message_id: str, channel_id: str = "0123456789"):
    body = json.dumps({"messages": [{"type": "Text", "text": text, "channel": {
        "messageId": message_id, "from": {"id": CLIENT}, "to": {"id": "0123456789"}}}]}).encode()
    signature = "sha1=" + hmac.new(b"channel-secret", body, hashlib.sha1).hexdigest()
    response = client.post(f"/nexus/v3/channels/{channel_id}/messages", body, content_type="application/json",
                           HTTP_X_HUB_SIGNATURE=signature)
    assert response.status_code == 200, response.content
    return response


def outbound_texts() -> list[str]:
    return list(Message.objects.filter(direction="outbound").order_by("created_at").values_list("text", flat=True))


@pytest.mark.django_db
@pytest.mark.parametrize("text", ["STOP", "  stop  ", "Unsubscribe", "arret", "QUIT"])
def test_a_stop_keyword_opts_the_contact_out_of_the_channel_and_is_confirmed(client, sms, text):
    nexus(client, text, "m-1")

    contact = Contact.objects.get()
    assert list(contact.opt_outs.values_list("channel__channel_id", flat=True)) == ["0123456789"]
    assert outbound_texts() == ["You will receive no more messages from us here. Reply START to receive them "
                                "again."]


@pytest.mark.django_db
@pytest.mark.parametrize("text", ["Please stop calling me", "STOPP", "stop!", ""])
def test_a_message_that_is_not_exactly_a_keyword_changes_nothing(client, sms, text):
    if text:
        nexus(client, text, "m-1")

    assert not ContactOptOut.objects.exists() and outbound_texts() == []


@pytest.mark.django_db
def test_a_start_keyword_opts_back_in(client, sms):
    nexus(client, "STOP", "m-1")
    nexus(client, "Start", "m-2")

    assert not ContactOptOut.objects.exists()


@pytest.mark.django_db
def test_keywords_and_confirmation_come_from_the_options(client, sms):
    option_set(section="dms", name="opt-out-keywords", value="HALT, NO MORE")
    option_set(section="dms", name="opt-out-confirmation", value="Done.", channel=sms)

    nexus(client, "stop", "m-1")
    nexus(client, "no more", "m-2")

    assert ContactOptOut.objects.count() == 1 and outbound_texts() == ["Done."]


@pytest.mark.django_db
def test_invite_to_chat_to_an_opted_out_contact_is_920(client, sms, agent_api, staff_api):
    nexus(client, "STOP", "m-1")
    Interaction.objects.update(state="ended")
    text = {"id": "TXT1", "name": "Hello", "content_type": "text", "body": "Hello"}
    assert staff_api.post("/api/standard-responses/", text, format="json").status_code == 201

    response = agent_api.post("/esp", {"ReferenceId": 1, "AppName": "t", "Service": "ChatService",
                                       "Method": "InviteToChat", "Parameters": {
                                           "_umsChannel": "0123456789", "_umsClientId": CLIENT,
                                           "StandardResponseId": "TXT1"}}, format="json")

    assert response.status_code == 422
    assert response.json()["Error"]["Code"] == 920 and "opted out" in response.json()["Error"]["Message"]
    assert Interaction.objects.count() == 1


@pytest.mark.django_db
def test_a_campaign_refuses_opted_out_recipients(client, sms, staff_api):
    nexus(client, "STOP", "m-1")
    text = {"id": "TXT1", "name": "Hello", "content_type": "text", "body": "Hello"}
    assert staff_api.post("/api/standard-responses/", text, format="json").status_code == 201
    campaign, _ = campaign_create(name="News", channel=sms, standard_response=StandardResponse.objects.get(pk="TXT1"),
                                  rows=[{"client_id": CLIENT}, {"client_id": "16504661150"}])
    campaign_transition(campaign_id=campaign.pk, action="start")

    campaign_run_batch(campaign_id=campaign.pk)

    refused = CampaignRecipient.objects.get(campaign=campaign, client_id=CLIENT)
    assert refused.message is None and "opted out" in refused.error
    assert CampaignRecipient.objects.get(campaign=campaign, client_id="16504661150").message is not None
    counts = staff_api.get(f"/api/campaigns/{campaign.pk}/").json()
    assert counts["refused"] == 1
    assert Campaign.objects.get(pk=campaign.pk).state in ("running", "completed")


@pytest.mark.django_db
def test_an_agent_may_still_answer_inside_the_open_session(client, sms, agent_api):
    nexus(client, "STOP", "m-1")
    interaction = Interaction.objects.get()

    response = agent_api.post(f"/api/interactions/{interaction.pk}/messages/", {"text": "Sorry to see you go"},
                              format="json")

    assert response.status_code == 202


@pytest.mark.django_db
def test_the_api_shows_and_changes_the_opted_out_channels(client, sms, staff_api):
    nexus(client, "STOP", "m-1")
    contact = Contact.objects.get()

    shown = staff_api.get(f"/api/contacts/{contact.pk}/").json()
    cleared = staff_api.patch(f"/api/contacts/{contact.pk}/", {"opted_out": []}, format="json")
    unknown = staff_api.patch(f"/api/contacts/{contact.pk}/", {"opted_out": ["nope"]}, format="json")
    again = staff_api.patch(f"/api/contacts/{contact.pk}/", {"opted_out": ["0123456789"]}, format="json")

    assert shown["opted_out"] == ["0123456789"]
    assert cleared.status_code == 200 and cleared.json()["opted_out"] == []
    assert unknown.status_code == 400 and "opted_out" in unknown.json()
    assert again.json()["opted_out"] == ["0123456789"] and ContactOptOut.objects.get().source == "api"
    assert staff_api.put(f"/api/contacts/{contact.pk}/", {"opted_out": []}, format="json").status_code in (403, 405)


@pytest.mark.django_db
def test_an_agent_cannot_change_opt_outs(client, sms, agent_api):
    nexus(client, "STOP", "m-1")

    response = agent_api.patch(f"/api/contacts/{Contact.objects.get().pk}/", {"opted_out": []}, format="json")

    assert response.status_code == 403 and ContactOptOut.objects.exists()
