"""Shared helpers for procward's benchmarks.

Every benchmark compares three things in one run: procward, supervisord 4.3,
and the limit (the same work done by a few plain lines of Python or by
``cat``, with no supervisor at all). This module holds what they share:

- ``Workspace``: a temporary folder, and every process a benchmark started,
  killed by pid (with its descendants) when the benchmark ends, even on error;
- ``build_child``: the one child program all systems run, compiled from C at
  bench time (a ``python -S`` script when there is no C compiler);
- ``ReportFifo``: where children report the CLOCK_MONOTONIC time at which they
  began to run, so a start is timed by the child itself, not by polling;
- ``ProcwardDaemon`` / ``SupervisordDaemon``: write a configuration for a list
  of ``Service`` records, launch the daemon, follow its own log, stop it;
- ``verify_log``: reads rotated log files back and checks every line;
- ``Row`` and ``main_for``: the summary table, ``--json`` and the command line
  every benchmark script shares.

Benchmarks touch only loopback-free local resources: a temporary folder,
FIFOs in it, and the processes they start.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import math
import os
import platform
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

__all__ = [
    "LINE_BYTES",
    "MIB",
    "ChildProgram",
    "Daemon",
    "GoSignal",
    "ProcwardDaemon",
    "Report",
    "ReportFifo",
    "Row",
    "Service",
    "SupervisordDaemon",
    "Workspace",
    "build_child",
    "daemon_classes",
    "machine_info",
    "main_for",
    "percentiles",
    "say",
    "verify_log",
    "wait_exit",
    "wait_gone",
]

MIB = 1024 * 1024
LINE_BYTES = 100
# Upper bound for any single wait; a benchmark that hits it fails loudly
# instead of hanging.
DEFAULT_TIMEOUT = 60.0


def say(message: str) -> None:
    """Progress for a person; stderr, so ``--json`` output stays clean."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """A benchmark could not measure what it set out to (a timeout, a missing report)."""


# -- processes and folders ---------------------------------------------------

_open_workspaces: list[Workspace] = []


class Workspace:
    """A temporary folder and the processes started in it, all gone at ``close()``."""

    def __init__(self, label: str, *, keep: bool = False) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f"procward-bench-{label}-"))
        self.keep = keep
        self._procs: list[psutil.Process] = []
        self._popens: list[subprocess.Popen[bytes]] = []
        _open_workspaces.append(self)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def track(self, popen: subprocess.Popen[bytes]) -> None:
        """Remember a process we started, to kill it at the end if it still runs."""
        self._popens.append(popen)
        try:
            self._procs.append(psutil.Process(popen.pid))
        except psutil.Error:
            pass

    def track_pids(self, pids: Sequence[int]) -> None:
        """Remember processes others started for us (a supervisor's children)."""
        for pid in pids:
            try:
                # psutil.Process keeps the create time, so a reused pid is never hit.
                self._procs.append(psutil.Process(pid))
            except psutil.Error:
                pass

    def kill_all(self) -> None:
        victims: dict[int, psutil.Process] = {}
        for proc in self._procs:
            try:
                if proc.is_running():
                    victims[proc.pid] = proc
                    for sub in proc.children(recursive=True):
                        victims[sub.pid] = sub
            except psutil.Error:
                continue
        for proc in victims.values():
            try:
                proc.kill()
            except psutil.Error:
                pass
        for popen in self._popens:
            for pipe in (popen.stdin, popen.stdout, popen.stderr):
                if pipe is not None:
                    pipe.close()
            if popen.returncode is None:
                try:
                    popen.wait(timeout=5)
                except (subprocess.TimeoutExpired, ChildProcessError):
                    pass
        psutil.wait_procs(list(victims.values()), timeout=5)
        self._procs.clear()
        self._popens.clear()

    def close(self) -> None:
        self.kill_all()
        if self in _open_workspaces:
            _open_workspaces.remove(self)
        if self.keep:
            say(f"kept {self.path}")
        else:
            shutil.rmtree(self.path, ignore_errors=True)


@atexit.register
def _close_open_workspaces() -> None:
    for ws in list(_open_workspaces):
        ws.close()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_handlers() -> None:
    """SIGTERM unwinds like Ctrl+C, so every ``finally`` and ``close()`` still runs."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)


def wait_exit(popen: subprocess.Popen[bytes], timeout: float) -> float:
    """Wait for a child of ours to exit; return the monotonic time it was seen to.

    ``Popen.wait(timeout=…)`` polls with sleeps of up to 50 ms, too coarse to
    time a stop; a pidfd wakes us the moment the process ends.
    """
    deadline = time.monotonic() + timeout
    try:
        pidfd = os.pidfd_open(popen.pid)
    except (AttributeError, OSError):
        pidfd = -1
    if pidfd >= 0:
        try:
            ready, _, _ = select.select([pidfd], [], [], timeout)
        finally:
            os.close(pidfd)
        seen = time.monotonic()
        if not ready:
            raise subprocess.TimeoutExpired(popen.args, timeout)
        popen.wait()
        return seen
    while popen.poll() is None:
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(popen.args, timeout)
        time.sleep(0.001)
    return time.monotonic()


def proc_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a zombie no longer runs)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 2 : data.rfind(b")") + 3] != b"Z"


def wait_gone(pids: Sequence[int], timeout: float) -> float:
    """Wait until none of ``pids`` runs; return the monotonic time it was seen."""
    deadline = time.monotonic() + timeout
    left = list(pids)
    while True:
        left = [pid for pid in left if proc_alive(pid)]
        now = time.monotonic()
        if not left:
            return now
        if now > deadline:
            raise BenchError(f"{len(left)} process(es) still running after {timeout:g}s")
        time.sleep(0.002)


# -- the child program -------------------------------------------------------

CHILD_C = r"""
/* procward benchmark child: the same program under every supervisor.
 *   child report FIFO              write "PID START_NS\n" (CLOCK_MONOTONIC, taken first
 *                                  thing in main) to FIFO, then sleep until killed
 *   child write LINES GO REPORT    wait for a byte on the FIFO GO, write LINES 100-byte
 *                                  lines to stdout in 64 KiB writes, then write
 *                                  "BYTES FIRST_NS LAST_NS\n" to the file REPORT
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE 100
#define CHUNK 65536

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int report(const char *fifo) {
    long long t = now_ns();
    char line[64];
    int n = snprintf(line, sizeof line, "%ld %lld\n", (long)getpid(), t);
    /* Non-blocking open: never hang when nobody listens; then blocking writes. */
    int fd = open(fifo, O_WRONLY | O_NONBLOCK);
    if (fd >= 0) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        write_all(fd, line, (size_t)n);
        close(fd);
    }
    for (;;) pause();
    return 0;
}

