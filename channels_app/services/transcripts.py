"""The transcript as the API shows it: the `messages` of `GET /api/interactions/{id}/` (with each message's
files and location) and of the earlier interactions of `GET /api/interactions/{id}/history/` ("see older
messages...", WhatsApp guide).

Opening a conversation is the page agents live in all day (issue 24, "Speed": 200 messages within 150 ms).
A model instance and a DRF serializer per message cost more than reading and writing the JSON itself, so the
messages are read with one query's `.values()` and written straight into the objects MessageSerializer and
TranscriptMessageSerializer document (api/serializers.py keeps them for the schema and the other doors): the
same keys in the same order, times as DRF writes them. Files and locations come from services/media.py's
view, as the admin and the event stream show them. Nothing is kept between requests."""

from collections.abc import Iterable

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


def transcript(*, interaction: Interaction) -> list[dict]:
    """The messages of one interaction, oldest first, as TranscriptMessageSerializer shows them: with
    `attachments` (the customer's files with their state, or the files an agent sent, with fresh signed
    links) and `location` (with its map link and preview). Two queries, three when an agent sent files."""
    rows = _rows([interaction.pk])
    for row in rows:
        del row["interaction_id"]
    inbound_files: dict[str, list[MessageAttachment]] = {}
    for attachment in MessageAttachment.objects.filter(message__interaction_id=interaction.pk):
        inbound_files.setdefault(attachment.message_id, []).append(attachment)
    channel: Channel = interaction.channel
    media = transcript_media(messages=rows, inbound_files=inbound_files, channel=channel)
    for row in rows:
        shown = media.get(row["id"], {})
        row["attachments"] = shown.get("attachments", [])
        row["location"] = shown.get("location")
    return rows
