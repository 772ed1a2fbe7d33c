"""The agent workflow of API.md ("Agent workflow"): ending with a disposition, the history ("See older
messages..."), new outbound sessions, one rendering rule and the 24-hour rule on every path, and options
that take effect when the catalog says."""

import copy
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from channels_app.choices import MediaType, Transport
from channels_app.models import CampaignRecipient, Channel, Interaction, Message, Tenant
from channels_app.services.campaigns import campaign_run_batch, campaign_transition
from channels_app.services.channels import channel_save
from channels_app.services.contacts import contact_identify
from channels_app.services.interactions import customer_message_receive, interaction_create, sessions_expire
from channels_app.services.options import option_set
from tests.conftest import _client_for, member

FIXTURES = Path(__file__).parent / "fixtures"
SPEC_REQUEST = json.loads((FIXTURES / "invite_to_chat_request.json").read_text())
SPEC_RESPONSE = json.loads((FIXTURES / "invite_to_chat_standard_response.json").read_text())
SPEC_TEXT = (
    "Dear John Smith, your bill of $129.99 is due on March 5 / 2020. "
    "Our agent will call you on March 7 / 2020 at 3:00 PM."
)
IW = "interaction-workspace"
CLIENT = "15556667777"
REPLY_BUTTONS = {"id": "RB1", "name": "Choice", "content_type": "reply_buttons", "body": "Pick one",
                 "structured": {"buttons": [{"id": "y", "title": "Yes"}, {"id": "n", "title": "No"}]}}
HELLO_TEMPLATE = {"id": "N1", "name": "Hello", "content_type": "notification", "body": "Hello {{1}}",
                  "structured": {"template": {"name": "hello"}, "parameters": {"1": "<$Contact.FirstName$>"}}}


def customer_writes(channel, text="Hi", message_id=None, client_id=CLIENT):
    message, _ = customer_message_receive(channel=channel, client_id=client_id, text=text,
                                          channel_message_id=message_id or f"m-{Message.objects.count()}")
    return message.interaction


def age_window(contact_id, hours):
    Interaction.objects.filter(contact_id=contact_id, last_customer_message_at__isnull=False).update(
        last_customer_message_at=timezone.now() - timedelta(hours=hours))


def end(interaction):
    Interaction.objects.filter(pk=interaction.pk).update(state="ended", ended_at=timezone.now())


@pytest.fixture
def sms_channel(tenant):
    return channel_save(
        channel=Channel(channel_id="channel-sms", name="SMS", tenant=tenant, media_type=MediaType.SMS,
                        transport=Transport.SIMULATOR, business_id="19251113333"),
        endpoints=["1:sms-chat"], inbound_route_by_call="1:sms-chat",
    )


@pytest.fixture
def second_whatsapp(tenant):
    return channel_save(
        channel=Channel(channel_id="channel-whatsapp-2", name="WhatsApp 2", tenant=tenant,
                        media_type=MediaType.WHATSAPP, transport=Transport.SIMULATOR, business_id="19251112221"),
        endpoints=["1:session-chat"], inbound_route_by_call="1:session-chat",
    )


@pytest.fixture
def other_tenant_session(db):
    tenant = Tenant.objects.create(id=2, name="Other")
    channel = channel_save(
        channel=Channel(channel_id="channel-other", name="Other", tenant=tenant, media_type=MediaType.WHATSAPP,
                        transport=Transport.SIMULATOR, business_id="19251114444"),
        endpoints=["2:session-chat"], inbound_route_by_call="2:session-chat",
    )
    return customer_writes(channel)


# --- 1. Done with a disposition ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_end_with_a_disposition_code_value(agent_api, channel, admin_client):
    session = customer_writes(channel)

    response = agent_api.post(f"/api/interactions/{session.pk}/end/", {"disposition": "Resolved"}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["state"], body["disposition"]) == ("ended", "Resolved")
    assert agent_api.get(f"/api/interactions/{session.pk}/").json()["disposition"] == "Resolved"
    page = admin_client.get(f"/admin/channels_app/interaction/{session.pk}/change/").content.decode()
    assert 'class="disposition">Resolved<' in page


