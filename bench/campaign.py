"""Benchmark: a notification campaign, from `start` to every webhook received.

    .venv/bin/python -m bench.campaign [N] [--rate R] [--workers 2]

N recipients (default 2000). A fresh PostgreSQL database and Redis db 8
(bench/processes.py), gunicorn (2 workers x 4 threads, DEBUG=false unless
`--debug`) and `--workers` Celery workers (`--concurrency` children each,
default 1: one per core), the first with `--beat` so that `campaigns_tick`
and `relay_due_deliveries` run every 5 s as under `make run` (`--no-beat`
leaves them out). Inside this process a webhook receiver on 127.0.0.1
(asyncio, keep-alive, its own thread) answers every POST with 200
{"messageId": ...}, checks X-Hub-Signature and notes when each distinct
`webhook-id` arrived and how often.

First, in the same run, the receiver's own ceiling: `--ceiling-threads`
keep-alive clients in this process POST to it for `--ceiling-seconds`
(`receiver_ceiling_per_second`; clients and receiver share this process's
GIL, so the real ceiling is higher). Then, through the REST API with a token:
a WhatsApp webhook channel pointing at the receiver, a notification standard
response with two field codes (Contact.FirstName, CustomProperties.Code), and
the campaign with N recipients (`POST /api/campaigns/` as JSON, the rest in
chunks of 20,000 through `POST /api/campaigns/{id}/recipients/`; phone numbers
1555xxxxxxx), without a rate limit or with `--rate`. The clock starts with
`POST /api/campaigns/{id}/start/`; `GET /api/campaigns/{id}/` is polled every
0.5 s until pending == 0, sent + delivered + failed == total == N and the
receiver has N distinct webhook-ids, or until the deadline (default
60 s + N x 0.1 s, or 1.5 x N / rate with --rate).

While it runs, every 0.5 s: VmRSS of every process of each tree (gunicorn
master and workers, each Celery worker's main process, pool children and
beat) and the length of the Celery queue in Redis. CPU seconds (utime +
stime from /proc) are taken per group over the campaign, Redis included, and
PostgreSQL's exactly (the whole server, every backend that came and went
included: bench/measure.py), and the machine's from /proc/stat:
`cpu_cores_used_by_everything_else` high or `cpu_cores_idle` near 0 means the
machine was shared and the figures are not comparable with a quiet run.
The pages PostgreSQL touched over the campaign (pg_statio, every relation of the
application, heap, index and TOAST): `pages_per_recipient` and
`pages_read_per_recipient` (those not in shared buffers, read from the OS), and
`# pages per recipient` lines for the 15 relations that took the most: what
grows from 100,000 to 1,000,000, whatever else runs on the machine; and
`# updates per recipient` lines: each table's rows updated, and of them HOT
(no new index entry).

`--outside-window M`: M more recipients whose zone (their `Contact.timezone`)
puts them outside the campaign's send window, which is open now for the N
others (two hours around the present time, in each recipient's zone; the N
are in UTC, the M in Pacific/Kiritimati, 14 hours ahead; the rows alternate, so
the batches meet waiting recipients all along). The run ends when
the N are sent and the M still wait (`pending` M): the rate and the CPU are
the N's, to compare with a run of N alone (issue 27: "a send window with half
the audience outside it does not slow the other half").

Output: `name=value` lines, the headline `recipients_per_second` last
(N / seconds). With `--rate`: the measured rates (messages created, i.e.
invited, per the throttle; `sent_at`; receiver arrivals) against the limit.
Exit status 1 (logs kept) when the deadline passes first.
"""

import argparse
import hashlib
import hmac
import http.client
import json
import os
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import redis

from bench.clients import Api
from bench.customer_message import PAGES_SQL
from bench.measure import print_figures, tree_cpu
from bench.processes import Stack
from tests.third_party import Receiver

DATABASE = "dms_bench_campaign"
REDIS_DB = 8
CHANNEL_ID = "bench-wa-campaign"
SECRET = "bench-campaign-secret"
RESPONSE_ID = "BenchCampaign01"
BUSINESS_ID = "19255550100"
CHUNK = 20_000  # recipients per request (the whole audience in one request could outlast gunicorn's timeout)

