"""Alerts: log rules matched on output lines, built-in alerts, and the sinks they go to.

The matcher sits in the output path only of a stream that has rules: the
instance hands the platform an ``AlertTee`` instead of the bare log writer, so
a service without rules pays nothing. With rules, the file is written first,
then the chunk is searched without splitting it into lines: each pattern has
literal texts one of which any match must contain (``ERROR|FATAL`` needs
"ERROR" or "FATAL"), and one pass of the finder (``_literals``) says which
texts occur. Only the regexes of those rules run, and lines are looked at one
by one only in a chunk a regex matched. Python's ``re`` tries every
alternative at every position, some hundred times slower than the finder:
this is what keeps 20 rules cheap.

A rule fires when ``threshold`` lines matched within ``window`` seconds, and
not again before ``cooldown`` has passed (matches meanwhile are counted as
suppressed and reported with the next alert). Built-in alerts fire when an
instance turns ``failed``, turns unhealthy, or restarts more than a set
number of times in a window.

Sinks run off the event loop's back: a webhook is posted by a worker thread,
a command is a child process awaited by the loop, the system log is written
by a worker thread. A failing sink is retried with growing delays and, at
worst, dropped with an ``alert_failed`` event; log capture never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from procward._os import OutputSink, Platform
from procward.config import AlertRule, AlertSink, AlertsSettings
from procward.engine._events import Event, EventKind
from procward.engine._literals import finder, required_literals

__all__ = ["Alert", "AlertManager", "AlertTee", "InstanceRules"]

# Lines kept per rule to send with an alert, and the most of one line sent.
_KEEP_LINES = 20
_LINE_CHARS = 2000
# A line without its end yet is held up to this size; beyond, its start is matched alone.
_MAX_CARRY = 64 * 1024
_WEBHOOK_TIMEOUT = 10.0
_COMMAND_TIMEOUT = 30.0
# Deliveries waiting per sink: past this, new alerts for that sink are dropped
# (and counted), so a sink down for hours cannot grow memory without bound.
_MAX_PENDING = 100


@dataclass(frozen=True)
class Alert:
    """What is sent to a sink: the facts someone paged at night needs."""

    kind: str  # rule | failed | unhealthy | restart_storm
    service: str
    instance: str
    rule: str
    message: str
    lines: list[str] = field(default_factory=list)
    count: int = 0
    threshold: int = 0
    window: float = 0.0
    suppressed: int = 0
    sinks: list[str] = field(default_factory=list)
    host: str = field(default_factory=socket.gethostname)
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "service": self.service, "instance": self.instance,
            "rule": self.rule, "message": self.message, "lines": self.lines,
            "count": self.count, "threshold": self.threshold, "window": self.window,
            "suppressed": self.suppressed, "host": self.host,
            "time": datetime.fromtimestamp(self.time, UTC).isoformat(),
        }


# -- matching ---------------------------------------------------------------


class _Rule:
    """One rule's running state for one instance: recent matches, cooldown."""

    def __init__(self, index: int, rule: AlertRule) -> None:
        self.index = index
        self.rule = rule
        # MULTILINE: '^' and '$' mean line start and end also when a whole chunk is searched.
        pattern = rule.pattern.encode("utf-8")
        self.regex = re.compile(pattern, re.MULTILINE)
        self.needles = required_literals(pattern)
        self.times: deque[float] = deque()
        self.lines: deque[str] = deque(maxlen=_KEEP_LINES)
        self.quiet_until = 0.0
        self.suppressed = 0

    def matched(self, line: bytes, now: float) -> bool:
        """Note a matching line; True if the rule should fire now."""
        rule = self.rule
        if now < self.quiet_until:
            self.suppressed += 1
            return False
        self.times.append(now)
        while self.times and now - self.times[0] > rule.window:
            self.times.popleft()
        self.lines.append(line.decode("utf-8", "replace").rstrip("\r")[:_LINE_CHARS])
        return len(self.times) >= rule.threshold


