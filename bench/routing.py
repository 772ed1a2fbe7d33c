"""Benchmark: the server's own routing and the agents' event stream (issue 23, API.md "Routing to agents").

    .venv/bin/python -m bench.routing [--seconds 60] [--agents 200] [--rate 50] [--chaos]

A fresh PostgreSQL database and Redis db 10 (bench/processes.py), production settings, an SMS webhook
channel routed to a `workspace` queue of `--agents` agents (ready for SMS, capacity `--capacity`), the web
server as scripts/serve.sh starts it (`--server`, bench/processes.py: the API and the event stream on one port)
and the dispatcher (it expires offers). Every agent holds an event stream (`GET /api/agents/me/events/`) open
from the start, on the web server's port.

1. Idle: the streams stay open for `--idle-seconds` with nothing happening; the web server's CPU is
   reported (`idle_event_server_cpu_percent_of_one_core`; goal: 200 idle streams under 2 % of a core).
2. Load: customers write `--rate` messages a second for `--seconds` (signed /nexus requests; each customer
   writes `--messages-per-customer` messages about `--gap` seconds apart, the first opens an interaction that
   enters the queue). An agent
   who gets an `offer` answers after a random 0-3 s: a tenth reject, the others accept. A message of an
   assigned interaction reaches the agent's stream as a `message` event.
   * `offer_p99_ms`: from the interaction entering the queue to its first offer on an agent's stream (goal
     200 ms p99). The interaction enters the queue in the transaction of the customer's first message, which
     also creates it: the moment is the interaction's `created_at` (server clock, the same machine's as
     the bench's). The offer is made after that commit by the dispatcher (woken by NOTIFY `offers_due`),
     so this counts the rest of the web request, the dispatcher's wake-up and offer, and the event stream;
   * `offer_made_p99_ms`: from entering the queue to the offer's row (`created_at`): the dispatcher's part;
   * `offer_from_send_p99_ms`: from the customer's first message being sent to the offer on the stream (the
     request's own time included; the figure reported before the offers moved to the dispatcher);
   * `message_p99_ms`: from a customer's message being sent to the `message` event on its agent's stream
     (goal 500 ms p99).
3. With `--chaos`: during the load, the web server and the dispatcher are killed with SIGKILL
   (every `--chaos-every` seconds one of them, in turn) and started again on the same port; agents reconnect
   with `Last-Event-ID`; messages refused while gunicorn is down are sent again.
4. Then `--drain` seconds without load, and the invariants, read from the database: interactions assigned
   twice (`assigned_twice`), interactions neither assigned nor waiting (`lost`), events of an agent's stream
   missing or repeated (`events_lost`, `events_repeated`, against the agent's rows) and offers still pending
   past their time (`offers_overdue`). Each must be 0.

Output: `name=value` lines, the headline (`message_p99_ms`) last. Long: run it alone on the machine.
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import random
import socket
import time

from bench.clients import AsyncConnection
from bench.measure import percentile, print_figures
from bench.processes import WEB_SERVERS, Stack, free_port, web_command

DATABASE = "dms_bench_routing"
REDIS_DB = 10
CHANNEL_ID = "bench-sms-routing"
SECRET = "bench-routing-secret"
QUEUE = "1:routing-bench"
NEXUS = f"/nexus/v3/channels/{CHANNEL_ID}/messages"
EVENTS = "/api/agents/me/events/"

SETUP = """
import json
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
from channels_app.models import Channel, Membership, Queue, Tenant
from channels_app.services.channels import channel_save
from channels_app.services.routing import agent_state_update, queue_save

tenant = Tenant.objects.get(pk=1)
channel_save(
    channel=Channel(channel_id=%(channel)r, name="Bench SMS routing", tenant=tenant, media_type="sms",
                    transport="webhook", business_id="0123456789", webhook_url="http://127.0.0.1:9/hook",
                    secret=%(secret)r),
    inbound_route_by_call=%(queue)r,
)
agents = []
group = Group.objects.get(name="WhatsApp agent")
for n in range(%(agents)d):
    user = User.objects.create(username=f"agent{n}")  # no password: the token is its credential
    user.groups.add(group)
    Membership.objects.create(user=user, tenant=tenant)
    agent_state_update(user=user, ready={"sms": True}, capacity=%(capacity)d)
    agents.append(user)
queue_save(queue=Queue(tenant=tenant, key=%(queue)r, routing="workspace", offer_timeout_seconds=%(timeout)d),
           agents=agents)
