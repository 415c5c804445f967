"""The control API's routes, as a Starlette application over the engine's Control facade.

Starlette rather than FastAPI: FastAPI brings pydantic into the daemon, which
costs ~15 MiB of memory for its whole life (the daemon with 200 idle children
must stay under 50 MiB); the request bodies here are two small shapes,
checked by hand below, and the OpenAPI document is kept by hand in
``_openapi.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from procward import __version__
from procward.api._openapi import openapi_document
from procward.api._resources import ResourceSampler
from procward.api._tail import follow, last_lines
from procward.api._tokens import TokenInfo, TokenStore
from procward.engine import Control, Event, EventKind
from procward.errors import UnknownService

__all__ = ["build_app"]

Handler = Callable[[Request, TokenInfo], Awaitable[Response]]

_MAX_LINES = 100_000
_ALIVE = ("starting", "running", "stopping")
# Failed attempts from one address: each answer waits longer, up to this.
_MAX_DELAY = 5.0
_MAX_TRACKED = 4096


def _error(status: int, message: str, detail: object = None) -> JSONResponse:
    body: dict[str, object] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status)


class _Guard:
    """Bearer-token checks, the slow-down after failures, and their events."""

    def __init__(self, tokens: TokenStore, control: Control) -> None:
        self._tokens = tokens
        self._control = control
        self._failures: dict[str, int] = {}

    def protect(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            client = request.client.host if request.client else "?"
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            info = self._tokens.check(token.strip()) if scheme.lower() == "bearer" else None
            if info is None:
                return await self._refuse(client, request, bool(header))
            self._failures.pop(client, None)
            if not info.allows(request.method):
                return _error(403, f"token {info.name!r} has role {info.role}; "
                                   f"{request.method} {request.url.path} needs admin")
            return await handler(request, info)

        return endpoint

    async def _refuse(self, client: str, request: Request, had_token: bool) -> Response:
        count = self._failures.get(client, 0) + 1
        if len(self._failures) >= _MAX_TRACKED and client not in self._failures:
            self._failures.clear()
        self._failures[client] = count
        self._control.emit(EventKind.AUTH_FAILED,
                           f"refused {request.method} {request.url.path} from {client}: "
                           f"{'unknown token' if had_token else 'no token'}",
                           client=client, path=request.url.path, attempts=count)
        if had_token:
            # Guessing gets slower with each wrong token from the same address:
            # 0.1 s, 0.2 s, 0.4 s ... up to 5 s. A request with no token at all
            # guesses nothing and is answered at once.
            await asyncio.sleep(min(_MAX_DELAY, 0.1 * 2 ** (count - 1)))
        return JSONResponse({"error": "a valid bearer token is needed: "
                                      "Authorization: Bearer <token>"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequest(f"{name} must be a whole number, got {raw!r}") from None
    if not 0 <= value <= _MAX_LINES:
        raise _BadRequest(f"{name} must be between 0 and {_MAX_LINES}")
    return value


def _bool_param(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false").lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise _BadRequest(f"{name} must be true or false, got {raw!r}")


class _BadRequest(Exception):
    pass


class _TimeShare:
    """Keeps status requests to a share of the loop's time while services flood
    their logs, so requests cannot slow log capture: a token bucket of seconds.

    Each answer spends the time it took (plus a fixed allowance for parsing
    and sending, which happen outside the handler); when the bucket is empty,
    the next request waits (asleep, costing nothing) until it has refilled.
    While capture is quiet there is nothing to protect: requests are answered
    at once and the bucket stays full.
    """

    def __init__(self, share: float, burst: float, busy: Callable[[], bool]) -> None:
        self._rate = share
        self._cap = burst
        self._tokens = burst
        self._at = time.monotonic()
        self._busy = busy

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self._cap, self._tokens + (now - self._at) * self._rate)
        self._at = now

    async def wait(self) -> None:
        self._refill()
        if not self._busy():
            self._tokens = self._cap
            return
        while self._tokens < 0:
            await asyncio.sleep(-self._tokens / self._rate)
            self._refill()

    def spend(self, seconds: float) -> None:
        self._tokens -= seconds + _PER_REQUEST


class _CaptureMeter:
    """Whether the services' output is arriving fast enough that the loop is
    busy with it: the bytes all log files took, per second, between two looks."""

    def __init__(self, control: Control) -> None:
        self._control = control
        self._bytes = control.bytes_captured()
        self._at = time.monotonic()
        self._busy = False

    def busy(self) -> bool:
        now = time.monotonic()
        if now - self._at >= _METER_INTERVAL:
            total = self._control.bytes_captured()
            self._busy = (total - self._bytes) / (now - self._at) >= _BUSY_CAPTURE
            self._bytes, self._at = total, now
        return self._busy


# Under a log flood, status answers may use this share of the daemon's time:
# about 50 cached answers a second, each waiting its turn asleep. The burst
# (20 ms of work, some ten answers) is small because it comes on top of the
# share each time a flood begins.
_STATUS_SHARE = 0.10
_STATUS_BURST = 0.02
# What one request costs the daemon besides the handler: accepting the
# connection, h11, Starlette's layers, the token check, sending, closing.
# Measured as the daemon's CPU time over 400 requests (100 services, cached
# answers, 2-core machine): 1.45 ms one client at a time, 2.05 ms with four.
_PER_REQUEST = 0.002
# A cached status answer is reused this long, unless anything happens first.
_STATUS_TTL = 0.5
# Output arriving at this rate (bytes a second) or more makes the loop "busy"
# and the time share apply: a few percent of what one core can capture.
_BUSY_CAPTURE = 50_000_000
# The capture rate is measured over at least this long.
_METER_INTERVAL = 0.01


class _StatusCache:
    """Encoded status answers, dropped at the next event (a state change, an exit,
    anything) or after ``_STATUS_TTL``: never stale in state, at most that old in
    CPU and memory figures. A burst of requests costs one reading of /proc."""

    def __init__(self, control: Control) -> None:
        self._bodies: dict[tuple[str, ...] | None, tuple[float, bytes]] = {}
        control.subscribe(lambda event: self._bodies.clear())

    def get(self, key: tuple[str, ...] | None) -> bytes | None:
        found = self._bodies.get(key)
        if found is None or time.monotonic() - found[0] > _STATUS_TTL:
            return None
        return found[1]

    def put(self, key: tuple[str, ...] | None, body: bytes) -> None:
        if len(self._bodies) > 256:
            self._bodies.clear()
        self._bodies[key] = (time.monotonic(), body)


def build_app(control: Control, tokens: TokenStore) -> Starlette:
    guard = _Guard(tokens, control)
    sampler = ResourceSampler()
    document = openapi_document(__version__)

    def status_rows(names: list[str] | None) -> list[dict[str, Any]]:
        rows = []
        live = set()
        for st in control.status(names):
            row = st.to_dict()
            # The pid of an instance that has ended may be another process's by now.
            alive = st.pid is not None and str(st.state) in _ALIVE
            usage = sampler.usage(st.pid, st.started_at) if alive else None
            if alive and st.pid is not None:
                live.add(st.pid)
            row["cpu_percent"] = usage.cpu_percent if usage else None
            row["memory_rss"] = usage.rss if usage else None
            rows.append(row)
        if names is None:
            sampler.forget_except(live)
        return rows

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    share = _TimeShare(_STATUS_SHARE, _STATUS_BURST, _CaptureMeter(control).busy)
    cache = _StatusCache(control)

    async def status_answer(names: list[str] | None) -> Response:
        key = None if names is None else tuple(names)
        await share.wait()
        body = cache.get(key)
        if body is None:
            started = time.perf_counter()
            body = json.dumps({"services": status_rows(names)},
                              separators=(",", ":")).encode()
            cache.put(key, body)
            share.spend(time.perf_counter() - started)
        else:
            share.spend(0.0)
        return Response(body, media_type="application/json")

    async def services(request: Request, who: TokenInfo) -> Response:
        return await status_answer(None)

    async def service(request: Request, who: TokenInfo) -> Response:
        try:
            return await status_answer([request.path_params["name"]])
        except UnknownService as e:
            return _error(404, str(e))

    def control_action(action: str) -> Handler:
        async def act(request: Request, who: TokenInfo) -> Response:
            try:
                body = json.loads(await request.body() or b"null")
            except ValueError:
                return _error(400, "the body must be JSON: {\"names\": [...]} or {\"all\": true}")
            shape = "the body must be {\"names\": [...]} or {\"all\": true}"
            if not isinstance(body, dict) or len(body) != 1:
                return _error(400, shape)
            names = body.get("names")
            if "all" in body:
                if body["all"] is not True:
                    return _error(400, shape)
            elif (not isinstance(names, list) or not names
                  or not all(isinstance(n, str) for n in names)):
                return _error(400, "names must be a non-empty list of service names")
            try:
                done = await control.act(action, names, who.name)
            except UnknownService as e:
                return _error(404, str(e))
            return JSONResponse({"action": action, "done": done})

        return act

    async def reload(request: Request, who: TokenInfo) -> Response:
        outcome = await control.reload(who.name)
        return JSONResponse(outcome.to_dict(), status_code=200 if outcome.ok else 422)

    async def logs(request: Request, who: TokenInfo) -> Response:
        name = request.path_params["name"]
        n = _int_param(request, "n", 50)
        stream = request.query_params.get("stream", "stdout")
        if stream not in ("stdout", "stderr"):
            return _error(400, "stream must be stdout or stderr")
        following = _bool_param(request, "follow")
        try:
            files = control.log_files(name, stream)
        except UnknownService as e:
            return _error(404, str(e))
        tag = len(files) > 1

        def label(instance: str, line: bytes) -> bytes:
            return f"[{instance}] ".encode() + line if tag else line

        head: list[bytes] = []
        offsets = []
        for lf in files:
            lines, end = last_lines(lf.path, n)
            head.extend(label(lf.instance, line) for line in lines)
            offsets.append(end)
        if not following:
            return Response(b"".join(head), media_type="text/plain; charset=utf-8")

        async def body() -> AsyncIterator[bytes]:
            yield b"".join(head)
            queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=256)

            async def pump(instance: str, path: Any, offset: int) -> None:
                partial = b""
                async for chunk in follow(path, offset):
                    data = partial + chunk
                    cut = data.rfind(b"\n") + 1
                    partial = data[cut:]
                    if cut:
                        await queue.put(b"".join(label(instance, line) for line
                                                 in data[:cut].splitlines(keepends=True)))

            tasks = [asyncio.create_task(pump(lf.instance, lf.path, off))
                     for lf, off in zip(files, offsets, strict=True)]
            try:
                while True:
                    yield await queue.get()
            finally:
                for task in tasks:
                    task.cancel()

        return StreamingResponse(body(), media_type="text/plain; charset=utf-8")

    async def events(request: Request, who: TokenInfo) -> Response:
        n = _int_param(request, "n", 50)
        following = _bool_param(request, "follow")
        # Subscribe before reading the file, so nothing falls between the two.
        queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=10_000)
        unsubscribe = None

        def deliver(event: Event) -> None:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                pass  # a reader this far behind loses events, never the daemon time

        if following:
            unsubscribe = control.subscribe(deliver)
        lines, _ = last_lines(control.events_path, n)
        head = b"".join(lines)
        if not following:
            return Response(head, media_type="application/x-ndjson")

        async def body() -> AsyncIterator[bytes]:
            # No await lay between subscribing and reading the file, and events are
            # written as they are emitted: the file's tail and the queue neither
            # overlap nor leave a gap.
            try:
                yield head
                while True:
                    event = await queue.get()
                    if event is not None:
                        yield (event.to_json() + "\n").encode()
            finally:
                if unsubscribe is not None:
                    unsubscribe()

        return StreamingResponse(body(), media_type="application/x-ndjson")

    async def metrics(request: Request, who: TokenInfo) -> Response:
        # Imported on the first scrape: a daemon nobody scrapes never pays for it.
        from procward.api._metrics import render_metrics, snapshot

        # The snapshot is taken here, on the loop; the thread only reads /proc and formats.
        body, content_type = await asyncio.get_running_loop().run_in_executor(
            None, render_metrics, snapshot(control))
        return Response(body, media_type=content_type)

    def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        inner = guard.protect(handler)

        async def endpoint(request: Request) -> Response:
            try:
                return await inner(request)
            except _BadRequest as e:
                return _error(400, str(e))

        return endpoint

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/v1/services", guarded(services), methods=["GET"]),
        Route("/v1/services/{name}", guarded(service), methods=["GET"]),
        Route("/v1/services/{name}/logs", guarded(logs), methods=["GET"]),
        Route("/v1/start", guarded(control_action("start")), methods=["POST"]),
        Route("/v1/stop", guarded(control_action("stop")), methods=["POST"]),
        Route("/v1/restart", guarded(control_action("restart")), methods=["POST"]),
        Route("/v1/reload", guarded(reload), methods=["POST"]),
        Route("/v1/events", guarded(events), methods=["GET"]),
        Route("/metrics", guarded(metrics), methods=["GET"]),
    ]
    return Starlette(routes=routes)
