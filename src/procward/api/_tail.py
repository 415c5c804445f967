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
    """The last ``n`` lines of several files (``(prefix, path)`` each), then their
    new lines as they come, for ever: whole lines, each starting with its
    file's prefix."""
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
        head: list[bytes] = []
        for prefix, path in sources:
            # The tail is read from the file that is then followed, with no
            # await between: a rotation at any moment loses and repeats nothing.
            lines, f = _tail(path, n)
            head.extend(prefix + line for line in lines)
            if f is not None:
                opened.append(f)
            tasks.append(asyncio.create_task(pump(prefix, path, f)))
        yield b"".join(head)
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
