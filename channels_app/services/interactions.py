"""Interactions (chat sessions) and their messages: creation, hand-over to the
channel's transport, receipts, customer messages and the end of a session."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from channels_app import options_catalog
from channels_app.models import (
    Channel,
    Contact,
    Delivery,
    EarlyReceipt,
    Interaction,
    InteractionState,
    InteractionSubtype,
    InteractionType,
    Message,
    MessageDirection,
    MessageStatus,
)
from channels_app.models.conversations import generate_interaction_id
from channels_app.services.deliveries import deliveries_create
from channels_app.services.options import option_value

# Interactions created with TerminateSessionFlag whose message never left are
# "occasional lost chats" (dms-invite-to-chat): ended after this long.
ABANDONED_AFTER = timedelta(minutes=15)
# A receipt for an id no message ever got is dropped after this.
EARLY_RECEIPTS_KEPT = timedelta(days=1)

# Receipt statuses of the Third-Party Messaging API and what they make of a message.
RECEIPT_STATUSES = {
    "Sent": MessageStatus.SENT,  # WhatsApp Cloud API statuses: sent, delivered, read, failed
    "Delivered": MessageStatus.DELIVERED,
    "Read": MessageStatus.READ,
    "Removed": MessageStatus.REMOVED,
    "Failed": MessageStatus.FAILED,
}
# Failure reason codes of the Third-Party Messaging API ("Delivery receipts").
RECEIPT_REASON_CODES = {
    305: "The message has expired.",
    310: "Rate limit reached.",
    350: "Message not allowed.",
    500: "General error.",
    510: "Unsupported message.",
    512: "Unknown message.",
    520: "Invalid message structure.",
    530: "Invalid destination.",
}


USER_DATA_TEXT_CHARACTERS = 256  # of a customer text, kept in the interaction's user data (_umsMsgPlainText)


def hub_driver_attributes(*, channel: Channel, client_id: str, business_id: str, nickname: str = "") -> dict:
    """The attributes the WhatsApp Hub Driver adds to an interaction (WhatsApp guide)."""
    attributes = {
        "_umsInboundIxnSubmittedBy": "DigitalMessagingServer",
        "_umsChannel": channel.channel_id,
        "_umsMediaType": channel.media_type,
        "_umsMediaTypeChat": f"{channel.media_type}session",
        "_umsFromAddr": client_id,
        "_umsToAddr": business_id,
    }
    if channel.media_type in ("whatsapp", "sms"):
        attributes["PhoneNumber"] = client_id
    if nickname:
        attributes["_msg_ProfileNickname"] = nickname
    return attributes


def interaction_new(
    *,
    channel: Channel,
    contact: Contact,
    client_id: str,
    queue: str,
    outbound: bool,
    user_data: dict,
    terminate_after_send: bool = False,
    now: datetime | None = None,
) -> Interaction:
    """A new chat session, not saved yet; its id is also attached as
    `_umsChatSessionId`, as Chat Server does."""
    interaction_id = generate_interaction_id()
    now = now or timezone.now()
    return Interaction(
        id=interaction_id,
        channel=channel,
        contact=contact,
        client_id=client_id,
        type=InteractionType.OUTBOUND if outbound else InteractionType.INBOUND,
        subtype=InteractionSubtype.OUTBOUND_NEW if outbound else InteractionSubtype.INBOUND_NEW,
        queue=queue,
        user_data={**user_data, "_umsChatSessionId": interaction_id},
        terminate_after_send=terminate_after_send,
        created_at=now,
        last_activity_at=now,
    )


def interaction_create(**kwargs) -> Interaction:
    """`interaction_new`, saved."""
    interaction = interaction_new(**kwargs)
    interaction.save(force_insert=True)
    return interaction


def message_new_outbound(*, interaction: Interaction, payload: dict, trace_id: str = "") -> Message:
    return Message(
        interaction=interaction,
        channel_id=interaction.channel_id,
        direction=MessageDirection.OUTBOUND,
        text=_text_of(payload),
        payload=payload,
        status=MessageStatus.QUEUED,
        trace_id=trace_id,
    )


def messages_queue_outbound(*, messages: list[Message], publish: bool = True) -> list[Delivery]:
    """Store outgoing messages (status queued) with their deliveries, returned
    in the same order: with `publish`, each is attempted through Celery once
    the transaction commits; without, the caller owns them and sends them
    (services.deliveries)."""
    Message.objects.bulk_create(messages)
    return deliveries_create(messages=messages, publish=publish, claim=not publish)


def message_queue_outbound(*, interaction: Interaction, payload: dict, trace_id: str = "") -> Message:
    """One outgoing message of an ongoing interaction (an agent's), published after commit."""
    message = message_new_outbound(interaction=interaction, payload=payload, trace_id=trace_id)
    messages_queue_outbound(messages=[message])
    if message.created_at - interaction.last_activity_at > timedelta(seconds=1):
        Interaction.objects.filter(pk=interaction.pk).update(last_activity_at=message.created_at)
    return message


def _text_of(payload: dict) -> str:
    return str(payload.get("text") or payload.get("subject") or "")


def interaction_end(*, interaction: Interaction, reason: str) -> Interaction:
    if interaction.state == InteractionState.ENDED:
        return interaction
    interaction.state = InteractionState.ENDED
    interaction.ended_at = timezone.now()
    interaction.end_reason = reason
    interaction.save(update_fields=["state", "ended_at", "end_reason"])
    return interaction


@dataclass(frozen=True)
class ReceiptOutcome:
    message: Message | None
    applied: bool


def _reasons_merged(kept: list, reasons: list) -> list:
    """The union of the reasons kept and those of a Failed receipt, sorted, so
    that the order in which Failed receipts arrive does not matter."""
    new = [
        {"code": r.get("code"), "message": r.get("message") or RECEIPT_REASON_CODES.get(r.get("code"), "")}
        for r in reasons
    ]
    union = {(r["code"], r["message"]): r for r in [*kept, *new]}
    return [union[key] for key in sorted(union)]


def receipt_apply(*, channel: Channel, external_id: str, status: str, reasons: list | None = None) -> ReceiptOutcome:
    """A delivery receipt (Delivered, Removed, Failed with reason codes) for the
    message whose webhook answer gave `external_id`. Receipts may arrive late,
    twice or out of order, and any order of the same receipts ends alike: the
    status is the furthest one reported (a final state, removed or failed after
    delivery, is not undone by an older receipt), `delivered_at` is set by the
    first Delivered receipt whatever came before it, the reasons are those of
    every Failed receipt, and a duplicate changes nothing."""
    new_status = RECEIPT_STATUSES[status]
    with transaction.atomic(savepoint=False):
        message = (
            Message.objects.select_for_update()
            .filter(channel=channel, external_id=external_id, direction=MessageDirection.OUTBOUND)
            .first()
        )
        if message is None:
            if external_id:
                # Its webhook answer may still be on the way: keep it for the message that will carry this id.
                EarlyReceipt.objects.update_or_create(
                    channel=channel, external_id=external_id, status=status, defaults={"reasons": reasons or []}
                )
            return ReceiptOutcome(None, False)
        before = (message.status, message.delivered_at, message.reasons)
        if _receipt_moves_forward(message.status, new_status):
            message.status = new_status
        if new_status in (MessageStatus.DELIVERED, MessageStatus.READ) and message.delivered_at is None:
            message.delivered_at = timezone.now()
        if new_status == MessageStatus.FAILED:
            message.reasons = _reasons_merged(message.reasons, reasons or [{"code": 500}])
        if (message.status, message.delivered_at, message.reasons) == before:
            return ReceiptOutcome(message, False)
        message.save(update_fields=["status", "delivered_at", "reasons", "updated_at"])
    return ReceiptOutcome(message, True)


def early_receipts_apply(*, channel_id: int, external_id: str) -> None:
    """Apply the receipts that arrived before the message's external id was known."""
    early = list(EarlyReceipt.objects.filter(channel_id=channel_id, external_id=external_id))
    if not early:
        return
    channel = Channel.objects.get(pk=channel_id)
    for receipt in sorted(early, key=lambda r: _STATUS_RANK.get(RECEIPT_STATUSES[r.status], 0)):
        receipt_apply(channel=channel, external_id=external_id, status=receipt.status, reasons=receipt.reasons)
    EarlyReceipt.objects.filter(pk__in=[r.pk for r in early]).delete()


# Order of outbound states: a receipt only moves a message forward.
_STATUS_RANK = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENT: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.READ: 2.5,  # read comes after delivered
    MessageStatus.FAILED: 3,
    MessageStatus.REMOVED: 4,
}