static int writer(long long lines, const char *go, const char *out) {
    char fills[26][LINE - 13];
    for (int k = 0; k < 26; k++) {
        for (int j = 0; j < LINE - 14; j++) fills[k][j] = (char)('a' + (k + j) % 26);
        fills[k][LINE - 14] = '\n';
    }
    char digits[12];
    memset(digits, '0', sizeof digits);
    char *buf = malloc(CHUNK + LINE);
    if (buf == NULL) return 2;
    int g = open(go, O_RDONLY);
    char c;
    if (g < 0 || read(g, &c, 1) != 1) return 2;
    close(g);
    long long seq = 0, written = 0;
    size_t have = 0;
    int k = 0;
    long long t0 = now_ns();
    while (seq < lines || have > 0) {
        while (have < CHUNK && seq < lines) {
            char *p = buf + have;
            memcpy(p, digits, 12);
            p[12] = ' ';
            memcpy(p + 13, fills[k], LINE - 13);
            have += LINE;
            seq++;
            if (++k == 26) k = 0;
            for (int i = 11; i >= 0; i--) {
                if (digits[i] == '9') {
                    digits[i] = '0';
                } else {
                    digits[i]++;
                    break;
                }
            }
        }
        size_t n = have < CHUNK ? have : CHUNK;
        if (write_all(1, buf, n) < 0) return 3;
        written += (long long)n;
        memmove(buf, buf + n, have - n);
        have -= n;
    }
    long long t1 = now_ns();
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) return 4;
    fprintf(f, "%lld %lld %lld\n", written, t0, t1);
    fclose(f);
    return rename(tmp, out) == 0 ? 0 : 4;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "report") == 0) return report(argv[2]);
    if (argc == 5 && strcmp(argv[1], "write") == 0) return writer(atoll(argv[2]), argv[3], argv[4]);
    fprintf(stderr, "usage: child report FIFO | child write LINES GO REPORT\n");
    return 2;
}
"""

# The same two modes in Python, for a machine without a C compiler. It takes
# its start time after interpreter start-up, so every latency includes that.
CHILD_PY = r"""
import os, signal, sys, time

