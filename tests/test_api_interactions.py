from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from channels_app.models import Interaction, Message
from channels_app.services.interactions import (
    customer_message_receive,
    message_queue_outbound,
)
from channels_app.services.receipts import receipt_apply
from tests.factories import InteractionFactory


@pytest.fixture
def conversation(channel, django_capture_on_commit_callbacks):
    # given a customer message and an agent answer that failed with a reason
    inbound, _ = customer_message_receive(
        channel=channel, client_id="15556667777", text="Hello?", channel_message_id="in-1", nickname="Johnny",
        origin_time=timezone.now() - timedelta(minutes=5),
    )
    with django_capture_on_commit_callbacks(execute=False):
        outbound = message_queue_outbound(interaction=inbound.interaction, payload={"type": "Text", "text": "Hi!"})
    Message.objects.filter(pk=outbound.pk).update(status="sent", external_id="ext-9")
    receipt_apply(channel=channel, external_id="ext-9", status="Failed", reasons=[{"code": 350}])
    return inbound.interaction


@pytest.mark.django_db
def test_interaction_detail_shows_the_transcript(agent_api, conversation):
    response = agent_api.get(f"/api/interactions/{conversation.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert (body["type"], body["subtype"], body["state"]) == ("Inbound", "InboundNew", "queued")
    assert body["channel"] == "channel-whatsapp-REAL"
    assert body["queue"] == "1:session-chat"
    assert body["user_data"]["_umsMediaTypeChat"] == "whatsappsession"
    assert body["user_data"]["_msg_ProfileNickname"] == "Johnny"
    assert [(m["direction"], m["text"], m["status"]) for m in body["messages"]] == [
        ("inbound", "Hello?", "received"),
        ("outbound", "Hi!", "failed"),
    ]
    assert body["messages"][1]["reasons"] == [{"code": 350, "message": "Message not allowed."}]


@pytest.mark.django_db
def test_interactions_filter_newest_first(agent_api, channel, conversation):
    newer = InteractionFactory(channel=channel, client_id="15550001111", queue="1:session-chat", outbound=True,
                               user_data={})

    def ids(query=""):
        return [row["id"] for row in agent_api.get(f"/api/interactions/{query}").json()["results"]]

    assert ids() == [newer.pk, conversation.pk]
    assert ids("?client=15556667777") == [conversation.pk]
    assert ids("?channel=channel-whatsapp-REAL&state=queued") == [newer.pk, conversation.pk]
    assert ids("?channel=other") == []
    assert ids("?type=Outbound") == [newer.pk]
    assert agent_api.get("/api/interactions/nope/").status_code == 404


@pytest.mark.django_db
def test_contacts_with_their_history(agent_api, conversation):
    rows = agent_api.get("/api/contacts/?search=johnny").json()["results"]

    assert len(rows) == 1
    assert rows[0]["phone_number"] == "+15556667777"
    assert rows[0]["interactions"] == [conversation.pk]
    assert rows[0]["country"] == "US"  # what segments filter on, shown and not writable
    assert "last_message_at" in rows[0]
    assert agent_api.get("/api/contacts/?phone=%2B15556667777").json()["count"] == 1
    assert agent_api.post("/api/contacts/", {}).status_code in (403, 405)


@pytest.mark.django_db
def test_interaction_admin_shows_the_transcript_as_the_spec_describes(admin_client, conversation):
    page = admin_client.get(reverse("admin:channels_app_interaction_change", args=[conversation.pk])).content.decode()

    assert 'class="message customer"' in page
    assert 'class="message agent failed"' in page
    assert "Not delivered: 350 Message not allowed." in page
    assert 'class="session-date"' in page
    assert "<b title=" in page  # the customer's message arrived 5 minutes after it was sent


@pytest.mark.django_db
def test_end_sessions_admin_action(admin_client, conversation):
    response = admin_client.post(
        reverse("admin:channels_app_interaction_changelist"),
        {"action": "end_sessions", "_selected_action": [conversation.pk]},
    )

    assert response.status_code == 302
    assert Interaction.objects.get(pk=conversation.pk).state == "ended"


@pytest.mark.django_db
def test_conversation_admin_pages_render(admin_client, conversation):
    for url in [
        reverse("admin:channels_app_interaction_changelist"),
        reverse("admin:channels_app_interaction_changelist") + "?state__exact=queued",
        reverse("admin:channels_app_contact_change", args=[conversation.contact_id]),
        reverse("admin:channels_app_message_changelist") + "?status__exact=failed",
    ]:
        assert admin_client.get(url).status_code == 200, url
