"""Log files: one stream's bytes appended to a file, rotated without losing or splitting a line.

The hot path is one ``os.write`` of the chunk the pipe gave us: no line
splitting, no copies, no Python-level buffering, so a service writes nearly as
fast as into ``cat > file``. Lines are looked at only where a rotation must
fall on a line boundary, or when timestamps are asked for.

A write that fails (disk full, folder read-only, file deleted under us) never
reaches the service: the bytes are counted as dropped, an event says so once,
and the file is tried again a second later.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import itertools
import os
import re
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

from procward.config import LogSettings
from procward.engine._events import LogDropped, LogError, LogResumed, Payload

__all__ = ["LogWriter", "ProblemCallback", "RotationWorker"]

# (what happened, a message for people): how a writer tells its owner about trouble.
ProblemCallback = Callable[[Payload, str], None]

_RETRY_AFTER = 1.0
_OPEN_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def _last_byte(fd: int, size: int) -> bytes:
    # lseek + read rather than pread, which Windows lacks; O_APPEND writes ignore the offset.
    os.lseek(fd, size - 1, os.SEEK_SET)
    return os.read(fd, 1)


class RotationWorker:
    """Does the slow part of rotations on one worker thread, in the order they
    happened: gzips rotated files, and deletes the ones past ``keep``.

    Deleting is slow too: unlinking a 50 MB log frees its page cache and its
    blocks, 5 to 60 ms on an ext4 test machine, which the event loop (and every
    other service's output) would otherwise wait for at each rotation. The
    thread touches only files that writers have already let go of; it never
    reads or changes engine state.
    """

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._leftovers: dict[Path, list[str]] = {}

    def claim_leftovers(self, path: Path) -> list[Path]:
        """Files a previous daemon's worker did not finish for the log ``path``
        (``NAME.PID-SEQ.pending`` or ``.deleting``), each returned once.

        Each folder is listed once, at its first claim: hundreds of logs in
        one folder would otherwise list it hundreds of times at start.
        """
        folder = path.parent
        names = self._leftovers.get(folder)
        if names is None:
            try:
                listed = os.listdir(folder)
            except OSError:
                listed = []
            names = self._leftovers[folder] = [n for n in listed if _LEFTOVER.search(n)]
        prefix = path.name + "."
        mine = [n for n in names if n.startswith(prefix) and _LEFTOVER.fullmatch(n, len(prefix))]
        for n in mine:
            names.remove(n)
        return [folder / n for n in sorted(mine)]

    def submit(self, job: Callable[[], None]) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="procward-rotate")
        self._pool.submit(job)

    def close(self) -> None:
        """Finish every queued job, then stop the thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


# What a rotation sets aside for the worker: "<log name>.<pid>-<seq>.<kind>".
_ASIDE = itertools.count(1)
_LEFTOVER = re.compile(r"\d+-\d+\.(?:pending|deleting)$")


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass  # gone already, or not ours to delete: a start finds it again


def _period_end(now: float, rotate: str | None) -> float | None:
    if rotate is None:
        return None
    t = datetime.fromtimestamp(now)
    if rotate == "hourly":
        start = t.replace(minute=0, second=0, microsecond=0)
        return (start + timedelta(hours=1)).timestamp()
    start = t.replace(hour=0, minute=0, second=0, microsecond=0)
    return (start + timedelta(days=1)).timestamp()


class LogWriter:
    """Appends one stream to ``path`` and rotates it by size and time into ``.1 … .keep``."""

    def __init__(
        self,
        path: Path,
        settings: LogSettings,
        *,
        on_problem: ProblemCallback,
        worker: RotationWorker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._max = settings.max_size
        self._rotate = settings.rotate
        self._keep = settings.keep
        self._compress = settings.compress and worker is not None
        self._worker = worker
        self._timestamps = settings.timestamps
        self._on_problem = on_problem
        self._clock = clock
        self._fd = -1
        self._size = 0
        self._at_line_start = True
        self._stamp_line_start = True
        self._period_end: float | None = None
        self._rotate_due = False
        self._failing = False
        self._retry_at = 0.0
        self._dropped_since_failure = 0
        self.last_write = 0.0
        self.bytes_written = 0
        self.bytes_dropped = 0

    # -- the hot path ---------------------------------------------------------

    def feed(self, data: bytes | memoryview) -> None:
        """Write a chunk of the stream; rotate on a line boundary when due.

        ``data`` is written before this returns (a view of a reused buffer is fine).
        """
        now = self._clock()
        self.last_write = now
        if self._fd < 0 and not self._open(now):
            self._drop(len(data))
            return
        if self._timestamps:
            data = self._stamp(bytes(data), now)
        if self._period_end is not None and now >= self._period_end and self._size > 0:
            self._rotate_due = True
        if not self._rotate_due and (self._max <= 0 or self._size + len(data) <= self._max):
            self._write(data)
            return
        # Near a rotation lines matter: search them in a bytes copy (rare).
        self._write_rotating(bytes(data))

    def _write_rotating(self, data: bytes) -> None:
        while data:
            room = 0 if self._rotate_due else max(self._max - self._size, 0)
            if self._max <= 0 and not self._rotate_due:
                room = len(data)
            if len(data) <= room:
                self._write(data)
                return
            # Cut at the last line end that still fits...
            cut = data.rfind(b"\n", 0, room) + 1
            if cut == 0:
                if self._at_line_start and self._size > 0:
                    self._do_rotate()
                    if self._fd < 0:
                        self._drop(len(data))
                        return
                    continue
                # ...or, inside a line, finish that line here first: a line is
                # never split across two files, even one longer than max_size.
                nl = data.find(b"\n", room)
                cut = nl + 1 if nl >= 0 else len(data)
            self._write(data[:cut])
            data = data[cut:]
            if self._fd < 0:
                self._drop(len(data))
                return

    def _write(self, data: bytes | memoryview) -> None:
        if self._fd < 0:
            self._drop(len(data))
            return
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
                self._size += n
                self.bytes_written += n
        except OSError as e:
            self._fail(e, len(view))
            return
        if data:
            self._at_line_start = data[-1:] == b"\n"

    def _stamp(self, data: bytes, now: float) -> bytes:
        t = datetime.fromtimestamp(now)
        prefix = t.strftime("%Y-%m-%dT%H:%M:%S").encode() + b".%03d " % (t.microsecond // 1000)
        body = data.replace(b"\n", b"\n" + prefix)
        if self._stamp_line_start:
            body = prefix + body
        self._stamp_line_start = data.endswith(b"\n")
        if self._stamp_line_start:
            body = body[: -len(prefix)]
        return body

    # -- files ----------------------------------------------------------------

    def _open(self, now: float) -> bool:
        if self._failing and now < self._retry_at:
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, _OPEN_FLAGS | _BINARY, 0o644)
        except OSError as e:
            self._fail(e, 0)
            return False
        try:
            st = os.fstat(fd)
            self._size = st.st_size
            # A file left mid-line (a crash) gets its line ended before ours start.
            if self._size and _last_byte(fd, self._size) != b"\n":
                self._size += os.write(fd, b"\n")
        except OSError:
            pass
        self._fd = fd
        self._at_line_start = True
        if self._period_end is None and self._rotate is not None:
            started = os.stat(self.path).st_mtime if self._size else now
            self._period_end = _period_end(started, self._rotate)
        if self._failing:
            self._failing = False
            self._on_problem(
                LogResumed(str(self.path), self._dropped_since_failure),
                f"writing {self.path.name} again; {self._dropped_since_failure} bytes were dropped",
            )
            self._dropped_since_failure = 0
        return True

    def _close_fd(self) -> None:
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1

    def _fail(self, error: OSError, lost: int) -> None:
        self._close_fd()
        self._drop(lost)
        self._retry_at = self._clock() + _RETRY_AFTER
        if not self._failing:
            self._failing = True
            reason = errno.errorcode.get(error.errno or 0, "error")
            self._on_problem(
                LogDropped(str(self.path), reason),
                f"cannot write {self.path}: {error.strerror or error}; dropping output "
                "(the service keeps running)",
            )

    def _drop(self, n: int) -> None:
        self.bytes_dropped += n
        self._dropped_since_failure += n

    def _do_rotate(self) -> None:
        now = self._clock()
        self._rotate_due = False
        self._period_end = _period_end(now, self._rotate)
        self._close_fd()
        try:
            if self._keep == 0:
                self._discard(self.path)
            elif self._compress:
                pending = self._aside("pending")
                os.replace(self.path, pending)
                assert self._worker is not None
                self._worker.submit(lambda: self._compress_job(pending))
            else:
                with contextlib.suppress(FileNotFoundError):
                    self._discard(self._rotated(self._keep, ""))
                self._shift("")
                os.replace(self.path, self._rotated(1, ""))
        except OSError as e:
            self._on_problem(LogError(str(self.path)), f"cannot rotate {self.path}: {e}")
        self._open(now)

    def _aside(self, kind: str) -> Path:
        """A fresh name beside the log for a file the worker will finish with.

        The number is the process's, not the writer's: after a reload a new
        writer for the same file must not reuse the name of a file the worker
        has not finished with yet.
        """
        return self.path.with_name(f"{self.path.name}.{os.getpid()}-{next(_ASIDE)}.{kind}")

    def _discard(self, path: Path) -> None:
        """Delete ``path``: renamed aside at once (cheap), unlinked by the worker."""
        if self._worker is None:
            os.unlink(path)
            return
        doomed = self._aside("deleting")
        os.replace(path, doomed)
        self._worker.submit(lambda: _unlink_quietly(doomed))

    def _rotated(self, n: int, suffix: str) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}{suffix}")

    def _shift(self, suffix: str) -> None:
        for n in range(self._keep - 1, 0, -1):
            try:
                os.replace(self._rotated(n, suffix), self._rotated(n + 1, suffix))
            except FileNotFoundError:
                pass

    def _compress_job(self, pending: Path) -> None:
        # Runs on the worker thread: files only, no engine state.
        tmp = self.path.with_name(pending.name + ".gz")
        try:
            with open(pending, "rb") as src, open(tmp, "wb") as raw, gzip.GzipFile(
                filename=self.path.name, mode="wb", fileobj=raw, compresslevel=6
            ) as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
            self._shift(".gz")
            os.replace(tmp, self._rotated(1, ".gz"))
            os.unlink(pending)
        except OSError:
            # Keep the uncompressed file: losing a log to a failed gzip is worse.
            try:
                tmp.unlink()
            except OSError:
                pass

    def recover_pending(self) -> None:
        """Finish what a previous daemon's worker left: compress rotated files it
        had not compressed yet, delete the ones it had not deleted."""
        if self._worker is None:
            return
        for left in self._worker.claim_leftovers(self.path):
            if left.suffix == ".deleting":
                self._worker.submit(lambda p=left: _unlink_quietly(p))  # type: ignore[misc]
            elif self._compress:
                self._worker.submit(lambda p=left: self._compress_job(p))  # type: ignore[misc]

    # -- lifecycle ------------------------------------------------------------

    def end_of_run(self) -> None:
        """A process run ended: end its last line, so the next run starts on a fresh one."""
        if not self._at_line_start and self._fd >= 0:
            self._write(b"\n")
        self._stamp_line_start = True

    def close_if_idle(self, now: float, idle: float) -> None:
        """Give the descriptor back after ``idle`` seconds without output."""
        if self._fd >= 0 and now - self.last_write >= idle and self._at_line_start:
            self._close_fd()

    def close(self) -> None:
        self._close_fd()
