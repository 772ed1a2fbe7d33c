"""Benchmark: the reports' answer times over 10,000,000 messages and a campaign of 1,000,000 (issue 27).

    .venv/bin/python -m bench.reports [--messages 10000000] [--recipients 1000000] [--requests 200]

A fresh PostgreSQL database and Redis db 11 (bench/processes.py), the SMS webhook channel of
`bench.inbound`, gunicorn. `--messages` messages are written with `COPY` by `bench.lifecycle`'s generator
(conversations of `--per-interaction` messages, half of them 60 days old, half yesterday or open), and a
campaign of `--recipients` recipients (COPY, rows without a message yet). Then the fold
(services/rollups.py) reads everything once (the figures' first fold, timed inside its process, and then a
fold with nothing new), and each report is asked `--requests` times, one
after another, over the last 7 days (the default period): conversations by queue, channel, agent and
disposition, deliveries by channel, and `/api/reports/campaigns/{id}/` (reported when it answers 200).

Output: `name=value` lines (p50 and p99 of each, in ms); the headline `reports_worst_p99_ms` last.
Target of the issue: each report within 200 ms p99.
"""

import argparse
import time
from datetime import UTC, datetime

import psycopg

from bench.inbound import SETUP
from bench.lifecycle import CHANNEL_ID, generate
from bench.measure import percentile, print_figures
from bench.processes import Stack

DATABASE = "dms_bench_reports"
REDIS_DB = 11

CAMPAIGN = f"""
from channels_app.models import Campaign, Channel, StandardResponse, Tenant
channel = Channel.objects.get(channel_id={CHANNEL_ID!r})
response = StandardResponse.objects.create(tenant=Tenant.objects.get(pk=1), name="Bench report", body="Hello")
campaign = Campaign.objects.create(name="Bench report", channel=channel, standard_response=response,
                                   state="completed")
print("CAMPAIGN=" + str(campaign.pk))
print("CHANNEL_PK=" + str(channel.pk))
"""

FOLD = """
import time
from channels_app.services.rollups import reports_fold
began = time.perf_counter()
changed = reports_fold()
print("FOLD_SECONDS=" + str(time.perf_counter() - began))
print("FOLDED=" + str(changed))
"""

REPORTS = [
    ("conversations_by_queue", "/api/reports/conversations/?group_by=queue"),
    ("conversations_by_channel", "/api/reports/conversations/?group_by=channel"),
    ("conversations_by_agent", "/api/reports/conversations/?group_by=agent"),
    ("conversations_by_disposition", "/api/reports/conversations/?group_by=disposition"),
    ("deliveries_by_channel", "/api/reports/deliveries/?group_by=channel"),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000_000, help="messages generated (default 10M)")
    parser.add_argument("--per-interaction", type=int, default=20, help="messages per conversation (default 20)")
    parser.add_argument("--recipients", type=int, default=1_000_000, help="campaign recipients (default 1M)")
    parser.add_argument("--requests", type=int, default=200, help="requests per report (default 200)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=2, help="gunicorn threads per worker")
    return parser.parse_args()


def campaign_recipients(stack: Stack, campaign: int, count: int) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(stack.dsn) as conn:
        columns = "campaign_id, row_number, client_id, contact_fields, custom_properties, error"
        with conn.cursor().copy(f"COPY channels_app_campaignrecipient ({columns}) FROM STDIN") as copy:
            for n in range(count):
                copy.write_row((campaign, n + 1, f"1888{n:07d}", "{}", "{}", ""))
        conn.execute("UPDATE channels_app_campaign SET started_at = %s WHERE id = %s", (now, campaign))
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")


def timed(stack: Stack, path: str, requests: int, headers: dict) -> tuple[int, list[float]]:
    status, _ = stack.request("GET", path, headers=headers)  # warm: the first request loads the code
    latencies = []
    for _ in range(requests if status == 200 else 0):
        started = time.perf_counter()
        status, body = stack.request("GET", path, headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"{path}: {status} {body[:300]!r}")
    return status, sorted(latencies)


def main() -> None:
    args = parse_args()
    with Stack(DATABASE, redis_db=REDIS_DB) as stack:
        stack.env.update(DEBUG="false", SECRET_KEY="bench-reports-" + "x" * 50,
                         ALLOWED_HOSTS="127.0.0.1,localhost", SECURE_SSL_REDIRECT="false", LOG_LEVEL="WARNING")
        stack.prepare()
        stack.shell(SETUP)
        made = stack.shell(CAMPAIGN)
        campaign, channel_pk = int(made["CAMPAIGN"]), int(made["CHANNEL_PK"])
        began = time.perf_counter()
        generate(stack, channel_pk, args.messages, args.per_interaction)
        campaign_recipients(stack, campaign, args.recipients)
        generated_seconds = time.perf_counter() - began
        first = stack.shell(FOLD)  # timed inside the process: the fold, not Django's start
        idle = stack.shell(FOLD)  # nothing changed: what the periodic fold costs when idle
        stack.start_gunicorn(workers=args.workers, threads=args.threads)
        headers = {"Authorization": f"Token {stack.token}"}
        figures = [("messages_generated", args.messages), ("recipients_generated", args.recipients),
                   ("generate_seconds", generated_seconds),
                   ("first_fold_conversations", int(first["FOLDED"])),
                   ("first_fold_seconds", float(first["FOLD_SECONDS"])),
                   ("idle_fold_seconds", float(idle["FOLD_SECONDS"]))]
        worst = 0.0
        for name, path in [*REPORTS, ("campaign", f"/api/reports/campaigns/{campaign}/")]:
            status, latencies = timed(stack, path, args.requests, headers)
            if status != 200:
                figures.append((f"{name}_status", status))  # h5's campaign report not merged yet
                continue
            p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
            figures += [(f"{name}_p50_ms", p50), (f"{name}_p99_ms", p99)]
            worst = max(worst, p99)
        stack.check_alive()
        print_figures([*figures, ("reports_worst_p99_ms", worst)])


if __name__ == "__main__":
    main()
