"""The retry schedule of webhook deliveries, end to end: agent messages sent
through the REST API, a real `celery worker` process delivering them, and
real receivers on 127.0.0.1 answering 500 a planned number of times.

The contract (API.md, channels_app/retries.py): a 5xx, a timeout (10 s) or a
connection error is redelivered; with retry timeout T and R redeliveries the
waits double and end at T: b, 2b, 4b, ... with b = T / (2**R - 1), counted
from the first attempt. So for k = 0..R failing answers the message is
delivered on attempt k + 1, each attempt within 10% of its time on that
schedule; after R + 1 failing answers the delivery has failed and nothing more
is sent. Asserted on what a third party and an operator see: the requests
the receivers get, the attempts recorded, the delivery's and message's state.

Run with `-s` to see the measured schedule as `name=value` lines. The worker
is a separate process sharing the test database: this needs PostgreSQL
(DATABASE_URL); locally without it the tests are skipped, in CI they fail."""

import time

import pytest

from channels_app.models import Delivery, DeliveryState, Message
from tests.factories import ChannelFactory, InteractionFactory
from tests.third_party import Receiver
from tests.workers import WorkerProcess, poll_until, require_shared_database

RETRY_ATTEMPTS = 3
RETRY_TIMEOUT_SECONDS = 10  # waits of 10/7 = 1.43, 2.86 and 5.71 s
TOLERANCE = 0.10
STAGGER_SECONDS = 0.25  # between the first attempts of the deliveries, so that one worker never owes two at once
QUIET_SECONDS = 3.0  # after the last attempt, how long nothing more may arrive
WEBHOOK_TIMEOUT_SECONDS = 10

worker_db = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def schedule(retry_attempts: int, retry_timeout_seconds: int) -> list[float]:
    """From first principles: seconds from the first attempt to each attempt."""
    base = retry_timeout_seconds / (2**retry_attempts - 1)
    return [base * (2**attempt - 1) for attempt in range(retry_attempts + 1)]


@pytest.fixture(scope="module")
def worker(django_db_setup, tmp_path_factory):
    require_shared_database()
    running = WorkerProcess(tmp_path_factory.mktemp("worker") / "celery.log", name="retry")
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture
def receivers():
    started = []

    def start(*plan):
        receiver = Receiver(keep_requests=True)
        receiver.plan.extend(plan)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def webhook_interaction(tenant, name: str, url: str, *, retry_attempts: int, retry_timeout_seconds: int) -> str:
    channel = ChannelFactory(
        channel_id=name, name=name, tenant=tenant, media_type="sms", transport="webhook", business_id="0123456789",
        webhook_url=url, secret="retry-secret", retry_attempts=retry_attempts,
        retry_timeout_seconds=retry_timeout_seconds,
    )
    interaction = InteractionFactory(channel=channel, client_id="15556667777", queue="1:session-chat",
                                     outbound=True, user_data={})
    return interaction.pk


def send(staff_api, interaction_id: str) -> Message:
    response = staff_api.post(f"/api/interactions/{interaction_id}/messages/", {"text": "Your bill is due."},
                              format="json")
    assert response.status_code == 202, response.content
    return Message.objects.get(pk=response.json()["id"])


def offsets(times: list[float]) -> list[float]:
    return [moment - times[0] for moment in times]


def within_tolerance(measured: list[float], expected: list[float]) -> bool:
    return len(measured) == len(expected) and all(
        abs(got - want) <= TOLERANCE * want for got, want in zip(measured, expected, strict=True)
    )


def final(delivery_id: int) -> bool:
    return Delivery.objects.filter(pk=delivery_id).exclude(state=DeliveryState.PENDING).exists()


