"""`POST /esp`: ChatService.InviteToChat (dms-invite-to-chat.txt) and the ESP
error codes of the WhatsApp guide ("Error responses") as API.md maps them.

Celery is not involved here: in these (non-transactional) tests the
`on_commit` publish to the broker never fires, and where the hand-over
matters the test calls the delivery service the Celery task calls."""

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from channels_app.choices import MediaType, Transport
from channels_app.esp.dispatcher import HANDLERS
from channels_app.models import Channel, Contact, Delivery, Interaction, Message, Tenant
from channels_app.options_catalog import CHAT_SERVER
from channels_app.services.channels import channel_save
from channels_app.services.deliveries import delivery_attempt
from channels_app.services.options import option_set
from tests.factories import ChannelFactory

FIXTURES = Path(__file__).parent / "fixtures"
SPEC_REQUEST = json.loads((FIXTURES / "invite_to_chat_request.json").read_text())
SPEC_RESPONSE = json.loads((FIXTURES / "invite_to_chat_standard_response.json").read_text())
SPEC_TEXT = (
    "Dear John Smith, your bill of $129.99 is due on March 5 / 2020. "
    "Our agent will call you on March 7 / 2020 at 3:00 PM."
)


def spec_request(**changes) -> dict:
    """The spec's sample request; `Parameters=`/`UserData=` dicts are merged, None removes a key."""
    request = copy.deepcopy(SPEC_REQUEST)
    for part, values in changes.items():
        if isinstance(values, dict) and isinstance(request.get(part), dict):
            for key, value in values.items():
                if value is None:
                    request[part].pop(key, None)
                else:
                    request[part][key] = value
        elif values is None:
            request.pop(part, None)
        else:
            request[part] = values
    return request


def post_esp(api, body):
    return api.post("/esp", body, format="json")


def rows_written() -> dict:
    return {
        "interactions": Interaction.objects.count(),
        "contacts": Contact.objects.count(),
        "messages": Message.objects.count(),
        "deliveries": Delivery.objects.count(),
    }


NOTHING_WRITTEN = {"interactions": 0, "contacts": 0, "messages": 0, "deliveries": 0}


@pytest.fixture
def spec_response(staff_api):
    response = staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def simulator_channel(tenant):
    return ChannelFactory(
        channel_id="channel-ghub-simulator",
        name="Simulator",
        tenant=tenant,
        media_type=MediaType.WHATSAPP,
        transport=Transport.SIMULATOR,
        business_id="19251112222",
        endpoints=["1:session-chat", "1:session-WA-sendSR"],
        inbound_route_by_call="1:session-chat",
    )


@pytest.fixture
def receiver_url():
    """A third party on 127.0.0.1 that accepts every webhook (200 {"messageId": "ext-1"})."""

    class Accept(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = b'{"messageId": "ext-1"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def hand_over(message: Message):
    """What the Celery task `channels_app.deliver` does with the message's delivery."""
    return delivery_attempt(delivery_id=message.delivery.pk)


@pytest.fixture
def abc_channel(tenant):
    return ChannelFactory(
        channel_id="channel-abc-hub-sim",
        name="Apple Messages for Business",
        tenant=tenant,
        media_type=MediaType.ABC,
        transport=Transport.SIMULATOR,
        business_id="a5d1c5e0-0000-4000-8000-000000000001",
        endpoints=["1:session-chat"],
        inbound_route_by_call="1:session-chat",
    )


# --- the spec's sample request -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_spec_sample_request_creates_an_outbound_interaction_and_queues_the_notification(
    agent_api, channel, spec_response
):
    # when
    response = post_esp(agent_api, SPEC_REQUEST)

    # then
    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) == {"ReferenceId", "Result"}
    assert body["ReferenceId"] == 9
    session_id = body["Result"]["_umsChatSessionId"]
    assert isinstance(session_id, str) and session_id

    interaction = Interaction.objects.get(pk=session_id)
    assert interaction.channel == channel
    assert (interaction.type, interaction.subtype) == ("Outbound", "OutboundNew")
    assert interaction.queue == "1:session-chat"  # the channel's inbound-route-by-call
    assert interaction.state != "ended"
    assert interaction.client_id == "15556667777"
    assert interaction.user_data["PhoneNumber"] == "15556667777"
    assert interaction.user_data["GCTI_Chat_SubmitAsOutbound"] == "true"
    assert interaction.user_data["_umsChannel"] == "channel-whatsapp-REAL"
    assert interaction.user_data["_umsMediaType"] == "whatsapp"
    assert interaction.user_data["_umsMediaTypeChat"] == "whatsappsession"

    contact = interaction.contact
    assert contact.phone_number == "+15556667777"
    assert (contact.first_name, contact.last_name) == ("John", "Smith")
    assert contact.attributes["MyFC_BillAmount"] == "$129.99"

    [message] = Message.objects.filter(interaction=interaction)
    assert message.direction == "outbound"
    assert message.status == "queued"
    assert message.payload["text"] == SPEC_TEXT
    assert message.text == SPEC_TEXT
    assert message.payload["template"]["name"] == "bill_reminder"
    assert message.delivery.state == "pending"  # handed to the worker after commit