# As bench/webhook.py: 2 gunicorn workers x 4 threads (the API only creates and
# polls here), and one Celery prefork child per core in two worker instances.
GUNICORN_WORKERS, GUNICORN_THREADS = 2, 4
CELERY_WORKERS, CELERY_CONCURRENCY = 2, 1

try:
    CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
except (ValueError, OSError):
    CLOCK_TICKS = 100


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipients", nargs="?", type=int, default=2000, help="recipients (default 2000)")
    parser.add_argument("--rate", type=int, default=None, help="the campaign's rate_per_second (default none)")
    parser.add_argument("--workers", type=int, default=CELERY_WORKERS, help="Celery worker instances (default 2)")
    parser.add_argument("--concurrency", type=int, default=CELERY_CONCURRENCY, help="children per worker (1)")
    parser.add_argument("--pool", default="prefork", choices=["prefork", "threads", "solo"])
    parser.add_argument("--no-beat", action="store_true", help="no periodic tasks (campaigns_tick, relay)")
    parser.add_argument("--outside-window", type=int, default=0,
                        help="recipients more, waiting outside the send window (default 0: no window)")
    parser.add_argument("--gunicorn-workers", type=int, default=GUNICORN_WORKERS)
    parser.add_argument("--gunicorn-threads", type=int, default=GUNICORN_THREADS)
    parser.add_argument("--debug", action="store_true", help="run the server with DEBUG=true (default false)")
    parser.add_argument("--deadline", type=float, default=None, help="seconds to wait for completion")
    parser.add_argument("--ceiling-seconds", type=float, default=3.0)
    parser.add_argument("--ceiling-threads", type=int, default=4)
    args = parser.parse_args()
    if args.recipients < 1 or args.recipients > 9_000_000:
        parser.error("N must be between 1 and 9,000,000")
    if args.deadline is None:
        args.deadline = 60 + (args.recipients * 1.5 / args.rate if args.rate else args.recipients * 0.1)
    return args


# --- the third party ----------------------------------------------------------------


def receiver_ceiling(receiver: Receiver, *, seconds: float, threads: int) -> float:
    """Signed POSTs per second the receiver answers alone, from `threads` keep-alive clients."""
    body = json.dumps({"text": "ceiling"}).encode()
    signature = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    done = [0] * threads
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
        try:
            while time.monotonic() < stop_at:
                conn.request("POST", "/webhook", body=body, headers={
                    "Content-Type": "application/json", "X-Hub-Signature": signature,
                    "webhook-id": f"ceiling-{index}-{done[index]}"})
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    done[index] += 1
        finally:
            conn.close()

    started = time.monotonic()
    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    receiver.reset()
    return sum(done) / elapsed


# --- processes: memory and CPU --------------------------------------------------------


def machine_cpu() -> tuple[float, float, float]:
    """(busy, idle, steal) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq
    return busy / CLOCK_TICKS, (idle + iowait) / CLOCK_TICKS, steal / CLOCK_TICKS


def _proc_stat(pid: int) -> tuple[str, int, float] | None:
    """(comm, ppid, cpu seconds) of a process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def process_table() -> dict[int, tuple[str, int, float]]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _proc_stat(int(entry))
            if info is not None:
                table[int(entry)] = info
    return table


def trees(stack: Stack, table: dict) -> dict[int, str]:
    """pid -> the name of the stack process (gunicorn, celery1, ...) whose tree it belongs to."""
    roots = {process.pid: name for name, process in stack.processes}
    owner = {}
    for pid in table:
        seen, current = [], pid
        while current in table and current not in roots and current > 1 and len(seen) < 50:
            seen.append(current)
            current = table[current][1]
        if current in roots:
            owner[pid] = roots[current]
    return owner


def group_of(pid: int, table: dict, owner: dict) -> str:
    if pid in owner:
        return owner[pid]
    if pid == os.getpid():
        return "bench"
    comm = table[pid][0]
    if comm.startswith("postgres") or comm.startswith("postmaster"):
        return "postgres"  # counted exactly apart (tree_cpu)
    if comm.startswith("redis"):
        return "redis"  # shared with other users of the server, if any
    return "other"


