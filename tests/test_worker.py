"""End to end with a real Celery worker process: POST /esp InviteToChat is
committed, published to the real broker, and a `celery worker` subprocess
delivers it, to the built-in hub simulator (receipt and automatic reply) and
to a real webhook receiver on 127.0.0.1 (signature checked here with `hmac`).

The worker is a separate process, so it must share the test database: this
needs a server database (DATABASE_URL, e.g. PostgreSQL). On the embedded
in-memory SQLite the tests are skipped locally and fail in CI."""

import copy
import hashlib
import hmac
import io
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django import db
from django.core.management import call_command
from django.test import Client

from channels_app.management.commands.seed_demo import DEMO_CHANNEL_ID
from channels_app.models import Channel, Delivery, Interaction, Message
from channels_app.options_catalog import CHANNEL
from channels_app.services.options import option_value
from tests.workers import WorkerProcess, require_shared_database

FIXTURES = Path(__file__).parent / "fixtures"
SPEC_REQUEST = json.loads((FIXTURES / "invite_to_chat_request.json").read_text())
SPEC_RESPONSE = json.loads((FIXTURES / "invite_to_chat_standard_response.json").read_text())
SPEC_TEXT = (
    "Dear John Smith, your bill of $129.99 is due on March 5 / 2020. "
    "Our agent will call you on March 7 / 2020 at 3:00 PM."
)
DEADLINE_SECONDS = 30

# The worker sees only committed rows; serialized_rollback restores the rows the
# migrations wrote (options, periodic tasks) after the flush of each test.
worker_db = pytest.mark.django_db(transaction=True, serialized_rollback=True)


