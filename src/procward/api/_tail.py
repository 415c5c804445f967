"""Reading log files for the API: the last N lines, and following across rotation.

The engine writes the files; this only reads them, so a slow reader can
never hold up a service's output.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["follow", "follow_lines", "last_lines"]

_BLOCK = 64 * 1024
_POLL = 0.1
# Chunks of lines held for a slow reader before following waits for it.
_QUEUED = 256


def last_lines(path: Path, n: int) -> tuple[list[bytes], int]:
    """The last ``n`` complete-or-not lines of ``path`` and the file size they end at."""
    f = _open(path)
    if f is None:
        return [], 0
    with f:
        end = f.seek(0, os.SEEK_END)
        if n <= 0:
            return [], end
        pos, data = end, b""
        while pos > 0 and data.count(b"\n") <= n:
            step = min(_BLOCK, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
        lines = data.splitlines(keepends=True)
        return lines[-n:], end


async def follow(path: Path, offset: int) -> AsyncIterator[bytes]:
    """Yield what is appended to ``path`` from ``offset`` on, for ever.

    When the file is rotated (renamed away, a new one created at ``path``), the
    rest of the old file is read to its end, then any files rotated after it
    (when several rotations fell between two looks), then the new one, so no
    line written around a rotation is missed. (With ``compress = true`` the
    rotated files become ``.gz``; if more than one rotation falls between two
    looks, the lines of the files between are not followed.)
    """
    f = _open(path)
    if f is not None:
        f.seek(min(offset, os.fstat(f.fileno()).st_size))
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


async def follow_lines(sources: list[tuple[bytes, Path, int]]) -> AsyncIterator[bytes]:
    """Follow several files at once (``(prefix, path, offset)`` each), for ever:
    whole lines as they come, each starting with its file's prefix."""
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=_QUEUED)

    async def pump(prefix: bytes, path: Path, offset: int) -> None:
        partial = b""
        async for chunk in follow(path, offset):
            data = partial + chunk
            cut = data.rfind(b"\n") + 1
            partial = data[cut:]
            if cut:
                await queue.put(b"".join(prefix + line
                                         for line in data[:cut].splitlines(keepends=True)))

    tasks = [asyncio.create_task(pump(*source)) for source in sources]
    try:
        while True:
            yield await queue.get()
    finally:
        for task in tasks:
            task.cancel()


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
