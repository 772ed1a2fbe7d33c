"""An agent's message in few statements (issue 25, lever 3): on PostgreSQL the interaction read and locked (on
WhatsApp the customer's window read), then one statement (OUTBOUND_MESSAGE_SQL) for the message, its delivery,
the interaction's state and last activity, the events of whoever holds it and the NOTIFYs; what the separate
statements wrote, it writes."""

from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_app.models import AgentEvent, ConferenceMember, Delivery, Interaction, Message
from channels_app.services.agent_messages import agent_message_send
from channels_app.services.interactions import customer_message_receive
from channels_app.services.windows import window_applies
from tests.conftest import member, require_or_skip
from tests.test_customer_message_statements import interaction_updates
from tests.workers import poll_until

committed = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def statements(captured: CaptureQueriesContext) -> list[str]:
    """The statements sent, without the transaction's own (the test's transaction makes atomic() a savepoint)."""
    return [query["sql"] for query in captured.captured_queries
            if query["sql"] not in ("BEGIN", "COMMIT") and "SAVEPOINT" not in query["sql"]]


def send(interaction, text: str):
    return agent_message_send(tenant_ids=None, interaction_id=interaction.pk,
                              admit=lambda _: {"text": text}).message


def opened(channel, client_id: str = "15556667777") -> Interaction:
    message, _ = customer_message_receive(channel=channel, client_id=client_id, text="Hi", channel_message_id="c1")
    return message.interaction


@pytest.mark.django_db
def test_an_agent_message_is_two_statements_with_its_delivery_and_activation(channel):  # WhatsApp: three
    require_or_skip(connection.vendor == "postgresql", "the statements counted are PostgreSQL's")
    # given: a queued interaction, its last activity two seconds ago
    interaction = opened(channel)
    Interaction.objects.filter(pk=interaction.pk).update(
        state="queued", last_activity_at=timezone.now() - timedelta(seconds=2))
    # when
    with CaptureQueriesContext(connection) as captured:
        message = send(interaction, "How can I help?")
    # then
    assert len(statements(captured)) == 2 + window_applies(channel), [sql[:200] for sql in statements(captured)]
    stored = Message.objects.get(pk=message.pk)
    assert (stored.direction, stored.status, stored.text, stored.payload) == (
        "outbound", "queued", "How can I help?", {"type": "Text", "text": "How can I help?"})
    delivery = Delivery.objects.get(message=message)
    assert (delivery.state, delivery.lease_token, delivery.attempts, delivery.channel_id) == (
        "pending", "", 0, channel.pk)
    assert delivery.next_attempt_at <= timezone.now()
    interaction.refresh_from_db()
    assert interaction.state == "active"
    assert interaction.last_activity_at == stored.created_at
    assert not AgentEvent.objects.exists()  # nobody holds it


@pytest.mark.django_db
def test_a_recent_activity_is_not_moved_and_an_active_interaction_stays_as_it_is(channel):
    interaction = opened(channel)
    Interaction.objects.filter(pk=interaction.pk).update(state="active")
    before = Interaction.objects.get(pk=interaction.pk)
    send(interaction, "Hello")
    after = Interaction.objects.get(pk=interaction.pk)
    assert (after.state, after.last_activity_at) == (before.state, before.last_activity_at)


@pytest.mark.django_db
def test_an_agent_message_moves_the_last_activity_in_a_hot_update(channel):
    require_or_skip(connection.vendor == "postgresql", "HOT updates are PostgreSQL's")
    # given: an active interaction, its last activity two seconds ago
    interaction = opened(channel)
    Interaction.objects.filter(pk=interaction.pk).update(
        state="active", last_activity_at=timezone.now() - timedelta(seconds=2))
    updated, hot = interaction_updates()
    # when
    message = send(interaction, "How can I help?")
    # then: the last activity moved in place (no indexed column changed)
    assert interaction_updates() == (updated + 1, hot + 1)
    assert Interaction.objects.get(pk=interaction.pk).last_activity_at == Message.objects.get(pk=message.pk).created_at


