"""Measuring a benchmark: CPU seconds per process group (from /proc), percentiles, `name=value` figures.

    meter = CpuMeter(lambda: {"gunicorn": [pid, ...], "postgres": [...]}).start()
    ...
    cpu = meter.stop()        # {"gunicorn": s, "postgres": s, "benchmark": s, "other": s, "seconds": s}
    print_figures([("p50_ms", percentile(sorted(latencies), 0.5)), ...])

`bench.processes.Stack.cpu_meter()` gives a meter of every process it started and of the database's backends.
"""

import os
import threading
import time
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


def proc_stat(pid: int) -> tuple[int, float] | None:
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
