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
    from channels_app.selectors import tenant_ids_for
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
    sent = agent_message_send(tenant_ids=tenant_ids_for(ann), interaction_id=interaction.pk,
                              admit=lambda _: {"text": "How can I help?"}, sender=ann).message
    Message.objects.filter(pk=sent.pk).update(external_id="ext-1")
    receipt_apply(channel=channel, external_id="ext-1", status="Delivered")

    # then both see the message going out and its receipt
    for agent in (ann, bob):
        kinds = [(event.kind, event.data.get("text") or event.data.get("status"))
                 for event in AgentEvent.objects.filter(user=agent).order_by("pk")]
        assert kinds == [("message", "How can I help?"), ("receipt", "delivered")], agent


class CountingStore:
    """The hub's database as a test sees it: what it was asked to read, and events it hands out once."""

    def __init__(self):
        self.reads: list[dict[int, int]] = []
        self.numbered: set[int] = set()
        self.held: dict[int, list] = {}

    async def sequence(self) -> set[int]:
        numbered, self.numbered = self.numbered, set()
        return numbered

    async def last(self, user_ids) -> dict[int, int]:
        return {user_id: 0 for user_id in user_ids}

    async def read(self, wanted: dict[int, int]) -> dict[int, list]:
        self.reads.append(dict(wanted))
        return {user_id: [event for event in self.held.get(user_id, ()) if event.seq > after]
                for user_id, after in wanted.items()}


async def _until(condition, what: str, timeout: float = 5.0) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout} s")
        await asyncio.sleep(0.005)


def _hub_on(store):
    """A hub whose passes read `store` (the LISTEN task's part is played by the test)."""
    import asyncio

    from channels_app.api import events

    hub = events.EventHub()
    hub.kick = asyncio.Event()
    hub.task = asyncio.get_running_loop().create_task(hub._serve(store))
    return hub


def test_an_idle_stream_sends_only_keep_alives_and_is_read_for_only_when_woken(monkeypatch):
    """What an idle stream costs (docs/PERFORMANCE.md, "Routing to agents"): a comment now and then, no read
    of the database until its user has something new."""
    import asyncio

    from channels_app.api import events

    monkeypatch.setattr(events, "KEEPALIVE_SECONDS", 0.02)

    async def run():
        store = CountingStore()
        hub = _hub_on(store)
        monkeypatch.setattr(events, "hub", hub)
        stream = events._stream(7, 41)
        assert await anext(stream) == f"retry: {events.RETRY_MILLISECONDS}\n\n"
        # idle: keep-alives, and one read (when the stream opened)
        assert [await anext(stream) for _ in range(3)] == [": keep-alive\n\n"] * 3
        assert store.reads == [{7: 41}]
        # woken (its user has new events; another user's wake-up is not its): it is read for again
        hub.wake([8])
        assert await anext(stream) == ": keep-alive\n\n"
        hub.wake([7])
        await _until(lambda: len(store.reads) == 2, "read for again")
        assert store.reads == [{7: 41}] * 2
        await stream.aclose()
        assert hub.streams == {} and hub.due == set()
        hub.task.cancel()

    asyncio.run(run())


def test_one_pass_reads_for_every_woken_stream_at_once_and_hands_each_what_follows_its_id(monkeypatch):
    import asyncio

    from channels_app.api import events
    from channels_app.services.agent_events import StreamEvent

    monkeypatch.setattr(events, "KEEPALIVE_SECONDS", 0.02)

    async def next_event(stream) -> str:
        while (chunk := await anext(stream)).startswith((":", "retry")):
            pass
        return chunk

    async def run():
        store = CountingStore()
        hub = _hub_on(store)
        monkeypatch.setattr(events, "hub", hub)
        # given two streams of user 7 (one resumed further on) and one of user 8, all sent what they had
        early, late, other = events._stream(7, 0), events._stream(7, 10), events._stream(8, 0)
        for stream in (early, late, other):
            await anext(stream)
        await _until(lambda: not hub.due, "the opening reads done")
        store.reads.clear()

        # when events of 7 are numbered (the sequencer names their user)
        store.held[7] = [StreamEvent(10, "message", {"text": "ten"}), StreamEvent(11, "message", {"text": "eleven"})]
        store.numbered = {7}
        hub.wake([])

        # then one read for user 7, from the lowest id of its streams; each stream gets what follows its own id
        assert await next_event(early) == ('id: 10\nevent: message\ndata: {"text":"ten"}\n\n'
                                           'id: 11\nevent: message\ndata: {"text":"eleven"}\n\n')
        assert await next_event(late) == 'id: 11\nevent: message\ndata: {"text":"eleven"}\n\n'
        assert store.reads == [{7: 0}]
        for stream in (early, late, other):
            await stream.aclose()
        hub.task.cancel()

    asyncio.run(run())


@committed
def test_sequencers_of_several_processes_at_once_number_every_event_once_in_order():
    """The web processes each run the sequencer when a commit wakes them: under its lock they follow one
    another, and the events come out numbered 1..n, each once, none left."""
    require_shared_database()
    _, agent, _ = _world()
    AgentEvent.objects.all().delete()
    errors = []

    def process(n: int):
        try:
            for m in range(20):
                agent_events.events_add(user_ids=[agent.pk], kind="message", data={"text": f"{n}-{m}"})
                agent_events.agent_events_sequence()
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=process, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert sorted(AgentEvent.objects.values_list("seq", flat=True)) == list(range(1, 81))


@committed
def test_the_streams_reads_on_an_asynchronous_connection_are_the_services_rules():
    """The hub's SQL (services.agent_events, `*_async`) answers as the ORM functions do."""
    import asyncio

    import psycopg

    from channels_app.api.events import _connection_params

    require_shared_database()
    _, ann, _ = _world()
    bob = member("bob", "WhatsApp agent", tenants=[ann.memberships.first().tenant], is_staff=False)
    AgentEvent.objects.all().delete()
    for text in ("one", "two", "three"):
        agent_events.events_add(user_ids=[ann.pk, bob.pk], kind="message", data={"text": text})

    async def run():
        async with await psycopg.AsyncConnection.connect(**_connection_params(), autocommit=True) as db:
            numbered = await agent_events.agent_events_sequence_async(db)
            found = await agent_events.agent_events_after_async(db, wanted={ann.pk: 0, bob.pk: 4}, limit=2)
            lasts = await agent_events.agent_events_last_async(db, user_ids=[ann.pk, bob.pk, 0])
            return numbered, found, lasts

    numbered, found, lasts = asyncio.run(run())

    assert numbered == {ann.pk, bob.pk}
    for user, after in ((ann, 0), (bob, 4)):
        expected = agent_events.agent_events_after(user_id=user.pk, after=after, limit=2)
        assert found[user.pk] == [(event.seq, event.kind, event.data) for event in expected]
    assert lasts == {ann.pk: agent_events.agent_events_last(user_id=ann.pk),
                     bob.pk: agent_events.agent_events_last(user_id=bob.pk), 0: 0}
