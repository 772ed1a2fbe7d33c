"""Media both ways (API.md, "Media, locations and e-mail").

* Out: every attachment object in a webhook body carries `url` (a signed,
  expiring link), `contentType`, `fileName` and `size`; a message's
  attachments leave after its text, each as a message of its own, the next
  not sent before the one before it is accepted (`outbound_followers`; the
  delivery engine releases them, services/deliveries.py).
* In: the `attachments` of a customer's Text message are stored as
  `MessageAttachment` rows, pending, and fetched by a task
  (`message_attachment_fetch`): through the outbound address rules, at most
  100 MB, streamed to storage, the type checked by content against the spec's
  list; retried with backoff; failed with the reason otherwise, the message
  kept. An image gets a small thumbnail (Pillow).
* Locations: the map link and preview of the `location-map.*` options.
* The transcript's view of a message's media (`messages_media`, `transcript_media` for rows), shared by the
  admin and `GET /api/interactions/{id}/`."""

import io
import logging
import posixpath
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from channels_app import options_catalog
from channels_app.attachments import AttachmentKind, AttachmentRejected, detect_attachment_type, sniff_attachment_type
from channels_app.errors import InvalidParameter
from channels_app.media_fetch import FetchFailed, fetch
from channels_app.models import (
    Attachment,
    Channel,
    Delivery,
    DeliveryState,
    Message,
    MessageAttachment,
    MessageAttachmentStatus,
)
from channels_app.publishing import FETCH_ATTACHMENT, publish
from channels_app.services.agent_events import message_event
from channels_app.services.options import option_value
from channels_app.signed_links import file_url

logger = logging.getLogger(__name__)

THUMBNAIL_SIZE = (320, 320)
# Content types that name the same thing (what a sender may say, what the spec's list says).
TYPE_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "audio/opus": "audio/ogg",
                "audio/x-aac": "audio/aac", "audio/aacp": "audio/aac", "audio/mp4": "video/mp4"}
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf", "video/mp4": "mp4",
              "audio/aac": "aac", "audio/amr": "amr", "audio/ogg": "opus"}


# --- Out ---------------------------------------------------------------------------------------------------


def media_object(attachment: Attachment) -> dict:
    """An attachment as a webhook body carries it."""
    return {
        "attachment": attachment.pk,
        "url": file_url(storage_name=attachment.file.name, content_type=attachment.mime_type,
                        file_name=attachment.name),
        "contentType": attachment.mime_type,
        "fileName": attachment.name,
        "size": attachment.size,
    }


def _media_holders(payload: dict) -> list[dict]:
    """The objects of a rendered payload that name an attachment by id: a media header, carousel images."""
    holders = []
    header = payload.get("header")
    if isinstance(header, dict) and isinstance(header.get("attachment"), int):
        holders.append(header)
    for item in payload.get("items") or ():
        image = item.get("image") if isinstance(item, dict) else None
        if isinstance(image, dict) and isinstance(image.get("attachment"), int):
            holders.append(image)
    return holders


def payload_with_media(payload: dict, attachments: list[Attachment] = ()) -> dict:
    """`payload` with its media header and carousel images completed (url, contentType, fileName, size)
    and the standard response's `attachments` listed in that shape. No query when it names no file."""
    holders = _media_holders(payload)
    if not holders and not attachments:
        return payload
    by_id = {a.pk: a for a in attachments}
    wanted = {holder["attachment"] for holder in holders} - set(by_id)
    if wanted:
        by_id.update((a.pk, a) for a in Attachment.objects.filter(pk__in=wanted))
    for holder in holders:
        if (attachment := by_id.get(holder["attachment"])) is not None:
            holder.update(media_object(attachment))
    if attachments:
        payload["attachments"] = [media_object(attachment) for attachment in attachments]
    return payload


def attachments_for_sending(*, channel: Channel, ids: list) -> list[Attachment]:
    """The tenant's attachments an agent names, in order; ids of another tenant are unknown (400)."""
    if any(not isinstance(i, int) or isinstance(i, bool) for i in ids):
        raise InvalidParameter("attachments holds attachment ids (integers).", field="attachments")
    found = {a.pk: a for a in Attachment.objects.filter(pk__in=ids, tenant_id=channel.tenant_id)}
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise InvalidParameter(f"Unknown attachment id(s): {', '.join(map(str, unknown))}.", field="attachments")
    return [found[i] for i in ids]


def attachment_payload(media: dict) -> dict:
    """The webhook content of one attachment sent on its own: a Text message with no text and the file."""
    return {"type": "Text", "text": "", "attachments": [media]}


