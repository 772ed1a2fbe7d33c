"""Benchmark: the workspace's page (issue 24, "Speed"): 50 agents' pages open, their event streams and the
requests the page makes.

    .venv/bin/python -m bench.workspace [--agents 50] [--seconds 60] [--rate 20] [--openings 400]

The stack of bench/routing.py (a fresh PostgreSQL database, Redis db 12 (`--redis-db`), production settings,
gunicorn, the event server, the dispatcher; an SMS webhook channel routed to a `workspace` queue of `--agents`
agents), and for `--conversations` of the agents a conversation of `--messages` messages (200) with `--earlier` earlier
interactions of the same contact (5, `--earlier-messages` messages each), assigned to that agent.

1. Messages: every agent holds its page's event stream; customers write `--rate` messages a second for
   `--seconds` (bench/routing.py's load: offers answered within 0-3 s, a tenth rejected). `message_p99_ms`: from
   a customer's message being sent to the `message` event on its agent's stream, which is when the window
   shows it (transcript.js appends the event's message; the page asks nothing more). Goal: 1 s p99.
2. Opening a conversation, `--openings` times over the prepared conversations, `--concurrency` at once: the
   requests the page makes when an agent opens one, in the page's order (workspace.js reads the interaction
   with its transcript; then, at once, transcript.js, reply.js and contact.js read the contact (one request,
   shared) and the contact panel its list of interactions). `open_p99_ms`: from the first request to the last
   answer. Goal: 150 ms p99.
3. *See older messages...*, as many times and as many at once: the earlier interactions with their messages,
   which the page asks only when the agent clicks the link (transcript.js; the seed keeps them behind it).
   `older_p99_ms`: that one request.

Output: `name=value` lines, the headline (`open_p99_ms`) last. Long: run it alone on the machine.
"""

import argparse
import asyncio
import json
import random
import time

from bench.clients import AsyncConnection
from bench.measure import percentile, print_figures
from bench.processes import Stack
from bench.routing import CHANNEL_ID, QUEUE, SECRET, SETUP, Bench, Servers

DATABASE = "dms_bench_workspace"
REDIS_DB = 12

CONVERSATIONS = """
import json
from datetime import timedelta
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.authtoken.models import Token
from channels_app.models import Channel, Contact, Interaction, Message

channel = Channel.objects.get(channel_id=%(channel)r)
now = timezone.now()
opened = []
agents = list(User.objects.filter(username__startswith="agent").order_by("pk")[:%(conversations)d])
for n, agent in enumerate(agents):
    client = f"1777{5000000 + n}"
    contact = Contact.objects.create(tenant=channel.tenant, phone_number=f"+{client}", first_name=f"Customer {n}")
    kept = {"whatsappsession.transcript-interactions-count": %(earlier)d}

    def session(state, days, count, assigned=None):
        interaction = Interaction.objects.create(
            channel=channel, contact=contact, client_id=client, type="Inbound", subtype="InboundNew", state=state,
            queue=%(queue)r, session_options=kept, assigned_to=assigned, ended_at=now if state == "ended" else None)
        Interaction.objects.filter(pk=interaction.pk).update(created_at=now - timedelta(days=days))
        Message.objects.bulk_create([
            Message(interaction=interaction, channel=channel, direction="inbound" if i %% 2 else "outbound",
                    text=f"message {i} of the conversation, about the bill and the meter", payload={
                        "type": "Text", "text": f"message {i}"}, status="received" if i %% 2 else "delivered")
            for i in range(count)])
        return interaction

    for days in range(%(earlier)d, 0, -1):
        session("ended", days, %(earlier_messages)d)
    current = session("active", 0, %(messages)d, assigned=agent)
    opened.append([agent.pk, Token.objects.get(user=agent).key, current.pk, contact.pk])
print("OPENED=" + json.dumps(opened))
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=50, help="agents, each with its page's stream (default 50)")
    parser.add_argument("--seconds", type=float, default=60.0, help="message load duration (default 60)")
    parser.add_argument("--rate", type=float, default=20.0, help="customer messages a second (default 20)")
    parser.add_argument("--capacity", type=int, default=5, help="interactions per agent at once (default 5)")
    parser.add_argument("--messages-per-customer", type=int, default=5, help="messages a customer writes")
    parser.add_argument("--gap", type=float, default=4.0, help="seconds between a customer's messages (default 4)")
    parser.add_argument("--timeout", type=int, default=10, help="offer_timeout_seconds of the queue")
    parser.add_argument("--idle-seconds", type=float, default=2.0, help="streams open before the load (default 2)")
    parser.add_argument("--drain", type=float, default=5.0, help="seconds after the load (default 5)")
    parser.add_argument("--conversations", type=int, default=20, help="prepared conversations (default 20)")
    parser.add_argument("--messages", type=int, default=200, help="messages of each (default 200)")
    parser.add_argument("--earlier", type=int, default=5, help="earlier interactions of its contact (default 5)")
    parser.add_argument("--earlier-messages", type=int, default=20, help="messages of each earlier one")
    parser.add_argument("--openings", type=int, default=400, help="conversations opened (default 400)")
    parser.add_argument("--concurrency", type=int, default=4, help="openings at once (default 4)")
    parser.add_argument("--redis-db", type=int, default=REDIS_DB, help=f"Redis database (default {REDIS_DB})")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per web server process")
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn",
                        help="the web server (bench/processes.py), as bench.routing")
    args = parser.parse_args()
    args.chaos, args.chaos_every = False, 0.0  # bench/routing.py's load, without its kills
    return args


async def open_conversation(port: int, token: str, interaction: str, contact: int) -> float:
    """The page's requests on opening a conversation; the seconds from the first to the last answer."""
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    connections = [AsyncConnection(port) for _ in range(2)]
    began = time.perf_counter()
    try:
        status, body = await connections[0].request("GET", f"/api/interactions/{interaction}/", b"", headers)
        if status != 200:
            raise RuntimeError(f"GET the interaction: {status} {body[:200]!r}")
        shown = json.loads(body)
        answers = await asyncio.gather(
            connections[0].request("GET", f"/api/contacts/{contact}/", b"", headers),
            connections[1].request("GET", f"/api/interactions/?contact={contact}", b"", headers),
        )
        elapsed = time.perf_counter() - began
    finally:
        for connection in connections:
            connection.close()
    for status, body in answers:
        if status != 200:
            raise RuntimeError(f"{status} {body[:200]!r}")
    if len(shown["messages"]) == 0:
        raise RuntimeError("no message in the transcript")
    return elapsed


