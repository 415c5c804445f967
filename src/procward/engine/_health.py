"""Health checks: the probes, and the state machine that turns their results into health.

A probe answers one question, "does it work right now?", within ``timeout``:

- ``http``: a GET answered with a 2xx (or ``expect_status``), whose body holds
  ``expect_body`` if given; asyncio streams, no thread, no HTTP library;
- ``tcp``: a connection is accepted;
- ``command``: a program (in the service's folder and environment) exits 0;
- ``heartbeat``: the program reported a heartbeat (SDK or ``WATCHDOG=1``)
  within the last ``heartbeat`` seconds.

``HealthTracker`` is the pure part (results and a clock in, health out);
``HealthCheck`` runs a probe every ``interval`` for the life of one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from procward.config import HealthSettings
from procward.engine._state import Health

__all__ = ["HealthCheck", "HealthTracker", "make_probe"]

# While a service has not yet been seen healthy it is probed at least this often,
# so a dependent waiting for it starts soon after it is ready, not an interval later.
_STARTING_INTERVAL = 1.0
# Enough of a response body to find expect_body in; more is not read.
_BODY_LIMIT = 256 * 1024

Probe = Callable[[], Awaitable[tuple[bool, str]]]


class HealthTracker:
    """Turns probe results into starting → healthy ⇄ unhealthy.

    Failures during ``start_period`` do not count (the program may still be
    starting); a success ends the start period at once. A heartbeat check's
    start period lasts at least one ``heartbeat``: the program has that long
    to send its first. ``failures`` consecutive failures make it unhealthy;
    one success makes it healthy again.
    """

    def __init__(self, settings: HealthSettings, now: float) -> None:
        self._settings = settings
        self._began = now
        self._grace = max(settings.start_period, settings.heartbeat or 0.0)
        self.status = Health.STARTING
        self.consecutive = 0

    def record(self, ok: bool, now: float) -> Health | None:
        """Note one result; return the new status if it changed."""
        if ok:
            self.consecutive = 0
            return self._become(Health.HEALTHY)
        if self.status is Health.STARTING and now - self._began < self._grace:
            return None
        self.consecutive += 1
        if self.consecutive >= self._settings.failures:
            return self._become(Health.UNHEALTHY)
        return None

    def _become(self, status: Health) -> Health | None:
        if status == self.status:
            return None
        self.status = status
        return status


async def probe_http(url: str, expect_status: int | None, expect_body: str | None) -> tuple[
        bool, str]:
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    context = ssl.create_default_context() if secure else None
    reader, writer = await asyncio.open_connection(host, port, ssl=context)
    try:
        # HTTP/1.0: the answer comes without chunked encoding and ends at close.
        host_header = parts.netloc.rpartition("@")[2]
        writer.write(f"GET {target} HTTP/1.0\r\nHost: {host_header}\r\n"
                     "User-Agent: procward-health\r\nAccept: */*\r\n\r\n".encode("latin-1"))
        await writer.drain()
        status_line = await reader.readline()
        fields = status_line.split(None, 2)
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
            return False, f"not an HTTP answer: {status_line[:80]!r}"
        code = int(fields[1])
        good = code == expect_status if expect_status is not None else 200 <= code < 300
        if not good:
            wanted = str(expect_status) if expect_status is not None else "2xx"
            return False, f"HTTP {code}, expected {wanted}"
        if expect_body is not None:
            body = await reader.read(_BODY_LIMIT + 64 * 1024)
            while len(body) < _BODY_LIMIT:
                more = await reader.read(_BODY_LIMIT)
                if not more:
                    break
                body += more
            if expect_body.encode("utf-8") not in body:
                return False, f"HTTP {code} but the body lacks {expect_body!r}"
        return True, f"HTTP {code}"
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def probe_tcp(address: str) -> tuple[bool, str]:
    host, _, port = address.rpartition(":")
    _, writer = await asyncio.open_connection(host.strip("[]") or "127.0.0.1", int(port))
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True, f"connected to {address}"


async def probe_command(argv: list[str], cwd: Path, env: dict[str, str],
                        timeout: float) -> tuple[bool, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        # Timed out or cancelled: the probe and anything it started must not linger.
        _kill_tree(proc.pid)
        with contextlib.suppress(Exception):
            await asyncio.shield(proc.wait())
        raise
    if proc.returncode == 0:
        return True, "exit code 0"
    last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    return False, f"exit code {proc.returncode}" + (f": {last[0][:200]}" if last[0] else "")


def _kill_tree(pid: int) -> None:
    try:
        root = psutil.Process(pid)
        victims = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    for proc in victims:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def make_probe(settings: HealthSettings, *, cwd: Path, env: dict[str, str],
               last_heartbeat: Callable[[], float | None],
               clock: Callable[[], float]) -> Probe:
    """The probe ``settings`` describe, as a coroutine function (without its timeout)."""
    if settings.http is not None:
        url = settings.http
        return lambda: probe_http(url, settings.expect_status, settings.expect_body)
    if settings.tcp is not None:
        address = settings.tcp
        return lambda: probe_tcp(address)
    if settings.command is not None:
        argv = list(settings.command)
        return lambda: probe_command(argv, cwd, env, settings.timeout)
    limit = settings.heartbeat or 0.0

    async def heartbeat() -> tuple[bool, str]:
        last = last_heartbeat()
        if last is None:
            return False, f"no heartbeat yet (expected every {limit:g}s)"
        age = clock() - last
        if age <= limit:
            return True, f"heartbeat {age:.1f}s ago"
        return False, f"no heartbeat for {age:.1f}s (expected every {limit:g}s)"

    return heartbeat


class HealthCheck:
    """Probes one running process every ``interval`` and reports each change of health."""

    def __init__(self, settings: HealthSettings, probe: Probe,
                 on_change: Callable[[Health, str, int], None]) -> None:
        self._settings = settings
        self._probe = probe
        self._on_change = on_change

    async def run(self) -> None:
        """Probe until cancelled (when the process ends)."""
        loop = asyncio.get_running_loop()
        tracker = HealthTracker(self._settings, loop.time())
        settings = self._settings
        while True:
            ok, detail = await self._attempt()
            changed = tracker.record(ok, loop.time())
            if changed is not None:
                self._on_change(changed, detail, tracker.consecutive)
            pause = settings.interval
            if tracker.status is Health.STARTING:
                pause = min(pause, _STARTING_INTERVAL)
            await asyncio.sleep(pause)

    async def _attempt(self) -> tuple[bool, str]:
        try:
            return await asyncio.wait_for(self._probe(), self._settings.timeout)
        except TimeoutError:
            return False, f"no answer within {self._settings.timeout:g}s"
        except (OSError, ValueError, UnicodeError) as e:
            return False, f"{type(e).__name__}: {e}" if not isinstance(e, OSError) else (
                e.strerror or str(e) or type(e).__name__)