@pytest.mark.django_db
def test_staff_tokens_may_call_esp_too(staff_api, channel, spec_response):
    assert post_esp(staff_api, SPEC_REQUEST).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "custom_properties",
    [
        pytest.param(SPEC_REQUEST["Parameters"]["CustomProperties"], id="OtherProperty-KVList"),
        pytest.param(SPEC_REQUEST["Parameters"]["CustomProperties"]["OtherProperty"], id="list-of-pairs"),
        pytest.param({"CustomProp_Date": "March 7 / 2020", "CustomProp Time": "3:00 PM"}, id="plain-object"),
    ],
)
def test_custom_properties_may_be_given_in_every_documented_shape(
    agent_api, channel, spec_response, custom_properties
):
    response = post_esp(agent_api, spec_request(Parameters={"CustomProperties": custom_properties}))

    assert response.status_code == 200, response.json()
    assert Message.objects.get().payload["text"] == SPEC_TEXT


@pytest.mark.django_db
def test_without_submit_as_outbound_the_interaction_is_inbound_and_keeps_every_user_data(
    agent_api, channel, spec_response
):
    # given
    request = spec_request(
        UserData={"GCTI_Chat_SubmitAsOutbound": None, "LastCalledAgent_EmployeeID": "E-1234", "Segment": "gold"}
    )

    # when
    response = post_esp(agent_api, request)

    # then
    assert response.status_code == 200, response.json()
    interaction = Interaction.objects.get(pk=response.json()["Result"]["_umsChatSessionId"])
    assert (interaction.type, interaction.subtype) == ("Inbound", "InboundNew")
    assert interaction.user_data["LastCalledAgent_EmployeeID"] == "E-1234"
    assert interaction.user_data["Segment"] == "gold"
    assert "GCTI_Chat_SubmitAsOutbound" not in interaction.user_data


@pytest.mark.django_db
def test_submit_as_outbound_false_is_inbound(agent_api, channel, spec_response):
    response = post_esp(agent_api, spec_request(UserData={"GCTI_Chat_SubmitAsOutbound": "false"}))

    assert response.status_code == 200, response.json()
    assert Interaction.objects.get().type == "Inbound"


@pytest.mark.django_db
def test_an_explicit_chat_queue_key_places_the_interaction_in_that_queue(agent_api, channel, spec_response):
    channel_save(channel=channel, endpoints=["1:session-chat", "1:session-WA-sendSR"])

    response = post_esp(agent_api, spec_request(Parameters={"ChatQueueKey": "1:session-WA-sendSR"}))

    assert response.status_code == 200, response.json()
    assert Interaction.objects.get().queue == "1:session-WA-sendSR"


@pytest.mark.django_db
def test_without_a_standard_response_the_session_is_created_and_nothing_is_sent(agent_api, channel):
    response = post_esp(agent_api, spec_request(Parameters={"StandardResponseId": None}))

    assert response.status_code == 200, response.json()
    assert Interaction.objects.get(pk=response.json()["Result"]["_umsChatSessionId"])
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_the_business_id_may_be_given_when_it_is_the_channels(agent_api, channel, spec_response):
    response = post_esp(agent_api, spec_request(Parameters={"_umsBusinessId": "19251112222"}))

    assert response.status_code == 200, response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("app_type", ["171", 171])
