"""The Third-Party Messaging webhook: a signed POST to the channel's webhook URL.

Connections are kept alive and reused, one set per sending thread, with the
standard library's client. The request itself is written here, its headers and
body in one write: http.client's `request` checks and encodes each header
apart and writes the body in a second `send` (a third of the transport's CPU per
webhook on a local receiver, issue 25 lever 6), while all but two of a webhook's
headers are the same for every message of a URL. The answer is read by
http.client's own parser (`HTTPResponse`: chunked bodies, 1xx, keep-alive).
An idle connection that has become readable was closed by the third party and
is not reused.

Every send resolves the host once and checks it with the outbound address
rules (channels_app/outbound.py); a connection is opened to that checked
address and pooled under it, so a name that now resolves elsewhere gets a new,
checked connection. A refused address is a failed attempt (`blocked address`),
never retried: sending again cannot change the rules."""

import functools
import http.client
import json
import re
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


class _WebhookUrl:
    """Where a webhook URL's requests go (its parts read once per URL, not once per webhook)."""

    def __init__(self, webhook_url: str):
        parts = urlsplit(webhook_url)
        self.scheme, self.host = parts.scheme, parts.hostname or ""
        self.default_port = 443 if parts.scheme == "https" else 80
        self.port = parts.port or self.default_port  # ValueError: a port out of range
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    @functools.cached_property
    def head(self) -> bytes:
        """The request line and the headers every webhook to this URL has, checked and encoded as http.client's
        `putrequest` and `putheader` do (its errors: InvalidURL, UnicodeError)."""
        for text in (self.target, self.host):
            if _DISALLOWED_IN_URL.search(text):
                raise http.client.InvalidURL(f"URL can't contain control characters. {text!r}")
        try:
            host = self.host.encode("ascii")
        except UnicodeEncodeError:
            host = self.host.encode("idna")
        if ":" in self.host:  # an IPv6 address
            host = b"[" + host + b"]"
        if self.port != self.default_port:
            host += b":%d" % self.port
        return (b"POST " + self.target.encode("ascii") + b" HTTP/1.1\r\nHost: " + host
                + b"\r\nAccept-Encoding: identity\r\nContent-Type: application/json\r\n")


_DISALLOWED_IN_URL = re.compile("[\x00-\x20\x7f]")  # http.client's: no control character, no space
_NOT_IN_A_HEADER_VALUE = re.compile(b"[\r\n\x00]")


@functools.lru_cache(maxsize=256)
def _webhook_url(webhook_url: str) -> _WebhookUrl:
    return _WebhookUrl(webhook_url)


def _request(url: _WebhookUrl, trace_id: str, signatures: dict[str, str], body: bytes) -> bytes:
    """The POST as it goes on the wire. The trace id may come from a caller's request: a value that could end
    its header is refused (ValueError, as http.client refuses it)."""
    trace = trace_id.encode("latin-1")
    if _NOT_IN_A_HEADER_VALUE.search(trace):
        raise ValueError(f"Invalid header value {trace!r}")
    lines = [url.head, b"X-B3-TraceId: ", trace]
    for name, value in signatures.items():  # hex, base64, digits and our message id: nothing to check
        lines += (b"\r\n", name.encode("ascii"), b": ", value.encode("ascii"))
    lines += (b"\r\nContent-Length: ", str(len(body)).encode("ascii"), b"\r\n\r\n", body)
    return b"".join(lines)


class WebhookTransport:
    def accepted(self, message_ids: list[str]) -> None:
        """Nothing to do: the third party sends its receipts itself."""

    def send(self, message: OutgoingMessage) -> SendResult:
        body = json.dumps(message.webhook_body(), separators=(",", ":"), ensure_ascii=False).encode()
        signatures = signed_headers(
            secret=message.secret, body=body, webhook_id=message.message_id, timestamp=int(time.time())
        )
        started = time.perf_counter()
        try:
            url = _webhook_url(message.webhook_url)
            port = url.port
            address = resolve_allowed(url.host, port)
        except BlockedAddress as refusal:  # no connection is made, so there is no answer to show
            return SendResult(SendOutcome.FAILED, error=str(refusal)[:500])
        except (OSError, UnicodeError) as error:  # the name does not resolve (now): try again later
            latency = (time.perf_counter() - started) * 1000
            return SendResult(SendOutcome.RETRY, error=f"{type(error).__name__}: {error}"[:500], latency_ms=latency)
        except ValueError as error:  # a port out of range: sending again cannot help
            return SendResult(SendOutcome.FAILED, error=f"Not sent: {error}"[:500])
        endpoint = (url.scheme, url.host, port, address)
        try:
            request = _request(url, message.trace_id or uuid.uuid4().hex, signatures, body)
            connection = _connection(*endpoint)
            if connection.sock is None:
                connection.connect()
            connection.sock.sendall(request)
            response = connection.response_class(connection.sock, method="POST")
            response.begin()
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
