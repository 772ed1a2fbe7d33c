"""The outbox's crash window: a process killed right after its message is
committed loses nothing, even when no dispatcher heard its notification:
the dispatcher started afterwards finds it and sends it once. The CI size of
bench/outbox_crash.py (which runs 1,000 crashes) with its crash driver."""

import os

import pytest

from bench import outbox_crash
from channels_app.models import Delivery, DeliveryState, Message
from tests import workers
from tests.workers import DispatcherProcess, WorkerProcess, poll_until, require_shared_database

CRASHES = 20
crash_db = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@crash_db
def test_messages_of_processes_killed_right_after_their_commit_are_each_sent_once(webhook_channel, receiver,
                                                                                  tmp_path):
    require_shared_database()
    worker = WorkerProcess(tmp_path / "worker.log", dispatcher=False)
    dispatcher = None
    try:
        worker.wait_ready()
        # when each of CRASHES processes commits an agent message and is SIGKILLed at once, nobody listening
        killed, delivery_ids = outbox_crash.run_driver(
            {**os.environ, "DATABASE_URL": workers.test_database_url()}, webhook_channel.channel_id, CRASHES)
        assert killed == CRASHES
        deliveries = Delivery.objects.filter(pk__in=[int(i) for i in delivery_ids])
        message_ids = set(deliveries.values_list("message_id", flat=True))
        assert len(message_ids) == CRASHES
        assert receiver.received == []  # nothing was published to the broker

        # then a dispatcher started afterwards finds every one of them
        dispatcher = DispatcherProcess(tmp_path / "dispatcher.log")
        dispatcher.wait_ready()
        poll_until(lambda: {r.headers["webhook-id"] for r in receiver.received} >= message_ids, 60,
                   "every message to be received")
        poll_until(lambda: deliveries.filter(state=DeliveryState.DELIVERED).count() == CRASHES, 30,
                   "every delivery to be recorded")
    finally:
        if dispatcher:
            dispatcher.stop()
        worker.stop()

    # once: one POST per message, each message sent
    received_ids = [r.headers["webhook-id"] for r in receiver.received]
    assert sorted(received_ids) == sorted(message_ids)
    assert set(Message.objects.filter(pk__in=message_ids).values_list("status", flat=True)) == {"sent"}
