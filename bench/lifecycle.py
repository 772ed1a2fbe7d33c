"""Benchmark: the retention purge beside inbound traffic, and the erasure of a big contact (issue 26).

    .venv/bin/python -m bench.lifecycle [--messages 10000000] [--seconds 30] [--rate 100]

A fresh PostgreSQL database and Redis db 10 (bench/processes.py; `--database`,
`--redis-db` to run beside another copy), the SMS
webhook channel of `bench.inbound`, gunicorn. Tenant 1 keeps conversations 30
days. `--messages` messages are written with `COPY` (in conversations of
`--per-interaction` messages, each with an outbound delivery per ten
messages): half of them in conversations ended 60 days ago (older than the
retention), half in conversations ended yesterday or still open.

The load is `bench.inbound`'s signed customer messages offered at a fixed
`--rate` (default 100/s, about 40% of what the 2-core machine serves when
saturated; a closed loop of 32 clients saturates it and its p99 alone is
~270 ms of queueing, which would leave the 100 ms target nothing to say
about the purge), each latency counted from the moment the message was due.

1. The load alone for `--seconds`: the baseline rate and p99.
2. The same load while `manage.py purge --tenant 1` runs (with
   `PURGE_PAUSE_RATIO` set to `--pause-ratio` when given), from its start to
   its end: the rate and p99 beside it, and the rows the purge removed per
   second. The database's size before the purge, after it, and after a plain
   `VACUUM (ANALYZE)` (README, "Your customers' data").
3. A contact with 10,000 messages and 100 stored files is erased
   (`contact_erase`, timed inside the process).

The rows are written by COPY (text format, in blocks) with the loaded tables'
secondary indexes and foreign keys dropped and made again afterwards
(PostgreSQL's "Populating a Database"): an index insertion and a trigger's
query per row were most of the generation's time.

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

from bench.clients import AsyncConnection
from bench.history import (
    CONTACT_COLUMNS,
    DELIVERY_COLUMNS,
    INTERACTION_COLUMNS,
    MESSAGE_COLUMNS,
    copy_lines,
    without_secondary_indexes_and_foreign_keys,
)
from bench.inbound import PATH, SETUP, Load
from bench.measure import percentile, print_figures
from bench.processes import BIN, ROOT, Stack

DATABASE = "dms_bench_lifecycle"
REDIS_DB = 10
# Inbound messages offered a second: ~40% of what bench.inbound's 32 closed-loop clients get alone on the
# 2-core machine (~240/s, where its p99 is ~270 ms: queueing, the machine saturated). At a rate the
# machine serves, the p99 measures the server rather than the queue, and the purge's cost shows as a lower
# rate accepted or a longer p99.
RATE = 100.0
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
    parser.add_argument("--rate", type=float, default=RATE, help=f"inbound messages a second (default {RATE:g})")
    parser.add_argument("--concurrency", type=int, default=32, help="connections at most (default 32)")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured load first (default 5)")
    parser.add_argument("--clients", type=int, default=2000, help="distinct customer ids of the load")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--pause-ratio", type=float, default=None,
                        help="the purge's PURGE_PAUSE_RATIO (default: the setting's own default)")
    parser.add_argument("--database", default=DATABASE, help=f"the stack's database (default {DATABASE})")
    parser.add_argument("--redis-db", type=int, default=REDIS_DB, help=f"the stack's Redis db (default {REDIS_DB})")
    return parser.parse_args()


def generate(stack: Stack, channel_pk: int, messages: int, per_interaction: int) -> None:
    """The conversations, with COPY: half ended 60 days ago, half ended yesterday or open; plus the contact
    to erase (+19990000000) with 10,000 messages."""
    now = datetime.now(UTC)
    old, recent, now_at = now - timedelta(days=60), now - timedelta(days=1), now.isoformat()

    def at(n: int) -> str:
        """Conversation n's time: 60 days ago (even n) or yesterday (odd n), a millisecond apart from the
        next, as a real tenant's are (never the same instant for half of them)."""
        return ((old if n % 2 == 0 else recent) + timedelta(milliseconds=n)).isoformat()

    conversations = max(messages // per_interaction, 2)
    contacts = max(conversations // 10, 1)
    with psycopg.connect(stack.dsn) as conn:
        make_again = without_secondary_indexes_and_foreign_keys(conn)
        copy_lines(conn, "channels_app_contact", CONTACT_COLUMNS, (
            f"1\t+1777{n:07d}\t1777{n:07d}\tBench\tCustomer {n}\t\t\t{{}}\t{now_at}\t{now_at}\tUS\n"
            for n in range(contacts)))
        copy_lines(conn, "channels_app_contact", CONTACT_COLUMNS, [
            f"1\t+19990000000\t19990000000\tBig\tContact\t\t\t{{}}\t{now_at}\t{now_at}\tUS\n"])
        first_contact, big_contact = conn.execute(
            "SELECT min(id), max(id) FROM channels_app_contact WHERE first_name IN ('Bench', 'Big')").fetchone()

        def interactions():
            for n in range(conversations):
                moment = at(n)
                state, ended_at = ("ended", moment) if n % 2 == 0 or n % 4 == 1 else ("active", "\\N")
                yield (f"b{n:015d}\t{channel_pk}\t{first_contact + n % contacts}\t1777{n % contacts:07d}\tInbound\t"
                       f"InboundNew\t{state}\t1:session-chat\t{{}}\tf\t{moment}\t{moment}\t{ended_at}\t\t\t{{}}\n")
            for n in range(10_000 // per_interaction + 1):
                yield (f"big{n:013d}\t{channel_pk}\t{big_contact}\t19990000000\tInbound\tInboundNew\tended\t"
                       f"1:session-chat\t{{}}\tf\t{now_at}\t{now_at}\t{now_at}\t\t\t{{}}\n")

        copy_lines(conn, "channels_app_interaction", INTERACTION_COLUMNS, interactions())

        def rows():
            for n in range(conversations):
                moment = at(n)
                for m in range(per_interaction):
                    kind = "outbound\t" if m % 2 else "inbound\t"
                    status = "delivered" if m % 2 else "received"
                    yield (f"m{n:012d}{m:05d}\tb{n:015d}\t{channel_pk}\t{kind}Bench message {m} of conversation {n}"
                           f"\t{{}}\t{status}\t[]\t\t\t\t{moment}\t{moment}\n")
            for m in range(10_000):
                yield (f"big{m:015d}\tbig{m // per_interaction:013d}\t{channel_pk}\tinbound\tBig contact message {m}"
                       f"\t{{}}\treceived\t[]\t\t\t\t{now_at}\t{now_at}\n")

        copy_lines(conn, "channels_app_message", MESSAGE_COLUMNS, rows())

        def deliveries():
            for n in range(conversations):
                moment = at(n)
                for m in range(1, per_interaction, 10):
                    yield f"m{n:012d}{m:05d}\t{channel_pk}\tdelivered\t1\t{moment}\t\t\tf\t{moment}\t{moment}\n"

        copy_lines(conn, "channels_app_delivery", DELIVERY_COLUMNS, deliveries())
        make_again()
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")


class SteadyLoad:
    """`bench.inbound`'s signed customer messages at a fixed rate (request i due at t0 + i / rate, never in
    bursts), on up to `concurrency` keep-alive connections. A request's latency counts from the moment it
    was due, so time spent waiting for a free connection (the server falling behind) is in the p99; the rate
    is the 200 answers that came back inside the window, so a server falling behind shows there too."""

    def __init__(self, load: Load, rate: float, concurrency: int):
        self.load, self.rate = load, rate
        self.connections = asyncio.Queue()
        for _ in range(concurrency):
            self.connections.put_nowait(AsyncConnection(load.port))
        self.answers: list[tuple[float, float, bool]] = []  # (due, finished, 200)

    async def one(self, due: float) -> None:
        conn = await self.connections.get()
        body, headers = self.load.request()
        try:
            status, answer = await conn.request("POST", PATH, body, headers)
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            status, answer = None, repr(error).encode()
        self.answers.append((due, time.perf_counter(), status == 200))
        self.connections.put_nowait(conn)
        if status != 200 and len(self.load.error_samples) < 3:
            self.load.error_samples.append(f"{status}: {answer[:300].decode(errors='replace')}")

    async def run(self, until, warmup: float) -> dict:
        """Send until `until()` says stop (checked after `warmup`); the figures of the window between."""
        began = time.perf_counter()
        start = began + warmup
        tasks, number = set(), 0
        while True:
            due = began + number / self.rate
            now = time.perf_counter()
            if now >= start and until():
                end = now
                break
            if due > now:
                await asyncio.sleep(due - now)
            task = asyncio.create_task(self.one(due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            number += 1
        await asyncio.gather(*tasks)
        while not self.connections.empty():
            self.connections.get_nowait().close()
        latencies = sorted(finished - due for due, finished, _ in self.answers if start <= due < end)
        return {"seconds": end - start,
                "rate": sum(ok and start <= finished <= end for _, finished, ok in self.answers) / (end - start),
                "errors": sum(not ok for due, _, ok in self.answers if start <= due < end),
                "p99_ms": percentile(latencies, 0.99) * 1000 if latencies else float("nan")}


async def load_phase(load: Load, args, *, seconds: float | None = None, command: list[str] | None = None,
                     env: dict | None = None) -> dict:
    """The inbound load at `--rate`, measured for `seconds` or for as long as `command` runs (started when
    the warm-up ends)."""
    steady = SteadyLoad(load, args.rate, args.concurrency)
    output, process = b"", None
    if command is None:
        ends = time.perf_counter() + args.warmup + seconds
        figures = await steady.run(lambda: time.perf_counter() >= ends, args.warmup)
    else:
        async def purge():
            nonlocal process, output
            await asyncio.sleep(args.warmup)
            process = await asyncio.create_subprocess_exec(
                *command, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            output, _ = await process.communicate()

        running = asyncio.create_task(purge())
        figures = await steady.run(running.done, args.warmup)
        await running
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command[1:3])} failed: {output.decode(errors='replace')[-2000:]}")
    return {**figures, "output": output.decode(errors="replace")}


def main() -> None:
    args = parse_args()
    media = tempfile.mkdtemp(prefix="dms-bench-lifecycle-media-")
    try:
        with Stack(args.database, redis_db=args.redis_db) as stack:
            stack.env.update(DEBUG="false", SECRET_KEY="bench-lifecycle-" + "x" * 50, MEDIA_ROOT=media,
                             ALLOWED_HOSTS="127.0.0.1,localhost", SECURE_SSL_REDIRECT="false", LOG_LEVEL="INFO")
            if args.pause_ratio is not None:
                stack.env["PURGE_PAUSE_RATIO"] = str(args.pause_ratio)
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
                ("inbound_offered_per_second", args.rate),
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
                ("purge_messages_removed_per_second", removed.get("messages", 0) / beside["seconds"]),
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

