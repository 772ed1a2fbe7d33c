"""`GET /api/agents/me/events/`: the agent's live events as Server-Sent Events (API.md, "Routing to
agents"; services.agent_events says how events are written and numbered).

Served on the web server's event loop (project/asgi.py routes this path to Django's ASGI handler, every
other one to the WSGI application's threads; one port, scripts/serve.sh): an open stream is a coroutine
waiting on an asyncio.Event, which costs memory, not a thread, so hundreds of idle agents take none of the
threads that serve the API. One task per process LISTENs to `agent_events` on PostgreSQL on one connection
(polls on SQLite), numbers what committed and wakes the streams of the users concerned; each stream then
reads its user's events after the last id it sent.

What an idle stream costs: nothing but a comment line every KEEPALIVE_SECONDS (so that proxies keep the
connection and a dead client is found). A stream reads the database only when it is woken (its user has
new events, or the LISTEN connection was lost and found again), never on a timer; the process's one
LISTEN task runs the sequencer when a notification comes, and once every LOOK_SECONDS when none does (a
safety net, one short transaction for the whole process, not one per stream). Measured with 200 idle
streams: docs/PERFORMANCE.md, "Routing to agents". `Last-Event-ID`
(which browsers send when they reconnect) resumes after that id, across reconnects and server restarts; a
stream opened without it starts with what happens from then on.

Asked of a bare WSGI server (`gunicorn project.wsgi`, which would hold a thread per open stream), the door
answers 421 (Misdirected Request) once the caller is known: the stream is served by the ASGI application
only.
"""

import asyncio
import json
import logging
from collections import defaultdict

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections, connection
from django.http import JsonResponse, StreamingHttpResponse
from rest_framework.exceptions import AuthenticationFailed

from channels_app import rights
from channels_app.authentication import ExpiringTokenAuthentication
from channels_app.services.agent_events import (
    EVENTS_CHANNEL,
    agent_events_after,
    agent_events_last,
    agent_events_sequence,
)

logger = logging.getLogger(__name__)

RIGHTS_KEY = "agent-events.get"
RETRY_MILLISECONDS = 2000  # the browser's wait before reconnecting
KEEPALIVE_SECONDS = 25.0  # a comment line this often: proxies keep the connection (nginx: 60 s by default),
# dead clients are found
LOOK_SECONDS = 5.0  # with no notification, the sequencer runs this often anyway (a safety net: the LISTEN
# connection hears every commit while it is up, and all is read again whenever it comes back)
SQLITE_POLL_SECONDS = 0.3  # the embedded default has no LISTEN
GATHER_SECONDS = 0.005  # notifications of the next few milliseconds are numbered in the same batch
READ_LIMIT = 200


