"""How the CLI shows things to a person: one line per event, colour on a terminal."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from procward.engine import Event, EventKind, State, StateChange

__all__ = ["EventPrinter", "use_colour"]

_RESET = "\033[0m"
_COLOURS = {
    State.RUNNING: "\033[32m",   # green
    State.STARTING: "\033[36m",  # cyan
    State.BACKOFF: "\033[33m",   # yellow
    State.FAILED: "\033[1;31m",  # bold red
    State.STOPPING: "\033[35m",
    State.STOPPED: "\033[2m",    # dim
    State.EXITED: "\033[2m",
}
_KIND_COLOURS = {
    EventKind.SPAWN_FAILED: "\033[31m",
    EventKind.LOG_DROPPED: "\033[31m",
    EventKind.LOG_ERROR: "\033[31m",
    EventKind.EXIT: "\033[33m",
    EventKind.DAEMON: "\033[1m",
}


def use_colour(stream: TextIO) -> bool:
    """Colour only for a person at a terminal, and never when NO_COLOR is set."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


class EventPrinter:
    """Prints each event as ``HH:MM:SS name  message``."""

    def __init__(self, stream: TextIO | None = None, colour: bool | None = None) -> None:
        self._stream = stream or sys.stdout
        self._colour = use_colour(self._stream) if colour is None else colour
        self._width = 12

    def __call__(self, event: Event) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(event.time))
        name = event.service or "procward"
        self._width = max(self._width, min(len(name), 32))
        text = event.message
        change = event.payload if isinstance(event.payload, StateChange) else None
        if change is not None and change.pid and change.state in (State.STARTING, State.RUNNING):
            text += f" (pid {change.pid})"
        if self._colour:
            colour = (_KIND_COLOURS.get(event.kind, "") if change is None
                      else _COLOURS.get(change.state, ""))
            line = f"\033[2m{stamp}\033[0m {name:<{self._width}}  {colour}{text}{_RESET}"
        else:
            line = f"{stamp} {name:<{self._width}}  {text}"
        try:
            print(line, file=self._stream, flush=True)
        except (OSError, ValueError):
            pass  # a closed console must not stop supervision