def outbound_followers(messages: list[Message]) -> dict[int, list[Message]]:
    """Split the attachments off outgoing messages (in place): each message keeps its text and content,
    and each of its attachments becomes a message of its own to send after it, in order. A message with
    no text but attachments becomes its first attachment. Returns {index of the message: its followers}."""
    followers: dict[int, list[Message]] = {}
    for index, message in enumerate(messages):
        media = message.payload.get("attachments")
        if not media or message.payload.get("type") == "Email":  # an e-mail carries its files itself
            continue
        payload = {key: value for key, value in message.payload.items() if key != "attachments"}
        if payload.get("type") == "Text" and not payload.get("text"):
            payload, media = attachment_payload(media[0]), media[1:]
        message.payload = payload
        followers[index] = [
            Message(interaction=message.interaction, channel_id=message.channel_id, direction=message.direction,
                    text="", payload=attachment_payload(item), status=message.status, trace_id=message.trace_id)
            for item in media
        ]
    return followers


def follower_deliveries_create(*, deliveries: list[Delivery], followers: dict[int, list[Message]]) -> None:
    """The deliveries of the attachments that follow a message: each waits for the one before it."""
    now = timezone.now()
    chains = {index: chain for index, chain in followers.items() if chain}
    if not chains:
        return
    leaders = [deliveries[index] for index in chains]
    Delivery.objects.filter(pk__in=[d.pk for d in leaders]).update(has_followers=True)
    previous = {index: deliveries[index] for index in chains}
    for leader in leaders:
        leader.has_followers = True
    depth = 0
    while True:
        level = [(index, chain[depth]) for index, chain in chains.items() if depth < len(chain)]
        if not level:
            return
        created = Delivery.objects.bulk_create([
            Delivery(message=message, channel_id=message.channel_id, state=DeliveryState.WAITING,
                     next_attempt_at=now, after=previous[index], has_followers=depth + 1 < len(chains[index]))
            for index, message in level
        ])
        previous.update((index, delivery) for (index, _), delivery in zip(level, created, strict=True))
        depth += 1


# --- In --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboundAttachment:
    """One entry of a customer message's `attachments`, as sent (checked when fetched)."""

    url: str
    content_type: str = ""
    file_name: str = ""
    size: int | None = None


def message_attachments_create(*, message: Message, attachments: list[InboundAttachment]) -> None:
    """Pending rows for a customer message's attachments, fetched once the transaction commits."""
    rows = MessageAttachment.objects.bulk_create(
        MessageAttachment(
            message=message, position=position, source_url=item.url, declared_content_type=item.content_type[:200],
            declared_size=item.size, file_name=(item.file_name or _name_from_url(item.url))[:255],
        )
        for position, item in enumerate(attachments)
    )
    ids = [row.pk for row in rows]
    message_media_event(message_id=message.pk)  # the agent's transcript shows the files coming
    transaction.on_commit(lambda: [message_attachment_enqueue(i) for i in ids])


def message_attachment_enqueue(attachment_id: int, *, countdown: float | None = None) -> None:
    # When the broker is down the attachment stays pending; the admin's "fetch again" covers it.
    publish(FETCH_ATTACHMENT, attachment_id, countdown=countdown)


def _name_from_url(url: str) -> str:
    try:
        return posixpath.basename(unquote(urlsplit(url).path))[:255]
    except ValueError:
        return ""


def _base_type(content_type: str) -> str:
    base = content_type.split(";")[0].strip().lower()
    return TYPE_ALIASES.get(base, base)


def message_attachment_fetch(*, attachment_id: int) -> float | None:
    """One attempt at fetching a pending attachment. Returns the seconds to wait before the next attempt
    when this one failed in a way that may pass (and attempts are left), else None."""
    attachment = MessageAttachment.objects.filter(pk=attachment_id, status=MessageAttachmentStatus.PENDING).first()
    if attachment is None:
        return None
    claimed = MessageAttachment.objects.filter(
        pk=attachment.pk, status=MessageAttachmentStatus.PENDING, attempts=attachment.attempts
    ).update(attempts=F("attempts") + 1, updated_at=timezone.now())
    if not claimed:
        return None  # another attempt is under way
    attachment.attempts += 1
    try:
        fetched = fetch(attachment.source_url, timeout=settings.MEDIA_FETCH_TIMEOUT,
                        deadline=settings.MEDIA_FETCH_TOTAL_SECONDS)
    except FetchFailed as failure:
        if failure.retry and attachment.attempts < settings.MEDIA_FETCH_ATTEMPTS:
            MessageAttachment.objects.filter(pk=attachment.pk).update(reason=str(failure)[:500])
            return settings.MEDIA_FETCH_RETRY_SECONDS * 2 ** (attachment.attempts - 1)
        _failed(attachment, str(failure))
        return None
    with fetched.file:
        try:
            _store(attachment, fetched.file, fetched.size)
        except AttachmentRejected as refusal:
            _failed(attachment, str(refusal))
    return None


