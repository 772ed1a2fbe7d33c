"""Webhook delivery against a real HTTP receiver on 127.0.0.1.

The tests call `delivery_attempt`, the body of the Celery task `deliver`, so
that each attempt's outcome can be asserted; workers are covered in
tests/test_worker.py."""

import base64
import dataclasses
import hashlib
import hmac
import re
import threading
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse
from django.utils import timezone

from channels_app.admin.deliveries import duration_in_words
from channels_app.models import Channel, Delivery, DeliveryState, Message
from channels_app.outbound import failure_in_words
from channels_app.retries import backoff_delays, retry_decision
from channels_app.services.deliveries import deliveries_due, delivery_attempt
from channels_app.services.interactions import message_queue_outbound
from channels_app.transports.base import OutgoingMessage, SendOutcome
from channels_app.transports.webhook import WebhookTransport
from tests.factories import InteractionFactory
from tests.test_browser import admin_sign_in, browser  # noqa: F401  (browser: the fixture)


@pytest.fixture
def queued(webhook_channel, django_capture_on_commit_callbacks):
    interaction = InteractionFactory(
        channel=webhook_channel, client_id="15556667777", queue="1:session-chat", outbound=True, user_data={},
    )
    with django_capture_on_commit_callbacks(execute=False):
        message = message_queue_outbound(
            interaction=interaction, payload={"type": "Text", "text": "Agent message text"}, trace_id="trace-1"
        )
    return message


def _due_now(delivery: Delivery) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


@pytest.mark.django_db
def test_accepted_webhook_is_signed_and_shaped_as_the_contract(queued, receiver):
    # when
    result = delivery_attempt(delivery_id=queued.delivery.pk)

    # then
    assert result.outcome == SendOutcome.ACCEPTED
    request = receiver.wait_for(1)[0]
    expected = "sha1=" + hmac.new(b"channel-secret", request.body, hashlib.sha1).hexdigest()
    assert request.headers["X-Hub-Signature"] == expected
    expected_256 = "sha256=" + hmac.new(b"channel-secret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Hub-Signature-256"] == expected_256
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-B3-TraceId"] == "trace-1"
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode() + request.body
    standard = "v1," + base64.b64encode(hmac.new(b"channel-secret", signed, hashlib.sha256).digest()).decode()
    assert request.headers["webhook-signature"] == standard
    assert request.json() == {
        "channel": {
            "id": "channel-whatsapp-REAL", "type": "whatsapp", "from": {"id": "19251112222"},
            "to": {"id": "15556667777"}, "messageId": queued.pk,
        },
        "type": "Text",
        "text": "Agent message text",
    }
    queued.refresh_from_db()
    assert (queued.status, queued.external_id) == ("sent", f"ext-{queued.pk}")
    assert queued.delivery.state == DeliveryState.DELIVERED
    assert delivery_attempt(delivery_id=queued.delivery.pk) is None  # never sent again
    assert len(receiver.received) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("failure", [500, 503, "drop"])
def test_server_errors_and_dropped_connections_are_retried(queued, receiver, failure):
    receiver.plan.extend([failure])
    delivery = queued.delivery

    first = delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert first.outcome == SendOutcome.RETRY
    assert delivery.state == DeliveryState.PENDING
    assert delivery.next_attempt_at > timezone.now()
    assert delivery_attempt(delivery_id=delivery.pk) is None  # not due yet

    _due_now(delivery)
    second = delivery_attempt(delivery_id=delivery.pk)

    assert second.outcome == SendOutcome.ACCEPTED
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED
    assert [a.outcome for a in delivery.attempt_log.all()] == ["retry", "accepted"]


@pytest.mark.django_db
def test_client_errors_fail_at_once(queued, receiver):
    receiver.plan.extend([404])

    result = delivery_attempt(delivery_id=queued.delivery.pk)

    assert result.outcome == SendOutcome.FAILED
    queued.refresh_from_db()
    assert queued.status == "failed"
    assert queued.reasons == [{"code": 500, "message": "Webhook failed after 1 attempt(s): answered 404"}]
    assert queued.delivery.state == DeliveryState.FAILED


