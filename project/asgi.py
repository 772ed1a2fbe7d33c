"""The web server's one application: every request of the site on one port (scripts/serve.sh; docs/OPERATIONS.md,
"Processes").

* `GET /api/agents/me/events/` (the agents' event stream, channels_app/api/events.py) goes to Django's ASGI
  handler, on the event loop: an open stream is a coroutine waiting for its next event, which costs memory, not a
  thread, so hundreds of open streams take none of the threads that serve the API.
* Every other request goes, as before, to Django's WSGI application (project/wsgi.py) in a bounded pool of
  `WEB_THREADS` threads (a2wsgi's pool; a small request in one hand-over, `_WSGI`): the same middleware, errors,
  body limits and trace ids as under gunicorn's threads. Requests beyond the pool wait for a thread, as they
  waited for one of gunicorn's.

Around both, what gunicorn's own HTTP layer did: its limits on the request line (4094 bytes, else 414) and on the
header fields (100 of them, 8190 bytes each, else 431); its access line (logger `gunicorn.access`, gunicorn's
fields: the JSON logs read them, project/logs.py). And when the server stops (project/server.py), the open streams
end cleanly (the last chunk sent), so their clients reconnect at once to another process with `Last-Event-ID`
instead of waiting out the graceful timeout.

The server: gunicorn's master with uvicorn workers (project/server.py), started by `make run`. Any ASGI server runs
this application (`uvicorn project.asgi:application`, granian's ASGI interface: bench/processes.py).
"""

import asyncio
import contextvars
import io
import logging
import os
import time
from datetime import datetime

from a2wsgi.wsgi import WSGIMiddleware, WSGIResponder, build_environ
from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

EVENT_STREAM_PATH = "/api/agents/me/events/"
# gunicorn's defaults (limit_request_line, limit_request_fields, limit_request_field_size). The server's protocol
# (project/server.py) refuses a request whose head is still incomplete past 16 KiB before any of this is reached.
MAX_REQUEST_LINE = 4094
MAX_HEADER_FIELDS = 100
MAX_HEADER_FIELD = 8190
# gunicorn's default access line; its fields (atoms) are what project/logs.py turns into a JSON line.
ACCESS_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'

access_log = logging.getLogger("gunicorn.access")


def web_threads() -> int:
    """The threads that serve the WSGI application in each process (`WEB_THREADS`, default 4)."""
    value = os.environ.get("WEB_THREADS", "4").strip() or "4"
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"WEB_THREADS is a whole number of at least 1, not {value!r}.")
    return int(value)


class OpenStreams:
    """The event streams open in this process, to end them when the server stops."""

    def __init__(self):
        self.endings: set[asyncio.Event] = set()

    def opened(self) -> asyncio.Event:
        ending = asyncio.Event()
        self.endings.add(ending)
        return ending

    def closed(self, ending: asyncio.Event) -> None:
        self.endings.discard(ending)

    def end_all(self) -> None:
        for ending in list(self.endings):
            ending.set()


class _Responder(WSGIResponder):
    """a2wsgi's, with the response's header names as the application wrote them (a2wsgi lowercases them;
    gunicorn sent them as they were, and clients that look a header up by its written name keep finding it)."""

    def start_response(self, status, response_headers, exc_info=None):
        self.exc_info = exc_info
        if not self.response_started:
            self.response_started = True
            self.send({"type": "http.response.start", "status": int(status.split(" ", 1)[0]), "headers": [
                (name.strip().encode("latin1"), value.strip().encode("latin1")) for name, value in response_headers]})
        return lambda chunk: self.send({"type": "http.response.body", "body": chunk, "more_body": True})


