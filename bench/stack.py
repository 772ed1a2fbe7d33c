"""Run the real stack from a benchmark: PostgreSQL, Redis, gunicorn, Celery.

    from stack import Stack, percentile, print_figures

    with Stack("dms_bench_x", redis_db=6) as stack:   # fresh database, flushed Redis db
        stack.prepare()                               # migrate, seed_demo, superuser token
        stack.shell("...")                            # more set-up through `manage.py shell -c`
        stack.start_gunicorn(workers=2, threads=8)    # waits for /healthz
        stack.start_celery(count=2, concurrency=1)
        meter = stack.cpu_meter().start()             # CPU of each process tree and of PostgreSQL
        ...                                           # drive load at stack.port
        cpu = meter.stop()                            # {"gunicorn": s, "celery1": s, "postgres": s, ...}
    # on leaving (normally, on an error, on Ctrl-C or SIGTERM): every process
    # started is stopped, the Redis db flushed and the database dropped.

PostgreSQL is 127.0.0.1:5432 (trust auth, user postgres); Redis is
127.0.0.1:6379. The server runs with DEBUG=true, the local-memory cache and
Redis as the Celery broker. Logs go to a temporary directory, kept (and
printed) when the benchmark fails.

`Stack(database, broker="redis")` (or "rabbitmq") runs a broker of its own
instead, on a free port, that the benchmark may restart
(`stack.restart_broker()`): a `redis-server` without persistence, or a
RabbitMQ node with its own name, ports and data folder. `stack.kill(name)`
SIGKILLs a started process and its children; `stack.start_celery_worker()`
starts one again.

Also here, for the benchmarks that need them: `WebhookReceiver`, the third
party (an asyncio HTTP server that notes every signed POST by webhook-id), and
`Api`, a JSON client of the REST API with the stack's token.
"""

import asyncio
import hashlib
import hmac
import http.client
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
from collections import Counter
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PG = "host=127.0.0.1 port=5432 user=postgres"

TOKEN_SNIPPET = """
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
User = get_user_model()
user = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench", "", None)
print("TOKEN=" + Token.objects.get_or_create(user=user)[0].key)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list (nan when empty)."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def print_figures(figures: list[tuple[str, object]]) -> None:
    """`name=value` lines, in the order given (the headline last, by convention)."""
    for name, value in figures:
        print(f"{name}={value:.1f}" if isinstance(value, float) else f"{name}={value}", flush=True)


class AsyncConnection:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams, cheap enough
    that the load generator leaves the CPU to the server."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict | None = None) -> tuple[int, bytes]:
        """(status, body); raises OSError or asyncio.IncompleteReadError when the connection breaks."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        try:
            self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            fields = {}
            for line in head.decode("latin-1").split("\r\n")[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    fields[name.strip().lower()] = value.strip()
            if "content-length" in fields:
                data = await self.reader.readexactly(int(fields["content-length"]))
            elif fields.get("transfer-encoding", "").lower() == "chunked":
                data = b""
                while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    data += (await self.reader.readexactly(size + 2))[:-2]
                await self.reader.readuntil(b"\r\n")
            else:
                data = await self.reader.read()
            if fields.get("connection", "").lower() == "close":
                self.close()
            return status, data
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def post_all(port: int, path: str, requests: list[tuple[bytes, dict]],
                   concurrency: int) -> list[tuple[int | None, bytes]]:
    """POST each (body, headers) to `path` over `concurrency` keep-alive
    connections; (status, body) of each, in the order given, status None when
    its connection broke."""
    answers: list[tuple[int | None, bytes]] = [(None, b"")] * len(requests)
    indexes = iter(range(len(requests)))  # shared: each client takes the next request

    async def client() -> None:
        conn = AsyncConnection(port)
        for index in indexes:
            body, headers = requests[index]
            try:
                answers[index] = await conn.request("POST", path, body, headers)
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                answers[index] = (None, repr(error).encode())
        conn.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return answers


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used so far) of a live process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by groups of processes between start() and stop(),
    sampled every `interval` (a process that ends loses at most its last
    interval). `groups()` returns {group name: [pid, ...]}, evaluated at
    every sample so that new processes (children, database backends) count."""

    def __init__(self, groups, interval: float = 1.0):
        self.groups, self.interval = groups, interval
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.group_of: dict[int, str] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for group, pids in self.groups().items():
            for pid in pids:
                stat = _proc_stat(pid)
                if stat is not None:
                    self.first.setdefault(pid, stat[1])
                    self.last[pid] = stat[1]
                    self.group_of[pid] = group

    def _run(self) -> None:
        while not self.stopping.wait(self.interval):
            self._sample()

    @staticmethod
    def _machine_busy() -> float:
        """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
        ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")

    def start(self) -> "CpuMeter":
        self.began, self.busy, self.own = time.monotonic(), self._machine_busy(), time.process_time()
        self._sample()
        self.thread.start()
        return self

    def stop(self) -> dict[str, float]:
        """CPU seconds per group; also "benchmark" (this process) and "other": the
        rest of the machine's busy time (other programs, short-lived processes)."""
        self.stopping.set()
        self.thread.join()
        self._sample()
        used: dict[str, float] = {}
        for pid, group in self.group_of.items():
            used[group] = used.get(group, 0.0) + self.last[pid] - self.first[pid]
        used["benchmark"] = time.process_time() - self.own
        used["other"] = max(0.0, self._machine_busy() - self.busy - sum(used.values()))
        used["seconds"] = time.monotonic() - self.began
        return used


