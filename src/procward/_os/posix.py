"""Processes on Linux, macOS and other POSIX systems.

Each program starts in a session of its own (``setsid``), so one ``killpg``
reaches it and every descendant that did not leave the session on purpose.
A child's exit wakes the loop the moment it happens, which is what makes
single-digit-millisecond restarts possible. On Linux each child has a pidfd
that becomes readable when it exits: no signals, no polling, and hundreds of
children dying at once cannot overflow asyncio's signal wakeup pipe (which
SIGCHLD handling did, with a warning on the console for every lost byte).
Elsewhere, SIGCHLD triggers one ``waitpid(pid, WNOHANG)`` per child we
started. Either way we only ever reap our own children, never the exit status
of a process someone else started (a health-check command, asyncio's watcher).
"""

from __future__ import annotations

import sys

# Tells mypy --platform win32 that nothing below applies there.
assert sys.platform != "win32"

import asyncio
import errno
import fcntl
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psutil

from procward._os._base import (
    SAME_PROCESS,
    Child,
    ExitStatus,
    Leftover,
    NotifySocket,
    OutputSink,
    SpawnSpec,
)
from procward._os._guardian import clock_base, process_stat
from procward._os._leftovers import leftover_tree
from procward.errors import SpawnError, StateDirLocked

__all__ = ["PLATFORM", "PosixPlatform"]

# Every pipe is read into this one buffer: the loop runs one callback at a
# time and a sink consumes the bytes before it returns. A fresh bytes object
# per read of this size would come from mmap and fault in every page each time.
# Smaller than a grown pipe on purpose: what one read copies in is still in
# the CPU's cache when the write copies it out. Alternating runs of the log
# benchmark gave 0.77-0.90x `cat` with 1 MiB, 0.85-1.00x with 256 KiB and
# 0.90-0.91x with 128 KiB (at more CPU per byte).
_READ_BUFFER = memoryview(bytearray(256 * 1024))

# A pipe that a read finds full (a chatty service) is grown to this, once, so it
# needs fewer loop passes per megabyte. Only chatty ones: Linux limits the pipe
# memory of a user, and hundreds of quiet services need no more than the default.
_BIG_PIPE = 1024 * 1024
_MAX_BIG_PIPES = 64
_READS_PER_WAKEUP = 8
# Bytes all pipes together may move in one pass of the event loop. A busy
# writer refills its pipe as fast as we empty it, so without a cap one pass
# could copy tens of megabytes while an API request or a child's exit waits
# for the next pass. At this size a pass takes about a millisecond; 4 MiB
# gave status requests under a 4-writer flood a p50 of 22 ms against 8 ms,
# and capture no faster.
_PASS_BUDGET = 1 * 1024 * 1024

_SIGNALS = {
    "TERM": signal.SIGTERM,
    "INT": signal.SIGINT,
    "HUP": signal.SIGHUP,
    "QUIT": signal.SIGQUIT,
    "KILL": signal.SIGKILL,
    "USR1": signal.SIGUSR1,
    "USR2": signal.SIGUSR2,
    # Windows console events, for a configuration shared by both systems.
    "CTRL_C": signal.SIGINT,
    "CTRL_BREAK": signal.SIGTERM,
}



class _SigchldReaper:
    """Collects the exit status of the children we started, on SIGCHLD (non-Linux)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._waiters: dict[int, Callable[[int], None]] = {}
        loop.add_signal_handler(signal.SIGCHLD, self._on_sigchld)

    def watch(self, pid: int, on_exit: Callable[[int], None]) -> None:
        self._waiters[pid] = on_exit
        # The child may have died before we were listening; its SIGCHLD is gone.
        self._poll(pid)

    def _on_sigchld(self) -> None:
        for pid in list(self._waiters):
            self._poll(pid)

    def _poll(self, pid: int) -> None:
        done, status = _waitpid(pid)
        if done:
            self._waiters.pop(pid)(status)


class _PidfdReaper:
    """Collects exit statuses through one pidfd per child (Linux 5.3 and later)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def watch(self, pid: int, on_exit: Callable[[int], None]) -> None:
        if sys.platform != "linux":  # chosen only where pidfd_open works; tells mypy
            raise OSError("no pidfd here")
        fd = os.pidfd_open(pid)

        def exited() -> None:
            done, status = _waitpid(pid)
            if done:
                self._loop.remove_reader(fd)
                os.close(fd)
                on_exit(status)

        self._loop.add_reader(fd, exited)


