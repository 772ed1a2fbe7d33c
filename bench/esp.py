"""Benchmark: ESP `ChatService.InviteToChat` end to end, over HTTP.

Starts everything it needs, drives load, and cleans up after itself:

* a fresh PostgreSQL database `dms_bench_esp` on 127.0.0.1:5432 (trust auth,
  user postgres), dropped at the end;
* Redis 127.0.0.1:6379 db 5 as the Celery broker (flushed at start and end);
  the web server uses the local-memory cache (CACHE_URL=locmemcache://);
* `manage.py migrate` and `seed_demo`, a superuser with an API token, and the
  standard response of tests/fixtures/invite_to_chat_standard_response.json
  (created with POST /api/standard-responses/);
* the web server (`--server`: scripts/serve.sh's by default, bench/processes.py),
  one Celery worker (`--concurrency 1`) and the dispatcher that
  sends the invitations (channels_app/dispatcher.py) as subprocesses;
* a load generator: `--concurrency` threads, each with its own keep-alive
  http.client connection, POSTing the InviteToChat request of
  tests/fixtures/invite_to_chat_request.json to /esp (channel
  `channel-ghub-simulator`, a different `_umsClientId`/PhoneNumber each time)
  for `--seconds` after a `--warmup`. Any answer other than 200 is an error.

Afterwards it waits (at most `--drain` seconds, 60 by default) for the worker
to hand every accepted invitation's message to the simulator channel, and
counts outbound messages with status sent or delivered.

Run from the repository root:

    .venv/bin/python -m bench.esp [--seconds 30] [--concurrency 16] [--history 10000000]

With `--history N`, N messages of a tenant's past are stored on the channel before the server starts
(bench/history.py); `--database` and `--redis-db` run it beside another copy.

Output is `name=value` lines, the headline (`invite_to_chat_per_second`) last;
the `cpu_*` lines say how the machine's CPU was shared during the measured
window (other programs on the machine lower every figure; `postgres` is the
whole server, every backend that came and went included: bench/measure.py);
`peak_rss_mb_<role>` and `rss_growth_mb_<role>` the resident memory of each
started process from the window's start to the drain's end (bench/measure.py
MemoryMeter).
The PostgreSQL settings it ran with come first (`pg_<name>=value`). Only one run at a
time (a lock in the temporary directory). Server logs are kept in a temporary directory (printed on failure).
"""

import argparse
import fcntl
import http.client
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import redis

from bench.history import add_history_argument, load_history
from bench.measure import MemoryMeter, print_figures, process_roles, tree_cpu
from bench.processes import add_server_argument, postmaster_pid, print_postgres_settings, web_command

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python")
FIXTURES = ROOT / "tests" / "fixtures"

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
DB_NAME = "dms_bench_esp"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_DB = 5
BROKER_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
CHANNEL_ID = "channel-ghub-simulator"  # created by `manage.py seed_demo`

# Gunicorn settings, tried on the 2-core machine with 16 clients, 15 s runs
# (invitations/s; other programs used 0.3-1 core meanwhile, so only runs side
# by side compare): 2 workers x 8 threads 41-51, 2 x 16 34-50 (one p99 of 5 s),
# 2 x 4 35-50, 1 x 16 35-42, 3 x 2 29-35, 4 x 1 (sync) 25-39. A request spends
# much of its time waiting for ~20 PostgreSQL round trips, so threads help;
# more processes than cores do not. 2 x 8 (one server thread per client) is kept.
DEFAULT_WORKERS = 2
DEFAULT_THREADS = 8

