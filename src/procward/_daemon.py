"""The composition root: a loaded configuration in, a supervised set of services out.

It wires the Supervisor to the console and to the OS's stop requests, and
owns the "first Ctrl+C stops gracefully, second kills" rule.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from procward._os import PLATFORM
from procward.config import Config
from procward.engine import Event, Supervisor

__all__ = ["StopSwitch", "run_daemon"]


class StopSwitch:
    """Lets code outside the daemon's loop ask it to stop, from any thread.

    An OS service host (the SCM's control handler runs on its own thread)
    holds one; ``request()`` counts like a Ctrl+C: the first stops gracefully,
    a second kills.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: tuple[asyncio.AbstractEventLoop, Callable[[str], None]] | None = None
        self._early: list[str] = []

    def bind(self, loop: asyncio.AbstractEventLoop, on_stop: Callable[[str], None]) -> None:
        with self._lock:
            self._target = (loop, on_stop)
            early, self._early = self._early, []
        for reason in early:
            loop.call_soon_threadsafe(on_stop, reason)

    def request(self, reason: str = "stop request") -> None:
        with self._lock:
            if self._target is None:
                self._early.append(reason)
                return
            loop, on_stop = self._target
        loop.call_soon_threadsafe(on_stop, reason)


async def run_daemon(
    config: Config,
    *,
    on_event: Callable[[Event], None] | None = None,
    on_ready: Callable[[Supervisor], None] | None = None,
    say: Callable[[str], None] = print,
    stop_switch: StopSwitch | None = None,
    install_signals: bool = True,
) -> int:
    """Supervise ``config`` until asked to stop (SIGINT/SIGTERM, Ctrl+C/Ctrl+Break).

    ``install_signals=False`` for a daemon hosted off the main thread (the
    Windows SCM runs the service body on its own thread), which then stops
    through ``stop_switch``.
    """
    loop = asyncio.get_running_loop()
    supervisor = Supervisor(config)
    if on_event is not None:
        supervisor.subscribe(on_event)
    stop_requested = asyncio.Event()
    requests = 0

    def on_stop(signal_name: str) -> None:
        # Runs from the loop, never inside the signal handler itself.
        nonlocal requests
        requests += 1
        if requests == 1:
            say(f"received {signal_name}: stopping all services "
                "(press Ctrl+C again to kill them at once)")
            stop_requested.set()
        else:
            say(f"received {signal_name} again: killing all services now")
            supervisor.kill()

    undo = PLATFORM.install_stop_handlers(loop, on_stop) if install_signals else (lambda: None)
    if stop_switch is not None:
        stop_switch.bind(loop, on_stop)
    try:
        await supervisor.start()
        if on_ready is not None:
            on_ready(supervisor)
        await stop_requested.wait()
        await supervisor.stop()
    finally:
        undo()
    return 0
