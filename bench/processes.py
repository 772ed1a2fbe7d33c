"""Run the real stack from a benchmark: PostgreSQL, Redis, gunicorn, Celery.

    from bench.processes import Stack

    with Stack("dms_bench_x", redis_db=6) as stack:   # fresh database, flushed Redis db
        stack.prepare()                               # migrate, seed_demo, superuser token
        stack.shell("...")                            # more set-up through `manage.py shell -c`
        stack.start_gunicorn(workers=2, threads=8)    # the web server (`--server`, below); waits for /healthz
        stack.start_celery(count=2, concurrency=1)
        stack.start_dispatcher()                      # sends the single messages (channels_app/dispatcher.py)
        meter = stack.cpu_meter().start()             # CPU of each process tree and of PostgreSQL (bench/measure.py)
        memory = stack.memory_meter().start()         # RSS of each started process, after the warm-up
        ...                                           # drive load at stack.port
        cpu = meter.stop()                            # {"gunicorn": s, "celery1": s, "postgres": s, ...}
        memory.stop().figures()                       # [("peak_rss_mb_gunicorn_children", mb), ...]
    # on leaving (normally, on an error, on Ctrl-C or SIGTERM): every process
    # started is stopped, the Redis db flushed and the database dropped.

On entering, the stack prints the PostgreSQL settings the benchmark runs with (`print_postgres_settings()`,
`pg_<name>=value` lines, before any figure); a benchmark without a Stack calls it itself. "postgres" in the
CPU figures is the whole PostgreSQL server, every backend that came and went included (bench/measure.py).

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

The web server is scripts/serve.sh's unless a benchmark's `--server` (add_server_argument) says otherwise:

    uvicorn       gunicorn's master with the site's uvicorn workers (project/server.py: httptools) serving
                  project/asgi.py: the event stream on the event loop, every other request through WSGI in
                  `threads` threads a process
    uvicorn-h11   the same with h11 as the HTTP parser (project.server.H11Worker), as before httptools
    gthread       the layout before it: gunicorn's threads on project/wsgi.py (the event stream not served: 421)
    granian       granian's ASGI interface on project/asgi.py (the same application as uvicorn's, another server)
    granian-wsgi  granian's WSGI interface on project/wsgi.py, `threads` blocking threads a process (the event
                  stream not served, as gthread)

Its processes are named `gunicorn` in the CPU figures whichever it is (the benchmarks' keys stay comparable).
"""

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import redis

from bench.measure import CpuMeter, MemoryMeter, print_figures, proc_stat, process_roles

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


WEB_SERVERS = ("uvicorn", "uvicorn-h11", "gthread", "granian", "granian-wsgi")


def add_server_argument(parser) -> None:
    parser.add_argument("--server", choices=WEB_SERVERS, default="uvicorn",
                        help="the web server: uvicorn (scripts/serve.sh's: gunicorn with the site's uvicorn workers, "
                             "httptools), uvicorn-h11 (the same with h11), gthread (gunicorn's threads on "
                             "project.wsgi, the layout before), granian (ASGI) or granian-wsgi")


