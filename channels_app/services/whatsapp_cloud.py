"""WhatsApp Cloud API webhooks in (API.md "WhatsApp Cloud API channels"):
stored raw first, processed by a task, media fetched by another.

The view checks the signature, stores the body (`whatsapp_webhook_store`) and
answers 200 at once; `whatsapp_inbox_process` then turns the body into
customer messages, receipts and template statuses. Processing is idempotent:
a processed row is skipped, a message id already received stores nothing new
(the unique channel message id), a receipt applied twice changes nothing."""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from channels_app.media_fetch import FetchFailed, fetch
from channels_app.models import (
    Channel,
    MediaState,
    Message,
    MessageDirection,
    WhatsAppInbox,
    WhatsAppMedia,
)
from channels_app.publishing import WHATSAPP_INBOX_PROCESS, WHATSAPP_MEDIA_FETCH, publish, publish_on_commit
from channels_app.services.interactions import customer_message_receive
from channels_app.services.receipts import receipt_apply
from channels_app.transports.graph_api import GRAPH_TIMEOUT_SECONDS, graph_request
from channels_app.transports.whatsapp_cloud_payloads import CloudMessage, parse_webhook

logger = logging.getLogger(__name__)

MEDIA_FETCH_ATTEMPTS = 3
MEDIA_RETRY_SECONDS = 30
# Meta's statuses and what receipt they are.
RECEIPT_OF_STATUS = {"sent": "Sent", "delivered": "Delivered", "read": "Read", "failed": "Failed"}


def whatsapp_webhook_store(*, channel: Channel, body: str) -> WhatsAppInbox:
    """Keep a signed webhook body; it is processed by a task once committed."""
    inbox = WhatsAppInbox.objects.create(channel=channel, body=body)
    publish_on_commit(WHATSAPP_INBOX_PROCESS, inbox.pk)
    return inbox


def whatsapp_inbox_pending(*, limit: int = 500) -> list[int]:
    """Rows not processed a minute after they came (their task was lost): published again."""
    quiet = timezone.now() - timedelta(minutes=1)
    ids = list(WhatsAppInbox.objects.filter(processed_at__isnull=True, received_at__lt=quiet)
               .order_by("pk").values_list("pk", flat=True)[:limit])
    for inbox_id in ids:
        publish(WHATSAPP_INBOX_PROCESS, inbox_id)
    return ids


def whatsapp_inbox_process(*, inbox_id: int) -> bool:
    """Process one stored webhook; False when it was already processed (or is gone)."""
    import json

    with transaction.atomic():
        inbox = WhatsAppInbox.objects.select_for_update().select_related("channel").filter(pk=inbox_id).first()
        if inbox is None or inbox.processed_at is not None:
            return False
        try:
            body = json.loads(inbox.body)
        except (ValueError, RecursionError):
            body = {}
        messages, statuses, templates = parse_webhook(body)
        channel = inbox.channel
        media = []
        for message in messages:
            media.extend(_customer_message(channel, message))
        for status in statuses:
            receipt_apply(channel=channel, external_id=status.wamid, status=RECEIPT_OF_STATUS[status.status],
                          reasons=status.reasons or None)
        if templates:
            from channels_app.services.templates import template_status_apply

            for update in templates:
                template_status_apply(channel=channel, update=update)
        inbox.processed_at = timezone.now()
        inbox.save(update_fields=["processed_at"])
        ids = [row.pk for row in media]
        transaction.on_commit(lambda: [publish(WHATSAPP_MEDIA_FETCH, pk) for pk in ids])
    return True


def _customer_message(channel: Channel, message: CloudMessage) -> list[WhatsAppMedia]:
    extra = dict(message.extra)
    if message.context_id:
        answered = (Message.objects.filter(channel=channel, external_id=message.context_id,
                                           direction=MessageDirection.OUTBOUND).values_list("pk", flat=True).first())
        extra["context"] = {"id": message.context_id, **({"messageId": answered} if answered else {})}
        if answered:
            extra["inReplyTo"] = answered
    text = message.text
    limit = settings.MAX_INBOUND_TEXT_BYTES
    if len(text.encode()) > limit:
        text = text.encode()[:limit].decode("utf-8", "ignore")
    stored, created = customer_message_receive(
        channel=channel, client_id=message.client_id, text=text, channel_message_id=message.wamid,
        nickname=message.nickname, origin_time=message.time, extra_payload=extra,
    )
    if not created or message.media is None:
        return []
    media = message.media
    row = WhatsAppMedia.objects.create(
        message=stored, media_id=media["id"], kind=message.kind, mime_type=media.get("mime_type", "")[:120],
        sha256=media.get("sha256", "")[:128], file_name=media.get("filename", "")[:255],
    )
    return [row]


def whatsapp_media_fetch(*, media_pk: int) -> str:
    """Fetch a customer's file from the Graph API (`GET /{media-id}` for its URL, then the URL, both with the
    channel's token and through the outbound address rules) into the default storage, streamed through a
    temporary file. Returns the row's state; a failed fetch is tried MEDIA_FETCH_ATTEMPTS times."""
    row = WhatsAppMedia.objects.select_related("message__channel").filter(pk=media_pk).first()
    if row is None or row.state != MediaState.PENDING:
        return row.state if row else "gone"
    channel = row.message.channel
    WhatsAppMedia.objects.filter(pk=row.pk).update(attempts=row.attempts + 1)
    row.attempts += 1
    try:
        answer = graph_request("GET", f"/{row.media_id}", token=channel.access_token)
        if not answer.ok or not isinstance(answer.body.get("url"), str):
            raise FetchFailed(f"media {row.media_id}: {answer.error_text()}")
        fetched = fetch(answer.body["url"], timeout=GRAPH_TIMEOUT_SECONDS * 3,
                        deadline=settings.MEDIA_FETCH_TOTAL_SECONDS, max_bytes=settings.WHATSAPP_MEDIA_MAX_BYTES,
                        headers={"Authorization": f"Bearer {channel.access_token}"})
        with fetched.file:
            extension = (answer.body.get("mime_type") or row.mime_type or "/bin").split("/")[-1].split(";")[0]
            name = row.file_name or f"{row.media_id}.{extension[:10]}"
            row.file.save(name, File(fetched.file), save=False)
        row.size, row.state, row.error = fetched.size, MediaState.STORED, ""
        row.mime_type = row.mime_type or str(answer.body.get("mime_type") or "")[:120]
        row.save(update_fields=["file", "size", "state", "error", "mime_type"])
    except FetchFailed as error:
        final = row.attempts >= MEDIA_FETCH_ATTEMPTS
        WhatsAppMedia.objects.filter(pk=row.pk).update(
            error=str(error)[:500], state=MediaState.FAILED if final else MediaState.PENDING)
        if not final:
            publish(WHATSAPP_MEDIA_FETCH, row.pk, countdown=MEDIA_RETRY_SECONDS)
        return MediaState.FAILED if final else MediaState.PENDING
    return MediaState.STORED
