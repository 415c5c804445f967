"""Processes on Windows: a Job Object per program, a console shared with the daemon.

Each program starts suspended in a new process group, is put in a Job Object of
its own with kill-on-close, and only then resumes, so not even a grandchild it
starts in its first instant escapes the job. The job is the service's tree:
ending it ends every process in it, and when the daemon dies, however it dies,
Windows closes the job handle and kill-on-close ends the whole tree.

Graceful stop is a chain, because no single way reaches every program:

1. a console control event (Ctrl+Break, or Ctrl+C) to the child's process
   group, which console programs see as SIGBREAK/SIGINT;
2. ``WM_CLOSE`` to the top-level windows of every process in the job, which
   is how a GUI program is asked to quit;
3. after ``stop_timeout`` the engine calls ``kill_tree``: TerminateJobObject,
   then anything found by ancestry that is still alive.

Output is read through overlapped pipes by the Proactor event loop (the
Windows default), so the daemon never blocks on a child and no thread copies
bytes. Only the wait for each process's exit uses a small thread: the Proactor
has no public way to wait on a process handle.
"""

from __future__ import annotations

import sys

# Tells mypy --platform linux that nothing below applies there (as posix.py does for win32).
assert sys.platform == "win32"

import asyncio
import msvcrt
import os
import shutil
import signal
import subprocess
import threading
from asyncio import windows_utils
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pywintypes
import win32api
import win32con
import win32console
import win32gui
import win32job
import win32process
import win32security

if TYPE_CHECKING:
    import _win32typing

from procward._os._base import (
    SAME_PROCESS,
    Child,
    ExitStatus,
    Leftover,
    NotifySocket,
    OutputSink,
    SpawnSpec,
)
from procward._os._leftovers import leftover_tree
from procward.errors import SpawnError, StateDirLocked

__all__ = ["PLATFORM", "WindowsChild", "WindowsPlatform"]

# Each pipe holds this much before the child's writes wait for us; asyncio's
# default (8 KiB) would make a chatty program wait on the daemon more often.
_PIPE_BUFFER = 64 * 1024

# The exit code a process gets when its tree is killed (what TerminateProcess
# conventionally uses, as taskkill /f and Python's Popen.kill do).
_KILLED_EXIT_CODE = 1

# After the main process ended and its job was emptied, every write end of its
# pipes is closed and they reach end-of-file at once. Only a process outside
# the job holding a duplicate of a pipe could keep one open: stop waiting then.
_DRAIN_TIMEOUT = 5.0

# Process groups give the program a Ctrl+Break of its own; suspended so that it
# is inside its job before it runs a single instruction.
_CREATION_FLAGS = subprocess.CREATE_NEW_PROCESS_GROUP | win32process.CREATE_SUSPENDED


def _ensure_console() -> None:
    """Give the daemon a working console, which its console children then share.

    GenerateConsoleCtrlEvent only reaches processes on the caller's console.
    We chose to own one console shared by every child (AllocConsole, as Shawl
    and supervisor-win do) over attaching to each child's console at stop time
    (AttachConsole, as WinSW and NSSM do): attaching first detaches the daemon
    from its own console, which in ``procward run`` is the user's terminal, and
    swaps the process-wide standard handles while it lasts. With one shared
    console, Ctrl+Break to a child's process group reaches exactly that
    service's tree, the daemon (in another group) is not touched, and no window
    appears per child: a console program inherits the existing console instead
    of opening one, and a GUI program never gets one.
    """
    try:
        # Succeeds only on a console that can carry control events.
        win32console.GetConsoleProcessList()
        return
    except pywintypes.error:
        pass
    # No console (a service, pythonw), or one that cannot deliver events (Wine
    # gives programs started from a Unix pipe a "shell, no window" stand-in).
    try:
        win32console.FreeConsole()
    except pywintypes.error:
        pass
    try:
        win32console.AllocConsole()
    except pywintypes.error:
        return  # no console to be had: stop falls back to WM_CLOSE and the job
    window = win32console.GetConsoleWindow()  # type: ignore[no-untyped-call]
    if window:
        # A service's console lives on session 0's desktop, seen by no one; on a
        # user's desktop, hide it so nobody closes it (that would end every child).
        win32gui.ShowWindow(window, win32con.SW_HIDE)