class _WSGI(WSGIMiddleware):
    """The WSGI application in the thread pool. A request whose body is small and came whole with its head (most
    of them: a webhook, an API call, a page) is served in one hand-over: the thread runs the application and, for
    a response already in memory (Django's, not a streaming one), returns it whole, sent from the loop. a2wsgi
    crosses between the loop and the thread for the body's reads, the response's start and each chunk, several
    wake-ups each (~0.6 ms of CPU a request: bench/server_overhead.py, docs/PERFORMANCE.md). Any other request (a
    body not complete in the first read, longer than `lean_body_max`, chunked or announced by
    `Expect: 100-continue`) takes a2wsgi's path, where the application reads the body as it comes: an upload never
    sits whole in memory, and one over the site's limits is refused by its announced length without waiting for
    it. A streaming response goes out chunk by chunk from its thread, as a2wsgi sends it."""

    def __init__(self, app, *, workers: int, lean_body_max: int):
        super().__init__(app, workers=workers)
        self.lean_body_max = lean_body_max

    async def __call__(self, scope, receive, send):
        first = None
        if self._lean(scope):
            first = await receive()
            if first["type"] != "http.request":  # the client went away before sending its body: nobody to answer
                return
            if not first.get("more_body", False):
                await _serve_whole(self.app, self.executor, scope, first.get("body", b""), send)
                return

        async def receive_coroutine():  # a2wsgi's threads need a coroutine; granian's receive gives another awaitable
            nonlocal first
            if first is not None:  # what was read above, given to the application first
                message, first = first, None
                return message
            return await receive()

        await _Responder(self.app, self.executor, self.send_queue_size)(scope, receive_coroutine, send)

    def _lean(self, scope) -> bool:
        length = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name in (b"transfer-encoding", b"expect"):
                return False
        return length is None or (length.isdigit() and int(length) <= self.lean_body_max)


# The largest request body read before the application runs (when it came whole with its head): past it (an
# upload), the application reads the body as it comes (a2wsgi).
LEAN_BODY_MAX = 64 * 1024


def lean_body_max() -> int:
    """LEAN_BODY_MAX, or less when the site refuses smaller bodies (channels_app/request_limits.py): a body it
    refuses is never waited for."""
    from django.conf import settings

    limits = [limit for limit in (settings.DATA_UPLOAD_MAX_MEMORY_SIZE, settings.UPLOAD_MAX_SIZE) if limit is not None]
    return min([LEAN_BODY_MAX, *limits])


class _Started:
    """What the application's start_response said; `sent` once the response's start has gone to the client."""

    __slots__ = ("status", "headers", "sent", "written")

    def __init__(self):
        self.status = self.headers = None
        self.sent = False
        self.written: list[bytes] = []

    def start_response(self, status, response_headers, exc_info=None):
        if exc_info is not None and self.sent:  # PEP 3333: too late to change the answer, re-raise
            raise exc_info[1].with_traceback(exc_info[2])
        self.status = int(status.split(" ", 1)[0])
        # names as the application wrote them (as _Responder, and gunicorn, send them)
        self.headers = [(name.strip().encode("latin1"), value.strip().encode("latin1"))
                        for name, value in response_headers]
        return self.write

    def write(self, data: bytes) -> None:
        """WSGI's write() (Django never calls it): held until the response's start is sent, then sent."""
        self.written.append(data)


class _Written(list):
    """`_Started.written` once the start is sent: what the application writes goes to the client at once."""

    def __init__(self, send_now):
        super().__init__()
        self.send_now = send_now

    def append(self, data: bytes) -> None:
        self.send_now({"type": "http.response.body", "body": data, "more_body": True})


def _run_application(app, environ, started: _Started, loop, send) -> bytes | None:
    """In the pool's thread: the application's answer, whole, when it is in memory (Django's usual response);
    else (a streaming response: a download, an export) None, the response sent from here chunk by chunk, each
    waiting for the client as a2wsgi's do, and closed in this thread (Django closes the request's database
    connection there, the thread's own)."""
    iterable = app(environ, started.start_response)
    try:
        if getattr(iterable, "streaming", None) is False or isinstance(iterable, (list, tuple)):
            return b"".join([*started.written, *iterable])

        def send_now(message):
            asyncio.run_coroutine_threadsafe(send(message), loop).result()

        def send_start():
            started.sent = True
            send_now({"type": "http.response.start", "status": started.status, "headers": started.headers})
            for written in started.written:
                send_now({"type": "http.response.body", "body": written, "more_body": True})
            started.written = _Written(send_now)

        for chunk in iterable:
            if not started.sent:  # a generator calls start_response on its first step
                send_start()
            send_now({"type": "http.response.body", "body": chunk, "more_body": True})
        if not started.sent:
            send_start()
        send_now({"type": "http.response.body", "body": b""})
        return None
    finally:
        getattr(iterable, "close", lambda: None)()


async def _serve_whole(app, executor, scope, body: bytes, send) -> None:
    loop = asyncio.get_running_loop()
    environ = build_environ(scope, io.BytesIO(body))
    started = _Started()
    answer = await loop.run_in_executor(executor, contextvars.copy_context().run, _run_application, app, environ,
                                        started, loop, send)
    if answer is not None:
        started.sent = True
        await send({"type": "http.response.start", "status": started.status, "headers": started.headers})
        await send({"type": "http.response.body", "body": answer})