def _receipt_moves_forward(current: str, new: str) -> bool:
    return _STATUS_RANK.get(new, 0) > _STATUS_RANK.get(current, 0)


@transaction.atomic(savepoint=False)  # all or nothing with the request that carries it: no savepoint needed
def customer_message_receive(
    *,
    channel: Channel,
    client_id: str,
    text: str,
    channel_message_id: str = "",
    nickname: str = "",
    origin_time: datetime | None = None,
    trace_id: str = "",
    extra_payload: dict | None = None,
    look_for_duplicate: bool = True,
) -> tuple[Message, bool]:
    """A customer's message: it opens or continues the customer's interaction on
    the channel and records the hub driver attributes. Returns (message,
    created); a `channel_message_id` already received returns the stored one.
    Without `look_for_duplicate` a duplicate is left to the unique constraint
    (IntegrityError), for callers that then try again with it."""
    from channels_app.services.channels import channel_inbound_route
    from channels_app.services.contacts import contact_identify

    if channel_message_id and look_for_duplicate:
        existing = Message.objects.filter(channel=channel, channel_message_id=channel_message_id).first()
        if existing is not None:
            return existing, False
    now = timezone.now()
    properties = {"_msg_ProfileNickname": nickname} if nickname else {}
    contact = contact_identify(channel=channel, client_id=client_id, properties=properties)
    # By contact, not by the raw client id: "+15556667777" and "15556667777" are one customer.
    interaction = (
        Interaction.objects.select_for_update()
        .filter(channel=channel, contact=contact)
        .exclude(state=InteractionState.ENDED)
        .order_by("-created_at")
        .first()
    )
    if interaction is None:
        interaction = interaction_create(
            channel=channel,
            contact=contact,
            client_id=client_id,
            queue=channel_inbound_route(channel=channel),
            outbound=False,
            user_data=hub_driver_attributes(
                channel=channel, client_id=client_id, business_id=channel.business_id, nickname=nickname
            ),
        )
    sent_at = origin_time or now
    interaction.user_data.update(
        {
            "_umsMsgType": "text",
            "_umsMsgId": channel_message_id,
            "_umsMsgOriginTime": sent_at.isoformat(),
            # The spec's "Text of message", for routing; the message holds the whole text, which is not
            # copied here (a customer text may be up to MAX_INBOUND_TEXT_BYTES).
            "_umsMsgPlainText": text[:USER_DATA_TEXT_CHARACTERS],
        }
    )
    interaction.last_customer_message_at = max(filter(None, [interaction.last_customer_message_at, sent_at]))
    interaction.last_activity_at = now
    if interaction.state == InteractionState.QUEUED and interaction.type == InteractionType.OUTBOUND:
        interaction.state = InteractionState.ACTIVE
    interaction.save(update_fields=["user_data", "last_customer_message_at", "last_activity_at", "state"])
    message = Message.objects.create(
        interaction=interaction,
        channel=channel,
        direction=MessageDirection.INBOUND,
        text=text,
        payload={"type": "Text", "text": text, **(extra_payload or {})},
        status=MessageStatus.RECEIVED,
        channel_message_id=channel_message_id,
        trace_id=trace_id,
        origin_time=origin_time,
    )
    from channels_app.services.opt_out import opt_out_keywords_apply

    opt_out_keywords_apply(message=message, interaction=interaction)  # STOP / START (API.md "Opt-out")
    return message, True


def sessions_expire(*, now: datetime | None = None) -> int:
    """End sessions idle longer than `session-shutdown-timeout` (per channel),
    and sessions created with TerminateSessionFlag whose message never left."""
    now = now or timezone.now()
    ended = 0
    for channel in Channel.objects.all():
        timeout = option_value(section=options_catalog.DMS, name="session-shutdown-timeout", channel=channel)
        idle = Interaction.objects.filter(  # state first: the interaction_idle index
            state__in=[InteractionState.QUEUED, InteractionState.ACTIVE],
            last_activity_at__lt=now - timedelta(seconds=timeout),
            channel=channel,
        )
        ended += idle.update(state=InteractionState.ENDED, ended_at=now, end_reason="session-shutdown-timeout")
    abandoned = Interaction.objects.filter(terminate_after_send=True, created_at__lt=now - ABANDONED_AFTER).exclude(
        state=InteractionState.ENDED
    )
    ended += abandoned.update(state=InteractionState.ENDED, ended_at=now, end_reason="abandoned (TerminateSessionFlag)")
    EarlyReceipt.objects.filter(received_at__lt=now - EARLY_RECEIPTS_KEPT).delete()
    return ended