@pytest.mark.django_db
def test_end_without_a_disposition_and_twice(agent_api, channel):
    session = customer_writes(channel)

    first = agent_api.post(f"/api/interactions/{session.pk}/end/", {}, format="json")
    second = agent_api.post(f"/api/interactions/{session.pk}/end/", {}, format="json")

    assert first.status_code == 200 and first.json()["disposition"] == ""
    assert second.status_code == 409


@pytest.mark.django_db
def test_end_with_a_value_that_is_not_a_disposition_code_is_400(agent_api, channel):
    session = customer_writes(channel)

    response = agent_api.post(f"/api/interactions/{session.pk}/end/", {"disposition": "Happy"}, format="json")

    assert response.status_code == 400
    assert "disposition" in response.json()
    assert Interaction.objects.get(pk=session.pk).state != "ended"


@pytest.mark.django_db
def test_end_needs_change_interaction_and_stops_at_the_tenant_wall(channel, agent_api, other_tenant_session):
    session = customer_writes(channel)
    administrator = _client_for(member("admin-only", "Administrator", tenants=[channel.tenant]))

    assert administrator.post(f"/api/interactions/{session.pk}/end/", {}, format="json").status_code == 403
    assert agent_api.post(f"/api/interactions/{other_tenant_session.pk}/end/", {},
                          format="json").status_code == 404
    assert Interaction.objects.get(pk=other_tenant_session.pk).state != "ended"


# --- 2. History ------------------------------------------------------------------------------------------------


def _three_sessions(channel, other_channel):
    first = customer_writes(channel, "first")
    end(first)
    elsewhere = customer_writes(other_channel, "on another channel")
    end(elsewhere)
    second = customer_writes(channel, "second")
    end(second)
    return first, elsewhere, second


@pytest.mark.django_db
def test_history_shows_transcript_interactions_count_earlier_sessions_of_the_channel(agent_api, channel,
                                                                                    second_whatsapp):
    first, _elsewhere, second = _three_sessions(channel, second_whatsapp)
    current = customer_writes(channel, "now")  # the default count: 1

    default = agent_api.get(f"/api/interactions/{current.pk}/history/").json()
    option_set(section=IW, name="whatsappsession.transcript-interactions-count", value=5)
    kept = agent_api.get(f"/api/interactions/{current.pk}/history/").json()  # "at the next interaction"
    end(current)
    later = customer_writes(channel, "later")
    more = agent_api.get(f"/api/interactions/{later.pk}/history/").json()

    assert [i["id"] for i in default["interactions"]] == [second.pk]
    assert default["interactions"][0]["messages"][0]["text"] == "second"
    assert kept["interactions"] == default["interactions"]
    assert more["transcript_interactions_count"] == 5
    assert [i["id"] for i in more["interactions"]] == [current.pk, second.pk, first.pk]  # newest first


@pytest.mark.django_db
def test_history_across_channels_with_show_cross_channel_messages(agent_api, channel, second_whatsapp,
                                                                  admin_client):
    option_set(section=IW, name="whatsappsession.transcript-interactions-count", value=10)
    option_set(section=IW, name="whatsappsession.show-cross-channel-messages", value=True)
    first, elsewhere, second = _three_sessions(channel, second_whatsapp)
    current = customer_writes(channel, "now")

    body = agent_api.get(f"/api/interactions/{current.pk}/history/").json()
    page = admin_client.get(f"/admin/channels_app/interaction/{current.pk}/change/").content.decode()

    assert body["show_cross_channel_messages"] is True
    assert [i["id"] for i in body["interactions"]] == [second.pk, elsewhere.pk, first.pk]
    assert [i["channel"] for i in body["interactions"]][1] == "channel-whatsapp-2"
    assert "on another channel" in page and page.index("first") < page.index("second") < page.index(">now<")


