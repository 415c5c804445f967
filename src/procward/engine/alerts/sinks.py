"""Alert delivery: webhook, command and system-log sinks, retries, the cap on what waits.

``AlertManager`` is what the supervisor holds: it logs each alert as an
event and hands it to each of its sinks, and feeds the engine's events to the
built-in alerts. Sinks run off the event loop's back: a webhook is posted by
a worker thread, a command is a child process awaited by the loop, the system
log is written by a worker thread. A failing delivery is retried with growing
delays and, at worst, dropped with an ``alert_failed`` event; log capture
never waits for any of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from procward._os import Platform
from procward.config import AlertSink, AlertsSettings
from procward.engine._events import AlertFailure, AlertFired, Event
from procward.engine.alerts.alert import Alert
from procward.engine.alerts.builtin import BuiltinAlerts

__all__ = ["AlertManager", "alert_environment"]

_WEBHOOK_TIMEOUT = 10.0
_COMMAND_TIMEOUT = 30.0
# Deliveries waiting per sink: past this, new alerts for that sink are dropped
# (and counted), so a sink down for hours cannot grow memory without bound.
_MAX_PENDING = 100


class AlertManager:
    """Sends alerts to sinks, with retries, and raises the built-in alerts from events."""

    def __init__(self, settings: AlertsSettings, platform: Platform,
                 emit: Callable[[Event], None], *, retry_initial: float = 1.0,
                 retry_max: float = 60.0, attempts: int = 5,
                 storm: tuple[int, float] = (5, 300.0)) -> None:
        self._sinks = settings.sinks
        self._platform = platform
        self._emit = emit
        # The delay before the second try, doubled for each further one up to retry_max.
        self.retry_initial = retry_initial
        self._retry_max = retry_max
        self._attempts = attempts
        # Built-in alerts go to every sink configured when they fire.
        self._builtin = BuiltinAlerts(
            lambda alert: self.fire(replace(alert, sinks=list(self._sinks))),
            storm_restarts=storm[0], storm_window=storm[1])
        self._pool: ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: dict[str, int] = {}
        self.delivered = 0
        self.failed = 0

    def update(self, settings: AlertsSettings) -> None:
        """Use the sinks of a reloaded configuration (alerts already on their way keep theirs)."""
        self._sinks = settings.sinks

    def on_event(self, event: Event) -> None:
        """Raise the built-in alerts from the engine's events (an EventBus subscriber)."""
        self._builtin.on_event(event)

    def fire(self, alert: Alert) -> None:
        """Log the alert as an event and hand it to each of its sinks (never waits)."""
        sinks = [s for s in alert.sinks if s in self._sinks]
        self._emit(Event.of(AlertFired(alert.kind, alert.rule, tuple(sinks), alert.count,
                                       tuple(alert.lines[-5:]), alert.suppressed),
                            f"alert: {alert.message}", alert.instance))
        loop = asyncio.get_running_loop()
        for name in sinks:
            if self._pending.get(name, 0) >= _MAX_PENDING:
                self._gave_up(alert, name, 0, f"{_MAX_PENDING} alerts already wait for it")
                continue
            self._pending[name] = self._pending.get(name, 0) + 1
            task = loop.create_task(self._deliver(alert, name, self._sinks[name]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self, grace: float = 5.0) -> None:
        """Give deliveries in flight ``grace`` seconds, then cancel them and stop the threads."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pool is not None:
            # Threads still inside a request end at its timeout; nothing waits for them.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def _deliver(self, alert: Alert, name: str, sink: AlertSink) -> None:
        delay = self.retry_initial
        error = ""
        try:
            for attempt in range(1, self._attempts + 1):
                try:
                    await self._send(alert, sink)
                    self.delivered += 1
                    return
                except Exception as e:
                    error = _describe(e)
                if attempt < self._attempts:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._retry_max)
            self._gave_up(alert, name, self._attempts, error)
        finally:
            self._pending[name] -= 1

    async def _send(self, alert: Alert, sink: AlertSink) -> None:
        loop = asyncio.get_running_loop()
        if sink.type == "webhook":
            assert sink.url is not None
            body = json.dumps(alert.to_dict()).encode("utf-8")
            await loop.run_in_executor(self._workers(), _post, sink.url, sink.headers, body)
        elif sink.type == "command":
            assert sink.command is not None
            await _run_command(list(sink.command), alert)
        else:
            # eventlog and syslog are one sink: the log of the system we run on.
            text = f"{alert.instance}: {alert.message}"
            if alert.lines:
                text += " | " + " | ".join(alert.lines[-3:])
            await loop.run_in_executor(self._workers(), lambda: self._platform.system_log(
                text, error=alert.kind != "rule"))

    def _workers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="procward-alert")
        return self._pool

    def _gave_up(self, alert: Alert, sink: str, attempts: int, error: str) -> None:
        self.failed += 1
        self._emit(Event.of(AlertFailure(sink, alert.kind, alert.rule, attempts, error),
                            f"alert to sink {sink!r} not delivered after {attempts} attempt(s): "
                            f"{error}", alert.instance))


def _post(url: str, headers: dict[str, str], body: bytes) -> None:
    # Runs on a worker thread: only the request, no engine state. urllib is
    # imported here, at the first alert: the daemon does without it otherwise.
    import urllib.request

    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "procward-alerts", **headers})
    with urllib.request.urlopen(request, timeout=_WEBHOOK_TIMEOUT) as answer:
        answer.read(64 * 1024)


def alert_environment(alert: Alert) -> dict[str, str]:
    """The facts of an alert as ``PROCWARD_ALERT_*`` variables, for a command sink."""
    facts = alert.to_dict()
    env = {f"PROCWARD_ALERT_{k.upper()}": str(v) for k, v in facts.items() if k != "lines"}
    env["PROCWARD_ALERT_LINES"] = "\n".join(alert.lines)
    env["PROCWARD_ALERT_JSON"] = json.dumps(facts, separators=(",", ":"))
    return env


async def _run_command(argv: list[str], alert: Alert) -> None:
    env = {**os.environ, **alert_environment(alert)}
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), _COMMAND_TIMEOUT)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.shield(proc.wait())
        raise
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip()[-200:]
        raise RuntimeError(f"exit code {proc.returncode}" + (f": {tail}" if tail else ""))


def _describe(error: BaseException) -> str:
    code, reason = getattr(error, "code", None), getattr(error, "reason", None)
    if isinstance(code, int):  # urllib.error.HTTPError
        return f"HTTP {code}"
    if reason is not None:  # urllib.error.URLError
        return f"cannot reach it: {reason}"
    return str(error) or type(error).__name__