SETUP_SNIPPET = """
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
User = get_user_model()
user = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench", "", None)
token, _ = Token.objects.get_or_create(user=user)
print("TOKEN=" + token.key)
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured duration (default 30)")
    parser.add_argument("--concurrency", type=int, default=16, help="client threads (default 16)")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured load before (default 5)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="gunicorn threads per worker")
    parser.add_argument("--drain", type=float, default=60.0, help="max seconds to wait for the worker (default 60)")
    parser.add_argument("--debug", action="store_true", help="run the server with DEBUG=true (default false)")
    parser.add_argument("--database", default=DB_NAME, help=f"the benchmark's database (default {DB_NAME})")
    parser.add_argument("--redis-db", type=int, default=REDIS_DB, help=f"the broker's Redis db (default {REDIS_DB})")
    add_server_argument(parser)
    add_history_argument(parser)
    return parser.parse_args()


def use(database: str, redis_db: int) -> None:
    """The database and Redis db every function below works on (`--database`, `--redis-db`)."""
    global DB_NAME, DATABASE_URL, REDIS_DB, BROKER_URL
    DB_NAME, REDIS_DB = database, redis_db
    DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
    BROKER_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"


# --- infrastructure ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_create() -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def database_drop() -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def broker_flush() -> None:
    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    try:
        client.flushdb()
    finally:
        client.close()


def server_env(debug: bool) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=DATABASE_URL,
        CELERY_BROKER_URL=BROKER_URL,
        CACHE_URL="locmemcache://",  # django-environ has no `locmem://` scheme
        WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",  # its receiver listens on 127.0.0.1 (channels_app/outbound.py)
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    if debug:
        env.update(DEBUG="true")
    else:
        # Production settings, minus the HTTPS redirect (the benchmark speaks plain HTTP).
        env.update(
            DEBUG="false",
            SECRET_KEY="bench-esp-" + "x" * 50,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            SECURE_SSL_REDIRECT="false",
        )
    return env


def manage(env: dict, *args: str) -> str:
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    # A session of its own: Ctrl-C reaches only this script, which then stops
    # the whole process group (master and its children) itself.
    with open(log, "wb") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen | None, grace: float = 15.0) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    # Children that outlived their master (same process group) go too.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def request(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.read()


def wait_healthy(port: int, process: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}; see {log}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            status, _ = request(conn, "GET", "/healthz")
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"gunicorn did not become healthy in {timeout:.0f} s; see {log}")


def outbound_sent_count(since: datetime) -> int:
    """Outbound messages sent or delivered, created from `since` on (--history's are older)."""
    with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={DB_NAME}") as conn:
        row = conn.execute(
            "SELECT count(*) FROM channels_app_message WHERE direction = 'outbound' AND status IN ('sent', 'delivered')"
            " AND created_at >= %s", [since]
        ).fetchone()
    return row[0]


def answer_to_sent_seconds() -> tuple[float, float, float]:
    """p50, p99 and max of (sent_at - created_at) over the invitations sent: how long after its answer an
    invitation left (the target: every one within 2 s)."""
    with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={DB_NAME}") as conn:
        row = conn.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s), percentile_cont(0.99) WITHIN GROUP (ORDER BY s),"
            " max(s) FROM (SELECT extract(epoch FROM sent_at - created_at) AS s FROM channels_app_message"
            " WHERE direction = 'outbound' AND sent_at IS NOT NULL) AS sent"
        ).fetchone()
    return tuple(float("nan") if value is None else float(value) for value in row)


# --- CPU accounting ----------------------------------------------------------------
# Other work on the machine (test suites, other servers) takes CPU from the
# benchmark: how much each part used during the window says how far to trust it.

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int, int]:
    """(busy, total, steal) jiffies over all CPUs since boot."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total, fields[7]


def process_ticks(pid: int) -> tuple[int, int] | None:
    """(process group, user + system jiffies) of one process."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[2]), int(fields[11]) + int(fields[12])


class CpuSnapshot:
    def __init__(self, groups: dict[str, int], postmaster: int):
        self.machine = machine_ticks()
        self.parts = dict.fromkeys([*groups, "postgres"], 0)
        by_group = {pgid: name for name, pgid in groups.items()}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            ticks = process_ticks(int(entry))
            if ticks is None:
                continue
            if ticks[0] in by_group:
                self.parts[by_group[ticks[0]]] += ticks[1]
        self.parts["postgres"] = round(tree_cpu(postmaster) * CLOCK_TICKS)  # exactly (bench/measure.py)
        times = os.times()
        self.parts["load_generator"] = round((times.user + times.system) * CLOCK_TICKS)


def cpu_report(before: CpuSnapshot, after: CpuSnapshot, invitations: int) -> list[str]:
    busy = after.machine[0] - before.machine[0]
    total = after.machine[1] - before.machine[1] or 1
    steal = after.machine[2] - before.machine[2]
    cores = os.cpu_count() or 1
    ours = 0
    lines = [
        f"cpu_cores={cores}",
        f"cpu_busy_percent={busy / total * 100:.0f}",
        f"cpu_steal_percent={steal / total * 100:.0f}",
    ]
    per_invitation = []
    for name, value in after.parts.items():
        used = value - before.parts.get(name, 0)
        ours += used
        lines.append(f"cpu_cores_used_by_{name}={used / total * cores:.2f}")
        if name != "load_generator":
            per_invitation.append(f"cpu_ms_per_invitation_{name}={used / CLOCK_TICKS * 1000 / max(invitations, 1):.1f}")
    lines += per_invitation
    lines.append(f"cpu_cores_used_by_everything_else={max(busy - steal - ours, 0) / total * cores:.2f}")
    return lines


# --- load -----------------------------------------------------------------------


