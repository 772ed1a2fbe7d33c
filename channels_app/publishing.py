"""The one seam through which services hand work to Celery.

Work is published by task name, so no service imports the tasks module (the
tasks are an interface that calls the services). The database is the truth
and the broker only a wake-up call: when the broker can't take a message,
the failure is logged and the work is left where it is, due in the database,
for the relay (deliveries) or the tick (campaigns) to publish again
(docs/RELIABILITY.md). Nothing else needs to handle a broker that is down.
"""

import logging
from datetime import datetime

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)

# Stable task names (the tasks in channels_app/tasks.py are registered under them).
DELIVER = "channels_app.deliver"
DELIVER_BATCH = "channels_app.deliver_batch"
SIMULATOR_EMIT = "channels_app.simulator_emit"
CAMPAIGN_BATCH = "channels_app.campaign_batch"
CAMPAIGN_AUDIENCE_LOAD = "channels_app.campaign_audience_load"
WHATSAPP_INBOX_PROCESS = "channels_app.whatsapp_inbox_process"
WHATSAPP_MEDIA_FETCH = "channels_app.whatsapp_media_fetch"
WHATSAPP_TEMPLATE_SUBMIT = "channels_app.whatsapp_template_submit"
WHATSAPP_TEMPLATES_SYNC = "channels_app.whatsapp_templates_sync"
FETCH_ATTACHMENT = "channels_app.fetch_attachment"
STORAGE_FILES_REMOVE = "channels_app.storage_files_remove"


def publish(task_name: str, *args, countdown: float | None = None, eta: datetime | None = None) -> bool:
    """Send a task now (to run at once, after `countdown` seconds or at `eta`); False (logged) when the
    broker did not take it: whatever finds the work due in the database publishes it again."""
    try:
        current_app.send_task(task_name, args=args, countdown=countdown, eta=eta)
    except Exception:  # any transport error: the broker is down or unreachable
        logger.exception("Could not publish %s%r; it stays due and is published again later.", task_name, args)
        return False
    return True


def publish_on_commit(task_name: str, *args, countdown: float | None = None) -> None:
    """Send a task once the current transaction commits (never for work that was rolled back)."""
    transaction.on_commit(lambda: publish(task_name, *args, countdown=countdown))