@pytest.mark.django_db
def test_after_the_last_attempt_the_delivery_fails_and_nothing_more_is_sent(queued, receiver):
    receiver.plan.extend([500] * 10)
    delivery = queued.delivery

    for _ in range(4):  # the first attempt and retry_attempts=3 redeliveries
        _due_now(delivery)
        delivery_attempt(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED
    assert delivery.attempts == 4
    outcomes = [(a.outcome, a.status_code) for a in delivery.attempt_log.order_by("number")]
    assert outcomes == [("retry", 500)] * 3 + [("failed", 500)]  # the last one ended it
    _due_now(delivery)
    assert delivery_attempt(delivery_id=delivery.pk) is None
    assert len(receiver.received) == 4
    assert Message.objects.get(pk=queued.pk).status == "failed"


@pytest.mark.slow  # waits out the 10-second webhook timeout
@pytest.mark.django_db
def test_a_receiver_that_takes_longer_than_10_seconds_counts_as_a_failure(queued, receiver):
    receiver.plan.extend(["hang:11"])

    result = delivery_attempt(delivery_id=queued.delivery.pk)

    assert result.outcome == SendOutcome.RETRY
    assert 9_000 <= result.latency_ms < 11_000


def test_backoff_spreads_the_redeliveries_over_the_retry_timeout():
    delays = backoff_delays(retry_attempts=3, retry_timeout_seconds=70)

    assert delays == [10.0, 20.0, 40.0]
    assert backoff_delays(retry_attempts=0, retry_timeout_seconds=70) == []


@pytest.mark.parametrize("k", range(0, 4))
def test_attempt_k_plus_one_follows_the_schedule(k):
    start = timezone.now()
    delays = backoff_delays(retry_attempts=3, retry_timeout_seconds=70)
    at = start
    for made in range(1, k + 1):
        decision = retry_decision(
            outcome=SendOutcome.RETRY, attempts_made=made, first_attempt_at=start, now=at,
            retry_attempts=3, retry_timeout_seconds=70,
        )
        expected = start + timedelta(seconds=sum(delays[:made]))
        assert abs((decision.next_attempt_at - expected).total_seconds()) <= 0.1 * delays[made - 1]
        at = decision.next_attempt_at
    final = retry_decision(
        outcome=SendOutcome.ACCEPTED, attempts_made=k + 1, first_attempt_at=start, now=at,
        retry_attempts=3, retry_timeout_seconds=70,
    )
    assert final.final_state == "delivered"


def test_no_retry_past_the_last_attempt_or_on_4xx():
    start = timezone.now()
    assert retry_decision(outcome=SendOutcome.RETRY, attempts_made=4, first_attempt_at=start, now=start,
                          retry_attempts=3, retry_timeout_seconds=70).final_state == "failed"
    assert retry_decision(outcome=SendOutcome.FAILED, attempts_made=1, first_attempt_at=start, now=start,
                          retry_attempts=3, retry_timeout_seconds=70).final_state == "failed"


@pytest.mark.django_db
def test_relay_finds_due_deliveries_whose_task_was_lost(queued):
    # given a delivery whose publish never happened (the on_commit callback was not run)
    delivery = queued.delivery
    assert deliveries_due() == []  # fresh ones belong to the task published at commit

    # when it has waited past the grace period
    Delivery.objects.filter(pk=delivery.pk).update(published_at=timezone.now() - timedelta(minutes=2))

    # then the relay picks it, once: a task it publishes is not published again while it waits in the broker
    assert deliveries_due() == [delivery.pk]
    assert deliveries_due() == []


@pytest.mark.django_db
def test_a_lease_keeps_a_second_worker_away_until_it_runs_out(queued, receiver):
    delivery = queued.delivery
    Delivery.objects.filter(pk=delivery.pk).update(lease_until=timezone.now() + timedelta(seconds=30), lease_token="x")

    assert delivery_attempt(delivery_id=delivery.pk) is None

    Delivery.objects.filter(pk=delivery.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert delivery_attempt(delivery_id=delivery.pk).outcome == SendOutcome.ACCEPTED


@pytest.mark.django_db
def test_failed_delivery_can_be_redelivered_from_the_admin(admin_client, queued, receiver):
    receiver.plan.extend([400])
    delivery_attempt(delivery_id=queued.delivery.pk)

    response = admin_client.post(
        reverse("admin:channels_app_delivery_changelist"),
        {"action": "redeliver", "_selected_action": [queued.delivery.pk]},
    )

    assert response.status_code == 302
    delivery = Delivery.objects.get(pk=queued.delivery.pk)
    assert (delivery.state, delivery.attempts) == (DeliveryState.PENDING, 0)
    assert delivery_attempt(delivery_id=delivery.pk).outcome == SendOutcome.ACCEPTED
    assert Message.objects.get(pk=queued.pk).status == "sent"
    page = admin_client.get(reverse("admin:channels_app_delivery_change", args=[delivery.pk])).content.decode()
    assert "accepted" in page and "failed" in page
    pending = admin_client.get(reverse("admin:channels_app_delivery_changelist") + "?state__exact=pending")
    assert pending.status_code == 200


class _AnswersWith(BaseHTTPRequestHandler):
    """A third party with a fixed answer to every POST (subclasses set `answer`)."""

    answer = b'{"messageId": "ext-1"}'

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.answer)))
        self.end_headers()
        self.wfile.write(self.answer)


