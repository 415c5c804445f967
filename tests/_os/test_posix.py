"""The POSIX process layer with real children: output, exit status, process groups."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from procward._os import ExitStatus, Leftover, SpawnSpec
from procward.errors import SpawnError, StateDirLocked
from procward.testing import python

if sys.platform == "win32":
    pytest.skip("POSIX only", allow_module_level=True)

from procward._os.posix import PLATFORM, PosixPlatform


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()
        self.runs_ended = 0

    def feed(self, data: bytes) -> None:
        self.data += data

    def end_of_run(self) -> None:
        self.runs_ended += 1


def _spec(code: str, cwd: Path | None = None, **kw: object) -> SpawnSpec:
    return SpawnSpec(python(code), cwd or Path.cwd(), dict(os.environ), **kw)  # type: ignore[arg-type]


@pytest.fixture(params=["posix_spawn", "popen"])
def folder(request: pytest.FixtureRequest, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The folder for a test's children, once per way a child can be started.

    A child whose folder is the process's own starts through os.posix_spawn,
    any other through Popen (posix_spawn cannot set one); the process moves
    to this folder, or elsewhere, and afterwards the test checks which way
    its children took.
    """
    folder, elsewhere = tmp_path / "services", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(folder if request.param == "posix_spawn" else elsewhere)
    calls: list[object] = []
    real = os.posix_spawn

    def spy(*args: Any, **kwargs: Any) -> int:
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(os, "posix_spawn", spy)
    yield folder
    if request.param == "popen":
        assert calls == [], "a child was started through posix_spawn"
    else:
        assert calls, "no child was started through posix_spawn"


def test_every_byte_is_in_the_sinks_when_exit_is_reported(folder: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A child that writes 3 MB and exits at once: all of it has arrived when exited resolves."""
    code = "import os\nfor i in range(3000): os.write(1, b'%07d' % i + b'.' * 992 + b'\\n')\n" \
           "os.write(2, b'bye\\n'); os._exit(5)"

    async def scenario() -> None:
        out, err = Sink(), Sink()
        child = PLATFORM.spawn(asyncio.get_running_loop(), _spec(code, folder), out, err)
        status = await child.exited
        assert status == ExitStatus(5)
        assert len(out.data) == 3000 * 1000 and out.data.endswith(b"." * 992 + b"\n")
        assert bytes(err.data) == b"bye\n"
        assert out.runs_ended == err.runs_ended == 1

    run(scenario())


def test_exit_by_signal_is_reported_as_the_signal(folder: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A child killed by a signal reports the signal, not an exit code."""
    async def scenario() -> None:
        child = PLATFORM.spawn(asyncio.get_running_loop(),
                               _spec("import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
                                     folder),
                               Sink(), Sink())
        status = await child.exited
        assert status == ExitStatus(None, signal.SIGKILL)
        assert status.describe() == "killed by SIGKILL"

    run(scenario())


def test_child_runs_in_its_own_session(folder: Path, run) -> None:  # type: ignore[no-untyped-def]
    """Each child leads a new session, so a terminal's Ctrl+C never reaches it directly."""
    async def scenario() -> None:
        child = PLATFORM.spawn(asyncio.get_running_loop(),
                               _spec("import time; time.sleep(30)", folder), Sink(), Sink())
        try:
            assert os.getsid(child.pid) == child.pid != os.getsid(0)
            assert os.getpgid(child.pid) == child.pid
        finally:
            child.kill_tree()
            await child.exited

    run(scenario())


def test_kill_tree_reaches_a_grandchild_that_left_the_session(folder: Path, run) -> None:  # type: ignore[no-untyped-def]
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
        child = PLATFORM.spawn(asyncio.get_running_loop(), _spec(code, folder), out, Sink())
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


def test_a_program_that_cannot_run_raises_spawn_error_and_leaks_no_pipe(  # type: ignore[no-untyped-def]
        folder: Path, run) -> None:
    """A missing or non-executable program, given by path, fails the spawn with the
    OS's reason, either way it is started; the pipes made for it are closed."""
    script = folder / "not-executable.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    fds = set(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").is_dir() else None

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        for argv, reason in (([str(script)], "Permission denied"),
                             (["./no-such-program"], "No such file or directory")):
            with pytest.raises(SpawnError, match=f"{re.escape(argv[0])}.*{reason}"):
                PLATFORM.spawn(loop, SpawnSpec(argv, folder, dict(os.environ)), Sink(), Sink())
        # A relative path is the service's folder's, whichever way it starts.
        (folder / "here.sh").write_text("#!/bin/sh\npwd\n")
        (folder / "here.sh").chmod(0o755)
        out = Sink()
        child = PLATFORM.spawn(loop, SpawnSpec(["./here.sh"], folder, dict(os.environ)), out,
                               Sink())
        assert await child.exited == ExitStatus(0)
        assert bytes(out.data).strip() == str(folder).encode()

    run(scenario())
    if fds is not None:
        assert set(os.listdir("/proc/self/fd")) == fds


