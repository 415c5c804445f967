"""The composition root: a loaded configuration in, a supervised set of services out.

It wires the Supervisor to the console and to the OS's stop requests, and
owns the "first Ctrl+C stops gracefully, second kills" rule.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from procward._os import PLATFORM
from procward.config import Config
from procward.engine import Control, Event, Supervisor

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
    reload_config: Callable[[], Awaitable[Config]] | None = None,
    on_api: Callable[[str], None] | None = None,
) -> int:
    """Supervise ``config`` until asked to stop (SIGINT/SIGTERM, Ctrl+C/Ctrl+Break).

    ``install_signals=False`` for a daemon hosted off the main thread (the
    Windows SCM runs the service body on its own thread), which then stops
    through ``stop_switch``. ``reload_config`` reads the file again for
    ``procward reload`` and SIGHUP; ``on_api`` hears the API's URL once it listens
    (it answers once the services' first spawns are under way).
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

    control = Control(supervisor, reload_config)
    api = None
    if config.api.enabled:
        # Imported only when enabled: the web stack is most of the daemon's memory.
        from procward.api import ApiServer

        api = ApiServer(control, config.api, supervisor.state_dir)

    async def listen() -> None:
        if api is not None:
            api.listen()
            if on_api is not None:
                on_api(api.url)

    reloads: set[asyncio.Task[None]] = set()

    def on_reload() -> None:
        async def reload() -> None:
            outcome = await control.reload("SIGHUP")
            if outcome.ok and outcome.result is not None:
                r = outcome.result
                say(f"reloaded: added {r.added or '-'}, removed {r.removed or '-'}, "
                    f"changed {r.changed or '-'}, unchanged {len(r.unchanged)}")
            else:
                say("reload refused, nothing changed: " + "; ".join(outcome.problems))

        task = loop.create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    undo_stop = PLATFORM.install_stop_handlers(loop, on_stop) if install_signals else None
    undo_reload = PLATFORM.install_reload_handler(loop, on_reload) if install_signals else None
    if stop_switch is not None:
        stop_switch.bind(loop, on_stop)
    try:
        try:
            await supervisor.start(before_services=listen)
            if api is not None:
                # The services' first steps, their spawns, are queued: let them
                # run before the web stack is imported and the API answers.
                await asyncio.sleep(0)
                await api.serve()
        except BaseException:
            await supervisor.stop()
            raise
        if on_ready is not None:
            on_ready(supervisor)
        await stop_requested.wait()
        # The API closes while the services stop, not after: uvicorn's shutdown
        # waits a fixed 0.1 s for open connections, which need not add to ours.
        await asyncio.gather(supervisor.stop(),
                             api.close() if api is not None else asyncio.sleep(0))
    finally:
        if api is not None:
            await api.close()  # a no-op once closed; here for a start that failed
        for undo in (undo_stop, undo_reload):
            if undo is not None:
                undo()
    return 0
