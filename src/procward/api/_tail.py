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

__all__ = ["follow", "last_lines"]

_BLOCK = 64 * 1024
_POLL = 0.2


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
    rest of the old file is read to its end before the new one is opened, so no
    line written around a rotation is missed.
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
                f.close()
                f = None
                continue
            await asyncio.sleep(_POLL)
    finally:
        if f is not None:
            f.close()


def _open(path: Path) -> BinaryIO | None:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None


def _replaced(path: Path, f: BinaryIO) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return True
    mine = os.fstat(f.fileno())
    # A new file at the path, or this one truncated under us.
    return (now.st_ino, now.st_dev) != (mine.st_ino, mine.st_dev) or now.st_size < f.tell()
