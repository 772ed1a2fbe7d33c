"""Benchmark: the retention purge beside inbound traffic, and the erasure of a big contact (issue 26).

    .venv/bin/python -m bench.lifecycle [--messages 10000000] [--seconds 30] [--concurrency 32]

A fresh PostgreSQL database and Redis db 10 (bench/processes.py), the SMS
webhook channel of `bench.inbound`, gunicorn. Tenant 1 keeps conversations 30
days. `--messages` messages are written with `COPY` (in conversations of
`--per-interaction` messages, each with an outbound delivery per ten
messages): half of them in conversations ended 60 days ago (older than the
retention), half in conversations ended yesterday or still open.

1. `bench.inbound`'s load alone for `--seconds`: the baseline rate and p99.
2. The same load while `manage.py purge --tenant 1` runs, from its start to
   its end: the rate and p99 beside it, and the rows the purge removed per
   second. The database's size before the purge, after it, and after a plain
   `VACUUM (ANALYZE)` (README, "Your customers' data").
3. A contact with 10,000 messages and 100 stored files is erased
   (`contact_erase`, timed inside the process).

Output: `name=value` lines; the headline `purge_rows_removed_per_second` last.
Targets of the issue: beside the purge the inbound rate loses at most 10% and
its p99 stays under 100 ms; the erasure takes under 5 s.
"""

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from bench.inbound import PATH, SETUP, Load
from bench.measure import percentile, print_figures
from bench.processes import BIN, ROOT, Stack

DATABASE = "dms_bench_lifecycle"
REDIS_DB = 10
CHANNEL_ID = "bench-sms-inbound"

RETENTION = """
from channels_app.models import Tenant
Tenant.objects.filter(pk=1).update(retention_days={"conversations": 30})
from channels_app.models import Channel
print("CHANNEL_PK=" + str(Channel.objects.get(channel_id="bench-sms-inbound").pk))
"""

BIG_CONTACT_FILES = """
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from channels_app.models import Message, MessageAttachment
messages = list(Message.objects.filter(interaction__contact__phone_number="+19990000000")
                .order_by("created_at").values_list("pk", flat=True)[:100])
MessageAttachment.objects.bulk_create([
    MessageAttachment(message_id=pk, source_url="https://files.example/p.jpg", file_name=f"photo-{n}.jpg",
                      content_type="image/jpeg", size=2048, status="stored",
                      file=default_storage.save(f"inbound/bench/{n}.jpg", ContentFile(b"x" * 2048)))
    for n, pk in enumerate(messages)])
print("FILES=" + str(MessageAttachment.objects.filter(message__interaction__contact__phone_number="+19990000000")
                     .count()))
"""