def cpu_by_group(stack: Stack, before: dict, after: dict,
                 postgres: float) -> tuple[dict[str, float], dict[str, float]]:
    """CPU seconds spent between two process tables, by group, and the `other` group by command
    (processes that ended in between are missed), "postgres" being `postgres` (its exact figure)."""
    owner = trees(stack, after)
    spent: dict[str, float] = Counter({"postgres": postgres})
    other: dict[str, float] = Counter()
    for pid, (comm, _ppid, cpu) in after.items():
        previous = before.get(pid)
        if previous is not None and previous[0] != comm:
            previous = None  # pid reused
        group = group_of(pid, after, owner)
        if group == "postgres":
            continue
        delta = cpu - (previous[2] if previous else 0.0)
        spent[group] += delta
        if group == "other":
            other[comm] += delta
    return spent, other


class Sampler:
    """Every 0.5 s: VmRSS of each process of the stack's trees, and the Celery queue's length."""

    def __init__(self, stack: Stack, *, beat_in: str | None):
        self.stack, self.beat_in = stack, beat_in
        self.seen: dict[int, tuple[str, float]] = {}  # pid -> (tree, last cpu seconds)
        self.peaks: dict[int, float] = {}  # pid -> peak VmRSS (MB)
        self.first: dict[int, float] = {}  # pid -> VmRSS (MB) when first seen after the start
        self.last: dict[int, float] = {}
        self.group_peaks: dict[str, float] = {}
        self.queue_peak = 0
        self.redis = redis.Redis(host="127.0.0.1", port=6379, db=stack.redis_db)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        table = process_table()
        owner = trees(self.stack, table)
        totals: dict[str, float] = Counter()
        for pid, group in owner.items():
            rss = _rss_mb(pid)
            if rss is None:
                continue
            self.seen[pid] = (group, table[pid][2])
            self.peaks[pid] = max(self.peaks.get(pid, 0.0), rss)
            self.first.setdefault(pid, rss)
            self.last[pid] = rss
            totals[group] += rss
        for group, total in totals.items():
            self.group_peaks[group] = max(self.group_peaks.get(group, 0.0), total)
        try:
            self.queue_peak = max(self.queue_peak, self.redis.llen("celery"))
        except redis.RedisError:
            pass

    def labelled_peaks(self) -> dict[str, float]:
        """label -> peak MB: gunicorn_master, gunicorn_worker<n>, celery<n>_main, celery<n>_child<n>,
        celery1_beat (the embedded beat process: the child of the beat worker that used least CPU)."""
        labels = self._labels()
        return {labels[pid]: peak for pid, peak in self.peaks.items()}

    def labelled_growth(self) -> dict[str, float]:
        """label -> MB the process grew from its first sample (the campaign's start) to its last (the
        issue's "each process flat")."""
        labels = self._labels()
        return {labels[pid]: self.last[pid] - self.first[pid] for pid in self.peaks}

    def _labels(self) -> dict[int, str]:
        roots = {process.pid for _, process in self.stack.processes}
        labels: dict[int, str] = {}
        for group in sorted({group for group, _ in self.seen.values()}):
            pids = sorted(pid for pid, (g, _) in self.seen.items() if g == group)
            children = [pid for pid in pids if pid not in roots]
            beat = None
            if group == self.beat_in and len(children) > 1:
                beat = min(children, key=lambda pid: self.seen[pid][1])
            number = 0
            for pid in pids:
                if pid in roots:
                    labels[pid] = f"{group}_master" if group == "gunicorn" else f"{group}_main"
                elif pid == beat:
                    labels[pid] = f"{group}_beat"
                else:
                    number += 1
                    labels[pid] = f"{group}_{'worker' if group == 'gunicorn' else 'child'}{number}"
        return labels

    def _run(self) -> None:
        while not self.stopping.wait(0.5):
            self.sample()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.sample()
        self.redis.close()


# --- the API --------------------------------------------------------------------------


INSIDE_ZONE, OUTSIDE_ZONE = "UTC", "Pacific/Kiritimati"  # UTC+14: outside a window of two hours around UTC's now


def recipient_rows(count: int, outside: int = 0) -> list[dict]:
    """`count` recipients, then `outside` more in a zone the send window is closed in (with a window, the first
    are in UTC)."""
    contact = {"timezone": INSIDE_ZONE} if outside else {}
    inside_rows = [
        {"client_id": f"1555{1_000_000 + n:07d}", "Contact": {"FirstName": f"Customer{n}", **contact},
         "CustomProperties": {"Code": f"C{n:07d}"}}
        for n in range(count)
    ]
    outside_rows = [
        {"client_id": f"1556{1_000_000 + n:07d}", "Contact": {"FirstName": f"Later{n}", "timezone": OUTSIDE_ZONE},
         "CustomProperties": {"Code": f"L{n:07d}"}}
        for n in range(outside)
    ]
    # Interleaved, so that the campaign's batches meet the waiting ones all along, not only after the others.
    rows = [row for pair in zip(inside_rows, outside_rows, strict=False) for row in pair]
    shared = min(count, outside)
    return rows + inside_rows[shared:] + outside_rows[shared:]


