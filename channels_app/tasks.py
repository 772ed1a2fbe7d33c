"""Celery tasks: thin interfaces that take ids and call services."""

from celery import shared_task

from channels_app import options_catalog
from channels_app.models import Message
from channels_app.services import campaigns, deliveries, interactions
from channels_app.services.options import option_value


@shared_task(name="channels_app.deliver", acks_late=True, reject_on_worker_lost=True)
def deliver(delivery_id: int) -> str | None:
    result = deliveries.delivery_attempt(delivery_id=delivery_id)
    return result.outcome if result else None


@shared_task(name="channels_app.deliver_batch", acks_late=True, reject_on_worker_lost=True)
def deliver_batch(delivery_ids: list[int]) -> int:
    return len(deliveries.deliveries_attempt(delivery_ids=delivery_ids))


RELAY_CHUNK = 50  # deliveries per task the relay publishes


@shared_task(name="channels_app.relay_due_deliveries")
def relay_due_deliveries() -> int:
    """Publish the deliveries that are due and owned by nobody: retries past
    the countdown limit, publishes lost between commit and broker, and the
    work of workers that died (a campaign batch's, say), in chunks."""
    ids = deliveries.deliveries_due()
    for start in range(0, len(ids), RELAY_CHUNK):
        deliveries.deliveries_enqueue(ids[start : start + RELAY_CHUNK])
    return len(ids)


@shared_task(name="channels_app.expire_sessions")
def expire_sessions() -> int:
    return interactions.sessions_expire()


@shared_task(name="channels_app.simulator_emit")
def simulator_emit(message_id: str) -> None:
    """The hub simulator's side of a sent message: a `Delivered` receipt and,
    when configured, an automatic customer reply, through the same services a
    real third party's requests reach."""
    message = Message.objects.select_related("channel", "interaction").filter(pk=message_id).first()
    if message is None or not message.external_id:
        return
    channel = message.channel
    if option_value(section=options_catalog.CHANNEL, name="simulator-send-receipts", channel=channel):
        interactions.receipt_apply(channel=channel, external_id=message.external_id, status="Delivered")
    reply = option_value(section=options_catalog.CHANNEL, name="simulator-auto-reply", channel=channel)
    if reply and message.interaction.state != "ended":
        interactions.customer_message_receive(
            channel=channel,
            client_id=message.interaction.client_id,
            text=reply,
            channel_message_id=f"sim-reply-{message.pk}",
            nickname="Simulated customer",
        )


@shared_task(name="channels_app.campaign_batch", acks_late=True, reject_on_worker_lost=True)
def campaign_batch(campaign_id: int) -> int:
    """One batch of a running campaign, then the next one (a chain per worker share)."""
    handled = campaigns.campaign_run_batch(campaign_id=campaign_id)
    if handled:
        campaign_batch.delay(campaign_id)
    return handled


@shared_task(name="channels_app.campaigns_tick")
def campaigns_tick() -> int:
    return campaigns.campaigns_tick()


# --- WhatsApp Cloud API ---------------------------------------------------------------------------------------


@shared_task(name="channels_app.whatsapp_inbox_process", acks_late=True, reject_on_worker_lost=True)
def whatsapp_inbox_process(inbox_id: int) -> bool:
    from channels_app.services.whatsapp_cloud import whatsapp_inbox_process as process

    return process(inbox_id=inbox_id)


@shared_task(name="channels_app.whatsapp_inbox_pending")
def whatsapp_inbox_pending() -> int:
    from channels_app.services.whatsapp_cloud import whatsapp_inbox_pending as pending

    return len(pending())


@shared_task(name="channels_app.whatsapp_media_fetch", acks_late=True, reject_on_worker_lost=True)
def whatsapp_media_fetch(media_pk: int) -> str:
    from channels_app.services.whatsapp_cloud import whatsapp_media_fetch as fetch

    return fetch(media_pk=media_pk)


@shared_task(name="channels_app.whatsapp_template_submit", acks_late=True, reject_on_worker_lost=True)
def whatsapp_template_submit(template_pk: int) -> str:
    from channels_app.services.templates import template_send_to_meta

    return template_send_to_meta(template_pk=template_pk)


@shared_task(name="channels_app.whatsapp_templates_sync")
def whatsapp_templates_sync(channel_pk: int) -> int:
    from channels_app.services.templates import templates_sync

    return templates_sync(channel_pk=channel_pk)
