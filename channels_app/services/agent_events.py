"""The agents' live events (API.md `GET /api/agents/me/events/`; ARCHITECTURE.md, "Events come from
commits"): what an agent's screen must see, written as a row in the same transaction as the change (so an
event exists if and only if its change committed), then carried by the event stream.

Order without loss. Row ids are taken when a transaction inserts, not when it commits: a stream reading by
id could send 11 and then never see 10 committed a moment later. So the rows are numbered again after the
commit, in the order they became visible, by one sequencer at a time (`agent_events_sequence`, under a
PostgreSQL advisory lock; SQLite writes one transaction at a time anyway): `seq` is what the stream sends
as the event id and resumes after (`Last-Event-ID`), across reconnects and restarts.

On PostgreSQL the numbering is one round trip (SEQUENCE_SQL: the lock, then one UPDATE numbering the batch in
a statement of its own, so that it sees what committed while it waited for the lock): the lock is held for as
long as PostgreSQL takes to number, never while a client's thread waits for the CPU or the GIL, and the three
sequencers of three web processes woken by one commit follow one another in a few milliseconds.

On PostgreSQL the writing transaction also NOTIFYs `agent_events` with the users concerned, delivered at
its commit; the stream's process LISTENs, sequences and wakes those users' streams. On SQLite the stream
polls. The stream's process reads on its own asynchronous connection (`*_async` below, the same rules in
SQL: api/events.py); the ORM functions serve SQLite and every other caller."""

from collections.abc import Iterable
from datetime import timedelta
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import Case, Max, Value, When
from django.utils import timezone

from channels_app.models import AgentEvent, ConferenceMember, Interaction, Message, Offer

EVENTS_CHANNEL = "agent_events"
SEQUENCER_LOCK = 0x5E0_A6E7  # the advisory lock of the sequencer (any constant of this application)
SEQUENCE_BATCH = 2000
EVENTS_KEPT = timedelta(days=2)  # a stream resumes within this long; older events are deleted

OFFER = "offer"
OFFER_WITHDRAWN = "offer_withdrawn"
MESSAGE = "message"
RECEIPT = "receipt"
INTERACTION = "interaction"


def events_add(*, user_ids: Iterable[int | None], kind: str, data: dict) -> None:
    """The event `kind` for each of `user_ids`, in the caller's transaction; NOTIFY at its commit."""
    users = sorted({user_id for user_id in user_ids if user_id is not None})
    if not users:
        return
    AgentEvent.objects.bulk_create([AgentEvent(user_id=user_id, kind=kind, data=data) for user_id in users])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [EVENTS_CHANNEL, ",".join(map(str, users))])


_TABLE = AgentEvent._meta.db_table
# Two statements sent at once (no parameters: one simple query, one implicit transaction, and one round trip):
# the sequencer's lock, held to the end of that transaction; then, in a statement whose snapshot is taken once
# the lock is held (READ COMMITTED), up to SEQUENCE_BATCH committed events without a number numbered after the
# highest one, in the order of their ids. Its rows: the users of the events numbered.
SEQUENCE_SQL = f"""SELECT pg_advisory_xact_lock({SEQUENCER_LOCK:d});
WITH pending AS (
    SELECT id, row_number() OVER (ORDER BY id) AS n FROM {_TABLE} WHERE seq IS NULL ORDER BY id LIMIT {SEQUENCE_BATCH:d}
), top AS (SELECT coalesce(max(seq), 0) AS seq FROM {_TABLE})
UPDATE {_TABLE} AS event SET seq = top.seq + pending.n FROM pending, top WHERE event.id = pending.id
RETURNING event.user_id"""
# The events after `after` of each (user, after), READ_LIMIT of each at most, in order.
READ_SQL = f"""SELECT wanted.user_id, event.seq, event.kind, event.data
FROM unnest(%s::bigint[], %s::bigint[]) AS wanted(user_id, after)
CROSS JOIN LATERAL (SELECT seq, kind, data FROM {_TABLE}
                    WHERE user_id = wanted.user_id AND seq > wanted.after ORDER BY seq LIMIT %s) AS event
ORDER BY wanted.user_id, event.seq"""
LAST_SQL = f"""SELECT wanted.user_id, (SELECT coalesce(max(seq), 0) FROM {_TABLE} WHERE user_id = wanted.user_id)
FROM unnest(%s::bigint[]) AS wanted(user_id)"""


class StreamEvent(NamedTuple):
    """An event as the stream sends it: its number, kind and data."""

    seq: int
    kind: str
    data: dict


def agent_events_sequence() -> list[int]:
    """Number the events committed since the last call, in the order they are seen now (after every event
    numbered before), SEQUENCE_BATCH to a transaction until none is left; the users who have new events."""
    users: set[int] = set()
    while True:
        numbered = _sequence_batch()
        users.update(numbered)
        if len(numbered) < SEQUENCE_BATCH:
            return sorted(users)