class Site:
    """The ASGI application: the event stream on the event loop, the rest through WSGI in a thread pool."""

    def __init__(self, *, events, wsgi, threads: int):
        self.events = events
        self.wsgi = _WSGI(wsgi, workers=threads, lean_body_max=lean_body_max())
        self.streams = OpenStreams()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":  # nothing to start or stop: say so, for servers that ask
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":  # no websockets here
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1000})
            return
        started = time.monotonic()
        response = _Response(send)
        refusal = _over_limits(scope)
        try:
            if refusal is not None:
                await _refuse(response.send, *refusal)
            elif scope["path"] == EVENT_STREAM_PATH:
                await self._stream(scope, receive, response)
            else:
                await self.wsgi(scope, receive, response.send)
        finally:
            _log_access(scope, response, time.monotonic() - started)

    async def _stream(self, scope, receive, response) -> None:
        """Django's ASGI handler, told that the client went away when the server stops (it then cancels the
        stream as for a client that left); the response is then finished here, so the client sees a complete
        response and reconnects."""
        ending = self.streams.opened()

        async def receive_or_end():
            if ending.is_set():
                return {"type": "http.disconnect"}
            received = asyncio.ensure_future(receive())
            ended = asyncio.ensure_future(ending.wait())
            try:
                await asyncio.wait({received, ended}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ended.cancel()
            if received.done():
                return received.result()
            received.cancel()
            return {"type": "http.disconnect"}

        try:
            await self.events(scope, receive_or_end, response.send)
        finally:
            self.streams.closed(ending)
        if response.status is not None and not response.finished:
            await response.send({"type": "http.response.body", "body": b"", "more_body": False})


class _Response:
    """`send`, noting what the access line needs: the status, the response's trace id, the bytes of the body."""

    __slots__ = ("_send", "status", "trace_id", "bytes", "finished")

    def __init__(self, send):
        self._send = send
        self.status = self.trace_id = None
        self.bytes = 0
        self.finished = False

    async def send(self, message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            for name, value in message.get("headers", ()):
                if name.lower() == b"x-b3-traceid":
                    self.trace_id = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            self.bytes += len(message.get("body", b""))
            self.finished = not message.get("more_body", False)
        await self._send(message)


def _over_limits(scope) -> tuple[int, str] | None:
    """gunicorn's limits: (status, reason) for a request over one of them, else None."""
    line = len(scope["method"]) + len(scope.get("raw_path") or scope["path"].encode()) + 10  # "GET <path> HTTP/1.1"
    if scope.get("query_string"):
        line += 1 + len(scope["query_string"])
    if line > MAX_REQUEST_LINE:
        return 414, "Request Line is too large"
    headers = scope.get("headers") or ()
    if len(headers) > MAX_HEADER_FIELDS:
        return 431, "Too many header fields"
    if any(len(name) + len(value) + 2 > MAX_HEADER_FIELD for name, value in headers):
        return 431, "A header field is too large"
    return None


async def _refuse(send, status: int, reason: str) -> None:
    body = reason.encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin-1")
    return "-"


def _log_access(scope, response: _Response, seconds: float) -> None:
    """One line per request, as gunicorn's access log wrote it (the same format and atoms); nothing when the
    line would go nowhere (gunicorn without --access-logfile)."""
    if not (access_log.isEnabledFor(logging.INFO) and access_log.hasHandlers()):
        return
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
    target = f"{path}?{query}" if query else path
    client = scope.get("client")
    atoms = {
        "h": client[0] if client else "-", "l": "-", "u": "-",
        "t": datetime.now().astimezone().strftime("[%d/%b/%Y:%H:%M:%S %z]"),
        "r": f"{scope['method']} {target} HTTP/{scope.get('http_version', '1.1')}",
        "m": scope["method"], "U": path, "q": query, "H": f"HTTP/{scope.get('http_version', '1.1')}",
        "s": str(response.status or 0), "B": response.bytes, "b": str(response.bytes) if response.bytes else "-",
        "f": _header(scope, b"referer"), "a": _header(scope, b"user-agent"),
        "T": int(seconds), "D": int(seconds * 1_000_000), "M": int(seconds * 1000), "L": f"{seconds:.6f}",
        "p": f"<{os.getpid()}>", "{x-b3-traceid}o": response.trace_id or "-",
    }
    access_log.info(ACCESS_FORMAT, atoms)


application = Site(events=get_asgi_application(), wsgi=get_wsgi_application(), threads=web_threads())