@pytest.mark.django_db
def test_show_cross_channel_messages_shows_other_whatsapp_channels_not_every_media(agent_api, channel,
                                                                                   second_whatsapp, sms_channel):
    # given: the contact wrote on WhatsApp, then by SMS (the same phone number: the same contact)
    option_set(section=IW, name="whatsappsession.transcript-interactions-count", value=10)
    option_set(section=IW, name="whatsappsession.show-cross-channel-messages", value=True)
    first, elsewhere, second = _three_sessions(channel, second_whatsapp)
    by_sms = customer_writes(sms_channel, "by SMS")
    end(by_sms)
    current = customer_writes(channel, "now")

    # when
    body = agent_api.get(f"/api/interactions/{current.pk}/history/").json()

    # then: "messages from multiple WhatsApp channels" (WhatsApp guide)
    assert by_sms.contact_id == current.contact_id
    assert [i["id"] for i in body["interactions"]] == [second.pk, elsewhere.pk, first.pk]


@pytest.mark.django_db
def test_the_transcript_marks_a_timestamp_out_of_chronological_order_in_red(channel, admin_client):
    # given: "late" was written before "on time" but arrived after it (its origin time is shown, in bold)
    now = timezone.now()
    on_time, _ = customer_message_receive(channel=channel, client_id=CLIENT, text="on time",
                                          channel_message_id="m1", origin_time=now - timedelta(seconds=5))
    late, _ = customer_message_receive(channel=channel, client_id=CLIENT, text="late", channel_message_id="m2",
                                       origin_time=now - timedelta(minutes=10))
    after, _ = customer_message_receive(channel=channel, client_id=CLIENT, text="after", channel_message_id="m3")

    # when
    page = admin_client.get(f"/admin/channels_app/interaction/{on_time.interaction_id}/change/").content.decode()

    # then: only the late message's timestamp is out of order
    def stamp(message):
        block = page[page.index(f'data-message-id="{message.pk}"'):]
        return block[:block.index("</b>" if message == late else "·")]

    assert 'class="timestamp out-of-order"' in stamp(late) and "color: #c00" in stamp(late)
    assert "out-of-order" not in stamp(on_time) and "out-of-order" not in stamp(after)
    assert page.count("out-of-order") == 1


@pytest.mark.django_db
def test_history_of_another_tenants_interaction_is_404(agent_api, other_tenant_session):
    assert agent_api.get(f"/api/interactions/{other_tenant_session.pk}/history/").status_code == 404


# --- 3. New outbound sessions ------------------------------------------------------------------------------------


def sessions_url(interaction):
    return f"/api/interactions/{interaction.pk}/sessions/"


@pytest.mark.django_db
def test_a_new_session_with_a_past_contact_inside_the_window(agent_api, channel):
    past = customer_writes(channel)
    end(past)

    response = agent_api.post(sessions_url(past), {"channel": channel.channel_id, "text": "About your bill"},
                              format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["type"], body["subtype"], body["state"], body["sent_as"]) == (
        "Outbound", "OutboundNew", "active", "text")
    assert (body["client_id"], body["contact"], body["queue"]) == (CLIENT, past.contact_id, past.queue)
    assert body["user_data"]["OriginalInteractionId"] == past.pk
    assert body["messages"][0]["text"] == "About your bill"
    assert body["window_closes_at"] is not None


@pytest.mark.django_db
def test_outside_the_window_only_a_notification_opens_a_session(agent_api, staff_api, channel):
    assert staff_api.post("/api/standard-responses/", HELLO_TEMPLATE, format="json").status_code == 201
    assert staff_api.post("/api/standard-responses/", REPLY_BUTTONS, format="json").status_code == 201
    past = customer_writes(channel)
    end(past)
    age_window(past.contact_id, hours=25)

    text = agent_api.post(sessions_url(past), {"channel": channel.channel_id, "text": "Hi"}, format="json")
    buttons = agent_api.post(sessions_url(past), {"channel": channel.channel_id, "standard_response_id": "RB1"},
                             format="json")
    template = agent_api.post(sessions_url(past), {"channel": channel.channel_id, "standard_response_id": "N1",
                                                   "fields": {"Contact": {"FirstName": "Jo"}}}, format="json")

    assert (text.status_code, buttons.status_code) == (409, 409)
    assert template.status_code == 201, template.json()
    assert template.json()["sent_as"] == "notification"
    assert template.json()["messages"][0]["text"] == "Hello Jo"
    assert Interaction.objects.count() == 2


