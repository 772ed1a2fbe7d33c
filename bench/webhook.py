"""Benchmark: agent message accepted by the API -> webhook at the third party.

    .venv/bin/python -m bench.webhook [--seconds 30] [--rate 100] [--history 10000000]

A fresh PostgreSQL database and Redis db 7 (bench/processes.py), gunicorn, the
dispatcher that sends the messages (channels_app/dispatcher.py) and one Celery
worker (retries only). Inside this process a webhook receiver on 127.0.0.1 (asyncio,
keep-alive, its own thread) answers every POST with 200 {"messageId": ...}
and notes when each `webhook-id` (our message id) arrived. An SMS webhook
channel points at it (SMS: no WhatsApp 24-hour rule); one signed inbound
customer message opens the interaction (with `--history N`, after N messages of a
tenant's past were stored on that channel: bench/history.py). Then agent messages are POSTed to
`/api/interactions/{id}/messages/` with a token at a steady `--rate` per second
(a scheduler loop: request i starts at t0 + i / rate, on a pool of
keep-alive connections, never in bursts) for `--seconds`, noting when each
202 came back. Afterwards the receiver is polled for up to `--drain` seconds
(default 30) until every accepted message has arrived.

Latency is (webhook received - 202 received); both clocks are this process's
monotonic clock. Output: `name=value` lines; sent (messages accepted with
202), api_errors, the API's own latency and `api_accepted_per_second`,
received, lost (accepted but not received by the drain deadline), duplicates
(a webhook-id seen twice), the CPU each part used per message, the resident
memory of each started process over sending and drain (`peak_rss_mb_<role>`,
`rss_growth_mb_<role>`: bench/measure.py MemoryMeter), the latency
percentiles, `request_to_webhook_*` (from the start of the API request, what
an agent waits end to end), and the headline `webhook_p50_ms` last
(`webhook_p99_ms` just before it).

Read the headline together with `api_accepted_per_second`: when the API does
not keep up with `--rate`, requests queue in gunicorn, each 202 comes back
late, and (webhook - 202) stays small although messages are seconds late.
`--interactions N` spreads the messages over N interactions (the API locks the
interaction's row for each message, so one interaction serializes them).
Targets of the issue: p50 under 30 ms and p99 under 250 ms at 100 messages/s.
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import time

from bench.clients import AsyncConnection
from bench.history import add_history_argument, load_history
from bench.measure import percentile, print_figures
from bench.processes import Stack, add_server_argument
from tests.third_party import Receiver

DATABASE = "dms_bench_webhook"
REDIS_DB = 7
CHANNEL_ID = "bench-sms-webhook"
SECRET = "bench-webhook-secret"

# Gunicorn 2 x 4, as `make run`: the API's CPU, not its threads, is the limit.
# The messages go out through the dispatcher; Celery only has the retries.
GUNICORN_WORKERS, GUNICORN_THREADS = 2, 4
CELERY_WORKERS, CELERY_CONCURRENCY = 1, 1

# The SMS webhook channel (SMS: no WhatsApp 24-hour rule), through `manage.py shell -c` (also bench/mixed.py's).
CHANNEL_SNIPPET = """
from channels_app.models import Channel, Tenant
from channels_app.services.channels import channel_save
channel_save(
    channel=Channel(channel_id={channel_id!r}, name="Bench SMS", tenant=Tenant.objects.get(pk=1), media_type="sms",
                    transport="webhook", business_id="0123456789", webhook_url={url!r}, secret={secret!r}),
    inbound_route_by_call="1:session-chat",
)
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="sending duration (default 30)")
    parser.add_argument("--rate", type=float, default=100.0, help="agent messages per second (default 100)")
    parser.add_argument("--drain", type=float, default=30.0, help="max seconds to wait for webhooks (default 30)")
    parser.add_argument("--interactions", type=int, default=1,
                        help="open interactions the messages go to, round-robin (default 1)")
    parser.add_argument("--celery-workers", type=int, default=CELERY_WORKERS)
    parser.add_argument("--celery-concurrency", type=int, default=CELERY_CONCURRENCY)
    parser.add_argument("--celery-pool", default="prefork", choices=["prefork", "threads", "solo"])
    parser.add_argument("--database", default=DATABASE, help=f"the stack's database (default {DATABASE})")
    parser.add_argument("--redis-db", type=int, default=REDIS_DB, help=f"the stack's Redis db (default {REDIS_DB})")
    add_server_argument(parser)
    add_history_argument(parser)
    return parser.parse_args()


