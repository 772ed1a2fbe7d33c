"""gunicorn's worker for the site (`gunicorn project.asgi:application -k project.server.Worker`, scripts/serve.sh):
uvicorn's event loop in each of gunicorn's processes, serving project/asgi.py's one application (the event stream
on the loop, the rest through WSGI in a pool of WEB_THREADS threads).

gunicorn's master stays what it was: it holds the listening socket, starts WEB_CONCURRENCY processes, replaces a
dead or stuck one (`--timeout`), restarts them gracefully on SIGHUP (new ones first, then the old ones finish what
they accepted: docs/OPERATIONS.md, "Upgrades") and stops them on SIGTERM. What differs from uvicorn's own worker:

* HTTP/1.1 by httptools (llhttp, in C), through `HttpToolsProtocol` below: uvicorn's, with what h11 (the parser
  before it, pure Python: about a third of the server's CPU a request) did and httptools does not: a request's
  head still incomplete past 16 KiB is refused (400, as h11 did) instead of growing without bound, and the response's
  header names are sent as the application wrote them. gunicorn's finer limits are project/asgi.py's.
  `H11Worker` is the h11 one, kept for comparison (`bench.inbound --server uvicorn-h11`).
* No rewriting of the client's address from `X-Forwarded-For` (as gunicorn did not): the site reads that header
  itself, for the number of proxies it is told of (channels_app/client_address.py).
* No access line of uvicorn's: the site writes gunicorn's own (project/asgi.py).
* At most `--worker-connections` (gunicorn's setting, 1000) connections a process, event streams included: more
  are answered 503 at once.
* On a stop, the open event streams end as soon as the process stops accepting connections (their clients
  reconnect to another process with `Last-Event-ID`); other requests have gunicorn's graceful timeout to finish.
* On a stop, a connection with no request in progress (just accepted, or idle between two requests) gets
  IDLE_CONNECTION_GRACE_SECONDS to send one before it is closed: uvicorn closes it at once, and a request already
  on its way was lost (the client read a reset; a POST may not be sent twice), as a rolling restart under load
  showed (tests/test_rolling_restart.py).
"""

import asyncio
import logging
import sys

from gunicorn.arbiter import Arbiter
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE, STATUS_LINE
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

IDLE_CONNECTION_GRACE_SECONDS = 1.0
# h11's bound on a request's head (its max_incomplete_event_size), which httptools lacks: the memory a client can
# make a connection hold before the head is complete and project/asgi.py's finer limits apply.
MAX_INCOMPLETE_HEAD = 16 * 1024

logger = logging.getLogger("uvicorn.error")  # gunicorn's error log (uvicorn_worker)


def _between_requests(connection) -> bool:
    """uvicorn's HTTP protocol holds no request, or has answered the last one (`cycle`: the request in progress)."""
    return connection.cycle is None or connection.cycle.response_complete


class SiteServer(Server):
    async def shutdown(self, sockets=None) -> None:
        for server in self.servers:  # no new connection first: a stream's client must reconnect elsewhere
            server.close()
        streams = getattr(self.config.app, "streams", None)  # project.asgi.Site's
        if streams is not None:
            streams.end_all()
        await self._let_idle_connections_send(IDLE_CONNECTION_GRACE_SECONDS)
        # closing its servers closed gunicorn's listening sockets too: closing them again only logs EBADF
        await super().shutdown(None)

    async def _let_idle_connections_send(self, seconds: float) -> None:
        """Wait until every connection holds a request (which then finishes as usual, its connection closed after
        the answer) or `seconds` have passed; the connections still idle then are closed by uvicorn's shutdown."""
        logger.info("Stopped accepting connections; idle connections have %.1f s to send a request", seconds)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline and any(_between_requests(c) for c in self.server_state.connections):
            await asyncio.sleep(0.02)