def test_app_type_171_replaces_app_name(agent_api, channel, spec_response, app_type):
    response = post_esp(agent_api, spec_request(AppName=None, AppType=app_type))

    assert response.status_code == 200, response.json()


@pytest.mark.django_db
def test_terminate_session_flag_ends_the_session_once_the_message_is_handed_over(
    agent_api, channel, spec_response, receiver_url
):
    # given
    Channel.objects.filter(pk=channel.pk).update(webhook_url=receiver_url)
    channel_save(channel=Channel.objects.get(pk=channel.pk), endpoints=["1:session-chat", "1:session-WA-sendSR"])
    request = spec_request(Parameters={"TerminateSessionFlag": "true", "ChatQueueKey": "1:session-WA-sendSR"})
    response = post_esp(agent_api, request)
    assert response.status_code == 200, response.json()
    interaction = Interaction.objects.get(pk=response.json()["Result"]["_umsChatSessionId"])
    message = Message.objects.get(interaction=interaction)
    assert interaction.state != "ended"  # not before the message has left

    # when
    hand_over(message)

    # then
    interaction.refresh_from_db()
    message.refresh_from_db()
    assert (message.status, message.external_id) == ("sent", "ext-1")
    assert interaction.state == "ended"
    assert interaction.ended_at is not None
    assert interaction.end_reason == "TerminateSessionFlag"


@pytest.mark.django_db
def test_without_terminate_session_flag_the_session_stays_open_after_the_hand_over(
    agent_api, channel, spec_response, receiver_url
):
    Channel.objects.filter(pk=channel.pk).update(webhook_url=receiver_url)
    response = post_esp(agent_api, SPEC_REQUEST)
    message = Message.objects.get()

    hand_over(message)

    assert Message.objects.get().status == "sent"
    assert Interaction.objects.get(pk=response.json()["Result"]["_umsChatSessionId"]).state != "ended"


# --- _umsChannel ------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_channel_may_be_omitted_when_exactly_one_is_configured(agent_api, channel, spec_response):
    response = post_esp(agent_api, spec_request(Parameters={"_umsChannel": None}))

    assert response.status_code == 200, response.json()
    assert Interaction.objects.get().channel == channel


@pytest.mark.django_db
def test_omitting_the_channel_while_two_are_configured_is_904(agent_api, channel, simulator_channel, spec_response):
    response = post_esp(agent_api, spec_request(Parameters={"_umsChannel": None}))

    assert response.status_code == 400
    assert response.json()["ReferenceId"] == 9
    assert response.json()["Error"]["Code"] == 904
    assert "_umsChannel" in response.json()["Error"]["Message"]
    assert rows_written() == NOTHING_WRITTEN


# --- error codes --------------------------------------------------------------------------------------------------


def _error(response) -> tuple[int, int, str, object]:
    body = response.json()
    assert set(body) == {"ReferenceId", "Error"}, body
    return response.status_code, body["Error"]["Code"], body["Error"]["Message"], body["ReferenceId"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "request_changes",
    [
        pytest.param({"Service": None}, id="no-Service"),
        pytest.param({"Method": None}, id="no-Method"),
        pytest.param({"Method": ""}, id="empty-Method"),
    ],
)
def test_service_or_method_missing_is_701(agent_api, channel, spec_response, request_changes):
    response = post_esp(agent_api, spec_request(**request_changes))

    status, code, message, reference_id = _error(response)
    assert (status, code, reference_id) == (400, 701, 9)
    assert message == "Request is invalid: Service or Method name was not specified"
    assert rows_written() == NOTHING_WRITTEN


@pytest.mark.django_db
@pytest.mark.parametrize(
    "request_changes",
    [
        pytest.param({"Method": ["InviteToChat"]}, id="Method-a-list"),  # was a 500 (found by bench/fuzz.py)
        pytest.param({"Service": {"ChatService": 1}}, id="Service-an-object"),
        pytest.param({"Service": 7}, id="Service-a-number"),
    ],
)
def test_service_or_method_not_a_string_is_701(agent_api, channel, spec_response, request_changes):
    response = post_esp(agent_api, spec_request(**request_changes))

    status, code, message, reference_id = _error(response)
    assert (status, code, reference_id) == (400, 701, 9)
    assert "Service and Method must be strings" in message
    assert rows_written() == NOTHING_WRITTEN


