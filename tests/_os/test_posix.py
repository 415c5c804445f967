"""The POSIX process layer with real children: output, exit status, process groups."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import psutil
import pytest

from procward._os import ExitStatus, Leftover, SpawnSpec
from procward.errors import SpawnError, StateDirLocked
from procward.testing import python

if sys.platform == "win32":
    pytest.skip("POSIX only", allow_module_level=True)

from procward._os.posix import PLATFORM


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()
        self.runs_ended = 0

    def feed(self, data: bytes) -> None:
        self.data += data

    def end_of_run(self) -> None:
        self.runs_ended += 1


def _spec(code: str, **kw: object) -> SpawnSpec:
    return SpawnSpec(python(code), Path.cwd(), dict(os.environ), **kw)  # type: ignore[arg-type]


def test_every_byte_is_in_the_sinks_when_exit_is_reported(run) -> None:  # type: ignore[no-untyped-def]
    """A child that writes 3 MB and exits at once: all of it has arrived when exited resolves."""
    code = "import os\nfor i in range(3000): os.write(1, b'%07d' % i + b'.' * 992 + b'\\n')\n" \
           "os.write(2, b'bye\\n'); os._exit(5)"

    async def scenario() -> None:
        out, err = Sink(), Sink()
        child = PLATFORM.spawn(asyncio.get_running_loop(), _spec(code), out, err)
        status = await child.exited
        assert status == ExitStatus(5)
        assert len(out.data) == 3000 * 1000 and out.data.endswith(b"." * 992 + b"\n")
        assert bytes(err.data) == b"bye\n"
        assert out.runs_ended == err.runs_ended == 1

    run(scenario())


def test_exit_by_signal_is_reported_as_the_signal(run) -> None:  # type: ignore[no-untyped-def]
    """A child killed by a signal reports the signal, not an exit code."""
    async def scenario() -> None:
        child = PLATFORM.spawn(asyncio.get_running_loop(),
                               _spec("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"),
                               Sink(), Sink())
        status = await child.exited
        assert status == ExitStatus(None, signal.SIGKILL)
        assert status.describe() == "killed by SIGKILL"

    run(scenario())


def test_child_runs_in_its_own_session(run) -> None:  # type: ignore[no-untyped-def]
    """Each child leads a new session, so a terminal's Ctrl+C never reaches it directly."""
    async def scenario() -> None:
        child = PLATFORM.spawn(asyncio.get_running_loop(),
                               _spec("import time; time.sleep(30)"), Sink(), Sink())
        try:
            assert os.getsid(child.pid) == child.pid != os.getsid(0)
            assert os.getpgid(child.pid) == child.pid
        finally:
            child.kill_tree()
            await child.exited

    run(scenario())


def test_kill_tree_reaches_a_grandchild_that_left_the_session(run) -> None:  # type: ignore[no-untyped-def]
    """kill_tree finds descendants by ancestry too, even one that called setsid."""
    code = """
        import os, subprocess, sys, time
        g = subprocess.Popen([sys.executable, '-S', '-c', 'import time; time.sleep(60)'],
                             start_new_session=True)
        os.write(1, b'%d\\n' % g.pid)
        time.sleep(60)
    """

    async def scenario() -> None:
        out = Sink()
        child = PLATFORM.spawn(asyncio.get_running_loop(), _spec(code), out, Sink())
        while b"\n" not in out.data:
            await asyncio.sleep(0.01)
        grandchild = psutil.Process(int(out.data))
        child.kill_tree()
        await child.exited
        grandchild.wait(timeout=5)  # raises if it is still alive

    run(scenario())