def _store(attachment: MessageAttachment, stream, size: int) -> None:
    if attachment.declared_size is not None and attachment.declared_size != size:
        raise AttachmentRejected(f"The file is {size} bytes, not the {attachment.declared_size} its size says.")
    name = attachment.file_name or "attachment"
    if "." not in name and (sniffed := sniff_attachment_type(stream, name)) is not None:
        name = f"{name}.{sniffed.extensions[0]}"
    found = detect_attachment_type(stream, name, size)
    declared = _base_type(attachment.declared_content_type)
    if declared and declared != _base_type(found.mime_type):
        raise AttachmentRejected(f"The content is {found.mime_type}, not the {declared} its contentType says.")
    stream.seek(0)
    attachment.file.save(name, File(stream, name=name), save=False)
    if found.kind == AttachmentKind.IMAGE:
        thumbnail = thumbnail_make(stream)
        if thumbnail is not None:
            attachment.thumbnail.save(f"{name.rsplit('.', 1)[0]}-thumb.jpg", ContentFile(thumbnail), save=False)
    now = timezone.now()
    MessageAttachment.objects.filter(pk=attachment.pk).update(
        status=MessageAttachmentStatus.STORED, file=attachment.file.name, thumbnail=attachment.thumbnail.name or "",
        file_name=name[:255], content_type=found.mime_type, size=size, reason="", stored_at=now, updated_at=now,
    )
    message_media_event(message_id=attachment.message_id)  # the file and its thumbnail, in the agent's transcript


def _failed(attachment: MessageAttachment, reason: str) -> None:
    MessageAttachment.objects.filter(pk=attachment.pk).update(
        status=MessageAttachmentStatus.FAILED, reason=reason[:500], updated_at=timezone.now()
    )
    message_media_event(message_id=attachment.message_id)


def thumbnail_make(stream) -> bytes | None:
    """A small JPEG of an image (THUMBNAIL_SIZE at most), or None when Pillow cannot read it."""
    from PIL import Image

    try:
        stream.seek(0)
        with Image.open(stream) as image:
            image.draft("RGB", THUMBNAIL_SIZE)  # JPEG: decode at a reduced size, not the whole picture
            image.thumbnail(THUMBNAIL_SIZE)
            out = io.BytesIO()
            image.convert("RGB").save(out, "JPEG", quality=80)
            return out.getvalue()
    except Exception:  # a broken or hostile image (a decompression bomb): the file is kept, without a thumbnail
        logger.warning("No thumbnail for an image.", exc_info=True)
        return None
    finally:
        stream.seek(0)


@transaction.atomic
def message_attachments_refetch(*, attachment_ids: list[int]) -> int:
    """Fetch failed attachments again (the admin's action), from their first attempt; returns how many."""
    ids = list(
        MessageAttachment.objects.filter(pk__in=attachment_ids, status=MessageAttachmentStatus.FAILED)
        .values_list("pk", flat=True)
    )
    MessageAttachment.objects.filter(pk__in=ids).update(
        status=MessageAttachmentStatus.PENDING, attempts=0, reason="", updated_at=timezone.now()
    )
    transaction.on_commit(lambda: [message_attachment_enqueue(i) for i in ids])
    return len(ids)


# --- Locations --------------------------------------------------------------------------------------------


def location_view(*, location: dict, channel: Channel | None) -> dict:
    """A location with its map link (`whatsappsession.location-map.browse.query`, else the location's own
    url) and preview image (`...preview.query` with its height and width), when configured."""
    view = dict(location)
    latitude, longitude = location.get("latitude"), location.get("longitude")
    if latitude is None or longitude is None:
        return view
    section = options_catalog.IW

    def filled(template: str) -> str:
        return (template.replace("{LATITUDE}", str(latitude)).replace("{LONGITUDE}", str(longitude))
                .replace("{HEIGHT}", str(height)).replace("{WIDTH}", str(width)))

    height = option_value(section=section, name="whatsappsession.location-map.preview.height", channel=channel)
    width = option_value(section=section, name="whatsappsession.location-map.preview.width", channel=channel)
    browse = option_value(section=section, name="whatsappsession.location-map.browse.query", channel=channel)
    preview = option_value(section=section, name="whatsappsession.location-map.preview.query", channel=channel)
    map_url = filled(browse) if browse else location.get("url", "")
    if map_url:
        view["mapUrl"] = map_url
    if preview:
        view["previewUrl"] = filled(preview)
        view["previewHeight"], view["previewWidth"] = height, width
    return view