# Signals Python sets to "ignore" at start-up, which a child would inherit.
_IGNORED_BY_PYTHON = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name))


def _seal_inherited_descriptors() -> None:
    """Mark close-on-exec every descriptor above 2 that this process inherited.

    Popen closes every descriptor but 0-2 in the child; posix_spawn closes only
    close-on-exec ones. Python opens all of its descriptors so (PEP 446), but
    one this process inherited from whoever started it may not be, and must
    not reach the services.
    """
    folder = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    try:
        fds = [int(name) for name in os.listdir(folder)]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the listing's own descriptor, already closed


def _spawn_clock() -> float | None:
    """Now, on the scale of a Linux process's create time; None elsewhere."""
    if sys.platform.startswith("linux"):
        boot, _ = clock_base()
        return boot + time.clock_gettime(time.CLOCK_BOOTTIME)
    return None


def _create_time(pid: int, before: float | None) -> float:
    """The create time of a child just started; ``before`` is ``_spawn_clock()`` before the fork.

    Reading /proc/PID/stat while the child is still in execve waits for the
    exec to finish, blocking the loop up to 0.5 ms per spawn. The kernel
    stamps a process's start at fork on CLOCK_BOOTTIME and reports it in
    ticks after the boot time, so the same clock read just before the fork
    is within a tick (10 ms) and the fork's own time of it: far inside
    SAME_PROCESS, which is all a create time is compared with.
    """
    if before is not None:
        after = _spawn_clock()
        if after is not None and after - before < SAME_PROCESS / 4:
            return before
        info = process_stat(pid)  # the fork itself was slow: ask the kernel
        return info[1] if info else 0.0
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return 0.0


def _waitpid(pid: int) -> tuple[int, int]:
    try:
        return os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        # Someone else reaped it; the status is lost, report it as unknown.
        return pid, -1


def _has_pidfd() -> bool:
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False  # an older kernel
    return True


_Reaper = _PidfdReaper if _has_pidfd() else _SigchldReaper
_reapers: dict[asyncio.AbstractEventLoop, _PidfdReaper | _SigchldReaper] = {}


_T = TypeVar("_T")


def _for_loop(registry: dict[asyncio.AbstractEventLoop, _T], loop: asyncio.AbstractEventLoop,
              make: Callable[[asyncio.AbstractEventLoop], _T]) -> _T:
    """The one ``make(loop)`` of this loop; entries of closed loops are dropped."""
    found = registry.get(loop)
    if found is None:
        for old in [lp for lp in registry if lp.is_closed()]:
            del registry[old]
        found = registry[loop] = make(loop)
    return found


def _reaper(loop: asyncio.AbstractEventLoop) -> _PidfdReaper | _SigchldReaper:
    return _for_loop(_reapers, loop, _Reaper)