def web_command(server: str, *, port: int, workers: int, threads: int, timeout: int = 60,
                keep_alive: int = 75, backlog: int = 2048) -> tuple[list[str], dict]:
    """The web server's command line and the environment it needs on top (see the module's docstring)."""
    if server == "gthread":
        return [str(BIN / "gunicorn"), "project.wsgi:application", "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers), "--threads", str(threads), "--timeout", str(timeout),
                "--keep-alive", str(keep_alive), "--backlog", str(backlog)], {}
    if server in ("uvicorn", "uvicorn-h11"):
        worker = "project.server.Worker" if server == "uvicorn" else "project.server.H11Worker"
        return [str(BIN / "gunicorn"), "project.asgi:application", "--worker-class", worker,
                "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--timeout", str(timeout),
                "--keep-alive", str(keep_alive), "--backlog", str(backlog)], {"WEB_THREADS": str(threads)}
    if server == "granian":
        return [str(BIN / "granian"), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), "--backlog", str(backlog), "--no-ws", "--loop", "uvloop",
                "project.asgi:application"], {"WEB_THREADS": str(threads)}
    if server == "granian-wsgi":
        return [str(BIN / "granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), "--blocking-threads", str(threads), "--backlog", str(backlog),
                "--no-ws", "--loop", "uvloop", "project.wsgi:application"], {}
    raise ValueError(f"--server is one of {', '.join(WEB_SERVERS)}, not {server!r}")


POSTGRES_SETTINGS = ("shared_buffers", "synchronous_commit", "wal_level", "max_wal_size", "checkpoint_timeout",
                     "work_mem", "fsync", "effective_io_concurrency", "max_connections", "autovacuum")


def postgres_settings(dsn: str = f"{PG} dbname=postgres") -> list[tuple[str, str]]:
    """The server's version and the settings of POSTGRES_SETTINGS, as `pg_<name>` figures (with their units)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        values = dict(conn.execute("SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
                                   (list(POSTGRES_SETTINGS),)).fetchall())
        version = conn.execute("SELECT current_setting('server_version')").fetchone()[0]
    return [("pg_server_version", version), *((f"pg_{name}", values[name]) for name in POSTGRES_SETTINGS)]


def print_postgres_settings(dsn: str = f"{PG} dbname=postgres") -> None:
    """Print the PostgreSQL settings a benchmark runs with, before its figures (the headline stays last)."""
    print_figures(postgres_settings(dsn))


def postmaster_pid(conn: psycopg.Connection) -> int | None:
    """The pid of PostgreSQL's postmaster (the parent of this connection's backend), None when the server
    is not a process of this machine's /proc (another host, a container's pid namespace)."""
    backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    stat = proc_stat(backend)
    return None if stat is None else stat[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    def __init__(self, database: str, *, redis_db: int | None = None, broker: str | None = None,
                 server: str = "uvicorn"):
        """The Celery broker: db `redis_db` of the machine's Redis (flushed
        before and after), or with `broker` ("redis", "rabbitmq") one of the
        benchmark's own, started on entering and stopped on leaving. `server`:
        the web server (WEB_SERVERS)."""
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
        self.server = server
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
        print_postgres_settings()
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

    def _start(self, name: str, command: list[str], env: dict | None = None) -> subprocess.Popen:
        # A session of its own: Ctrl-C reaches only the benchmark, which stops the group itself.
        with open(self.logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen(command, cwd=ROOT, env={**self.env, **(env or {})}, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
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
        """The web server (`self.server`, named `gunicorn` whichever it is) with `workers` processes of
        `threads` threads; its port once /healthz answers."""
        self.port = free_port()
        command, env = web_command(self.server, port=self.port, workers=workers, threads=threads)
        process = self._start("gunicorn", command, env)
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
                            beat: bool = False, queues: str | None = None) -> subprocess.Popen:
        """Worker instance `celery<number>` (again, after `kill`), consuming `queues` (default: every lane);
        it does not wait for it to be ready."""
        command = [
            str(BIN / "celery"), "-A", "project", "worker", "--hostname", f"bench{number}@%h",
            "--pool", pool, "--concurrency", str(concurrency), "--loglevel", "WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ] + (["-Q", queues] if queues else [])
        if beat:
            command += ["--beat", "--schedule", str(self.logs / "celerybeat-schedule")]
        return self._start(f"celery{number}", command)

    def start_dispatcher(self, number: int = 1, *, threads: int | None = None,
                         wait: bool = True) -> subprocess.Popen:
        """`manage.py dispatch` as `dispatcher<number>` (channels_app/dispatcher.py): it sends the single
        messages (agent replies, invitations, retries); with `wait`, until it says it is ready."""
        name = f"dispatcher{number}"
        command = [str(BIN / "python"), "manage.py", "dispatch"] + (["--threads", str(threads)] if threads else [])
        process = self._start(name, command)
        if wait:
            log = self.logs / f"{name}.log"
            _wait_until(lambda: "Dispatcher ready" in log.read_text(errors="replace"), 30, name, process)
        return process

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
            if entry.isdigit() and (stat := proc_stat(int(entry))) is not None:
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

    def postmaster(self) -> int | None:
        """The PostgreSQL server's postmaster pid (postmaster_pid), None when it is not on this machine."""
        if self._backends_conn is None:
            self._backends_conn = psycopg.connect(self.dsn, autocommit=True)
        return postmaster_pid(self._backends_conn)

    def cpu_meter(self) -> CpuMeter:
        """CPU of each started process tree (sampled) and of the PostgreSQL server ("postgres": the
        postmaster's tree, exactly, every backend that ended included; see bench/measure.py). When the
        server's processes cannot be read here, "postgres" is the database's backends, sampled."""
        postmaster = self.postmaster()
        if postmaster is None:
            print("postgres: the server's processes are not on this machine; its CPU is sampled",
                  file=sys.stderr)
            meter = CpuMeter(lambda: {**{name: self.tree(name) for name, _ in self.processes},
                                      "postgres": self.backends()})
        else:
            meter = CpuMeter(lambda: {name: self.tree(name) for name, _ in self.processes},
                             trees=lambda: {"postgres": postmaster})
        self._meters.append(meter)
        return meter

    def memory_meter(self) -> MemoryMeter:
        """Resident memory of every started process (the web server's master and workers, each Celery worker
        and its children, the dispatcher: process_roles), sampled every second from start() to stop();
        PostgreSQL's backends aside (their RSS counts the shared buffers they touched, not a leak of ours).
        Its figures() go before a benchmark's headline (bench/measure.py MemoryMeter)."""
        meter = MemoryMeter(lambda: process_roles({name: process.pid for name, process in self.processes}))
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