def test_bare_name_is_found_on_the_services_path_and_keeps_its_argv0(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A bare program name is looked up on the service's PATH; argv[0] stays as written."""
    tool = tmp_path / "bin" / "whoami-tool"
    tool.parent.mkdir()
    tool.write_text('#!/bin/sh\necho "found $1"\n')
    tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{tool.parent}{os.pathsep}{os.environ['PATH']}"}

    async def scenario() -> None:
        for word in ("first", "second"):  # the second start uses the remembered path
            out = Sink()
            child = PLATFORM.spawn(asyncio.get_running_loop(),
                                   SpawnSpec(["whoami-tool", word], tmp_path, env), out, Sink())
            assert await child.exited == ExitStatus(0)
            assert bytes(out.data) == f"found {word}\n".encode()
        if Path("/proc/self/cmdline").exists():
            out = Sink()
            child = PLATFORM.spawn(asyncio.get_running_loop(), SpawnSpec(
                ["sh", "-c", "tr '\\0' ' ' < /proc/$$/cmdline"], tmp_path, env), out, Sink())
            await child.exited
            assert bytes(out.data).split(b" ")[0] == b"sh"  # not /usr/bin/sh
        tool.unlink()
        with pytest.raises(SpawnError, match="whoami-tool"):
            PLATFORM.spawn(asyncio.get_running_loop(),
                           SpawnSpec(["whoami-tool"], tmp_path, env), Sink(), Sink())

    run(scenario())


def test_missing_program_raises_spawn_error(run) -> None:  # type: ignore[no-untyped-def]
    """The OS refusing to run a program becomes a SpawnError naming it."""
    async def scenario() -> None:
        with pytest.raises(SpawnError, match="no-such-binary"):
            PLATFORM.spawn(asyncio.get_running_loop(),
                           SpawnSpec(["no-such-binary"], Path.cwd(), {}), Sink(), Sink())

    run(scenario())


def test_reap_leftover_matches_pid_and_create_time(tmp_path: Path) -> None:
    """A recorded child is ended only if pid and create time both match."""
    import subprocess

    proc = subprocess.Popen(python("import time; time.sleep(60)"), start_new_session=True)
    try:
        created = psutil.Process(proc.pid).create_time()
        assert PLATFORM.reap_leftover(Leftover(proc.pid, created - 50, "x")) == 0
        assert proc.poll() is None
        assert PLATFORM.reap_leftover(Leftover(proc.pid, created, "x")) == 1
        assert proc.wait(timeout=5) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()


def test_create_time_of_a_spawn_is_the_one_the_kernel_reports(run) -> None:  # type: ignore[no-untyped-def]
    """The create time recorded at spawn (taken from the clock, not read from /proc
    on Linux) identifies the child to psutil, and so to the next start's leftover
    check: a child recorded at spawn is reaped by pid and that create time."""
    async def scenario() -> None:
        children = [PLATFORM.spawn(asyncio.get_running_loop(),
                                   _spec("import time; time.sleep(60)"), Sink(), Sink())
                    for _ in range(20)]
        try:
            for child in children:
                kernel = psutil.Process(child.pid).create_time()
                # Within a clock tick (10 ms) and the fork's own time.
                assert abs(child.create_time - kernel) < 0.05, (child.create_time, kernel)
            last = children[-1]
            assert PLATFORM.reap_leftover(Leftover(last.pid, last.create_time, "x")) == 1
            assert await asyncio.wait_for(last.exited, 10) == ExitStatus(None, signal.SIGKILL)
        finally:
            for child in children:
                child.kill_tree()
                await child.exited

    run(scenario())


def test_state_dir_lock_is_exclusive(tmp_path: Path) -> None:
    """A second lock on the same state dir fails until the first is released."""
    import subprocess

    lock = PLATFORM.lock_state_dir(tmp_path)
    probe = ("import sys; from pathlib import Path; from procward._os.posix import PLATFORM\n"
             "from procward.errors import StateDirLocked\n"
             f"try:\n    PLATFORM.lock_state_dir(Path({str(tmp_path)!r}))\n"
             "except StateDirLocked:\n    sys.exit(7)\n")
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 7
    with pytest.raises(StateDirLocked, match="another procward is running"):
        PLATFORM.lock_state_dir(tmp_path)  # a second daemon in this very process
    lock.release()  # type: ignore[attr-defined]
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0
