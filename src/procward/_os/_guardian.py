"""Ends a dead daemon's children on Linux, the moment the daemon dies.

Run as ``python -I -S _guardian.py JOURNAL`` with a pipe from the daemon as
stdin. It sleeps in ``read()``; when the daemon dies, however it dies, the
kernel closes the pipe, ``read()`` returns, and the guardian kills the process
group of every child the journal still lists. A separate process instead of
``PR_SET_PDEATHSIG`` because setting that needs ``preexec_fn``, which makes
every spawn three times slower, and because it reaches only the direct child.

Standard library only, and no site-packages, so it costs a few megabytes.
"""

from __future__ import annotations

import sys

assert sys.platform != "win32"  # Linux only; tells mypy --platform win32 to skip it

import functools
import os
import signal

# SAME_PROCESS of procward._os._base (this script imports nothing of procward).
_SAME_PROCESS = 0.1


def _boot_time() -> float:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


@functools.cache
def clock_base() -> tuple[float, float]:
    """Boot time and clock ticks per second: what turns a start tick into a time."""
    return _boot_time(), float(os.sysconf("SC_CLK_TCK"))


def process_stat(pid: int) -> tuple[int, float] | None:
    """(process group, create time) of a pid, computed exactly as psutil does; None if gone.

    Also used by the daemon at every spawn: reading one small file is a tenth of
    what constructing a psutil.Process costs.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    boot, ticks = clock_base()
    return int(fields[2]), boot + int(fields[19]) / ticks


def _live_entries(journal: str) -> list[tuple[int, float]]:
    live: dict[int, float] = {}
    try:
        with open(journal, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split(" ", 3)
                try:
                    if parts[0] == "+" and len(parts) == 4:
                        live[int(parts[1])] = float(parts[2])
                    elif parts[0] == "-":
                        live.pop(int(parts[1]), None)
                except (ValueError, IndexError):
                    continue
    except OSError:
        pass
    return list(live.items())


def reap(journal: str) -> int:
    entries = _live_entries(journal)
    if not entries:
        return 0
    groups: dict[int, float] = {}
    for pid, created in entries:
        info = process_stat(pid)
        # A pid alive with another create time was reused: the kernel never
        # reuses a pid still in use as a group id, so that group is empty.
        if info is None or abs(info[1] - created) < _SAME_PROCESS:
            groups[pid] = created
    victims = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        info = process_stat(int(name))
        if info is None:
            continue
        pgid, created = info
        # In a recorded child's group and not older than that child: its offspring.
        if pgid in groups and created >= groups[pgid] - _SAME_PROCESS:
            try:
                os.kill(int(name), signal.SIGKILL)
                victims += 1
            except OSError:
                pass
    return victims


def main() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    while os.read(0, 4096):
        pass  # the daemon never writes; only end-of-file matters
    reap(sys.argv[1])


if __name__ == "__main__":
    main()