async def see_older(port: int, token: str, interaction: str, contact: int) -> float:
    """*See older messages...*: the seconds of the history request."""
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    connection = AsyncConnection(port)
    began = time.perf_counter()
    try:
        status, body = await connection.request("GET", f"/api/interactions/{interaction}/history/", b"", headers)
        elapsed = time.perf_counter() - began
    finally:
        connection.close()
    if status != 200:
        raise RuntimeError(f"{status} {body[:200]!r}")
    if len(json.loads(body)["interactions"]) == 0:
        raise RuntimeError("no earlier interaction")
    return elapsed


async def openings(port: int, opened: list, args: argparse.Namespace, request=open_conversation) -> list[float]:
    times: list[float] = []
    queue = asyncio.Queue()
    for n in range(args.openings):
        queue.put_nowait(opened[n % len(opened)])

    async def worker():
        while not queue.empty():
            _, token, interaction, contact = queue.get_nowait()
            times.append(await request(port, token, interaction, contact))

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return times


def main() -> None:
    args = parse_args()
    with Stack(DATABASE, redis_db=args.redis_db) as stack:
        stack.env.update(DEBUG="false", SECRET_KEY="bench-workspace-" + "x" * 50,
                         ALLOWED_HOSTS="127.0.0.1,localhost", SECURE_SSL_REDIRECT="false")
        stack.prepare()
        agents = json.loads(stack.shell(SETUP % {
            "channel": CHANNEL_ID, "secret": SECRET, "queue": QUEUE, "agents": args.agents,
            "capacity": args.capacity, "timeout": args.timeout})["AGENTS"])
        opened = json.loads(stack.shell(CONVERSATIONS % {
            "channel": CHANNEL_ID, "queue": QUEUE, "conversations": min(args.conversations, args.agents),
            "earlier": args.earlier, "earlier_messages": args.earlier_messages, "messages": args.messages})["OPENED"])
        servers = Servers(stack, args)
        for name in ("gunicorn", "uvicorn", "dispatcher"):
            servers.start(name)
        bench = Bench(servers, args, agents)
        asyncio.run(bench.run(stack))
        random.shuffle(opened)
        opening = sorted(asyncio.run(openings(servers.web_port, opened, args)))
        older = sorted(asyncio.run(openings(servers.web_port, opened, args, request=see_older)))
        stack.check_alive()
        messages = sorted(bench.message_latency)
        print_figures([
            ("agents", args.agents),
            ("rate_per_second", args.rate),
            ("seconds", args.seconds),
            ("messages_measured", len(messages)),
            ("stream_reconnects", sum(agent.reconnects for agent in bench.agents)),
            ("message_p50_ms", percentile(messages, 0.50) * 1000),
            ("message_p99_ms", percentile(messages, 0.99) * 1000),
            ("conversation_messages", args.messages),
            ("earlier_interactions", args.earlier),
            ("openings", len(opening)),
            ("older_p50_ms", percentile(older, 0.50) * 1000),
            ("older_p99_ms", percentile(older, 0.99) * 1000),
            ("open_p50_ms", percentile(opening, 0.50) * 1000),
            ("open_p99_ms", percentile(opening, 0.99) * 1000),
        ])


if __name__ == "__main__":
    main()