class _PassBudget:
    """What is left of ``_PASS_BUDGET`` in the current pass of one loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.left = _PASS_BUDGET
        self._armed = False

    def open(self) -> bool:
        """True if this pass may still read; the first call of a pass arranges the refill.

        The refill is queued with call_soon, so it runs at the start of the next
        pass, before that pass's reader callbacks.
        """
        if not self._armed:
            self._armed = True
            self._loop.call_soon(self._refill)
        return self.left > 0

    def _refill(self) -> None:
        self.left = _PASS_BUDGET
        self._armed = False


_budgets: dict[asyncio.AbstractEventLoop, _PassBudget] = {}


def _budget(loop: asyncio.AbstractEventLoop) -> _PassBudget:
    return _for_loop(_budgets, loop, _PassBudget)


class _PipeReader:
    """Moves bytes from one child pipe into a sink as soon as they arrive."""

    big_pipes = 0  # pipes grown to _BIG_PIPE, across all readers

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, sink: OutputSink) -> None:
        self._loop = loop
        self._fd = fd
        self._sink = sink
        self._grown = False
        self._budget = _budget(loop)
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._on_readable)

    def _read_once(self) -> int:
        """Pass one read to the sink; how many bytes (0 at end of file or when empty)."""
        try:
            n = os.readv(self._fd, [_READ_BUFFER])
        except BlockingIOError:
            return 0
        except OSError:
            n = 0
        if not n:
            self.close()
            return 0
        if n >= 65536 and not self._grown:
            self._grow()
        self._sink.feed(_READ_BUFFER[:n])
        return n

    def _on_readable(self) -> None:
        # A busy writer has refilled the pipe by the time one chunk is written:
        # take a few chunks per wake-up instead of one loop pass each, within
        # the pass's budget. Over it, the pipe stays readable for the next pass.
        budget = self._budget
        for _ in range(_READS_PER_WAKEUP):
            if not budget.open():
                return
            n = self._read_once()
            if not n:
                return
            budget.left -= n

    def _grow(self) -> None:
        self._grown = True
        if _PipeReader.big_pipes < _MAX_BIG_PIPES and hasattr(fcntl, "F_SETPIPE_SZ"):
            try:
                fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, _BIG_PIPE)
                _PipeReader.big_pipes += 1
            except OSError:
                pass  # over the user's pipe memory limit: the default size still works

    def drain(self) -> None:
        """Read whatever the pipe holds now, without waiting for more."""
        while self._fd >= 0 and self._read_once():
            pass

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
            if self._grown and _PipeReader.big_pipes > 0:
                _PipeReader.big_pipes -= 1


class PosixChild:
    """A program started in its own session, and the pipes it writes to."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pid: int,
        popen: subprocess.Popen[bytes] | None,
        create_time: float,
        pipes: list[tuple[int, OutputSink]],
    ) -> None:
        self._popen = popen
        self.pid = pid
        self.create_time = create_time
        self.exited: asyncio.Future[ExitStatus] = loop.create_future()
        self._sinks = [sink for _, sink in pipes]
        self._readers = [_PipeReader(loop, fd, sink) for fd, sink in pipes]
        _reaper(loop).watch(self.pid, self._on_exit)

    def _on_exit(self, status: int) -> None:
        code = os.waitstatus_to_exitcode(status) if status >= 0 else -1
        if self._popen is not None:
            # Keep Popen from reaping (or warning about) a pid we already reaped.
            self._popen.returncode = code
        # The main process is gone: what it left in its session goes with it,
        # as systemd does with a unit's control group.
        self._killpg(signal.SIGKILL)
        # Every byte it wrote is in the pipes now; take it before reporting the
        # exit, so the log of this run is complete before the next run starts.
        for reader in self._readers:
            reader.drain()
        for sink in self._sinks:
            sink.end_of_run()
        if not self.exited.done():
            if status >= 0 and os.WIFSIGNALED(status):
                self.exited.set_result(ExitStatus(None, os.WTERMSIG(status)))
            else:
                self.exited.set_result(ExitStatus(code if status >= 0 else None))

    def _killpg(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, signal_name: str) -> None:
        self._killpg(_SIGNALS.get(signal_name, signal.SIGTERM))

    def kill_tree(self) -> None:
        # Descendants that left the session (setsid daemons) are found by
        # ancestry before the group is killed, while the tree is still linked.
        escaped: list[psutil.Process] = []
        if not self.exited.done():
            try:
                escaped = psutil.Process(self.pid).children(recursive=True)
            except psutil.Error:
                pass
        self._killpg(signal.SIGKILL)
        for proc in escaped:
            try:
                proc.kill()
            except psutil.Error:
                pass