def _find_program(spec: SpawnSpec) -> str:
    """The program to run, found as the service's own environment would find it.

    CreateProcess resolves a bare name with the *daemon's* PATH and a relative
    path against the *daemon's* working directory; a service expects its own.
    """
    program = spec.argv[0]
    if os.path.dirname(program):
        path = Path(program)
        return str(path if path.is_absolute() else spec.cwd / path)
    search = next((v for k, v in spec.env.items() if k.upper() == "PATH"), None)
    # Not found: let CreateProcess search its own way, and report what it says.
    return shutil.which(program, path=search) or program


def _new_pipe() -> tuple[windows_utils.PipeHandle, int]:
    """An overlapped read end for the loop, and a C file descriptor for the child's end."""
    read_end, write_end = windows_utils.pipe(overlapped=(True, False), bufsize=_PIPE_BUFFER)
    return windows_utils.PipeHandle(read_end), msvcrt.open_osfhandle(write_end, 0)


def _new_job() -> int:
    # A PyHANDLE (closed when collected), typed int as types-pywin32 types handles;
    # its stub also says CreateJobObject returns None.
    job: int = win32job.CreateJobObject(None, "")  # type: ignore[func-returns-value,assignment]
    info = win32job.QueryInformationJobObject(job, win32job.JobObjectExtendedLimitInformation)
    # Kill-on-close: the tree dies with the daemon. Die-on-unhandled-exception: a
    # crashing program ends instead of waiting on an error dialog nobody sees.
    info["BasicLimitInformation"]["LimitFlags"] |= (
        win32job.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        | win32job.JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION
    )
    win32job.SetInformationJobObject(job, win32job.JobObjectExtendedLimitInformation, info)
    return job


def _kill_all(processes: list[psutil.Process], *, wait: float = 0) -> int:
    """Kill each process (psutil refuses a pid reused since); return how many were alive.

    ``wait`` > 0 waits that long for them to be gone: never on the daemon's loop.
    """
    killed = 0
    for proc in processes:
        try:
            proc.kill()
            killed += 1
        except psutil.Error:
            pass
    if wait > 0:
        psutil.wait_procs(processes, timeout=wait)
    return killed


class _PipeProtocol(asyncio.Protocol):
    """Hands each chunk a pipe delivers to a sink, and says when the pipe closed."""

    def __init__(self, sink: OutputSink, closed: asyncio.Future[None]) -> None:
        self._sink = sink
        self._closed = closed

    def data_received(self, data: bytes) -> None:
        self._sink.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)


