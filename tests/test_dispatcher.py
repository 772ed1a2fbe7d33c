"""The dispatcher (channels_app/dispatcher.py): single messages are claimed from
the database and sent in batches, woken by NOTIFY at commit; nothing is
published to the broker per message. Workers and kills: tests/test_worker.py,
tests/test_crash.py and the chaos suite run a dispatcher beside each worker."""

import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from channels_app.dispatcher import Dispatcher
from channels_app.models import Delivery, DeliveryState, Message, MessageStatus
from channels_app.services.deliveries import DISPATCHER_CHANNEL, deliveries_claim_due
from channels_app.services.interactions import message_queue_outbound
from tests.conftest import require_or_skip
from tests.factories import InteractionFactory
from tests.workers import poll_until

# Committed for real (a notification, other threads' connections). serialized_rollback, as every transactional
# test of the suite: the flush's post_migrate makes the default groups again, which the next test's restore of the
# migrations' rows would meet twice.
committed = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _queue(channel, count: int, client_id: str = "15556667777") -> list[Message]:
    interaction = InteractionFactory(channel=channel, client_id=client_id, queue="1:session-chat", outbound=True,
                                     user_data={})
    return [message_queue_outbound(interaction=interaction, payload={"type": "Text", "text": f"Message {n}"})
            for n in range(count)]


@pytest.mark.django_db
def test_drain_sends_every_due_message_once_in_batches_and_marks_it_sent(webhook_channel, receiver):
    messages = _queue(webhook_channel, 40)

    attempted = Dispatcher(threads=1, claim_limit=16).drain()

    assert attempted == 40
    assert sorted(receiver.counts) == sorted(m.pk for m in messages)
    assert set(receiver.counts.values()) == {1}  # each once
    sent = {r.headers["webhook-id"]: (r.json()["text"], r.json()["channel"]["to"]["id"]) for r in receiver.received}
    assert sent == {m.pk: (m.payload["text"], "15556667777") for m in messages}  # each its own, as stored
    assert set(Message.objects.filter(pk__in=[m.pk for m in messages]).values_list("status", flat=True)) == {
        MessageStatus.SENT}
    assert set(Delivery.objects.values_list("state", "attempts")) == {(DeliveryState.DELIVERED, 1)}
    assert Dispatcher(threads=1).drain() == 0  # nothing is sent twice


@pytest.mark.django_db
def test_a_claim_takes_only_what_is_due_and_owned_by_nobody(webhook_channel):
    due, later, leased, lease_ran_out = _queue(webhook_channel, 4)
    now = timezone.now()
    Delivery.objects.filter(message=later).update(next_attempt_at=now + timedelta(minutes=1))
    Delivery.objects.filter(message=leased).update(lease_until=now + timedelta(minutes=1), lease_token="someone")
    Delivery.objects.filter(message=lease_ran_out).update(lease_until=now - timedelta(seconds=1),
                                                          lease_token="a worker that died")

    claimed = deliveries_claim_due(limit=10)

    assert sorted(d.message_id for d in claimed) == sorted([due.pk, lease_ran_out.pk])
    assert len({d.lease_token for d in claimed}) == 1 and claimed[0].lease_token not in ("", "someone")
    assert deliveries_claim_due(limit=10) == []  # ours now, until the lease runs out


@pytest.mark.django_db
def test_the_claim_limit_bounds_a_batch(webhook_channel):
    _queue(webhook_channel, 5)

    assert len(deliveries_claim_due(limit=3)) == 3
    assert len(deliveries_claim_due(limit=3)) == 2


def _postgresql_only():
    require_or_skip(connection.vendor == "postgresql",
                    "LISTEN/NOTIFY and SKIP LOCKED are PostgreSQL's (SQLite: one dispatcher, polling)")


@committed
def test_an_agent_message_notifies_the_dispatcher_when_it_commits(webhook_channel):
    _postgresql_only()
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}, autocommit=True) as listener:
        listener.execute(f"LISTEN {DISPATCHER_CHANNEL}")
        _queue(webhook_channel, 1)  # its own transaction, committed
        received = [n.channel for n in listener.notifies(timeout=5, stop_after=1)]

    assert received == [DISPATCHER_CHANNEL]


@committed
def test_dispatchers_side_by_side_send_each_message_once(webhook_channel, receiver):
    _postgresql_only()
    messages = _queue(webhook_channel, 120)
    dispatchers = [Dispatcher(threads=1, claim_limit=8) for _ in range(3)]

    def drain(dispatcher: Dispatcher) -> None:
        try:
            dispatcher.drain()
        finally:
            connection.close()  # this thread's own

    threads = [threading.Thread(target=drain, args=(d,)) for d in dispatchers]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(receiver.counts) == sorted(m.pk for m in messages)
    assert set(receiver.counts.values()) == {1}
    assert Delivery.objects.filter(state=DeliveryState.DELIVERED, attempts=1).count() == 120


@committed
def test_a_running_dispatcher_sends_what_commits_while_it_listens(webhook_channel, receiver):
    _postgresql_only()
    dispatcher = Dispatcher(threads=2, poll_seconds=30)  # a 30 s poll: only the notification can wake it in time
    # (signal handlers are for the main thread: stopped with stop() here)
    running = threading.Thread(target=dispatcher.run, kwargs={"install_signals": False}, daemon=True)
    running.start()
    try:
        poll_until(dispatcher.listening.is_set, 10, "the dispatcher to listen")
        started = time.monotonic()
        message = _queue(webhook_channel, 1)[0]
        poll_until(lambda: message.pk in receiver.counts, 10, "the webhook")
        assert time.monotonic() - started < 5  # woken by the notification, not by the 30 s poll
    finally:
        dispatcher.stop()
        running.join(timeout=10)
    assert not running.is_alive()
