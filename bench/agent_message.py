"""Benchmark, in-process: the statements and the CPU of an agent's message and of its webhook (issue 25).

    .venv/bin/python -m bench.agent_message [--messages 1000] [--database NAME] [--profile] [--show]

A fresh PostgreSQL database (default `dms_bench_agent_message`, dropped at the end), migrated, with a webhook
channel routed to `1:session-chat` whose webhook is a receiver (tests/third_party.py) in a process of its own on
127.0.0.1, so that its CPU is not this process's. Two halves, one after the other:

* web: `POST /api/interactions/{id}/messages/` with a text and a superuser's token, Django's WSGI handler called
  in this process (the lean path, as bench.hot_paths_profile calls it), on two interactions opened by a customer
  message: `outside` (a queue routed outside: nobody holds it) and `held` (a queue routed by the server, the
  interaction assigned to the agent: the message is also an event on the agent's stream);
* dispatcher: the deliveries those messages left, sent by `Dispatcher.drain()` in this process (claim, sign,
  POST over a kept-alive connection, outcome recorded) in batches of `--batch` (the claim limit).

Figures: `<case>_statements` (statements per message, counted by an execute wrapper over 100; BEGIN and COMMIT not
counted), `<case>_cpu_ms_per_message` (this process, time.process_time), `<case>_postgres_cpu_ms_per_message`
(the connection's backend, from /proc); `dispatcher_statements_per_delivery`, `dispatcher_cpu_ms_per_delivery`
(this process: its send threads included) and `dispatcher_postgres_cpu_ms_per_delivery`. `--profile` prints
cProfile's top functions of each half: the web's over `--messages` more messages of each case, sent after the timed
ones (the figures are not taken under the profiler), then the dispatcher's. Same machine, shared: the CPU figures
are indicative.
"""

import argparse
import cProfile
import io
import json
import pstats
import subprocess
import sys
import time

from bench.customer_message import django_migrated
from bench.hot_paths_profile import Caller
from bench.measure import plans_printed, print_figures, proc_stat

CHANNEL_ID = "bench-agent-message"
SECRET = "bench-agent-message-secret"
COUNTED = 100
RECEIVER = """
import sys, threading
from tests.third_party import Receiver
receiver = Receiver(sys.argv[1])
print(receiver.port, flush=True)
sys.stdin.read()
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="timed messages per case (default 1000)")
    parser.add_argument("--batch", type=int, default=8, help="the dispatcher's claim limit (default 8)")
    parser.add_argument("--database", default="dms_bench_agent_message", help="created, then dropped")
    parser.add_argument("--profile", action="store_true", help="cProfile the web's half and the dispatcher's")
    parser.add_argument("--show", action="store_true", help="print the statements of one message of each case")
    parser.add_argument("--plans", action="store_true", help="print the plan of each statement of one more "
                        "message of each case, and of the dispatcher's (auto_explain)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, SECRET], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    try:
        port = int(receiver.stdout.readline())
        # CONN_MAX_AGE: one backend throughout, its CPU read from /proc.
        with django_migrated(args.database, WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8", CONN_MAX_AGE="86400"):
            print_figures(measure(args, f"http://127.0.0.1:{port}/hook"))
    finally:
        receiver.stdin.close()
        receiver.terminate()
        receiver.wait(timeout=10)


def _backend() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


class Statements:
    """Statements sent on the connection (a Django request empties the query log: counted as they go)."""

    def __init__(self):
        self.count, self.last = 0, []

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        self.last = [*self.last[-9:], sql]
        return execute(sql, params, many, context)


def prepare(webhook_url: str) -> tuple[dict, dict]:
    """The channel, the agent and the two interactions; the request headers and the interactions' ids."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from channels_app.models import Channel, Interaction, Queue, QueueRouting, Tenant
    from channels_app.services import routing
    from channels_app.services.channels import channel_save
    from channels_app.services.interactions import customer_message_receive

    tenant, _ = Tenant.objects.get_or_create(pk=1, defaults={"name": "Bench"})
    outside = channel_save(
        channel=Channel(channel_id=CHANNEL_ID, name="Bench agent", tenant=tenant, media_type="sms",
                        transport="webhook", business_id="0123456789", webhook_url=webhook_url, secret=SECRET),
        inbound_route_by_call="1:session-chat",
    )
    held_channel = channel_save(
        channel=Channel(channel_id=f"{CHANNEL_ID}-held", name="Bench agent held", tenant=tenant, media_type="sms",
                        transport="webhook", business_id="0123456780", webhook_url=webhook_url, secret=SECRET),
        inbound_route_by_call="1:bench-workspace",
    )
    agent = get_user_model().objects.create_superuser("bench-agent", "", None)
    routing.queue_save(queue=Queue(tenant=tenant, key="1:bench-workspace", routing=QueueRouting.WORKSPACE),
                       agents=[agent])
    token = Token.objects.create(user=agent)
    ids = {}
    for name, channel in (("outside", outside), ("held", held_channel)):
        message, _ = customer_message_receive(channel=channel, client_id=f"1650{len(ids):07d}", text="Hello")
        ids[name] = message.interaction_id
    Interaction.objects.filter(pk=ids["held"]).update(assigned_to=agent, state="active")
    return {"Authorization": f"Token {token.key}", "Content-Type": "application/json"}, ids