class Sender:
    """Agent messages at a steady rate, each on a free keep-alive connection."""

    def __init__(self, port: int, token: str, interaction_ids: list[str], args: argparse.Namespace):
        self.port, self.args = port, args
        self.paths = [f"/api/interactions/{interaction_id}/messages/" for interaction_id in interaction_ids]
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        self.idle: list[AsyncConnection] = []
        self.accepted: dict[str, float] = {}  # message id -> 202 received (monotonic seconds)
        self.started: dict[str, float] = {}  # message id -> its request's start
        self.began = self.finished = 0.0
        self.api_latencies: list[float] = []
        self.errors = 0
        self.late_starts = 0  # requests started more than 10 ms after their slot
        self.error_samples: list[str] = []

    async def one(self, number: int) -> None:
        conn = self.idle.pop() if self.idle else AsyncConnection(self.port)
        body = json.dumps({"text": f"Agent message {number}"}).encode()
        started = time.monotonic()
        try:
            status, answer = await conn.request("POST", self.paths[number % len(self.paths)], body, self.headers)
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            status, answer = None, repr(error).encode()
        finished = time.monotonic()
        self.idle.append(conn)
        self.api_latencies.append(finished - started)
        self.finished = max(self.finished, finished)
        if status == 202:
            message_id = json.loads(answer)["id"]
            self.accepted[message_id], self.started[message_id] = finished, started
        else:
            self.errors += 1
            if len(self.error_samples) < 3:
                self.error_samples.append(f"{status}: {answer[:300].decode(errors='replace')}")

    async def run(self) -> None:
        total = int(self.args.seconds * self.args.rate)
        tasks = []
        began = self.began = time.monotonic()
        for number in range(total):
            slot = began + number / self.args.rate
            delay = slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.010:
                self.late_starts += 1
            tasks.append(asyncio.create_task(self.one(number)))
        await asyncio.gather(*tasks)
        for conn in self.idle:
            conn.close()


def open_interaction(stack: Stack, client_id: str) -> str:
    """One signed inbound customer message; the id of the interaction it opened."""
    body = json.dumps({"messages": [{
        "type": "Text", "text": "Hello, I need help",
        "channel": {"messageId": f"open-{time.time_ns()}", "from": {"id": client_id, "nickname": "Bench"},
                    "to": {"id": "0123456789"}},
    }]}).encode()
    signature = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    status, answer = stack.request("POST", f"/nexus/v3/channels/{CHANNEL_ID}/messages", body,
                                   {"Content-Type": "application/json", "X-Hub-Signature": signature})
    if status != 200:
        raise RuntimeError(f"inbound message refused: {status} {answer[:500]!r}")
    status, answer = stack.request("GET", f"/api/interactions/?channel={CHANNEL_ID}&client={client_id}",
                                   headers={"Authorization": f"Token {stack.token}"})
    # The newest first; with --history the customer's ended conversations follow it.
    results = [found for found in (json.loads(answer)["results"] if status == 200 else []) if found["state"] != "ended"]
    if len(results) != 1:
        raise RuntimeError(f"expected one interaction: {status} {answer[:500]!r}")
    return results[0]["id"]