def send_window_now() -> dict:
    """Open for two hours around the present time, in each recipient's zone."""
    now = datetime.now(UTC)
    return {"from": (now - timedelta(hours=1)).strftime("%H:%M"), "to": (now + timedelta(hours=1)).strftime("%H:%M"),
            "timezone": "recipient"}


def set_up(api: Api, receiver: Receiver, recipients: int, rate: int | None, outside: int = 0) -> tuple[int, float]:
    """Channel, standard response and campaign through the API; (campaign id, seconds to create it)."""
    api.call("POST", "/api/channels/", {
        "channel_id": CHANNEL_ID, "name": "Bench WhatsApp campaign", "tenant": 1, "media_type": "whatsapp",
        "transport": "webhook", "business_id": BUSINESS_ID, "webhook_url": receiver.url, "secret": SECRET,
        "retry_timeout_seconds": 300, "retry_attempts": 3, "endpoints": ["1:session-chat"],
        "inbound_route_by_call": "1:session-chat",
    }, expect=(201,))
    api.call("POST", "/api/standard-responses/", {
        "id": RESPONSE_ID, "name": "Bench campaign notice", "content_type": "notification", "language": "en",
        "body": "Hello {{1}}, your code is {{2}}.",
        "structured": {
            "template": {"name": "bench_notice", "id": "bench_notice_1", "language": "en"},
            "parameters": {"1": "<$Contact.FirstName$>", "2": "<$CustomProperties.Code$>"},
        },
    }, expect=(201,))
    rows = recipient_rows(recipients, outside)
    started = time.monotonic()
    created = api.call("POST", "/api/campaigns/", {
        "name": f"Bench {recipients}", "channel": CHANNEL_ID, "standard_response": RESPONSE_ID,
        "rate_per_second": rate, "recipients": rows[:CHUNK],
        **({"send_window": send_window_now()} if outside else {}),
    }, expect=(201,))
    accepted = created["audience_report"]["accepted"]
    for first in range(CHUNK, len(rows), CHUNK):
        chunk = {"recipients": rows[first:first + CHUNK]}
        report = api.call("POST", f"/api/campaigns/{created['id']}/recipients/", chunk)
        accepted += report["accepted"]
    if accepted != recipients + outside:
        raise RuntimeError(f"{accepted} of {recipients + outside} recipients accepted: {created['audience_report']}")
    return created["id"], time.monotonic() - started


def rate_of(times: list[float]) -> float:
    times = sorted(times)
    if len(times) < 2 or times[-1] == times[0]:
        return float("nan")
    return (len(times) - 1) / (times[-1] - times[0])


def busiest_second(times: list[float]) -> int:
    """The most events in any one-second window."""
    times, best, first = sorted(times), 0, 0
    for last, value in enumerate(times):
        while value - times[first] >= 1.0:
            first += 1
        best = max(best, last - first + 1)
    return best


def relation_pages(stack: Stack) -> dict[str, tuple[int, int]]:
    """The application's relations -> (pages hit in shared buffers, pages read from the OS), every backend's
    flushed statistics (a backend flushes its own within seconds of its transactions: a campaign's minutes
    dwarf what is still pending)."""
    return {name: (hit, read) for name, hit, read in stack.sql(PAGES_SQL)}


UPDATES_SQL = "SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"


def relation_updates(stack: Stack) -> dict[str, tuple[int, int]]:
    """Table -> (rows updated, of them HOT: no new index entry), every backend's flushed statistics."""
    return {name: (updated, hot) for name, updated, hot in stack.sql(UPDATES_SQL)}


def counts_since(before: dict, after: dict) -> dict[str, tuple[int, int]]:
    """Relation -> its two counts in `after` less those in `before` (none there: from 0)."""
    return {relation: (hit - before.get(relation, (0, 0))[0], read - before.get(relation, (0, 0))[1])
            for relation, (hit, read) in after.items()}


