"""bench/measure.py's exact accounting of a process tree (PostgreSQL's postmaster and its backends)."""

import os
import signal
import subprocess
import time
from urllib.parse import urlsplit

import psycopg
import pytest

from bench import measure
from bench.measure import CpuMeter, MemoryMeter, proc_stat, process_roles, rss_mb, tree_cpu, tree_ticks
from bench.processes import postgres_settings, postmaster_pid


def test_tree_ticks_counts_live_descendants_and_what_their_parents_reaped():
    # pid: (parent, own ticks, reaped children's ticks)
    table = {
        1: (0, 500, 9000),  # init: not in the tree
        10: (1, 7, 40),  # the root: 40 ticks of children that ended
        11: (10, 5, 0),  # a live child
        12: (10, 3, 6),  # a live child that reaped a grandchild of 6
        13: (12, 2, 0),  # a live grandchild
        20: (1, 100, 0),  # another tree
    }
    assert tree_ticks(table, 10) == 7 + 40 + 5 + 3 + 6 + 2
    assert tree_ticks(table, 12) == 3 + 6 + 2
    assert tree_ticks(table, 99) is None


def test_tree_ticks_between_two_readings_counts_a_child_that_ended_once():
    # The child 11 used 30 ticks, 20 before the first reading; it ended and was reaped before the second.
    first = {10: (1, 7, 0), 11: (10, 20, 0)}
    second = {10: (1, 7, 30)}
    # A child born and ended between the readings (12 ticks) is in the root's reaped ticks too.
    third = {10: (1, 8, 42)}
    assert tree_ticks(second, 10) - tree_ticks(first, 10) == 10
    assert tree_ticks(third, 10) - tree_ticks(first, 10) == 10 + 12 + 1


def _server_dsn() -> str:
    url = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    return f"host={url.hostname} port={url.port or 5432} user={url.username or 'postgres'} dbname=postgres"


def test_the_postgres_tree_counts_backends_that_ended_between_samples():
    with psycopg.connect(_server_dsn(), autocommit=True) as conn:
        postmaster = postmaster_pid(conn)
    if postmaster is None or tree_cpu(postmaster) is None:
        pytest.skip("PostgreSQL's processes are not in this machine's /proc")
    meter = CpuMeter(dict, interval=60.0, trees=lambda: {"postgres": postmaster}).start()
    used_by_backends = 0.0
    for _ in range(5):  # five backends, each living far less than the sampling interval
        with psycopg.connect(_server_dsn(), autocommit=True) as conn:
            conn.execute("SELECT count(*) FROM generate_series(1, 2000000)").fetchone()
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            used_by_backends += proc_stat(backend)[1]
    cpu = meter.stop()
    assert used_by_backends > 0.05  # the work is visible at /proc's resolution (10 ms)
    assert cpu["postgres"] >= used_by_backends
    assert cpu["postgres"] <= cpu["seconds"] * (os.cpu_count() or 1)


def test_postgres_settings_are_the_version_and_the_listed_settings_in_order():
    settings = postgres_settings(_server_dsn())
    assert [name for name, _ in settings] == [
        "pg_server_version", "pg_shared_buffers", "pg_synchronous_commit", "pg_wal_level", "pg_max_wal_size",
        "pg_checkpoint_timeout", "pg_work_mem", "pg_fsync", "pg_effective_io_concurrency", "pg_max_connections",
        "pg_autovacuum"]
    assert all(value for _, value in settings)


def test_process_roles_tell_a_root_from_its_descendants():
    # sh, its subshell, and the subshell's sleep: the root is "_main", both below it "_children".
    parent = subprocess.Popen(["sh", "-c", "(sleep 30; true); true"])
    try:
        deadline = time.monotonic() + 20
        while len((roles := process_roles({"tree": parent.pid})).get("tree_children", [])) < 2:
            assert time.monotonic() < deadline, roles
            time.sleep(0.05)
        assert roles["tree_main"] == [parent.pid]
        assert parent.pid not in roles["tree_children"]
    finally:
        for pid in process_roles({"tree": parent.pid}).get("tree_children", []):
            os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()


def test_memory_meter_reports_the_worst_process_of_a_role_and_its_growth(monkeypatch):
    current: dict[int, float] = {}
    monkeypatch.setattr(measure, "rss_mb", current.get)
    meter = MemoryMeter(lambda: {"web_children": [1, 2]})
    for reading in ({1: 100.0, 2: 50.0}, {1: 90.0, 2: 80.0}, {1: 95.0, 2: 70.0}):
        current.clear()
        current.update(reading)
        meter.sample()
    # The highest of any one process (100, not 100 + 80), and the worst process's last - first (2: +20).
    assert meter.figures() == [("peak_rss_mb_web_children", 100.0), ("rss_growth_mb_web_children", 20.0)]


def test_rss_of_a_live_process_and_of_a_gone_one():
    assert 1 < rss_mb(os.getpid()) < 2000
    assert rss_mb(2**22 + 7) is None