def main() -> None:
    args = parse_args()
    # Arrivals on the monotonic clock of the 202s.
    receiver = Receiver(SECRET, clock=time.monotonic)
    try:
        with Stack(args.database, redis_db=args.redis_db, server=args.server) as stack:
            # Production settings, minus the HTTPS redirect (the benchmark speaks plain HTTP).
            stack.env.update(DEBUG="false", SECRET_KEY="bench-webhook-" + "x" * 50,
                             ALLOWED_HOSTS="127.0.0.1,localhost", SECURE_SSL_REDIRECT="false")
            stack.prepare()
            stack.shell(CHANNEL_SNIPPET.format(channel_id=CHANNEL_ID, url=receiver.url, secret=SECRET))
            history = load_history(stack.dsn, channel_id=CHANNEL_ID, messages=args.history)
            stack.start_gunicorn(workers=GUNICORN_WORKERS, threads=GUNICORN_THREADS)
            stack.start_celery(count=args.celery_workers, concurrency=args.celery_concurrency, pool=args.celery_pool)
            stack.start_dispatcher()
            interactions = [open_interaction(stack, f"1650{2000000 + n}") for n in range(args.interactions)]

            sender = Sender(stack.port, stack.token, interactions, args)
            sessions_before = stack.sql("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            meter = stack.cpu_meter().start()
            memory = stack.memory_meter().start()
            asyncio.run(sender.run())
            drain_started = time.monotonic()
            while (receiver.arrived(sender.accepted) < len(sender.accepted)
                   and time.monotonic() - drain_started < args.drain):
                time.sleep(0.1)
            drain = time.monotonic() - drain_started
            cpu = meter.stop()
            memory.stop()
            sessions = stack.sql("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            stack.check_alive()
            per_message = 1000 / max(len(sender.accepted), 1)

            with receiver.lock:
                arrivals = dict(receiver.arrivals)
            latencies = sorted(arrivals[i] - accepted for i, accepted in sender.accepted.items() if i in arrivals)
            # From the start of the API request: what the agent waits, end to end.
            end_to_end = sorted(arrivals[i] - started for i, started in sender.started.items() if i in arrivals)
            api = sorted(sender.api_latencies)
            for sample in sender.error_samples:
                print(f"error sample: {sample}")
            print_figures([
                ("rate_per_second", args.rate),
                ("server", args.server),
                ("interactions", args.interactions),
                *history,
                ("seconds", args.seconds),
                ("celery", f"{args.celery_workers} workers x {args.celery_concurrency} {args.celery_pool}"),
                ("sent", len(sender.accepted)),
                ("api_errors", sender.errors),
                ("late_starts", sender.late_starts),
                ("api_p50_ms", percentile(api, 0.50) * 1000),
                ("api_p99_ms", percentile(api, 0.99) * 1000),
                # Below --rate: the API did not keep up, and the figures below are measured on an overload.
                ("api_accepted_per_second", len(sender.accepted) / max(sender.finished - sender.began, 1e-9)),
                ("received", len(latencies)),
                ("lost", len(sender.accepted) - len(latencies)),
                ("duplicates", receiver.duplicate_posts()),
                ("bad_signatures", receiver.bad_signatures),
                ("drain_seconds", drain),
                ("webhook_before_202", sum(1 for value in latencies if value < 0)),
                # CPU per message over sending and drain (robust to other load on the machine).
                ("gunicorn_cpu_ms_per_message", cpu.get("gunicorn", 0.0) * per_message),
                ("dispatcher_cpu_ms_per_message", cpu.get("dispatcher1", 0.0) * per_message),
                ("celery_cpu_ms_per_message",
                 sum(value for name, value in cpu.items() if name.startswith("celery")) * per_message),
                # Sampled once a second: misses backends of connections that live less than that.
                ("postgres_cpu_ms_per_message_sampled", cpu.get("postgres", 0.0) * per_message),
                ("cpu_ms_per_message", sum(value for name, value in cpu.items()
                                           if name not in ("other", "seconds", "benchmark")) * per_message),
                ("postgres_sessions_opened", sessions[0][0] - sessions_before[0][0]),
                # Cores busy with anything else: above ~0.2 the run is not from a quiet machine.
                ("other_cpu_cores", cpu["other"] / cpu["seconds"]),
                ("request_to_webhook_p50_ms", percentile(end_to_end, 0.50) * 1000),
                ("request_to_webhook_p99_ms", percentile(end_to_end, 0.99) * 1000),
                *memory.figures(),
                ("max_ms", (latencies[-1] if latencies else float("nan")) * 1000),
                ("p50_ms", percentile(latencies, 0.50) * 1000),
                ("p99_ms", percentile(latencies, 0.99) * 1000),
                ("webhook_p99_ms", percentile(latencies, 0.99) * 1000),
                ("webhook_p50_ms", percentile(latencies, 0.50) * 1000),
            ])
    finally:
        receiver.stop()


if __name__ == "__main__":
    main()
