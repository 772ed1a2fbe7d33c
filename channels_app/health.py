"""`GET /healthz`: is the database reachable, is the broker reachable."""

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from project.celery import app as celery_app


def database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # any driver error means "down"
        return f"error: {type(error).__name__}"
    return "ok"


def broker_status() -> str:
    try:
        with celery_app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=2)
    except Exception as error:  # any transport error means "down"
        return f"error: {type(error).__name__}"
    return "ok"


def channels_needing_attention() -> list[dict]:
    """Channels that cannot send until an operator acts (e.g. Meta refused the access token): detail only,
    the status stays about the database and the broker."""
    from channels_app.models import Channel

    try:
        return [{"channel": channel_id, "reason": reason} for channel_id, reason in
                Channel.objects.exclude(needs_attention="").values_list("channel_id", "needs_attention")[:100]]
    except Exception:  # a database that answers SELECT 1 but not this: still only detail
        return []


@never_cache
@require_GET
def healthz(request):
    body = {"database": database_status(), "broker": broker_status()}
    healthy = all(value == "ok" for value in body.values())
    body = {"status": "ok" if healthy else "error", **body,
            "channels_needing_attention": channels_needing_attention() if body["database"] == "ok" else []}
    return JsonResponse(body, status=200 if healthy else 503)
