"""CPU and memory of supervised processes, read with psutil.

``procward status`` shows each instance's main process (the pid it lists):
reading one process per service keeps a status request cheap with hundreds
of services. ``/metrics``, scraped rarely, sums the whole process tree.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil

__all__ = ["ResourceSampler", "Usage"]

_CORES = os.cpu_count() or 1


@dataclass(frozen=True)
class Usage:
    cpu_percent: float
    rss: int
    cpu_seconds: float


class ResourceSampler:
    """Remembers each process's last CPU reading so CPU % covers the time between calls."""

    def __init__(self) -> None:
        # pid -> (process, cpu seconds at last call, wall time at last call)
        self._seen: dict[int, tuple[psutil.Process, float, float]] = {}

    def usage(self, pid: int | None, started_at: float | None) -> Usage | None:
        if pid is None:
            return None
        now = time.time()
        try:
            proc, last_cpu, last_at = self._seen.get(pid) or (psutil.Process(pid), -1.0, 0.0)
            with proc.oneshot():
                times = proc.cpu_times()
                rss = proc.memory_info().rss
        except psutil.Error:
            self._seen.pop(pid, None)
            return None
        cpu = times.user + times.system
        if last_cpu < 0:
            # First look: the average since the process started.
            last_cpu, last_at = 0.0, started_at or proc.create_time()
        elapsed = now - last_at
        percent = 100.0 * (cpu - last_cpu) / elapsed if elapsed > 0 else 0.0
        self._seen[pid] = (proc, cpu, now)
        # Clocks of different resolution (process CPU times against wall time) can
        # claim more than the machine has over a tiny interval: never show that.
        percent = min(max(percent, 0.0), 100.0 * _CORES)
        return Usage(round(percent, 1), rss, cpu)

    def forget_except(self, live: set[int]) -> None:
        for pid in [p for p in self._seen if p not in live]:
            del self._seen[pid]


def tree_usage(pids: list[int]) -> dict[int, Usage]:
    """RSS and CPU seconds of each pid's whole tree, from one pass over the process table."""
    children: dict[int, list[psutil.Process]] = {}
    procs: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["ppid"]):
        procs[proc.pid] = proc
        children.setdefault(proc.info["ppid"], []).append(proc)
    out: dict[int, Usage] = {}
    for pid in pids:
        if pid not in procs:
            continue
        rss, cpu, todo, seen = 0, 0.0, [procs[pid]], set()
        while todo:
            proc = todo.pop()
            if proc.pid in seen:
                continue
            seen.add(proc.pid)
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    rss += proc.memory_info().rss
                    cpu += times.user + times.system
            except psutil.Error:
                continue
            todo.extend(children.get(proc.pid, []))
        out[pid] = Usage(0.0, rss, cpu)
    return out
