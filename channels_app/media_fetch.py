"""Fetching a file a customer's message refers to (a URL in a Third-Party
Messaging attachment, a WhatsApp Cloud API media URL), through the outbound
address rules (channels_app/outbound.py): resolved once, the address checked,
the connection made to that address, no redirects, a timeout on every read and
a deadline on the whole transfer (a server sending a byte now and then never
makes a read wait its timeout: at the deadline its connection is shut down).

The body is streamed to a temporary file on disk in chunks, never held whole in
memory, and reading stops once it passes the limit (100 MB by default, the
spec's "smaller than 100 MB"). No database: the callers (services/media.py,
services/whatsapp_cloud.py) store the file and record the outcome."""

import http.client
import os
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlsplit

from channels_app.attachments import MAX_ATTACHMENT_BYTES
from channels_app.outbound import BlockedAddress, checked_connection, resolve_allowed

CHUNK_BYTES = 256 * 1024
_tls = ssl.create_default_context()


class FetchFailed(Exception):
    """The file could not be fetched. `retry`: a later attempt may succeed (a connection error, a timeout,
    a 5xx); otherwise trying again cannot help (not http(s), a blocked address, a redirect, a 4xx, too
    large)."""

    def __init__(self, reason: str, *, retry: bool = False):
        super().__init__(reason)
        self.retry = retry


@dataclass
class Fetched:
    file: BinaryIO  # a temporary file at position 0; closing it deletes it
    size: int
    content_type: str  # the Content-Type header, as the server said


def fetch(url: str, *, timeout: float, deadline: float, max_bytes: int = MAX_ATTACHMENT_BYTES - 1,
          headers: dict[str, str] | None = None) -> Fetched:
    """GET `url` into a temporary file; FetchFailed naming the reason otherwise. `timeout` bounds each
    connect and read, `deadline` the whole transfer (seconds); `headers` are added to the request (a bearer
    token)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchFailed(f"not an http(s) URL: {parts.scheme or 'no scheme'}")
    if parts.username is not None or parts.password is not None:
        raise FetchFailed("a URL with a user name or password in it is refused")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = resolve_allowed(parts.hostname or "", port)
    except BlockedAddress as refusal:
        raise FetchFailed(str(refusal)) from refusal
    except ValueError as error:
        raise FetchFailed(f"bad URL: {error}") from error
    except (OSError, UnicodeError) as error:  # the name does not resolve (now)
        raise FetchFailed(f"{type(error).__name__}: {error}", retry=True) from error
    connection = checked_connection(
        scheme=parts.scheme, host=parts.hostname or "", port=port, address=address, timeout=min(timeout, deadline),
        tls=_tls,
    )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    too_long = FetchFailed(f"the transfer took longer than {deadline:g} s", retry=True)
    stored = tempfile.TemporaryFile()  # on disk: 50 MB files stay out of memory (made first: no timer left)
    cutoff = _Cutoff(deadline)
    connect = connection._create_connection  # outbound.py's hook: to the checked address

    def connect_watched(*args, **kwargs):
        sock = connect(*args, **kwargs)
        cutoff.watch(sock)  # from the TLS handshake on
        return sock

    connection._create_connection = connect_watched
    try:
        try:
            connection.request("GET", target, headers={"Accept": "*/*", "User-Agent": "DigitalMessagingServer",
                                                       **(headers or {})})
            if cutoff.passed:  # while connecting, before there was a socket to shut down
                raise too_long
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as error:
            raise too_long if cutoff.passed else FetchFailed(f"{type(error).__name__}: {error}", retry=True) from error
        if 300 <= response.status < 400:
            raise FetchFailed(f"HTTP {response.status}: redirects are not followed")
        if response.status >= 500:
            raise FetchFailed(f"HTTP {response.status}", retry=True)
        if response.status != 200:
            raise FetchFailed(f"HTTP {response.status}")
        length = response.getheader("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise FetchFailed(f"larger than {_limit(max_bytes)} (Content-Length {length})")
        size = 0
        try:
            while chunk := response.read(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise FetchFailed(f"larger than {_limit(max_bytes)}: reading stopped")
                stored.write(chunk)
        except (OSError, http.client.HTTPException) as error:  # a read timed out, the peer went away
            if cutoff.passed:
                raise too_long from error
            raise FetchFailed(f"{type(error).__name__}: {error or 'timed out'}", retry=True) from error
        if cutoff.passed:  # a body without Content-Length ends with the connection shut down: it is not whole
            raise too_long
        stored.seek(0)
        content_type = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        return Fetched(stored, size, content_type)
    except BaseException:
        stored.close()
        raise
    finally:
        cutoff.cancel()
        connection.close()


class _Cutoff:
    """Shuts the watched socket down when `deadline` seconds have passed (a timer thread), whatever it is
    waiting for then: the TLS handshake, the headers or the body. A read blocked on it returns at once.

    It keeps a descriptor of its own for the socket (a duplicate): the socket object changes hands (wrapped
    for TLS, handed by the connection to its response) and its descriptor may be closed and reused, but the
    duplicate names this connection until `cancel`. shutdown() acts on the connection, whichever descriptor
    it is given, and leaves a TLS socket's state to the thread that reads it."""

    def __init__(self, deadline: float):
        self._fired = False
        self._ends = time.monotonic() + deadline
        self._descriptor: int | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(deadline, self._cut)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self._descriptor is None:
                self._descriptor = os.dup(sock.fileno())
        if self.passed:
            self._cut()

    @property
    def passed(self) -> bool:
        """Whether the deadline has come: the timer has cut the connection, or its time is reached (a read
        timeout as long as the deadline may end the wait a moment before the timer fires)."""
        return self._fired or time.monotonic() >= self._ends

    def _cut(self) -> None:
        with self._lock:
            self._fired = True
            if self._descriptor is None:
                return
            twin = socket.socket(fileno=self._descriptor)
            try:
                twin.shutdown(socket.SHUT_RDWR)
            except OSError:  # not connected (any more): nothing to cut
                pass
            finally:
                twin.detach()  # the descriptor stays ours, closed by cancel()

    def cancel(self) -> None:
        self._timer.cancel()
        with self._lock:
            if self._descriptor is not None:
                os.close(self._descriptor)
                self._descriptor = None


def _limit(max_bytes: int) -> str:
    """The limit as a person reads it: "100 MB" for at most 100 MB or for less than 100 MB, else bytes."""
    for size in (max_bytes + 1, max_bytes):
        if size % (1024 * 1024) == 0:
            return f"{size // (1024 * 1024)} MB"
    return f"{max_bytes} bytes"
