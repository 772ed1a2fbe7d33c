"""`make run` is safe as it is (API.md, "Operating the server"), and its supervisor (scripts/serve.sh) stops
every process when any one of them dies, even by SIGKILL: no orphan beat, no orphan pool process; and when
the supervisor itself is killed with SIGKILL, nothing it started outlives it.

The supervisor runs on an installation of its own (VAR_DIR in a temporary directory: SQLite, the
filesystem broker, its own generated SECRET_KEY), with no DEBUG, HOST, ALLOWED_HOSTS or SECRET_KEY set,
as a new user runs it."""

import http.client
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workers import live_processes_where, poll_until

ROOT = Path(__file__).resolve().parent.parent
# What a new user has set: nothing of ours (the suite's services and settings are left out).
UNSET = {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "HOST", "DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL",
         "WEBHOOK_ALLOWED_NETWORKS", "HTTPS_ONLY", "DJANGO_SETTINGS_MODULE"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def installation(tmp_path_factory) -> dict:
    """The environment of a fresh installation, migrated once."""
    var_dir = tmp_path_factory.mktemp("installation") / "var"  # created by the project, as on a first start
    env = {name: value for name, value in os.environ.items() if name not in UNSET}
    env.update(VAR_DIR=str(var_dir), CELERY_CONCURRENCY="1", CELERY_MEDIA_CONCURRENCY="1", WEB_CONCURRENCY="1",
               STOP_SECONDS="5")
    # the usual umask of a login (group and others may read what is created), not the suite's
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True,
                   timeout=120, umask=0o022)
    return env


def _state(pid: int) -> str | None:
    """A process's state letter (None: gone). A zombie is gone too: it only waits to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return None if state in "ZX" else state


def _group_members(group: int) -> list[int]:
    return live_processes_where(group=group)


def _command_line(pid: int) -> str:
    """A process's whole command line (ps cuts it at the terminal's width: a clone under a long path lost the
    arguments that tell the processes apart)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


# The processes of make run (scripts/serve.sh) by what their command lines say.
ROLES = {"people": "-Q people,celery", "bulk": "-Q bulk", "media": "-Q media", "beat": "project beat",
         "dispatcher": "manage.py dispatch", "web": "gunicorn project.asgi"}