class InstanceRules:
    """The alert rules of one instance, and the sinks that feed them its output."""

    def __init__(self, service: str, instance: str, rules: list[AlertRule], *,
                 fire: Callable[[Alert], None], restart: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.service = service
        self.instance = instance
        self._rules = [_Rule(i, r) for i, r in enumerate(rules)]
        self._fire = fire
        self._restart = restart
        self._clock = clock

    def tee(self, stream: str, writer: OutputSink, *, merged: bool = False) -> OutputSink:
        """``writer`` itself when no rule reads ``stream``, else a tee that also matches."""
        rules = [r for r in self._rules if merged or r.rule.stream in (stream, "both")]
        return AlertTee(writer, rules, self) if rules else writer

    def hit(self, rule: _Rule, line: bytes) -> None:
        now = self._clock()
        if not rule.matched(line, now):
            return
        r = rule.rule
        alert = Alert(
            kind="rule", service=self.service, instance=self.instance, rule=r.pattern,
            message=f"{len(rule.times)} line(s) matched {r.pattern!r} within {r.window:g}s",
            lines=list(rule.lines), count=len(rule.times), threshold=r.threshold,
            window=r.window, suppressed=rule.suppressed,
            sinks=[a for a in r.actions if a != "restart"])
        rule.times.clear()
        rule.lines.clear()
        rule.suppressed = 0
        rule.quiet_until = now + r.cooldown
        self._fire(alert)
        if "restart" in r.actions:
            self._restart(f"alert rule {r.pattern!r} fired")


class AlertTee:
    """An output sink: writes to the log first, then matches complete lines against rules."""

    def __init__(self, writer: OutputSink, rules: list[_Rule], owner: InstanceRules) -> None:
        self._writer = writer
        self._rules = rules
        self._owner = owner
        self._carry = b""
        # Rules without a literal run their regex on every chunk; the others only
        # where the finder saw one of their texts.
        self._always = [r for r in rules if r.needles is None]
        texts = [(needle, rule) for rule in rules for needle in rule.needles or ()]
        self._text_rules = [rule for _, rule in texts]
        self._find = finder([needle for needle, _ in texts])

    def feed(self, data: bytes | memoryview) -> None:
        self._writer.feed(data)
        # A view starts at the start of its bytearray (OutputSink's contract):
        # search that in place rather than copy every chunk into bytes.
        raw: bytes | bytearray = data.obj if isinstance(data, memoryview) else data  # type: ignore[assignment]
        n = len(data)
        end = raw.rfind(b"\n", 0, n) + 1
        if not end:  # no line end: all of it continues the line held
            self._hold(self._carry + raw[:n])
            return
        first = 0
        if self._carry:
            first = raw.find(b"\n", 0, n) + 1
            head = self._carry + raw[:first]
            self.scan(head, 0, len(head))
        if first < end:
            self.scan(raw, first, end)
        self._carry = b""
        if end < n:
            self._hold(bytes(raw[end:n]))

    def _hold(self, part: bytes) -> None:
        if len(part) > _MAX_CARRY:
            # A line without end grown huge: match what there is, hold nothing.
            self._carry = b""
            self.scan(part, 0, len(part))
        else:
            self._carry = part

    def end_of_run(self) -> None:
        self._writer.end_of_run()
        if self._carry:
            carry, self._carry = self._carry, b""
            self.scan(carry, 0, len(carry))

    def scan(self, chunk: bytes | bytearray, start: int, end: int) -> None:
        """Match the lines of ``chunk[start:end]``; mostly one finder pass that finds nothing."""
        found = self._find.which(chunk, start, end)
        if not found and not self._always:
            return
        candidates = set(self._always)
        candidates.update(self._text_rules[i] for i in found)
        hits = [(m.start(), r) for r in candidates if (m := r.regex.search(chunk, start, end))]
        if not hits:
            return
        matched = sorted((r for _, r in hits), key=lambda r: r.index)
        line_end = chunk.rfind(b"\n", start, min(at for at, _ in hits))
        for line in bytes(chunk[line_end + 1 if line_end >= 0 else start:end]).split(b"\n"):
            if not line:
                continue
            for rule in matched:
                if rule.regex.search(line):
                    self._owner.hit(rule, line)


# -- delivery ---------------------------------------------------------------


def _post(url: str, headers: dict[str, str], body: bytes) -> None:
    # Runs on a worker thread: only the request, no engine state. urllib is
    # imported here, at the first alert: it costs the daemon 1-2 MiB otherwise.
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


class AlertManager:
    """Sends alerts to sinks, with retries, and raises the built-in alerts from events."""

    def __init__(self, settings: AlertsSettings, platform: Platform,
                 emit: Callable[[Event], None], *, retry_initial: float = 1.0,
                 retry_max: float = 60.0, attempts: int = 5,
                 storm: tuple[int, float] = (5, 300.0)) -> None:
        self._sinks = settings.sinks
        self._platform = platform
        self._emit = emit
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._attempts = attempts
        self._storm_restarts, self._storm_window = storm
        self._pool: ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: dict[str, int] = {}
        self._restarts: dict[str, tuple[int, deque[float], float]] = {}
        self.delivered = 0
        self.failed = 0

    def update(self, settings: AlertsSettings) -> None:
        """Use the sinks of a reloaded configuration (alerts already on their way keep theirs)."""
        self._sinks = settings.sinks

    # -- firing ---------------------------------------------------------------

    def fire(self, alert: Alert) -> None:
        """Log the alert as an event and hand it to each of its sinks (never waits)."""
        sinks = [s for s in alert.sinks if s in self._sinks]
        self._emit(Event(EventKind.ALERT, f"alert: {alert.message}", alert.instance,
                         {"alert": alert.kind, "rule": alert.rule, "sinks": sinks,
                          "count": alert.count, "lines": alert.lines[-5:],
                          "suppressed": alert.suppressed}))
        loop = asyncio.get_running_loop()
        for name in sinks:
            if self._pending.get(name, 0) >= _MAX_PENDING:
                self._gave_up(alert, name, 0, f"{_MAX_PENDING} alerts already wait for it")
                continue
            self._pending[name] = self._pending.get(name, 0) + 1
            task = loop.create_task(self._deliver(alert, name, self._sinks[name]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, alert: Alert, name: str, sink: AlertSink) -> None:
        delay = self._retry_initial
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
            await self._run_command(list(sink.command), alert)
        else:
            # eventlog and syslog are one sink: the log of the system we run on.
            text = f"{alert.instance}: {alert.message}"
            if alert.lines:
                text += " | " + " | ".join(alert.lines[-3:])
            await loop.run_in_executor(self._workers(), lambda: self._platform.system_log(
                text, error=alert.kind != "rule"))

    async def _run_command(self, argv: list[str], alert: Alert) -> None:
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

    def _workers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="procward-alert")
        return self._pool

    def _gave_up(self, alert: Alert, sink: str, attempts: int, error: str) -> None:
        self.failed += 1
        self._emit(Event(EventKind.ALERT_FAILED,
                         f"alert to sink {sink!r} not delivered after {attempts} attempt(s): "
                         f"{error}", alert.instance,
                         {"sink": sink, "alert": alert.kind, "rule": alert.rule,
                          "attempts": attempts, "error": error}))

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

    # -- built-in alerts ------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Raise the built-in alerts from the engine's events (an EventBus subscriber)."""
        if event.service is None or event.kind not in (EventKind.STATE, EventKind.HEALTH):
            return
        service = str(event.fields.get("service_name", event.service.split(":")[0]))
        everyone = list(self._sinks)
        if event.kind is EventKind.HEALTH:
            if event.fields.get("health") == "unhealthy" and event.fields.get(
                    "on_unhealthy") != "none":
                self.fire(Alert("unhealthy", service, event.service, "unhealthy",
                                event.message, sinks=everyone))
            return
        state = event.fields.get("state")
        if state == "failed":
            self.fire(Alert("failed", service, event.service, "failed", event.message,
                            sinks=everyone))
        elif state == "starting" and isinstance(event.fields.get("restarts"), int):
            self._count_restart(service, event.service, int(event.fields["restarts"]),
                                everyone)

    def _count_restart(self, service: str, instance: str, restarts: int,
                       sinks: list[str]) -> None:
        now = time.monotonic()
        seen, times, quiet_until = self._restarts.get(instance, (restarts, deque(), 0.0))
        if restarts > seen:
            times.append(now)
        while times and now - times[0] > self._storm_window:
            times.popleft()
        if len(times) > self._storm_restarts and now >= quiet_until:
            self.fire(Alert("restart_storm", service, instance, "restart_storm",
                            f"{len(times)} restarts within {self._storm_window:g}s",
                            count=len(times), threshold=self._storm_restarts,
                            window=self._storm_window, sinks=sinks))
            times.clear()
            quiet_until = now + self._storm_window
        self._restarts[instance] = (restarts, times, quiet_until)


def _describe(error: BaseException) -> str:
    code, reason = getattr(error, "code", None), getattr(error, "reason", None)
    if isinstance(code, int):  # urllib.error.HTTPError
        return f"HTTP {code}"
    if reason is not None:  # urllib.error.URLError
        return f"cannot reach it: {reason}"
    return str(error) or type(error).__name__