# --- the worker process ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker(django_db_setup, tmp_path_factory):
    """One `celery worker` subprocess for the module, on the test database and the suite's broker."""
    require_shared_database()
    running = WorkerProcess(tmp_path_factory.mktemp("worker") / "celery.log")
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def wait_for(condition: Callable[[], object], worker: WorkerProcess, *, what: str, diagnose: Callable[[], str] = str):
    """Poll `condition` until it is true or the deadline passes; fail with the worker's log."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if worker.process.poll() is not None:
            pytest.fail(f"the worker exited ({worker.process.returncode}) waiting for {what}:\n{worker.log()}")
        time.sleep(0.1)
    pytest.fail(f"timed out after {DEADLINE_SECONDS} s waiting for {what}; {diagnose()}\nworker log:\n{worker.log()}")


def diagnose(message_id: str | None = None) -> Callable[[], str]:
    def describe() -> str:
        rows = Message.objects.filter(pk=message_id) if message_id else Message.objects.all()
        messages = list(rows.values("id", "direction", "status", "external_id", "reasons"))
        deliveries = list(Delivery.objects.values("message_id", "state", "attempts", "last_error", "next_attempt_at"))
        return f"messages: {messages}; deliveries: {deliveries}"

    return describe


# --- a third party on 127.0.0.1 ----------------------------------------------------------------------------------


class Receiver:
    """A webhook receiver: records each request (headers, raw body) and answers from a script."""

    def __init__(self, answers: list[tuple[int, dict]], before_answer: Callable[[dict], None] | None = None):
        self.requests: list[dict] = []
        self._answers = list(answers)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                record = {"path": self.path, "headers": dict(self.headers), "body": body}
                with receiver._lock:
                    receiver.requests.append(record)
                    status, answer = receiver._answers.pop(0) if len(receiver._answers) > 1 else receiver._answers[0]
                if before_answer is not None:
                    before_answer(record)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory():
    receivers = []

    def start(*answers: tuple[int, dict], before_answer=None) -> Receiver:
        receiver = Receiver(list(answers) or [(200, {"messageId": "ext-1"})], before_answer)
        receivers.append(receiver)
        return receiver

    yield start
    for receiver in receivers:
        receiver.close()


# --- helpers -----------------------------------------------------------------------------------------------------


def create_spec_response(staff_api):
    response = staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json")
    assert response.status_code == 201, response.json()


def invite(api, channel_id: str, **headers) -> str:
    request = copy.deepcopy(SPEC_REQUEST)
    request["Parameters"]["_umsChannel"] = channel_id
    response = api.post("/esp", request, format="json", **headers)
    assert response.status_code == 200, response.json()
    return response.json()["Result"]["_umsChatSessionId"]


def outbound_message(interaction_id: str) -> Message:
    return Message.objects.get(interaction_id=interaction_id, direction="outbound")


# --- the hub simulator -----------------------------------------------------------------------------------------------


@worker_db
def test_an_invitation_on_the_simulator_is_delivered_and_answered(worker, staff_api):
    # given: the demo simulator channel, as `make run` loads it, and the spec's standard response
    call_command("seed_demo", stdout=io.StringIO())
    create_spec_response(staff_api)
    channel = Channel.objects.get(channel_id=DEMO_CHANNEL_ID)
    auto_reply = option_value(section=CHANNEL, name="simulator-auto-reply", channel=channel)
    assert auto_reply

    # when
    session_id = invite(staff_api, DEMO_CHANNEL_ID)

    # then: the worker sends it, the simulator's receipt marks it delivered ...
    message = outbound_message(session_id)
    wait_for(
        lambda: Message.objects.filter(pk=message.pk, status="delivered").exists(),
        worker, what="the Delivered receipt", diagnose=diagnose(message.pk),
    )
    message.refresh_from_db()
    assert message.external_id
    assert message.sent_at is not None and message.delivered_at is not None
    assert message.payload["text"] == SPEC_TEXT

    # ... and the simulated customer answers in the same interaction
    reply = wait_for(
        lambda: Message.objects.filter(interaction_id=session_id, direction="inbound").first(),
        worker, what="the automatic reply", diagnose=diagnose(),
    )
    assert reply.text == auto_reply
    interaction = Interaction.objects.get(pk=session_id)
    assert (interaction.type, interaction.state) == ("Outbound", "active")
    assert interaction.user_data["_umsMsgPlainText"] == auto_reply
    assert Delivery.objects.get(message=message).state == "delivered"


# --- the webhook -----------------------------------------------------------------------------------------------------


@worker_db
def test_an_invitation_on_a_webhook_channel_is_posted_signed_and_sent(worker, staff_api, channel, receiver_factory):
    # given
    receiver = receiver_factory((200, {"messageId": "ext-1"}))
    Channel.objects.filter(pk=channel.pk).update(webhook_url=receiver.url)
    channel.refresh_from_db()
    create_spec_response(staff_api)

    # when
    session_id = invite(staff_api, channel.channel_id, HTTP_X_B3_TRACEID="463ac35c9f6413ad")

    # then: the message ends sent with the third party's id
    message = outbound_message(session_id)
    wait_for(
        lambda: Message.objects.filter(pk=message.pk, status="sent").exists(),
        worker, what="the webhook to be accepted", diagnose=diagnose(message.pk),
    )
    message.refresh_from_db()
    assert message.external_id == "ext-1"
    assert message.sent_at is not None
    assert Interaction.objects.get(pk=session_id).state != "ended"

    # and the third party got one signed request in API.md's shape
    [request] = receiver.requests
    headers = {name.lower(): value for name, value in request["headers"].items()}
    raw = request["body"]
    expected = "sha1=" + hmac.new(channel.secret.encode(), raw, hashlib.sha1).hexdigest()
    assert hmac.compare_digest(headers["x-hub-signature"], expected)
    assert headers["content-type"] == "application/json"
    assert headers["x-b3-traceid"] == "463ac35c9f6413ad"
    body = json.loads(raw)
    assert body["channel"] == {
        "id": "channel-whatsapp-REAL",
        "type": "whatsapp",
        "from": {"id": "19251112222"},
        "to": {"id": "15556667777"},
        "messageId": message.pk,
    }
    assert body["type"] == "Notification"
    assert body["text"] == SPEC_TEXT
    assert body["template"]["name"] == "bill_reminder"


@worker_db
def test_a_webhook_answered_with_503_is_redelivered_by_the_worker(worker, staff_api, channel, receiver_factory):
    # given: one redelivery, two seconds after the first attempt
    receiver = receiver_factory((503, {"error": "busy"}), (200, {"messageId": "ext-2"}))
    Channel.objects.filter(pk=channel.pk).update(webhook_url=receiver.url, retry_attempts=1, retry_timeout_seconds=2)
    create_spec_response(staff_api)

    # when
    session_id = invite(staff_api, channel.channel_id)

    # then
    message = outbound_message(session_id)
    wait_for(
        lambda: Message.objects.filter(pk=message.pk, status="sent").exists(),
        worker, what="the redelivery", diagnose=diagnose(message.pk),
    )
    assert Message.objects.get(pk=message.pk).external_id == "ext-2"
    assert len(receiver.requests) == 2
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]  # the same message, signed the same
    delivery = Delivery.objects.get(message=message)
    assert (delivery.state, delivery.attempts) == ("delivered", 2)
    assert list(delivery.attempt_log.values_list("status_code", flat=True)) == [503, 200]


@worker_db
def test_a_webhook_answered_with_4xx_fails_without_retry(worker, staff_api, channel, receiver_factory):
    # given
    receiver = receiver_factory((400, {"error": "bad request"}))
    Channel.objects.filter(pk=channel.pk).update(webhook_url=receiver.url, retry_attempts=3, retry_timeout_seconds=3)
    create_spec_response(staff_api)

    # when
    session_id = invite(staff_api, channel.channel_id)

    # then
    message = outbound_message(session_id)
    wait_for(
        lambda: Message.objects.filter(pk=message.pk, status="failed").exists(),
        worker, what="the failure", diagnose=diagnose(message.pk),
    )
    assert len(receiver.requests) == 1
    assert Delivery.objects.get(message=message).state == "failed"
    assert Message.objects.get(pk=message.pk).reasons[0]["code"] == 500


@worker_db
def test_a_receipt_sent_before_the_webhook_answer_is_not_lost(worker, staff_api, channel, receiver_factory):
    # given: a third party that reports delivery at once, then answers the webhook (both name "ext-9")
    secret = channel.secret

    def report_delivery(record):
        receipt = {"messages": [{"type": "Receipt", "status": "Delivered",
                                 "channel": {"messageId": "ext-9", "from": {"id": "19251112222"},
                                             "to": {"id": "15556667777"}}}]}
        raw = json.dumps(receipt).encode()
        signature = "sha1=" + hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest()
        try:
            answer = Client().post(f"/nexus/v3/channels/{channel.channel_id}/messages", raw,
                                   content_type="application/json", HTTP_X_HUB_SIGNATURE=signature)
            assert answer.status_code == 200, answer.content
        finally:
            db.connection.close()  # this thread's own connection

    receiver = receiver_factory((200, {"messageId": "ext-9"}), before_answer=report_delivery)
    Channel.objects.filter(pk=channel.pk).update(webhook_url=receiver.url)
    create_spec_response(staff_api)

    # when
    session_id = invite(staff_api, channel.channel_id)

    # then
    message = outbound_message(session_id)
    wait_for(
        lambda: Message.objects.filter(pk=message.pk).exclude(status="queued").exists(),
        worker, what="the webhook to be answered", diagnose=diagnose(message.pk),
    )
    message.refresh_from_db()
    assert (message.external_id, message.status) == ("ext-9", "delivered")
