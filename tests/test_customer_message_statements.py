"""A customer message in few statements (issue 25): on PostgreSQL one statement for a message to an open
interaction (CUSTOMER_MESSAGE_TO_OPEN_INTERACTION_SQL), three for a new customer; what several statements did,
one does, and two messages at once still meet on the same rows."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_app.choices import MediaType, Transport
from channels_app.models import Contact, Interaction, InteractionState, Message
from channels_app.services.interactions import customer_message_receive
from tests.conftest import require_or_skip
from tests.factories import ChannelFactory

CLIENT = "15556667777"
WAIT = 10.0


@pytest.fixture
def channel(tenant):
    return ChannelFactory(channel_id="sms-statements", tenant=tenant, media_type=MediaType.SMS,
                          transport=Transport.SIMULATOR, business_id="0123456789",
                          inbound_route_by_call="1:session-chat")


def receive(channel, text: str, message_id: str, **kwargs) -> Message:
    message, created = customer_message_receive(channel=channel, client_id=CLIENT, text=text,
                                                channel_message_id=message_id, look_for_duplicate=False, **kwargs)
    assert created
    return message


def statements(captured: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in captured.captured_queries if query["sql"] not in ("BEGIN", "COMMIT")]


@pytest.mark.django_db
def test_a_message_to_an_open_interaction_is_one_statement_and_a_new_customers_three(channel):
    require_or_skip(connection.vendor == "postgresql", "the statements counted are PostgreSQL's")
    # given: the options and queues read once (cached), by another customer's message
    customer_message_receive(channel=channel, client_id="15550001111", text="Hi", channel_message_id="other")
    # when
    with CaptureQueriesContext(connection) as new_customer:
        first = receive(channel, "Hello, is my bill ready?", "m1", nickname="Ann")
    with CaptureQueriesContext(connection) as open_interaction:
        second = receive(channel, "It is due Friday", "m2", nickname="Ann")
    # then
    assert len(statements(new_customer)) == 3, statements(new_customer)
    assert len(statements(open_interaction)) == 1, statements(open_interaction)
    interaction = Interaction.objects.get(pk=first.interaction_id)
    assert second.interaction_id == interaction.pk
    assert interaction.user_data["_umsMsgId"] == "m2"
    assert interaction.user_data["_umsMsgPlainText"] == "It is due Friday"
    assert interaction.user_data["Subject"] == "Hello, is my bill ready?"  # the first message's, kept
    assert interaction.user_data["_msg_ProfileNickname"] == "Ann"
    assert Message.objects.get(pk=second.pk).interaction_id == interaction.pk


@pytest.mark.django_db
def test_the_one_statement_keeps_a_new_nickname_and_moves_the_last_message_time_by_the_hour(channel):
    # given: a customer who last wrote two hours ago
    first = receive(channel, "Hello", "m1", nickname="Ann")
    contact = Contact.objects.get()
    two_hours_ago = timezone.now() - timedelta(hours=2)
    Contact.objects.filter(pk=contact.pk).update(last_message_at=two_hours_ago)
    Interaction.objects.filter(pk=first.interaction_id).update(last_customer_message_at=two_hours_ago)
    # when
    second = receive(channel, "Still there?", "m2", nickname="Annie")
    contact.refresh_from_db()
    moved = contact.last_message_at
    receive(channel, "Hello?", "m3")
    # then
    assert contact.nickname == "Annie"
    assert first.created_at < moved <= second.created_at  # more than an hour later: moved
    contact.refresh_from_db()
    assert contact.last_message_at == moved  # within the hour: not moved again
    assert contact.nickname == "Annie"  # a message without a nickname leaves it
    interaction = Interaction.objects.get()
    assert first.created_at < interaction.last_customer_message_at  # the 24-hour window moved on


# --- HOT updates -----------------------------------------------------------------------------------------------


def interaction_updates() -> tuple[int, int]:
    """The interactions' row updates in this transaction so far, and how many of them were HOT (read from the
    transaction's own counters: pg_stat_user_tables gets them only once it ends, and later)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_get_xact_tuples_updated(%s::regclass), "
                       "pg_stat_get_xact_tuples_hot_updated(%s::regclass)", [Interaction._meta.db_table] * 2)
        return cursor.fetchone()


