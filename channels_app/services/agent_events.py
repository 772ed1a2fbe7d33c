"""The agents' live events (API.md `GET /api/agents/me/events/`; ARCHITECTURE.md, "Events come from
commits"): what an agent's screen must see, written as a row in the same transaction as the change (so an
event exists if and only if its change committed), then carried by the event stream.

Order without loss. Row ids are taken when a transaction inserts, not when it commits: a stream reading by
id could send 11 and then never see 10 committed a moment later. So the rows are numbered again after the
commit, in the order they became visible, by one sequencer at a time (`agent_events_sequence`, under a
PostgreSQL advisory lock; SQLite writes one transaction at a time anyway): `seq` is what the stream sends
as the event id and resumes after (`Last-Event-ID`), across reconnects and restarts.

On PostgreSQL the writing transaction also NOTIFYs `agent_events` with the users concerned, delivered at
its commit; the stream's process LISTENs, sequences and wakes those users' streams. On SQLite the stream
polls."""

from collections.abc import Iterable
from datetime import timedelta

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


def agent_events_sequence() -> list[int]:
    """Number the events committed since the last call, in the order they are seen now (after every event
    numbered before), SEQUENCE_BATCH to a transaction until none is left; the users who have new events."""
    users: set[int] = set()
    while True:
        pending = _sequence_batch()
        users.update(user_id for _, user_id in pending)
        if len(pending) < SEQUENCE_BATCH:
            return sorted(users)


def _sequence_batch() -> list[tuple[int, int]]:
    """Number up to SEQUENCE_BATCH events committed and not yet numbered; their (id, user)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEQUENCER_LOCK])
        pending = list(AgentEvent.objects.filter(seq__isnull=True).order_by("pk")
                       .values_list("pk", "user_id")[:SEQUENCE_BATCH])
        if not pending:
            return []
        base = AgentEvent.objects.aggregate(top=Max("seq"))["top"] or 0
        AgentEvent.objects.filter(pk__in=[pk for pk, _ in pending]).update(
            seq=Case(*[When(pk=pk, then=Value(base + n)) for n, (pk, _) in enumerate(pending, start=1)]))
    return pending


def agent_events_after(*, user_id: int, after: int, limit: int = 200) -> list[AgentEvent]:
    """The user's numbered events after `after`, oldest first."""
    return list(AgentEvent.objects.filter(user_id=user_id, seq__gt=after).order_by("seq")[:limit])


def agent_events_last(*, user_id: int) -> int:
    """Where a stream opened without `Last-Event-ID` starts: after the user's last numbered event."""
    return AgentEvent.objects.filter(user_id=user_id, seq__isnull=False).aggregate(top=Max("seq"))["top"] or 0


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


def message_event(*, message: Message, interaction: Interaction, media: dict | None = None) -> None:
    """A message in or out of an interaction someone holds (`media`: its files and location, if any)."""
    if interaction.assigned_to_id is not None:
        events_add(user_ids=interaction_watchers(interaction), kind=MESSAGE, data=message_data(message, media=media))


def receipt_event(*, message: Message) -> None:
    """A receipt changed an outbound message of an interaction someone holds."""
    interaction = Interaction.objects.filter(pk=message.interaction_id).only("pk", "assigned_to_id").first()
    if interaction is not None and interaction.assigned_to_id is not None:
        events_add(user_ids=interaction_watchers(interaction), kind=RECEIPT, data={
            "message": message.pk, "interaction": message.interaction_id, "status": message.status,
            "reasons": message.reasons, "delivered_at": json_time(message.delivered_at)})
