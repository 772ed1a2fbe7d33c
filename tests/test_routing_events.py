"""The agents' live events (API.md `GET /api/agents/me/events/`): a real ASGI server process (uvicorn on the site's
application, project/asgi.py, which scripts/serve.sh's web server serves) streams an agent's offers, assignments and
messages as Server-Sent Events from what the database commits; `Last-Event-ID` resumes without losing or repeating
an event, also across a SIGKILL of the server; events are numbered in the order their transactions committed."""

import http.client
import json
import queue
import signal
import socket
import threading
from pathlib import Path

import pytest
from django.db import connection, transaction
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from channels_app.models import AgentEvent, ConferenceMember, Offer, OfferState, Queue, QueueRouting
from channels_app.services import agent_events, routing
from channels_app.services.interactions import customer_message_receive
from tests.conftest import member
from tests.factories import ChannelFactory, TenantFactory
from tests.workers import ProjectProcess, poll_until, require_shared_database

committed = pytest.mark.django_db(transaction=True, serialized_rollback=True)


class EventServer(ProjectProcess):
    """`uvicorn project.asgi:application` (the application scripts/serve.sh's web server serves), on the test
    database."""

    def __init__(self, log_path: Path, port: int | None = None):
        if port is None:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
        self.port = port
        super().__init__(["uvicorn", "project.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                          "--no-access-log", "--lifespan", "off"], log_path)
        poll_until(self._listening, 30, "the event server to listen")

    def _listening(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"uvicorn exited with {self.process.returncode}:\n{self.log()[-4000:]}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()


class Stream:
    """An EventSource of the test: reads the stream in a thread, one parsed event at a time."""

    def __init__(self, port: int, token: str, last_event_id: int | None = None):
        self.events: queue.Queue = queue.Queue()
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Token {token}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.connection.request("GET", "/api/agents/me/events/", headers=headers)
        self.response = self.connection.getresponse()
        self.status, self.content_type = self.response.status, self.response.getheader("Content-Type")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        event: dict = {}
        try:
            while line := self.response.readline():
                line = line.decode().rstrip("\n")
                if not line:
                    if "data" in event:
                        self.events.put({**event, "data": json.loads(event["data"])})
                    event = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    event[name] = value
        except (OSError, AttributeError, ValueError):  # closed by the test
            pass

    def next(self, kind: str, timeout: float = 10.0) -> dict:
        """The next event of `kind` (others before it are passed over)."""
        while True:
            try:
                event = self.events.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {kind!r} event within {timeout} s") from None
            if event["event"] == kind:
                return event

    def close(self) -> None:
        self.connection.close()


def _world():
    tenant = TenantFactory(id=1, name="Environment")
    channel = ChannelFactory(channel_id="channel-whatsapp-REAL", tenant=tenant, media_type="whatsapp",
                             transport="simulator", business_id="19251112222", inbound_route_by_call="1:session-chat")
    agent = member("ann", "WhatsApp agent", tenants=[tenant], is_staff=False)
    routing.agent_state_update(user=agent, ready={"whatsapp": True})
    routing.queue_save(queue=Queue(tenant=tenant, key="1:session-chat", routing=QueueRouting.WORKSPACE),
                       agents=[agent])
    return channel, agent, Token.objects.create(user=agent).key


@committed
def test_an_agent_streams_offers_assignment_and_messages_and_resumes_after_a_kill(tmp_path):
    require_shared_database()
    channel, agent, token = _world()
    server = EventServer(tmp_path / "events.log")
    stream = Stream(server.port, token)
    try:
        assert (stream.status, stream.content_type) == (200, "text/event-stream")

        # when a customer writes (and the dispatcher's offer step runs), the agent's stream carries the offer
        message, _ = customer_message_receive(channel=channel, client_id="15556667777", text="Hello")
        routing.offers_make()
        offer = stream.next("offer")
        assert offer["data"]["interaction"] == message.interaction_id
        assert offer["data"]["preview"] == "Hello"

        # accepting it: the assignment
        routing.offer_accept(offer_id=offer["data"]["id"], user=agent)
        assigned = stream.next("interaction")
        assert assigned["data"]["change"] == "assigned" and assigned["data"]["assigned_to"] == agent.pk
        assert int(assigned["id"]) > int(offer["id"])

        # the server is killed; meanwhile the customer writes twice
        stream.close()
        server.kill()
        for text in ("Are you there?", "My bill is wrong"):
            customer_message_receive(channel=channel, client_id="15556667777", text=text)

        # then a new server resumes after the last id the agent saw: both messages, nothing seen before
        server = EventServer(tmp_path / "events-2.log", port=server.port)
        stream = Stream(server.port, token, last_event_id=int(assigned["id"]))
        first, second = stream.next("message"), stream.next("message")
        assert [first["data"]["text"], second["data"]["text"]] == ["Are you there?", "My bill is wrong"]
        assert int(assigned["id"]) < int(first["id"]) < int(second["id"])
        assert first["data"]["direction"] == "inbound"
        # and what comes next flows live on the resumed stream
        customer_message_receive(channel=channel, client_id="15556667777", text="Thanks")
        assert stream.next("message")["data"]["text"] == "Thanks"
        assert stream.events.empty()  # nothing repeated
    finally:
        stream.close()
        server.stop()


@committed
def test_an_expired_offer_is_withdrawn_on_the_stream(tmp_path):
    require_shared_database()
    channel, agent, token = _world()
    Queue.objects.filter(key="1:session-chat").update(offer_timeout_seconds=1)
    server = EventServer(tmp_path / "events.log")
    stream = Stream(server.port, token)
    try:
        customer_message_receive(channel=channel, client_id="15556667777", text="Hello")
        routing.offers_make()
        offer = stream.next("offer")
        poll_until(lambda: routing.routing_sweep()["expired"] or Offer.objects.filter(
            state=OfferState.EXPIRED).exists(), 10, "the offer to expire")

        withdrawn = stream.next("offer_withdrawn")

        assert withdrawn["data"] == {"id": offer["data"]["id"], "interaction": offer["data"]["interaction"],
                                     "state": "expired"}
    finally:
        stream.close()
        server.stop()


@committed
def test_events_are_numbered_in_the_order_their_transactions_committed():
    require_shared_database()
    _, agent, _ = _world()
    AgentEvent.objects.all().delete()
    inserted, release = threading.Event(), threading.Event()

    def slow_writer():
        try:
            with transaction.atomic():
                agent_events.events_add(user_ids=[agent.pk], kind="message", data={"text": "first in"})
                inserted.set()
                release.wait(10)
        finally:
            connection.close()

    # given a transaction that inserted its event first and has not committed yet
    writer = threading.Thread(target=slow_writer)
    writer.start()
    inserted.wait(10)
    # when a later one commits and the stream reads what is numbered
    agent_events.events_add(user_ids=[agent.pk], kind="message", data={"text": "second in"})
    agent_events.agent_events_sequence()
    seen = agent_events.agent_events_after(user_id=agent.pk, after=0)
    release.set()
    writer.join(10)
    agent_events.agent_events_sequence()

    # then the early one, committed last, comes after what the stream has seen: not lost
    assert [event.data["text"] for event in seen] == ["second in"]
    later = agent_events.agent_events_after(user_id=agent.pk, after=seen[-1].seq)
    assert [event.data["text"] for event in later] == ["first in"]


@pytest.mark.django_db
def test_a_bare_wsgi_server_does_not_hold_a_thread_for_the_stream(tenant):
    agent = member("ann", "WhatsApp agent", tenants=[tenant])
    strategy = member("strategy", "ESP client", tenants=[tenant])

    def get(user, **headers):
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
        return client.get("/api/agents/me/events/?last_event_id=5", **headers)

    # the stream is served by the ASGI application only (project/asgi.py, on the event loop): 421 here
    refused = get(agent)
    assert refused.status_code == 421 and "ASGI" in refused.json()["detail"]
    assert get(strategy).status_code == 403
    assert get(None).status_code == 401
    # an id that is not one is 400 naming it, before anything else (found by the fuzzer)
    bad = get(agent, HTTP_LAST_EVENT_ID="-1.5")
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json()


@pytest.mark.django_db
def test_events_older_than_a_stream_may_resume_from_are_deleted_by_the_periodic_expiry(tenant):
    from datetime import timedelta

    from django.utils import timezone

    from channels_app.services.interactions import sessions_expire

    agent = member("ann", "WhatsApp agent", tenants=[tenant])
    for text in ("old", "recent"):
        agent_events.events_add(user_ids=[agent.pk], kind="message", data={"text": text})
    agent_events.agent_events_sequence()
    AgentEvent.objects.filter(data__text="old").update(created_at=timezone.now() - timedelta(days=3))

    sessions_expire()

    assert [event.data["text"] for event in AgentEvent.objects.all()] == ["recent"]


@pytest.mark.django_db
def test_messages_out_and_receipts_of_a_held_interaction_are_events_of_its_agent_and_conference(tenant, channel):
    from channels_app.models import Message
    from channels_app.selectors import interaction_list
    from channels_app.services.agent_messages import agent_message_send
    from channels_app.services.receipts import receipt_apply

    # given an interaction held by ann, with bob in its conference
    ann, bob = (member(name, "WhatsApp agent", tenants=[tenant]) for name in ("ann", "bob"))
    Queue.objects.create(tenant=tenant, key="1:session-chat", routing=QueueRouting.WORKSPACE)
    message, _ = customer_message_receive(channel=channel, client_id="15556667777", text="Hello")
    interaction = message.interaction
    interaction.assigned_to = ann
    interaction.save(update_fields=["assigned_to"])
    ConferenceMember.objects.create(interaction=interaction, agent=bob)
    AgentEvent.objects.all().delete()

    # when ann answers and the answer is delivered
    sent = agent_message_send(interactions=interaction_list(user=ann), interaction_id=interaction.pk,
                              admit=lambda _: {"text": "How can I help?"}, sender=ann).message
    Message.objects.filter(pk=sent.pk).update(external_id="ext-1")
    receipt_apply(channel=channel, external_id="ext-1", status="Delivered")

    # then both see the message going out and its receipt
    for agent in (ann, bob):
        kinds = [(event.kind, event.data.get("text") or event.data.get("status"))
                 for event in AgentEvent.objects.filter(user=agent).order_by("pk")]
        assert kinds == [("message", "How can I help?"), ("receipt", "delivered")], agent


def test_an_idle_stream_sends_only_keep_alives_and_reads_the_database_when_woken(monkeypatch):
    """What an idle stream costs (docs/PERFORMANCE.md, "Routing to agents"): a comment now and then, no read
    of the database until its user has something new."""
    import asyncio

    from channels_app.api import events

    reads = []
    monkeypatch.setattr(events, "_read", lambda user_id, after: reads.append((user_id, after)) or [])
    monkeypatch.setattr(events, "KEEPALIVE_SECONDS", 0.02)
    hub = events.EventHub()
    monkeypatch.setattr(events, "hub", hub)

    async def run():
        hub.task = asyncio.get_running_loop().create_future()  # no LISTEN task here: the test wakes the stream
        stream = events._stream(7, 41)
        assert await anext(stream) == f"retry: {events.RETRY_MILLISECONDS}\n\n"
        # idle: keep-alives, and one read (when the stream opened)
        assert [await anext(stream) for _ in range(3)] == [": keep-alive\n\n"] * 3
        assert reads == [(7, 41)]
        # woken (its user has new events; another user's wake-up is not its): it reads again
        hub.wake([8])
        assert await anext(stream) == ": keep-alive\n\n"
        assert reads == [(7, 41)]
        hub.wake([7])
        assert await anext(stream) == ": keep-alive\n\n"
        assert reads == [(7, 41)] * 2
        await stream.aclose()
        assert hub.waiting == {}

    asyncio.run(run())