class _Cycle(httptools_impl.RequestResponseCycle):
    """uvicorn's request-response cycle for httptools, with what h11 did and it does not: the response's header
    names as the application wrote them (uvicorn lowercases them: project/asgi.py keeps them as written, as gunicorn
    sent them), and to an HTTP/1.0 client a response of unknown length (the event stream) delimited by closing the
    connection (uvicorn chunks it, which HTTP/1.0 does not know: a proxy speaking 1.0 would pass the chunks on)."""

    close_delimited = False

    async def send(self, message) -> None:
        if self.response_started:
            if self.close_delimited and not self.response_complete and not self.disconnected:
                await self._send_close_delimited(message)
            else:
                await super().send(message)
            return
        if message["type"] != "http.response.start":
            raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{message['type']}'.")
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        self.response_started = True
        self.waiting_for_100_continue = False
        status = message["status"]
        content = [STATUS_LINE[status]]
        has_connection_close = False
        for name, value in self.default_headers + list(message.get("headers", [])):
            if HEADER_RE.search(name):
                raise RuntimeError("Invalid HTTP header name.")
            if HEADER_VALUE_RE.search(value):
                raise RuntimeError("Invalid HTTP header value.")
            lowered = name.lower()
            if lowered == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif lowered == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif lowered == b"connection" and b"close" in [token.lower().strip() for token in value.split(b",")]:
                self.keep_alive = False
                has_connection_close = True
            content.extend([name, b": ", value, b"\r\n"])
        if self.chunked_encoding is None and self.scope["method"] != "HEAD" and status not in (204, 304):
            if self.scope["http_version"] == "1.0":
                self.close_delimited = True
                self.keep_alive = False
            else:
                self.chunked_encoding = True
                content.append(b"transfer-encoding: chunked\r\n")
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        content.append(b"\r\n")
        self.transport.write(b"".join(content))

    async def _send_close_delimited(self, message) -> None:
        if message["type"] != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{message['type']}'.")
        if self.flow.write_paused:
            await self.flow.drain()
        if self.disconnected:
            return
        self.transport.write(message.get("body", b""))
        if not message.get("more_body", False):
            self.response_complete = True
            self.message_event.set()
            self.transport.close()
            self.on_response()


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol on httptools, bounding a request's head as h11 did (MAX_INCOMPLETE_HEAD) and
    answering through `_Cycle`.

    The head's bytes are counted per chunk read: a chunk read while a head is being received and that does not
    complete it belongs to it whole. A head that begins in the middle of a chunk (after the previous request's
    body, pipelined) is counted from the next chunk on: its bound is then 16 KiB plus that one chunk, still a
    bound; h11 too checked only a head left incomplete by a read."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._head_open, self._head_bytes, self._head_began_in_chunk = True, 0, False

    def data_received(self, data: bytes) -> None:
        self._head_began_in_chunk = False
        super().data_received(data)
        if not self._head_open or self.transport.is_closing():
            return
        self._head_bytes = 0 if self._head_began_in_chunk else self._head_bytes + len(data)
        if self._head_bytes > MAX_INCOMPLETE_HEAD:
            msg = "Invalid HTTP request received."  # h11's answer, through uvicorn, to the same request
            self.logger.warning(msg)
            self.send_400_response(msg)

    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()
        if type(self.cycle) is httptools_impl.RequestResponseCycle:
            # the cycle uvicorn just made (or queued, pipelined): its task has not run yet, so every send is _Cycle's
            self.cycle.__class__ = _Cycle

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_open, self._head_bytes, self._head_began_in_chunk = True, 0, True


class Worker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "auto", "http": HttpToolsProtocol, "proxy_headers": False, "server_header": False,
                     "access_log": False, "lifespan": "off"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # gunicorn's master kills a worker still busy after graceful_timeout: it cancels what is left a little before
        self.config.timeout_graceful_shutdown = max(int(self.cfg.graceful_timeout) - 1, 1)
        # gunicorn's bound on a process's connections (--worker-connections, 1000), open event streams included:
        # beyond it a request is answered 503 at once instead of queueing for a thread without end
        self.config.limit_concurrency = int(self.cfg.worker_connections)

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = SiteServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)


class H11Worker(Worker):
    """The worker with h11 (pure Python) for HTTP/1.1, as before httptools: for comparison."""

    CONFIG_KWARGS = {**Worker.CONFIG_KWARGS, "http": "h11"}
