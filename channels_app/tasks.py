"""Celery tasks: thin interfaces that take ids and call services."""

from celery import shared_task

from channels_app.publishing import (
    CAMPAIGN_AUDIENCE_LOAD,
    CAMPAIGN_BATCH,
    DELIVER,
    DELIVER_BATCH,
    FETCH_ATTACHMENT,
    SIMULATOR_EMIT,
    STORAGE_FILES_REMOVE,
    WHATSAPP_INBOX_PROCESS,
    WHATSAPP_MEDIA_FETCH,
    WHATSAPP_TEMPLATE_SUBMIT,
    WHATSAPP_TEMPLATES_SYNC,
    publish,
)
from channels_app.services import campaigns, deliveries, interactions, lifecycle, media, rollups, simulator


@shared_task(name=DELIVER, acks_late=True, reject_on_worker_lost=True)
def deliver(delivery_id: int) -> str | None:
    result = deliveries.delivery_attempt(delivery_id=delivery_id)
    return result.outcome if result else None


@shared_task(name=DELIVER_BATCH, acks_late=True, reject_on_worker_lost=True)
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


@shared_task(name=SIMULATOR_EMIT)
def simulator_emit(*message_ids: str) -> None:
    """The simulated third party's side of the messages sent together (one id: a task published before batches)."""
    simulator.simulator_emit_all(message_ids=list(message_ids))


@shared_task(name=CAMPAIGN_BATCH, acks_late=True, reject_on_worker_lost=True)
def campaign_batch(campaign_id: int) -> int:
    """One batch of a running campaign, then the next one (a chain per worker share)."""
    handled = campaigns.campaign_run_batch(campaign_id=campaign_id)
    if handled:
        publish(CAMPAIGN_BATCH, campaign_id)
    return handled


@shared_task(name=CAMPAIGN_AUDIENCE_LOAD, acks_late=True, reject_on_worker_lost=True)
def campaign_audience_load(campaign_id: int, path: str) -> int:
    """Read a large audience CSV into the campaign, in chunks (resumes where it stopped when run again)."""
    return campaigns.campaign_audience_load(campaign_id=campaign_id, path=path)


@shared_task(name="channels_app.campaigns_tick")
def campaigns_tick() -> int:
    return campaigns.campaigns_tick()


@shared_task(name="channels_app.campaign_reports_fold")
def campaign_reports_fold() -> int:
    """The campaign reports' figures brought up to date (services/campaign_reports.py)."""
    from channels_app.services.campaign_reports import campaign_reports_fold as fold

    return fold().changes


@shared_task(name=FETCH_ATTACHMENT, acks_late=True, reject_on_worker_lost=True)
def fetch_attachment(attachment_id: int) -> None:
    """One attempt at fetching a customer's attachment; the next one, with backoff, when it may pass."""
    retry_in = media.message_attachment_fetch(attachment_id=attachment_id)
    if retry_in is not None:
        publish(FETCH_ATTACHMENT, attachment_id, countdown=retry_in)


# --- Data lifecycle (retention) ---------------------------------------------------------------------------------


@shared_task(name="channels_app.purge")
def purge() -> int:
    """Once a day: remove what each tenant keeps no longer (its retention_days)."""
    return lifecycle.purge_tenants_due()


@shared_task(name=STORAGE_FILES_REMOVE, acks_late=True, reject_on_worker_lost=True)
def storage_files_remove(names: list[str], attempt: int) -> int:
    """Another attempt at removing files whose rows are gone (the storage failed after the commit)."""
    return len(lifecycle.stored_files_remove_later(names=names, attempt=attempt))


# --- WhatsApp Cloud API ---------------------------------------------------------------------------------------


@shared_task(name=WHATSAPP_INBOX_PROCESS, acks_late=True, reject_on_worker_lost=True)
def whatsapp_inbox_process(inbox_id: int) -> bool:
    from channels_app.services.whatsapp_cloud import whatsapp_inbox_process as process

    return process(inbox_id=inbox_id)


@shared_task(name="channels_app.whatsapp_inbox_pending")
def whatsapp_inbox_pending() -> int:
    from channels_app.services.whatsapp_cloud import whatsapp_inbox_pending as pending

    return len(pending())


@shared_task(name=WHATSAPP_MEDIA_FETCH, acks_late=True, reject_on_worker_lost=True)
def whatsapp_media_fetch(media_pk: int) -> str:
    from channels_app.services.whatsapp_cloud import whatsapp_media_fetch as fetch

    return fetch(media_pk=media_pk)


@shared_task(name=WHATSAPP_TEMPLATE_SUBMIT, acks_late=True, reject_on_worker_lost=True)
def whatsapp_template_submit(template_pk: int) -> str:
    from channels_app.services.templates import template_send_to_meta

    return template_send_to_meta(template_pk=template_pk)


@shared_task(name=WHATSAPP_TEMPLATES_SYNC)
def whatsapp_templates_sync(channel_pk: int) -> int:
    from channels_app.services.templates import templates_sync

    return templates_sync(channel_pk=channel_pk)


@shared_task(name="channels_app.reports_fold")
def reports_fold() -> int | None:
    """What changed since the last fold, into the reports' rollups (None: another fold is running)."""
    return rollups.reports_fold()
