"""The Celery application; workers start it with `celery -A project worker`."""

import logging
import logging.config
import os

from celery import Celery
from celery.signals import beat_init, before_task_publish, setup_logging, task_postrun, task_prerun
from structlog.contextvars import bind_contextvars, get_contextvars, reset_contextvars

from project.logs import JSON, log_format

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# --- the trace id from the publisher to the task (channels_app/traces.py) ---------------------------------------
TRACE_HEADER = "x_b3_traceid"


@before_task_publish.connect
def _carry_trace_id(headers=None, **_):
    trace_id = get_contextvars().get("trace_id")
    if trace_id and headers is not None:
        headers[TRACE_HEADER] = trace_id


@task_prerun.connect
def _bind_trace_id(task=None, **_):
    trace_id = getattr(task.request, TRACE_HEADER, None) if task is not None else None
    if trace_id:
        task.request.trace_tokens = bind_contextvars(trace_id=trace_id)


@task_postrun.connect
def _unbind_trace_id(task=None, **_):
    """Back to what was bound before the task (nothing in a worker; the request's own id for a task run in it)."""
    tokens = getattr(task.request, "trace_tokens", None) if task is not None else None
    if tokens:
        reset_contextvars(**tokens)


# --- one beat schedules, whatever the number of machines (channels_app/beat_lock.py) --------------------------------
@beat_init.connect
def _one_beat(**_):
    from channels_app.beat_lock import beat_lock_acquire

    beat_lock_acquire()


# --- logs: with LOG_FORMAT=json Celery's lines go through the settings' LOGGING (project/logs.py) -----------------
if log_format() == JSON:

    @setup_logging.connect
    def _json_logging(**_):
        from django.conf import settings

        logging.config.dictConfig(settings.LOGGING)

    # The worker says its warm and cold shutdown on the terminal itself (celery.apps.worker.safe_say), not through
    # logging: in JSON those lines come as log lines too.
    from celery.apps import worker as _worker_app

    def _say_in_the_log(message, file=None):
        logging.getLogger("celery.apps.worker").warning(str(message).strip())

    _worker_app.safe_say = _say_in_the_log
