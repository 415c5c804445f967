"""What the engine needs from the operating system, said once for every platform.

``posix.py`` and ``windows.py`` each provide a ``Platform`` implementation;
``procward._os`` picks one.  The engine sees only these types, so it never
asks which OS it runs on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import asyncio
    from pathlib import Path

__all__ = [
    "SAME_PROCESS",
    "Child",
    "ExitStatus",
    "Leftover",
    "NotifySocket",
    "OutputSink",
    "Platform",
    "SpawnSpec",
]

# Two processes with one pid and create times this close are the same process:
# a pid cannot be reused while its first owner lives.
SAME_PROCESS = 0.1


@dataclass(frozen=True)
class SpawnSpec:
    """Everything needed to start one program."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    merge_stderr: bool = False


@dataclass(frozen=True)
class ExitStatus:
    """How a process ended: an exit code, or (POSIX) the signal that killed it."""

    code: int | None
    signal: int | None = None

    def describe(self) -> str:
        if self.signal is not None:
            import signal as _signal

            try:
                return f"killed by {_signal.Signals(self.signal).name}"
            except ValueError:
                return f"killed by signal {self.signal}"
        return f"exit code {self.code}"


class OutputSink(Protocol):
    """Receives a child's output, in chunks as they arrive, then its end.

    ``data`` is bytes, or a view of the start of a ``bytearray`` that is
    reused after ``feed`` returns: a sink that keeps bytes for later must copy
    them. (Starting at the start lets a sink search ``data.obj`` in place: a
    view has no ``find``, and copying every chunk to get one costs log capture.)
    """

    def feed(self, data: bytes | memoryview) -> None: ...

    def end_of_run(self) -> None: ...


class Child(Protocol):
    """A started program and its process tree.

    ``exited`` resolves when the main process has ended and been reaped; by then
    the platform has read every byte its pipes held into the sinks.
    """

    pid: int
    create_time: float
    exited: asyncio.Future[ExitStatus]

    def stop(self, signal_name: str) -> None:
        """Ask the whole tree to stop (``TERM``, ``INT``, ``CTRL_BREAK``, ...)."""

    def kill_tree(self) -> None:
        """End the main process and every descendant at once."""


@dataclass(frozen=True)
class Leftover:
    """A child recorded by an earlier daemon: enough to recognise it safely."""

    pid: int
    create_time: float
    name: str


class NotifySocket(Protocol):
    """A datagram socket speaking systemd's notify protocol (``NOTIFY_SOCKET``).

    The kernel tells us who sent each datagram, so a report is attributed to
    the service whose process sent it, not to whatever the message claims.
    """

    address: str  # the value children get as NOTIFY_SOCKET

    def fileno(self) -> int: ...

    def receive(self) -> list[tuple[bytes, int, int | None]]:
        """Every datagram waiting, as (data, sender pid, sender's session id or None)."""

    def close(self) -> None: ...


class Platform(Protocol):
    """The operating system seam: one implementation per platform."""

    name: str

    def spawn(
        self,
        loop: asyncio.AbstractEventLoop,
        spec: SpawnSpec,
        stdout: OutputSink,
        stderr: OutputSink | None,
    ) -> Child:
        """Start ``spec`` in its own process group / job; raise ``SpawnError`` if the OS refuses."""

    def reap_leftover(self, leftover: Leftover) -> int:
        """End what is left of a recorded child's tree; return how many processes were ended."""

    def guard_children(self, journal: Path) -> Callable[[], None] | None:
        """Make the children listed in ``journal`` die if this daemon dies, where the OS
        allows; return a function to call at a clean stop, or None if not needed."""

    def raise_open_files_limit(self) -> tuple[int, int]:
        """Raise the open-files soft limit to the hard limit; return (old, new)."""

    def lock_state_dir(self, state_dir: Path) -> object:
        """Take an exclusive lock on ``state_dir``; raise ``StateDirLocked`` if held."""

    def install_stop_handlers(
        self, loop: asyncio.AbstractEventLoop, on_stop: Callable[[str], None]
    ) -> Callable[[], None]:
        """Call ``on_stop(name)`` (from the loop) on Ctrl+C/SIGTERM/Ctrl+Break; return an undo."""

    def install_reload_handler(
        self, loop: asyncio.AbstractEventLoop, on_reload: Callable[[], None]
    ) -> Callable[[], None]:
        """Call ``on_reload()`` (from the loop) on SIGHUP where the OS has one; return an undo."""

    def write_private(self, path: Path, data: bytes) -> None:
        """Replace ``path`` atomically with ``data``, readable only by its owner
        (POSIX mode 0600; on Windows an ACL for the owner, Administrators and SYSTEM)."""

    def open_notify_socket(self, state_dir: Path) -> NotifySocket | None:
        """A systemd-style notify socket for children, where the OS can say who sent a
        datagram (Linux); None elsewhere."""

    def system_log(self, message: str, *, error: bool) -> None:
        """Write one line to the system's log (syslog; the Windows Event Log, source
        ``procward``); raise OSError if it cannot."""