def print_profile(profiler: cProfile.Profile, title: str) -> None:
    """cProfile's top functions, by cumulative and by own time, as comments (the figures stay parseable)."""
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(30)
    print(f"# {title}", *(f"# {line}" for line in out.getvalue().splitlines()), sep="\n")


def measure(args, webhook_url: str) -> list[tuple[str, object]]:
    from django.db import connection

    from channels_app.dispatcher import Dispatcher
    from channels_app.models import Delivery, DeliveryState

    call = Caller()
    headers, ids = prepare(webhook_url)
    sequence = iter(range(10**9))

    def send(case: str) -> None:
        body = json.dumps({"text": f"Agent answer {next(sequence)}"}).encode()
        status, content = call("POST", f"/api/interactions/{ids[case]}/messages/", body, headers)
        if status != 202:
            raise RuntimeError(f"{case}: answered {status}: {content[:300]!r}")

    backend = _backend()
    for case in ids:  # a warm process: caches, compiled statements
        for _ in range(20):
            send(case)
    figures: list[tuple[str, object]] = []
    for case in ids:
        counted = Statements()
        with connection.execute_wrapper(counted):
            for _ in range(COUNTED):
                send(case)
        if args.show:
            print(f"# {case}:", *(f"#   {sql[:400]}" for sql in counted.last[-(counted.count // COUNTED):]), sep="\n")
        started, backend_started = time.process_time(), proc_stat(backend)[1]
        for _ in range(args.messages):
            send(case)
        cpu, backend_cpu = time.process_time() - started, proc_stat(backend)[1] - backend_started
        figures += [(f"{case}_statements", f"{counted.count / COUNTED:g}"),
                    (f"{case}_cpu_ms_per_message", f"{1000 * cpu / args.messages:.2f}"),
                    (f"{case}_postgres_cpu_ms_per_message", f"{1000 * backend_cpu / args.messages:.2f}")]
        if args.plans:
            with plans_printed(connection, case):
                send(case)
    if args.profile:
        web = cProfile.Profile(time.process_time)
        web.enable()
        for case in ids:
            for _ in range(args.messages):
                send(case)
        web.disable()
        print_profile(web, f"web half: {args.messages} messages of each case")

    dispatcher = Dispatcher(threads=1, claim_limit=args.batch)
    pending = Delivery.objects.filter(state=DeliveryState.PENDING).count()
    backend = _backend()
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    counted = Statements()
    with connection.execute_wrapper(counted):
        started, backend_started = time.process_time(), proc_stat(backend)[1]
        if profiler:
            profiler.enable()
        sent = dispatcher.drain()
        if profiler:
            profiler.disable()
        cpu, backend_cpu = time.process_time() - started, proc_stat(backend)[1] - backend_started
    delivered = Delivery.objects.filter(state=DeliveryState.DELIVERED).count()
    if sent != pending or delivered != pending:
        raise RuntimeError(f"{pending} deliveries pending, {sent} attempted, {delivered} delivered")
    if profiler:
        print_profile(profiler, f"dispatcher half: {sent} deliveries")
    if args.plans:
        for case in ids:
            send(case)
        with plans_printed(connection, "dispatcher"):
            dispatcher.drain()
    figures += [("deliveries", sent), ("batch", args.batch),
                ("dispatcher_statements_per_delivery", f"{counted.count / sent:.2f}"),
                ("dispatcher_postgres_cpu_ms_per_delivery", f"{1000 * backend_cpu / sent:.2f}"),
                ("dispatcher_cpu_ms_per_delivery", f"{1000 * cpu / sent:.2f}")]
    return figures


if __name__ == "__main__":
    main()
