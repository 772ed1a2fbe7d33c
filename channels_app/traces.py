"""The trace id of a request (`X-B3-TraceId`) and the ids a log line carries (project/logs.py).

A request's trace id is the one its client sent (16 to 32 hex digits, or another short token), or one made
here when it sent none or a malformed one; the response carries it back. It is stored with the messages the
request creates (`Message.trace_id`, the column that already existed), so the dispatcher and the workers
that send them later log it, and the webhook of each carries it in its `X-B3-TraceId` header
(transports/webhook.py): nothing more is written on the sending path. A task published while a trace id is
bound carries it in its headers, and the worker binds it while the task runs (project/celery.py).

`traffic` is the logger of one line per message received, queued and attempted: on with LOG_TRAFFIC=true,
off by default (a busy server sends thousands a second); an attempt that did not get through is always
logged, as a warning.
"""

import logging
import re
import uuid

from structlog.contextvars import (
    bind_contextvars,
    bound_contextvars,
    clear_contextvars,
    get_contextvars,
    unbind_contextvars,
)

TRACE_HEADER = "X-B3-TraceId"
TRACE_META = "HTTP_X_B3_TRACEID"
# B3 ids are 16 or 32 lowercase hex digits; other tracers send other tokens (the spec's sample is a UUID): any
# token of visible ASCII characters is kept, cut to TRACE_ID_LENGTH as the messages have always stored it;
# anything else (a space, a character outside ASCII) is replaced by one made here.
TRACE_ID_LENGTH = 200
ACCEPTED_TRACE_ID = re.compile(rf"[\x21-\x7e]{{1,{TRACE_ID_LENGTH}}}")

traffic = logging.getLogger("channels_app.traffic")

__all__ = ["bind_contextvars", "bound_contextvars", "unbind_contextvars", "current_trace_id", "message_fields",
           "new_trace_id", "traffic", "TraceMiddleware"]


def new_trace_id() -> str:
    return uuid.uuid4().hex


def current_trace_id() -> str:
    return get_contextvars().get("trace_id", "")


def message_fields(message, channel=None) -> dict:
    """The ids of a message for a log line: its own, its interaction's, and its channel's and tenant's when the
    channel is at hand (nothing is read for a log line)."""
    fields = {"message_id": message.pk, "interaction_id": message.interaction_id, "trace_id": message.trace_id or None}
    if channel is None and type(message).channel.is_cached(message):
        channel = message.channel
    elif channel is None and type(message).interaction.is_cached(message):
        interaction = message.interaction
        channel = interaction.channel if type(interaction).channel.is_cached(interaction) else None
    if channel is not None:
        fields.update(channel_id=channel.channel_id, tenant_id=channel.tenant_id)
    return fields


class TraceMiddleware:
    """First of the middleware: the request's trace id is bound for every log line written while it is
    served, written back into the request's headers when it was made here (so that the views, which read
    `X-B3-TraceId`, store it), and answered in the response's header."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        trace_id = request.META.get(TRACE_META, "")[:TRACE_ID_LENGTH]
        if not ACCEPTED_TRACE_ID.fullmatch(trace_id):
            trace_id = new_trace_id()
            request.META[TRACE_META] = trace_id
        clear_contextvars()  # what a view bound (its tenant, its channel) stays with its request
        bind_contextvars(trace_id=trace_id)
        try:
            response = self.get_response(request)
        finally:
            clear_contextvars()
        response[TRACE_HEADER] = trace_id
        return response