def _sequence_batch() -> list[int]:
    """Number up to SEQUENCE_BATCH events committed and not yet numbered; the user of each."""
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(SEQUENCE_SQL)
            cursor.nextset()
            return [user_id for (user_id,) in cursor.fetchall()]
    with transaction.atomic():  # SQLite: one writer at a time is the lock
        pending = list(AgentEvent.objects.filter(seq__isnull=True).order_by("pk")
                       .values_list("pk", "user_id")[:SEQUENCE_BATCH])
        if not pending:
            return []
        base = AgentEvent.objects.aggregate(top=Max("seq"))["top"] or 0
        AgentEvent.objects.filter(pk__in=[pk for pk, _ in pending]).update(
            seq=Case(*[When(pk=pk, then=Value(base + n)) for n, (pk, _) in enumerate(pending, start=1)]))
    return [user_id for _, user_id in pending]


def agent_events_after(*, user_id: int, after: int, limit: int = 200) -> list[AgentEvent]:
    """The user's numbered events after `after`, oldest first."""
    return list(AgentEvent.objects.filter(user_id=user_id, seq__gt=after).order_by("seq")[:limit])


def agent_events_last(*, user_id: int) -> int:
    """Where a stream opened without `Last-Event-ID` starts: after the user's last numbered event."""
    return AgentEvent.objects.filter(user_id=user_id, seq__isnull=False).aggregate(top=Max("seq"))["top"] or 0


# --- the same, on an asynchronous psycopg connection in autocommit (the event stream's, api/events.py) ---------


async def agent_events_sequence_async(db) -> set[int]:
    """`agent_events_sequence` on `db`: one round trip a batch."""
    users: set[int] = set()
    while True:
        cursor = await db.execute(SEQUENCE_SQL)
        cursor.nextset()
        numbered = await cursor.fetchall()
        users.update(user_id for (user_id,) in numbered)
        if len(numbered) < SEQUENCE_BATCH:
            return users


async def agent_events_after_async(db, *, wanted: dict[int, int], limit: int) -> dict[int, list[StreamEvent]]:
    """`agent_events_after` for each user of `wanted` (user -> after) in one query: user -> events."""
    found: dict[int, list[StreamEvent]] = {}
    if wanted:
        cursor = await db.execute(READ_SQL, [list(wanted), list(wanted.values()), limit])
        for user_id, seq, kind, data in await cursor.fetchall():
            found.setdefault(user_id, []).append(StreamEvent(seq, kind, data))
    return found


async def agent_events_last_async(db, *, user_ids: Iterable[int]) -> dict[int, int]:
    """`agent_events_last` for each of `user_ids` in one query: user -> the id to start after."""
    cursor = await db.execute(LAST_SQL, [list(user_ids)])
    return dict(await cursor.fetchall())


def agent_events_prune(*, now=None) -> int:
    """Delete events older than EVENTS_KEPT (numbered ones: an unnumbered one is still on its way)."""
    now = now or timezone.now()
    deleted, _ = AgentEvent.objects.filter(created_at__lt=now - EVENTS_KEPT, seq__isnull=False).delete()
    return deleted


# --- what the events carry: the JSON objects of the same name in the REST API ---------------------------------


def offer_data(offer: Offer) -> dict:
    """An offer as `GET /api/agents/me/offers/` shows it (api/routing_serializers.py uses this too)."""
    interaction = offer.interaction
    return {
        "id": offer.pk, "interaction": offer.interaction_id,
        "queue": offer.queue.key if offer.queue_id else (interaction.queue or None),
        "contact": interaction.contact_id,
        "preview": str((interaction.user_data or {}).get("_umsMsgPlainText", ""))[:200],
        "expires_at": json_time(offer.expires_at), "kind": offer.kind, "subtype": offer.subtype,
        "from_agent": offer.from_agent_id,
    }


def message_data(message: Message, *, media: dict | None = None) -> dict:
    """A message as the transcript of `GET /api/interactions/{id}/` shows it: with `origin_time` (the
    workspace shows a delayed message's origination time), for a location or files, its `location` and
    `attachments` (`media`: services/media.py's view of the message, signed links), and an e-mail's `subject`
    (its payload's: the payload itself, an e-mail's HTML too, is not copied into every watcher's event)."""
    data = {"id": message.pk, "interaction": message.interaction_id, "direction": message.direction,
            "text": message.text, "status": message.status, "reasons": message.reasons,
            "origin_time": json_time(message.origin_time), "created_at": json_time(message.created_at)}
    payload = message.payload or {}
    if isinstance(payload.get("subject"), str):  # a customer's e-mail, or the e-mail an agent's text became
        data["subject"] = payload["subject"]
    if media:
        data.update(media)
    return data