@pytest.mark.django_db
@pytest.mark.parametrize("reference_id", ["9", 9.5, True, {}, [9]])
def test_a_reference_id_that_is_not_an_integer_is_904_and_not_echoed(agent_api, channel, spec_response, reference_id):
    response = post_esp(agent_api, spec_request(ReferenceId=reference_id))

    status, code, message, echoed = _error(response)
    assert (status, code, echoed) == (400, 904, None)
    assert "ReferenceId" in message
    assert rows_written() == NOTHING_WRITTEN


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("request_changes", "named"),
    [
        pytest.param({"Service": "NoSuchService"}, "NoSuchService", id="unknown-service"),
        pytest.param({"Method": "InviteToParty"}, "InviteToParty", id="unknown-method"),
        pytest.param({"Parameters": {"_umsChannel": "channel-nope"}}, "channel-nope", id="unknown-channel"),
        pytest.param({"Parameters": {"StandardResponseId": "000NOPE"}}, "000NOPE", id="unknown-standard-response"),
    ],
)
def test_unknown_things_are_902(agent_api, channel, spec_response, request_changes, named):
    response = post_esp(agent_api, spec_request(**request_changes))

    status, code, message, reference_id = _error(response)
    assert (status, code, reference_id) == (404, 902, 9)
    assert "unknown" in message
    assert named in message
    assert rows_written() == NOTHING_WRITTEN


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("request_changes", "parameter"),
    [
        pytest.param({"Parameters": {"_umsClientId": None}}, "_umsClientId", id="no-client-id"),
        pytest.param({"Parameters": {"_umsClientId": ""}}, "_umsClientId", id="empty-client-id"),
        pytest.param({"Parameters": {"_umsClientId": ["1555"]}}, "_umsClientId", id="client-id-not-a-string"),
        pytest.param({"Parameters": {"_umsBusinessId": "15550001111"}}, "_umsBusinessId", id="wrong-business-id"),
        pytest.param({"Parameters": {"Contact": "John Smith"}}, "Contact", id="Contact-not-an-object"),
        pytest.param({"Parameters": {"Contact": ["John"]}}, "Contact", id="Contact-a-list"),
        pytest.param({"Parameters": {"Agent": "Ann"}}, "Agent", id="Agent-not-an-object"),
        pytest.param({"Parameters": {"ChatQueueKey": "7:session-chat"}}, "ChatQueueKey", id="queue-unknown-tenant"),
        pytest.param({"Parameters": {"ChatQueueKey": "session-chat"}}, "ChatQueueKey", id="queue-bad-format"),
        pytest.param({"Parameters": {"ChatQueueKey": "1:two words"}}, "ChatQueueKey", id="queue-with-space"),
        pytest.param({"Parameters": {"TerminateSessionFlag": "maybe"}}, "TerminateSessionFlag", id="flag-maybe"),
        pytest.param({"UserData": {"GCTI_Chat_SubmitAsOutbound": "perhaps"}}, "GCTI_Chat_SubmitAsOutbound",
                     id="submit-as-outbound-perhaps"),
        pytest.param({"Parameters": "not a KVList"}, "Parameters", id="Parameters-not-an-object"),
        pytest.param({"UserData": ["PhoneNumber"]}, "UserData", id="UserData-not-an-object"),
        pytest.param({"AppName": None}, "AppName", id="no-AppName-nor-AppType"),
        pytest.param({"AppName": None, "AppType": "172"}, "AppType", id="AppType-not-171"),
        pytest.param({"AppName": 91}, "AppName", id="AppName-a-number"),
        pytest.param({"AppName": None, "AppType": [171]}, "AppType", id="AppType-a-list"),
    ],
)
def test_missing_or_incorrect_parameters_are_904_naming_the_parameter(
    agent_api, channel, spec_response, request_changes, parameter
):
    response = post_esp(agent_api, spec_request(**request_changes))

    status, code, message, reference_id = _error(response)
    assert (status, code, reference_id) == (400, 904, 9)
    assert parameter in message
    assert rows_written() == NOTHING_WRITTEN