@pytest.mark.django_db
def test_a_held_interactions_message_is_an_event_of_its_agent_and_conference_in_the_same_statement(channel, tenant):
    require_or_skip(connection.vendor == "postgresql", "the statements counted are PostgreSQL's")
    # given: an interaction held by one agent, two others in its conference
    ann, bob, cid = (member(name, tenants=[tenant]) for name in ("ann", "bob", "cid"))
    interaction = opened(channel)
    Interaction.objects.filter(pk=interaction.pk).update(assigned_to=ann)
    for agent in (cid, bob):
        ConferenceMember.objects.create(interaction_id=interaction.pk, agent=agent)
    interaction.refresh_from_db()
    # when
    with CaptureQueriesContext(connection) as captured:
        message = send(interaction, "Let me check")
    # then
    assert len(statements(captured)) == 2 + window_applies(channel), [sql[:200] for sql in statements(captured)]
    events = list(AgentEvent.objects.order_by("id").values_list("user_id", "kind", "data"))
    stored = Message.objects.get(pk=message.pk)
    data = {"id": message.pk, "interaction": interaction.pk, "direction": "outbound", "text": "Let me check",
            "status": "queued", "reasons": [], "origin_time": None,
            "created_at": stored.created_at.isoformat().replace("+00:00", "Z")}
    assert events == [(user.pk, "message", data) for user in sorted((ann, bob, cid), key=lambda user: user.pk)]


@committed
def test_the_notifications_reach_a_listener_at_commit_only(channel, tenant):
    require_or_skip(connection.vendor == "postgresql", "LISTEN/NOTIFY is PostgreSQL's")
    ann = member("ann", tenants=[tenant])
    interaction = opened(channel)
    Interaction.objects.filter(pk=interaction.pk).update(assigned_to=ann)
    interaction.refresh_from_db()
    database = settings.DATABASES["default"]
    with psycopg.connect(host=database["HOST"], port=database["PORT"] or 5432, user=database["USER"],
                         password=database["PASSWORD"], dbname=database["NAME"], autocommit=True) as listener:
        listener.execute("LISTEN deliveries_due")
        listener.execute("LISTEN agent_events")
        heard = []
        with transaction.atomic():
            send(interaction, "One")
            heard += [(n.channel, n.payload) for n in listener.notifies(timeout=0.2)]
        assert heard == []  # nothing before the commit

        def arrived() -> bool:
            heard.extend((n.channel, n.payload) for n in listener.notifies(timeout=0.2, stop_after=2))
            return len(heard) >= 2

        poll_until(arrived, 10, "the notifications")
    assert sorted(heard) == [("agent_events", str(ann.pk)), ("deliveries_due", "")]


@committed
def test_the_interaction_is_read_locked_with_its_channel_and_contact_in_the_callers_tenants(channel, tenant):
    from channels_app.services.interactions import interaction_locked

    require_or_skip(connection.vendor == "postgresql", "the lock is looked at from another connection")
    # given
    interaction = opened(channel)
    database = settings.DATABASES["default"]
    with psycopg.connect(host=database["HOST"], port=database["PORT"] or 5432, user=database["USER"],
                         password=database["PASSWORD"], dbname=database["NAME"], autocommit=True) as other:
        with transaction.atomic():
            # when
            found = interaction_locked(interaction_id=interaction.pk, tenant_ids=frozenset({tenant.pk}))
            # then: read whole, and held until the commit
            assert (found.pk, found.channel, found.contact, found.user_data, found.session_options) == (
                interaction.pk, channel, interaction.contact, interaction.user_data, interaction.session_options)
            assert found.channel.tenant_id == tenant.pk and found.contact.tenant_id == tenant.pk
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute("SELECT id FROM channels_app_interaction WHERE id = %s FOR UPDATE NOWAIT",
                              [interaction.pk])
        other.execute("SELECT id FROM channels_app_interaction WHERE id = %s FOR UPDATE NOWAIT", [interaction.pk])
    assert interaction_locked(interaction_id=interaction.pk, tenant_ids=None).pk == interaction.pk
    assert interaction_locked(interaction_id=interaction.pk, tenant_ids=frozenset({tenant.pk + 1})) is None
    assert interaction_locked(interaction_id=interaction.pk, tenant_ids=frozenset()) is None
    assert interaction_locked(interaction_id="nope", tenant_ids=None) is None
