"""The Third-Party Messaging webhook: a signed POST to the channel's webhook URL.

Connections are kept alive and reused, one set per sending thread, with the
standard library's client: it sends a request's headers and body in one
write (urllib3 sends two, and took more than twice the CPU per webhook on a
local receiver). An idle connection that has become readable was closed by
the third party and is not reused."""

import http.client
import json
import select
import ssl
import threading
import time
import uuid
from urllib.parse import urlsplit

from channels_app.messaging.signatures import signed_headers
from channels_app.transports.base import OutgoingMessage, SendOutcome, SendResult

WEBHOOK_TIMEOUT_SECONDS = 10.0  # "Send a response to the webhook within 10 seconds."
RESPONSE_EXCERPT_BYTES = 500

_connections = threading.local()
_tls = ssl.create_default_context()


def _closed_by_peer(connection: http.client.HTTPConnection) -> bool:
    poller = select.poll()
    poller.register(connection.sock, select.POLLIN)
    return bool(poller.poll(0))


def _connection(scheme: str, host: str, port: int | None) -> http.client.HTTPConnection:
    """This thread's open connection to the endpoint, or a new one."""
    pool = _connections.__dict__.setdefault("by_endpoint", {})
    key = (scheme, host, port)
    connection = pool.get(key)
    if connection is not None and connection.sock is not None and _closed_by_peer(connection):
        connection.close()  # the next request opens a new one
    if connection is None:
        if scheme == "https":
            connection = http.client.HTTPSConnection(host, port, timeout=WEBHOOK_TIMEOUT_SECONDS, context=_tls)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=WEBHOOK_TIMEOUT_SECONDS)
        pool[key] = connection
    return connection


def _forget(scheme: str, host: str, port: int | None) -> None:
    connection = _connections.__dict__.get("by_endpoint", {}).pop((scheme, host, port), None)
    if connection is not None:
        connection.close()


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
        url = urlsplit(message.webhook_url)
        endpoint = (url.scheme, url.hostname or "", url.port)
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        started = time.perf_counter()
        try:
            connection = _connection(*endpoint)
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            if response.will_close:
                _forget(*endpoint)
        except (OSError, http.client.HTTPException) as error:  # refused, reset, timed out, not HTTP
            _forget(*endpoint)
            latency = (time.perf_counter() - started) * 1000
            return SendResult(SendOutcome.RETRY, error=f"{type(error).__name__}: {error}"[:500], latency_ms=latency)
        except ValueError as error:  # a header or URL the client refuses to send: sending again cannot help
            _forget(*endpoint)
            return SendResult(SendOutcome.FAILED, error=f"Not sent: {error}"[:500])
        latency = (time.perf_counter() - started) * 1000
        if latency > WEBHOOK_TIMEOUT_SECONDS * 1000:  # each read was in time, but not the whole answer
            return SendResult(SendOutcome.RETRY, error="The answer took longer than 10 seconds.", latency_ms=latency)
        excerpt = data[:RESPONSE_EXCERPT_BYTES].decode("utf-8", "replace")
        status = response.status
        if 200 <= status < 300:
            try:
                external_id = str(json.loads(data).get("messageId") or "")
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