def report(fifo):
    t = time.monotonic_ns()
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    os.set_blocking(fd, True)
    os.write(fd, b"%d %d\n" % (os.getpid(), t))
    os.close(fd)
    while True:
        signal.pause()

def writer(lines, go, out):
    fills = [bytes(97 + (k + j) % 26 for j in range(86)) + b"\n" for k in range(26)]
    template = b"".join(b"%012d " + fills[k] for k in range(26))
    with open(go, "rb") as g:
        g.read(1)
    pending = b""
    seq = 0
    written = 0
    t0 = time.monotonic_ns()
    while seq < lines or pending:
        while len(pending) < 65536 and seq < lines:
            if seq % 26 == 0 and seq + 26 <= lines:
                pending += template % tuple(range(seq, seq + 26))
                seq += 26
            else:
                pending += b"%012d " % seq + fills[seq % 26]
                seq += 1
        chunk, pending = pending[:65536], pending[65536:]
        view = memoryview(chunk)
        while view:
            view = view[os.write(1, view):]
        written += len(chunk)
    t1 = time.monotonic_ns()
    with open(out + ".tmp", "w") as f:
        f.write(f"{written} {t0} {t1}\n")
    os.replace(out + ".tmp", out)

if sys.argv[1] == "report":
    report(sys.argv[2])
else:
    writer(int(sys.argv[2]), sys.argv[3], sys.argv[4])
