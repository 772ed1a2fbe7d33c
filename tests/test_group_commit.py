"""Group commit (issue 25, channels_app/group_commit.py): concurrent customer messages of one process share one
transaction, and every request gets today's answer, once its rows are committed."""

import json
import threading
import time

import psycopg
import pytest
from django.db import connection, transaction
from django.test import Client

from channels_app import group_commit
from channels_app.models import AgentEvent, Interaction, Message
from channels_app.services.agent_events import EVENTS_CHANNEL
from channels_app.traces import bound_contextvars, current_trace_id
from tests.factories import ChannelFactory
from tests.test_nexus import SECRET, _signed, _text

committed = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
def _postgresql_group_commit(settings):
    if connection.vendor != "postgresql":
        pytest.skip("group commit is PostgreSQL's (SQLite: off)")
    settings.GROUP_COMMIT = True


@pytest.fixture
def sms_channel(tenant):
    return ChannelFactory(
        channel_id="0123456789", name="SMS", tenant=tenant, media_type="sms", transport="webhook",
        business_id="0123456789", webhook_url="http://127.0.0.1:9/hook", secret=SECRET, inbound_route_by_call="1:sms",
    )


@pytest.fixture(autouse=True, scope="module")
def _writer_connection_closed():
    yield
    # the idle writer closes its connection (IDLE_CLOSE_SECONDS), before the test database is dropped
    _poll(lambda: not group_commit._writer.thread or not group_commit._writer.thread.is_alive()
          or _other_sessions() == 0, 10, "the writer to close its connection")


def _other_sessions() -> int:
    with _psycopg_connection() as probe:  # outside the tests' database access
        return probe.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                             " AND pid <> pg_backend_pid()").fetchone()[0]


def _psycopg_connection() -> psycopg.Connection:
    params = connection.get_connection_params()
    return psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}, autocommit=True)


def _post(body: dict) -> tuple[int, dict]:
    raw = json.dumps(body).encode()
    response = Client().post("/nexus/v3/channels/0123456789/messages", raw, content_type="application/json",
                             **_signed(raw))
    connection.close()  # this thread's own
    return response.status_code, response.json()


def _poll(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds} s for {what}")
        time.sleep(0.01)
    return result


class _HeldWriter:
    """Holds the writer on a work of its own until `count` more works are queued, which then make one batch."""

    def __init__(self, count: int):
        self.count, self.gate, self.started = count, threading.Event(), threading.Event()

    def __enter__(self):
        def hold():
            self.started.set()
            self.gate.wait(10)

        self.holder = threading.Thread(target=group_commit.commit, args=(hold,))
        self.holder.start()
        _poll(self.started.is_set, 10, "the writer to hold")
        return self

    def release(self):
        _poll(lambda: group_commit._writer.queue.qsize() >= self.count, 10, f"{self.count} queued works")
        self.gate.set()

    def __exit__(self, *exc):
        self.gate.set()
        self.holder.join(10)


def _in_threads(calls: list) -> list:
    results = [None] * len(calls)

    def run(index, call):
        try:
            results[index] = call()
        except Exception as error:  # the test compares it
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    return threads, results


def _transaction_ids(message_ids) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT xmin::text FROM channels_app_message WHERE channel_message_id = ANY(%s)",
                       [list(message_ids)])
        return {int(row[0]) for row in cursor.fetchall()}


@committed
@pytest.mark.parametrize("on", [True, False])
def test_a_single_message_is_stored_and_answered_as_without_group_commit(sms_channel, settings, on):
    settings.GROUP_COMMIT = on

    status, body = _post({"messages": [_text("m-1")]})

    assert status == 200
    message = Message.objects.get()
    assert body == {"status": {"code": 0}, "data": {"ids": [message.pk]}}
    assert (message.channel_message_id, message.text, message.interaction.queue) == ("m-1", "Hello", "1:sms")


@committed
def test_concurrent_requests_share_one_transaction_and_each_is_answered_its_own_ids(sms_channel):
    requests = [{"messages": [_text(f"m-{n}", client=f"1650466114{n}"), _text(f"m-{n}b", client=f"1650466114{n}")]}
                for n in range(5)]

    with _HeldWriter(len(requests)) as held:
        threads, results = _in_threads([lambda body=body: _post(body) for body in requests])
        held.release()
        for thread in threads:
            thread.join(10)

    stored = dict(Message.objects.values_list("channel_message_id", "pk"))
    assert results == [(200, {"status": {"code": 0}, "data": {"ids": [stored[f"m-{n}"], stored[f"m-{n}b"]]}})
                       for n in range(5)]
    assert len(stored) == 10 and Interaction.objects.count() == 5
    assert len(_transaction_ids(stored)) == 1  # one commit for the five requests