print("AGENTS=" + json.dumps([[user.pk, Token.objects.create(user=user).key] for user in agents]))
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration (default 60)")
    parser.add_argument("--agents", type=int, default=200, help="agents, each with a stream (default 200)")
    parser.add_argument("--rate", type=float, default=50.0, help="customer messages a second (default 50)")
    parser.add_argument("--capacity", type=int, default=5, help="interactions per agent at once (default 5)")
    parser.add_argument("--messages-per-customer", type=int, default=5, help="messages a customer writes")
    parser.add_argument("--gap", type=float, default=4.0, help="seconds between a customer's messages (default 4)")
    parser.add_argument("--timeout", type=int, default=10, help="offer_timeout_seconds of the queue")
    parser.add_argument("--idle-seconds", type=float, default=60.0,
                        help="idle phase (default 60: more than two keep-alive periods of the streams)")
    parser.add_argument("--drain", type=float, default=15.0, help="seconds after the load (default 15)")
    parser.add_argument("--workers", type=int, default=3, help="web server processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per process for the API (WEB_THREADS)")
    parser.add_argument("--server", choices=[name for name in WEB_SERVERS if name not in ("gthread", "granian-wsgi")],
                        default="uvicorn",
                        help="the web server (bench/processes.py; gthread and granian-wsgi do not serve the event "
                             "stream)")
    parser.add_argument("--chaos", action="store_true", help="SIGKILL the servers and the dispatcher in turn")
    parser.add_argument("--chaos-every", type=float, default=10.0, help="seconds between kills (default 10)")
    return parser.parse_args()


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout:.0f} s")


class Servers:
    """The web server (named gunicorn, whichever --server) and the dispatcher, each started again (the web
    server on the same port) after a kill."""

    def __init__(self, stack: Stack, args: argparse.Namespace):
        self.stack, self.args = stack, args
        self.web_port = free_port()
        stack.port = self.web_port

    def start(self, name: str) -> None:
        if name == "gunicorn":
            command, env = web_command(self.args.server, port=self.web_port, workers=self.args.workers,
                                       threads=self.args.threads)
            self.stack._start("gunicorn", command, env)
            _wait_port(self.web_port)
        else:
            self.stack.start_dispatcher(wait=True)

    def kill_and_restart(self, name: str) -> None:
        self.stack.kill("dispatcher1" if name == "dispatcher" else name)
        time.sleep(0.5)  # down for a moment, as a process manager restarts it
        self.start(name)


