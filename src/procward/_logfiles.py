"""Log files: where each instance's streams are written, and reading them: the
last N lines (both streams interleaved by time when the lines carry
timestamps), and following across rotation.

Shared by the engine (the names), the API (a running daemon's answers) and the
CLI (the files themselves, when no daemon runs). The engine writes the files;
this only reads them, so a slow reader can never hold up a service's output.
"""

from __future__ import annotations

import asyncio
import heapq
import os
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO

__all__ = ["EVENTS_FILE", "LogFile", "follow", "follow_lines", "instance_log_files",
           "instance_names", "labelled", "last_lines", "log_path", "tail_lines"]

# The daemon's own event log, one JSON object a line, in the log dir.
EVENTS_FILE = "procward.events.jsonl"
_SUFFIX = {"stdout": "out", "stderr": "err"}
# What ``[logs] timestamps = true`` puts at the start of each line (local time).
_STAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} ")

_BLOCK = 64 * 1024
_POLL = 0.1
# Chunks of lines held for a slow reader before following waits for it.
_QUEUED = 256


def instance_names(service: str, instances: int) -> list[str]:
    """The names of a service's instances: its own with one, ``web:0``, ``web:1`` ... with more."""
    return [service] if instances == 1 else [f"{service}:{i}" for i in range(instances)]


def log_path(log_dir: Path, instance: str, stream: str) -> Path:
    """Where ``instance``'s ``stream`` (stdout or stderr) is written: ``web.out.log``,
    ``web@1.err.log`` (':' is not allowed in Windows file names, '@' in service names)."""
    return log_dir / f"{instance.replace(':', '@')}.{_SUFFIX[stream]}.log"


@dataclass(frozen=True)
class LogFile:
    """One instance's current log file for one stream (with ``merge_stderr``, its
    stdout file holds both streams, and is the only one)."""

    instance: str
    stream: str
    path: Path


def instance_log_files(log_dir: Path, instance: str, stream: str, *,
                       merged: bool) -> list[LogFile]:
    """``instance``'s files for ``stream`` (stdout, stderr or both); with ``merged``
    (``merge_stderr``) the one stdout file, whichever is asked for."""
    streams = ["stdout"] if merged else [s for s in _SUFFIX if stream in (s, "both")]
    return [LogFile(instance, s, log_path(log_dir, instance, s)) for s in streams]


def labelled(files: list[LogFile]) -> list[tuple[bytes, Path]]:
    """Each file with what starts its lines: ``[web:1] `` when several instances are
    shown, ``stdout | `` / ``stderr | `` when an instance's two files are."""
    instances = len({f.instance for f in files})
    per_instance = Counter(f.instance for f in files)
    return [(((f"[{f.instance}] " if instances > 1 else "")
              + (f"{f.stream} | " if per_instance[f.instance] > 1 else "")).encode(), f.path)
            for f in files]


def tail_lines(sources: list[tuple[bytes, Path]], n: int) -> bytes:
    """The last ``n`` lines of each file (``(prefix, path)`` each), each line with its
    file's prefix; see ``_interleave`` for their order."""
    return _interleave([(prefix, last_lines(path, n)[0]) for prefix, path in sources])


def _interleave(parts: list[tuple[bytes, list[bytes]]]) -> bytes:
    """The lines of several files as one text, in the order of their timestamps.

    Each line is placed by the last timestamp its file showed at or before it
    (a line without one, such as a traceback's, stays after the line before
    it). Files whose lines carry no timestamps cannot be interleaved: they come
    whole, one after the other, in the order given (stderr after stdout, so a
    traceback ends up nearest the prompt).
    """
    if len(parts) == 1:
        prefix, lines = parts[0]
        return b"".join(prefix + line for line in lines)
    keyed = []
    for prefix, lines in parts:
        key, one = b"", []
        for line in lines:
            if m := _STAMP.match(line):
                key = m.group()
            # Several files become one text: a partial last line is ended here.
            one.append((key, prefix + line if line.endswith(b"\n") else prefix + line + b"\n"))
        keyed.append(one)
    return b"".join(line for _, line in heapq.merge(*keyed, key=itemgetter(0)))


def last_lines(path: Path, n: int) -> tuple[list[bytes], int]:
    """The last ``n`` complete-or-not lines of ``path`` and the file size they end at."""
    lines, f = _tail(path, n)
    if f is None:
        return [], 0
    with f:
        return lines, f.tell()