def location_payload(location) -> dict:
    """An agent's location as a webhook carries it (the customer's shape); 400 naming the field when wrong."""
    from channels_app.parsing import InvalidStructure, location_text, parse_location

    try:
        cleaned = parse_location(location, "location")
    except InvalidStructure as error:
        raise InvalidParameter(str(error), field="location") from error
    return {"type": "Location", "text": location_text(cleaned), "location": cleaned}


# --- The transcript ---------------------------------------------------------------------------------------


def _inbound_view(attachment: MessageAttachment) -> dict:
    view = {
        "id": attachment.pk,
        "fileName": attachment.file_name,
        "contentType": attachment.content_type or attachment.declared_content_type,
        "size": attachment.size if attachment.size is not None else attachment.declared_size,
        "status": attachment.status,
        "url": None,
    }
    if attachment.status == MessageAttachmentStatus.STORED and attachment.file:
        view["url"] = file_url(storage_name=attachment.file.name, content_type=attachment.content_type,
                               file_name=attachment.file_name)
        if attachment.thumbnail:
            view["thumbnailUrl"] = file_url(storage_name=attachment.thumbnail.name, content_type="image/jpeg",
                                            file_name=posixpath.basename(attachment.thumbnail.name))
    if attachment.status == MessageAttachmentStatus.FAILED:
        view["reason"] = attachment.reason
    return view


def messages_media(*, messages: list[Message], channel: Channel | None) -> dict[str, dict]:
    """For each message with media: {"attachments": [...], "location": {...}}, with fresh signed links.
    Inbound attachments come from their rows (prefetched as `attachments` when the caller did)."""
    return transcript_media(
        messages=[{"id": m.pk, "direction": m.direction, "payload": m.payload} for m in messages],
        inbound_files={m.pk: list(m.attachments.all()) for m in messages if m.direction == "inbound"},
        channel=channel,
    )


def transcript_media(*, messages: list[dict], inbound_files: dict[str, list[MessageAttachment]],
                     channel: Channel | None) -> dict[str, dict]:
    """`messages_media` for messages read as rows (`id`, `direction`, `payload`; services/transcripts.py),
    with the customers' files of each message given by its id. Outbound files come from the payload, their
    links signed again when the attachment still exists (one query for all)."""
    views: dict[str, dict] = {}
    outbound_ids = {
        item.get("attachment")
        for message in messages
        for item in (message["payload"].get("attachments") or ())
        if isinstance(item, dict)
    } - {None}
    stored = {a.pk: a for a in Attachment.objects.filter(pk__in=outbound_ids)} if outbound_ids else {}
    for message in messages:
        view = {}
        payload = message["payload"]
        if message["direction"] == "inbound":
            rows = inbound_files.get(message["id"])
            if rows:
                view["attachments"] = [_inbound_view(row) for row in rows]
        elif payload.get("attachments"):
            items = []
            for item in payload["attachments"]:
                attachment = stored.get(item.get("attachment")) if isinstance(item, dict) else None
                items.append({**media_object(attachment), "status": "stored"} if attachment else dict(item))
            view["attachments"] = items
        if isinstance(payload.get("location"), dict):
            view["location"] = location_view(location=payload["location"], channel=channel)
        if view:
            views[message["id"]] = view
    return views


def message_media(message: Message) -> dict | None:
    """The files and location of one message as the transcript shows them (no query for a plain text)."""
    payload = message.payload or {}
    if not (payload.get("attachments") or isinstance(payload.get("location"), dict)):
        return None
    return messages_media(messages=[message], channel=message.channel).get(message.pk)


def message_media_event(*, message_id: str) -> None:
    """A customer's files changed (received, stored with a thumbnail, failed): the message again, with its
    `attachments`, to whoever holds its interaction (the workspace's transcript replaces the message of the
    same id)."""
    message = (Message.objects.select_related("channel", "interaction").prefetch_related("attachments")
               .filter(pk=message_id).first())
    if message is None or message.interaction.assigned_to_id is None:
        return
    media = messages_media(messages=[message], channel=message.channel).get(message.pk) or {}
    message_event(message=message, interaction=message.interaction, media=media)