class Agent:
    """An agent's screen: its stream (reconnecting with Last-Event-ID), and its answers to offers."""

    def __init__(self, user_id: int, token: str, bench: "Bench"):
        self.user_id, self.token, self.bench = user_id, token, bench
        self.last_id: int | None = None
        self.seen: list[int] = []
        self.reconnects = 0
        self.connected = asyncio.Event()

    async def stream(self) -> None:
        while not self.bench.stopping:
            try:
                await self._read()
            except (OSError, asyncio.IncompleteReadError, ValueError):
                pass
            if not self.bench.stopping:
                self.reconnects += 1
                await asyncio.sleep(0.2 + random.random() * 0.3)

    async def _read(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.bench.servers.web_port, limit=2**20)
        self.bench.writers.add(writer)
        try:
            resume = f"Last-Event-ID: {self.last_id}\r\n" if self.last_id is not None else ""
            writer.write((f"GET {EVENTS} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {self.token}\r\n"
                          f"Accept: text/event-stream\r\n{resume}\r\n").encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise ValueError(head[:100])
            self.connected.set()
            event: dict = {}
            while True:  # chunked: a size line, the chunk, CRLF; a chunk holds whole lines of events
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    return
                chunk = (await reader.readexactly(size + 2))[:-2].decode()
                for line in chunk.split("\n"):
                    if not line:
                        if "data" in event:
                            self._on_event(event)
                        event = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(": ")
                        event[name] = value
        finally:
            self.bench.writers.discard(writer)
            writer.close()

    def _on_event(self, event: dict) -> None:
        now = time.perf_counter()
        seq = int(event["id"])
        self.seen.append(seq)
        self.last_id = seq
        data = json.loads(event["data"])
        if event["event"] == "offer":
            self.bench.on_offer(data, now)
            task = asyncio.get_running_loop().create_task(self._answer(data["id"]))
            self.bench.answering.add(task)
            task.add_done_callback(self.bench.answering.discard)
        elif event["event"] == "message" and data["direction"] == "inbound":
            self.bench.on_message(data["text"], now)

    async def _answer(self, offer_id: int) -> None:
        await asyncio.sleep(random.random() * 3)
        verb = "reject" if random.random() < 0.1 else "accept"
        for _ in range(20):  # gunicorn may be down (chaos): again until it answers
            conn = AsyncConnection(self.bench.servers.web_port)
            try:
                status, _ = await conn.request("POST", f"/api/offers/{offer_id}/{verb}/", b"",
                                               {"Authorization": f"Token {self.token}"})
                self.bench.answers[status] = self.bench.answers.get(status, 0) + 1
                return
            except (OSError, asyncio.IncompleteReadError, ValueError):
                await asyncio.sleep(0.5)
            finally:
                conn.close()


class Bench:
    def __init__(self, servers: Servers, args: argparse.Namespace, agents: list[tuple[int, str]]):
        self.servers, self.args = servers, args
        self.agents = [Agent(user_id, token, self) for user_id, token in agents]
        self.stopping = False
        self.writers: set = set()
        self.answering: set[asyncio.Task] = set()
        self.sent: dict[str, float] = {}  # marker -> when its message was sent
        self.first: set[str] = set()  # markers of first messages
        self.offer_latency: list[float] = []  # from sending the first message (perf_counter)
        self.offer_seen_at: dict[str, float] = {}  # interaction id -> when its first offer arrived (wall clock)
        self.message_latency: list[float] = []
        self.offered: set[str] = set()
        self.delivered: set[str] = set()
        self.answers: dict[int, int] = {}
        self.refused = 0
        self.stamp = f"{time.time_ns():x}"

    def on_offer(self, data: dict, now: float) -> None:
        marker = data["preview"].rsplit(" ", 1)[-1]
        if marker in self.first and marker not in self.offered and marker in self.sent:
            self.offered.add(marker)
            self.offer_latency.append(now - self.sent[marker])
            self.offer_seen_at[data["interaction"]] = time.time() - (time.perf_counter() - now)

    def on_message(self, text: str, now: float) -> None:
        marker = text.rsplit(" ", 1)[-1]
        if marker in self.sent and marker not in self.delivered:
            self.delivered.add(marker)
            if marker not in self.first:  # the first message is the offer's: measured there
                self.message_latency.append(now - self.sent[marker])

    async def customer(self, number: int, start_at: float) -> None:
        await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
        client = f"1650{3000000 + number}"
        for n in range(self.args.messages_per_customer):
            marker = f"m{self.stamp}-{number}-{n}"
            if n == 0:
                self.first.add(marker)
            body = json.dumps({"messages": [{"type": "Text", "text": f"Hello from the bench {marker}", "channel": {
                "messageId": marker, "from": {"id": client}, "to": {"id": "0123456789"}}}]}).encode()
            headers = {"Content-Type": "application/json",
                       "X-Hub-Signature": "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()}
            for _ in range(60):  # refused while gunicorn is down (chaos): again
                conn = AsyncConnection(self.servers.web_port)
                self.sent[marker] = time.perf_counter()
                try:
                    status, _ = await conn.request("POST", NEXUS, body, headers)
                    if status == 200:
                        break
                    self.refused += 1
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    self.refused += 1
                finally:
                    conn.close()
                await asyncio.sleep(0.5)
            await asyncio.sleep(self.args.gap * (0.8 + 0.4 * random.random()))

    async def run(self, stack: Stack) -> dict:
        streams = [asyncio.create_task(agent.stream()) for agent in self.agents]
        await asyncio.wait_for(asyncio.gather(*(agent.connected.wait() for agent in self.agents)), 60)
        meter = stack.cpu_meter()
        await asyncio.to_thread(meter.start)
        await asyncio.sleep(self.args.idle_seconds)
        idle = await asyncio.to_thread(meter.stop)
        memory = await asyncio.to_thread(stack.memory_meter().start)  # the load and its drain

        # A new customer every messages-per-customer / rate seconds, each writing messages-per-customer
        # messages: `rate` messages a second once the first customers write their later messages.
        every = self.args.messages_per_customer / self.args.rate
        customers = int(self.args.seconds / every)
        began = time.perf_counter()
        load = [asyncio.create_task(self.customer(n, began + n * every)) for n in range(customers)]
        kills = []
        if self.args.chaos:
            order = ["gunicorn", "dispatcher"]
            at = began + self.args.chaos_every
            while at < began + self.args.seconds:
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                name = order[len(kills) % len(order)]
                await asyncio.to_thread(self.servers.kill_and_restart, name)
                kills.append(name)
                at += self.args.chaos_every
        await asyncio.gather(*load)
        await asyncio.sleep(self.args.drain)
        await asyncio.to_thread(memory.stop)
        self.stopping = True
        for writer in list(self.writers):
            writer.close()
        for task in [*streams, *self.answering]:
            task.cancel()
        await asyncio.gather(*streams, *self.answering, return_exceptions=True)
        return {"idle": idle, "kills": kills, "customers": customers, "memory": memory.figures()}


def invariants(stack: Stack, bench: Bench) -> dict[str, int]:
    twice = stack.sql("SELECT count(*) FROM (SELECT interaction_id FROM channels_app_offer WHERE state = 'accepted'"
                      " AND kind = 'route' GROUP BY interaction_id HAVING count(*) > 1) AS doubled")[0][0]
    lost = stack.sql("SELECT count(*) FROM channels_app_interaction i JOIN channels_app_channel c ON c.id ="
                     " i.channel_id WHERE c.channel_id = %s AND i.assigned_to_id IS NULL AND i.routing_queue_id"
                     " IS NULL AND i.state <> 'ended'", CHANNEL_ID)[0][0]
    overdue = stack.sql("SELECT count(*) FROM channels_app_offer WHERE state = 'pending' AND"
                        " expires_at < now() - interval '5 seconds'")[0][0]
    missing = repeated = 0
    for agent in bench.agents:
        if not agent.seen:
            continue
        rows = {seq for (seq,) in stack.sql(
            "SELECT seq FROM channels_app_agentevent WHERE user_id = %s AND seq BETWEEN %s AND %s",
            agent.user_id, min(agent.seen), max(agent.seen))}
        missing += len(rows - set(agent.seen))
        repeated += len(agent.seen) - len(set(agent.seen))
    return {"assigned_twice": twice, "lost": lost, "offers_overdue": overdue, "events_lost": missing,
            "events_repeated": repeated}


def offer_latencies(stack: Stack, bench: Bench) -> tuple[list[float], list[float]]:
    """(from entering the queue to the first offer on the stream, to the first offer's row), in seconds, of
    the interactions whose first offer was seen, sorted: read from their rows after the run."""
    seen, made = [], []
    ids = list(bench.offer_seen_at)
    for start in range(0, len(ids), 1000):
        for interaction_id, entered, offered in stack.sql(
                "SELECT i.id, i.created_at, min(o.created_at) FROM channels_app_interaction i JOIN channels_app_offer o"
                " ON o.interaction_id = i.id AND o.kind = 'route' WHERE i.id = ANY(%s) GROUP BY i.id, i.created_at",
                ids[start:start + 1000]):
            seen.append(bench.offer_seen_at[interaction_id] - entered.timestamp())
            made.append((offered - entered).total_seconds())
    return sorted(seen), sorted(made)


def main() -> None:
    args = parse_args()
    with Stack(DATABASE, redis_db=REDIS_DB) as stack:
        stack.env.update(DEBUG="false", SECRET_KEY="bench-routing-" + "x" * 50,
                         ALLOWED_HOSTS="127.0.0.1,localhost", SECURE_SSL_REDIRECT="false")
        stack.prepare()
        agents = json.loads(stack.shell(SETUP % {
            "channel": CHANNEL_ID, "secret": SECRET, "queue": QUEUE, "agents": args.agents,
            "capacity": args.capacity, "timeout": args.timeout})["AGENTS"])
        servers = Servers(stack, args)
        for name in ("gunicorn", "dispatcher"):
            servers.start(name)
        bench = Bench(servers, args, agents)
        outcome = asyncio.run(bench.run(stack))
        stack.check_alive()
        checks = invariants(stack, bench)
        if any(checks.values()):
            stack.keep_logs = True
        idle = outcome["idle"]
        from_send, messages = sorted(bench.offer_latency), sorted(bench.message_latency)
        offers, made = offer_latencies(stack, bench)
        print_figures([
            ("agents", args.agents),
            ("rate_per_second", args.rate),
            ("seconds", args.seconds),
            ("customers", outcome["customers"]),
            ("kills", ",".join(outcome["kills"]) or "none"),
            ("server", args.server),
            ("idle_event_server_cpu_percent_of_one_core", idle.get("gunicorn", 0.0) / idle["seconds"] * 100),
            ("idle_other_cpu_cores", idle["other"] / idle["seconds"]),
            ("first_messages", len(bench.first)),
            ("first_offers_seen", len(bench.offer_latency)),
            ("offer_p50_ms", percentile(offers, 0.50) * 1000),
            ("offer_p99_ms", percentile(offers, 0.99) * 1000),
            ("offer_made_p50_ms", percentile(made, 0.50) * 1000),
            ("offer_made_p99_ms", percentile(made, 0.99) * 1000),
            ("offer_from_send_p99_ms", percentile(from_send, 0.99) * 1000),
            ("messages_measured", len(messages)),
            ("answers", json.dumps(bench.answers, sort_keys=True)),
            ("customer_requests_refused", bench.refused),
            ("stream_reconnects", sum(agent.reconnects for agent in bench.agents)),
            *checks.items(),
            *outcome["memory"],
            ("message_p50_ms", percentile(messages, 0.50) * 1000),
            ("message_p99_ms", percentile(messages, 0.99) * 1000),
        ])


if __name__ == "__main__":
    main()
