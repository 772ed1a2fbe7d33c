"""`GET /metrics`: what an operator alerts on, in Prometheus' text format
(API.md, "Operations").

Events are counted where they happen (messages in at the doors, attempts and
their latency where a worker records them) with prometheus-client. The web
processes and the workers of one host share the counts through
`PROMETHEUS_MULTIPROC_DIR` (prometheus-client's multiprocess mode; `make run`
sets it under `var/`); without it each process counts for itself. What the
database knows (deliveries due and overdue, campaign recipients by state) and
the broker's queue depth are read when scraped, each with an indexed query.
"""

import ipaddress
import logging
import os
from datetime import timedelta

from django.conf import settings
from django.http import HttpResponse, HttpResponseForbidden
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

MESSAGES_IN = Counter("dms_messages_in", "Customer messages and receipts received, by channel and type.",
                      ["channel", "type"])
MESSAGES_OUT = Counter("dms_messages_out", "Messages the channel's transport accepted, by channel and type.",
                       ["channel", "type"])
DELIVERY_ATTEMPTS = Counter("dms_delivery_attempts", "Delivery attempts by channel and outcome "
                            "(accepted, retry, failed).", ["channel", "outcome"])
WEBHOOK_LATENCY = Histogram(
    "dms_webhook_latency_seconds", "From sending a message to the transport's answer, by channel.", ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# A delivery due for longer than this is overdue: the workers are not keeping up (or are down).
OVERDUE_AFTER = timedelta(seconds=60)


def count_inbound(*, channel_id: str, types: list[str]) -> None:
    for message_type in types:
        MESSAGES_IN.labels(channel_id, message_type).inc()


def count_attempts(answered) -> None:
    """Each answered attempt (`services.deliveries.Sent`): its outcome and latency; accepted ones are out."""
    for sent in answered:
        channel = sent.delivery.channel.channel_id
        outcome = str(sent.result.outcome)
        DELIVERY_ATTEMPTS.labels(channel, outcome).inc()
        WEBHOOK_LATENCY.labels(channel).observe(sent.result.latency_ms / 1000)
        if outcome == "accepted":
            MESSAGES_OUT.labels(channel, str(sent.delivery.message.payload.get("type", "Text"))).inc()


class DatabaseCollector:
    """Gauges read at scrape time: deliveries due and overdue, recipients of live campaigns, queue depth."""

    def collect(self):
        from channels_app.models import Campaign, Delivery, DeliveryState
        from channels_app.services.campaigns import campaign_counts

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
    from project.celery import app as celery_app

    queues = {queue.name for queue in (celery_app.conf.task_queues or ())} or {celery_app.conf.task_default_queue}
    try:
        with celery_app.connection_for_read() as connection:
            channel = connection.default_channel
            return {name: channel.queue_declare(queue=name, passive=True).message_count for name in sorted(queues)}
    except Exception as error:  # a broker that is down is /healthz's business; the gauge is left out
        logger.warning("queue depth unknown: %s", error)
        return None


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