@worker_db
def test_k_failing_answers_deliver_on_attempt_k_plus_1_on_schedule_and_the_last_failure_stops(
    worker, tenant, staff_api, receivers
):
    # given: for k = 0..R+1, a channel whose receiver answers 500 k times, then 200
    expected = schedule(RETRY_ATTEMPTS, RETRY_TIMEOUT_SECONDS)
    cases = {}
    for k in range(RETRY_ATTEMPTS + 2):
        receiver = receivers(*[500] * k)
        interaction_id = webhook_interaction(tenant, f"retry-{k}", receiver.url, retry_attempts=RETRY_ATTEMPTS,
                                             retry_timeout_seconds=RETRY_TIMEOUT_SECONDS)
        cases[k] = (receiver, interaction_id)

    # when: one agent message on each
    messages = {}
    for k, (_receiver, interaction_id) in cases.items():
        messages[k] = send(staff_api, interaction_id)
        time.sleep(STAGGER_SECONDS)  # spacing the sends, not waiting for work
    deliveries = {k: Delivery.objects.get(message=message).pk for k, message in messages.items()}
    poll_until(lambda: all(final(pk) for pk in deliveries.values()), expected[-1] + 15,
               f"every delivery to end:\n{worker.log()}")
    quiet_from = {k: len(receiver.received) for k, (receiver, _) in cases.items()}
    time.sleep(QUIET_SECONDS)  # a bounded window in which nothing more may arrive

    # then
    figures, worst = [], 0.0
    for k, (receiver, _interaction_id) in cases.items():
        delivered = k <= RETRY_ATTEMPTS
        attempts = k + 1 if delivered else RETRY_ATTEMPTS + 1
        delivery = Delivery.objects.get(pk=deliveries[k])
        message = Message.objects.get(pk=messages[k].pk)
        recorded = list(delivery.attempt_log.order_by("number"))
        arrivals = offsets([request.at for request in receiver.received])
        started = offsets([attempt.started_at.timestamp() for attempt in recorded])

        assert len(receiver.received) == quiet_from[k] == attempts, (k, arrivals)
        assert {request.json()["channel"]["messageId"] for request in receiver.received} == {message.pk}
        outcomes = ["retry"] * k + ["accepted"] if delivered else ["retry"] * (attempts - 1) + ["failed"]
        status_codes = [500] * k + [200] if delivered else [500] * attempts
        assert [(a.outcome, a.status_code) for a in recorded] == list(zip(outcomes, status_codes, strict=True))
        assert within_tolerance(arrivals, expected[:attempts]), (k, arrivals, expected)
        assert within_tolerance(started, expected[:attempts]), (k, started, expected)
        if delivered:
            assert (delivery.state, message.status, message.external_id) == ("delivered", "sent", f"ext-{message.pk}")
        else:
            assert (delivery.state, message.status) == ("failed", "failed")
            assert message.reasons  # why it failed, for the operator
        figures += [(f"k{k}_attempts", attempts), (f"k{k}_state", delivery.state),
                    (f"k{k}_offsets_s", ",".join(f"{offset:.2f}" for offset in arrivals))]
        pairs = zip(arrivals[1:], expected[1:attempts], strict=True)
        worst = max([worst, *(abs(got - want) / want for got, want in pairs)])
    sent_after_the_end = sum(len(receiver.received) - quiet_from[k] for k, (receiver, _) in cases.items())
    print()  # the figures, seen with -s
    for name, value in [("retry_attempts", RETRY_ATTEMPTS), ("retry_timeout_seconds", RETRY_TIMEOUT_SECONDS),
                        ("expected_offsets_s", ",".join(f"{offset:.2f}" for offset in expected)), *figures,
                        ("sent_after_the_end", sent_after_the_end),
                        ("worst_schedule_error_percent", f"{worst * 100:.1f}")]:
        print(f"{name}={value}")


@worker_db
def test_a_receiver_that_takes_11_seconds_counts_as_a_failure(worker, tenant, staff_api, receivers):
    # given: a receiver that answers the first request after 11 s, the next one at once
    receiver = receivers("hang:11")
    interaction_id = webhook_interaction(tenant, "retry-slow", receiver.url, retry_attempts=1,
                                         retry_timeout_seconds=1)

    # when
    message = send(staff_api, interaction_id)
    delivery_id = Delivery.objects.get(message=message).pk
    poll_until(lambda: final(delivery_id), WEBHOOK_TIMEOUT_SECONDS + 15, f"the delivery to end:\n{worker.log()}")

    # then: the first attempt gave up at 10 s and counts as a failure; the redelivery is what was delivered
    first, second = Delivery.objects.get(pk=delivery_id).attempt_log.order_by("number")
    assert first.outcome == "retry" and first.status_code is None
    assert WEBHOOK_TIMEOUT_SECONDS * 0.95 <= first.latency_ms / 1000 < 11
    assert "timeout" in first.error.lower()
    assert second.outcome == "accepted", (second.error, second.status_code)
    assert len(receiver.received) == 2
    assert Delivery.objects.get(pk=delivery_id).state == "delivered"
    message.refresh_from_db()
    assert (message.status, message.external_id) == ("sent", f"ext-{message.pk}")
    print(f"\nslow_receiver_attempt1_outcome={first.outcome}\nslow_receiver_attempt1_seconds="
          f"{first.latency_ms / 1000:.2f}\nslow_receiver_final_state=delivered")
