"""`GET /metrics` (API.md, "Operations"): Prometheus text, open to METRICS_ALLOWED_NETWORKS only."""

import hashlib
import hmac
import json

import pytest
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from channels_app.models import Delivery
from channels_app.services.deliveries import deliveries_attempt


def samples(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db
def test_messages_in_and_out_attempts_latency_and_due_deliveries(client, webhook_channel, receiver,
                                                                  django_capture_on_commit_callbacks):
    before = samples(client)
    body = json.dumps({"messages": [
        {"type": "Text", "text": "Hello", "channel": {"messageId": "m-1", "from": {"id": "15556667777"},
                                                      "to": {"id": "19251112222"}}},
    ]}).encode()
    signature = "sha256=" + hmac.new(b"channel-secret", body, hashlib.sha256).hexdigest()

    # when a customer writes and an agent's answer is delivered
    assert client.post("/nexus/v3/channels/channel-whatsapp-REAL/messages", body, content_type="application/json",
                       HTTP_X_HUB_SIGNATURE_256=signature).status_code == 200
    from channels_app.models import Interaction
    from channels_app.services.interactions import message_queue_outbound

    with django_capture_on_commit_callbacks(execute=False):
        message_queue_outbound(interaction=Interaction.objects.get(), payload={"type": "Text", "text": "Hi"})
    assert value(samples(client), "dms_deliveries_due") == 1
    deliveries_attempt(delivery_ids=[Delivery.objects.get().pk])

    # then the counters moved by one each
    after = samples(client)
    channel = "channel-whatsapp-REAL"
    assert value(after, "dms_messages_in_total", channel=channel, type="Text") == \
        value(before, "dms_messages_in_total", channel=channel, type="Text") + 1
    assert value(after, "dms_messages_out_total", channel=channel, type="Text") == \
        value(before, "dms_messages_out_total", channel=channel, type="Text") + 1
    assert value(after, "dms_delivery_attempts_total", channel=channel, outcome="accepted") == \
        value(before, "dms_delivery_attempts_total", channel=channel, outcome="accepted") + 1
    assert value(after, "dms_webhook_latency_seconds_count", channel=channel) == \
        value(before, "dms_webhook_latency_seconds_count", channel=channel) + 1
    assert value(after, "dms_deliveries_due") == 0
    assert ("dms_celery_queue_depth", (("queue", "celery"),)) in after


@pytest.mark.django_db
def test_other_addresses_are_refused(client):
    with override_settings(METRICS_ALLOWED_NETWORKS=[]):
        assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="::ffff:127.0.0.1").status_code == 200


def test_people_bulk_and_media_go_in_lanes_of_their_own():
    from project.celery import app

    def lane(task):
        return app.amqp.router.route({}, task)["queue"].name

    assert {lane("channels_app.deliver"), lane("channels_app.deliver_batch")} == {"people"}
    assert lane("channels_app.campaign_batch") == "bulk"
    assert {lane("channels_app.fetch_attachment"), lane("channels_app.whatsapp_media_fetch")} == {"media"}
    assert lane("channels_app.whatsapp_inbox_process") == "people"
