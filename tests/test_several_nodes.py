"""More than one machine (issue 28, item 4; docs/OPERATIONS.md): two complete installations ("nodes": scripts/serve.sh
each, with a VAR_DIR, a port and a node name of its own) on one PostgreSQL database, one Redis broker and one
S3-compatible store (moto's server, as in tests/test_media_worker_s3.py).

Shown: a message accepted by either node is delivered once; a file a node's worker fetched is on the shared store; a
campaign's batches are shared by the workers of both; only one beat schedules (the other stands by on the beat lock,
channels_app/beat_lock.py); killing one node (SIGKILL to all its processes) loses nothing, and the other carries on,
its beat taking over.

Also the agents' live events across nodes (API.md, "Routing to agents"): an agent of the channel's queue (routed by
the server), ready, listens on one node (its web server's port) while the customer writes to the other; the offer of
that interaction and, once accepted through the other node, the customer's next message reach the agent (the event
rows are woken by PostgreSQL's NOTIFY, which every node hears). When the agent's node dies, the agent resumes on the
other node with Last-Event-ID: every reply's event arrives, also those written while no stream was open, none twice."""

import hashlib
import hmac
import http.client
import json
import queue
import re
import threading
from collections import Counter

import pytest
import requests
from django.core.management import call_command

from channels_app.models import Campaign, CampaignRecipient, Channel, Interaction, MessageAttachment
from channels_app.services.channels import channel_save
from tests.conftest import _client_for, member
from tests.factories import TenantFactory
from tests.file_server import Served
from tests.nodes import Node, ensure_default_groups
from tests.test_campaigns import SPEC_RESPONSE, recipient
from tests.test_media import png_bytes
from tests.test_media_worker_s3 import files, s3  # noqa: F401 (fixtures: a file server, moto's S3 server)
from tests.test_routing_events import Stream
from tests.workers import poll_until, require_shared_database

SECRET = "channel-secret-of-the-nodes"
CUSTOMER = "4915112345678"
HOLDS, STANDS_BY = "holds the beat lock", "stands by"
CAMPAIGN_SIZE = 450  # three batches (BATCH_SIZE 200) for four chains: each bulk worker takes one at least


def _nexus(node: Node, channel_id: str, message: dict) -> requests.Response:
    body = json.dumps({"messages": [message]}).encode()
    signature = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    return requests.post(f"{node.url}/nexus/v3/channels/{channel_id}/messages", data=body, timeout=10,
                         headers={"Content-Type": "application/json", "X-Hub-Signature": signature})


class _Stream(Stream):
    """The agent's event stream, read in a thread; `ended` once the connection is gone and all it read is parsed."""

    ended = False

    def _read(self) -> None:
        try:
            super()._read()
        except http.client.HTTPException:  # a chunk cut short by the server's death
            pass
        finally:
            self.ended = True

    def received(self, into: list[dict]) -> list[dict]:
        """`into` with the events read since the last call appended."""
        while True:
            try:
                into.append(self.events.get_nowait())
            except queue.Empty:
                return into

    def first(self, into: list[dict], kind: str, **fields) -> dict | None:
        """The data of the first event of `kind` with `fields` read so far (appended to `into`)."""
        return next((event["data"] for event in self.received(into) if event["event"] == kind
                     and all(event["data"].get(name) == value for name, value in fields.items())), None)


def _batches_written(node: Node, campaign_id: int) -> list[int]:
    """The recipients each campaign batch of this node's workers wrote (the batch's line once it committed)."""
    return [int(n) for n in re.findall(rf"Campaign {campaign_id}: a batch wrote the outcome of (\d+) recipients",
                                       node.output())]