@pytest.mark.django_db
def test_a_field_code_without_a_value_is_920_and_writes_nothing(agent_api, channel, spec_response):
    # given: the standard response needs Contact.MyFC_Date, the request does not give it
    contact = dict(SPEC_REQUEST["Parameters"]["Contact"])
    del contact["MyFC_Date"]

    # when
    response = post_esp(agent_api, spec_request(Parameters={"Contact": contact}))

    # then
    status, code, message, reference_id = _error(response)
    assert (status, code, reference_id) == (422, 920, 9)
    assert "Contact.MyFC_Date" in message
    assert rows_written() == NOTHING_WRITTEN


@pytest.mark.django_db
def test_an_apple_standard_response_on_a_whatsapp_channel_is_refused(agent_api, staff_api, channel):
    # given: dms-invite-to-chat lists, for WhatsApp, plain text and notifications only
    created = staff_api.post(
        "/api/standard-responses/",
        {"name": "Apple menu", "content_type": "abc_quick_replies",
         "body": "Hi <$Contact.FirstName$>, how can we help?",
         "structured": {"items": [{"identifier": "bill", "title": "My bill"},
                                  {"identifier": "agent", "title": "Talk to an agent"}]}},
        format="json",
    )
    assert created.status_code == 201, created.json()

    # when
    response = post_esp(agent_api, spec_request(Parameters={"StandardResponseId": str(created.json()["id"])}))

    # then
    status, code, message, _ = _error(response)
    assert (status, code) == (422, 920)
    assert "StandardResponseId" in message or "abc_quick_replies" in message
    assert rows_written() == NOTHING_WRITTEN


@pytest.mark.django_db
def test_a_disabled_channel_is_901(agent_api, channel, spec_response):
    # given
    Channel.objects.filter(pk=channel.pk).update(enabled=False)

    # when
    response = post_esp(agent_api, SPEC_REQUEST)

    # then
    status, code, message, reference_id = _error(response)
    assert (status, code, reference_id) == (502, 901, 9)
    assert "channel-whatsapp-REAL" in message
    assert rows_written() == NOTHING_WRITTEN


@pytest.mark.django_db
def test_anything_else_is_the_generic_900(agent_api, channel, monkeypatch):
    # There is no way to make a real handler fail unexpectedly without breaking the database, so the
    # test registers its own method through the dispatcher's registry (no ORM or transport is faked).
    def explode(parameters, user_data, context):
        raise RuntimeError("boom")

    monkeypatch.setitem(HANDLERS, ("TestService", "Explode"), explode)

    response = post_esp(agent_api, {"ReferenceId": 3, "AppName": "DMS 91", "Service": "TestService",
                                    "Method": "Explode", "Parameters": {}})

    status, code, message, reference_id = _error(response)
    assert (status, code, reference_id) == (500, 900, 3)
    assert "boom" not in message  # internals are logged, not returned


@pytest.mark.django_db
def test_an_over_long_client_id_is_904(agent_api, channel, spec_response):
    response = post_esp(agent_api, spec_request(Parameters={"_umsClientId": "1" * 250}, UserData={"PhoneNumber": None}))

    status, code, message, _ = _error(response)
    assert (status, code) == (400, 904)
    assert "_umsClientId" in message


@pytest.mark.django_db
def test_a_body_larger_than_xml_request_max_size_is_904(agent_api, channel, spec_response):
    # given
    option_set(section=CHAT_SERVER, name="xml-request-max-size", value="1000")
    request = spec_request(Parameters={"Contact": {**SPEC_REQUEST["Parameters"]["Contact"], "Notes": "x" * 1000}})
    assert len(json.dumps(request)) > 1000

    # when
    response = post_esp(agent_api, request)

    # then
    status, code, message, _ = _error(response)
    assert (status, code) == (400, 904)
    assert "xml-request-max-size" in message
    assert rows_written() == NOTHING_WRITTEN


