"""`GET /healthz`: is the database reachable, is the broker reachable.

`GET /healthz?detail=1` adds `channels_down`: how many channels have their
circuit open (services.deliveries), and, for a signed-in admin session,
`channels_down_ids` (its tenants' channel ids). A channel down is not the
server down: it never makes the answer 503."""

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


@never_cache
@require_GET
def healthz(request):
    body = {"database": database_status(), "broker": broker_status()}
    healthy = all(value == "ok" for value in body.values())
    body = {"status": "ok" if healthy else "error", **body}
    if request.GET.get("detail") in ("1", "true") and body["database"] == "ok":
        body.update(channels_down_detail(request.user))
    return JsonResponse(body, status=200 if healthy else 503)


def channels_down_detail(user) -> dict:
    from channels_app.models import Channel
    from channels_app.selectors import restrict

    down = Channel.objects.filter(down_since__isnull=False)
    detail = {"channels_down": down.count()}
    if user is not None and user.is_authenticated and user.is_staff:
        detail["channels_down_ids"] = list(restrict(down, user).order_by("channel_id")
                                           .values_list("channel_id", flat=True))
    return detail
