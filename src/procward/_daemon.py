"""The composition root: a loaded configuration in, a supervised set of services out.

It wires the Supervisor to the console and to the OS's stop requests, and
owns the "first Ctrl+C stops gracefully, second kills" rule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from procward._os import PLATFORM
from procward.config import Config
from procward.engine import Event, Supervisor

__all__ = ["run_daemon"]


async def run_daemon(
    config: Config,
    *,
    on_event: Callable[[Event], None] | None = None,
    on_ready: Callable[[Supervisor], None] | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Supervise ``config`` until asked to stop (SIGINT/SIGTERM, Ctrl+C/Ctrl+Break)."""
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

    undo = PLATFORM.install_stop_handlers(loop, on_stop)
    try:
        await supervisor.start()
        if on_ready is not None:
            on_ready(supervisor)
        await stop_requested.wait()
        await supervisor.stop()
    finally:
        undo()
    return 0
