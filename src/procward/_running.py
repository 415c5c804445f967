"""Which daemons this user runs, and how to address one from here.

``procward run`` writes one small JSON file (its pid, when that process started,
its configuration, state dir and API address) into this user's running folder
(``procward._os.running_dir``) and removes it at exit. A client that finds no
configuration lists what is there; an entry whose process is gone (killed, or
its pid now someone else's) is ignored and tidied away.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

from procward._os import running_dir
from procward.config import find_config_path

__all__ = ["Running", "config_option", "record", "running"]

# Two readings of a process's start time differ by less than this (psutil rounds).
_SAME_START = 1.0


class Running(NamedTuple):
    pid: int
    config: Path
    state_dir: Path
    url: str | None


def _started(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def record(config: Path, state_dir: Path, url: str | None,
           environ: Mapping[str, str] | None = None) -> Callable[[], None]:
    """Note this process as a running daemon; the function returned removes the note.

    Best effort: a folder that cannot be written only means no note."""
    folder = running_dir(environ)
    pid = os.getpid()
    path = folder / f"{pid}.json"
    entry = {"pid": pid, "started": _started(pid), "config": str(config),
             "state_dir": str(state_dir), "url": url}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{pid}.tmp"
        tmp.write_text(json.dumps(entry) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        return lambda: None

    def remove() -> None:
        try:
            path.unlink()
        except OSError:
            pass

    return remove


def running(environ: Mapping[str, str] | None = None) -> list[Running]:
    """The daemons this user runs now, by pid; stale notes are removed."""
    folder = running_dir(environ)
    try:
        names = sorted(p for p in folder.iterdir() if p.suffix == ".json")
    except OSError:
        return []
    found = []
    for path in names:
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            pid, started = int(entry["pid"]), entry["started"]
            item = Running(pid, Path(entry["config"]), Path(entry["state_dir"]),
                           entry.get("url"))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        now = _started(pid)
        if now is None or started is None or abs(now - float(started)) > _SAME_START:
            try:
                path.unlink()
            except OSError:
                pass
            continue
        found.append(item)
    return sorted(found, key=lambda r: r.pid)


def config_option(config: Path, environ: Mapping[str, str] | None = None) -> str:
    """``-c PATH`` that names ``config`` from the current folder (relative when below
    it, else absolute), or ``""`` when the default search finds that file anyway."""
    cwd = os.getcwd()
    target = os.path.abspath(config)
    default = find_config_path(None, environ)
    if not default.is_absolute():
        default = Path(cwd) / default
    try:
        if os.path.samefile(default, target):
            return ""
    except OSError:
        pass
    try:
        rel = os.path.relpath(target, cwd)
    except ValueError:  # another drive
        rel = target
    shown = target if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel
    return f'-c "{shown}"' if " " in shown else f"-c {shown}"
