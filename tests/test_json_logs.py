"""LOG_FORMAT=json on a whole installation (scripts/serve.sh: web, dispatcher, two workers, beat) on PostgreSQL and
the suite's broker: every line of its standard output is one JSON object, each process writes some, and the
trace id of a request is in the web's line, in the dispatcher's line of the webhook it caused, in the worker's
line of the task it published, and in the header of the webhook the receiver got (issue 28, item 3)."""

import hashlib
import hmac
import json

import pytest
import requests

from channels_app.models import Channel, Interaction
from channels_app.services.channels import channel_save
from tests.conftest import _client_for, member
from tests.factories import TenantFactory
from tests.nodes import Node, ensure_default_groups
from tests.workers import poll_until, require_shared_database

SECRET = "channel-secret-never-logged"
CUSTOMER = "4915112345678"
CUSTOMER_TEXT = "My router is broken again"
AGENT_TEXT = "Please unplug it for ten seconds"
INBOUND_TRACE = "80f198ee56343ba864fe8b2a57d3eff7"


def _signed(body: bytes) -> str:
    return "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_every_process_writes_json_lines_that_carry_the_trace_id(receiver, tmp_path):
    require_shared_database()
    tenant = TenantFactory(id=7, name="Logs")
    channel = channel_save(
        channel=Channel(channel_id="channel-logs", name="WhatsApp", tenant=tenant, media_type="whatsapp",
                        transport="webhook",
                        business_id="19251112222", webhook_url=receiver.url, secret=SECRET),
        inbound_route_by_call="7:session-chat",
    )
    ensure_default_groups()
    agent = member("logs-agent", "WhatsApp agent", tenants=[tenant], is_staff=False)
    token = _client_for(agent)._credentials["HTTP_AUTHORIZATION"]
    node = Node("logs", tmp_path / "node", env={
        "LOG_FORMAT": "json", "LOG_TRAFFIC": "true", "MEDIA_FETCH_ATTEMPTS": "1",
    }).start()
    try:
        node.wait_ready()
        # A customer's message with a file (fetched by a worker: a task published by the request).
        body = json.dumps({"messages": [{
            "type": "Text", "text": CUSTOMER_TEXT,
            "attachments": [{"url": "http://127.0.0.1:9/photo.png", "contentType": "image/png",
                             "fileName": "photo.png"}],
            "channel": {"messageId": "c-1", "from": {"id": CUSTOMER}, "to": {"id": "19251112222"}}}]}).encode()
        inbound = requests.post(f"{node.url}/nexus/v3/channels/{channel.channel_id}/messages", data=body, timeout=10,
                                headers={"Content-Type": "application/json", "X-Hub-Signature": _signed(body),
                                         "X-B3-TraceId": INBOUND_TRACE})
        assert inbound.status_code == 200, inbound.text
        assert inbound.headers["X-B3-TraceId"] == INBOUND_TRACE
        interaction = Interaction.objects.get(channel=channel)
        # The agent's answer, with no trace id: one is made and carried to the webhook.
        reply = requests.post(f"{node.url}/api/interactions/{interaction.pk}/messages/", json={"text": AGENT_TEXT},
                              headers={"Authorization": token}, timeout=10)
        assert reply.status_code == 202, reply.text
        trace_id = reply.headers["X-B3-TraceId"]

        webhook = receiver.wait_for(1, timeout=30)[0]
        assert webhook.headers["X-B3-TraceId"] == trace_id

        def lines_with(**fields):
            return [line for line in node.json_lines() if all(line.get(k) == v for k, v in fields.items())]

        poll_until(lambda: lines_with(process="dispatcher", trace_id=trace_id, outcome="accepted"), 20,
                   "the dispatcher's line of the attempt")
        poll_until(lambda: [line for line in lines_with(process="worker", trace_id=INBOUND_TRACE)
                            if "fetch_attachment" in line["event"]], 30, "the worker's line of the file's task")
    finally:
        node.stop()

    lines = node.json_lines()  # each line parsed: one that is not JSON fails here
    # Standard error holds the supervisor's own words only (its greeting, bash's job notices): no Celery banner,
    # no warning or traceback outside the log.
    stderr = node.stderr_path.read_text()
    assert "Warning" not in stderr and "Traceback" not in stderr and "celery@" not in stderr, stderr
    assert {"web", "dispatcher", "worker", "beat"} <= {line["process"] for line in lines}
    assert all({"time", "level", "process", "pid", "event"} <= line.keys() for line in lines)
    web_access = [line for line in lines if line["process"] == "web" and line.get("event") == "request"
                  and line.get("path", "").startswith("/api/interactions/")]
    assert web_access and web_access[0]["trace_id"] == trace_id and web_access[0]["status"] == 202
    received = [line for line in lines if line.get("trace_id") == INBOUND_TRACE and "received" in line["event"]]
    assert received and received[0]["process"] == "web"
    assert (received[0]["channel_id"], received[0]["tenant_id"], received[0]["interaction_id"]) == (
        "channel-logs", tenant.pk, interaction.pk)
    attempt = next(line for line in lines if line.get("trace_id") == trace_id and line["process"] == "dispatcher")
    assert attempt["channel_id"] == "channel-logs" and attempt["interaction_id"] == interaction.pk
    assert attempt["message_id"] == webhook.headers["webhook-id"]
    # Secrets never; the customer's number and both texts masked (LOG_PERSONAL_DATA is not set).
    stdout = node.stdout_path.read_text()
    for never in (SECRET, token.split()[-1], CUSTOMER, CUSTOMER_TEXT, AGENT_TEXT):
        assert never not in stdout
    assert "+" not in received[0]["client_id"] and received[0]["client_id"].startswith("491")