class WindowsChild:
    """A program running in a Job Object of its own, and the pipes it writes to."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        popen: subprocess.Popen[bytes],
        job: int,
        create_time: float,
        pipes: list[tuple[windows_utils.PipeHandle, OutputSink]],
    ) -> None:
        self.pid = popen.pid
        self.create_time = create_time
        self.exited: asyncio.Future[ExitStatus] = loop.create_future()
        self._loop = loop
        self._popen = popen
        self._job: int | None = job
        self._exit_code: asyncio.Future[int] = loop.create_future()
        self._transports: list[asyncio.BaseTransport] = []
        self._sinks = [sink for _, sink in pipes]
        # Held so the task is not collected while it runs.
        self._task = loop.create_task(self._run(pipes), name=f"procward child {self.pid}")
        # The Proactor can read pipes but offers no public wait on a process
        # handle: one small thread blocks in WaitForSingleObject and tells the loop.
        threading.Thread(target=self._wait_for_exit, name=f"procward wait {self.pid}",
                         daemon=True).start()

    # -- lifecycle, on the loop ----------------------------------------------------------

    def _wait_for_exit(self) -> None:
        code = self._popen.wait()
        try:
            self._loop.call_soon_threadsafe(self._on_exit_code, code)
        except RuntimeError:
            pass  # the loop is closed: nobody is left to tell

    def _on_exit_code(self, code: int) -> None:
        if not self._exit_code.done():
            self._exit_code.set_result(code)

    async def _read(self, pipe: windows_utils.PipeHandle, sink: OutputSink) -> None:
        closed: asyncio.Future[None] = self._loop.create_future()
        try:
            transport, _ = await self._loop.connect_read_pipe(
                lambda: _PipeProtocol(sink, closed), pipe)
        except Exception:
            pipe.close()
            raise
        self._transports.append(transport)
        await closed

    async def _run(self, pipes: list[tuple[windows_utils.PipeHandle, OutputSink]]) -> None:
        readers = [asyncio.ensure_future(self._read(pipe, sink)) for pipe, sink in pipes]
        code: int | None = None
        try:
            code = await self._exit_code
            # The main process is gone: what it left in its job goes with it, as
            # systemd does with a unit's control group, so a restart never finds
            # the old run's helpers, and the pipes they held reach end-of-file.
            self._terminate_job()
            _, pending = await asyncio.wait(readers, timeout=_DRAIN_TIMEOUT)
            if pending:
                for transport in self._transports:
                    transport.close()
                await asyncio.wait(pending, timeout=1.0)
        finally:
            for reader in readers:
                if not reader.done():
                    reader.cancel()
                elif not reader.cancelled() and reader.exception() is not None:
                    # A pipe that could not be read: say so, rather than lose it.
                    self._loop.call_exception_handler({
                        "message": f"procward: reading the output of pid {self.pid} failed",
                        "exception": reader.exception(),
                    })
            self._close_job()
            # Every byte is in the sinks now: the log of this run is complete
            # before the engine hears of the exit and maybe starts the next run.
            for sink in self._sinks:
                sink.end_of_run()
            if not self.exited.done():
                self.exited.set_result(ExitStatus(code))

    def _terminate_job(self) -> None:
        if self._job is not None:
            try:
                win32job.TerminateJobObject(self._job, _KILLED_EXIT_CODE)
            except pywintypes.error:
                pass

    def _close_job(self) -> None:
        if self._job is not None:
            # Kill-on-close: closing the last handle also ends anything still in it.
            win32api.CloseHandle(self._job)
            self._job = None

    def _tree(self) -> list[psutil.Process]:
        """The main process and its descendants by ancestry, if the main one still runs."""
        try:
            main = psutil.Process(self.pid)
            # Once the main process is gone its pid may be reused: check it is ours.
            if abs(main.create_time() - self.create_time) < SAME_PROCESS:
                return [main, *main.children(recursive=True)]
        except psutil.Error:
            pass
        return []

    def _tree_pids(self) -> set[int]:
        pids = {p.pid for p in self._tree()}
        if self._job is not None:
            try:
                pids.update(win32job.QueryInformationJobObject(
                    self._job, win32job.JobObjectBasicProcessIdList))
            except pywintypes.error:
                pass
        return pids

    # -- the engine's controls -------------------------------------------------------------

    def stop(self, signal_name: str) -> None:
        """Ask the tree to stop: a console event to its group, then WM_CLOSE to its windows.

        ``INT``/``CTRL_C`` send Ctrl+C (which a program in a new process group
        ignores unless it turned it back on); every other name, ``TERM`` among
        them, sends Ctrl+Break. ``KILL`` ends the tree at once. When neither a
        console event nor a window message could be delivered, nothing can ask
        the program politely, and waiting ``stop_timeout`` would only delay the
        inevitable: the tree is ended at once.
        """
        if self._exit_code.done():
            return
        name = signal_name.upper().removeprefix("SIG")
        if name == "KILL":
            self.kill_tree()
            return
        event = win32con.CTRL_C_EVENT if name in ("INT", "CTRL_C") else win32con.CTRL_BREAK_EVENT
        try:
            # With CREATE_NEW_PROCESS_GROUP the child's pid is its group id.
            win32api.GenerateConsoleCtrlEvent(event, self.pid)
            sent = True
        except pywintypes.error:
            sent = False
        closed = self._close_windows()
        if not sent and not closed:
            self.kill_tree()

    def _close_windows(self) -> bool:
        """Post WM_CLOSE to every top-level window of the tree; say whether there were any."""
        pids = self._tree_pids()
        windows: list[int] = []

        def visit(hwnd: int, _: object) -> bool:
            _, pid = win32process.GetWindowThreadProcessId(hwnd)
            if pid in pids:
                windows.append(hwnd)
            return True

        try:
            win32gui.EnumWindows(visit, None)
        except pywintypes.error:
            return False
        posted = False
        for hwnd in windows:
            try:
                win32gui.PostMessage(hwnd, win32con.WM_CLOSE, 0, 0)
                posted = True
            except pywintypes.error:
                pass
        return posted

    def kill_tree(self) -> None:
        """End the job (every process in it), then any descendant found by ancestry."""
        if self.exited.done():
            return
        # Found before the job ends, while parent links still lead to them.
        tree = self._tree()
        self._terminate_job()
        _kill_all([p for p in tree if p.is_running()])


class WindowsPlatform:
    """The Windows implementation of the engine's operating-system seam."""

    name = "windows"

    def __init__(self) -> None:
        self._console_checked = False

    def spawn(
        self,
        loop: asyncio.AbstractEventLoop,
        spec: SpawnSpec,
        stdout: OutputSink,
        stderr: OutputSink | None,
    ) -> Child:
        if not isinstance(loop, asyncio.ProactorEventLoop):
            raise TypeError(f"procward needs asyncio's ProactorEventLoop on Windows, got {loop!r}")
        if not self._console_checked:
            _ensure_console()
            self._console_checked = True
        stderr_sink = None if spec.merge_stderr else stderr
        out_read, out_fd = _new_pipe()
        err_read, err_fd = _new_pipe() if stderr_sink is not None else (None, None)
        read_ends = [h for h in (out_read, err_read) if h is not None]
        try:
            popen = subprocess.Popen(
                [_find_program(spec), *spec.argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=out_fd,
                stderr=subprocess.STDOUT if err_fd is None else err_fd,
                cwd=spec.cwd,
                env=spec.env,
                creationflags=_CREATION_FLAGS,
                close_fds=True,  # inherit only these three handles, never another child's
            )
        except OSError as e:
            for handle in read_ends:
                handle.close()
            if spec.cwd is not None and not os.path.isdir(spec.cwd):
                raise SpawnError(f'cannot start "{spec.argv[0]}": its working folder '
                                 f"{spec.cwd} does not exist") from e
            # Quoted, not repr(): a Windows path's backslashes stay single.
            raise SpawnError(f'cannot start "{spec.argv[0]}" (in {spec.cwd}): '
                             f"{e.strerror or e}") from e
        finally:
            # The child has its own copies; ours must go, or the pipes never reach EOF.
            os.close(out_fd)
            if err_fd is not None:
                os.close(err_fd)
        try:
            job = _new_job()
            process = win32api.OpenProcess(
                win32con.PROCESS_SET_QUOTA | win32con.PROCESS_TERMINATE, False, popen.pid)
            try:
                win32job.AssignProcessToJobObject(job, process)
            finally:
                win32api.CloseHandle(process)
            proc = psutil.Process(popen.pid)
            create_time = proc.create_time()
            proc.resume()  # NtResumeProcess: the main thread starts, inside the job
        except (pywintypes.error, psutil.Error) as e:
            popen.kill()
            popen.wait()
            for handle in read_ends:
                handle.close()
            message = e.strerror if isinstance(e, pywintypes.error) else str(e)
            raise SpawnError(f'cannot start "{spec.argv[0]}": could not put it in a job '
                             f"object: {message}") from e
        pipes = [(out_read, stdout)]
        if err_read is not None and stderr_sink is not None:
            pipes.append((err_read, stderr_sink))
        return WindowsChild(loop, popen, job, create_time, pipes)

    def reap_leftover(self, leftover: Leftover) -> int:
        tree = leftover_tree(leftover, lambda proc: proc.ppid() == leftover.pid)
        # Called before the daemon starts anything: waiting here blocks no service.
        return _kill_all(tree, wait=3)

    def guard_children(self, journal: Path) -> Callable[[], None] | None:
        # Nothing to add: each child's Job Object has kill-on-close, and Windows
        # closes the daemon's handles when it dies, however it dies.
        return None

    def raise_open_files_limit(self) -> tuple[int, int]:
        # Windows has no per-process soft limit to raise: handles are limited
        # only by memory (~16 million), and procward reads pipes by handle, not
        # by C runtime descriptor. (0, 0) says "no such limit".
        return (0, 0)

    def lock_state_dir(self, state_dir: Path) -> object:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(state_dir / "procward.lock", os.O_RDWR | os.O_CREAT | os.O_BINARY, 0o600)
        try:
            # Windows byte-range locks are per handle: a second daemon, or a second
            # open in this one, is refused at once.
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            os.close(fd)
            raise StateDirLocked(f"another procward is running with state dir {state_dir}") \
                from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return _Lock(fd)

    def install_stop_handlers(
        self, loop: asyncio.AbstractEventLoop, on_stop: Callable[[str], None]
    ) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            # Hosted by the Service Control Manager: stop requests come from it,
            # and Python lets only the main thread set signal handlers.
            return lambda: None

        def handler(signum: int, frame: object) -> None:
            # Only queue the request: the loop's owner acts on it.
            loop.call_soon_threadsafe(on_stop, "BREAK" if signum == signal.SIGBREAK else "INT")

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGBREAK)}

        def undo() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return undo

    def open_notify_socket(self, state_dir: Path) -> NotifySocket | None:
        # No systemd protocol here: children report over the framed TCP protocol.
        return None

    def system_log(self, message: str, *, error: bool) -> None:
        import win32evtlog
        import win32evtlogutil

        kind = win32evtlog.EVENTLOG_ERROR_TYPE if error else win32evtlog.EVENTLOG_WARNING_TYPE
        try:
            win32evtlogutil.ReportEvent("procward", 1, eventType=kind, strings=[message])
        except pywintypes.error as e:
            raise OSError(f"cannot write to the Event Log: {e.strerror}") from e


    def install_reload_handler(
        self, loop: asyncio.AbstractEventLoop, on_reload: Callable[[], None]
    ) -> Callable[[], None]:
        # Windows has no SIGHUP: reload comes through the API (`procward reload`).
        return lambda: None

    def write_private(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(b"")
        _restrict_to_owner_and_admins(tmp)
        with open(tmp, "r+b") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def _restrict_to_owner_and_admins(path: Path) -> None:
    """Give ``path`` a protected DACL: full control for this user, Administrators, SYSTEM.

    Protected means no entries inherited from the folder, so a folder that
    Users may read does not leak the token.
    """
    win32security.SetNamedSecurityInfo(
        str(path), win32security.SE_FILE_OBJECT,
        win32security.DACL_SECURITY_INFORMATION
        | win32security.PROTECTED_DACL_SECURITY_INFORMATION,
        None, None, private_dacl(), None)


def private_dacl() -> _win32typing.PyACL:
    """Full control for this process's user, Administrators and SYSTEM; no one else."""
    token = win32security.OpenProcessToken(win32api.GetCurrentProcess(),
                                           win32security.TOKEN_QUERY)
    me = win32security.GetTokenInformation(token, win32security.TokenUser)[0]
    admins = win32security.CreateWellKnownSid(win32security.WinBuiltinAdministratorsSid)
    system = win32security.CreateWellKnownSid(win32security.WinLocalSystemSid)
    dacl = win32security.ACL()
    for sid in (me, admins, system):
        dacl.AddAccessAllowedAce(win32security.ACL_REVISION, win32con.GENERIC_ALL, sid)
    return dacl


class _Lock:
    """Holds the state-dir lock until released or the process ends."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            # Unlock before closing: Windows may release a closed handle's lock late.
            os.lseek(self._fd, 0, os.SEEK_SET)
            try:
                msvcrt.locking(self._fd, msvcrt.LK_UNLCK, 1)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = -1


PLATFORM = WindowsPlatform()
