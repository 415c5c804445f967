"""memory_max: restart a service whose process tree stays above its memory limit.

One timer for the whole daemon samples, with psutil, the resident memory of
each running instance's tree (the main process and every descendant) that
has a limit. One sample over the limit is not enough, a program may peak for
a moment; ``samples`` in a row are. Services without ``memory_max`` cost
nothing here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Protocol

import psutil

__all__ = ["MemoryWatch", "tree_rss"]

SAMPLE_EVERY = 0.5
SAMPLES_OVER = 3


class Watched(Protocol):
    """What the watch needs of an instance."""

    name: str
    memory_max: int | None

    @property
    def pid(self) -> int | None: ...

    def memory_exceeded(self, rss: int) -> None: ...


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants; 0 if it is gone."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue  # ended between the listing and the reading
    return total


class MemoryWatch:
    """Samples every limited instance every ``every`` seconds; acts after ``samples`` overs."""

    def __init__(self, instances: Callable[[], Iterable[Watched]], *,
                 every: float = SAMPLE_EVERY, samples: int = SAMPLES_OVER) -> None:
        self._instances = instances
        self._every = every
        self._samples = samples
        self._over: dict[str, tuple[int, int]] = {}  # name -> (pid, samples over)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="procward:memory")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with_cancel = asyncio.gather(self._task, return_exceptions=True)
            await with_cancel
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            self.sample()

    def sample(self) -> None:
        seen: set[str] = set()
        for inst in self._instances():
            if inst.memory_max is None or inst.pid is None:
                continue
            seen.add(inst.name)
            rss = tree_rss(inst.pid)
            pid, over = self._over.get(inst.name, (inst.pid, 0))
            if pid != inst.pid:
                over = 0  # a new process: its predecessor's samples do not count
            over = over + 1 if rss > inst.memory_max else 0
            if over >= self._samples:
                over = 0
                inst.memory_exceeded(rss)
            self._over[inst.name] = (inst.pid, over)
        for name in set(self._over) - seen:
            del self._over[name]
