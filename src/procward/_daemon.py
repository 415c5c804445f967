"""The composition root: a configuration file in, a supervised set of services out.

The one place that wires the daemon: the configuration (loaded again for
``procward reload`` and SIGHUP), the Supervisor, its Control facade and the
control API, run until asked to stop, with the "first Ctrl+C stops gracefully,
second kills" rule. ``run_daemon`` is that wiring on a loaded configuration
(tests call it); ``run_foreground`` is ``procward run`` at a console;
``HostedDaemon`` is the body an OS service manager hosts (``procward service
host``), reporting pending, ready, alive and stopping to it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

from procward import __version__
from procward._os import PLATFORM
from procward.config import Config, load, stop_budget
from procward.engine import Control, Event, Supervisor
from procward.errors import ConfigError, ProcwardError, StateDirLocked
from procward.oshost import HostReporter, stop_wait

__all__ = ["ALIVE_EVERY", "HostedDaemon", "StopSwitch", "run_daemon", "run_foreground"]

# How often a hosted daemon's loop proves it is alive (systemd's WatchdogSec is 30 s).
ALIVE_EVERY = 1.0

EventSink = Callable[[Event], None]


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


def _reloader(path: Path, profile: str | None) -> Callable[[], Awaitable[Config]]:
    """Loads ``path`` again, off the loop, exactly as the start did."""

    async def reload() -> Config:
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: load(path, profile=profile))

    return reload


async def run_daemon(
    config: Config,
    *,
    on_event: EventSink | None = None,
    on_ready: Callable[[Supervisor], None] | None = None,
    say: Callable[[str], None] = print,
    stop_switch: StopSwitch | None = None,
    install_signals: bool = True,
    reload_config: Callable[[], Awaitable[Config]] | None = None,
    on_api: Callable[[str], None] | None = None,
) -> int:
    """Supervise ``config`` until asked to stop (SIGINT/SIGTERM, Ctrl+C/Ctrl+Break, or
    ``procward shutdown`` through the API).

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

    # `procward shutdown` (POST /v1/shutdown) takes the same graceful stop as SIGTERM.
    control = Control(supervisor, reload_config, stop_daemon=on_stop)
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


def run_foreground(config: Config, path: Path, profile: str | None, *,
                   on_event: EventSink | None = None) -> int:
    """``procward run``: supervise ``config`` (loaded from ``path``, again at each reload)
    at this console; an exit code. A daemon that cannot start (its state dir taken,
    its API port in use) says why on stderr (exit 1).
    """
    from procward._running import config_option, record

    # How a client started where the user stands reaches this daemon: asked
    # before the daemon leaves that folder.
    words = ["procward status", config_option(config.source)]
    if profile and profile != os.environ.get("PROCWARD_PROFILE"):
        words.append(f"--profile {profile}")
    status = " ".join(w for w in words if w)
    # The daemon works where its services run unless they say otherwise, so
    # they start through posix_spawn, which cannot set a working directory
    # (see procward._os.posix). Every path the daemon holds is absolute by now.
    try:
        os.chdir(config.source.parent)
    except OSError:
        pass  # gone since it was read: services then start through Popen

    def say(text: str) -> None:
        print(f"procward: {text}", flush=True)

    api_url: list[str] = []
    forget: list[Callable[[], None]] = []

    def banner(sup: Supervisor) -> None:
        forget.append(record(config.source, sup.state_dir, api_url[0] if api_url else None))
        n = len(config.services)
        say(f"{__version__} supervising {n} service{'s' if n != 1 else ''} from {config.source}")
        if api_url:
            say(f"api:    {api_url[0]}  (token: {sup.state_dir / 'admin.token'}; "
                f"`{status}` finds both)")
        say(f"logs:   {sup.log_dir}")
        say(f"events: {sup.events_path}")
        say(f"state:  {sup.state_dir}")
        say("press Ctrl+C to stop all services")

    try:
        return asyncio.run(run_daemon(config, on_event=on_event, on_ready=banner, say=say,
                                      reload_config=_reloader(path, profile),
                                      on_api=api_url.append))
    except StateDirLocked as e:
        print(f"procward: {e}; stop it first, or give this configuration its own state_dir",
              file=sys.stderr)
        return 1
    except ProcwardError as e:
        print(f"procward: {e}", file=sys.stderr)
        return 1
    finally:
        for undo in forget:
            undo()


class HostedDaemon:
    """The daemon as the body of an OS service: load, supervise until ``stop``, and
    report each step to the service manager."""

    def __init__(self, path: Path, profile: str | None, *,
                 on_event: EventSink | None = None) -> None:
        self._path = path
        self._profile = profile
        self._on_event = on_event

    def __call__(self, stop: threading.Event, reporter: HostReporter) -> int:
        # Loading imports the validator: ask the manager for time first.
        reporter.pending(30.0)
        try:
            config = load(self._path, profile=self._profile)
        except ConfigError as e:
            reporter.log("error", "the configuration cannot be used:\n"
                         + "\n".join(str(p) for p in e.problems))
            return 2
        wait = stop_wait(stop_budget(config.services))
        switch = StopSwitch()

        def relay() -> None:
            # The manager's stop request (SCM control, SIGTERM) becomes the
            # daemon's graceful stop; the switch queues it if the loop is not up yet.
            stop.wait()
            reporter.stopping(wait)
            switch.request("stop from the service manager")

        threading.Thread(target=relay, name="procward-stop-relay", daemon=True).start()

        def on_ready(supervisor: Supervisor) -> None:
            reporter.ready()
            loop = asyncio.get_running_loop()

            def ping() -> None:
                # From the loop itself, so a stuck loop stops the pings.
                reporter.alive()
                loop.call_later(ALIVE_EVERY, ping)

            ping()
            reporter.log("info", f"supervising {len(config.services)} services from "
                         f"{config.source}; logs in {supervisor.log_dir}")

        try:
            return asyncio.run(run_daemon(
                config, on_event=self._on_event, on_ready=on_ready,
                say=lambda text: reporter.log("info", text), stop_switch=switch,
                install_signals=False, reload_config=_reloader(self._path, self._profile),
            ))
        except StateDirLocked as e:
            reporter.log("error", f"{e}; another procward runs this configuration")
            return 1
        except ProcwardError as e:
            # e.g. the API's port is taken: say so where the OS shows service errors.
            reporter.log("error", str(e))
            return 1