@pytest.mark.django_db
def test_a_body_within_xml_request_max_size_is_accepted(agent_api, channel, spec_response):
    option_set(section=CHAT_SERVER, name="xml-request-max-size", value="1000")
    request = spec_request(Parameters={"CustomProperties": None, "StandardResponseId": None, "Contact": None})
    assert len(json.dumps(request)) < 1000

    assert post_esp(agent_api, request).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw", [b"{not json", b"", b"\xff\xfe\x00", b'["a", "list"]', b'"a string"'], ids=repr
)
def test_a_body_that_is_not_a_json_object_is_904(agent_api, channel, raw):
    response = agent_api.post("/esp", raw, content_type="application/json")

    status, code, _message, _ = _error(response)
    assert (status, code) == (400, 904)
    assert rows_written() == NOTHING_WRITTEN


@pytest.mark.django_db
def test_without_a_token_esp_is_401(anonymous_api, channel, spec_response):
    response = post_esp(anonymous_api, SPEC_REQUEST)

    assert response.status_code == 401
    assert rows_written() == NOTHING_WRITTEN


@pytest.mark.django_db
def test_with_a_wrong_token_esp_is_401(anonymous_api, channel, spec_response):
    anonymous_api.credentials(HTTP_AUTHORIZATION="Token 0000000000000000000000000000000000000000")

    assert post_esp(anonymous_api, SPEC_REQUEST).status_code == 401


# --- contact identification ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_two_invitations_for_the_same_phone_number_reuse_one_contact(agent_api, channel, spec_response):
    # given
    first = post_esp(agent_api, SPEC_REQUEST)

    # when: the same customer, the phone number written another way
    second = post_esp(agent_api, spec_request(ReferenceId=10, UserData={"PhoneNumber": "+1 (555) 666-7777"}))

    # then
    assert first.status_code == second.status_code == 200
    assert first.json()["Result"]["_umsChatSessionId"] != second.json()["Result"]["_umsChatSessionId"]
    assert second.json()["ReferenceId"] == 10
    assert Interaction.objects.count() == 2
    contact = Contact.objects.get()
    assert contact.phone_number == "+15556667777"
    assert set(Interaction.objects.values_list("contact", flat=True)) == {contact.pk}


@pytest.mark.django_db
def test_on_an_abc_channel_a_client_id_without_phone_number_identifies_the_contact(agent_api, abc_channel):
    # given
    conversation_id = "urn:mbid:AQAAY4m7rUV2wH2s"
    request = spec_request(
        Parameters={"_umsChannel": abc_channel.channel_id, "_umsClientId": conversation_id, "StandardResponseId": None},
        UserData={"PhoneNumber": None},
    )

    # when
    first = post_esp(agent_api, request)
    second = post_esp(agent_api, request)

    # then
    assert first.status_code == second.status_code == 200, (first.json(), second.json())
    contact = Contact.objects.get()
    assert contact.client_id == conversation_id
    assert contact.phone_number == ""
    assert (contact.first_name, contact.last_name) == ("John", "Smith")
    assert Interaction.objects.filter(contact=contact).count() == 2
    interaction = Interaction.objects.first()
    assert interaction.user_data["_umsMediaType"] == "abc"
    assert "PhoneNumber" not in interaction.user_data


@pytest.mark.django_db
def test_a_chat_queue_key_of_another_tenant_than_the_channels_is_904(agent_api, channel, spec_response):
    # given: a second tenant makes 2:... a well-formed queue key of an existing tenant
    Tenant.objects.create(id=2, name="Second")

    response = post_esp(agent_api, spec_request(Parameters={"ChatQueueKey": "2:session-other"}))

    assert response.status_code == 400, response.json()
    assert response.json()["Error"]["Code"] == 904
    assert "ChatQueueKey" in response.json()["Error"]["Message"]
    assert not Interaction.objects.exists()