def _tail(path: Path, n: int) -> tuple[list[bytes], BinaryIO | None]:
    """The last ``n`` lines of ``path``, and the file left open at their end (None
    when there is no file)."""
    f = _open(path)
    if f is None:
        return [], None
    try:
        end = f.seek(0, os.SEEK_END)
        if n <= 0:
            return [], f
        pos, data = end, b""
        while pos > 0 and data.count(b"\n") <= n:
            step = min(_BLOCK, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
        f.seek(end)
    except BaseException:
        f.close()
        raise
    return data.splitlines(keepends=True)[-n:], f


async def follow(path: Path, f: BinaryIO | None) -> AsyncIterator[bytes]:
    """Yield what is appended to ``path`` after where ``f`` (the file found there,
    open) stands, for ever; with ``f`` None, all of the file once it appears.
    Closes the files it opens, and ``f``.

    The file stays open from the moment it was found, so a rotation before the
    first look loses nothing either. When the file is rotated (renamed away, a
    new one created at ``path``), the rest of the old file is read to its end,
    then any files rotated after it (when several rotations fell between two
    looks), then the new one, so no line written around a rotation is missed.
    (With ``compress = true`` the rotated files become ``.gz``; if more than one
    rotation falls between two looks, the lines of the files between are not
    followed.)
    """
    try:
        while True:
            if f is None:
                f = _open(path)
                if f is None:
                    await asyncio.sleep(_POLL)
                    continue
            chunk = f.read(_BLOCK)
            if chunk:
                yield chunk
                continue
            if _replaced(path, f):
                rest = f.read()
                if rest:
                    yield rest
                newer = _rotated_after(path, os.fstat(f.fileno()))
                f.close()
                f = None
                for g in newer:
                    with g:
                        while chunk := g.read(_BLOCK):
                            yield chunk
                continue
            await asyncio.sleep(_POLL)
    finally:
        if f is not None:
            f.close()


async def follow_lines(sources: list[tuple[bytes, Path]], n: int) -> AsyncIterator[bytes]:
    """The last ``n`` lines of several files (``(prefix, path)`` each, ordered as
    ``tail_lines`` does), then their new lines as they come, for ever: whole
    lines, each starting with its file's prefix."""
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=_QUEUED)

    async def pump(prefix: bytes, path: Path, f: BinaryIO | None) -> None:
        partial = b""
        async for chunk in follow(path, f):
            data = partial + chunk
            cut = data.rfind(b"\n") + 1
            partial = data[cut:]
            if cut:
                await queue.put(b"".join(prefix + line
                                         for line in data[:cut].splitlines(keepends=True)))

    opened: list[BinaryIO] = []
    tasks = []
    try:
        head: list[tuple[bytes, list[bytes]]] = []
        for prefix, path in sources:
            # The tail is read from the file that is then followed, with no
            # await between: a rotation at any moment loses and repeats nothing.
            lines, f = _tail(path, n)
            if f is not None and len(sources) > 1 and lines and not lines[-1].endswith(b"\n"):
                # A line still being written is followed from its start, so it
                # comes whole once ended rather than cut in two by another file's.
                f.seek(-len(lines.pop()), os.SEEK_CUR)
            head.append((prefix, lines))
            if f is not None:
                opened.append(f)
            tasks.append(asyncio.create_task(pump(prefix, path, f)))
        yield _interleave(head)
        while True:
            yield await queue.get()
    finally:
        for task in tasks:
            task.cancel()
        for f in opened:
            f.close()  # closed already, unless its pump never began


def _open(path: Path) -> BinaryIO | None:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None


def _rotated_after(path: Path, old: os.stat_result) -> list[BinaryIO]:
    """Open the rotated files newer than ``old`` (``path.N`` ... ``path.1``), oldest first.

    Opened before any is read, so a further rotation while reading renames
    them under us without changing what we read.
    """
    names = []
    n = 1
    while True:
        candidate = path.with_name(f"{path.name}.{n}")
        try:
            st = os.stat(candidate)
        except FileNotFoundError:
            return []  # ours is gone (or compressed): nothing to chase
        if (st.st_ino, st.st_dev) == (old.st_ino, old.st_dev):
            break
        names.append(candidate)
        n += 1
    opened = []
    for name in reversed(names):
        f = _open(name)
        if f is not None:
            opened.append(f)
    return opened


def _replaced(path: Path, f: BinaryIO) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return True
    mine = os.fstat(f.fileno())
    # A new file at the path, or this one truncated under us.
    return (now.st_ino, now.st_dev) != (mine.st_ino, mine.st_dev) or now.st_size < f.tell()
