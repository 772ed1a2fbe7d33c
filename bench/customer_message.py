"""Benchmark, in-process: the statements and the CPU of one customer message (issue 25, lever 3).

    .venv/bin/python -m bench.customer_message [--messages 1000] [--customers 100] [--database NAME]
        [--history N]

A fresh PostgreSQL database (default `dms_bench_customer_message`, dropped at the end), migrated, with an SMS
channel routed to `1:session-chat` (a queue routed outside, as bench.inbound's). Each message is one call of
`customer_message_receive` in a transaction of its own, as `inbound_messages_accept` makes it (its commit
counted), with bench.inbound's text and nickname, in two cases:

* `open`: a customer with an open interaction (the common case): `--customers` customers, each opened by a
  first message before the window, then `--messages` messages round-robin;
* `new`: a customer never seen (a new contact and a new interaction each): `--messages` of them.

Per case: `<case>_statements` (statements sent for one message, counted with CaptureQueriesContext over 100
messages; BEGIN and COMMIT not counted), `<case>_cpu_ms_per_message` (this process, time.process_time),
`<case>_postgres_cpu_ms_per_message` (its PostgreSQL backend, from /proc), `<case>_pages_per_message` (the
application tables' heap and index pages its statements touched, pg_statio_user_tables) and
`<case>_pages_read_per_message` (of those, the ones not in shared buffers: read from the OS), over the
`--messages` calls; `<case>_interaction_updates` and `<case>_interaction_hot_updates` (pg_stat_user_tables'
n_tup_upd and n_tup_hot_upd of the interactions over those calls: a HOT update adds no index entry); `--show` adds
the pages per relation.

`--history N` loads N messages of the channel's past first (bench/history.py, as `bench.inbound --history N`): the
`open` case's customers are among its contacts and come back with ten ended conversations each; the `new` case's
are not. The figures keep their names, to compare with a run without history.

`--plans` prints, after the timed calls of each case, the plan PostgreSQL ran for each statement of one more
message, with its actual rows and pages (auto_explain in this session: ANALYZE, BUFFERS, nested statements), as
`#` lines: the plans of the prepared statements are the ones their executions settled on (generic or custom,
`plan_cache_mode` as configured; `--generic` forces the generic plans).
Same machine, shared: the CPU figures are indicative (run twice, compare only figures of one run's conditions).
"""

import argparse
import os
import time
from contextlib import contextmanager

import psycopg

from bench.history import add_history_argument, load_history
from bench.measure import plans_printed, print_figures, proc_stat

PG = "postgres://postgres@127.0.0.1:5432"
CHANNEL_ID = "bench-sms-customer"
TEXT = "Hello, this is customer message {n}"  # bench.inbound's: longer than any opt-out keyword
COUNTED = 100


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="timed messages per case (default 1000)")
    parser.add_argument("--customers", type=int, default=100, help="customers of the `open` case (default 100)")
    parser.add_argument("--database", default="dms_bench_customer_message", help="created, then dropped")
    parser.add_argument("--show", action="store_true",
                        help="print the statements of one message of each case, and its pages per relation")
    parser.add_argument("--plans", action="store_true",
                        help="print the plan of each statement of one more message of each case (auto_explain)")
    parser.add_argument("--generic", action="store_true",
                        help="with --plans: plan_cache_mode = force_generic_plan for the whole run")
    add_history_argument(parser)
    return parser.parse_args()