@pytest.mark.django_db
def test_a_chat_queue_key_that_is_not_one_of_the_channels_endpoints_is_904_naming_it(agent_api, channel,
                                                                                      spec_response):
    # given: the channel's endpoints are 1:session-chat only
    response = post_esp(agent_api, spec_request(Parameters={"ChatQueueKey": "1:session-elsewhere"}))

    # then
    assert response.status_code == 400, response.json()
    error = response.json()["Error"]
    assert error["Code"] == 904
    assert "ChatQueueKey" in error["Message"] and "1:session-elsewhere" in error["Message"]
    assert "1:session-chat" in error["Message"]  # what it may be
    assert not Interaction.objects.exists()


@pytest.mark.django_db
def test_an_endpoint_added_to_the_channel_is_a_chat_queue_key_at_once(agent_api, channel, spec_response):
    # given: the channel was read, and kept, by a first invitation
    assert post_esp(agent_api, spec_request()).status_code == 200

    # when the administrator adds the endpoint
    channel_save(channel=Channel.objects.get(pk=channel.pk), endpoints=["1:session-chat", "1:session-WA-sendSR"])
    response = post_esp(agent_api, spec_request(Parameters={"ChatQueueKey": "1:session-WA-sendSR"}))

    # then
    assert response.status_code == 200, response.json()
    assert Interaction.objects.get(pk=response.json()["Result"]["_umsChatSessionId"]).queue == "1:session-WA-sendSR"


@pytest.mark.django_db
def test_checking_the_chat_queue_key_reads_the_kept_channel_no_statement_more(agent_api, channel, spec_response):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # given: the channel and the response are kept by a first invitation
    assert post_esp(agent_api, spec_request()).status_code == 200

    # when
    with CaptureQueriesContext(connection) as without_key:
        assert post_esp(agent_api, spec_request()).status_code == 200
    with CaptureQueriesContext(connection) as with_key:
        assert post_esp(agent_api, spec_request(Parameters={"ChatQueueKey": "1:session-chat"})).status_code == 200

    # then
    assert len(with_key.captured_queries) == len(without_key.captured_queries)
    assert not any("channels_app_endpoint" in query["sql"] for query in with_key.captured_queries)


# --- the standard response kept per process (selectors.standard_responses_for_sending) ---------------------------


def _invited_text(api) -> str:
    response = post_esp(api, SPEC_REQUEST)
    assert response.status_code == 200, response.json()
    return Message.objects.get(interaction_id=response.json()["Result"]["_umsChatSessionId"]).text


@pytest.mark.django_db
def test_an_edited_standard_response_is_sent_as_edited_on_the_next_invitation(agent_api, staff_api, channel,
                                                                              spec_response):
    # given the response was read, and kept, for a first invitation
    assert _invited_text(agent_api) == SPEC_TEXT

    # when it is edited through the API
    edited = staff_api.patch(f"/api/standard-responses/{spec_response['id']}/",
                             {"body": "Dear {{1}}, your bill of {{2}} is paid. Thank you!"}, format="json")
    assert edited.status_code == 200, edited.json()

    # then the next invitation sends the new text
    assert _invited_text(agent_api) == "Dear John Smith, your bill of $129.99 is paid. Thank you!"


@pytest.mark.django_db
def test_a_deleted_standard_response_is_unknown_on_the_next_invitation(agent_api, staff_api, channel, spec_response):
    assert _invited_text(agent_api) == SPEC_TEXT

    assert staff_api.delete(f"/api/standard-responses/{spec_response['id']}/").status_code == 204

    assert _error(post_esp(agent_api, SPEC_REQUEST))[:2] == (404, 902)
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_a_standard_response_kept_for_one_tenant_is_not_found_for_another(agent_api, channel, spec_response):
    from channels_app.selectors import standard_response_for_sending

    assert _invited_text(agent_api) == SPEC_TEXT  # kept for the channel's tenant
    other = Tenant.objects.create(id=2, name="Other")

    assert standard_response_for_sending(standard_response_id=spec_response["id"], tenant_id=other.pk) is None
    assert standard_response_for_sending(standard_response_id=spec_response["id"],
                                         tenant_id=channel.tenant_id).pk == spec_response["id"]


