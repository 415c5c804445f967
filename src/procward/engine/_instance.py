"""One running copy of a service: its process, its state, its restarts.

The lifecycle is one coroutine per instance that loops spawn → wait → decide.
Everything it waits on is a future (the child's exit, the stop request, a
timer), so a death wakes it on the next loop pass and a program that had
started runs again within milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from procward._os import Child, ExitStatus, Platform, SpawnSpec
from procward.config import ServiceConfig
from procward.engine._events import Event, EventKind
from procward.engine._health import UNHEALTHY, HealthCheck, make_probe
from procward.engine._journal import ChildJournal
from procward.engine._logs import LogWriter, RotationWorker
from procward.engine._notify import NotifyHub, Report
from procward.engine._policy import StartLimit, backoff_delay, is_success, wants_restart
from procward.engine._state import TRANSITIONS, State
from procward.engine.alerts import AlertManager, InstanceRules
from procward.errors import IllegalTransition, SpawnError

if TYPE_CHECKING:
    import random

__all__ = ["Instance", "InstanceStatus"]


class _Host(Protocol):
    """What an instance needs from the supervisor that owns it."""

    platform: Platform
    journal: ChildJournal
    rotation: RotationWorker
    log_dir: Path
    rng: random.Random
    notify_hub: NotifyHub
    alerts: AlertManager

    def emit(self, event: Event) -> None: ...

    def state_changed(self) -> None: ...

    def dependencies_ready(self, instance: Instance) -> bool: ...

    async def wait_dependencies(self, instance: Instance) -> None: ...


@dataclass(frozen=True)
class InstanceStatus:
    """A snapshot of one instance, for the CLI, the API and tests."""

    name: str
    service: str
    index: int
    state: State
    pid: int | None
    started_at: float | None
    restarts: int
    exit_code: int | None
    exit_signal: int | None
    reason: str
    health: str | None = None  # starting | healthy | unhealthy; None without a check
    status_text: str | None = None  # the program's own STATUS= / notify.status() line

    def uptime(self, now: float | None = None) -> float | None:
        if self.started_at is None or self.state is not State.RUNNING:
            return None
        return (time.time() if now is None else now) - self.started_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "service": self.service,
            "index": self.index,
            "state": str(self.state),
            "pid": self.pid,
            "started_at": self.started_at,
            "uptime": self.uptime(),
            "restarts": self.restarts,
            "exit_code": self.exit_code,
            "exit_signal": self.exit_signal,
            "reason": self.reason,
            "health": self.health,
            "status_text": self.status_text,
        }


# Variables the daemon may have been given by its own supervisor (systemd): its
# children must not report to systemd in the daemon's name, so these never pass on.
_DAEMON_ONLY_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class _StoppedOnRequest(Exception):
    """The process was stopped because someone asked; the lifecycle ends."""


def _describe(status: ExitStatus | None) -> str:
    return "could not be started" if status is None else status.describe()


class Instance:
    """Keeps one copy of a service running according to its configuration."""

    def __init__(
        self, host: _Host, service: str, index: int, config: ServiceConfig, base_env: dict[str, str]
    ) -> None:
        self._host = host
        self.service = service
        self.index = index
        self.config = config
        self.name = service if config.instances == 1 else f"{service}:{index}"
        # ':' is not allowed in Windows file names; '@' is not allowed in service names.
        stem = self.name.replace(":", "@")
        logs = config.logs
        self.stdout_log = LogWriter(host.log_dir / f"{stem}.out.log", logs,
                                    on_problem=self._log_problem, worker=host.rotation)
        self.stderr_log = None if logs.merge_stderr else LogWriter(
            host.log_dir / f"{stem}.err.log", logs,
            on_problem=self._log_problem, worker=host.rotation)
        for writer in self.log_writers:
            writer.recover_pending()
        env = {k: v for k, v in base_env.items() if k not in _DAEMON_ONLY_ENV}
        env.update(config.env)
        # Python children buffer stdout in blocks when it is a pipe; a crash then
        # loses the last lines. Unbuffered unless the service says otherwise.
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["PROCWARD_SERVICE"] = service
        env["PROCWARD_INSTANCE"] = str(index)
        env.update(host.notify_hub.register(self))
        health = config.health
        if health is not None and health.heartbeat is not None:
            # What sd_watchdog_enabled() reads: a systemd program then sends WATCHDOG=1.
            env["WATCHDOG_USEC"] = str(int(health.heartbeat * 1_000_000))
        rules = None if not config.alerts else InstanceRules(
            service, self.name, list(config.alerts), fire=host.alerts.fire,
            restart=self.request_restart)
        self._stdout_sink = self.stdout_log if rules is None else rules.tee(
            "stdout", self.stdout_log, merged=logs.merge_stderr)
        self._stderr_sink = self.stderr_log if rules is None or self.stderr_log is None \
            else rules.tee("stderr", self.stderr_log)
        self._spec = SpawnSpec(list(config.command), config.cwd or Path.cwd(), env,
                               merge_stderr=logs.merge_stderr)
        self.state = State.STOPPED
        self.pid: int | None = None
        self.started_at: float | None = None
        self.restarts = 0
        self.last_exit: ExitStatus | None = None
        self.reason = ""
        self._child: Child | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Future[None] | None = None
        self._attempt = 0
        self._limit = StartLimit(config.start_limit)
        # Health, notify and memory_max: what the current process reported or showed.
        self.health: str | None = None
        self.status_text: str | None = None
        self.main_pid: int | None = None
        self.memory_max = config.memory_max
        # None until this process's first heartbeat: a check must not count one
        # it never got (it would call the service healthy at once).
        self._last_heartbeat: float | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._restart_request: asyncio.Future[str] | None = None
        self._forced_restart: str | None = None
        # Set by wind_down(): the daemon is stopping, nothing is started again.
        self._winding_down = False

    # -- control --------------------------------------------------------------

    @property
    def log_writers(self) -> list[LogWriter]:
        return [w for w in (self.stdout_log, self.stderr_log) if w is not None]

    @property
    def is_active(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> bool:
        """Begin supervising; False if it already is. Clears ``failed`` and the backoff."""
        if self.is_active:
            return False
        loop = asyncio.get_running_loop()
        self._attempt = 0
        self._limit.reset()
        self._stop = loop.create_future()
        self._task = loop.create_task(self._guarded_lifecycle(), name=f"procward:{self.name}")
        return True

    async def stop(self) -> None:
        """Stop the process tree (stop_signal, then kill after stop_timeout) and stay stopped."""
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)
        if self._task is not None:
            await asyncio.shield(self._task)

    def wind_down(self) -> None:
        """The daemon is stopping: from now on no process of this instance is started again.

        Its own stop may come later (dependencies stop after their dependents),
        but a process that dies meanwhile stays down, a restart asked for is
        ignored, and one waiting (in backoff, or for its dependencies) stops now.
        """
        self._winding_down = True
        if self._child is None and self._stop is not None and not self._stop.done():
            # No process runs: stopping it now changes nothing the stop order protects.
            self._stop.set_result(None)

    def kill(self) -> None:
        """End the whole process tree now, without waiting for it to stop by itself."""
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)
        if self._child is not None:
            self._child.kill_tree()

    def status(self) -> InstanceStatus:
        last = self.last_exit
        return InstanceStatus(
            name=self.name, service=self.service, index=self.index, state=self.state,
            pid=self.pid, started_at=self.started_at, restarts=self.restarts,
            exit_code=last.code if last else None, exit_signal=last.signal if last else None,
            reason=self.reason, health=self.health, status_text=self.status_text,
        )

    def request_restart(self, why: str) -> None:
        """Restart the running process (stop_signal, then kill) for ``why``; ignored when
        idle, and once the daemon is stopping."""
        if self._winding_down:
            return
        if self._restart_request is not None and not self._restart_request.done():
            self._restart_request.set_result(why)

    # -- reports from the program, its health and its memory -------------------

    def notified(self, report: Report) -> None:
        """A report from one of this instance's processes (via the notify hub)."""
        if report.status is not None:
            self.status_text = report.status
        if report.kind == "heartbeat":
            self._last_heartbeat = asyncio.get_running_loop().time()
        elif report.kind in ("ready", "stopping", "mainpid"):
            if report.kind == "ready" and self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
                # As systemd arms WatchdogSec: a notify service is checked once
                # it says it is ready, not while it prepares.
                self._health_task = self._start_health()
            if report.kind == "mainpid":
                self.main_pid = report.main_pid
            what = report.kind.upper() + (f" {report.main_pid}" if report.main_pid else "")
            # sender_pid, not pid: a framed report's pid is only what the sender claims.
            self._host.emit(Event(EventKind.NOTIFY, f"reported {what}", self.name,
                                  {"report": report.kind, "via": report.via,
                                   "sender_pid": report.pid, "main_pid": report.main_pid,
                                   "status": report.status}))

    def memory_exceeded(self, rss: int) -> None:
        limit = self.memory_max or 0
        self._host.emit(Event(EventKind.MEMORY_MAX,
                              f"process tree uses {rss} bytes, over memory_max {limit}; "
                              "restarting", self.name,
                              {"rss": rss, "memory_max": limit, "pid": self.pid}))
        self.request_restart(f"memory {rss} bytes over memory_max {limit}")

    def _health_changed(self, status: str, detail: str, failures: int) -> None:
        health = self.config.health
        assert health is not None
        self.health = status
        self._host.emit(Event(EventKind.HEALTH, f"{status}: {detail}", self.name,
                              {"health": status, "detail": detail, "failures": failures,
                               "on_unhealthy": health.on_unhealthy, "pid": self.pid,
                               "service_name": self.service}))
        self._host.state_changed()
        if status == UNHEALTHY and health.on_unhealthy == "restart":
            self.request_restart(f"unhealthy: {detail}")

    def _start_health(self) -> asyncio.Task[None] | None:
        health = self.config.health
        if health is None:
            return None
        loop = asyncio.get_running_loop()
        self.health = "starting"
        probe = make_probe(health, cwd=self._spec.cwd, env=self._spec.env,
                           last_heartbeat=lambda: self._last_heartbeat, clock=loop.time)
        check = HealthCheck(health, probe, self._health_changed)
        return loop.create_task(check.run(), name=f"procward:health:{self.name}")

    # -- the lifecycle --------------------------------------------------------

    def _set(self, state: State, reason: str = "", **fields: Any) -> None:
        if state not in TRANSITIONS[self.state]:
            raise IllegalTransition(self.name, self.state, state)
        old, self.state, self.reason = self.state, state, reason
        message = f"{state}: {reason}" if reason else str(state)
        self._host.emit(Event(EventKind.STATE, message, self.name,
                              {"state": str(state), "from": str(old), "pid": self.pid,
                               "restarts": self.restarts, **fields}))
        self._host.state_changed()

    def _stop_requested(self) -> bool:
        return self._stop is not None and self._stop.done()

    async def _wait(self, fut: asyncio.Future[Any] | None, timeout: float | None,
                    *more: asyncio.Future[Any] | None) -> None:
        """Wait for ``fut`` (or any of ``more``), the stop request, or ``timeout``."""
        assert self._stop is not None
        waits: set[asyncio.Future[Any]] = {self._stop}
        waits.update(f for f in (fut, *more) if f is not None)
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)

    async def _guarded_lifecycle(self) -> None:
        try:
            await self._lifecycle()
        except Exception as e:
            # A bug in one instance's lifecycle must not take the daemon down.
            if self._child is not None:
                self._child.kill_tree()
            self._host.emit(Event(EventKind.DAEMON, f"internal error supervising: {e!r}",
                                  self.name, {"error": repr(e)}))
            self.state, self.reason = State.FAILED, f"internal error: {e!r}"
            self._host.state_changed()

    async def _lifecycle(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        reason = ""
        while True:
            if cfg.depends_on and not self._host.dependencies_ready(self):
                self._set(State.STARTING, f"waiting for {', '.join(cfg.depends_on)}")
                waiter = loop.create_task(self._host.wait_dependencies(self))
                await self._wait(waiter, None)
                waiter.cancel()
                if self._stop_requested():
                    self._set(State.STOPPED, "stopped while waiting for dependencies")
                    return
            began = loop.time()
            try:
                status, started = await self._run_once(reason)
            except _StoppedOnRequest:
                return
            uptime = loop.time() - began
            forced, self._forced_restart = self._forced_restart, None
            if self._stop_requested():
                self._set(State.STOPPED, _describe(status))
                return
            if self._winding_down:
                self._set(State.STOPPED, f"{_describe(status)}; not restarted: procward is "
                          "stopping")
                return
            if forced is None and not wants_restart(cfg.restart, status, cfg.success_exit_codes):
                how = "finished" if is_success(status, cfg.success_exit_codes) else "ended"
                self._set(State.EXITED, f"{how}: {_describe(status)}; restart = {cfg.restart}")
                return
            if uptime >= cfg.backoff.reset_after:
                self._attempt = 0
            if not self._limit.allow(loop.time()):
                self._set(State.FAILED,
                          f"{_describe(status)}; more than {cfg.start_limit.burst} restarts within "
                          f"{cfg.start_limit.interval:g}s, giving up (start it again by hand)")
                return
            self.restarts += 1
            if started:
                # It had started: run it again at once, no backoff.
                reason = f"restart: {forced}" if forced else f"restart after {_describe(status)}"
                continue
            delay = backoff_delay(cfg.backoff, self._attempt, self._host.rng)
            self._attempt += 1
            self._set(State.BACKOFF,
                      f"{_describe(status)} after {uptime:.2f}s, before start_seconds; "
                      f"retry in {delay:.2f}s", delay=round(delay, 3))
            await self._wait(None, delay)
            if self._stop_requested():
                self._set(State.STOPPED, "stopped during backoff")
                return
            reason = "retry after backoff"

    async def _run_once(self, reason: str) -> tuple[ExitStatus | None, bool]:
        """Spawn and watch one process: (exit status, or None if the spawn failed;
        whether it had started). Raises _StoppedOnRequest if stopped meanwhile."""
        host, cfg = self._host, self.config
        loop = asyncio.get_running_loop()
        try:
            child = host.platform.spawn(loop, self._spec, self._stdout_sink, self._stderr_sink)
        except SpawnError as e:
            self.pid = None
            self.last_exit = None
            if self.state is not State.STARTING:
                self._set(State.STARTING, reason)
            host.emit(Event(EventKind.SPAWN_FAILED, str(e), self.name,
                            {"command": self._spec.argv}))
            return None, False
        self._child, self.pid, self.started_at = child, child.pid, time.time()
        host.journal.add(child.pid, child.create_time, self.name)
        self._ready = loop.create_future() if cfg.notify else None
        self._restart_request = loop.create_future()
        self._last_heartbeat = None
        self.status_text = self.main_pid = None
        if cfg.notify:
            reason = f"{reason}; waiting for READY" if reason else "waiting for READY"
            # Its health check starts at READY (see notified); until then, starting.
            self.health = "starting" if cfg.health is not None else None
        self._set(State.STARTING, reason)
        if not cfg.notify:
            self._health_task = self._start_health()
        try:
            return await self._watch(child)
        finally:
            if self._health_task is not None:
                self._health_task.cancel()
                self._health_task = None
            self.health = None
            self._ready = self._restart_request = None

    async def _watch(self, child: Child) -> tuple[ExitStatus | None, bool]:
        cfg = self.config
        started = False
        if self._ready is not None:
            # notify = true: started means READY, however long it takes.
            await self._wait(child.exited, None, self._ready, self._restart_request)
        elif cfg.start_seconds > 0:
            await self._wait(child.exited, cfg.start_seconds, self._restart_request)
        if not child.exited.done() and not self._restart_wanted():
            if self._stop_requested():
                await self._terminate(child)
                raise _StoppedOnRequest
            started = True
            self._set(State.RUNNING)
            await self._wait(child.exited, None, self._restart_request)
        if not child.exited.done():
            if self._stop_requested():
                await self._terminate(child)
                raise _StoppedOnRequest
            assert self._restart_request is not None
            return await self._restart(child, self._restart_request.result()), started
        status = child.exited.result()
        self._ended(child, status)
        return status, started

    def _restart_wanted(self) -> bool:
        return self._restart_request is not None and self._restart_request.done()

    async def _restart(self, child: Child, why: str) -> ExitStatus:
        """Stop the process for a restart the daemon decided on (unhealthy, memory, a rule)."""
        cfg = self.config
        self._forced_restart = why
        self._set(State.STOPPING, f"restarting: {why}")
        child.stop(cfg.stop_signal)
        await asyncio.wait({child.exited}, timeout=cfg.stop_timeout)
        if not child.exited.done():
            child.kill_tree()
            await child.exited
        status = child.exited.result()
        self._ended(child, status)
        return status

    def _ended(self, child: Child, status: ExitStatus) -> None:
        self._host.journal.remove(child.pid)
        self.last_exit = status
        self._child = None
        # What the program said of itself (STATUS=, MAINPID=) ended with it: a
        # service waiting out its backoff has no process to describe.
        self.status_text = self.main_pid = None
        uptime = time.time() - (self.started_at or time.time())
        self._host.emit(Event(EventKind.EXIT, f"pid {child.pid} {status.describe()} after "
                              f"{uptime:.2f}s", self.name,
                              {"pid": child.pid, "exit_code": status.code,
                               "signal": status.signal, "uptime": round(uptime, 3)}))

    async def _terminate(self, child: Child) -> None:
        cfg = self.config
        self._set(State.STOPPING, f"sending {cfg.stop_signal}")
        child.stop(cfg.stop_signal)
        await asyncio.wait({child.exited}, timeout=cfg.stop_timeout)
        if not child.exited.done():
            self._host.emit(Event(EventKind.DAEMON,
                                  f"did not stop within {cfg.stop_timeout:g}s; killing its "
                                  "process tree", self.name, {"pid": child.pid}))
            child.kill_tree()
            await child.exited
        status = child.exited.result()
        self._ended(child, status)
        self._set(State.STOPPED, status.describe())

    def _log_problem(self, kind: str, message: str, fields: dict[str, object]) -> None:
        self._host.emit(Event(EventKind(kind), message, self.name, dict(fields)))
