"""The Third-Party Messaging webhook: a signed POST to the channel's webhook URL.

Connections are kept alive and reused, one set per sending thread, with the
standard library's client: it sends a request's headers and body in one
write (urllib3 sends two, and took more than twice the CPU per webhook on a
local receiver). An idle connection that has become readable was closed by
the third party and is not reused.

Every send resolves the host once and checks it with the outbound address
rules (channels_app/outbound.py); a connection is opened to that checked
address and pooled under it, so a name that now resolves elsewhere gets a new,
checked connection. A refused address is a failed attempt (`blocked address`),
never retried: sending again cannot change the rules."""

import http.client
import json
import select
import ssl
import threading
import time
import uuid
from urllib.parse import urlsplit

from channels_app.messaging.signatures import signed_headers
from channels_app.outbound import BlockedAddress, checked_connection, resolve_allowed
from channels_app.transports.base import OutgoingMessage, SendOutcome, SendResult

WEBHOOK_TIMEOUT_SECONDS = 10.0  # "Send a response to the webhook within 10 seconds."
RESPONSE_EXCERPT_BYTES = 500

_connections = threading.local()
_tls = ssl.create_default_context()


def _closed_by_peer(connection: http.client.HTTPConnection) -> bool:
    poller = select.poll()
    poller.register(connection.sock, select.POLLIN)
    return bool(poller.poll(0))


def _connection(scheme: str, host: str, port: int, address: str) -> http.client.HTTPConnection:
    """This thread's open connection to the endpoint at its checked address, or a new one."""
    pool = _connections.__dict__.setdefault("by_endpoint", {})
    key = (scheme, host, port, address)
    connection = pool.get(key)
    if connection is not None and connection.sock is not None and _closed_by_peer(connection):
        connection.close()  # the next request opens a new one
    if connection is None:
        connection = checked_connection(
            scheme=scheme, host=host, port=port, address=address, timeout=WEBHOOK_TIMEOUT_SECONDS, tls=_tls
        )
        pool[key] = connection
    return connection


def _forget(scheme: str, host: str, port: int, address: str) -> None:
    connection = _connections.__dict__.get("by_endpoint", {}).pop((scheme, host, port, address), None)
    if connection is not None:
        connection.close()


class WebhookTransport:
    def accepted(self, message_ids: list[str]) -> None:
        """Nothing to do: the third party sends its receipts itself."""

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
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        started = time.perf_counter()
        try:
            port = url.port or (443 if url.scheme == "https" else 80)
            address = resolve_allowed(url.hostname or "", port)
        except BlockedAddress as refusal:  # no connection is made, so there is no answer to show
            return SendResult(SendOutcome.FAILED, error=str(refusal)[:500])
        except (OSError, UnicodeError) as error:  # the name does not resolve (now): try again later
            latency = (time.perf_counter() - started) * 1000
            return SendResult(SendOutcome.RETRY, error=f"{type(error).__name__}: {error}"[:500], latency_ms=latency)
        except ValueError as error:  # a port out of range: sending again cannot help
            return SendResult(SendOutcome.FAILED, error=f"Not sent: {error}"[:500])
        endpoint = (url.scheme, url.hostname or "", port, address)
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
            except (ValueError, AttributeError, RecursionError):  # not JSON, not an object, nested too deeply
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
