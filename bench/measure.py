"""Measuring a benchmark: CPU seconds per process group (from /proc), percentiles, `name=value` figures.

    meter = CpuMeter(lambda: {"gunicorn": [pid, ...]}, trees=lambda: {"postgres": postmaster_pid}).start()
    ...
    cpu = meter.stop()        # {"gunicorn": s, "postgres": s, "benchmark": s, "other": s, "seconds": s}
    print_figures([("p50_ms", percentile(sorted(latencies), 0.5)), ...])

`bench.processes.Stack.cpu_meter()` gives a meter of every process it started and of the PostgreSQL server.

Two ways of counting a group, both from /proc/<pid>/stat:

* sampled (`groups`): the pids of the group are listed every `interval` (1 s), and each one counts the CPU it
  used between the first and the last time it was seen. A process that ends loses its last interval, one that
  lives less than an interval is not seen at all. Used for the processes a benchmark starts (long-lived, and
  some of them SIGKILLed on purpose, which the exact way below could not follow).
* exact (`trees`): a process tree whose root lives through the measurement and waits for its children, as
  PostgreSQL's postmaster does for every backend and background process. The kernel adds a child's CPU
  (its own and that of its waited-for descendants) to its parent's cutime and cstime when the parent reaps it,
  so at any instant

      tree_cpu(root) = sum over the root and its live descendants of (utime + stime + cutime + cstime)

  counts every process of the tree that ever ran, those that ended included (a zombie not yet reaped counts
  with its own times, and not yet in its parent's). The group's CPU is tree_cpu at stop() minus tree_cpu at
  start(): a backend that lived 3 ms between two samples counts its 3 ms, one that was alive at start() counts
  only what it used after. Two readings suffice; the root's cutime is read before and after each scan of
  /proc and the scan repeated when a child was reaped in between. The kernel adds a reaped child's times in
  nanoseconds (shown in ticks, 10 ms, only as the sum), so a backend of 3 ms counts 3 ms, where reading the
  backend itself shows 0 ticks; the live processes are read in whole ticks (less than one tick of error each).
  For PostgreSQL it is the whole server: the backends of every database (another benchmark's or test run's
  too: run alone) and the background processes (WAL writer, checkpointer, autovacuum workers), whose work the
  benchmark's writes cause.
"""

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path


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


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), None when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used so far) of a live process, from /proc."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _process_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, own CPU ticks, reaped children's CPU ticks) of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))) is not None:
            table[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]),
                                 int(fields[13]) + int(fields[14]))
    return table


def tree_ticks(table: dict[int, tuple[int, int, int]], root: int) -> int | None:
    """CPU ticks used so far by `root` and all its descendants, the ended ones included (they are in their
    parents' reaped children's ticks), from a process table; None when the root is not in it."""
    if root not in table:
        return None
    children: dict[int, list[int]] = {}
    for pid, (parent, _own, _reaped) in table.items():
        children.setdefault(parent, []).append(pid)
    total, frontier = 0, [root]
    while frontier:
        pid = frontier.pop()
        total += table[pid][1] + table[pid][2]
        frontier += children.get(pid, [])
    return total


def tree_cpu(root: int, attempts: int = 5) -> float | None:
    """CPU seconds used so far by the process tree of `root` (see the module's docstring); None when the root
    is gone. The scan is repeated when the root reaped a child during it (that child would count twice or
    not at all)."""
    for _ in range(attempts):
        before = _stat_fields(root)
        table = _process_table()
        after = _stat_fields(root)
        if before is None or after is None:
            return None
        if before[13:15] == after[13:15]:
            break
    ticks = tree_ticks(table, root)
    return None if ticks is None else ticks / CLOCK_TICKS


class CpuMeter:
    """CPU seconds used by groups of processes between start() and stop().
    `groups()` returns {group name: [pid, ...]}, sampled every `interval` (a
    process that ends loses at most its last interval), evaluated at every
    sample so that new processes (children) count. `trees()` returns {group
    name: root pid}, each counted exactly, ended processes included, from two
    readings (the module's docstring); its roots must live until stop()."""

    def __init__(self, groups, interval: float = 1.0, trees=dict):
        self.groups, self.interval, self.trees = groups, interval, trees
        self.tree_roots: dict[str, int] = {}
        self.tree_start: dict[str, float] = {}
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.group_of: dict[int, str] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for group, pids in self.groups().items():
            for pid in pids:
                stat = proc_stat(pid)
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
        return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK_TICKS

    def start(self) -> "CpuMeter":
        self.began, self.busy, self.own = time.monotonic(), self._machine_busy(), time.process_time()
        self.tree_roots = dict(self.trees())
        for group, root in self.tree_roots.items():
            if (used := tree_cpu(root)) is None:
                raise RuntimeError(f"{group}: process {root} is not in /proc (another machine or pid namespace?)")
            self.tree_start[group] = used
        self._sample()
        self.thread.start()
        return self

    def stop(self) -> dict[str, float]:
        """CPU seconds per group; also "benchmark" (this process) and "other": the
        rest of the machine's busy time (other programs, short-lived processes
        outside the trees)."""
        self.stopping.set()
        self.thread.join()
        self._sample()
        used: dict[str, float] = {}
        for group, root in self.tree_roots.items():
            if (end := tree_cpu(root)) is None:
                raise RuntimeError(f"{group}: process {root} ended during the measurement")
            used[group] = end - self.tree_start[group]
        for pid, group in self.group_of.items():
            used[group] = used.get(group, 0.0) + self.last[pid] - self.first[pid]
        used["benchmark"] = time.process_time() - self.own
        used["other"] = max(0.0, self._machine_busy() - self.busy - sum(used.values()))
        used["seconds"] = time.monotonic() - self.began
        return used


PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MB (/proc/<pid>/statm, pages shared with a fork's parent included,
    as `ps` and the issue's 200 MB count them), None when it is gone."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_MB
    except (OSError, IndexError, ValueError):
        return None


def process_roles(roots: dict[str, int]) -> dict[str, list[int]]:
    """{"<name>_main": [root], "<name>_children": [descendants]} for each started process `name` -> root pid, from
    one scan of /proc: a web server's master and its workers, a Celery worker and its pool's children, are
    told apart (the children are the ones that grow)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := proc_stat(int(entry))) is not None:
            children.setdefault(stat[0], []).append(int(entry))
    roles: dict[str, list[int]] = {}
    for name, root in roots.items():
        descendants, frontier = [], list(children.get(root, []))
        while frontier:
            pid = frontier.pop()
            descendants.append(pid)
            frontier += children.get(pid, [])
        roles[f"{name}_main"] = [root]
        if descendants:
            roles[f"{name}_children"] = descendants
    return roles


class MemoryMeter:
    """Resident memory of each process a benchmark started, sampled every `interval` from start() (after the
    warm-up) to stop(). `roles()` returns {role: [pid, ...]} (process_roles), evaluated at every sample so that
    children started later count. Per role, figures() gives the largest single process (issue 25: "each
    process flat, <= 200 MB", so a role of several children reports its worst one, not their sum):
    `peak_rss_mb_<role>`, the highest RSS any of its processes reached, and `rss_growth_mb_<role>`, the
    largest (last sample - first sample) of one of its processes: about 0 when memory is flat, a steady
    climb over a long run when something accumulates."""

    def __init__(self, roles, interval: float = 1.0):
        self.roles, self.interval = roles, interval
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.peak: dict[int, float] = {}
        self.role_of: dict[int, str] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        for role, pids in self.roles().items():
            for pid in pids:
                if (rss := rss_mb(pid)) is not None:
                    self.first.setdefault(pid, rss)
                    self.last[pid] = rss
                    self.peak[pid] = max(self.peak.get(pid, 0.0), rss)
                    self.role_of[pid] = role

    def _run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.sample()

    def start(self) -> "MemoryMeter":
        self.sample()
        self.thread.start()
        return self

    def stop(self) -> "MemoryMeter":
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join()
        self.sample()
        return self

    def figures(self) -> list[tuple[str, float]]:
        """`peak_rss_mb_<role>` and `rss_growth_mb_<role>` of every role seen, sorted by role."""
        peaks: dict[str, float] = {}
        growths: dict[str, float] = {}
        for pid, role in self.role_of.items():
            peaks[role] = max(peaks.get(role, 0.0), self.peak[pid])
            growth = self.last[pid] - self.first[pid]
            growths[role] = max(growths.get(role, growth), growth)
        figures: list[tuple[str, float]] = []
        for role in sorted(peaks):
            figures += [(f"peak_rss_mb_{role}", peaks[role]), (f"rss_growth_mb_{role}", growths[role])]
        return figures


@contextmanager
def plans_printed(connection, name: str):
    """auto_explain on Django's connection for the block: the plan of each distinct statement run in it (its
    first execution), with its actual rows and pages, printed as `#` lines (auto_explain reports at NOTICE
    level, which the session sends to its client)."""
    notices: list[str] = []
    raw = connection.connection

    def keep(diagnostic) -> None:
        notices.append(diagnostic.message_primary or "")

    raw.add_notice_handler(keep)
    settings = {"auto_explain.log_min_duration": "0", "auto_explain.log_analyze": "on",
                "auto_explain.log_buffers": "on", "auto_explain.log_nested_statements": "on",
                "auto_explain.log_timing": "off", "auto_explain.log_level": "notice", "client_min_messages": "notice"}
    with connection.cursor() as cursor:
        cursor.execute("LOAD 'auto_explain'")
        for setting, value in settings.items():
            cursor.execute("SELECT set_config(%s, %s, false)", [setting, value])
    notices.clear()
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('auto_explain.log_min_duration', '-1', false)")
        seen = set()
        for notice in notices:
            text = notice.split("Query Text:", 1)[-1].split("(cost=", 1)[0]  # the statement, without its figures
            if text in seen:
                continue
            seen.add(text)
            print(f"# {name} plan:", *(f"#   {line}" for line in notice.splitlines()), sep="\n")
        raw.remove_notice_handler(keep)