def _children(pid: int) -> dict[str, int]:
    """The supervisor's children by role (ROLES)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) != pid or fields[0] in "ZX":
            continue
        command = _command_line(int(entry.name))
        for role, marker in ROLES.items():
            if marker in command:
                found[role] = int(entry.name)
    return found


def _get(port: int, path: str) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _answers(port: int) -> bool:
    try:
        return _get(port, "/healthz")[0] == 200
    except OSError:
        return False


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port` (from /proc/net/tcp and tcp6)."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, local_port = local.split(":")
            if state == "0A" and int(local_port, 16) == port:
                addresses.add(address)
    return addresses


class Supervisor:
    def __init__(self, env: dict, log: Path):
        self.port = _free_port()
        self._log = log.open("ab")
        self.process = subprocess.Popen(["scripts/serve.sh"], cwd=ROOT, env={**env, "PORT": str(self.port)},
                                        stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        self.log_path = log

    def wait_ready(self) -> dict[str, int]:
        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"serve.sh ended with {self.process.returncode}:\n{self.log_path.read_text()}")
            children = _children(self.process.pid)
            return children if children.keys() == ROLES.keys() and _answers(self.port) else None

        return poll_until(ready, 60, f"the web server, a worker per lane, the beat and the dispatcher: "
                                     f"{_children(self.process.pid)}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # as Ctrl-C: it stops every process it started
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()


@pytest.mark.parametrize("victim", ["people", "beat", "web"])
def test_when_any_process_is_killed_all_of_them_stop(installation, tmp_path, victim):
    # given make run's processes, each in its own process group with its children
    supervisor = Supervisor(installation, tmp_path / "serve.log")
    try:
        children = supervisor.wait_ready()
        groups = {role: os.getpgid(pid) for role, pid in children.items()}
        assert len(set(groups.values())) == len(ROLES), groups

        # when one of them is killed, without a chance to say goodbye
        os.kill(children[victim], signal.SIGKILL)

        # then the supervisor stops the others and ends, and no process of any of them is left (no orphan beat)
        poll_until(lambda: supervisor.process.poll() is not None, 30, "serve.sh to end")
        poll_until(lambda: not any(_group_members(group) for group in groups.values()), 15,
                   f"every process to stop: {[_group_members(group) for group in groups.values()]}")
    finally:
        supervisor.close()


def test_when_the_supervisor_itself_is_killed_no_process_outlives_it(installation, tmp_path):
    # given make run's processes
    supervisor = Supervisor(installation, tmp_path / "serve.log")
    groups = []
    try:
        children = supervisor.wait_ready()
        groups = [os.getpgid(pid) for pid in children.values()]

        # when serve.sh itself is killed, without a chance to run its trap
        os.kill(supervisor.process.pid, signal.SIGKILL)
        supervisor.process.wait(timeout=10)

        # then every process it started stops, with its children (a worker's pool, gunicorn's workers)
        poll_until(lambda: not any(_group_members(group) for group in groups), 30,
                   f"every process to stop: {[(g, _group_members(g)) for g in groups]}\n"
                   f"{supervisor.log_path.read_text()[-3000:]}")
    finally:
        for group in groups:  # whatever a failure left
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        supervisor.close()


def test_make_run_defaults_are_safe(installation, tmp_path):
    # given make run as a new user starts it, twice
    keys = []
    for start in range(2):
        supervisor = Supervisor(installation, tmp_path / f"serve-{start}.log")
        try:
            supervisor.wait_ready()

            # then it listens on 127.0.0.1 only
            assert _listening_addresses(supervisor.port) == {"0100007F"}  # 127.0.0.1, as /proc/net/tcp writes it

            # an unknown URL and a request for an unknown host show no debug page
            status, _headers, body = _get(supervisor.port, "/no-such-page/")
            assert status == 404
            assert b"URLconf" not in body and b"DEBUG" not in body and b"Traceback" not in body
            connection = http.client.HTTPConnection("127.0.0.1", supervisor.port, timeout=10)
            connection.request("GET", "/admin/login/", headers={"Host": "attacker.example"})
            refused = connection.getresponse()
            refused_body = refused.read()
            connection.close()
            assert refused.status == 400
            assert b"ALLOWED_HOSTS" not in refused_body and b"DisallowedHost" not in refused_body

            # the admin works over plain http (DEBUG off, no redirect to https, cookies that http can carry)
            status, headers, body = _get(supervisor.port, "/admin/login/")
            assert status == 200, headers
            assert "secure" not in headers.get("Set-Cookie", "").lower()
            assert "Strict-Transport-Security" not in headers
            # what its processes create is their owner's only
            for role, pid in supervisor.wait_ready().items():
                umask = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                             if line.startswith("Umask:"))
                assert umask.split()[1] == "0077", role
        finally:
            supervisor.close()
        # var/ and the SQLite database (created by the first migrate, with a umask of 022) are their owner's only
        var_dir = Path(installation["VAR_DIR"])
        assert oct(var_dir.stat().st_mode & 0o777) == "0o700"
        database_files = list(var_dir.glob("db.sqlite3*"))
        assert var_dir / "db.sqlite3" in database_files
        assert {file.name: oct(file.stat().st_mode & 0o777) for file in database_files} == {
            file.name: "0o600" for file in database_files}
        # and its SECRET_KEY was generated for this installation, readable by its owner only, and kept
        key_file = Path(installation["VAR_DIR"]) / "secret_key"
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        keys.append(key_file.read_text())
    assert keys[0] == keys[1] and len(keys[0]) >= 50


def test_the_generated_secret_key_is_the_one_the_settings_use(tmp_path):
    env = {name: value for name, value in os.environ.items() if name not in UNSET}
    env["VAR_DIR"] = str(tmp_path)
    read_key = [sys.executable, "-c", "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'project.settings'; "
                "from django.conf import settings; print(settings.SECRET_KEY, settings.DEBUG)"]

    first = subprocess.run(read_key, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
    second = subprocess.run(read_key, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
    given = subprocess.run(read_key, cwd=ROOT, env={**env, "SECRET_KEY": "x" * 60}, capture_output=True, text=True,
                           timeout=60, check=True)

    key = (tmp_path / "secret_key").read_text().strip()
    assert first.stdout.split() == second.stdout.split() == [key, "False"]
    assert given.stdout.split()[0] == "x" * 60
