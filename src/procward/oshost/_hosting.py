"""Running a host body in an ordinary process: stop signals, and reporting to stderr.

Shared by the console mode of the SDK (``svc.cli()`` ``run``) and by the
POSIX backends, whose service managers ask a service to stop with SIGTERM.
No code runs inside a signal handler beyond counting: Python's C-level
handler writes the signal number to a wakeup socket and a small thread turns
it into ``stop.set()``. Setting the event from the handler itself could
deadlock, because the handler runs on the main thread, which may be inside
that same event's (non-reentrant) lock in ``stop.wait()``.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Literal

from procward.oshost._base import HostBody, HostReporter

__all__ = ["StderrReporter", "call_body", "stop_on_signals"]


def _stop_signals(interactive: bool) -> list[signal.Signals]:
    if sys.platform == "win32":
        # Ctrl+C and Ctrl+Break (and closing the console) reach Python as these.
        return [signal.SIGINT, signal.SIGBREAK]
    return [signal.SIGINT, signal.SIGTERM] if interactive else [signal.SIGTERM, signal.SIGINT]


@contextmanager
def stop_on_signals(
    stop: threading.Event,
    *,
    interactive: bool = False,
    on_signal: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM (Ctrl+C/Ctrl+Break on Windows) set ``stop``.

    ``interactive``: a second Ctrl+C raises KeyboardInterrupt in the main
    thread, so a body that ignores ``stop`` can still be ended from a console.
    Must be entered on the main thread (Python's rule for signal handlers).
    """
    signals = _stop_signals(interactive)
    numbers = {int(s) for s in signals}
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    hits = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        # Counting is all that happens here: the wakeup socket carries the
        # signal to the watcher thread.
        nonlocal hits
        if signum == signal.SIGINT:
            hits += 1
            if interactive and hits >= 2:
                raise KeyboardInterrupt

    def watch() -> None:
        while True:
            try:
                data = reader.recv(64)
            except OSError:
                return
            if not data:
                return
            for number in data:
                if number in numbers:
                    if on_signal is not None and not stop.is_set():
                        on_signal(signal.Signals(number).name)
                    stop.set()

    old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    old_handlers = {s: signal.signal(s, handler) for s in signals}
    watcher = threading.Thread(target=watch, name="procward-signals", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        for s, old in old_handlers.items():
            signal.signal(s, old)
        signal.set_wakeup_fd(old_fd)
        # Closing our end ends the watcher's recv with EOF.
        writer.close()
        watcher.join(timeout=5)
        reader.close()


class StderrReporter:
    """A reporter for a process no service manager watches: messages go to stderr."""

    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix

    def pending(self, wait_hint: float) -> None:
        pass

    def ready(self) -> None:
        pass

    def stopping(self, wait_hint: float) -> None:
        pass

    def alive(self) -> None:
        pass

    def log(self, level: Literal["info", "warning", "error"], message: str) -> None:
        print(f"{self._prefix}{level}: {message}" if level != "info" else
              f"{self._prefix}{message}", file=sys.stderr, flush=True)


def call_body(body: HostBody, stop: threading.Event, reporter: HostReporter) -> int:
    """Run ``body``; an uncaught exception is logged with its traceback and gives exit 1.

    Exit 1 (not a crash dialog, not 0) is what lets the OS manager's recovery
    (systemd Restart=on-failure, SCM failure actions, launchd KeepAlive) apply.
    """
    try:
        code = body(stop, reporter)
    except KeyboardInterrupt:
        return 130
    except SystemExit as e:
        # sys.exit() inside the body: honour it as the exit code.
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        reporter.log("error", "the service stopped on an uncaught exception:\n"
                     + traceback.format_exc().rstrip())
        return 1
    return int(code or 0)
