"""What is built once per instance and serves each of its processes in turn.

Its name, its log writers (behind the alert rules' tees when it has rules),
the environment its children get, and the spawn spec made of them. None of it
changes while the instance lives: a reload that changes a service builds new
instances, and with them new setups.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from procward._logfiles import instance_names, log_path
from procward._os import OutputSink, SpawnSpec
from procward.config import ServiceConfig
from procward.engine._events import Event, Payload
from procward.engine._logs import LogWriter, RotationWorker
from procward.engine._notify import NotifyHub, Reporter
from procward.engine.alerts import AlertManager, InstanceRules

__all__ = ["InstanceSetup", "SetupHost"]

# Variables the daemon may have been given by its own supervisor (systemd): its
# children must not report to systemd in the daemon's name, so these never pass on.
_DAEMON_ONLY_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class SetupHost(Protocol):
    """What a setup needs from the supervisor."""

    log_dir: Path
    rotation: RotationWorker
    notify_hub: NotifyHub
    alerts: AlertManager

    def emit(self, event: Event) -> None: ...


class InstanceSetup:
    """The name, logs, environment and spawn spec of one instance of a service."""

    def __init__(self, host: SetupHost, service: str, index: int, config: ServiceConfig,
                 base_env: dict[str, str], *, reporter: Reporter,
                 restart: Callable[[str], None]) -> None:
        self._host = host
        self._reporter = reporter
        self.name = instance_names(service, config.instances)[index]
        logs = config.logs
        self.stdout_log = LogWriter(log_path(host.log_dir, self.name, "stdout"), logs,
                                    on_problem=self._log_problem, worker=host.rotation)
        self.stderr_log = None if logs.merge_stderr else LogWriter(
            log_path(host.log_dir, self.name, "stderr"), logs,
            on_problem=self._log_problem, worker=host.rotation)
        for writer in self.log_writers:
            writer.recover_pending()
        rules = None if not config.alerts else InstanceRules(
            service, self.name, list(config.alerts), fire=host.alerts.fire, restart=restart)
        self.stdout_sink: OutputSink = self.stdout_log if rules is None else rules.tee(
            "stdout", self.stdout_log, merged=logs.merge_stderr)
        self.stderr_sink: OutputSink | None = self.stderr_log
        if rules is not None and self.stderr_log is not None:
            self.stderr_sink = rules.tee("stderr", self.stderr_log)
        env = {k: v for k, v in base_env.items() if k not in _DAEMON_ONLY_ENV}
        env.update(config.env)
        # Python children buffer stdout in blocks when it is a pipe; a crash then
        # loses the last lines. Unbuffered unless the service says otherwise.
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["PROCWARD_SERVICE"] = service
        env["PROCWARD_INSTANCE"] = str(index)
        env.update(host.notify_hub.register(reporter))
        health = config.health
        if health is not None and health.heartbeat is not None:
            # What sd_watchdog_enabled() reads: a systemd program then sends WATCHDOG=1.
            env["WATCHDOG_USEC"] = str(int(health.heartbeat * 1_000_000))
        self.spec = SpawnSpec(list(config.command), config.cwd or Path.cwd(), env,
                              merge_stderr=logs.merge_stderr)

    @property
    def log_writers(self) -> list[LogWriter]:
        return [w for w in (self.stdout_log, self.stderr_log) if w is not None]

    def close(self) -> None:
        """The instance is done: its files are closed and its reports no longer taken."""
        for writer in self.log_writers:
            writer.close()
        self._host.notify_hub.unregister(self._reporter)

    def _log_problem(self, payload: Payload, message: str) -> None:
        self._host.emit(Event.of(payload, message, self.name))