class EventHub:
    """This process's open streams by user, and the one task that wakes them."""

    def __init__(self):
        self.waiting: dict[int, set[asyncio.Event]] = defaultdict(set)
        self.task: asyncio.Task | None = None

    def subscribe(self, user_id: int) -> asyncio.Event:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        wake = asyncio.Event()
        self.waiting[user_id].add(wake)
        return wake

    def unsubscribe(self, user_id: int, wake: asyncio.Event) -> None:
        streams = self.waiting.get(user_id)
        if streams is not None:
            streams.discard(wake)
            if not streams:
                del self.waiting[user_id]

    def wake(self, user_ids) -> None:
        for user_id in user_ids:
            for wake in self.waiting.get(user_id, ()):
                wake.set()

    async def _sequence_and_wake(self, user_ids: set[int]) -> None:
        numbered = await sync_to_async(_sequence, thread_sensitive=False)()
        self.wake(user_ids | set(numbered))

    async def _run(self) -> None:
        while True:
            try:
                if connection.vendor == "postgresql":
                    await self._listen()
                else:  # one writer at a time: whatever committed is numbered here, and its users woken
                    await self._sequence_and_wake(set())
                    await asyncio.sleep(SQLITE_POLL_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database went away: wake every stream (they read), and listen again
                logger.exception("The event stream lost its LISTEN connection; trying again.")
                self.wake(list(self.waiting))
                await asyncio.sleep(1.0)

    async def _listen(self) -> None:
        import psycopg

        params = await sync_to_async(_connection_params, thread_sensitive=False)()
        async with await psycopg.AsyncConnection.connect(**params, autocommit=True) as listener:
            await listener.execute(f"LISTEN {EVENTS_CHANNEL}")
            await self._sequence_and_wake(set(self.waiting))  # what committed while nobody listened
            while True:
                users: set[int] = set()
                async for notification in listener.notifies(timeout=LOOK_SECONDS, stop_after=1):
                    users |= _user_ids(notification.payload)
                if users:
                    async for notification in listener.notifies(timeout=GATHER_SECONDS):
                        users |= _user_ids(notification.payload)
                await self._sequence_and_wake(users)


hub = EventHub()


def _connection_params() -> dict:
    params = connection.get_connection_params()
    return {key: value for key, value in params.items() if key not in ("cursor_factory", "context")}


def _sequence() -> list[int]:
    close_old_connections()
    return agent_events_sequence()


def _user_ids(payload: str) -> set[int]:
    return {int(part) for part in payload.split(",") if part.isdigit()}


def _read(user_id: int, after: int):
    close_old_connections()
    return agent_events_after(user_id=user_id, after=after, limit=READ_LIMIT)


def _frame(event) -> str:
    data = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n"


async def _stream(user_id: int, after: int):
    wake = hub.subscribe(user_id)
    try:
        yield f"retry: {RETRY_MILLISECONDS}\n\n"
        while True:
            wake.clear()  # before reading: a wake-up that comes while reading is not lost
            events = await sync_to_async(_read, thread_sensitive=False)(user_id, after)
            for event in events:
                yield _frame(event)
                after = event.seq
            if len(events) == READ_LIMIT:
                continue
            while not wake.is_set():  # idle: a comment now and then, no read until woken
                try:
                    await asyncio.wait_for(wake.wait(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keep-alive\n\n"
    finally:
        hub.unsubscribe(user_id, wake)


def _caller(request):
    """(user, None) or (None, the refusal)."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Token "):
        try:
            user, _ = ExpiringTokenAuthentication().authenticate_credentials(header.removeprefix("Token ").strip())
        except AuthenticationFailed as error:
            return None, _refusal(401, str(error.detail))
    else:
        user = request.user  # a session (the workspace's page)
    rule = rights.rule(RIGHTS_KEY)
    if user is None or not user.is_authenticated:
        return None, _refusal(401, "Authentication credentials were not provided.")
    if not rule.allows(user):
        return None, _refusal(403, f"You need the permission {', '.join(rule.missing(user))}.")
    return user, None


def _caller_closing(request):
    """`_caller`, then the request's own database connection closed: under ASGI each request runs its
    thread-sensitive calls in a thread of its own, whose connection would stay open as long as the stream
    (200 open streams, 200 PostgreSQL sessions: "too many clients"). The stream's reads share one small pool
    of threads and connections instead (thread_sensitive=False)."""
    try:
        return _caller(request)
    finally:
        if isinstance(request, ASGIRequest):  # under WSGI the request's thread is the server's: its rules hold
            connection.close()


def _refusal(status: int, detail: str) -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = "Token"
    return response


class BadLastEventId(ValueError):
    """A `Last-Event-ID` (or `last_event_id`) that is not an event id: 400 naming it."""


def _last_event_id(request) -> int | None:
    """The id to resume after: the `Last-Event-ID` header (browsers send it when they reconnect), else the
    `last_event_id` query parameter; None when neither is given."""
    for name, value in (("Last-Event-ID", request.headers.get("Last-Event-ID")),
                        ("last_event_id", request.GET.get("last_event_id"))):
        if value is None or value == "":
            continue
        value = value.strip()
        if not (value.isascii() and value.isdigit()) or len(value) > 18:
            raise BadLastEventId(name)
        return int(value)
    return None


async def agent_events(request):
    """The caller's events (`offer`, `offer_withdrawn`, `message`, `receipt`, `interaction`) as
    `text/event-stream`, each with its id; needs Workspace - Can use."""
    if request.method != "GET":
        return JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
    user, refusal = await sync_to_async(_caller_closing)(request)
    if refusal is not None:
        return refusal
    try:
        after = _last_event_id(request)
    except BadLastEventId as bad:
        return JsonResponse({str(bad): ["Expected the id of an event: a whole number."]}, status=400)
    if not isinstance(request, ASGIRequest):  # a thread per open stream: not served (project/asgi.py serves it)
        return JsonResponse({"detail": "The event stream is served by the ASGI application (project.asgi)."},
                            status=421)
    if after is None:
        after = await sync_to_async(agent_events_last, thread_sensitive=False)(user_id=user.pk)
    response = StreamingHttpResponse(_stream(user.pk, after), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response

