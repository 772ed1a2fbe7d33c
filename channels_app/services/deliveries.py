"""Delivery of outgoing messages through the channel's transport, with the
retry schedule in the database (a transactional outbox).

A delivery row is written with its message; a Celery task attempts it after
commit. A worker owns a delivery only while its lease runs, so a worker that
dies mid-send loses nothing: the lease runs out and the relay hands the
delivery to another worker. Once an attempt has succeeded the delivery is
`delivered` and is never attempted again."""

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from channels_app.choices import Transport as TransportName
from channels_app.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    InteractionState,
    Message,
    MessageStatus,
)
from channels_app.retries import retry_decision
from channels_app.transports import TRANSPORTS, OutgoingMessage, SendOutcome, SendResult

logger = logging.getLogger(__name__)

# Retries due within this are scheduled with a Celery countdown (far below the
# Redis visibility timeout); later ones, and lost tasks, are found by the relay.
COUNTDOWN_LIMIT = timedelta(minutes=5)


def _lease() -> timedelta:
    """Longer than the webhook's 10-second answer time (settings.DELIVERY_LEASE_SECONDS)."""
    return timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)


def _relay_grace() -> timedelta:
    """The relay leaves a delivery to the task published for it (at commit, or
    with a retry's countdown) for this long before publishing it again."""
    return timedelta(seconds=settings.DELIVERY_RELAY_GRACE_SECONDS)


def delivery_create(*, message: Message) -> Delivery:
    """Called in the transaction that stores the message; the attempt is published after commit."""
    now = timezone.now()
    delivery = Delivery.objects.create(
        message=message, channel_id=message.channel_id, next_attempt_at=now, published_at=now
    )
    transaction.on_commit(lambda: delivery_enqueue(delivery.pk))
    return delivery


def delivery_enqueue(delivery_id: int, *, countdown: float | None = None) -> None:
    from channels_app.tasks import deliver

    try:
        deliver.apply_async((delivery_id,), countdown=countdown)
    except Exception:  # the broker is down: the delivery stays due and the relay publishes it again
        logger.exception("Could not publish delivery %s; the relay will.", delivery_id)


def _claim(delivery_id: int, now: datetime) -> str | None:
    token = uuid.uuid4().hex
    claimed = (
        Delivery.objects.filter(pk=delivery_id, state=DeliveryState.PENDING, next_attempt_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + _lease(), lease_token=token, attempts=F("attempts") + 1)
    )
    return token if claimed == 1 else None


def _outgoing(message: Message) -> OutgoingMessage:
    channel, interaction = message.channel, message.interaction
    return OutgoingMessage(
        message_id=message.pk,
        interaction_id=interaction.pk,
        channel_id=channel.channel_id,
        media_type=channel.media_type,
        business_id=interaction.user_data.get("_umsToAddr") or channel.business_id,
        client_id=interaction.client_id,
        payload=message.payload,
        webhook_url=channel.webhook_url,
        secret=channel.secret,
        trace_id=message.trace_id,
    )


def delivery_attempt(*, delivery_id: int) -> SendResult | None:
    """One attempt of a due delivery; None when it is not due or another worker owns it."""
    started = timezone.now()
    token = _claim(delivery_id, started)
    if token is None:
        return None
    delivery = Delivery.objects.select_related("channel", "message__interaction", "message__channel").get(
        pk=delivery_id
    )
    channel, message = delivery.channel, delivery.message
    result = TRANSPORTS[channel.transport].send(_outgoing(message))
    retry_countdown = None
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().get(pk=delivery_id)
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            started_at=started,
            outcome=result.outcome,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error[:500],
            response_excerpt=result.response_excerpt,
        )
        if delivery.lease_token != token or delivery.state != DeliveryState.PENDING:
            return result  # the lease ran out and another worker took over: its outcome counts
        now = timezone.now()
        delivery.first_attempt_at = delivery.first_attempt_at or started
        decision = retry_decision(
            outcome=result.outcome,
            attempts_made=delivery.attempts,
            first_attempt_at=delivery.first_attempt_at,
            now=now,
            retry_attempts=channel.retry_attempts,
            retry_timeout_seconds=channel.retry_timeout_seconds,
        )
        delivery.lease_until, delivery.lease_token = None, ""
        delivery.last_error = result.error[:500]
        if decision.final_state == DeliveryState.DELIVERED:
            delivery.state, delivery.delivered_at = DeliveryState.DELIVERED, now
            _message_sent(message, result.external_id, now)
        elif decision.final_state == DeliveryState.FAILED:
            delivery.state = DeliveryState.FAILED
            _message_failed(message, result, delivery.attempts)
        else:
            delivery.next_attempt_at = decision.next_attempt_at
            wait = decision.next_attempt_at - now
            if wait <= COUNTDOWN_LIMIT:
                retry_countdown = max(wait.total_seconds(), 0)
                delivery.published_at = decision.next_attempt_at
        delivery.save()
    if retry_countdown is not None:
        delivery_enqueue(delivery_id, countdown=retry_countdown)
    if result.outcome == SendOutcome.ACCEPTED and channel.transport == TransportName.SIMULATOR:
        from channels_app.tasks import simulator_emit

        simulator_emit.apply_async((message.pk,), countdown=1)
    return result


def _message_sent(message: Message, external_id: str, now: datetime) -> None:
    from channels_app.services.interactions import early_receipts_apply

    Message.objects.filter(pk=message.pk, status=MessageStatus.QUEUED).update(
        status=MessageStatus.SENT, external_id=external_id, sent_at=now, updated_at=now
    )
    if external_id:
        early_receipts_apply(channel=message.channel, external_id=external_id)
    _end_if_terminating(message)


def _end_if_terminating(message: Message) -> None:
    """TerminateSessionFlag: the session ends once its message is handed over, or has failed for good."""
    from channels_app.services.interactions import interaction_end

    interaction = message.interaction
    if interaction.terminate_after_send and interaction.state != InteractionState.ENDED:
        interaction_end(interaction=interaction, reason="TerminateSessionFlag")


def _message_failed(message: Message, result: SendResult, attempts: int) -> None:
    detail = result.error or "the channel refused the message"
    reason = {"code": 500, "message": f"Webhook failed after {attempts} attempt(s): {detail}"}
    Message.objects.filter(pk=message.pk).update(
        status=MessageStatus.FAILED, reasons=[reason], updated_at=timezone.now()
    )
    _end_if_terminating(message)


def deliveries_due(*, limit: int = 500) -> list[int]:
    """Ids of deliveries due, owned by nobody and not published lately, locked
    with SKIP LOCKED so that relays running side by side pick different rows;
    they count as published now, so a backlog in the broker is not multiplied."""
    now = timezone.now()
    quiet_since = now - _relay_grace()
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .filter(Q(published_at__isnull=True) | Q(published_at__lt=quiet_since))
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        Delivery.objects.filter(pk__in=ids).update(published_at=now)
    return ids


@transaction.atomic
def delivery_redeliver(*, delivery: Delivery) -> bool:
    """Start a failed delivery over (admin "redeliver"); False when it is not failed."""
    now = timezone.now()
    updated = Delivery.objects.filter(pk=delivery.pk, state=DeliveryState.FAILED).update(
        state=DeliveryState.PENDING, next_attempt_at=now, first_attempt_at=None, attempts=0,
        lease_until=None, lease_token="", last_error="", published_at=now,
    )
    if not updated:
        return False
    Message.objects.filter(pk=delivery.message_id).update(status=MessageStatus.QUEUED, reasons=[])
    transaction.on_commit(lambda: delivery_enqueue(delivery.pk))
    return True