@pytest.mark.django_db
def test_a_session_on_another_media_needs_the_config_and_the_permission(agent_api, staff_api, channel, sms_channel):
    current = customer_writes(channel)
    body = {"channel": "channel-sms", "text": "Your code is 1234"}

    not_configured = staff_api.post(sessions_url(current), body, format="json")
    option_set(section=IW, name="whatsappsession.outbound-session-config", value=json.dumps(
        {"channels": [{"server-name": "DigitalMessagingServer", "channel-name": "channel-sms",
                       "business-id": "19251113333"}]}))  # takes effect immediately
    agent = agent_api.post(sessions_url(current), body, format="json")
    senior = staff_api.post(sessions_url(current), body, format="json")

    assert not_configured.status_code == 400 and "channel" in not_configured.json()
    assert agent.status_code == 403 and "whatsapp_can_create_new_session_from_other_media" in agent.json()["detail"]
    assert senior.status_code == 201, senior.json()
    created = senior.json()
    assert (created["channel"], created["client_id"], created["queue"]) == ("channel-sms", CLIENT, "1:sms-chat")


@pytest.mark.django_db
def test_the_attached_outbound_session_config_comes_before_the_option(staff_api, channel, second_whatsapp):
    # given: the spec's Business Process sample, attached to the interaction
    current = customer_writes(channel)
    Interaction.objects.filter(pk=current.pk).update(user_data={**current.user_data, "_umsOutboundSessionConfig": {
        "1": {"MediaType": "whatsappsession", "_umsServer": "DigitalMessagingServer",
              "_umsChannel": "channel-whatsapp-2", "_umsBusinessId": "19251112221"}}})
    customer_writes(second_whatsapp)  # the customer wrote there too: its window is open

    response = staff_api.post(sessions_url(current), {"channel": "channel-whatsapp-2", "text": "Hello"},
                              format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["user_data"]["_umsOutboundSessionConfig"]["1"]["_umsChannel"] == "channel-whatsapp-2"


@pytest.mark.django_db
def test_new_session_errors(agent_api, channel, other_tenant_session, staff_api):
    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    current = customer_writes(channel)

    foreign_interaction = agent_api.post(sessions_url(other_tenant_session), {"channel": "channel-other",
                                                                              "text": "x"}, format="json")
    foreign_channel = agent_api.post(sessions_url(current), {"channel": "channel-other", "text": "x"},
                                     format="json")
    no_content = agent_api.post(sessions_url(current), {"channel": channel.channel_id}, format="json")
    missing_code = agent_api.post(sessions_url(current), {"channel": channel.channel_id,
                                                         "standard_response_id": SPEC_RESPONSE["id"]}, format="json")

    assert foreign_interaction.status_code == 404
    assert foreign_channel.status_code == 400 and "channel" in foreign_channel.json()
    assert no_content.status_code == 400
    assert missing_code.status_code == 400
    assert "Contact.FirstName has no value" in missing_code.json()["fields"]
    assert Interaction.objects.filter(channel=channel).count() == 1


# --- 4. One rendering rule, one window rule ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_standard_response_renders_the_same_through_invite_to_chat_and_an_agent(agent_api, staff_api, channel):
    # given: the spec's InviteToChat request and standard response; the contact keeps its fields
    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    invited = agent_api.post("/esp", SPEC_REQUEST, format="json")
    assert invited.status_code == 200, invited.json()
    session = Interaction.objects.get(pk=invited.json()["Result"]["_umsChatSessionId"])
    customer_writes(channel)  # the customer answers: the window is open

    # when: an agent sends the same response with only the custom properties
    response = agent_api.post(f"/api/interactions/{session.pk}/messages/", {
        "standard_response_id": SPEC_RESPONSE["id"],
        "fields": {"CustomProperties": SPEC_REQUEST["Parameters"]["CustomProperties"]},
    }, format="json")

    # then: the Contact codes come from the contact record, as through InviteToChat
    assert response.status_code == 202, response.json()
    assert Message.objects.filter(interaction=session, direction="outbound", text=SPEC_TEXT).count() == 2
    assert response.json()["text"] == SPEC_TEXT


@pytest.mark.django_db
def test_an_agent_standard_response_with_a_code_without_value_is_400_naming_it(agent_api, staff_api, channel):
    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    session = customer_writes(channel)

    response = agent_api.post(f"/api/interactions/{session.pk}/messages/",
                              {"standard_response_id": SPEC_RESPONSE["id"]}, format="json")

    assert response.status_code == 400
    assert "Contact.FirstName has no value" in response.json()["fields"]
    assert not Message.objects.filter(direction="outbound").exists()


@pytest.mark.django_db
def test_invite_to_chat_refuses_reply_buttons_to_a_customer_whose_window_is_closed(agent_api, staff_api, channel):
    assert staff_api.post("/api/standard-responses/", REPLY_BUTTONS, format="json").status_code == 201
    request = copy.deepcopy(SPEC_REQUEST)
    request["Parameters"]["StandardResponseId"] = "RB1"

    never_wrote = agent_api.post("/esp", request, format="json")
    session = customer_writes(channel)
    end(session)
    wrote = agent_api.post("/esp", request, format="json")

    assert never_wrote.status_code == 422 and never_wrote.json()["Error"]["Code"] == 920
    assert "24 hours" in never_wrote.json()["Error"]["Message"]
    assert wrote.status_code == 200, wrote.json()


@pytest.mark.django_db
def test_a_campaign_refuses_reply_buttons_to_customers_whose_window_is_closed(staff_api, channel):
    assert staff_api.post("/api/standard-responses/", REPLY_BUTTONS, format="json").status_code == 201
    channel.transport, channel.webhook_url = Transport.SIMULATOR, ""
    channel.save()
    customer_writes(channel, client_id="15550000001")
    created = staff_api.post("/api/campaigns/", {
        "name": "Buttons", "channel": channel.channel_id, "standard_response": "RB1",
        "recipients": [{"client_id": "15550000001"}, {"client_id": "15550000002"}]}, format="json")
    assert created.status_code == 201, created.json()
    campaign_transition(campaign_id=created.json()["id"], action="start")

    campaign_run_batch(campaign_id=created.json()["id"])

    outcomes = dict(CampaignRecipient.objects.values_list("client_id", "error"))
    assert outcomes["15550000001"] == ""
    assert "24 hours" in outcomes["15550000002"]


@pytest.mark.django_db
def test_the_interaction_shows_when_its_window_closes(agent_api, channel):
    session = customer_writes(channel)

    body = agent_api.get(f"/api/interactions/{session.pk}/").json()

    closes_at = Interaction.objects.get(pk=session.pk).last_customer_message_at + timedelta(hours=24)
    assert body["window_closes_at"].replace("Z", "+00:00") == closes_at.isoformat()


# --- 5. Options take effect as the catalog says ------------------------------------------------------------------


@pytest.mark.django_db
def test_an_at_the_next_interaction_option_keeps_its_value_for_an_open_session(agent_api, channel):
    # given: whatsappsession.max-text-message-size ("At the next interaction")
    open_session = customer_writes(channel, client_id="15550000001")
    option_set(section=IW, name="whatsappsession.max-text-message-size", value=4)
    next_session = customer_writes(channel, client_id="15550000002")

    kept = agent_api.post(f"/api/interactions/{open_session.pk}/messages/", {"text": "Hello"}, format="json")
    new = agent_api.post(f"/api/interactions/{next_session.pk}/messages/", {"text": "Hello"}, format="json")

    assert kept.status_code == 202
    assert new.status_code == 400


@pytest.mark.django_db
def test_a_when_the_next_chat_session_is_created_option_keeps_its_value_for_an_open_session(channel):
    # given: session-shutdown-timeout ("When the next chat session is created"), 1800 s for the first session
    first = customer_writes(channel, client_id="15550000001")
    option_set(section="dms", name="session-shutdown-timeout", value=60)
    second = customer_writes(channel, client_id="15550000002")
    Interaction.objects.update(last_activity_at=timezone.now() - timedelta(seconds=120))

    sessions_expire()

    assert Interaction.objects.get(pk=first.pk).state != "ended"
    assert Interaction.objects.get(pk=second.pk).state == "ended"


@pytest.mark.django_db
def test_an_immediately_option_applies_to_open_sessions(staff_api, channel, sms_channel):
    # given: whatsappsession.outbound-session-config ("Immediately"), set after the session was created
    current = customer_writes(channel)
    body = {"channel": "channel-sms", "text": "Hi"}
    before = staff_api.post(sessions_url(current), body, format="json")

    option_set(section=IW, name="whatsappsession.outbound-session-config",
               value=json.dumps({"channels": [{"channel-name": "channel-sms"}]}))
    after = staff_api.post(sessions_url(current), body, format="json")

    assert before.status_code == 400
    assert after.status_code == 201, after.json()


@pytest.mark.django_db
def test_sessions_created_before_values_were_kept_read_the_current_values(agent_api, channel):
    contact = contact_identify(channel=channel, client_id=CLIENT)
    legacy = interaction_create(channel=channel, contact=contact, client_id=CLIENT, queue="1:session-chat",
                                outbound=False, user_data={})
    Interaction.objects.filter(pk=legacy.pk).update(session_options={}, last_customer_message_at=timezone.now())
    option_set(section=IW, name="whatsappsession.max-text-message-size", value=4)

    response = agent_api.post(f"/api/interactions/{legacy.pk}/messages/", {"text": "Hello"}, format="json")

    assert response.status_code == 400


@pytest.mark.django_db
def test_the_new_doors_are_in_the_openapi_document(staff_api):
    schema = staff_api.get("/api/schema/?format=json").json()

    for path in ("/api/interactions/{id}/end/", "/api/interactions/{id}/history/",
                 "/api/interactions/{id}/sessions/"):
        operation = next(iter(schema["paths"][path].values()))
        assert operation["summary"]
    sessions = schema["paths"]["/api/interactions/{id}/sessions/"]["post"]
    assert {"201", "403", "409"} <= set(sessions["responses"])
    assert sessions["requestBody"]["content"]["application/json"].get("examples")
    assert "sent_as" in json.dumps(schema["components"]["schemas"]["AgentMessageResult"])
    assert "SMS" in schema["paths"]["/esp"]["post"]["description"]



# --- Replacing the file of a notification's or reply buttons' header (WhatsApp guide, "Sending attachments") --


def _upload(api, name: str, content: bytes) -> int:
    import io

    upload = io.BytesIO(content)
    upload.name = name
    response = api.post("/api/attachments/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF_BYTES = b"%PDF-1.4\n" + b"0" * 64


@pytest.fixture
def header_responses(staff_api, channel):
    """A rich media notification and reply buttons whose header is an image (the library's)."""
    image = _upload(staff_api, "catalogue.png", PNG_BYTES)
    for response in (
        {"id": "RM1", "name": "Promo", "content_type": "rich_media", "body": "Hello {{1}}",
         "structured": {"template": {"name": "promo"}, "parameters": {"1": "you"},
                        "header": {"type": "image", "attachment": image}}},
        {"id": "RB2", "name": "Pick", "content_type": "reply_buttons", "body": "Which one?",
         "structured": {"header": {"type": "image", "attachment": image},
                        "buttons": [{"id": "a", "title": "A"}, {"id": "b", "title": "B"}]}},
    ):
        assert staff_api.post("/api/standard-responses/", response, format="json").status_code == 201
    return image


@pytest.mark.django_db
@pytest.mark.parametrize(("response_id", "permission"), [
    ("RM1", "whatsapp_can_change_attachments_in_notification"),
    ("RB2", "whatsapp_can_change_attachments_in_reply_button"),
])
def test_replacing_a_header_file_needs_its_change_attachments_permission(agent_api, staff_api, channel,
                                                                         header_responses, response_id, permission):
    # given: a WhatsApp agent (no change-attachments permission) and a senior agent (both)
    session = customer_writes(channel)
    mine = _upload(staff_api, "my-photo.png", PNG_BYTES)
    body = {"standard_response_id": response_id, "header_attachment": mine}

    # when
    refused = agent_api.post(f"/api/interactions/{session.pk}/messages/", body, format="json")
    unchanged = agent_api.post(f"/api/interactions/{session.pk}/messages/", {"standard_response_id": response_id},
                               format="json")
    replaced = staff_api.post(f"/api/interactions/{session.pk}/messages/", body, format="json")

    # then
    assert refused.status_code == 403 and permission in refused.content.decode()
    assert unchanged.status_code == 202, unchanged.json()
    assert Message.objects.get(pk=unchanged.json()["id"]).payload["header"]["attachment"] == header_responses
    assert replaced.status_code == 202, replaced.json()
    header = Message.objects.get(pk=replaced.json()["id"]).payload["header"]
    assert (header["type"], header["attachment"], header["fileName"]) == ("image", mine, "my-photo.png")
    assert Message.objects.filter(interaction=session, direction="outbound").count() == 2  # none for the refused


@pytest.mark.django_db
def test_a_header_file_is_replaced_by_a_file_of_its_kind_on_a_file_header_only(staff_api, channel, header_responses):
    session = customer_writes(channel)
    document = _upload(staff_api, "terms.pdf", PDF_BYTES)
    photo = _upload(staff_api, "photo.png", PNG_BYTES)
    assert staff_api.post("/api/standard-responses/", {"id": "T1", "name": "Hi", "content_type": "text",
                                                       "body": "Hi"}, format="json").status_code == 201

    def send(body):
        return staff_api.post(f"/api/interactions/{session.pk}/messages/", body, format="json")

    wrong_kind = send({"standard_response_id": "RM1", "header_attachment": document})
    no_file_header = send({"standard_response_id": "T1", "header_attachment": photo})
    without_response = send({"text": "Hi", "header_attachment": photo})
    unknown = send({"standard_response_id": "RM1", "header_attachment": 999999})

    for answer in (wrong_kind, no_file_header, without_response, unknown):
        assert answer.status_code == 400 and "header_attachment" in answer.json(), answer.content
    assert "image" in str(wrong_kind.json()["header_attachment"])
    assert not Message.objects.filter(interaction=session, direction="outbound").exists()


@pytest.mark.django_db
def test_a_new_session_replacing_a_header_file_needs_the_permission_too(agent_api, staff_api, channel,
                                                                        header_responses):
    session = customer_writes(channel)
    mine = _upload(staff_api, "my-photo.png", PNG_BYTES)
    body = {"channel": channel.channel_id, "standard_response_id": "RM1", "header_attachment": mine}

    refused = agent_api.post(f"/api/interactions/{session.pk}/sessions/", body, format="json")
    started = staff_api.post(f"/api/interactions/{session.pk}/sessions/", body, format="json")

    assert refused.status_code == 403 and "whatsapp_can_change_attachments_in_notification" in refused.content.decode()
    assert started.status_code == 201, started.json()
    first = Message.objects.get(interaction_id=started.json()["id"])
    assert first.payload["header"]["attachment"] == mine