@contextmanager
def _third_party(handler, server_class=ThreadingHTTPServer):
    """Serve `handler` on 127.0.0.1; yields an OutgoingMessage addressed to it."""
    server = server_class(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield OutgoingMessage(
            message_id="m1", interaction_id="i1", channel_id="c", media_type="sms", business_id="1", client_id="2",
            payload={"type": "Text", "text": "hi"}, webhook_url=f"http://127.0.0.1:{server.server_address[1]}/hook",
            secret="s",
        )
    finally:
        server.shutdown()


def test_a_keep_alive_connection_the_third_party_closed_is_not_reused():
    """The transport keeps connections open; when the receiver closes one while
    it is idle, the next webhook goes over a new connection instead of failing."""
    connections = []
    hung_up = threading.Event()

    class ClosesAfterEachAnswer(_AnswersWith):
        protocol_version = "HTTP/1.1"  # answers without "Connection: close", then hangs up

        def do_POST(self):
            connections.append(self.client_address)
            super().do_POST()
            self.close_connection = True

    class Server(ThreadingHTTPServer):
        def shutdown_request(self, request):
            super().shutdown_request(request)
            hung_up.set()

    with _third_party(ClosesAfterEachAnswer, Server) as message:
        first = WebhookTransport().send(message)
        assert hung_up.wait(5)
        second = WebhookTransport().send(message)

    assert (first.outcome, second.outcome) == (SendOutcome.ACCEPTED, SendOutcome.ACCEPTED)
    assert second.external_id == "ext-1"
    assert len(set(connections)) == 2  # the closed connection was not reused


def test_a_chunked_answer_is_read_and_its_connection_kept_for_the_next_webhook():
    """The transport writes the request itself and lets http.client read the answer: a chunked one is read whole,
    and the connection serves the next webhook."""
    connections = []

    class Chunked(_AnswersWith):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            connections.append(self.client_address)
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b'{"messageId": ', b'"ext-chunked"}'):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")

    with _third_party(Chunked) as message:
        results = [WebhookTransport().send(message) for _ in range(2)]

    assert [(r.outcome, r.external_id) for r in results] == [(SendOutcome.ACCEPTED, "ext-chunked")] * 2
    assert len(connections) == 2 and len(set(connections)) == 1  # one connection for both


def test_a_trace_id_that_would_end_its_header_fails_at_once_and_nothing_is_sent():
    posts = []

    class Counts(_AnswersWith):
        def do_POST(self):
            posts.append(self.path)
            super().do_POST()

    with _third_party(Counts) as message:
        forged = dataclasses.replace(message, trace_id="t1\r\nX-Injected: yes")
        result = WebhookTransport().send(forged)
        after = WebhookTransport().send(message)

    assert (result.outcome, result.status_code) == (SendOutcome.FAILED, None)
    assert result.error.startswith("Not sent: Invalid header value")
    assert after.outcome == SendOutcome.ACCEPTED and posts == ["/hook"]  # only the second one arrived


def test_a_2xx_answer_nested_too_deeply_counts_as_delivered_without_an_id():
    """The answer was a success: sending again would duplicate the message; only its receipts cannot be matched."""

    class NestedAnswer(_AnswersWith):
        answer = b"[" * 100_000 + b"]" * 100_000

    with _third_party(NestedAnswer) as message:
        result = WebhookTransport().send(message)

    assert (result.outcome, result.external_id) == (SendOutcome.ACCEPTED, "")


