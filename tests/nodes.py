"""Complete installations ("nodes") started by the tests as production starts them: `scripts/serve.sh` (the web
server, the dispatcher, a worker per lane and a beat) with a VAR_DIR, a port and a node name of its own, on the
test database and the suite's broker. Its standard output and standard error go to files of their own."""

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

from django.conf import settings

from tests.conftest import LOCAL_RECEIVERS
from tests.workers import healthz_answers, live_processes_where, poll_until, test_database_url

# What the suite sets that a node must not inherit.
UNSET = {"DJANGO_SETTINGS_MODULE", "PYTEST_CURRENT_TEST", "PYTEST_VERSION"}


def ensure_default_groups() -> None:
    """The default groups with their permissions, also after a test that flushed the permissions away (a flush
    with serialized rollback does not run post_migrate again)."""
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.contenttypes.management import create_contenttypes

    from channels_app.services.roles import roles_ensure_default_groups

    for app_config in apps.get_app_configs():
        create_contenttypes(app_config, verbosity=0)
        create_permissions(app_config, verbosity=0)
    roles_ensure_default_groups()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Node:
    def __init__(self, name: str, var_dir: Path, env: dict | None = None):
        var_dir.mkdir(parents=True, exist_ok=True)
        self.name, self.var_dir, self.port = name, var_dir, free_port()
        self.stdout_path, self.stderr_path = var_dir / "stdout.log", var_dir / "stderr.log"
        self.env = {
            **{key: value for key, value in os.environ.items() if key not in UNSET},
            "DATABASE_URL": test_database_url(), "VAR_DIR": str(var_dir), "PORT": str(self.port),
            "NODE_NAME": name, "WEBHOOK_ALLOWED_NETWORKS": ",".join(LOCAL_RECEIVERS), "STOP_SECONDS": "5",
            "SECRET_KEY": "the-same-secret-key-on-every-node-of-the-suite", "WEB_CONCURRENCY": "1",
            "CELERY_CONCURRENCY": "1", "BEAT_LOCK_RETRY_SECONDS": "0.5", **(env or {}),
        }
        self.process = None

    def start(self) -> "Node":
        self._out, self._err = self.stdout_path.open("ab"), self.stderr_path.open("ab")
        self.process = subprocess.Popen(["scripts/serve.sh"], cwd=settings.BASE_DIR, env=self.env, stdout=self._out,
                                        stderr=self._err, stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90.0) -> None:
        """The web server answers /healthz, the dispatcher and both workers are ready."""
        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"node {self.name} ended with {self.process.returncode}:\n{self.output()[-8000:]}")
            text = self.output()
            return (text.count("ready.") >= 2 and "Dispatcher ready" in text and self.answers())

        poll_until(ready, timeout, f"node {self.name} to start")

    def answers(self) -> bool:
        return healthz_answers(self.port)

    def json_lines(self) -> list[dict]:
        """Every line of standard output, parsed (a line that is not one JSON object fails the test)."""
        lines = []
        for number, line in enumerate(self.stdout_path.read_text(errors="replace").splitlines(), 1):
            try:
                parsed = json.loads(line)
            except ValueError as error:
                raise AssertionError(f"line {number} of node {self.name} is not JSON: {line!r}") from error
            assert isinstance(parsed, dict), line
            lines.append(parsed)
        return lines

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()  # as Ctrl-C: the supervisor stops every process it started
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close()

    def kill(self) -> None:
        """SIGKILL to every process of the node at once, as when its machine dies."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            # serve.sh puts each of its children in a group of its own (set -m): those die too.
            for pid in live_processes_where(session=self.process.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.process.wait(timeout=10)
        self._close()

    def _close(self) -> None:
        for stream in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if stream is not None and not stream.closed:
                stream.close()
