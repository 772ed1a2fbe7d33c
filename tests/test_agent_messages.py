"""POST /api/interactions/{id}/messages/: size limit, the WhatsApp 24-hour window, automatic notifications."""

from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app.models import Delivery, Interaction, Message
from channels_app.services.interactions import customer_message_receive
from channels_app.services.options import option_set

IW = "interaction-workspace"


@pytest.fixture
def session(channel, django_capture_on_commit_callbacks):
    message, _ = customer_message_receive(channel=channel, client_id="15556667777", text="Hi", channel_message_id="c1")
    return message.interaction


def _age_customer_message(interaction, hours):
    """The customer's last message, in any of their sessions on the channel, `hours` ago."""
    Interaction.objects.filter(contact_id=interaction.contact_id, last_customer_message_at__isnull=False).update(
        last_customer_message_at=timezone.now() - timedelta(hours=hours)
    )


def url(interaction):
    return f"/api/interactions/{interaction.pk}/messages/"


@pytest.mark.django_db
def test_agent_text_is_queued_with_its_delivery(agent_api, session, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = agent_api.post(url(session), {"text": "How can I help?"}, format="json")

    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["direction"], body["status"], body["text"]) == ("outbound", "queued", "How can I help?")
    delivery = Delivery.objects.get(message_id=body["id"])
    assert (delivery.state, delivery.lease_token) == ("pending", "")  # due, for the dispatcher to claim
    assert callbacks == []  # nothing is published to the broker per message (channels_app/dispatcher.py)
    assert Interaction.objects.get(pk=session.pk).state == "active"


def _new_session(channel, client_id="15556667777", message_id="c2"):
    """A customer's message after the session fixture's one ended: a new session, with the options as set now
    (they take effect at the next interaction)."""
    Interaction.objects.filter(channel=channel).update(state="ended")
    message, _ = customer_message_receive(
        channel=channel, client_id=client_id, text="Hi", channel_message_id=message_id
    )
    return message.interaction


@pytest.mark.django_db
def test_size_limit_counts_utf8_bytes(agent_api, channel):
    option_set(section=IW, name="whatsappsession.max-text-message-size", value=8, channel=channel)
    session = _new_session(channel)

    fits = agent_api.post(url(session), {"text": "😀😀"}, format="json")  # 8 bytes
    over = agent_api.post(url(session), {"text": "😀😀a"}, format="json")  # 9 bytes

    assert fits.status_code == 202
    assert over.status_code == 400
    assert "9 bytes" in over.json()["text"][0]


@pytest.mark.django_db
def test_outside_the_24_hour_window_text_is_refused_without_automatic_notifications(agent_api, session):
    _age_customer_message(session, hours=25)

    response = agent_api.post(url(session), {"text": "Still there?"}, format="json")

    assert response.status_code == 409
    assert not Message.objects.filter(direction="outbound").exists()


@pytest.mark.django_db
def test_inside_the_window_is_measured_from_the_last_customer_message(agent_api, session):
    _age_customer_message(session, hours=23)

    assert agent_api.post(url(session), {"text": "Yes"}, format="json").status_code == 202


@pytest.mark.django_db
def test_with_automatic_notifications_the_text_goes_inside_the_default_template(agent_api, session):
    for name, value in [
        ("whatsappsession.enable-free-msg-timespan-monitoring", "true"),
        ("whatsappsession.free-msg-timespan", "60"),
        ("whatsappsession.default-notification-text", "Thank you for your patience! {{1}}"),
        ("whatsappsession.default-notification-id", "patience_1"),
        ("whatsappsession.default-notification-language", "en"),
    ]:
        option_set(section=IW, name=name, value=value)
    session = _new_session(session.channel)
    _age_customer_message(session, hours=2)

    response = agent_api.post(url(session), {"text": "We recommend rebooting your device"}, format="json")

    assert response.status_code == 202
    assert response.json()["sent_as"] == "notification"
    payload = Message.objects.get(pk=response.json()["id"]).payload
    assert payload["type"] == "Notification"
    assert payload["text"] == "Thank you for your patience! We recommend rebooting your device"
    assert payload["template"]["id"] == "patience_1"


@pytest.mark.django_db
def test_interactive_messages_are_refused_outside_the_window(staff_api, agent_api, session):
    staff_api.post("/api/standard-responses/", {
        "id": "RB1", "name": "Choice", "content_type": "reply_buttons", "body": "Pick",
        "structured": {"buttons": [{"id": "y", "title": "Yes"}]},
    }, format="json")
    staff_api.post("/api/standard-responses/", {
        "id": "N1", "name": "Note", "content_type": "notification", "body": "Hello {{1}}",
        "structured": {"template": {"name": "hello"}, "parameters": {"1": "<$Contact.FirstName$>"}},
    }, format="json")
    _age_customer_message(session, hours=30)

    interactive = agent_api.post(url(session), {"standard_response_id": "RB1"}, format="json")
    notification = agent_api.post(
        url(session), {"standard_response_id": "N1", "fields": {"Contact": {"FirstName": "Jo"}}}, format="json"
    )

    assert interactive.status_code == 409
    assert notification.status_code == 202
    assert notification.json()["text"] == "Hello Jo"
    assert notification.json()["sent_as"] == "notification"


@pytest.mark.django_db
def test_bad_requests(agent_api, session):
    assert agent_api.post(url(session), {}, format="json").status_code == 400
    assert agent_api.post(url(session), {"text": "a", "standard_response_id": "X"}, format="json").status_code == 400
    unknown = agent_api.post(url(session), {"standard_response_id": "NOPE"}, format="json")
    assert unknown.status_code == 400 and "standard_response_id" in unknown.json()
    assert agent_api.post("/api/interactions/nope/messages/", {"text": "a"}, format="json").status_code == 404


@pytest.mark.django_db
def test_an_ended_session_takes_no_messages(agent_api, session):
    Interaction.objects.filter(pk=session.pk).update(state="ended")

    assert agent_api.post(url(session), {"text": "Hello"}, format="json").status_code == 409


@pytest.mark.django_db
def test_an_edited_standard_response_is_sent_as_edited_by_the_next_agent_message(agent_api, staff_api, session):
    # given an agent sent a response (now kept by this process: selectors.standard_responses_for_sending)
    staff_api.post("/api/standard-responses/", {"id": "T1", "name": "Thanks", "content_type": "text",
                                                "body": "Thank you, <$Contact.FirstName$>."}, format="json")
    fields = {"Contact": {"FirstName": "Jo"}}
    first = agent_api.post(url(session), {"standard_response_id": "T1", "fields": fields}, format="json")
    assert first.json()["text"] == "Thank you, Jo."

    # when it is edited, then deleted
    assert staff_api.patch("/api/standard-responses/T1/", {"body": "Thanks a lot, <$Contact.FirstName$>!"},
                           format="json").status_code == 200
    edited = agent_api.post(url(session), {"standard_response_id": "T1", "fields": fields}, format="json")
    assert staff_api.delete("/api/standard-responses/T1/").status_code == 204
    gone = agent_api.post(url(session), {"standard_response_id": "T1", "fields": fields}, format="json")

    # then the next messages see each change at once
    assert edited.status_code == 202 and edited.json()["text"] == "Thanks a lot, Jo!"
    assert gone.status_code == 400 and "standard_response_id" in gone.json()