def _wait_until(ready, timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {process.returncode}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not ready within {timeout:.0f} s")


class RedisServer:
    """A `redis-server` of the benchmark's own on a free port, without
    persistence: a restart loses every message it held, as a broker crash
    does. Its log is `redis.log` in `folder`."""

    name = "redis"

    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.folder / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.folder)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            _wait_until(lambda: _redis_ping(client), 15, "redis-server", self.process)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            Stack._stop(self.process)
            self.process = None


def _redis_ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


class RabbitNode:
    """A RabbitMQ node of the benchmark's own (name `bench<port>@localhost`, its
    AMQP and distribution ports free ones, its data, logs and Erlang cookie in
    `folder`), without plugins and apart from any node of the machine. A
    restart keeps its durable queues and persistent messages."""

    name = "rabbitmq"

    def __init__(self, folder: Path):
        self.folder = folder / "rabbitmq"
        self.folder.mkdir(exist_ok=True)
        self.port, self.dist_port = free_port(), free_port()
        self.node = f"bench{self.port}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        (self.folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n")
        (self.folder / "enabled_plugins").write_text("[].\n")
        (self.folder / "rabbitmq-env.conf").write_text("")  # not the machine's (its node name and ports)
        # Debian's /usr/sbin wrappers would run the scripts as the user `rabbitmq`, with that user's cookie.
        scripts = Path("/usr/lib/rabbitmq/bin")
        self.scripts = scripts if scripts.is_dir() else Path(shutil.which("rabbitmq-server") or "").parent
        self.env = {
            **os.environ, "HOME": str(self.folder),  # the Erlang cookie of the node and of rabbitmqctl
            "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port), "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_CONF_ENV_FILE": str(self.folder / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"), "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> None:
        import amqp

        with open(self.folder / "server.log", "ab") as log:
            self.process = subprocess.Popen([str(self.scripts / "rabbitmq-server")], env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

        def accepts_amqp() -> bool:
            connection = amqp.Connection(f"127.0.0.1:{self.port}", userid="guest", password="guest",
                                         connect_timeout=2)
            try:
                connection.connect()
                return True
            except amqp.exceptions.AMQPError:
                return False
            finally:
                connection.collect()

        _wait_until(accepts_amqp, timeout, f"RabbitMQ node {self.node}", self.process)

    def stop(self) -> None:
        if self.process is None:
            return
        subprocess.run([str(self.scripts / "rabbitmqctl"), "-n", self.node, "stop"], env=self.env,
                       capture_output=True, timeout=120)
        Stack._stop(self.process, grace=30.0)
        self.process = None


BROKERS = {"redis": RedisServer, "rabbitmq": RabbitNode}


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


class Stack:
    def __init__(self, database: str, *, redis_db: int | None = None, broker: str | None = None):
        """The Celery broker: db `redis_db` of the machine's Redis (flushed
        before and after), or with `broker` ("redis", "rabbitmq") one of the
        benchmark's own, started on entering and stopped on leaving."""
        if (redis_db is None) == (broker is None):
            raise ValueError("give either redis_db or broker")
        self.database = database
        self.dsn = f"{PG} dbname={database}"
        self.redis_db = redis_db
        self.logs = Path(tempfile.mkdtemp(prefix=f"{database}-"))
        self.broker = BROKERS[broker](self.logs) if broker else None
        self.env = {
            **os.environ,
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
            "CELERY_BROKER_URL": self.broker.url if self.broker else f"redis://127.0.0.1:6379/{redis_db}",
            "CACHE_URL": "locmemcache://",  # django-environ's name for locmem (it has no `locmem://`)
            "DEBUG": "true",
            # the benchmarks' third parties listen on 127.0.0.1: allowed explicitly (channels_app/outbound.py)
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.keep_logs = False  # set when a benchmark finds a broken invariant without raising
        self.port: int | None = None
        self.token: str | None = None
        self._backends_conn: psycopg.Connection | None = None
        self._meters: list[CpuMeter] = []

    # --- lifecycle -------------------------------------------------------------

    def __enter__(self) -> "Stack":
        signal.signal(signal.SIGTERM, _terminate)
        self.flush_redis()
        with psycopg.connect(f"{PG} dbname=postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.database}"')
        if self.broker is not None:
            try:
                self.broker.start()
            except BaseException:
                self.__exit__(RuntimeError, None, None)
                raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        # A second Ctrl-C must not skip the clean-up.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            for meter in self._meters:  # still sampling when interrupted
                meter.stopping.set()
                if meter.thread.is_alive():
                    meter.thread.join()
            if self._backends_conn is not None:
                self._backends_conn.close()
            for _name, process in reversed(self.processes):
                self._stop(process)
            steps = [self.flush_redis, self._drop_database] + ([self.broker.stop] if self.broker else [])
            for step in steps:
                try:
                    step()
                except Exception as error:  # noqa: BLE001 - report and go on cleaning
                    print(f"clean-up: {step.__name__} failed: {error}", file=sys.stderr)
            if exc_type is None and not self.keep_logs:
                shutil.rmtree(self.logs, ignore_errors=True)
            else:
                print(f"server logs kept in {self.logs}", file=sys.stderr)
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if exc_type is KeyboardInterrupt:
            print("interrupted; cleaned up", file=sys.stderr)
            return True
        return False

    def flush_redis(self) -> None:
        if self.redis_db is None:
            return  # a broker of our own: it starts empty
        client = redis.Redis(host="127.0.0.1", port=6379, db=self.redis_db)
        try:
            client.flushdb()
        finally:
            client.close()

    def _drop_database(self) -> None:
        with psycopg.connect(f"{PG} dbname=postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    # --- manage.py ----------------------------------------------------------------

    def manage(self, *args: str) -> str:
        result = subprocess.run([str(BIN / "python"), "manage.py", *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args[:2])} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def shell(self, code: str) -> dict[str, str]:
        """Run `manage.py shell -c code`; the `KEY=value` lines it prints, as a dict."""
        out = self.manage("shell", "-c", code)
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def prepare(self) -> None:
        """Migrate, load the demo data, and create the superuser `bench` with an API token."""
        self.manage("migrate", "--noinput")
        self.manage("seed_demo")
        self.token = self.shell(TOKEN_SNIPPET)["TOKEN"]

    # --- processes --------------------------------------------------------------------

    def _start(self, name: str, command: list[str]) -> subprocess.Popen:
        # A session of its own: Ctrl-C reaches only the benchmark, which stops the group itself.
        with open(self.logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.processes.append((name, process))
        return process

    @staticmethod
    def _stop(process: subprocess.Popen, grace: float = 15.0) -> None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(grace)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            pass
        try:  # the master's children too, and a master that did not stop in time
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()

    def start_gunicorn(self, *, workers: int, threads: int, timeout: float = 60.0) -> int:
        self.port = free_port()
        process = self._start("gunicorn", [
            str(BIN / "gunicorn"), "project.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(workers), "--threads", str(threads), "--timeout", "60",
            "--keep-alive", "75", "--backlog", "2048",
        ])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}; see {self.logs}/gunicorn.log")
            try:
                status, _ = self.request("GET", "/healthz")
                if status == 200:
                    return self.port
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn was not healthy within {timeout:.0f} s; see {self.logs}/gunicorn.log")

    def start_celery(self, *, count: int = 1, concurrency: int = 1, pool: str = "prefork",
                     beat: bool = False) -> None:
        """`count` worker instances, each with `concurrency` children of `pool`;
        with `beat`, the first also runs the periodic tasks (`--beat`, the
        django-celery-beat schedule in the database), as `make run` does."""
        for number in range(1, count + 1):
            self.start_celery_worker(number, concurrency=concurrency, pool=pool, beat=beat and number == 1)
        self.wait_for_celery(count)

    def start_celery_worker(self, number: int, *, concurrency: int = 1, pool: str = "prefork",
                            beat: bool = False) -> subprocess.Popen:
        """Worker instance `celery<number>` (again, after `kill`); it does not wait for it to be ready."""
        command = [
            str(BIN / "celery"), "-A", "project", "worker", "--hostname", f"bench{number}@%h",
            "--pool", pool, "--concurrency", str(concurrency), "--loglevel", "WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]
        if beat:
            command += ["--beat", "--schedule", str(self.logs / "celerybeat-schedule")]
        return self._start(f"celery{number}", command)

    def kill(self, name: str) -> list[int]:
        """SIGKILL the started process `name` and every process of its session
        (pool children, embedded beat): no clean-up, no acknowledgement, as when
        a machine dies. It is forgotten, so that it can be started again; its
        log goes on in the same file. Returns the pids killed."""
        index, process = next((i, p) for i, (started, p) in enumerate(self.processes) if started == name)
        pids = self.tree(name)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in pids:  # a child that left the session (none do today) dies too
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()
        del self.processes[index]
        return pids

    def restart_broker(self, down_seconds: float = 1.0) -> float:
        """Stop the benchmark's own broker, leave it down for `down_seconds`, start
        it again; returns how long it was unavailable (seconds)."""
        started = time.monotonic()
        self.broker.stop()
        time.sleep(down_seconds)  # a broker that is down for a moment, not one that blinks
        self.broker.start()
        return time.monotonic() - started

    def wait_for_celery(self, count: int, timeout: float = 60.0) -> None:
        """Until `count` workers answer a ping (Celery's `control.ping`, through
        kombu: a Celery app would take the broker of a CELERY_BROKER_URL in this
        process's environment, before the stack's)."""
        from kombu import Connection
        from kombu.pidbox import Mailbox

        mailbox = Mailbox("celery", type="fanout", accept=["json"], serializer="json")  # Celery's control mailbox
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes:
                if name.startswith("celery") and process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}; see {self.logs}/{name}.log")
            try:  # a new connection each time: the broker may have been restarted since the last call
                with Connection(self.env["CELERY_BROKER_URL"]) as connection:
                    if len(mailbox(connection)._broadcast("ping", reply=True, timeout=1.0) or []) >= count:
                        return
            except (OSError, ConnectionError, redis.RedisError) as error:  # a broker being restarted
                print(f"ping: {error!r}", file=sys.stderr)
                time.sleep(0.5)
        raise RuntimeError(f"{count} Celery worker(s) did not answer within {timeout:.0f} s; see {self.logs}")

    def tree(self, name: str) -> list[int]:
        """Pids of the started process `name` and of its descendants."""
        root = next(process.pid for started, process in self.processes if started == name)
        parents = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (stat := _proc_stat(int(entry))) is not None:
                parents[int(entry)] = stat[0]
        pids, frontier = [root], [root]
        while frontier:
            frontier = [pid for pid, parent in parents.items() if parent in frontier]
            pids += frontier
        return pids

    def backends(self) -> list[int]:
        """Pids of the PostgreSQL backends connected to the benchmark's database (but this one's)."""
        if self._backends_conn is None:
            self._backends_conn = psycopg.connect(self.dsn, autocommit=True)
        return [row[0] for row in self._backends_conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]

    def cpu_meter(self) -> CpuMeter:
        """CPU of each started process tree and of the database's backends ("postgres")."""
        meter = CpuMeter(lambda: {**{name: self.tree(name) for name, _ in self.processes},
                                  "postgres": self.backends()})
        self._meters.append(meter)
        return meter

    def check_alive(self) -> None:
        for name, process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {self.logs}/{name}.log")

    # --- HTTP ---------------------------------------------------------------------------

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, bytes]:
        """One request on a new connection (set-up and checks, not load)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def sql(self, query: str, *params) -> list[tuple]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cursor = conn.execute(query, params or None)
            return cursor.fetchall() if cursor.description else []


# --- the third party and the REST API ----------------------------------------------------


class WebhookReceiver:
    """The third party: an asyncio HTTP/1.1 server (keep-alive) on 127.0.0.1 in
    a thread of its own. It answers every POST with 200 {"messageId":
    "ext-<webhook-id>"} and notes, by `webhook-id` (our message id), the first
    arrival (`clock()`), how many POSTs carried it and, with `note_recipients`,
    the customer it was for (the body's channel.to.id); and how many POSTs had
    a wrong X-Hub-Signature (HMAC-SHA1 with `secret`)."""

    def __init__(self, secret: str, *, clock=time.time, note_recipients: bool = False):
        self.secret, self.clock, self.note_recipients = secret.encode(), clock, note_recipients
        self.lock = threading.Lock()
        self.reset()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait()

    def reset(self) -> None:
        with self.lock:
            self.arrivals: dict[str, float] = {}  # webhook-id -> first arrival
            self.counts: Counter = Counter()  # webhook-id -> POSTs
            self.recipients: dict[str, str] = {}  # webhook-id -> channel.to.id (with note_recipients)
            self.requests = 0
            self.bad_signatures = 0

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = self.clock()
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                webhook_id = headers.get("webhook-id", "")
                expected = "sha1=" + hmac.new(self.secret, body, hashlib.sha1).hexdigest()
                recipient = _recipient_of(body) if self.note_recipients else None
                with self.lock:
                    self.requests += 1
                    self.counts[webhook_id] += 1
                    self.arrivals.setdefault(webhook_id, arrived)
                    if recipient is not None:
                        self.recipients[webhook_id] = recipient
                    self.bad_signatures += not hmac.compare_digest(expected, headers.get("x-hub-signature", ""))
                answer = json.dumps({"messageId": f"ext-{webhook_id}"}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    def distinct(self) -> int:
        with self.lock:
            return len(self.arrivals)

    def received(self, ids) -> int:
        """How many of `ids` have arrived."""
        with self.lock:
            return sum(1 for webhook_id in ids if webhook_id in self.arrivals)

    def duplicate_posts(self) -> int:
        """POSTs that repeated a webhook-id already received."""
        with self.lock:
            return self.requests - len(self.arrivals)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _recipient_of(body: bytes) -> str:
    try:
        return str(json.loads(body)["channel"]["to"]["id"])
    except (ValueError, KeyError, TypeError):
        return ""


class Api:
    """The REST API with the stack's token, JSON in and out."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.headers = {"Authorization": f"Token {stack.token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body=None, expect=(200,)) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        status, answer = self.stack.request(method, path, data, self.headers)
        if status not in expect:
            raise RuntimeError(f"{method} {path}: {status} {answer[:1000].decode(errors='replace')}")
        return json.loads(answer) if answer else {}
