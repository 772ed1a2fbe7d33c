"""The operator's two doors: `GET /healthz` (is the database reachable, is
the broker reachable) and `GET /metrics` (what an operator alerts on, in
Prometheus' text format; the counters live in channels_app/metrics.py, what
the database knows is read here when scraped, each with an indexed query).

`GET /healthz?detail=1` adds `channels_down`: how many channels have their
circuit open (services.deliveries), and, for a signed-in admin session,
`channels_down_ids` (its tenants' channel ids), and the same for channels
that need an operator (`channels_needing_attention`, e.g. a WhatsApp Cloud
API token Meta refused). A channel down is not the server down: it never
makes the answer 503."""

import ipaddress
import logging
import os
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, HttpResponseForbidden, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu.exceptions import ChannelError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from channels_app.metrics import DELIVERY_ATTEMPTS, MESSAGES_IN, MESSAGES_OUT, WEBHOOK_LATENCY
from channels_app.models import Campaign, Channel, Delivery, DeliveryState
from channels_app.selectors import restrict
from channels_app.services.campaigns import campaign_counts
from project.celery import app as celery_app

logger = logging.getLogger(__name__)
# A delivery due for longer than this is overdue: the workers are not keeping up (or are down).
OVERDUE_AFTER = timedelta(seconds=60)


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


def channels_needing_attention(user) -> dict:
    """Channels that cannot send until an operator acts (e.g. Meta refused the access token): how many,
    and for a signed-in admin session which of its tenants' and why."""
    flagged = Channel.objects.exclude(needs_attention="")
    detail = {"channels_needing_attention": flagged.count()}
    if user is not None and user.is_authenticated and user.is_staff:
        detail["channels_needing_attention_ids"] = [
            {"channel": channel_id, "reason": reason}
            for channel_id, reason in restrict(flagged, user).order_by("channel_id")
            .values_list("channel_id", "needs_attention")[:100]
        ]
    return detail


@never_cache
@require_GET
def healthz(request):
    body = {"database": database_status(), "broker": broker_status()}
    healthy = all(value == "ok" for value in body.values())
    body = {"status": "ok" if healthy else "error", **body}
    if request.GET.get("detail") in ("1", "true") and body["database"] == "ok":
        body.update(channels_down_detail(request.user))
        body.update(channels_needing_attention(request.user))
    return JsonResponse(body, status=200 if healthy else 503)


def channels_down_detail(user) -> dict:
    down = Channel.objects.filter(down_since__isnull=False)
    detail = {"channels_down": down.count()}
    if user is not None and user.is_authenticated and user.is_staff:
        detail["channels_down_ids"] = list(restrict(down, user).order_by("channel_id")
                                           .values_list("channel_id", flat=True))
    return detail


class DatabaseCollector:
    """Gauges read at scrape time: deliveries due and overdue, recipients of live campaigns, queue depth."""

    def collect(self):
        now = timezone.now()
        due = Delivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
        gauge = GaugeMetricFamily("dms_deliveries_due", "Pending deliveries whose next attempt is due.")
        gauge.add_metric([], due.count())
        yield gauge
        gauge = GaugeMetricFamily("dms_deliveries_overdue",
                                  f"Pending deliveries due for more than {OVERDUE_AFTER.seconds} s.")
        gauge.add_metric([], due.filter(next_attempt_at__lte=now - OVERDUE_AFTER).count())
        yield gauge
        gauge = GaugeMetricFamily("dms_campaign_recipients", "Recipients of live campaigns by state.",
                                  labels=["campaign", "state"])
        for campaign in Campaign.objects.filter(state__in=("running", "scheduled", "paused")):
            for state, count in campaign_counts(campaign=campaign).items():
                if state != "total":
                    gauge.add_metric([str(campaign.pk), state], count)
        yield gauge
        depth = celery_queue_depth()
        if depth is not None:
            gauge = GaugeMetricFamily("dms_celery_queue_depth", "Tasks waiting in the broker's queue.",
                                      labels=["queue"])
            for queue, count in depth.items():
                gauge.add_metric([queue], count)
            yield gauge


def celery_queue_depth() -> dict[str, int] | None:
    """Tasks waiting in each queue (a queue nothing was ever published to holds none)."""
    queues = {queue.name for queue in (celery_app.conf.task_queues or ())} or {celery_app.conf.task_default_queue}
    depth = {}
    try:
        with celery_app.connection_for_read() as connection:
            for name in sorted(queues):
                # A channel each: AMQP closes the channel of a passive declare that finds no queue.
                with connection.channel() as channel:
                    try:
                        depth[name] = channel.queue_declare(queue=name, passive=True).message_count
                    except ChannelError:  # not declared yet: empty
                        depth[name] = 0
    except Exception as error:  # a broker that is down is /healthz's business; the gauge is left out
        logger.warning("queue depth unknown: %s", error)
        return None
    return depth


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:  # this process's own counts
        for collector in (MESSAGES_IN, MESSAGES_OUT, DELIVERY_ATTEMPTS, WEBHOOK_LATENCY):
            registry.register(collector)
    registry.register(DatabaseCollector())
    return registry


def allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in settings.METRICS_ALLOWED_NETWORKS)


@require_GET
def metrics_view(request):
    """Open to the addresses of METRICS_ALLOWED_NETWORKS (the connection's own address), 403 to others."""
    if not allowed(request.META.get("REMOTE_ADDR", "")):
        return HttpResponseForbidden("Metrics are open to METRICS_ALLOWED_NETWORKS only.\n",
                                     content_type="text/plain")
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
