"""The state dir's record of every child we started: pid, create time and name.

Append-only lines (``+ pid create_time name`` when a child starts, ``- pid``
when it is reaped): one small write per spawn, so starting hundreds of
services does not rewrite a growing file hundreds of times. A daemon killed
with SIGKILL leaves the ``+`` lines of its live children behind; the next
daemon reads them and ends those process trees before it starts anything.
"""

from __future__ import annotations

import os
from pathlib import Path

from procward._os import Leftover

__all__ = ["ChildJournal"]

_FILE = "children.journal"
# Rewrite the file with only the live entries once this many have come and gone.
_COMPACT_AFTER = 10_000


class ChildJournal:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / _FILE
        self._fd = -1
        self._live: dict[int, str] = {}
        self._removed = 0

    def leftovers(self) -> list[Leftover]:
        """Children a previous daemon recorded and never saw end."""
        live: dict[int, Leftover] = {}
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        for line in text.splitlines():
            parts = line.split(" ", 3)
            try:
                if parts[0] == "+" and len(parts) == 4:
                    live[int(parts[1])] = Leftover(int(parts[1]), float(parts[2]), parts[3])
                elif parts[0] == "-" and len(parts) >= 2:
                    live.pop(int(parts[1]), None)
            except ValueError:
                continue  # a torn last line from a crash
        return list(live.values())

    def open(self) -> None:
        """Start a fresh journal (call after the leftovers have been dealt with)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)

    def add(self, pid: int, create_time: float, name: str) -> None:
        entry = f"+ {pid} {create_time!r} {name}\n"
        self._live[pid] = entry
        self._append(entry)

    def remove(self, pid: int) -> None:
        if self._live.pop(pid, None) is None:
            return
        self._removed += 1
        if self._removed >= _COMPACT_AFTER:
            self._compact()
        else:
            self._append(f"- {pid}\n")

    def _append(self, entry: str) -> None:
        if self._fd >= 0:
            try:
                os.write(self._fd, entry.encode())
            except OSError:
                pass  # a full disk must not stop supervision; the reaper is a safety net

    def _compact(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text("".join(self._live.values()), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            return
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._removed = 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
