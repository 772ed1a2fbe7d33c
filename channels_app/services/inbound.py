"""Requests of a third-party messaging system (Third-Party Messaging API):
customer messages and receipts, all of one request in one transaction."""

import logging

from django.db import IntegrityError, transaction

from channels_app import group_commit
from channels_app.models import Channel, Message, MessageDirection
from channels_app.parsing import InboundReceipt, InboundText
from channels_app.services.interactions import customer_message_receive
from channels_app.services.media import InboundAttachment, message_attachments_create
from channels_app.services.receipts import receipt_apply
from channels_app.traces import message_fields, traffic


def inbound_messages_accept(
    *, channel: Channel, messages: list[InboundText | InboundReceipt], trace_id: str = ""
) -> list[str]:
    """Store a request's messages; our id for each, in order. A customer
    message already received (same channel.messageId) keeps its id and stores
    nothing new; a receipt answers with the id of the message it names, or ""
    when no message has that id (it is ignored). The transaction may be shared
    with the process's other requests (channels_app/group_commit.py); the ids
    are answered once it is committed."""
    try:
        # Duplicates are rare: the unique constraint finds them, without a query for each message.
        return group_commit.commit(
            lambda: _accept(channel, messages, trace_id, look_for_duplicates=False),
            order=f"{channel.pk}:{min((m.client_id for m in messages if isinstance(m, InboundText)), default='')}",
        )
    except IntegrityError:
        # A channel.messageId already stored (or arriving twice at once): nothing was written; now it is found.
        with transaction.atomic():
            return _accept(channel, messages, trace_id, look_for_duplicates=True)


def _accept(
    channel: Channel, messages: list[InboundText | InboundReceipt], trace_id: str, look_for_duplicates: bool
) -> list[str]:
    _lock_receipt_messages(channel, messages)
    ids = []
    for message in messages:
        if isinstance(message, InboundReceipt):
            outcome = receipt_apply(
                channel=channel, external_id=message.external_id, status=message.status, reasons=message.reasons
            )
            ids.append(outcome.message.pk if outcome.message else "")
            continue
        stored, created = customer_message_receive(
            channel=channel,
            client_id=message.client_id,
            text=message.text,
            channel_message_id=message.channel_message_id,
            nickname=message.nickname,
            origin_time=message.time,
            trace_id=trace_id,
            extra_payload=message.extra,
            look_for_duplicate=look_for_duplicates,
        )
        if message.attachments and created:  # fetched in the background once committed
            message_attachments_create(
                message=stored, attachments=[InboundAttachment(*item) for item in message.attachments]
            )
        if created and traffic.isEnabledFor(logging.INFO):
            traffic.info("Customer message %s received on channel %s.", stored.pk, channel.channel_id,
                         extra={**message_fields(stored, channel), "client_id": message.client_id,
                                "text": message.text})
        ids.append(stored.pk)
    return ids


def _lock_receipt_messages(channel: Channel, messages: list[InboundText | InboundReceipt]) -> None:
    """Lock the messages a request's receipts name, all at once and in one
    order: two requests naming the same messages in other orders then wait for
    each other instead of deadlocking (a 500 for one of them)."""
    external_ids = sorted({m.external_id for m in messages if isinstance(m, InboundReceipt)})
    if len(external_ids) > 1:
        list(
            Message.objects.select_for_update()
            .filter(channel=channel, external_id__in=external_ids, direction=MessageDirection.OUTBOUND)
            .order_by("external_id", "pk")
            .values_list("pk", flat=True)
        )
