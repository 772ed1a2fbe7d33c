"""The counters of `GET /metrics` (API.md, "Operations"; the view is in
channels_app/health.py).

Events are counted where they happen (messages in at the doors, attempts and
their latency where a worker records them) with prometheus-client. The web
processes and the workers of one host share the counts through
`PROMETHEUS_MULTIPROC_DIR` (prometheus-client's multiprocess mode; `make run`
sets it under `var/`); without it each process counts for itself.
"""

from prometheus_client import Counter, Histogram

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

PURGED_ROWS = Counter("dms_purged_rows", "Rows the retention purge removed, by kind (interactions, messages, "
                      "files, deliveries, delivery_attempts, campaign_recipients, audit_entries).", ["kind"])


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
