"""A customer message in few statements (issue 25): on PostgreSQL one statement for a message to an open
interaction (CUSTOMER_MESSAGE_TO_OPEN_INTERACTION_SQL), three for a new customer; what several statements did,
one does, and two messages at once still meet on the same rows."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_app.choices import MediaType, Transport
from channels_app.models import Contact, Interaction, InteractionState, Message
from channels_app.services.interactions import (
    CustomerMessage,
    _customer_message_store,
    _customer_message_store_postgresql,
    customer_message_receive,
)
from tests.conftest import require_or_skip
from tests.factories import ChannelFactory

CLIENT = "15556667777"
MESSAGE_COLUMNS = [field.attname for field in Message._meta.concrete_fields]
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


# --- the message's row ----------------------------------------------------------------------------------------


def _received(channel, client_id: str, message_id: str) -> CustomerMessage:
    """A customer message with every optional value set."""
    return CustomerMessage(
        channel=channel, client_id=client_id, text="Where is my parcel?\nIt was due Friday.",
        channel_message_id=message_id, nickname="Ann",
        origin_time=datetime(2026, 12, 6, 23, 59, 58, 123456, tzinfo=UTC),
        trace_id="80f198ee56343ba864fe8b2a57d3eff7", extra_payload={"subject": "Parcel", "context": {"replyTo": {}}},
        now=timezone.now(),
    )


def _stored_row(message: Message) -> dict:
    """Every column of the message as the database holds it."""
    return Message.objects.filter(pk=message.pk).values(*MESSAGE_COLUMNS).get()


@pytest.mark.django_db
def test_the_message_rows_written_without_a_model_object_are_the_orms_column_by_column(channel):
    """The statements' message rows (`CustomerMessage.message_row`: no Message walked through its fields) hold what
    the ORM writes for the same message, every column of Message, new ones included: its defaults, its JSON, its
    times (auto_now_add, auto_now: when the message was received)."""
    require_or_skip(connection.vendor == "postgresql", "the statements are PostgreSQL's")
    # given: a conversation opened and continued by the ORM's path, the rows it wrote
    before = timezone.now()
    _, by_orm_opening = _customer_message_store(_received(channel, CLIENT, "orm-1"))
    _, by_orm = _customer_message_store(_received(channel, CLIENT, "orm-2"))
    # when: the same messages through the statements, to the open interaction and opening one for a new customer
    _, by_statement = _customer_message_store_postgresql(_received(channel, CLIENT, "sql-1"))
    _, by_statement_opening = _customer_message_store_postgresql(_received(channel, "15550001111", "sql-2"))
    after = timezone.now()
    # then
    for orm, statement in ((by_orm, by_statement), (by_orm_opening, by_statement_opening)):
        expected, written = _stored_row(orm), _stored_row(statement)
        assert len(written["id"]) == len(expected["id"]) == 20 and written["id"] != expected["id"]
        assert before <= written["created_at"] == written["updated_at"] <= after
        assert before <= expected["created_at"] <= expected["updated_at"] <= after
        different = {"id", "interaction_id", "channel_message_id", "created_at", "updated_at"}
        assert {name: value for name, value in written.items() if name not in different} == {
            name: value for name, value in expected.items() if name not in different}
        assert written["channel_message_id"] == statement.channel_message_id != expected["channel_message_id"]
        # the message handed to the callers is the row as stored
        assert {name: getattr(statement, name) for name in MESSAGE_COLUMNS} == written
        assert statement.interaction.pk == written["interaction_id"] and statement.channel == channel
    assert by_statement.interaction_id == by_orm.interaction_id == by_orm_opening.interaction_id
    assert Interaction.objects.get(pk=by_statement_opening.interaction_id).client_id == "15550001111"


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