@contextmanager
def fresh_database(name: str):
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG}/{name}"
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def django_migrated(name: str, **env: str):
    """`fresh_database(name)` with Django set up on it (production settings but the cache, quiet logs, `env`
    added) and migrated; yields its URL."""
    with fresh_database(name) as url:
        os.environ["DATABASE_URL"] = url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
        os.environ.setdefault("CACHE_URL", "locmemcache://")
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        os.environ.update(env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield url


def bench_channel():
    """The benchmark's SMS channel (`CHANNEL_ID`, tenant 1), routed to `1:session-chat`, a queue routed outside."""
    from channels_app.models import Channel, Tenant
    from channels_app.services.channels import channel_save

    tenant, _ = Tenant.objects.get_or_create(pk=1, defaults={"name": "Bench"})
    return channel_save(
        channel=Channel(channel_id=CHANNEL_ID, name="Bench SMS", tenant=tenant, media_type="sms",
                        transport="webhook", business_id="0123456789", webhook_url="http://127.0.0.1:9/hook"),
        inbound_route_by_call="1:session-chat",
    )


def main() -> None:
    args = parse_args()
    # The channel's webhook is never called; its address must still pass the address rules.
    with django_migrated(args.database, WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8") as url:
        print_figures(measure(args, url))


# Pages of the application's tables and their indexes (heap, index, TOAST), hit in shared buffers and read.
PAGES_SQL = """
SELECT relname, coalesce(heap_blks_hit, 0) + coalesce(toast_blks_hit, 0) + coalesce(tidx_blks_hit, 0),
       coalesce(heap_blks_read, 0) + coalesce(toast_blks_read, 0) + coalesce(tidx_blks_read, 0)
FROM pg_statio_user_tables
UNION ALL
SELECT indexrelname, idx_blks_hit, idx_blks_read FROM pg_statio_user_indexes"""


def pages(connection) -> dict[str, tuple[int, int]]:
    """Relation -> (pages hit, pages read) so far, this backend's included: its pending statistics are flushed
    first (pg_stat_force_next_flush: at its next idle moment, which ends the autocommitted statement)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute(PAGES_SQL)
        return {name: (hit, read) for name, hit, read in cursor.fetchall()}


def interaction_updates(connection) -> tuple[int, int]:
    """The interactions' row updates so far, and how many were HOT (flushed first, as `pages` does)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = %s",
                       ["channels_app_interaction"])
        return cursor.fetchone()


def pages_figures(name: str, before: dict, after: dict, messages: int, show: bool) -> list[tuple[str, object]]:
    used = {relation: (hit - before.get(relation, (0, 0))[0], read - before.get(relation, (0, 0))[1])
            for relation, (hit, read) in after.items()}
    if show:
        for relation, (hit, read) in sorted(used.items(), key=lambda item: -sum(item[1])):
            if hit + read:
                print(f"# {name} pages per message, {relation}: {hit / messages:.2f} hit, {read / messages:.2f} read")
    return [(f"{name}_pages_per_message", f"{sum(hit + read for hit, read in used.values()) / messages:.1f}"),
            (f"{name}_pages_read_per_message", f"{sum(read for _, read in used.values()) / messages:.2f}")]


def measure(args, url: str) -> list[tuple[str, object]]:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from channels_app.services.interactions import customer_message_receive

    channel = bench_channel()
    figures: list[tuple[str, object]] = load_history(url, channel_id=CHANNEL_ID, messages=args.history)
    sequence = iter(range(10**9))

    def receive(client_id: str) -> None:
        n = next(sequence)
        with transaction.atomic():
            customer_message_receive(channel=channel, client_id=client_id, text=TEXT.format(n=n),
                                     channel_message_id=f"in-{n}", nickname="Bench",
                                     look_for_duplicate=False)  # as inbound_messages_accept calls it

    def open_case(i: int) -> None:
        receive(f"1650{2000000 + i % args.customers}")

    def new_case(i: int) -> None:
        receive(f"1651{3000000 + i}")

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
        if args.generic:
            cursor.execute("SET plan_cache_mode = force_generic_plan")
            figures.append(("plan_cache_mode", "force_generic_plan"))
    for i in range(args.customers):  # the open interactions, and a warm process
        open_case(i)
    for i in range(COUNTED):
        new_case(10**6 + i)
    for name, case in (("open", open_case), ("new", new_case)):
        with CaptureQueriesContext(connection) as captured:
            for i in range(COUNTED):
                case(2 * 10**6 + i)
        statements = sum(1 for query in captured.captured_queries if query["sql"] not in ("BEGIN", "COMMIT"))
        if args.show:
            last = captured.captured_queries[-round(statements / COUNTED) - 1:]
            print(f"# {name}:", *(f"#   {query['sql'][:300]}" for query in last), sep="\n")
        pages_before, updates_before = pages(connection), interaction_updates(connection)
        started, backend_started = time.process_time(), proc_stat(backend)[1]
        for i in range(args.messages):
            case(i)
        cpu, backend_cpu = time.process_time() - started, proc_stat(backend)[1] - backend_started
        pages_used = pages_figures(name, pages_before, pages(connection), args.messages, args.show)
        updated, hot = (after - before for after, before in zip(interaction_updates(connection), updates_before,
                                                                strict=True))
        figures += [(f"{name}_statements", f"{statements / COUNTED:g}"),
                    (f"{name}_cpu_ms_per_message", f"{1000 * cpu / args.messages:.2f}"),
                    (f"{name}_postgres_cpu_ms_per_message", f"{1000 * backend_cpu / args.messages:.2f}"),
                    *pages_used, (f"{name}_interaction_updates", updated), (f"{name}_interaction_hot_updates", hot)]
        if args.plans:
            with plans_printed(connection, name):
                case(3 * 10**6)
    return figures


if __name__ == "__main__":
    main()