"""


@dataclass(frozen=True)
class ChildProgram:
    """How to run the benchmark child: ``kind`` says which build it is."""

    kind: str
    prefix: tuple[str, ...]

    def report(self, fifo: Path) -> list[str]:
        return [*self.prefix, "report", str(fifo)]

    def writer(self, lines: int, go: Path, report: Path) -> list[str]:
        return [*self.prefix, "write", str(lines), str(go), str(report)]


def build_child(folder: Path, *, force_python: bool = False) -> ChildProgram:
    """Compile the C child into ``folder``; fall back to the Python child without ``cc``."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc and not force_python:
        src = folder / "child.c"
        exe = folder / "child"
        src.write_text(CHILD_C, encoding="utf-8")
        done = subprocess.run([cc, "-O2", "-o", str(exe), str(src)],
                              capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return ChildProgram(f"C, compiled with {Path(cc).name} -O2", (str(exe),))
        say(f"cc failed ({done.stderr.strip()[:200]}); using the Python child")
    script = folder / "child.py"
    script.write_text(CHILD_PY, encoding="utf-8")
    return ChildProgram("python -I -S script (no C compiler)",
                        (sys.executable, "-I", "-S", str(script)))


@dataclass(frozen=True)
class Report:
    """One child's word that it runs: its pid and CLOCK_MONOTONIC start, in ns."""

    pid: int
    t_ns: int


class ReportFifo:
    """A FIFO children write their start reports to; the bench reads them as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self._r = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        # Our own idle writer: the FIFO never reads as closed between children.
        self._w = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        self._buf = b""
        self.reports: list[Report] = []

    def close(self) -> None:
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self._r], [], [], max(timeout, 0.0))
        if not ready:
            return
        while True:
            try:
                data = os.read(self._r, 65536)
            except BlockingIOError:
                break
            if not data:
                break
            self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            pid, t_ns = line.split()
            self.reports.append(Report(int(pid), int(t_ns)))

    def wait_count(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[Report]:
        """Wait until ``count`` reports have arrived in all; return all of them."""
        deadline = time.monotonic() + timeout
        while len(self.reports) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"only {len(self.reports)} of {count} children reported "
                                 f"within {timeout:g}s")
            self._read(left)
        return self.reports

    def wait_for(self, accept: Callable[[Report], bool], timeout: float = 10.0) -> Report:
        """The first report not seen before that ``accept`` takes."""
        deadline = time.monotonic() + timeout
        start = len(self.reports)
        while True:
            for rep in self.reports[start:]:
                if accept(rep):
                    return rep
            start = len(self.reports)
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"no matching child report within {timeout:g}s")
            self._read(left)


class GoSignal:
    """A FIFO a writer child blocks on until the bench lets it start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self._fd = -1

    def wait_ready(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until the writer has opened the FIFO; it then blocks reading it."""
        deadline = time.monotonic() + timeout
        while self._fd < 0:
            try:
                # Succeeds only once a reader has it open; we keep it open, so
                # the writer waits in read() for the byte ``go()`` sends.
                self._fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody has it open for reading yet
                if time.monotonic() > deadline:
                    raise BenchError(f"the writer child did not open {self.path.name} "
                                     f"within {timeout:g}s") from None
                time.sleep(0.005)

    def go(self) -> None:
        self.wait_ready()
        os.write(self._fd, b"g")
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# -- supervisors ---------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    """One supervised program, written into either supervisor's configuration."""

    name: str
    argv: list[str]
    restart: bool = True  # restart whenever it ends (after it had started)
    start_seconds: float = 1.0  # supervisord takes whole seconds: rounded down
    max_size: int = 50 * MIB
    keep: int = 5


class _Tail:
    """Reads the lines appended to a file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def new_lines(self) -> list[bytes]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        return lines


class Daemon(ABC):
    """A supervisor under test: its folder, configuration, process and own log."""

    label: str

    def __init__(self, ws: Workspace, tag: str) -> None:
        self.ws = ws
        self.dir = ws.path / f"{self.label}-{tag}"
        self.dir.mkdir()
        self.log_dir = self.dir / "logs"
        self.log_dir.mkdir()
        self.popen: subprocess.Popen[bytes] | None = None
        self.process: psutil.Process | None = None
        self.launched_ns = 0
        self.services: list[Service] = []
        # Parsed from the daemon's own log: (wall time, kind, service, text).
        self.records: list[tuple[float, str, str, str]] = []
        self._tail = _Tail(self.own_log)

    # What each supervisor does its own way.

    @abstractmethod
    def write_config(self, services: Sequence[Service]) -> Path: ...

    @abstractmethod
    def argv(self, config: Path) -> list[str]: ...

    @abstractmethod
    def _parse(self, line: bytes) -> tuple[float, str, str, str] | None:
        """One line of the daemon's log as (time, kind, service, text); kind is one of
        ``ready``, ``starting``, ``running`` or ``other``."""

    @property
    @abstractmethod
    def own_log(self) -> Path: ...

    # Shared behaviour.

    def launch(self, services: Sequence[Service]) -> None:
        self.services = list(services)
        config = self.write_config(services)
        out = open(self.dir / "daemon.console", "wb")  # noqa: SIM115 - handed to the child
        self.launched_ns = time.monotonic_ns()
        # Its own session: a Ctrl+C at our terminal must not reach it directly.
        self.popen = subprocess.Popen(
            self.argv(config), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=self.dir, env=daemon_env(), start_new_session=True,
        )
        out.close()
        self.ws.track(self.popen)
        self.process = psutil.Process(self.popen.pid)

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def poll_log(self) -> None:
        for line in self._tail.new_lines():
            rec = self._parse(line)
            if rec is not None:
                self.records.append(rec)

    def count(self, kind: str, service: str | None = None) -> int:
        return sum(1 for r in self.records if r[1] == kind and (service is None or r[2] == service))

    def wait_log(self, kind: str, count: int, service: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until the daemon's log holds ``count`` records of ``kind``."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll_log()
            if self.count(kind, service) >= count:
                return
            assert self.popen is not None
            if self.popen.poll() is not None:
                raise BenchError(f"{self.label} exited with {self.popen.returncode}; see "
                                 f"{self.dir / 'daemon.console'}")
            if time.monotonic() > deadline:
                raise BenchError(f"{self.label}: {self.count(kind, service)} of {count} "
                                 f"{kind!r} records within {timeout:g}s")
            time.sleep(0.005)

    def wait_ready(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.wait_log("ready", 1, timeout=timeout)

    def internal_start_span(self) -> float | None:
        """Seconds from the daemon's first log record to its last "starting" record."""
        self.poll_log()
        ready = [r[0] for r in self.records if r[1] == "ready"]
        starts = [r[0] for r in self.records if r[1] == "starting"]
        if not ready or not starts:
            return None
        return max(starts) - min(ready)

    def cpu_seconds(self) -> float:
        """User+system CPU of the daemon process (psutil; 10 ms clock-tick resolution)."""
        assert self.process is not None
        t = self.process.cpu_times()
        return t.user + t.system

    def minor_faults(self) -> int:
        """Minor page faults of the daemon so far (/proc/PID/stat): a buffer
        allocated afresh for every read shows up here."""
        data = Path(f"/proc/{self.pid}/stat").read_bytes()
        return int(data[data.rfind(b")") + 2 :].split()[7])

    def cpu_ns_precise(self) -> int | None:
        """On-CPU nanoseconds of the daemon's live threads (Linux schedstat), or None.

        Finer than ``cpu_seconds`` (which counts 10 ms ticks) but blind to
        threads that ended: right for an idle daemon, not for a busy one.
        """
        total = 0
        try:
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return total

    def log_paths(self, service: str) -> list[Path]:
        """The service's stdout log and its rotations, oldest first."""
        base = self.log_dir / f"{service}.out.log"
        rotated: list[tuple[int, Path]] = []
        for p in self.log_dir.glob(f"{service}.out.log.*"):
            suffix = p.name[len(base.name) + 1 :]
            if suffix.isdigit():
                rotated.append((int(suffix), p))
        paths = [p for _, p in sorted(rotated, reverse=True)]
        if base.exists():
            paths.append(base)
        return paths

    def describe(self) -> str:
        """What the daemon was doing: for the message of a benchmark that failed on it."""
        lines = [f"{self.label} pid {self.pid} in {self.dir}"]
        try:
            console = (self.dir / "daemon.console").read_bytes()[-1500:]
            lines.append("console tail:\n" + console.decode(errors="replace"))
        except OSError:
            pass
        try:
            assert self.process is not None
            kids = self.process.children()
            lines.append(f"{len(kids)} children left: {[k.pid for k in kids][:20]}")
        except (psutil.Error, AssertionError):
            pass
        return "\n".join(lines)

    def stop(self, timeout: float = DEFAULT_TIMEOUT) -> float:
        """SIGTERM, wait for the daemon to exit; seconds it took (0 if already gone)."""
        if self.popen is None or self.popen.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        os.kill(self.popen.pid, signal.SIGTERM)
        try:
            exited = wait_exit(self.popen, timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{self.label} did not exit within {timeout:g}s of SIGTERM; "
                             f"{self.describe()}") from None
        return exited - t0


class ProcwardDaemon(Daemon):
    """``python -m procward run -c procward.toml``."""

    label = "procward"
    @property
    def own_log(self) -> Path:
        return self.log_dir / "procward.events.jsonl"

    def write_config(self, services: Sequence[Service]) -> Path:
        def q(s: str) -> str:
            return json.dumps(s)  # a TOML basic string, for the ASCII we write

        out = ["[procward]", 'log_dir = "logs"', 'state_dir = "state"', "",
               # The control API is on (as for a user), on any free port.
               "[api]", 'listen = "127.0.0.1:0"', ""]
        for s in services:
            out += [
                f"[services.{s.name}]",
                f"command = [{', '.join(q(a) for a in s.argv)}]",
                f'restart = "{"always" if s.restart else "never"}"',
                f"start_seconds = {s.start_seconds!r}",
                "stop_timeout = 10",
                # The default start limit (5 restarts a minute) would end a
                # restart benchmark after five kills.
                f"[services.{s.name}.start_limit]",
                "burst = 1000000",
                f"[services.{s.name}.logs]",
                f"max_size = {s.max_size}",
                f"keep = {s.keep}",
                "",
            ]
        path = self.dir / "procward.toml"
        path.write_text("\n".join(out), encoding="utf-8")
        return path

    def argv(self, config: Path) -> list[str]:
        return [sys.executable, "-m", "procward", "run", "-c", str(config)]

    def _parse(self, line: bytes) -> tuple[float, str, str, str] | None:
        try:
            rec = json.loads(line)
        except ValueError:
            return None
        kind = "other"
        if rec.get("kind") == "daemon" and str(rec.get("message", "")).startswith(
                "procward started"):
            kind = "ready"
        elif rec.get("kind") == "state" and rec.get("state") in ("starting", "running"):
            kind = rec["state"]
        return float(rec["time"]), kind, rec.get("service") or "", rec.get("message", "")

    def guardian(self) -> psutil.Process | None:
        """The daemon's guardian helper, if it has one (Linux)."""
        assert self.process is not None
        for child in self.process.children():
            try:
                if any("_guardian" in part for part in child.cmdline()):
                    return child
            except psutil.Error:
                continue
        return None


_SUPERVISORD_LINE = re.compile(
    rb"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) (\w+) (.*)$")


class SupervisordDaemon(Daemon):
    """``python -m supervisor.supervisord -n -c supervisord.conf`` (supervisor 4.3)."""

    label = "supervisord"

    @property
    def own_log(self) -> Path:
        return self.dir / "supervisord.log"

    def write_config(self, services: Sequence[Service]) -> Path:
        here = str(self.dir).replace("%", "%%")
        out = [
            "[supervisord]",
            "nodaemon=true",
            f"logfile={here}/supervisord.log",
            f"pidfile={here}/supervisord.pid",
            f"childlogdir={here}/logs",
        ]
        # supervisord raises its soft limits to minfds/minprocs; set them only
        # when the defaults (1024, 200) would not cover the programs, because a
        # spawned child closes every descriptor below minfds one by one.
        need_fds, need_procs = 64 + 6 * len(services), 64 + len(services)
        soft_fd, hard_fd = _limits("RLIMIT_NOFILE")
        soft_proc, hard_proc = _limits("RLIMIT_NPROC")
        if soft_fd < need_fds:
            out.append(f"minfds={min(max(1024, need_fds), hard_fd)}")
        if soft_proc < need_procs:
            out.append(f"minprocs={min(max(200, need_procs), hard_proc)}")
        out.append("")
        for s in services:
            log = f"{here}/logs/{s.name}"
            out += [
                f"[program:{s.name}]",
                "command=" + shlex.join(s.argv).replace("%", "%%"),
                "autostart=true",
                f"autorestart={'true' if s.restart else 'false'}",
                f"startsecs={int(s.start_seconds)}",
                "stopwaitsecs=10",
                f"stdout_logfile={log}.out.log",
                f"stdout_logfile_maxbytes={s.max_size}",
                f"stdout_logfile_backups={s.keep}",
                f"stderr_logfile={log}.err.log",
                f"stderr_logfile_maxbytes={s.max_size}",
                f"stderr_logfile_backups={s.keep}",
                "",
            ]
        path = self.dir / "supervisord.conf"
        path.write_text("\n".join(out), encoding="utf-8")
        return path

    def argv(self, config: Path) -> list[str]:
        return [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(config)]

    def _parse(self, line: bytes) -> tuple[float, str, str, str] | None:
        m = _SUPERVISORD_LINE.match(line)
        if m is None:
            return None
        when = dt.datetime.strptime(m.group(1).decode(), "%Y-%m-%d %H:%M:%S").timestamp()
        when += int(m.group(2)) / 1000
        text = m.group(4).decode(errors="replace")
        kind, service = "other", ""
        if text.startswith("supervisord started with pid"):
            kind = "ready"
        elif text.startswith("spawned: '"):
            kind, service = "starting", text.split("'")[1]
        elif text.startswith("success: ") and "entered RUNNING state" in text:
            kind, service = "running", text.split()[1]
        return when, kind, service, text


def _limits(name: str) -> tuple[int, int]:
    import resource

    soft, hard = resource.getrlimit(getattr(resource, name))
    big = 1 << 30
    return (big if soft == resource.RLIM_INFINITY else soft,
            big if hard == resource.RLIM_INFINITY else hard)


def supervisord_version() -> str | None:
    try:
        return metadata.version("supervisor")
    except metadata.PackageNotFoundError:
        return None


# Per bench process: the bytecode cache folder, and which daemons have been warmed up.
_daemon_caches: list[Path] = []
_warm: set[str] = set()


def daemon_env() -> dict[str, str]:
    """The environment daemons run in: ours, with bytecode caching on.

    A deployed procward or supervisord has its modules compiled; an
    environment that says PYTHONDONTWRITEBYTECODE (common in containers) would
    make every daemon compile its package again at each start and count that
    as boot time. The cache goes to a temporary folder, never beside sources.
    """
    if not _daemon_caches:
        _daemon_caches.append(Path(tempfile.mkdtemp(prefix="procward-bench-caches-")))
        atexit.register(shutil.rmtree, _daemon_caches[0], True)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(_daemon_caches[0] / "bytecode")
    return env


def daemon_classes(ws: Workspace) -> list[type[Daemon]]:
    """procward, and supervisord when it is installed; each started once with no
    services first, so bytecode and file caches are warm for what is measured."""
    classes: list[type[Daemon]] = [ProcwardDaemon]
    if supervisord_version() is not None:
        classes.append(SupervisordDaemon)
    else:
        say("supervisor is not installed (pip install -e '.[bench]'); skipping supervisord")
    for cls in classes:
        if cls.label not in _warm:
            daemon = cls(ws, "warm-up")
            daemon.launch([])
            daemon.wait_ready()
            daemon.stop()
            _warm.add(cls.label)
    return classes


# -- reading logs back ------------------------------------------------------------

_FILLS = [bytes(97 + (k + j) % 26 for j in range(LINE_BYTES - 14)) + b"\n" for k in range(26)]
_TEMPLATE = b"".join(b"%012d " + _FILLS[k] for k in range(26))


def expected_lines(first: int, end: int) -> bytes:
    """Lines ``first`` … ``end - 1`` exactly as the writer child writes them."""
    parts: list[bytes] = []
    i = first
    while i < end and i % 26:
        parts.append(b"%012d " % i + _FILLS[i % 26])
        i += 1
    while i + 26 <= end:
        parts.append(_TEMPLATE % tuple(range(i, i + 26)))
        i += 26
    while i < end:
        parts.append(b"%012d " % i + _FILLS[i % 26])
        i += 1
    return b"".join(parts)


class _Concat:
    """Reads several files as one stream."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = list(paths)
        self._file: Any = None

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            if self._file is None:
                if not self._paths:
                    break
                self._file = open(self._paths.pop(0), "rb")  # noqa: SIM115
            data = self._file.read(n - len(out))
            if not data:
                self._file.close()
                self._file = None
                continue
            out += data
        return bytes(out)

    def lines(self) -> Iterator[bytes]:
        rest = b""
        while True:
            data = self.read(8 * MIB)
            if not data:
                break
            *whole, rest = (rest + data).split(b"\n")
            for line in whole:
                yield line + b"\n"
        if rest:
            yield rest


def verify_log(paths: Sequence[Path], lines: int) -> dict[str, Any]:
    """Read every file back and check it holds exactly lines 0 … lines-1, in order.

    ``lost_bytes`` counts the bytes of every expected line that is missing or
    damaged; ``split_lines`` counts files that end inside a line (a rotation
    that did not fall on a line boundary: nothing lost, but a line cut in two).
    """
    found = sum(p.stat().st_size for p in paths)
    split = 0
    for p in paths:
        size = p.stat().st_size
        if size:
            with open(p, "rb") as f:
                f.seek(size - 1)
                split += f.read(1) != b"\n"
    result: dict[str, Any] = {
        "files": len(paths), "expected_bytes": lines * LINE_BYTES, "found_bytes": found,
        "split_lines": split,
    }
    # Fast path: the whole stream equals what was written.
    stream = _Concat(paths)
    block = 26 * 4000
    intact = True
    for first in range(0, lines, block):
        want = expected_lines(first, min(lines, first + block))
        if stream.read(len(want)) != want:
            intact = False
            break
    if intact and not stream.read(1):
        result.update(intact=True, lost_bytes=0, missing_lines=0, corrupted_lines=0,
                      duplicate_lines=0, out_of_order=0)
        return result
    # Slow path: account for every line.
    seen = bytearray(lines)
    good = corrupted = duplicates = disorder = 0
    last = -1
    for line in _Concat(paths).lines():
        head = line[:12]
        if len(line) != LINE_BYTES or not head.isdigit() or line[12:13] != b" ":
            corrupted += 1
            continue
        seq = int(head)
        if seq >= lines or line[13:] != _FILLS[seq % 26]:
            corrupted += 1
            continue
        if seen[seq]:
            duplicates += 1
            continue
        seen[seq] = 1
        good += 1
        disorder += seq < last
        last = seq
    result.update(intact=False, lost_bytes=(lines - good) * LINE_BYTES,
                  missing_lines=lines - good, corrupted_lines=corrupted,
                  duplicate_lines=duplicates, out_of_order=disorder)
    return result


# -- figures and output ----------------------------------------------------------


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50 (median), p90 (nearest rank), max, mean and count."""
    s = sorted(values)
    if not s:
        return {"n": 0}
    mid = len(s) // 2
    p50 = s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
    return {"n": len(s), "p50": p50, "p90": s[max(0, math.ceil(0.9 * len(s)) - 1)],
            "max": s[-1], "mean": sum(s) / len(s)}


@dataclass
class Row:
    """One line of the summary: a procward figure, the baseline measured in the same
    run, their ratio, supervisord's figure, the target and the verdict."""

    benchmark: str
    metric: str
    unit: str
    procward: float | None
    baseline: float | None = None
    baseline_label: str = ""
    supervisord: float | None = None
    target: str = ""
    verdict: str = "INFO"  # PASS, MISS, INFO (no target), ERROR

    @property
    def ratio(self) -> float | None:
        if self.procward is None or not self.baseline:
            return None
        return self.procward / self.baseline

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def verdict(ok: bool | None) -> str:
    return "INFO" if ok is None else ("PASS" if ok else "MISS")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def format_table(rows: Sequence[Row]) -> str:
    head = ["benchmark", "metric", "procward", "baseline", "ratio", "supervisord", "target",
            "verdict"]
    body = []
    for r in rows:
        base = f"{_fmt(r.baseline)} ({r.baseline_label})" if r.baseline is not None else "-"
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        body.append([r.benchmark, f"{r.metric} [{r.unit}]", _fmt(r.procward), base, ratio,
                     _fmt(r.supervisord), r.target, r.verdict])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=False)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
             for line in [head, ["-" * w for w in widths], *body]]
    return "\n".join(lines)