def test_child_has_null_stdin_and_no_signal_ignored_that_python_ignores(  # type: ignore[no-untyped-def]
        folder: Path, run) -> None:
    """stdin is /dev/null and SIGPIPE/SIGXFSZ are back to their defaults in the child
    (Python ignores them in the daemon, and an ignored signal survives exec)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("reads /proc/self/status")
    command = ["sh", "-c", "grep '^SigIgn' /proc/self/status; wc -c"]

    async def scenario() -> None:
        out = Sink()
        child = PLATFORM.spawn(asyncio.get_running_loop(),
                               SpawnSpec(command, folder, dict(os.environ)), out, Sink())
        assert await child.exited == ExitStatus(0)
        ignored_line, stdin_bytes = bytes(out.data).decode().splitlines()
        ignored = int(ignored_line.split()[1], 16)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            assert not ignored & (1 << (sig - 1)), (sig, ignored_line)
        assert stdin_bytes.strip() == "0"

    run(scenario())


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="lists /proc/PID/fd")
def test_a_descriptor_the_daemon_inherited_does_not_reach_a_service(  # type: ignore[no-untyped-def]
        folder: Path, run) -> None:
    """posix_spawn closes only close-on-exec descriptors (Popen closes all but 0-2):
    one the daemon inherited without that flag is marked so before the first spawn."""
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)  # as a descriptor a parent passed down would be
    platform = PosixPlatform()  # a fresh one: it marks them before its first spawn

    async def scenario() -> None:
        out = Sink()
        child = platform.spawn(asyncio.get_running_loop(),
                               _spec("import os, time; os.write(1, b'up'); time.sleep(30)",
                                     folder), out, Sink())
        try:
            while not out.data:  # its start-up opens and closes files: wait for it
                await asyncio.sleep(0.01)
            ours = os.readlink(f"/proc/self/fd/{write_end}")
            theirs = {os.readlink(f"/proc/{child.pid}/fd/{fd}")
                      for fd in os.listdir(f"/proc/{child.pid}/fd")}
            assert ours not in theirs
        finally:
            child.kill_tree()
            await child.exited

    try:
        run(scenario())
    finally:
        os.close(read_end)
        os.close(write_end)


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


def test_a_missing_working_folder_is_named_not_taken_for_a_missing_program(  # type: ignore[no-untyped-def]
        tmp_path: Path, run) -> None:
    """A service whose folder is gone fails to start with a message naming the folder,
    not "No such file or directory" after the program's name."""
    gone = tmp_path / "gone"

    async def scenario() -> None:
        with pytest.raises(SpawnError, match=f"working folder {re.escape(str(gone))} does not"):
            PLATFORM.spawn(asyncio.get_running_loop(),
                           SpawnSpec([sys.executable, "-c", "pass"], gone, dict(os.environ)),
                           Sink(), Sink())

    run(scenario())
