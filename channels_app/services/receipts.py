"""Delivery receipts (Third-Party Messaging API, "Delivery receipts"): what a
receipt makes of the message it names, in any order, and the receipts that
arrive before the message's id is known."""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from channels_app.models import Channel, EarlyReceipt, Message, MessageDirection, MessageStatus
from channels_app.services.agent_events import receipt_event

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
        receipt_event(message=message)  # to the agent who holds the interaction, and its conference
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
