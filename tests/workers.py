"""Real `celery worker` processes for tests about workers: started on the test
database and the suite's broker, stopped, or killed with SIGKILL; and the real
web server (gunicorn with the site's uvicorn workers, as scripts/serve.sh starts
it) for tests of the deployment (tests/test_deployment.py)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from django.conf import settings
from django.db import connection

from tests.conftest import LOCAL_RECEIVERS, require_or_skip


def require_shared_database() -> None:
    require_or_skip(
        bool(os.environ.get("DATABASE_URL")) and connection.vendor != "sqlite",
        "a worker process cannot share the SQLite test database (in memory): set DATABASE_URL to PostgreSQL",
    )


def test_database_url() -> str:
    """DATABASE_URL with the database name pytest-django created (test_<name>)."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + quote(connection.settings_dict["NAME"])))


class ProjectProcess:
    """A process of the project (`python -m <module> ...`) on the test database, with `env` on top; its output
    goes to `log_path`."""

    def __init__(self, arguments: list[str], log_path: Path, env: dict | None = None):
        self.log_path = log_path
        full_env = {**os.environ, "DATABASE_URL": test_database_url(), "DJANGO_SETTINGS_MODULE": "project.settings",
                    # the suite's receivers listen on 127.0.0.1 (tests/conftest.py)
                    "WEBHOOK_ALLOWED_NETWORKS": ",".join(LOCAL_RECEIVERS),
                    "REQUIRE_2FA_GROUPS": "", **(env or {})}
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", *arguments], cwd=settings.BASE_DIR, env=full_env, stdout=self._log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


# How long a process of the suite may take to start: a deadline, not a wait (the polls return as soon as it is
# ready). A worker or gunicorn starts in 2-5 s alone, but took over 30 s with two xdist workers beside other
# loads on two cores, which failed tests that were not about start-up.
START_SECONDS = 90.0

# Every lane of project/settings.py (people, bulk, media) and the default queue: a test's worker does all the work.
ALL_QUEUES = "people,bulk,media,celery"


class DispatcherProcess(ProjectProcess):
    """`manage.py dispatch` (channels_app/dispatcher.py): it sends the single messages."""

    def __init__(self, log_path: Path, env: dict | None = None):
        super().__init__(["django", "dispatch"], log_path, env)

    def wait_ready(self, timeout: float = START_SECONDS) -> None:
        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"the dispatcher exited with {self.process.returncode}:\n{self.log()[-6000:]}")
            return "Dispatcher ready" in self.log()

        poll_until(ready, timeout, "the dispatcher to start")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


class WorkerProcess(ProjectProcess):
    """A `celery worker` consuming every lane (or the `queues` given: one lane, as scripts/serve.sh starts a
    worker per lane) and, unless `dispatcher=False`, a dispatcher beside it: the workers of a deployment
    (scripts/serve.sh). Stopped and killed together, as a machine that dies."""

    def __init__(self, log_path: Path, env: dict | None = None, name: str = "pytest", dispatcher: bool = True,
                 queues: str = ALL_QUEUES):
        self.dispatcher = (
            DispatcherProcess(log_path.with_name(log_path.stem + "-dispatcher.log"), env) if dispatcher else None
        )
        super().__init__([
            "celery", "-A", "project", "worker",
            "--pool", "solo", "--concurrency", "1",
            "--without-heartbeat", "--without-gossip", "--without-mingle",
            "-Q", queues, "-n", f"{name}-{os.getpid()}-{time.monotonic_ns()}@%h", "--loglevel", "INFO",
        ], log_path, env)

    def log(self) -> str:
        own = super().log()[-6000:]
        return own + (f"\n--- dispatcher ---\n{self.dispatcher.log()[-3000:]}" if self.dispatcher else "")

    def wait_ready(self, timeout: float = START_SECONDS) -> None:
        poll_until(lambda: "ready." in ProjectProcess.log(self), timeout, f"the worker to start:\n{self.log()}")
        if self.dispatcher:
            self.dispatcher.wait_ready(timeout)

    def stop(self) -> None:
        if self.dispatcher:
            self.dispatcher.stop()
        super().stop()

    def kill(self) -> None:
        """SIGKILL: no goodbye, no acknowledgement, as when a machine dies."""
        if self.dispatcher:
            self.dispatcher.kill()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)



def live_processes_where(*, group: int | None = None, session: int | None = None) -> list[int]:
    """The pids of the processes (not zombies) of a process group or a session, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if fields[0] in "ZX":
                continue
            if (group is not None and int(fields[2]) == group) or (session is not None and int(fields[3]) == session):
                members.append(int(entry.name))
    return members


def healthz_answers(port: int) -> bool:
    """Whether the server on 127.0.0.1:`port` answers `/healthz` with 200."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def poll_until(condition, timeout: float, what: str):
    """Poll with a deadline (never a bare sleep to wait for work)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class GunicornProcess(ProjectProcess):
    """The web server as production runs it (scripts/serve.sh: `gunicorn project.asgi:application` with the
    site's uvicorn workers, project/server.py; one process, WEB_THREADS=4), on the test database, with `env` on
    top (DEBUG=false and the like); its output (access log included) goes to `log_path`."""

    def __init__(self, log_path: Path, env: dict | None = None):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        super().__init__([
            "gunicorn", "project.asgi:application", "--worker-class", "project.server.Worker",
            "--bind", f"127.0.0.1:{self.port}", "--workers", "1", "--access-logfile", "-",
        ], log_path, {"WEB_THREADS": "4", **(env or {})})

    def wait_ready(self, timeout: float = START_SECONDS) -> None:
        def healthy():
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited with {self.process.returncode}:\n{self.log()[-6000:]}")
            return healthz_answers(self.port)

        poll_until(healthy, timeout, "gunicorn to answer /healthz")