class Load:
    """Client threads sharing a request counter; each keeps its own connection."""

    def __init__(self, port: int, token: str, concurrency: int):
        self.port = port
        self.headers = {
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Connection": "keep-alive",
        }
        template = json.loads((FIXTURES / "invite_to_chat_request.json").read_text())
        template["Parameters"]["_umsChannel"] = CHANNEL_ID
        self.template = template
        self.counter = itertools.count()
        self.concurrency = concurrency
        self.stopping = threading.Event()
        self.measure_from = float("inf")
        self.measure_until = float("inf")
        self.lock = threading.Lock()
        self.latencies: list[float] = []  # seconds, answers completed inside the window
        self.errors = 0  # inside the window
        self.ok_total = 0  # every 200, warm-up and tail included: messages the worker must send
        self.error_samples: list[str] = []
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(concurrency)]

    def body(self) -> bytes:
        n = next(self.counter)
        # A different possible NANP number per request (650-200-0000 and up): a new contact each time.
        phone = f"1650{2000000 + n % 8000000}"
        payload = self.template
        payload = {
            **payload,
            "ReferenceId": n,
            "Parameters": {**payload["Parameters"], "_umsClientId": phone},
            "UserData": {**payload["UserData"], "PhoneNumber": phone},
        }
        return json.dumps(payload).encode()

    def client(self) -> None:
        conn = None
        latencies, errors, ok = [], 0, 0
        samples = []
        while not self.stopping.is_set():
            body = self.body()
            started = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                status, answer = request(conn, "POST", "/esp", body, self.headers)
            except (OSError, http.client.HTTPException) as error:
                status, answer = None, repr(error).encode()
                if conn is not None:
                    conn.close()
                conn = None
            finished = time.perf_counter()
            if status == 200:
                ok += 1
            in_window = self.measure_from <= finished <= self.measure_until
            if in_window:
                latencies.append(finished - started)
                if status != 200:
                    errors += 1
            if status != 200 and len(samples) < 3:
                samples.append(f"{status}: {answer[:300].decode(errors='replace')}")
            if finished > self.measure_until:
                break
        if conn is not None:
            conn.close()
        with self.lock:
            self.latencies.extend(latencies)
            self.errors += errors
            self.ok_total += ok
            self.error_samples.extend(samples)

    def run(self, warmup: float, seconds: float, snapshot) -> tuple:
        """Run the clients; `snapshot()` is taken when the window opens and closes."""
        for thread in self.threads:
            thread.start()
        self.measure_from = time.perf_counter() + warmup
        self.measure_until = self.measure_from + seconds
        try:
            time.sleep(max(self.measure_from - time.perf_counter(), 0))
            before = snapshot()
            time.sleep(max(self.measure_until - time.perf_counter(), 0))
            after = snapshot()
            for thread in self.threads:
                thread.join()
        finally:
            self.stopping.set()
        return before, after


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


# --- main ---------------------------------------------------------------------------


def interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> None:
    args = parse_args()
    use(args.database, args.redis_db)
    # Two runs would share (and drop) one database and Redis db.
    lock = open(Path(tempfile.gettempdir()) / f"bench-esp-{DB_NAME}.lock", "w")  # noqa: SIM115  (held until exit)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit("another bench/esp.py is running: it uses the same database and Redis db") from None
    # SIGTERM cleans up like Ctrl-C.
    signal.signal(signal.SIGTERM, interrupt)
    logs = Path(tempfile.mkdtemp(prefix="bench-esp-"))
    env = server_env(args.debug)
    gunicorn = worker = dispatcher = None
    keep_logs = True
    database_made = False
    try:
        broker_flush()
        database_create()
        database_made = True
        print_postgres_settings()
        manage(env, "migrate", "--noinput")
        manage(env, "seed_demo")
        token = next(
            line[6:] for line in manage(env, "shell", "-c", SETUP_SNIPPET).splitlines() if line.startswith("TOKEN=")
        )
        since = datetime.now(UTC)  # before the first invitation (the history is older: bench/history.py)
        history = load_history(f"host=127.0.0.1 port=5432 user=postgres dbname={DB_NAME}", channel_id=CHANNEL_ID,
                               messages=args.history)

        port = free_port()
        gunicorn_log, worker_log = logs / "gunicorn.log", logs / "celery.log"
        command, server_extra = web_command(args.server, port=port, workers=args.workers, threads=args.threads)
        gunicorn = start(command, {**env, **server_extra}, gunicorn_log)
        wait_healthy(port, gunicorn, gunicorn_log)

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        standard_response = (FIXTURES / "invite_to_chat_standard_response.json").read_bytes()
        status, answer = request(
            conn,
            "POST",
            "/api/standard-responses/",
            standard_response,
            {"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )
        conn.close()
        if status != 201:
            raise SystemExit(f"creating the standard response failed: {status} {answer[:500]!r}")

        worker = start(
            [str(VENV_BIN / "celery"), "-A", "project", "worker", "--concurrency", "1", "--loglevel", "WARNING"],
            env,
            worker_log,
        )
        dispatcher = start([str(VENV_BIN / "python"), "manage.py", "dispatch"], env, logs / "dispatcher.log")
        ready_by = time.monotonic() + 60  # the figures of how soon invitations leave start with it running
        while "Dispatcher ready" not in (logs / "dispatcher.log").read_text(errors="replace"):
            if dispatcher.poll() is not None or time.monotonic() > ready_by:
                raise SystemExit(f"the dispatcher did not start; see {logs / 'dispatcher.log'}")
            time.sleep(0.1)

        # One request first: a wrong answer makes every figure meaningless.
        load = Load(port, token, args.concurrency)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        status, answer = request(conn, "POST", "/esp", load.body(), load.headers)
        conn.close()
        if status != 200 or "_umsChatSessionId" not in json.loads(answer).get("Result", {}):
            raise SystemExit(f"InviteToChat failed: {status} {answer[:500]!r}")

        groups = {"gunicorn": gunicorn.pid, "celery_worker": worker.pid, "dispatcher": dispatcher.pid}
        with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={DB_NAME}", autocommit=True) as conn:
            postmaster = postmaster_pid(conn)
        if postmaster is None:
            raise SystemExit("PostgreSQL's processes are not on this machine: its CPU cannot be counted")
        memory = MemoryMeter(lambda: process_roles(groups))

        def snapshot() -> CpuSnapshot:
            if not memory.thread.is_alive():  # the window opens: memory from here to the drain's end
                memory.start()
            return CpuSnapshot(groups, postmaster)

        cpu_before, cpu_after = load.run(args.warmup, args.seconds, snapshot)
        expected = load.ok_total + 1  # + the check above

        drain_started = time.monotonic()
        sent = sent_when_load_stopped = outbound_sent_count(since)
        while sent < expected and time.monotonic() - drain_started < args.drain:
            if worker.poll() is not None:
                print(f"celery worker exited with {worker.returncode}; see {worker_log}", file=sys.stderr)
                break
            time.sleep(0.5)
            sent = outbound_sent_count(since)
        drain_seconds = time.monotonic() - drain_started
        memory.stop()

        latencies = sorted(load.latencies)
        requests = len(latencies)
        for sample in load.error_samples:
            print(f"error sample: {sample}", file=sys.stderr)
        print(f"server={args.server}")
        print(f"gunicorn=workers {args.workers} threads {args.threads}")
        print(f"concurrency={args.concurrency}")
        print(f"debug={str(args.debug).lower()}")
        print_figures(history)
        print(f"requests={requests}")
        print(f"errors={load.errors}")
        print(f"seconds={args.seconds:.3f}")
        print(f"p50_ms={percentile(latencies, 0.50) * 1000:.1f}")
        print(f"p99_ms={percentile(latencies, 0.99) * 1000:.1f}")
        print(f"max_ms={(latencies[-1] if latencies else float('nan')) * 1000:.1f}")
        for line in cpu_report(cpu_before, cpu_after, requests - load.errors):
            print(line)
        print(f"load_average_1m_at_end={os.getloadavg()[0]:.2f}")
        print(f"invitations_accepted_total={expected}")
        print(f"messages_sent_when_load_stopped={sent_when_load_stopped}")
        print(f"drain_seconds={drain_seconds:.1f}")
        print(f"messages_sent_by_worker_after_run={sent}")
        sent_p50, sent_p99, sent_max = answer_to_sent_seconds()
        print(f"answer_to_sent_p50_ms={sent_p50 * 1000:.1f}")
        print(f"answer_to_sent_p99_ms={sent_p99 * 1000:.1f}")
        print(f"answer_to_sent_max_ms={sent_max * 1000:.1f}")
        print_figures(memory.figures())
        print(f"invite_to_chat_per_second={(requests - load.errors) / args.seconds:.1f}")
        keep_logs = False
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop(gunicorn)
        stop(worker)
        stop(dispatcher)
        try:
            broker_flush()
        except Exception as error:  # noqa: BLE001
            print(f"could not flush redis db {REDIS_DB}: {error}", file=sys.stderr)
        if database_made:
            try:
                database_drop()
            except Exception as error:  # noqa: BLE001
                print(f"could not drop database {DB_NAME}: {error}", file=sys.stderr)
        if keep_logs:
            print(f"server logs kept in {logs}", file=sys.stderr)
        else:
            shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