@pytest.mark.django_db
def test_a_change_no_signal_announces_is_sent_within_the_configured_seconds(agent_api, channel, spec_response,
                                                                             settings):
    from channels_app.models import StandardResponse
    from tests.workers import poll_until

    settings.STANDARD_RESPONSE_CACHE_SECONDS = 0.2
    assert _invited_text(agent_api) == SPEC_TEXT

    # as another process saves it: this process hears no signal
    StandardResponse.objects.filter(pk=spec_response["id"]).update(body="Dear {{1}}, see you on {{4}}.")

    poll_until(lambda: _invited_text(agent_api) == "Dear John Smith, see you on March 7 / 2020.", 5,
               "the change to be sent")


@pytest.mark.django_db
def test_an_attachment_given_to_a_standard_response_goes_with_the_next_invitation(agent_api, staff_api, channel,
                                                                                 spec_response):
    import io

    from tests.test_api_standard_responses import PNG

    assert _invited_text(agent_api) == SPEC_TEXT  # kept, without attachments
    upload = io.BytesIO(PNG)
    upload.name = "bill.png"
    attachment_id = staff_api.post("/api/attachments/", {"file": upload}, format="multipart").json()["id"]

    edited = staff_api.patch(f"/api/standard-responses/{spec_response['id']}/", {"attachments": [attachment_id]},
                             format="json")
    assert edited.status_code == 200, edited.json()

    response = post_esp(agent_api, SPEC_REQUEST)
    sent = Message.objects.filter(interaction_id=response.json()["Result"]["_umsChatSessionId"])
    assert [a["fileName"] for m in sent for a in m.payload.get("attachments", [])] == ["bill.png"]


# --- e-mail channels (API.md "E-mail") -----------------------------------------------------------------------------

BILL_TEXT = {"id": "EMAIL1", "name": "Your bill", "content_type": "text", "language": "en",
             "body": "Dear <$Contact.FirstName$>,\nyour bill is <$Contact.MyFC_BillAmount$> & due."}


@pytest.fixture
def email_channel(tenant, staff_api):
    assert staff_api.post("/api/standard-responses/", BILL_TEXT, format="json").status_code == 201
    return channel_save(
        channel=Channel(channel_id="company.com", name="Support", tenant=tenant, media_type=MediaType.EMAIL,
                        transport=Transport.WEBHOOK, business_id="support@company.com",
                        webhook_url="http://127.0.0.1:9/hook"),
        endpoints=["1:email"], inbound_route_by_call="1:email",
    )


def email_invitation(**user_data) -> dict:
    return spec_request(Parameters={"_umsChannel": "company.com", "_umsClientId": "ann@mail.example",
                                    "StandardResponseId": "EMAIL1", "CustomProperties": None},
                        UserData={"PhoneNumber": None, **user_data})


@pytest.mark.django_db
def test_invite_to_chat_on_an_email_channel_sends_an_email_with_the_responses_name_as_subject(agent_api,
                                                                                            email_channel):
    response = post_esp(agent_api, email_invitation())

    assert response.status_code == 200, response.json()
    message = Message.objects.get()
    text = "Dear John,\nyour bill is $129.99 & due."
    assert message.payload == {
        "type": "Email", "subject": "Your bill",
        "content": [{"type": "text", "text": text},
                    {"type": "html", "text": "<p>Dear John,<br>your bill is $129.99 &amp; due.</p>"}],
        "context": {"replyTo": {"id": "support@company.com", "name": "Support"}},
    }
    assert message.interaction.user_data["Subject"] == "Your bill"  # the thread's subject: replies are "Re: ..."


@pytest.mark.django_db
def test_an_invitations_subject_user_data_is_its_subject_on_one_line(agent_api, staff_api, email_channel):
    # when
    response = post_esp(agent_api, email_invitation(Subject="Your bill\r\nBcc: everyone@example.com"))

    # then: CR/LF never reaches the subject, nor the agent's reply
    assert response.status_code == 200, response.json()
    message = Message.objects.get()
    assert message.payload["subject"] == "Your bill Bcc: everyone@example.com"
    reply = staff_api.post(f"/api/interactions/{message.interaction_id}/messages/", {"text": "Paid?"}, format="json")
    assert reply.status_code == 202, reply.json()
    assert Message.objects.get(pk=reply.json()["id"]).payload["subject"] == "Re: Your bill Bcc: everyone@example.com"
