"""Benchmark, in-process: what the idle sweep reads (`sessions_expire`'s statements) among many ended interactions.

    .venv/bin/python -m bench.idle_sweep [--ended 100000] [--open 2000] [--database NAME]

A fresh PostgreSQL database (default `dms_bench_idle_sweep`, dropped at the end), migrated, with bench.customer_
message's SMS channel. `--ended` ended interactions are loaded as history (bench/history.py, one message each:
ten per contact, over the past year), then `--open` customers write a message each (`customer_message_receive`:
half of them returning customers of the history, half new), and half of those conversations are made idle for an
hour (past the default `session-shutdown-timeout`, 1800 s), then the tables are analyzed. Each statement of the
sweep that compares `last_activity_at` is run under `EXPLAIN (ANALYZE, BUFFERS)` in a transaction rolled back,
and its plan printed (`# ` lines). Figures: `sweep_<n>_ended` (rows it ends), `sweep_<n>_scan_pages` (shared
buffers hit and read to find them), `sweep_<n>_pages` (the statement's, its writes included),
`sweep_<n>_index_entries` (index entries its scan read: the open interactions alone when it reads only them),
`sweep_<n>_ms`.
"""

import argparse
import json
from datetime import timedelta

from bench.customer_message import CHANNEL_ID, bench_channel, django_migrated
from bench.history import load_history
from bench.measure import print_figures


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ended", type=int, default=100_000, help="ended interactions (default 100000)")
    parser.add_argument("--open", type=int, default=2_000, help="open interactions (default 2000)")
    parser.add_argument("--database", default="dms_bench_idle_sweep", help="created, then dropped")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with django_migrated(args.database, WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8") as url:
        print_figures(measure(args, url))


def _index_entries(node: dict) -> int:
    """The index entries the index scans under a plan node returned (those their filter removed included)."""
    entries = 0
    if "Index" in node["Node Type"]:
        entries = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
    return entries + sum(_index_entries(child) for child in node.get("Plans", []))


def _pages(node: dict) -> int:
    """Shared buffers hit and read by a plan node, those under it included (EXPLAIN counts them so)."""
    return node.get("Shared Hit Blocks", 0) + node.get("Shared Read Blocks", 0)


def measure(args, url: str) -> list[tuple[str, object]]:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from channels_app.models import Interaction
    from channels_app.services.interactions import customer_message_receive, sessions_expire

    channel = bench_channel()
    figures = load_history(url, channel_id=CHANNEL_ID, messages=args.ended, per_conversation=1)
    for n in range(args.open):  # the history's customers start at +1650 200 0000; the odd ones are new
        client_id = f"1650{2000000 + n // 2}" if n % 2 == 0 else f"1652{4000000 + n}"
        with transaction.atomic():
            customer_message_receive(channel=channel, client_id=client_id, text=f"Hello {n}",
                                     channel_message_id=f"open-{n}", look_for_duplicate=False)
    opened = list(Interaction.objects.exclude(state="ended").order_by("pk").values_list("pk", flat=True))
    Interaction.objects.filter(pk__in=opened[::2]).update(last_activity_at=timezone.now() - timedelta(hours=1))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE channels_app_interaction")
    figures += [("ended_interactions", Interaction.objects.filter(state="ended").count()),
                ("open_interactions", len(opened))]

    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        figures.append(("sweep_ended_total", sessions_expire()))
        transaction.set_rollback(True)
    sweeps = [query["sql"] for query in captured.captured_queries if "last_activity_at" in query["sql"]]
    for n, sweep in enumerate(sweeps):
        with transaction.atomic(), connection.cursor() as cursor:  # each run rolled back: both see the same rows
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sweep}")
            print(f"# sweep {n}: {sweep[:400]}", *(f"#   {row[0]}" for row in cursor.fetchall()), sep="\n")
            transaction.set_rollback(True)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sweep}")
            explained = cursor.fetchone()[0]
            transaction.set_rollback(True)
        (plan,) = json.loads(explained) if isinstance(explained, str) else explained
        (scan,) = plan["Plan"]["Plans"]  # under the UPDATE: the rows it ends
        figures += [(f"sweep_{n}_ended", scan["Actual Rows"]), (f"sweep_{n}_scan_pages", _pages(scan)),
                    (f"sweep_{n}_pages", _pages(plan["Plan"])), (f"sweep_{n}_index_entries", _index_entries(scan)),
                    (f"sweep_{n}_ms", float(plan["Execution Time"]))]
    return figures


if __name__ == "__main__":
    main()
