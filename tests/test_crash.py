"""A worker SIGKILLed in the middle of the work: nothing is lost and nothing
is delivered twice once a new worker runs (Redis or whichever broker
CELERY_BROKER_URL names; CI runs these on Redis)."""


import time

import pytest
from django.test import override_settings

from channels_app.models import CampaignRecipient, Delivery, DeliveryState, Message
from channels_app.services.campaigns import campaign_transition, campaigns_tick
from channels_app.services.deliveries import deliveries_due, delivery_enqueue
from channels_app.services.interactions import message_queue_outbound
from tests.factories import InteractionFactory
from tests.workers import WorkerProcess, poll_until, require_shared_database

# Short leases so that the work of a killed worker is taken over within seconds.
FAST_RECOVERY = {"DELIVERY_LEASE_SECONDS": "2", "DELIVERY_RELAY_GRACE_SECONDS": "0",
                 "CAMPAIGN_CLAIM_LEASE_SECONDS": "2", "CAMPAIGN_STALLED_SECONDS": "1"}
crash_db = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def relay_until(condition, timeout: float, what: str):
    """Run the relay and the campaign tick (what beat does every few seconds) until `condition` holds."""
    def step():
        for delivery_id in deliveries_due():
            delivery_enqueue(delivery_id)
        campaigns_tick()
        return condition()

    return poll_until(step, timeout, what)


@pytest.fixture
def fast_recovery():
    with override_settings(**{name: float(value) for name, value in FAST_RECOVERY.items()}):
        yield


@crash_db
def test_a_worker_killed_while_sending_loses_nothing_and_sends_once(webhook_channel, receiver, tmp_path,
                                                                     fast_recovery):
    require_shared_database()
    # given a receiver that answers the first request late, so the kill hits a request in flight
    receiver.plan.extend(["hang:4"])
    worker = WorkerProcess(tmp_path / "first.log", env=FAST_RECOVERY)
    try:
        worker.wait_ready()
        interaction = InteractionFactory(channel=webhook_channel, client_id="15556667777", queue="1:session-chat",
                                         outbound=True, user_data={})
        message = message_queue_outbound(interaction=interaction, payload={"type": "Text", "text": "Hello"})

        # when the worker dies in the middle of the request
        receiver.wait_for(1)
        worker.kill()
    finally:
        worker.stop()
    successor = WorkerProcess(tmp_path / "second.log", env=FAST_RECOVERY)
    try:
        successor.wait_ready()
        relay_until(lambda: Message.objects.get(pk=message.pk).status == "sent", 30, "the message to be sent")
    finally:
        successor.stop()

    # then it was delivered once: one accepted attempt, and every post carried the same webhook-id
    delivery = Delivery.objects.get(message_id=message.pk)
    assert delivery.state == DeliveryState.DELIVERED
    assert [a.outcome for a in delivery.attempt_log.all()] == ["accepted"]
    ids = {request.headers["webhook-id"] for request in receiver.received}
    assert ids == {message.pk}
    assert len(receiver.received) == 2  # the one the kill cut off, and the one that succeeded


@crash_db
def test_a_worker_killed_mid_campaign_ends_with_every_recipient_sent_once(webhook_channel, receiver, tmp_path,
                                                                          staff_api, fast_recovery):
    require_shared_database()
    from tests.test_campaigns import SPEC_RESPONSE, recipient

    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    count = 60
    created = staff_api.post("/api/campaigns/", {
        "name": "Crash", "channel": webhook_channel.channel_id, "standard_response": SPEC_RESPONSE["id"],
        "rate_per_second": 20, "recipients": [recipient(n) for n in range(1, count + 1)],
    }, format="json")
    assert created.status_code == 201, created.json()
    campaign_id = created.json()["id"]
    worker = WorkerProcess(tmp_path / "first.log", env=FAST_RECOVERY)
    try:
        worker.wait_ready()
        campaign_transition(campaign_id=campaign_id, action="start")
        # when the worker dies a third of the way through
        poll_until(lambda: len(receiver.received) >= count // 3, 30, "a third of the campaign")
        worker.kill()
    finally:
        worker.stop()
    successor = WorkerProcess(tmp_path / "second.log", env=FAST_RECOVERY)
    try:
        successor.wait_ready()
        relay_until(
            lambda: len({r.headers["webhook-id"] for r in receiver.received}) >= count
            and not Message.objects.filter(campaign_recipient__campaign_id=campaign_id, status="queued").exists(),
            90, "every recipient to be sent",
        )
    finally:
        successor.stop()

    # then every recipient has exactly one message, each sent, each received under one webhook-id
    recipients = CampaignRecipient.objects.filter(campaign_id=campaign_id)
    assert recipients.filter(message__isnull=True).count() == 0
    assert Message.objects.filter(campaign_recipient__campaign_id=campaign_id).count() == count
    assert set(Message.objects.filter(campaign_recipient__campaign_id=campaign_id).values_list("status", flat=True)) \
        == {"sent"}
    received_ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(set(received_ids)) == count
    assert len(received_ids) - len(set(received_ids)) <= 1  # at most the one post the kill cut off




@crash_db
def test_a_worker_killed_while_a_campaign_batch_sends_leaves_only_its_sends_in_flight_to_send_again(
        webhook_channel, receiver, tmp_path, staff_api):
    """A batch's webhooks go out SEND_CONCURRENCY at a time and each outcome is
    written as it comes in; what a kill leaves posted but unrecorded (and so
    sent again once the lease runs out) is at most the sends then in flight."""
    require_shared_database()
    from channels_app.models import DeliveryAttempt
    from channels_app.services.campaigns import BATCH_SIZE
    from channels_app.services.deliveries import SEND_CONCURRENCY
    from tests.test_campaigns import SPEC_RESPONSE, recipient

    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    created = staff_api.post("/api/campaigns/", {
        "name": "Kill mid-batch", "channel": webhook_channel.channel_id, "standard_response": SPEC_RESPONSE["id"],
        "recipients": [recipient(n) for n in range(1, BATCH_SIZE + 1)],
    }, format="json")
    assert created.status_code == 201, created.json()
    worker = WorkerProcess(tmp_path / "worker.log")
    try:
        worker.wait_ready()
        campaign_transition(campaign_id=created.json()["id"], action="start")
        # when the worker dies once a fifth of the batch has been posted (looked at every 2 ms)
        deadline = time.monotonic() + 60
        while len(receiver.received) < BATCH_SIZE // 5 and time.monotonic() < deadline:
            time.sleep(0.002)
        worker.kill()
    finally:
        worker.stop()

    # then the webhooks posted but not recorded are at most those that were in flight
    posted = {r.headers["webhook-id"] for r in receiver.received}
    recorded = set(DeliveryAttempt.objects.filter(delivery__message_id__in=posted)
                   .values_list("delivery__message_id", flat=True))
    assert len(posted) >= BATCH_SIZE // 5
    assert len(recorded) < BATCH_SIZE, "the kill came after the batch: nothing was proved"
    assert len(posted - recorded) <= SEND_CONCURRENCY, (len(posted), len(recorded))