# --- the delivery pages of the admin, read as a person reads them (issue 22, item 6) ---------------------------


@pytest.mark.django_db
def test_each_row_of_the_delivery_list_opens_its_delivery(admin_client, queued):
    page = admin_client.get(reverse("admin:channels_app_delivery_changelist")).content.decode()

    # a link of its own, with its text (not wrapped around the message's link, which a browser splits)
    change = reverse("admin:channels_app_delivery_change", args=[queued.delivery.pk])
    assert re.search(rf'<a href="{change}">[^<]+</a>', page), page


@pytest.mark.django_db
def test_a_delivery_that_found_no_one_reads_connection_refused_and_its_last_outcome_failed(admin_client, queued):
    # given: a webhook where nothing listens, and no redelivery
    channel = queued.delivery.channel
    channel.webhook_url, channel.retry_attempts = "http://127.0.0.1:9/hook", 0
    channel.save()

    # when
    assert delivery_attempt(delivery_id=queued.delivery.pk).outcome == SendOutcome.RETRY

    # then: no answer, so no status code; the attempt that ended it says failed
    delivery = Delivery.objects.get(pk=queued.delivery.pk)
    attempt = delivery.attempt_log.get()
    assert delivery.state == DeliveryState.FAILED
    assert (attempt.outcome, attempt.status_code) == ("failed", None)
    page = admin_client.get(reverse("admin:channels_app_delivery_change", args=[delivery.pk])).content.decode()
    assert "connection refused" in page
    assert "<details" in page and "ConnectionRefusedError" in page  # the raw detail, behind the words
    assert "HTTP 5" not in page and ">500<" not in page
    assert Message.objects.get(pk=queued.pk).reasons[0]["message"] == \
        "Webhook failed after 1 attempt(s): connection refused"
    listed = admin_client.get(reverse("admin:channels_app_delivery_changelist")).content.decode()
    assert "connection refused" in listed and 'title="ConnectionRefusedError' in listed


@pytest.mark.django_db
def test_an_answer_reads_answered_and_its_code(admin_client, queued, receiver):
    receiver.plan.extend([503])

    delivery_attempt(delivery_id=queued.delivery.pk)

    page = admin_client.get(reverse("admin:channels_app_delivery_change", args=[queued.delivery.pk])).content.decode()
    assert "answered 503" in page


@pytest.mark.parametrize("error, status_code, words", [
    ("gaierror: [Errno -2] Name or service not known", None, "host name not found"),
    ("gaierror: [Errno -5] No address associated with hostname", None, "host name not found"),
    ("gaierror: [Errno -3] Temporary failure in name resolution", None,
     "host name could not be looked up (DNS did not answer)"),
    ("ConnectionRefusedError: [Errno 111] Connection refused", None, "connection refused"),
    ("TimeoutError: timed out", None, "timed out after 10 s"),
    ("The answer took longer than 10 seconds.", None, "timed out after 10 s"),
    ("ConnectionResetError: [Errno 104] Connection reset by peer", None, "connection reset by the third party"),
    ("RemoteDisconnected: Remote end closed connection without response", None,
     "connection closed without an answer"),
    ("OSError: [Errno 113] No route to host", None, "host unreachable"),
    ("SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", None,
     "TLS certificate not accepted"),
    ("HTTP 503", 503, "answered 503"),
    ("throttled or unavailable: (130429) Rate limit hit", 400, "answered 400: throttled or unavailable: (130429) "
                                                               "Rate limit hit"),
    ("blocked address: example.test is 10.0.0.1 (private)", None,
     "blocked address: example.test is 10.0.0.1 (private)"),
    ("", None, ""),
])
def test_an_attempts_error_in_words(error, status_code, words):
    assert failure_in_words(error, status_code, timeout_seconds=10) == words