def interaction_data(interaction: Interaction, change: str) -> dict:
    """The interaction as the list of `GET /api/interactions/` shows it, and what changed (`assigned`,
    `transferred`, `conference`, `ended`)."""
    return {"id": interaction.pk, "type": interaction.type, "subtype": interaction.subtype,
            "state": interaction.state, "channel": interaction.channel.channel_id,
            "client_id": interaction.client_id, "queue": interaction.queue, "contact": interaction.contact_id,
            "assigned_to": interaction.assigned_to_id, "change": change}


def json_time(moment, zone=None) -> str | None:
    """A time as the REST API writes it (DRF's ISO 8601 in the current time zone, "Z" for UTC), for the JSON
    written without a serializer: the events, the transcript (services/transcripts.py). `zone`: the current
    time zone, read once by a caller that writes many times."""
    if moment is None:
        return None
    text = moment.astimezone(zone or timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def interaction_watchers(interaction: Interaction) -> list[int]:
    """Who sees an interaction's messages live: the agent it is assigned to and its conference."""
    if interaction.assigned_to_id is None:
        return []
    return [interaction.assigned_to_id,
            *ConferenceMember.objects.filter(interaction_id=interaction.pk).values_list("agent_id", flat=True)]


# The event of an interaction's watchers (interaction_watchers: the agent it is assigned to, its conference), as
# events_add writes it (a row per user, deduplicated, in the order of their users), as a common table expression
# `watcher_events` of a statement that NOTIFYs with WATCHER_EVENTS_NOTIFY: the watchers' read, the rows and the
# NOTIFY in one round trip. Parameters: assigned, interaction, event_kind, event_data, event_created_at,
# events_channel.
WATCHER_EVENTS_CTE = f"""watcher_events AS (
    INSERT INTO {AgentEvent._meta.db_table} (user_id, kind, data, created_at, seq)
    SELECT watcher.user_id, %(event_kind)s, %(event_data)s, %(event_created_at)s, NULL
    FROM (SELECT %(assigned)s::bigint AS user_id
          UNION SELECT agent_id FROM {ConferenceMember._meta.db_table} WHERE interaction_id = %(interaction)s
         ) AS watcher
    WHERE %(assigned)s::bigint IS NOT NULL AND watcher.user_id IS NOT NULL
    ORDER BY watcher.user_id
    RETURNING user_id
)"""
WATCHER_EVENTS_NOTIFY = """(SELECT pg_notify(%(events_channel)s, string_agg(user_id::text, ',' ORDER BY user_id))
        FROM watcher_events HAVING count(*) > 0)"""
_WATCHER_EVENTS_SQL = f"WITH {WATCHER_EVENTS_CTE}\nSELECT {WATCHER_EVENTS_NOTIFY}"
_EVENT_DATA = AgentEvent._meta.get_field("data")


def watcher_events_params(*, interaction: Interaction, kind: str, data: dict) -> dict:
    """WATCHER_EVENTS_CTE's parameters."""
    return {"assigned": interaction.assigned_to_id, "interaction": interaction.pk, "event_kind": kind,
            "event_data": _EVENT_DATA.get_db_prep_save(data, connection), "event_created_at": timezone.now(),
            "events_channel": EVENTS_CHANNEL}


def _watchers_event_add(*, interaction: Interaction, kind: str, data: dict) -> None:
    """events_add for interaction_watchers(interaction): on PostgreSQL one statement (three otherwise)."""
    if connection.vendor != "postgresql":
        events_add(user_ids=interaction_watchers(interaction), kind=kind, data=data)
        return
    with connection.cursor() as cursor:
        cursor.execute(_WATCHER_EVENTS_SQL, watcher_events_params(interaction=interaction, kind=kind, data=data))


def message_event(*, message: Message, interaction: Interaction, media: dict | None = None) -> None:
    """A message in or out of an interaction someone holds (`media`: its files and location, if any)."""
    if interaction.assigned_to_id is not None:
        _watchers_event_add(interaction=interaction, kind=MESSAGE, data=message_data(message, media=media))


def receipt_event(*, message: Message, interaction: Interaction | None = None) -> None:
    """A receipt, or the delivery's outcome (sent: the third party took it; failed: out of attempts), changed an
    outbound message of an interaction someone holds. `interaction`: the message's, when the caller has it loaded
    (the delivery path): then an interaction nobody holds costs no query."""
    if interaction is None:
        interaction = Interaction.objects.filter(pk=message.interaction_id).only("pk", "assigned_to_id").first()
    if interaction is not None and interaction.assigned_to_id is not None:
        _watchers_event_add(interaction=interaction, kind=RECEIPT, data={
            "message": message.pk, "interaction": message.interaction_id, "status": message.status,
            "reasons": message.reasons, "delivered_at": json_time(message.delivered_at)})
