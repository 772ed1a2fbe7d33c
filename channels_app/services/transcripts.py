"""The transcript as the API shows it: the `messages` of `GET /api/interactions/{id}/` (with each message's
files and location) and of the earlier interactions of `GET /api/interactions/{id}/history/` ("see older
messages...", WhatsApp guide).

Opening a conversation is the page agents live in all day (issue 24, "Speed": 200 messages within 150 ms).
A model instance and a DRF serializer per message cost more than reading and writing the JSON itself, so
the objects MessageSerializer and TranscriptMessageSerializer document (api/serializers.py keeps them for the
schema and the other doors: the same keys in the same order, times as DRF writes them) are written without
them. The conversation's transcript is written by PostgreSQL (`transcript_json`): one text value the view
puts into the response as it is, not decoded and encoded again in Python; only the few messages with files
or a location are read into Python, for their view (services/media.py's, as the admin and the event stream
show them: signed links, map links from options), and handed to that statement. The history's messages are
read with one query's `.values()`. Nothing is kept between requests."""

import json
from collections.abc import Iterable

from django.db import connection
from django.utils import timezone

from channels_app.models import Channel, Interaction, Message, MessageAttachment
from channels_app.services.agent_events import json_time
from channels_app.services.media import transcript_media

# MessageSerializer's fields, in its order (a test compares the two).
MESSAGE_FIELDS = ("id", "direction", "text", "status", "reasons", "payload", "external_id", "trace_id",
                  "origin_time", "created_at", "sent_at", "delivered_at")
TIMES = ("origin_time", "created_at", "sent_at", "delivered_at")


def _rows(interaction_ids: Iterable[str]) -> list[dict]:
    rows = list(Message.objects.filter(interaction_id__in=interaction_ids).order_by("created_at", "id")
                .values("interaction_id", *MESSAGE_FIELDS))
    zone = timezone.get_current_timezone()
    for row in rows:
        for name in TIMES:
            row[name] = json_time(row[name], zone)
    return rows


def transcripts(*, interactions: list[Interaction]) -> dict[str, list[dict]]:
    """The messages of each interaction (by id), oldest first, as MessageSerializer shows them: one query
    however many interactions and messages (the history's earlier interactions)."""
    by_interaction: dict[str, list[dict]] = {interaction.pk: [] for interaction in interactions}
    for row in _rows(by_interaction):
        by_interaction[row.pop("interaction_id")].append(row)
    return by_interaction


def _time_sql(column: str) -> str:
    """SQL writing a timestamptz column as DRF writes a datetime in UTC (json_time): ISO 8601 with "Z", the
    microseconds only when there are some, or null."""
    return (f"CASE WHEN m.{column} IS NULL THEN 'null' ELSE '\"' || to_char(m.{column} AT TIME ZONE 'UTC', "
            f"CASE WHEN extract(microseconds FROM m.{column})::bigint %% 1000000 = 0 "
            f"THEN 'YYYY-MM-DD\"T\"HH24:MI:SS' ELSE 'YYYY-MM-DD\"T\"HH24:MI:SS.US' END) || 'Z\"' END")


def _text_sql(column: str) -> str:
    return f"to_json(m.{column})::text"


# One message of TranscriptMessageSerializer, as JSON text, in its fields' order; `media`: the files and the
# location of the messages that have some, written by Python (json.dumps) and joined by id.
_OBJECT_SQL = " || ".join([
    """'{"id":' """, _text_sql("id"),
    """',"direction":' """, _text_sql("direction"),
    """',"text":' """, _text_sql("text"),
    """',"status":' """, _text_sql("status"),
    """',"reasons":' """, "m.reasons::text",
    """',"payload":' """, "m.payload::text",
    """',"external_id":' """, _text_sql("external_id"),
    """',"trace_id":' """, _text_sql("trace_id"),
    *(item for name in TIMES for item in (f"""',"{name}":' """, _time_sql(name))),
    """',"attachments":' """, "coalesce(media.attachments, '[]')",
    """',"location":' """, "coalesce(media.location, 'null')",
    "'}'",
])
_TRANSCRIPT_SQL = f"""
    SELECT '[' || coalesce(string_agg({_OBJECT_SQL}, ',' ORDER BY m.created_at, m.id), '') || ']'
    FROM {Message._meta.db_table} m
    LEFT JOIN unnest(%s::text[], %s::text[], %s::text[]) AS media(id, attachments, location) ON media.id = m.id
    WHERE m.interaction_id = %s
"""


# The messages that may have files or a location (transcript_media decides): an agent's files are in the
# payload, a customer's are MessageAttachment rows.
_WITH_MEDIA_SQL = f"""
    SELECT m.id, m.direction, m.payload::text FROM {Message._meta.db_table} m
    WHERE m.interaction_id = %s AND (m.payload ? 'attachments' OR m.payload ? 'location' OR (
        m.direction = 'inbound'
        AND EXISTS (SELECT 1 FROM {MessageAttachment._meta.db_table} a WHERE a.message_id = m.id)))
"""


def _dumps(value) -> str:
    """JSON as DRF's JSONRenderer writes it (compact, UTF-8 kept)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _media(interaction: Interaction, messages: list[dict]) -> dict[str, dict]:
    """The files and location of `messages` (rows: id, direction, payload) as the transcript shows them."""
    inbound_files: dict[str, list[MessageAttachment]] = {}
    if any(message["direction"] == "inbound" for message in messages):
        for attachment in MessageAttachment.objects.filter(message__interaction_id=interaction.pk):
            inbound_files.setdefault(attachment.message_id, []).append(attachment)
    channel: Channel = interaction.channel
    return transcript_media(messages=messages, inbound_files=inbound_files, channel=channel)


def transcript_json(*, interaction: Interaction) -> str:
    """The messages of one interaction, oldest first, as TranscriptMessageSerializer shows them (with
    `attachments`: the customer's files with their state, or the files an agent sent, with fresh signed links;
    and `location`, with its map link and preview), as one JSON text. Two statements for a conversation without
    files or locations, three or four with (however many messages)."""
    if connection.vendor != "postgresql" or timezone.get_current_timezone_name() != "UTC":
        # The statement is PostgreSQL's and writes UTC (settings.TIME_ZONE); SQLite (the embedded default) and
        # another current time zone get the same JSON from Python.
        return _dumps(_transcript_rows(interaction))
    with connection.cursor() as cursor:
        cursor.execute(_WITH_MEDIA_SQL, [interaction.pk])
        with_media = [{"id": id_, "direction": direction, "payload": json.loads(payload)}
                      for id_, direction, payload in cursor.fetchall()]
        views = _media(interaction, with_media) if with_media else {}
        ids = list(views)
        cursor.execute(_TRANSCRIPT_SQL, [
            ids, [_dumps(views[i].get("attachments", [])) for i in ids],
            [_dumps(views[i].get("location")) for i in ids], interaction.pk])
        return cursor.fetchone()[0]


def transcript(*, interaction: Interaction) -> list[dict]:
    """`transcript_json` read back into Python, for the answers that carry one interaction's transcript in
    an object of their own (ending it, a new session, an accepted offer)."""
    return json.loads(transcript_json(interaction=interaction))


def _transcript_rows(interaction: Interaction) -> list[dict]:
    """`transcript_json`'s messages built in Python: for a current time zone other than UTC."""
    rows = _rows([interaction.pk])
    for row in rows:
        del row["interaction_id"]
    media = _media(interaction, rows)
    for row in rows:
        shown = media.get(row["id"], {})
        row["attachments"] = shown.get("attachments", [])
        row["location"] = shown.get("location")
    return rows
