"""The Third-Party Messaging webhook: a signed POST to the channel's webhook URL."""

import json
import time
import uuid

import urllib3

from channels_app.messaging.signatures import signed_headers
from channels_app.transports.base import OutgoingMessage, SendOutcome, SendResult

WEBHOOK_TIMEOUT_SECONDS = 10.0  # "Send a response to the webhook within 10 seconds."
RESPONSE_EXCERPT_BYTES = 500

# One pool per worker process: connections to a third party are reused.
_pool = urllib3.PoolManager(num_pools=50, maxsize=32, retries=False)  # >= deliveries.SEND_CONCURRENCY


class WebhookTransport:
    def send(self, message: OutgoingMessage) -> SendResult:
        body = json.dumps(message.webhook_body(), separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "X-B3-TraceId": message.trace_id or uuid.uuid4().hex,
            **signed_headers(
                secret=message.secret, body=body, webhook_id=message.message_id, timestamp=int(time.time())
            ),
        }
        started = time.perf_counter()
        try:
            response = _pool.request(
                "POST",
                message.webhook_url,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(total=WEBHOOK_TIMEOUT_SECONDS),
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as error:
            latency = (time.perf_counter() - started) * 1000
            return SendResult(SendOutcome.RETRY, error=f"{type(error).__name__}: {error}"[:500], latency_ms=latency)
        latency = (time.perf_counter() - started) * 1000
        excerpt = response.data[:RESPONSE_EXCERPT_BYTES].decode("utf-8", "replace")
        status = response.status
        if 200 <= status < 300:
            try:
                external_id = str(json.loads(response.data).get("messageId") or "")
            except (ValueError, AttributeError):
                external_id = ""
            # A 2xx without messageId was still processed: sending again would duplicate it;
            # only its receipts cannot be matched.
            return SendResult(
                SendOutcome.ACCEPTED, external_id=external_id, status_code=status,
                latency_ms=latency, response_excerpt=excerpt,
            )
        outcome = SendOutcome.RETRY if status >= 500 else SendOutcome.FAILED
        return SendResult(outcome, status_code=status, error=f"HTTP {status}", latency_ms=latency,
                          response_excerpt=excerpt)