ERASE = """
import time
from django.core.files.storage import default_storage
from channels_app.models import Contact, MessageAttachment
from channels_app.services.erasure import contact_erase
contact = Contact.objects.get(phone_number="+19990000000")
names = list(MessageAttachment.objects.filter(message__interaction__contact=contact).values_list("file", flat=True))
started = time.perf_counter()
erased = contact_erase(contact=contact)
print("ERASE_SECONDS=" + str(time.perf_counter() - started))
print("ERASED_MESSAGES=" + str(erased["messages"]))
print("FILES_LEFT=" + str(sum(default_storage.exists(name) for name in names)))
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000_000, help="messages generated (default 10M)")
    parser.add_argument("--per-interaction", type=int, default=20, help="messages per conversation (default 20)")
    parser.add_argument("--seconds", type=float, default=30.0, help="baseline load window (default 30)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured load first (default 5)")
    parser.add_argument("--clients", type=int, default=2000, help="distinct customer ids of the load")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    return parser.parse_args()


def _copy(conn: psycopg.Connection, table: str, columns: list[str], rows) -> None:
    with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


MESSAGE_COLUMNS = ["id", "interaction_id", "channel_id", "direction", "text", "payload", "status", "reasons",
                   "external_id", "channel_message_id", "trace_id", "created_at", "updated_at"]
INTERACTION_COLUMNS = ["id", "channel_id", "contact_id", "client_id", "type", "subtype", "state", "queue",
                       "user_data", "terminate_after_send", "last_activity_at", "created_at", "ended_at",
                       "end_reason", "disposition", "session_options"]
CONTACT_COLUMNS = ["tenant_id", "phone_number", "client_id", "first_name", "last_name", "email", "nickname",
                   "attributes", "created_at", "updated_at", "country"]
DELIVERY_COLUMNS = ["message_id", "channel_id", "state", "attempts", "next_attempt_at", "last_error", "lease_token",
                    "has_followers", "created_at", "updated_at"]


def generate(stack: Stack, channel_pk: int, messages: int, per_interaction: int) -> None:
    """The conversations, with COPY: half ended 60 days ago, half ended yesterday or open; plus the contact
    to erase (+19990000000) with 10,000 messages."""
    now = datetime.now(UTC)
    conversations = max(messages // per_interaction, 2)
    contacts = max(conversations // 10, 1)
    with psycopg.connect(stack.dsn) as conn:
        _copy(conn, "channels_app_contact", CONTACT_COLUMNS, (
            (1, f"+1777{n:07d}", f"1777{n:07d}", "Bench", f"Customer {n}", "", "", "{}", now, now, "US")
            for n in range(contacts)))
        _copy(conn, "channels_app_contact", CONTACT_COLUMNS, [
            (1, "+19990000000", "19990000000", "Big", "Contact", "", "", "{}", now, now, "US")])
        first_contact, big_contact = conn.execute(
            "SELECT min(id), max(id) FROM channels_app_contact WHERE first_name IN ('Bench', 'Big')").fetchone()

        def interactions():
            for n in range(conversations):
                old = n % 2 == 0
                ended = now - timedelta(days=60 if old else 1)
                state, ended_at = ("ended", ended) if old or n % 4 == 1 else ("active", None)
                yield (f"b{n:015d}", channel_pk, first_contact + n % contacts, f"1777{n % contacts:07d}", "Inbound",
                       "InboundNew", state, "1:session-chat", "{}", False, ended, ended, ended_at, "", "", "{}")
            for n in range(10_000 // per_interaction + 1):
                yield (f"big{n:013d}", channel_pk, big_contact, "19990000000", "Inbound", "InboundNew", "ended",
                       "1:session-chat", "{}", False, now, now, now, "", "", "{}")

        _copy(conn, "channels_app_interaction", INTERACTION_COLUMNS, interactions())

        def rows():
            for n in range(conversations):
                at = now - timedelta(days=60 if n % 2 == 0 else 1)
                for m in range(per_interaction):
                    outbound = m % 2 == 1
                    yield (f"m{n:012d}{m:05d}", f"b{n:015d}", channel_pk, "outbound" if outbound else "inbound",
                           f"Bench message {m} of conversation {n}", "{}", "delivered" if outbound else "received",
                           "[]", "", "", "", at, at)
            for m in range(10_000):
                yield (f"big{m:015d}", f"big{m // per_interaction:013d}", channel_pk, "inbound",
                       f"Big contact message {m}", "{}", "received", "[]", "", "", "", now, now)

        _copy(conn, "channels_app_message", MESSAGE_COLUMNS, rows())

        def deliveries():
            for n in range(conversations):
                at = now - timedelta(days=60 if n % 2 == 0 else 1)
                for m in range(1, per_interaction, 10):
                    yield (f"m{n:012d}{m:05d}", channel_pk, "delivered", 1, at, "", "", False, at, at)

        _copy(conn, "channels_app_delivery", DELIVERY_COLUMNS, deliveries())
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")


async def load_phase(load: Load, args, *, seconds: float | None = None, command: list[str] | None = None,
                     env: dict | None = None) -> dict:
    """The inbound load, measured for `seconds` or for as long as `command` runs."""
    load.latencies, load.ok_in_window, load.errors = [], 0, 0
    load.measure_from, load.measure_until = time.perf_counter() + args.warmup, float("inf")
    clients = [asyncio.create_task(load.client()) for _ in range(args.concurrency)]
    await asyncio.sleep(args.warmup)
    started = time.perf_counter()
    output = b""
    if command is None:
        await asyncio.sleep(seconds)
    else:
        process = await asyncio.create_subprocess_exec(*command, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.STDOUT)
        output, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command[1:3])} failed: {output.decode(errors='replace')[-2000:]}")
    ended = time.perf_counter()
    load.measure_until = ended
    await asyncio.gather(*clients)
    latencies = sorted(load.latencies)
    return {"seconds": ended - started, "rate": load.ok_in_window / (ended - started), "errors": load.errors,
            "p99_ms": percentile(latencies, 0.99) * 1000 if latencies else float("nan"),
            "output": output.decode(errors="replace")}


def main() -> None:
    args = parse_args()
    media = tempfile.mkdtemp(prefix="dms-bench-lifecycle-media-")
    try:
        with Stack(DATABASE, redis_db=REDIS_DB) as stack:
            stack.env.update(DEBUG="false", SECRET_KEY="bench-lifecycle-" + "x" * 50, MEDIA_ROOT=media,
                             ALLOWED_HOSTS="127.0.0.1,localhost", SECURE_SSL_REDIRECT="false", LOG_LEVEL="INFO")
            stack.prepare()
            stack.shell(SETUP)
            channel_pk = int(stack.shell(RETENTION)["CHANNEL_PK"])
            began = time.perf_counter()
            generate(stack, channel_pk, args.messages, args.per_interaction)
            generated_seconds = time.perf_counter() - began
            files = int(stack.shell(BIG_CONTACT_FILES)["FILES"])
            port = stack.start_gunicorn(workers=args.workers, threads=args.threads)
            load = Load(port, argparse.Namespace(clients=args.clients, warmup=args.warmup, seconds=args.seconds,
                                                 concurrency=args.concurrency))
            load.stamp = uuid.uuid4().hex[:12]
            body, headers = load.request()
            status, answer = stack.request("POST", PATH, body, headers)
            if status != 200:
                raise RuntimeError(f"inbound message refused: {status} {answer[:500]!r}")

            baseline = asyncio.run(load_phase(load, args, seconds=args.seconds))
            messages_before = stack.sql("SELECT count(*) FROM channels_app_message")[0][0]
            size_before = stack.sql("SELECT pg_database_size(current_database())")[0][0]
            beside = asyncio.run(load_phase(load, args, command=[str(BIN / "python"), "manage.py", "purge",
                                                                 "--tenant", "1"], env=stack.env))
            size_after = stack.sql("SELECT pg_database_size(current_database())")[0][0]
            stack.sql("VACUUM (ANALYZE)")
            size_vacuumed = stack.sql("SELECT pg_database_size(current_database())")[0][0]
            removed = stack.sql("SELECT last_purge FROM channels_app_tenant WHERE id = 1")[0][0]["removed"]
            old_left = stack.sql("SELECT count(*) FROM channels_app_message m JOIN channels_app_interaction i "
                                 "ON i.id = m.interaction_id WHERE i.ended_at < now() - interval '30 days'")[0][0]
            erase = stack.shell(ERASE)
            stack.check_alive()
            print(beside["output"].strip().splitlines()[-1] if beside["output"].strip() else "", file=sys.stderr)
            rows_removed = sum(removed.values())
            print_figures([
                ("messages_generated", args.messages),
                ("generate_seconds", generated_seconds),
                ("messages_before_purge", messages_before),
                ("inbound_baseline_per_second", baseline["rate"]),
                ("inbound_baseline_p99_ms", baseline["p99_ms"]),
                ("inbound_beside_purge_per_second", beside["rate"]),
                ("inbound_beside_purge_p99_ms", beside["p99_ms"]),
                ("inbound_rate_lost_percent", (1 - beside["rate"] / baseline["rate"]) * 100 if baseline["rate"]
                 else float("nan")),
                ("inbound_errors", baseline["errors"] + beside["errors"]),
                ("purge_seconds", beside["seconds"]),
                ("purge_messages_removed", removed.get("messages", 0)),
                ("purge_rows_removed", rows_removed),
                ("old_messages_left", old_left),
                ("database_mb_before_purge", size_before / 2**20),
                ("database_mb_after_purge", size_after / 2**20),
                ("database_mb_after_vacuum", size_vacuumed / 2**20),
                ("erase_messages", int(erase["ERASED_MESSAGES"])),
                ("erase_files", files),
                ("erase_files_left_in_storage", int(erase["FILES_LEFT"])),
                ("erase_seconds", float(erase["ERASE_SECONDS"])),
                ("purge_rows_removed_per_second", rows_removed / beside["seconds"]),
            ])
    finally:
        shutil.rmtree(media, ignore_errors=True)


if __name__ == "__main__":
    main()