@committed
def test_the_same_message_twice_in_one_batch_is_stored_once_and_both_get_its_id(sms_channel):
    with _HeldWriter(2) as held:
        threads, results = _in_threads([lambda: _post({"messages": [_text("m-1")]})] * 2)
        held.release()
        for thread in threads:
            thread.join(10)

    message = Message.objects.get()
    assert results == [(200, {"status": {"code": 0}, "data": {"ids": [message.pk]}})] * 2


@committed
def test_the_same_message_in_two_batches_is_stored_once(sms_channel):
    first = _post({"messages": [_text("m-1")]})
    again = _post({"messages": [_text("m-1"), _text("m-2", text="More")]})

    stored = dict(Message.objects.values_list("channel_message_id", "pk"))
    assert first == (200, {"status": {"code": 0}, "data": {"ids": [stored["m-1"]]}})
    assert again == (200, {"status": {"code": 0}, "data": {"ids": [stored["m-1"], stored["m-2"]]}})
    assert len(stored) == 2


@committed
def test_a_failing_work_in_a_batch_fails_alone_and_the_others_are_stored_and_answered(sms_channel):
    def failing():
        Message.objects.filter(channel_message_id="none").update(text="")  # a write of its own, then a failure
        raise ValueError("this request's own failure")

    with _HeldWriter(3) as held:
        threads, results = _in_threads([lambda: _post({"messages": [_text("m-1", client="16504661141")]}),
                                        lambda: group_commit.commit(failing),
                                        lambda: _post({"messages": [_text("m-2", client="16504661142")]})])
        held.release()
        for thread in threads:
            thread.join(10)

    stored = dict(Message.objects.values_list("channel_message_id", "pk"))
    assert results[0] == (200, {"status": {"code": 0}, "data": {"ids": [stored["m-1"]]}})
    assert isinstance(results[1], ValueError) and str(results[1]) == "this request's own failure"
    assert results[2] == (200, {"status": {"code": 0}, "data": {"ids": [stored["m-2"]]}})
    assert len(stored) == 2


@committed
def test_many_threads_at_once_store_every_message_once_and_answer_each_its_own_ids(sms_channel):
    bodies = [{"messages": [_text(f"m-{n}", client=f"165046611{n % 7:02d}")]} for n in range(24)]
    bodies += [{"messages": [_text(f"m-{n}", client=f"165046611{n % 7:02d}")]} for n in range(0, 24, 3)]  # again

    threads, results = _in_threads([lambda body=body: _post(body) for body in bodies])
    for thread in threads:
        thread.join(30)

    stored = dict(Message.objects.values_list("channel_message_id", "pk"))
    assert len(stored) == 24 == Message.objects.count()
    assert results == [(200, {"status": {"code": 0}, "data": {"ids": [stored[body["messages"][0]["channel"]
                                                                             ["messageId"]]]}}) for body in bodies]


@committed
def test_on_commit_hooks_run_after_the_commit_in_the_requests_thread_and_context(sms_channel):
    seen = []

    def work():
        message = Message.objects.create(interaction=Interaction.objects.get(), channel=sms_channel,
                                         direction="inbound", text="hooked", channel_message_id="m-hook")
        transaction.on_commit(lambda: seen.append((
            threading.current_thread().name, current_trace_id(),
            Message.objects.filter(pk=message.pk).exists(),  # this thread's connection sees only what is committed
        )))
        return message.pk

    _post({"messages": [_text("m-1")]})
    threading.current_thread().name = "the request"
    with bound_contextvars(trace_id="05bb858a"):
        stored = group_commit.commit(work)

    assert Message.objects.get(channel_message_id="m-hook").pk == stored
    assert seen == [("the request", "05bb858a", True)]


@committed
def test_agent_events_are_written_and_notified_at_the_batchs_commit(sms_channel, agent_user):
    _post({"messages": [_text("m-1")]})
    Interaction.objects.update(assigned_to=agent_user)
    with _psycopg_connection() as listener:
        listener.execute(f"LISTEN {EVENTS_CHANNEL}")

        status, body = _post({"messages": [_text("m-2", text="More")]})
        heard = [(n.channel, n.payload) for n in listener.notifies(timeout=5, stop_after=1)]

    assert status == 200
    assert heard == [(EVENTS_CHANNEL, str(agent_user.pk))]
    event = AgentEvent.objects.get(user=agent_user)
    assert (event.kind, event.data["id"]) == ("message", body["data"]["ids"][0])