class PosixPlatform:
    """The POSIX implementation of the engine's operating-system seam."""

    name = "posix"

    def __init__(self) -> None:
        self._found: dict[tuple[str, str | None], str] = {}
        # Whether os.posix_spawn may be tried (it needs POSIX_SPAWN_SETSID), and
        # whether the descriptors this process inherited are close-on-exec yet.
        self._spawn_ok = hasattr(os, "posix_spawn")
        self._sealed = False

    def spawn(
        self,
        loop: asyncio.AbstractEventLoop,
        spec: SpawnSpec,
        stdout: OutputSink,
        stderr: OutputSink | None,
    ) -> Child:
        # Our own pipes rather than Popen's PIPE: Popen would wrap each in a file
        # object, which costs as much as the fork itself when 500 services start.
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe() if not spec.merge_stderr else (-1, -1)
        executable = self._which(spec)
        before = _spawn_clock()
        popen: subprocess.Popen[bytes] | None = None
        try:
            pid = self._posix_spawn(spec, executable, out_write,
                                    out_write if spec.merge_stderr else err_write)
            if pid is None:
                popen = subprocess.Popen(
                    spec.argv,
                    executable=executable,
                    stdin=subprocess.DEVNULL,
                    stdout=out_write,
                    stderr=subprocess.STDOUT if spec.merge_stderr else err_write,
                    cwd=spec.cwd,
                    env=spec.env,
                    start_new_session=True,
                    close_fds=True,
                )
                pid = popen.pid
        except OSError as e:
            for fd in (out_read, err_read):
                if fd >= 0:
                    os.close(fd)
            self._found.pop((spec.argv[0], spec.env.get("PATH")), None)
            if spec.cwd is not None and not os.path.isdir(spec.cwd):
                # The child's chdir failed, which the OS reports as ENOENT like a missing
                # program: name the folder, or the user hunts for the program.
                raise SpawnError(f"cannot start {spec.argv[0]!r}: its working folder "
                                 f"{spec.cwd} does not exist") from e
            raise SpawnError(f"cannot start {spec.argv[0]!r}: {e.strerror or e}") from e
        finally:
            # The child has its copies; ours must go, or the pipes never reach EOF.
            for fd in (out_write, err_write):
                if fd >= 0:
                    os.close(fd)
        pipes = [(out_read, stdout)]
        if err_read >= 0 and stderr is not None:
            pipes.append((err_read, stderr))
        elif err_read >= 0:
            os.close(err_read)
        return PosixChild(loop, pid, popen, _create_time(pid, before), pipes)

    def _posix_spawn(self, spec: SpawnSpec, executable: str | None, out_fd: int,
                     err_fd: int) -> int | None:
        """Start ``spec`` through ``os.posix_spawn`` and return its pid, or None where
        that cannot start it exactly as the Popen below would.

        Two ways to start a program, because the start of many services needs
        the cheaper one: posix_spawn runs no Python around the fork, and
        without it the start of 500 services missed its target (twice a loop
        that spawns them; docs/benchmarks.md has the figures). It cannot set a
        working directory, so it serves the services that run in the daemon's
        own (``procward run`` works in its configuration's folder, every
        service's default). Popen keeps the rest: another folder, a bare name
        ``_which`` left to Popen (not found, or a relative PATH entry: Popen's
        search and its error message), and pipes that landed on descriptors
        0-2 (a daemon started with one of them closed), which the file actions
        below would overwrite.
        """
        if not self._spawn_ok or min(out_fd, err_fd) < 3:
            return None
        if executable is None and os.sep not in spec.argv[0]:
            return None
        try:
            if not os.path.samefile(spec.cwd, os.curdir):
                return None
        except OSError:
            return None  # a folder gone: Popen's chdir says which
        if not self._sealed:
            _seal_inherited_descriptors()
            self._sealed = True
        try:
            return os.posix_spawn(
                executable or spec.argv[0], spec.argv, spec.env,
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                              (os.POSIX_SPAWN_DUP2, out_fd, 1),
                              (os.POSIX_SPAWN_DUP2, err_fd, 2)],
                # What Popen's restore_signals gives back: Python ignores these.
                setsigdef=_IGNORED_BY_PYTHON,
                setsid=True,
            )
        except NotImplementedError:
            self._spawn_ok = False  # no POSIX_SPAWN_SETSID here: Popen from now on
            return None

    def _which(self, spec: SpawnSpec) -> str | None:
        """The program a bare name means, searched once per name and PATH, not per spawn.

        Popen would search the service's PATH again at every start; ``argv[0]``
        stays as written either way, so the program sees the name it was given.
        """
        name = spec.argv[0]
        if os.sep in name:
            return None  # a path: exec resolves it against the service's cwd
        key = (name, spec.env.get("PATH"))
        found = self._found.get(key)
        if found is None:
            path = spec.env.get("PATH", os.defpath)
            if any(not os.path.isabs(d) for d in path.split(os.pathsep)):
                return None  # a relative PATH entry means the service's cwd: Popen knows
            found = shutil.which(name, path=path)
            if found is None:
                return None  # let Popen report the missing program in its own words
            self._found[key] = found
        return found

    def reap_leftover(self, leftover: Leftover) -> int:
        tree = leftover_tree(leftover, lambda proc: os.getpgid(proc.pid) == leftover.pid)
        for proc in tree:
            try:
                proc.kill()
            except psutil.Error:
                pass
        return len(tree)

    def guard_children(self, journal: Path) -> Callable[[], None] | None:
        if not sys.platform.startswith("linux"):
            return None  # the guardian reads /proc; elsewhere the next start reaps
        guardian = subprocess.Popen(
            [sys.executable, "-I", "-S", str(Path(__file__).with_name("_guardian.py")),
             str(journal)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl+C at the terminal must not reach it
        )

        def release() -> None:
            # A clean stop: every child is gone, so the guardian finds nothing to do.
            assert guardian.stdin is not None
            guardian.stdin.close()
            try:
                guardian.wait(timeout=5)
            except subprocess.TimeoutExpired:
                guardian.kill()
                guardian.wait()

        return release

    def raise_open_files_limit(self) -> tuple[int, int]:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            except (ValueError, OSError):
                # macOS caps the soft limit below an "unlimited" hard limit.
                target = soft
        return soft, target

    def lock_state_dir(self, state_dir: Path) -> object:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(state_dir / "procward.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StateDirLocked(
                    f"another procward is running with state dir {state_dir}"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return _Lock(fd)

    def install_stop_handlers(
        self, loop: asyncio.AbstractEventLoop, on_stop: Callable[[str], None]
    ) -> Callable[[], None]:
        # The handler only queues the request; the loop's owner acts on it.
        for sig, name in ((signal.SIGINT, "INT"), (signal.SIGTERM, "TERM")):
            loop.add_signal_handler(sig, on_stop, name)

        def undo() -> None:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

        return undo

    def open_notify_socket(self, state_dir: Path) -> NotifySocket | None:
        if not hasattr(socket, "SO_PASSCRED"):
            # Without SO_PASSCRED (macOS, BSD) a datagram cannot be traced to its
            # sender, and any local process could speak for any service.
            return None
        return _CredSocket(state_dir)

    def system_log(self, message: str, *, error: bool) -> None:
        import syslog  # only where a syslog sink is used

        syslog.openlog("procward", syslog.LOG_PID, syslog.LOG_DAEMON)
        syslog.syslog(syslog.LOG_ERR if error else syslog.LOG_WARNING, message)

    def install_reload_handler(
        self, loop: asyncio.AbstractEventLoop, on_reload: Callable[[], None]
    ) -> Callable[[], None]:
        loop.add_signal_handler(signal.SIGHUP, on_reload)

        def undo() -> None:
            loop.remove_signal_handler(signal.SIGHUP)

        return undo

    def write_private(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        # Created 0600 from the start: never readable by others, not even briefly.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)


# struct ucred: pid, uid, gid (three C ints).
_UCRED = struct.Struct("3i")
# Longest path an AF_UNIX address holds, with room for the terminating NUL.
_MAX_SUN_PATH = 107


class _CredSocket:
    """The children's NOTIFY_SOCKET: a datagram socket that learns each sender's pid."""

    _sock: socket.socket
    _path: Path | None
    address: str

    def __init__(self, state_dir: Path) -> None:
        if sys.platform != "linux":  # made only where SO_PASSCRED exists; tells mypy
            raise OSError("no SO_PASSCRED here")
        self._path = state_dir / "notify.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            if len(os.fsencode(self._path)) <= _MAX_SUN_PATH:
                try:
                    os.unlink(self._path)
                except FileNotFoundError:
                    pass
                sock.bind(os.fspath(self._path))
                self.address = os.fspath(self._path)
            else:
                # A deep state dir: an abstract socket (no file), which sd_notify
                # clients name with a leading '@'.
                self._path = None
                name = f"procward-{os.getpid()}-{os.urandom(8).hex()}"
                sock.bind("\0" + name)
                self.address = "@" + name
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock

    def fileno(self) -> int:
        return self._sock.fileno()

    def receive(self) -> list[tuple[bytes, int, int | None]]:
        if sys.platform != "linux":  # as in __init__
            return []
        got: list[tuple[bytes, int, int | None]] = []
        while True:
            try:
                data, ancillary, _, _ = self._sock.recvmsg(4096, socket.CMSG_SPACE(_UCRED.size))
            except (BlockingIOError, InterruptedError):
                return got
            pid = 0
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = _UCRED.unpack(value[:_UCRED.size])[0]
            try:
                session: int | None = os.getsid(pid) if pid > 0 else None
            except OSError:
                # The sender is gone already (systemd-notify exits at once): unknown.
                session = None
            got.append((data, pid, session))

    def close(self) -> None:
        self._sock.close()
        if self._path is not None:
            try:
                os.unlink(self._path)
            except OSError:
                pass


class _Lock:
    """Holds the state-dir lock until released or the process ends."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


PLATFORM = PosixPlatform()