def _batch_task_lines(node: Node) -> list[str]:
    """What Celery said of each campaign batch task but that it received it: for a failure's message."""
    return [line for line in node.output().splitlines() if "campaign_batch[" in line and "received" not in line]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_nodes_share_the_work_and_one_survives_the_other(receiver, files, s3, tmp_path, tenant):  # noqa: F811
    require_shared_database()
    endpoint = s3.meta.endpoint_url
    nodes_tenant = TenantFactory(id=9, name="Nodes")
    channel = channel_save(
        channel=Channel(channel_id="channel-nodes", name="WhatsApp", tenant=nodes_tenant, media_type="whatsapp",
                        transport="webhook", business_id="19251112222", webhook_url=receiver.url, secret=SECRET),
        inbound_route_by_call="9:session-chat",
    )
    ensure_default_groups()
    agent = member("nodes-agent", "WhatsApp agent", tenants=[nodes_tenant], is_staff=False)
    agent_token = _client_for(agent)._credentials["HTTP_AUTHORIZATION"]
    # The channel's queue is routed by the server, with the agent in it (README, "Routing to agents").
    nodes_admin = _client_for(member("nodes-admin", "Administrator", tenants=[nodes_tenant]))
    queued = nodes_admin.post("/api/queues/", {"key": "9:session-chat", "routing": "workspace",
                                               "agents": [agent.pk]}, format="json")
    assert queued.status_code == 201, queued.json()
    # A campaign on the simulator's channel (tenant 1), drafted here and started through a node.
    staff_api = _client_for(member("nodes-operator", "Administrator", "WhatsApp senior agent", tenants=[tenant]))
    call_command("seed_demo", "--bare")
    assert staff_api.post("/api/standard-responses/", SPEC_RESPONSE, format="json").status_code == 201
    drafted = staff_api.post("/api/campaigns/", {
        "name": "Shared", "channel": "channel-ghub-simulator", "standard_response": SPEC_RESPONSE["id"],
        "recipients": [recipient(n) for n in range(1, CAMPAIGN_SIZE + 1)], "rate_per_second": None,
    }, format="json")
    assert drafted.status_code == 201, drafted.json()
    campaign = drafted.json()
    staff_token = staff_api._credentials["HTTP_AUTHORIZATION"]
    shared = {
        "MEDIA_STORAGE": "s3", "AWS_STORAGE_BUCKET_NAME": "dms-media", "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_S3_REGION_NAME": "us-east-1", "AWS_S3_ACCESS_KEY_ID": "testing", "AWS_S3_SECRET_ACCESS_KEY": "testing",
        # a killed node's leases run out soon (a delivery's lease is this plus the webhook's 10 s)
        "DELIVERY_LEASE_SECONDS": "2", "CAMPAIGN_CLAIM_LEASE_SECONDS": "5", "CAMPAIGN_STALLED_SECONDS": "3",
    }
    nodes = [Node(name, tmp_path / name, env=shared) for name in ("node-a", "node-b")]
    streams: list[_Stream] = []
    try:
        for node in nodes:
            node.start()
        starting = [threading.Thread(target=node.wait_ready) for node in nodes]
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join()
        for node in nodes:
            node.wait_ready(timeout=1)  # raises here what a thread could only print

        # Only one beat schedules: one holds the lock, the other stands by.
        poll_until(lambda: sum(HOLDS in node.output() for node in nodes) == 1
                   and sum(STANDS_BY in node.output() for node in nodes) == 1, 30, "one beat to hold the lock")
        holder, other = sorted(nodes, key=lambda node: HOLDS not in node.output())
        poll_until(lambda: "Sending due task" in holder.output(), 30, "the holder's beat to schedule")

        # The agent, ready, listens on the beat's node (it dies below); customers write to the
        # other node.
        ready = requests.patch(f"{other.url}/api/agents/me/", json={"ready": {"whatsapp": True}},
                               headers={"Authorization": agent_token}, timeout=10)
        assert ready.status_code == 200, ready.text
        streams.append(_Stream(holder.port, agent_token.removeprefix("Token ")))
        assert (streams[0].status, streams[0].content_type) == (200, "text/event-stream")
        on_a: list[dict] = []

        # A customer's message with a photo through the other node: a worker of either stores it on the shared store.
        files.files["/photo.png"] = Served(png_bytes(), headers={"Content-Type": "image/png"})
        answer = _nexus(other, channel.channel_id, {
            "type": "Text", "text": "Hello", "attachments": [{"url": files.url("/photo.png"),
                                                             "contentType": "image/png", "fileName": "photo.png"}],
            "channel": {"messageId": "c-1", "from": {"id": CUSTOMER}, "to": {"id": "19251112222"}}})
        assert answer.status_code == 200, answer.text
        interaction = Interaction.objects.get(channel=channel)
        stored = poll_until(lambda: MessageAttachment.objects.filter(status="stored").first(), 30,
                            "a worker to store the photo")
        assert stored.file.name in [item["Key"] for item in s3.list_objects_v2(Bucket="dms-media")["Contents"]]

        # The interaction that arrived at the other node is offered to the agent listening on the beat's node;
        # accepted through the other node, the customer's next message (to it as well) reaches the agent too.
        offer = poll_until(lambda: streams[0].first(on_a, "offer", interaction=interaction.pk), 20,
                           "the offer on the agent's stream")
        accepted = requests.post(f"{other.url}/api/offers/{offer['id']}/accept/",
                                 headers={"Authorization": agent_token}, timeout=10)
        assert accepted.status_code == 200, accepted.text
        answer = _nexus(other, channel.channel_id, {
            "type": "Text", "text": "Are you there?",
            "channel": {"messageId": "c-2", "from": {"id": CUSTOMER}, "to": {"id": "19251112222"}}})
        assert answer.status_code == 200, answer.text
        said = poll_until(lambda: streams[0].first(on_a, "message", direction="inbound"), 20,
                          "the customer's message on the agent's stream")
        assert (said["interaction"], said["text"]) == (interaction.pk, "Are you there?")

        # Agents' replies accepted by either node: each delivered once.
        def reply(node: Node, n: int) -> str:
            sent = requests.post(f"{node.url}/api/interactions/{interaction.pk}/messages/",
                                 json={"text": f"Reply {n}"}, headers={"Authorization": agent_token}, timeout=10)
            assert sent.status_code == 202, sent.text
            return sent.json()["id"]

        first = [reply(nodes[n % 2], n) for n in range(10)]

        # A campaign started through node A: its batches are run by the bulk workers of both nodes.
        started = requests.post(f"{nodes[0].url}/api/campaigns/{campaign['id']}/start/",
                                headers={"Authorization": staff_token}, timeout=10)
        assert started.status_code == 200, started.text
        poll_until(lambda: Campaign.objects.get(pk=campaign["id"]).state == "completed", 60,
                   "the campaign to complete")
        reached = CampaignRecipient.objects.filter(campaign_id=campaign["id"], message__isnull=False)
        assert reached.values("message").distinct().count() == CAMPAIGN_SIZE
        # Each recipient was written by one batch (a batch's line follows its commit; Celery's own line of the
        # task follows its sends, which may end in another worker's retry), and each node's worker wrote some.
        written = [_batches_written(node, campaign["id"]) for node in nodes]
        tasks = [_batch_task_lines(node) for node in nodes]
        assert sum(map(sum, written)) == CAMPAIGN_SIZE, (written, tasks)
        assert all(sum(node_written) > 0 for node_written in written), (written, tasks)

        poll_until(lambda: receiver.arrived(first) == len(first), 30, "the first replies")
        assert receiver.duplicate_posts() == 0
        assert "Sending due task" not in other.output()  # the beat that stands by schedules nothing

        # The beat's node dies with messages it accepted a moment ago: nothing is lost, the other goes on.
        doomed = [reply(holder, n) for n in range(10, 15)]
        holder.kill()
        after = [reply(other, n) for n in range(15, 20)]
        poll_until(lambda: receiver.arrived(first + doomed + after) == 20, 40, "every reply after the kill")
        # A webhook in flight when its sender died is sent again (at least once; docs/RELIABILITY.md): at most
        # those the dead node had accepted.
        assert receiver.duplicate_posts() <= len(doomed)

        # The agent's stream ended with the beat's node; resumed on the other node with the id of the last
        # event it read (Last-Event-ID, as a browser reconnects), it gets every reply's event, none twice.
        poll_until(lambda: streams[0].ended, 10, "the stream of the killed node to end")
        streams[0].received(on_a)
        streams.append(_Stream(other.port, agent_token.removeprefix("Token "),
                               last_event_id=int(on_a[-1]["id"])))
        on_b: list[dict] = []
        replies = {str(reply_id) for reply_id in first + doomed + after}

        def replies_seen() -> Counter:
            return Counter(str(event["data"]["id"]) for event in on_a + streams[1].received(on_b)
                           if event["event"] == "message" and event["data"]["direction"] == "outbound")

        poll_until(lambda: set(replies_seen()) >= replies, 20, "every reply's event")
        assert set(replies_seen().values()) == {1} and set(replies_seen()) == replies
        ids = [int(event["id"]) for event in on_a + on_b]
        assert ids == sorted(set(ids))  # in order, none twice
        assert on_b, "the resumed stream carries the events written while no stream was open"

        poll_until(lambda: HOLDS in other.output(), 30, "the other beat to take the lock over")
        poll_until(lambda: "Sending due task" in other.output(), 30, "the other beat to schedule")
        assert other.answers()
    finally:
        for stream in streams:
            stream.close()
        for node in nodes:
            node.stop()