def machine_info(child: str | None = None) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        procward_version = metadata.version("procward")
    except metadata.PackageNotFoundError:
        procward_version = "unknown"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "procward": procward_version,
        "supervisor": supervisord_version(),
        "child": child,
    }


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: the whole suite runs in well under a minute")
    parser.add_argument("--json", action="store_true",
                        help="print the results as JSON on stdout (progress goes to stderr)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (configs, daemon logs) for a look")
    parser.add_argument("--python-child", action="store_true",
                        help="use the Python child even when a C compiler is there")


Runner = Callable[[argparse.Namespace, Workspace, ChildProgram], dict[str, Any]]
RowMaker = Callable[[dict[str, Any]], list[Row]]


def run_one(name: str, opts: argparse.Namespace, run: Runner) -> dict[str, Any]:
    """Run one benchmark in a workspace of its own, cleaned up whatever happens."""
    with Workspace(name, keep=opts.keep) as ws:
        child = build_child(ws.path, force_python=opts.python_child)
        say(f"{name}: child program is {child.kind}")
        result = run(opts, ws, child)
        result["child"] = child.kind
        return result


def main_for(name: str, parser: argparse.ArgumentParser, run: Runner, rows: RowMaker,
             argv: Sequence[str] | None = None) -> int:
    """The ``main()`` of one benchmark script."""
    add_common_arguments(parser)
    opts = parser.parse_args(argv)
    install_signal_handlers()
    result = run_one(name, opts, run)
    table = rows(result)
    if opts.json:
        print(json.dumps({"machine": machine_info(result.get("child")), "results": {name: result},
                          "summary": [r.to_dict() for r in table]}, indent=2))
    else:
        print(format_table(table))
    return 0
