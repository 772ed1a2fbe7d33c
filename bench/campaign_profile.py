"""In-process profile of a campaign's batches (issue 25, lever 6): no Celery worker, no web server.

A WhatsApp webhook channel pointing at a receiver on 127.0.0.1 (tests/third_party.py, a thread of this
process), the notification response of bench/campaign.py (two field codes) and a campaign of N recipients are
made in `DATABASE_URL`; the campaign is started, and `campaign_run_batch` is called here until it has handled
every recipient, as a worker's batch task would. Measured over the batches (after one warm-up batch):

* this process's CPU (time.process_time: the batch's Python, the sending threads, and the receiver's thread,
  which a real worker does not pay: `receiver_cpu_ms` estimates it apart);
* the CPU of this connection's PostgreSQL backend (/proc/<pid>/stat of pg_backend_pid(), in ticks);
* the statements per batch (a cursor wrapper: a COPY, which psycopg runs beside Django's cursor, is not counted);
* with `--profile`, cProfile's top functions by cumulative and own time.

    DATABASE_URL=postgres://... CELERY_BROKER_URL=redis://... .venv/bin/python -m bench.campaign_profile [N]

`--same-values` gives every recipient the same field values (a campaign of one rendering); by default each has
its own, as in bench/campaign.py. Prints `name=value` lines, the headline `cpu_ms_per_recipient` last.
Indicative only: other processes share the machine.
"""

import argparse
import cProfile
import io
import os
import pstats
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-campaign-profile-secret"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipients", nargs="?", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    parser.add_argument("--same-values", action="store_true", help="every recipient with the same field values")
    return parser.parse_args()


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ.setdefault("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def backend_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def thread_cpu(thread: threading.Thread) -> float:
    with open(f"/proc/self/task/{thread.native_id}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def make_campaign(receiver, count: int, same_values: bool) -> int:
    from channels_app.models import Channel, StandardResponse, Tenant
    from channels_app.services.campaigns import campaign_create, campaign_transition
    from channels_app.services.channels import channel_save

    suffix = str(time.time_ns())
    tenant, _ = Tenant.objects.get_or_create(id=1, defaults={"name": "Environment"})
    channel = channel_save(channel=Channel(
        channel_id=f"profile-{suffix}", name="Profile", tenant=tenant, media_type="whatsapp", transport="webhook",
        business_id="19255550100", webhook_url=receiver.url, secret=SECRET, retry_timeout_seconds=300,
        retry_attempts=3), endpoints=["1:session-chat"], inbound_route_by_call="1:session-chat")
    response = StandardResponse.objects.create(
        tenant=tenant, name="Profile notice", content_type="notification", language="en",
        body="Hello {{1}}, your code is {{2}}.",
        structured={"template": {"name": "bench_notice", "id": "bench_notice_1", "language": "en"},
                    "parameters": {"1": "<$Contact.FirstName$>", "2": "<$CustomProperties.Code$>"}})
    rows = [{"client_id": f"1557{n:07d}", "Contact": {"FirstName": "Ann" if same_values else f"Customer{n}"},
             "CustomProperties": {"Code": "C1" if same_values else f"C{n:07d}"}} for n in range(count)]
    campaign, report = campaign_create(name=f"Profile {suffix}", channel=channel, standard_response=response,
                                       rows=rows)
    assert report.accepted == count, report.as_dict()
    campaign_transition(campaign_id=campaign.pk, action="start")
    return campaign.pk


def main() -> None:
    args = parse_args()
    setup_django()
    from django.db import connection

    from channels_app.services.campaigns import campaign_run_batch
    from tests.third_party import Receiver

    receiver = Receiver(SECRET)
    try:
        campaign_id = make_campaign(receiver, args.recipients + 200, args.same_values)
        campaign_run_batch(campaign_id=campaign_id)  # warm-up: imports, caches, connections
        statements = [0]

        def count(execute, sql, params, many, context):
            statements[0] += 1
            return execute(sql, params, many, context)

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        profiler = cProfile.Profile() if args.profile else None
        handled, batches = 0, 0
        receiver_before = thread_cpu(receiver.thread)
        postgres_before, cpu_before, wall = backend_cpu(backend), time.process_time(), time.monotonic()
        with connection.execute_wrapper(count):
            if profiler:
                profiler.enable()
            while handled < args.recipients:
                done = campaign_run_batch(campaign_id=campaign_id)
                if not done:
                    break
                handled, batches = handled + done, batches + 1
            if profiler:
                profiler.disable()
        cpu, wall = time.process_time() - cpu_before, time.monotonic() - wall
        postgres = backend_cpu(backend) - postgres_before
        receiver_cpu = thread_cpu(receiver.thread) - receiver_before
        if receiver.distinct() < handled:
            raise SystemExit(f"the receiver has {receiver.distinct()} posts of {handled}")
    finally:
        receiver.stop()
    if profiler:
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(35)
            print(out.getvalue())
    per = 1000 / max(handled, 1)
    for name, value in [("recipients", handled), ("batches", batches), ("seconds", wall),
                        ("statements_per_batch", statements[0] / max(batches, 1)),
                        ("receiver_cpu_ms", receiver_cpu * per), ("postgres_cpu_ms", postgres * per),
                        ("worker_cpu_ms", (cpu - receiver_cpu) * per),
                        ("cpu_ms_per_recipient", (cpu - receiver_cpu + postgres) * per)]:
        print(f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}", flush=True)


if __name__ == "__main__":
    main()