def main() -> None:
    args = parse_args()
    receiver = Receiver(SECRET)
    try:
        with Stack(DATABASE, redis_db=REDIS_DB) as stack:
            if not args.debug:
                # Production settings, minus the HTTPS redirect (the benchmark speaks plain HTTP).
                stack.env.update(DEBUG="false", SECRET_KEY="bench-campaign-" + "x" * 50,
                                 ALLOWED_HOSTS="127.0.0.1,localhost", SECURE_SSL_REDIRECT="false")
            ceiling = receiver_ceiling(receiver, seconds=args.ceiling_seconds, threads=args.ceiling_threads)
            stack.prepare()
            stack.start_gunicorn(workers=args.gunicorn_workers, threads=args.gunicorn_threads)
            stack.start_celery(count=args.workers, concurrency=args.concurrency, pool=args.pool,
                               beat=not args.no_beat)
            stack.start_dispatcher()  # retries and recovered deliveries, as under `make run`
            api = Api(stack)
            campaign_id, create_seconds = set_up(api, receiver, args.recipients, args.rate, args.outside_window)

            sampler = Sampler(stack, beat_in=None if args.no_beat else "celery1")
            load_before = os.getloadavg()[0]
            sampler.sample()
            sampler.start()
            postmaster = stack.postmaster()
            if postmaster is None:
                raise SystemExit("PostgreSQL's processes are not on this machine: its CPU cannot be counted")
            pages_before, updates_before = relation_pages(stack), relation_updates(stack)
            cpu_before, machine_before, postgres_before = process_table(), machine_cpu(), tree_cpu(postmaster)
            started_wall, started = time.time(), time.monotonic()
            api.call("POST", f"/api/campaigns/{campaign_id}/start/")
            counts, finished = {}, None
            while time.monotonic() - started < args.deadline:
                time.sleep(0.5)
                stack.check_alive()
                counts = api.call("GET", f"/api/campaigns/{campaign_id}/")
                done = counts["sent"] + counts["delivered"] + counts["failed"]
                if (counts["pending"] == args.outside_window and done == args.recipients
                        and counts["total"] == args.recipients + args.outside_window
                        and receiver.distinct() >= args.recipients):
                    finished = time.monotonic()
                    break
            elapsed = (finished or time.monotonic()) - started
            cpu_after, machine_after, postgres_after = process_table(), machine_cpu(), tree_cpu(postmaster)
            sampler.stop()
            pages_used = counts_since(pages_before, relation_pages(stack))
            updates = counts_since(updates_before, relation_updates(stack))

            with receiver.lock:
                arrivals = dict(receiver.arrivals)
                repeated = sum(1 for n in receiver.counts.values() if n > 1)
                extra = sum(n - 1 for n in receiver.counts.values() if n > 1)
                bad_signatures = receiver.bad_signatures
            messages = stack.sql(
                "SELECT extract(epoch FROM m.created_at)::float8, extract(epoch FROM m.sent_at)::float8 "
                "FROM channels_app_campaignrecipient r JOIN channels_app_message m ON m.id = r.message_id "
                "WHERE r.campaign_id = %s", campaign_id)
            created_at = [created for created, _ in messages]
            sent_at = [sent for _, sent in messages if sent is not None]
            attempts, deliveries = stack.sql(
                "SELECT (SELECT count(*) FROM channels_app_deliveryattempt),"
                " (SELECT count(*) FROM channels_app_delivery)")[0]
            state = stack.sql("SELECT state FROM channels_app_campaign WHERE id = %s", campaign_id)[0][0]
            cpu, other = cpu_by_group(stack, cpu_before, cpu_after, postgres_after - postgres_before)
            load_after = os.getloadavg()[0]
            arrival_times = sorted(arrivals.values())

            figures: list[tuple[str, object]] = [
                ("recipients", args.recipients),
                ("outside_window", args.outside_window),
                ("rate_limit", args.rate if args.rate else "none"),
                ("gunicorn", f"{args.gunicorn_workers} workers x {args.gunicorn_threads} threads"),
                ("celery", f"{args.workers} workers x {args.concurrency} {args.pool}"
                           + ("" if args.no_beat else ", beat in celery1")),
                ("debug", args.debug),
                ("receiver_ceiling_per_second", ceiling),
                ("create_seconds", create_seconds),
                ("completed", finished is not None),
                ("campaign_state", state),
                ("total", counts.get("total")),
                ("pending", counts.get("pending")),
                ("sent", counts.get("sent")),
                ("delivered", counts.get("delivered")),
                ("failed", counts.get("failed")),
                ("received", len(arrivals)),
                ("lost", args.recipients - len(arrivals)),
                ("waiting", counts.get("waiting")),
                ("duplicates", repeated),
                ("duplicate_requests", extra),
                ("bad_signatures", bad_signatures),
                ("deliveries", deliveries),
                ("delivery_attempts", attempts),
                ("peak_celery_queue_length", sampler.queue_peak),
                ("first_webhook_seconds", (arrival_times[0] - started_wall) if arrival_times else float("nan")),
                ("all_invited_seconds", (max(created_at) - started_wall) if created_at else float("nan")),
                ("last_webhook_seconds", (arrival_times[-1] - started_wall) if arrival_times else float("nan")),
            ]
            peaks, growth = sampler.labelled_peaks(), sampler.labelled_growth()
            for label in sorted(peaks):
                figures.append((f"peak_rss_mb_{label}", peaks[label]))
                figures.append((f"rss_growth_mb_{label}", growth[label]))
            for group in sorted(sampler.group_peaks):
                figures.append((f"peak_rss_mb_{group}_total", sampler.group_peaks[group]))
            for group in sorted(cpu, key=lambda g: -cpu[g]):
                figures.append((f"cpu_seconds_{group}", cpu[group]))
            celery_cpu = sum(v for g, v in cpu.items() if g.startswith("celery"))
            figures.append(("cpu_ms_per_recipient_celery", celery_cpu * 1000 / args.recipients))
            figures.append(("cpu_ms_per_recipient_postgres", cpu.get("postgres", 0.0) * 1000 / args.recipients))
            figures.append(("cpu_ms_per_recipient_all_ours", sum(v for g, v in cpu.items() if g != "other")
                            * 1000 / args.recipients))
            figures.append(("cpu_other_top", ",".join(
                f"{comm}:{seconds:.1f}" for comm, seconds in sorted(other.items(), key=lambda i: -i[1])[:4])))
            ours = sum(v for g, v in cpu.items() if g != "other")
            busy, idle, steal = (after - before for after, before in zip(machine_after, machine_before, strict=True))
            figures.append(("cpu_cores_used_by_campaign", ours / elapsed))
            # The machine's total (/proc/stat) minus ours: other programs, short-lived processes included.
            figures.append(("cpu_cores_used_by_everything_else", max(busy - ours, 0.0) / elapsed))
            figures.append(("cpu_cores_idle", idle / elapsed))
            figures.append(("cpu_cores_stolen", steal / elapsed))
            figures.append(("load_average_1min", f"{load_before:.1f} -> {load_after:.1f}"))
            for relation, (hit, read) in sorted(pages_used.items(), key=lambda item: -sum(item[1]))[:15]:
                print(f"# pages per recipient, {relation}: {hit / args.recipients:.2f} hit, "
                      f"{read / args.recipients:.2f} read")
            for table, (updated, hot) in sorted(updates.items(), key=lambda item: -item[1][0]):
                if updated:
                    print(f"# updates per recipient, {table}: {updated / args.recipients:.2f}, "
                          f"of them HOT {hot / args.recipients:.2f}")
            figures.append(("pages_per_recipient", sum(h + r for h, r in pages_used.values()) / args.recipients))
            figures.append(("pages_read_per_recipient", sum(r for _, r in pages_used.values()) / args.recipients))
            if args.rate:
                figures += [
                    ("measured_invited_per_second", rate_of(list(created_at))),
                    ("measured_sent_per_second", rate_of(sent_at)),
                    ("measured_received_per_second", rate_of(arrival_times)),
                    ("busiest_second_received", busiest_second(arrival_times)),
                    ("busiest_second_sent", busiest_second(sent_at)),
                ]
            figures += [("seconds", elapsed), ("recipients_per_second", args.recipients / elapsed)]
            print_figures(figures)
            if finished is None:
                raise RuntimeError(f"not complete within the deadline of {args.deadline:.0f} s")
    finally:
        receiver.stop()


if __name__ == "__main__":
    main()
