"""`GET /api/agents/me/events/`: the agent's live events as Server-Sent Events (API.md, "Routing to
agents"; services.agent_events says how events are written and numbered).

Served on the web server's event loop (project/asgi.py routes this path to Django's ASGI handler, every
other one to the WSGI application's threads; one port, scripts/serve.sh): an open stream is a coroutine
waiting on an asyncio.Event, which costs memory, not a thread, so hundreds of idle agents take none of the
threads that serve the API.

One hub per process (EventHub) does the database work of all its streams, on the event loop, over two
asynchronous psycopg connections of its own: one LISTENs to `agent_events`, the other runs passes. A pass
numbers what committed (the sequencer: one round trip, services.agent_events) and reads, in one query, the
events of every stream woken since the last pass (its user named by a notification or numbered by the
sequencer, or the stream just opened), after the last id each was handed; each stream sends what it was
handed. No thread is involved: the loop shares the GIL and the CPU with the API's threads, and the
sequencer used to run in a thread of the loop's pool, holding its lock while that thread waited for them
(docs/PERFORMANCE.md, "Routing to agents"). Passes follow one another: what is heard during a pass kicks
the next, so a burst of commits costs a pass or two, not a read per stream. SQLite has no LISTEN: the hub
polls, through the ORM in the loop's threads.

What an idle stream costs: nothing but a comment line every KEEPALIVE_SECONDS (so that proxies keep the
connection and a dead client is found). A stream is read for only when it is woken (its user has new
events, or the LISTEN connection was lost and found again), never on a timer; the hub runs the sequencer
once every LOOK_SECONDS when no notification comes (a safety net, one statement for the whole process, not
one per stream). Measured with 200 idle streams: docs/PERFORMANCE.md, "Routing to agents". `Last-Event-ID`
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
    agent_events_after_async,
    agent_events_last,
    agent_events_last_async,
    agent_events_sequence,
    agent_events_sequence_async,
)

logger = logging.getLogger(__name__)

RIGHTS_KEY = "agent-events.get"
RETRY_MILLISECONDS = 2000  # the browser's wait before reconnecting
KEEPALIVE_SECONDS = 25.0  # a comment line this often: proxies keep the connection (nginx: 60 s by default),
# dead clients are found
LOOK_SECONDS = 5.0  # with no notification, the sequencer runs this often anyway (a safety net: the LISTEN
# connection hears every commit while it is up, and all is read again whenever it comes back)
SQLITE_POLL_SECONDS = 0.3  # the embedded default has no LISTEN
READ_LIMIT = 200


class Subscriber:
    """An open stream: its user, the id of the last event handed to it, what the hub read for it and it has
    not sent yet, and `ready`, set when there is something to send."""

    __slots__ = ("user_id", "after", "events", "ready")

    def __init__(self, user_id: int, after: int):
        self.user_id, self.after = user_id, after
        self.events: list = []
        self.ready = asyncio.Event()

    def take(self) -> list:
        events, self.events = self.events, []
        return events


class EventHub:
    """This process's open streams by user, and the one task that numbers and reads their events.

    A pass (`_pass`): the sequencer, then one query for the events of every stream woken since the last pass
    (its user named by a notification or numbered by the sequencer, or the stream just opened), handed to
    the streams. Passes follow one another: what is heard during one is in the next, so a burst of commits
    costs a pass or two, not one read per stream."""

    def __init__(self):
        self.streams: dict[int, set[Subscriber]] = defaultdict(set)
        self.due: set[Subscriber] = set()  # streams to read for at the next pass
        self.heard: set[int] = set()  # users named by notifications since the last pass began
        self.placing: list[tuple[int, asyncio.Future]] = []  # streams opened without Last-Event-ID: (user, where)
        self.task: asyncio.Task | None = None
        self.kick: asyncio.Event | None = None  # a pass is wanted

    def _start(self) -> None:
        if self.task is None or self.task.done():
            self.kick = asyncio.Event()
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def last(self, user_id: int) -> int:
        """The id a stream opened now without `Last-Event-ID` starts after: the user's last numbered event."""
        self._start()
        where = asyncio.get_running_loop().create_future()
        self.placing.append((user_id, where))
        self.kick.set()
        return await where

    def subscribe(self, user_id: int, after: int) -> Subscriber:
        self._start()
        stream = Subscriber(user_id, after)
        self.streams[user_id].add(stream)
        self.due.add(stream)  # what came after `after`, at once
        self.kick.set()
        return stream

    def unsubscribe(self, stream: Subscriber) -> None:
        self.due.discard(stream)
        streams = self.streams.get(stream.user_id)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self.streams[stream.user_id]

    def wake(self, user_ids) -> None:
        """The streams of `user_ids` are read at a pass that begins now."""
        self._mark_due(user_ids)
        if self.kick is not None:
            self.kick.set()

    def _mark_due(self, user_ids) -> None:
        for user_id in user_ids:
            self.due.update(self.streams.get(user_id, ()))

    def wake_all(self) -> None:
        self.wake(list(self.streams))

    def sent(self, stream: Subscriber) -> None:
        """A stream sent what it had: if it was left out of a pass for having READ_LIMIT events unsent, it is
        read for again."""
        if stream in self.due and self.kick is not None:
            self.kick.set()

    async def _run(self) -> None:
        while True:
            try:
                if connection.vendor == "postgresql":
                    await self._serve_postgresql()
                else:
                    await self._serve_polling()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database went away: read again for every stream once it is back
                logger.exception("The event stream lost its database connection; trying again.")
                self.wake_all()
                await asyncio.sleep(1.0)

    async def _serve_postgresql(self) -> None:
        """Two connections: one LISTENs (and hears during a pass), one numbers and reads."""
        import psycopg

        params = await sync_to_async(_connection_params, thread_sensitive=False)()
        async with await psycopg.AsyncConnection.connect(**params, autocommit=True) as listener, \
                await psycopg.AsyncConnection.connect(**params, autocommit=True) as db:
            await listener.execute(f"LISTEN {EVENTS_CHANNEL}")
            self.wake_all()  # what committed while nobody listened
            hearing = asyncio.get_running_loop().create_task(self._hear(listener))
            try:
                await self._serve(_PostgresStore(db), hearing=hearing)
            finally:
                hearing.cancel()

    async def _hear(self, listener) -> None:
        while True:
            async for notification in listener.notifies(timeout=LOOK_SECONDS, stop_after=1):
                self.heard |= _user_ids(notification.payload)
            self.kick.set()  # a notification; or none for LOOK_SECONDS, and the sequencer runs anyway

    async def _serve_polling(self) -> None:
        """SQLite has no LISTEN: a pass every SQLITE_POLL_SECONDS, or at once when a stream opens."""
        await self._serve(_OrmStore(), poll=SQLITE_POLL_SECONDS)

    async def _serve(self, store, *, hearing: asyncio.Task | None = None, poll: float | None = None) -> None:
        """Passes, each as soon as the one before has ended and something kicked (a notification, a stream
        opened or done sending), or `poll` seconds passed."""
        while True:
            await self._pass(store)
            if not self.kick.is_set():
                kicked = asyncio.ensure_future(self.kick.wait())
                try:
                    await asyncio.wait({kicked} if hearing is None else {kicked, hearing}, timeout=poll,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    kicked.cancel()
                if hearing is not None and hearing.done():  # the LISTEN connection failed: its error
                    hearing.result()
            self.kick.clear()

    async def _pass(self, store) -> None:
        heard, self.heard = self.heard, set()
        numbered = await store.sequence()
        self._mark_due(heard | numbered)  # read by this pass (what is heard meanwhile kicks the next one)
        placing, self.placing = self.placing, []
        if placing:
            try:
                lasts = await store.last({user_id for user_id, _ in placing})
            except BaseException:
                self.placing[:0] = placing
                raise
            for user_id, where in placing:
                if not where.done():
                    where.set_result(lasts.get(user_id, 0))
        reading = {stream for stream in self.due if len(stream.events) < READ_LIMIT}
        if not reading:
            return
        self.due -= reading  # a wake-up during the read: read again at the next pass
        wanted: dict[int, int] = {}
        for stream in reading:
            wanted[stream.user_id] = min(stream.after, wanted.get(stream.user_id, stream.after))
        try:
            found = await store.read(wanted)
        except BaseException:
            self.due |= reading
            raise
        for stream in reading:
            events = found.get(stream.user_id, ())
            if len(events) == READ_LIMIT:  # there may be more: the next pass reads on
                self.due.add(stream)
                self.kick.set()
            new = [event for event in events if event.seq > stream.after]
            if new:
                stream.events.extend(new)
                stream.after = new[-1].seq
                stream.ready.set()


class _PostgresStore:
    """The hub's reads on its own asynchronous connection, on the event loop (no thread)."""

    def __init__(self, db):
        self.db = db

    async def sequence(self) -> set[int]:
        return await agent_events_sequence_async(self.db)

    async def last(self, user_ids) -> dict[int, int]:
        return await agent_events_last_async(self.db, user_ids=user_ids)

    async def read(self, wanted: dict[int, int]) -> dict[int, list]:
        return await agent_events_after_async(self.db, wanted=wanted, limit=READ_LIMIT)


class _OrmStore:
    """The same through the ORM, in the loop's threads (SQLite)."""

    async def sequence(self) -> set[int]:
        return set(await sync_to_async(_orm, thread_sensitive=False)(agent_events_sequence))

    async def last(self, user_ids) -> dict[int, int]:
        return await sync_to_async(_orm, thread_sensitive=False)(
            lambda: {user_id: agent_events_last(user_id=user_id) for user_id in user_ids})

    async def read(self, wanted: dict[int, int]) -> dict[int, list]:
        return await sync_to_async(_orm, thread_sensitive=False)(lambda: {
            user_id: agent_events_after(user_id=user_id, after=after, limit=READ_LIMIT)
            for user_id, after in wanted.items()})


def _orm(read):
    close_old_connections()
    return read()


hub = EventHub()


def _connection_params() -> dict:
    params = connection.get_connection_params()
    return {key: value for key, value in params.items() if key not in ("cursor_factory", "context")}


def _user_ids(payload: str) -> set[int]:
    return {int(part) for part in payload.split(",") if part.isdigit()}


def _frame(event) -> str:
    data = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n"


async def _stream(user_id: int, after: int):
    stream = hub.subscribe(user_id, after)
    try:
        yield f"retry: {RETRY_MILLISECONDS}\n\n"
        while True:
            stream.ready.clear()
            if stream.events:
                events = stream.take()
                hub.sent(stream)
                yield "".join(_frame(event) for event in events)
                continue
            try:  # idle: a comment now and then; the hub hands it what its user's next commits hold
                await asyncio.wait_for(stream.ready.wait(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"
    finally:
        hub.unsubscribe(stream)


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
        after = await hub.last(user.pk)
    response = StreamingHttpResponse(_stream(user.pk, after), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response