@pytest.mark.django_db
def test_the_circuit_reads_down_for_minutes_not_a_timestamp(admin_client, queued):
    channel = queued.delivery.channel
    Channel.objects.filter(pk=channel.pk).update(consecutive_failures=5,
                                                 down_since=timezone.now() - timedelta(minutes=3, seconds=10))

    channels = admin_client.get(reverse("admin:channels_app_channel_changelist")).content.decode()
    delivery = admin_client.get(reverse("admin:channels_app_delivery_change", args=[queued.delivery.pk]))

    assert "down for 3 min" in channels and "down</b> since" not in channels
    assert "down for 3 min" in delivery.content.decode()


@pytest.mark.parametrize("seconds, words", [(0, "0 s"), (40, "40 s"), (190, "3 min"), (7500, "2 h 5 min"),
                                            (3 * 86400 + 60, "3 days")])
def test_durations_in_words(seconds, words):
    assert duration_in_words(timedelta(seconds=seconds)) == words


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_operator_opens_a_failed_delivery_from_the_list_and_reads_what_happened(
        browser, live_server, django_user_model, queued, receiver):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.test_admin_whatsapp_templates import _shot

    # given: a first attempt answered 503, a second that found no one (the last), and the channel down
    channel, delivery = queued.delivery.channel, queued.delivery
    channel.retry_attempts = 1
    channel.save()
    receiver.plan.extend([503])
    delivery_attempt(delivery_id=delivery.pk)
    Channel.objects.filter(pk=channel.pk).update(webhook_url="http://127.0.0.1:9/hook")
    _due_now(delivery)
    delivery_attempt(delivery_id=delivery.pk)
    Channel.objects.filter(pk=channel.pk).update(consecutive_failures=5,
                                                 down_since=timezone.now() - timedelta(minutes=3, seconds=5))
    django_user_model.objects.create_superuser("admin", password="browser-pass-123")
    wait = WebDriverWait(browser, 20)
    browser.set_window_size(1400, 1000)
    admin_sign_in(browser, live_server, wait)

    # when: the operator clicks the row of the list
    browser.get(f"{live_server.url}{reverse('admin:channels_app_delivery_changelist')}")
    assert "connection refused" in browser.page_source
    _shot(browser, "22d-deliveries", 450)
    browser.find_element(By.LINK_TEXT, f"#{delivery.pk}").click()
    wait.until(expected_conditions.url_contains(f"/delivery/{delivery.pk}/change/"))

    # then: its page, in words, the raw detail one click away, the circuit as a duration, and Retry now
    for details in browser.find_elements(By.CSS_SELECTOR, "details.dms-raw-error"):
        details.find_element(By.TAG_NAME, "summary").click()
    page = browser.page_source
    assert "answered 503" in page and "connection refused" in page and "down for 3 min" in page
    assert "ConnectionRefusedError" in page
    browser.execute_script("window.scrollTo(0, 0)")
    _shot(browser, "22d-delivery-failed", 1500)
    browser.find_element(By.CSS_SELECTOR, "#delivery-retry button").click()
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist")))
    assert Delivery.objects.get(pk=delivery.pk).state == DeliveryState.PENDING


@pytest.mark.django_db
@pytest.mark.parametrize("answer", [200, 404])
def test_the_agent_holding_the_interaction_sees_the_delivery_s_outcome_live(queued, receiver, answer):
    from channels_app.models import AgentEvent
    from tests.conftest import member

    # given the interaction is held by an agent of the workspace
    ann = member("ann", "WhatsApp agent", tenants=[queued.channel.tenant])
    queued.interaction.assigned_to = ann
    queued.interaction.save(update_fields=["assigned_to"])
    receiver.plan.extend([answer])

    # when the webhook takes the message, or refuses it for good
    delivery_attempt(delivery_id=queued.delivery.pk)

    # then her page hears it (no longer "Sending..."): sent, or failed with the reason
    (event,) = AgentEvent.objects.filter(user=ann, kind="receipt")
    if answer == 200:
        assert (event.data["message"], event.data["status"], event.data["reasons"]) == (queued.pk, "sent", [])
    else:
        assert event.data["status"] == "failed"
        assert event.data["reasons"] == [{"code": 500, "message": "Webhook failed after 1 attempt(s): answered 404"}]


@pytest.mark.django_db
def test_an_interaction_nobody_holds_makes_no_event_when_its_message_is_delivered(queued, receiver):
    from channels_app.models import AgentEvent

    delivery_attempt(delivery_id=queued.delivery.pk)

    assert not AgentEvent.objects.exists()