@pytest.mark.django_db
def test_a_message_to_an_open_interaction_updates_it_hot_without_index_entries(channel):
    require_or_skip(connection.vendor == "postgresql", "HOT updates are PostgreSQL's")
    # given: an open interaction
    first = receive(channel, "Hello", "m1")
    updated, hot = interaction_updates()
    # when
    second = receive(channel, "Still there?", "m2")
    # then: its user data, window and last activity written in place (no indexed column changed)
    assert interaction_updates() == (updated + 1, hot + 1)
    interaction = Interaction.objects.get(pk=first.interaction_id)
    assert second.interaction_id == interaction.pk
    assert interaction.user_data["_umsMsgId"] == "m2"
    assert first.created_at < interaction.last_activity_at <= second.created_at


@pytest.mark.django_db
def test_the_interactions_pages_keep_room_for_the_next_versions_of_their_rows():
    require_or_skip(connection.vendor == "postgresql", "fillfactor is PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", [Interaction._meta.db_table])
        (options,) = cursor.fetchone()
    assert options == ["fillfactor=85"]


# --- two messages at once -------------------------------------------------------------------------------------


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _until_waiting_on_a_lock(pid: int) -> None:
    deadline = time.monotonic() + WAIT
    with connections["default"].cursor() as cursor:
        while True:
            cursor.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", [pid])
            if (row := cursor.fetchone()) and row[0]:
                return
            assert time.monotonic() < deadline, "the second message never waited for the first"


def _two_messages_at_once(channel) -> dict:
    """The first message's transaction stays open until the second one waits for it; then both commit."""
    stored, commit = threading.Event(), threading.Event()
    outcome: dict = {}

    def first():
        try:
            with transaction.atomic():
                outcome["first"] = receive(channel, "Hello, is my bill ready?", "m1")
                stored.set()
                assert commit.wait(WAIT)
        finally:
            stored.set()
            connection.close()

    def second():
        try:
            assert stored.wait(WAIT)
            outcome["second_pid"] = _backend_pid()
            with transaction.atomic():
                outcome["second"] = receive(channel, "It is due Friday", "m2")
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + WAIT
    while "second_pid" not in outcome:
        assert time.monotonic() < deadline and threads[1].is_alive(), "the second message never started"
    _until_waiting_on_a_lock(outcome["second_pid"])
    commit.set()
    for thread in threads:
        thread.join(WAIT)
    return outcome


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_first_messages_of_a_new_customer_at_once_make_one_contact_and_one_interaction(channel):
    require_or_skip(connection.vendor == "postgresql", "two transactions at once need PostgreSQL")
    # when
    outcome = _two_messages_at_once(channel)
    # then
    assert {"first", "second"} <= set(outcome)
    assert Contact.objects.count() == 1
    interaction = Interaction.objects.get()
    assert {message.interaction_id for message in Message.objects.all()} == {interaction.pk}
    assert interaction.user_data["_umsMsgId"] == "m2"  # the later one's, written after the first committed
    assert interaction.user_data["Subject"] == "Hello, is my bill ready?"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_messages_at_once_to_an_open_interaction_are_written_one_after_the_other(channel):
    require_or_skip(connection.vendor == "postgresql", "two transactions at once need PostgreSQL")
    # given
    opening = receive(channel, "Hi", "m0")
    # when
    outcome = _two_messages_at_once(channel)
    # then: the second waited for the first's lock on the interaction, then changed what it committed
    assert {"first", "second"} <= set(outcome)
    interaction = Interaction.objects.get()
    assert interaction.pk == opening.interaction_id
    assert Message.objects.filter(interaction=interaction).count() == 3
    assert interaction.user_data["_umsMsgId"] == "m2"
    assert interaction.user_data["Subject"] == "Hi"
    assert outcome["first"].created_at < interaction.last_activity_at <= outcome["second"].created_at


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_messages_at_once_of_a_returning_customer_open_one_interaction(channel):
    require_or_skip(connection.vendor == "postgresql", "two transactions at once need PostgreSQL")
    # given: a customer whose last interaction ended
    earlier = receive(channel, "Last week", "m0")
    Interaction.objects.filter(pk=earlier.interaction_id).update(state=InteractionState.ENDED)
    # when
    outcome = _two_messages_at_once(channel)
    # then
    assert {"first", "second"} <= set(outcome)
    assert outcome["first"].interaction_id == outcome["second"].interaction_id != earlier.interaction_id
    assert Interaction.objects.exclude(state=InteractionState.ENDED).count() == 1
    assert Interaction.objects.get(pk=outcome["first"].interaction_id).user_data["_umsMsgId"] == "m2"
