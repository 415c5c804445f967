"""The control API's routes: module-level handlers over the engine's Control facade,
as one Starlette application.

What the handlers share (the facade, the token guard, the status answers, the
status time share, the OpenAPI document) is one ``_Shared`` object in
``app.state``. A protected handler is wrapped by ``authenticated`` (the token
and its role: ``_auth.py``), a status handler also by ``time_shared``
(``_time_share.py``). A bad parameter or an unknown service name raises; the
application's exception handlers answer 400 or 404.

Starlette rather than FastAPI, which would bring pydantic into the daemon
(docs/control.md says why): the request bodies are two small shapes checked
here by hand, and the OpenAPI document is kept by hand in ``_openapi.py``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from procward import __version__
from procward._logfiles import follow_lines, labelled, last_lines, tail_lines
from procward.api._auth import Guard
from procward.api._openapi import openapi_document
from procward.api._status import StatusAnswers
from procward.api._time_share import CaptureMeter, TimeShare
from procward.api._tokens import TokenInfo, TokenStore
from procward.engine import Control, Event
from procward.errors import UnknownService

__all__ = ["build_app"]

Handler = Callable[[Request, TokenInfo], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]

# The most lines a request may ask for (n), as the OpenAPI document says.
_MAX_LINES = 100_000
_TEXT = "text/plain; charset=utf-8"
_NDJSON = "application/x-ndjson"
# Events held for a follower that reads slowly; past this it loses events.
_EVENTS_QUEUED = 10_000


@dataclass(frozen=True)
class _Shared:
    """What every handler of one application reaches, through ``_shared(request)``."""

    control: Control
    guard: Guard
    status: StatusAnswers
    time_share: TimeShare
    document: dict[str, Any]


def _shared(request: Request) -> _Shared:
    return cast(_Shared, request.app.state.procward)


def build_app(control: Control, tokens: TokenStore) -> Starlette:
    app = Starlette(routes=_ROUTES, exception_handlers={
        _BadRequest: _bad_request, UnknownService: _unknown_service})
    app.state.procward = _Shared(
        control=control, guard=Guard(tokens, control), status=StatusAnswers(control),
        time_share=TimeShare(CaptureMeter(control).busy),
        document=openapi_document(__version__))
    return app


# -- what wraps the handlers ---------------------------------------------------


def authenticated(handler: Handler) -> Endpoint:
    """The endpoint that lets a request reach ``handler`` only with a valid token
    whose role allows its method (401 or 403 otherwise)."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        admitted = await _shared(request).guard.admit(request)
        if isinstance(admitted, TokenInfo):
            return await handler(request, admitted)
        return admitted

    return endpoint


def time_shared(handler: Handler) -> Handler:
    """``handler`` held to the status time share: under a log flood a request waits
    for its turn, and is charged the time the handler took."""

    @functools.wraps(handler)
    async def held(request: Request, who: TokenInfo) -> Response:
        share = _shared(request).time_share
        await share.wait()
        started = time.perf_counter()
        try:
            return await handler(request, who)
        finally:
            share.spend(time.perf_counter() - started)

    return held


class _BadRequest(Exception):
    """A parameter or body the API cannot take: answered 400 with the message."""


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _bad_request(request: Request, exc: Exception) -> Response:
    return _error(400, str(exc))


async def _unknown_service(request: Request, exc: Exception) -> Response:
    return _error(404, str(exc))


# -- parameters ------------------------------------------------------------------


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


async def _chosen(request: Request) -> list[str] | None:
    """The services a control request names (None: all of them)."""
    shape = "the body must be {\"names\": [...]} or {\"all\": true}"
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        raise _BadRequest("the body must be JSON: {\"names\": [...]} or {\"all\": true}") from None
    if not isinstance(body, dict) or len(body) != 1:
        raise _BadRequest(shape)
    if "all" in body:
        if body["all"] is not True:
            raise _BadRequest(shape)
        return None
    names = body.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise _BadRequest("names must be a non-empty list of service names")
    return names


# -- the handlers ------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def openapi(request: Request) -> Response:
    return JSONResponse(_shared(request).document)


@authenticated
@time_shared
async def list_services(request: Request, who: TokenInfo) -> Response:
    return Response(_shared(request).status.body(None), media_type="application/json")


@authenticated
@time_shared
async def get_service(request: Request, who: TokenInfo) -> Response:
    body = _shared(request).status.body([request.path_params["name"]])
    return Response(body, media_type="application/json")


@authenticated
async def service_logs(request: Request, who: TokenInfo) -> Response:
    n = _int_param(request, "n", 50)
    stream = request.query_params.get("stream", "stdout")
    if stream not in ("stdout", "stderr", "both"):
        raise _BadRequest("stream must be stdout, stderr or both")
    following = _bool_param(request, "follow")
    # With several instances each line says whose it is; with both streams
    # (unless merged into one file), which stream.
    sources = labelled(_shared(request).control.log_files(request.path_params["name"], stream))
    if following:
        return StreamingResponse(follow_lines(sources, n), media_type=_TEXT)
    return Response(tail_lines(sources, n), media_type=_TEXT)


async def _act(request: Request, who: TokenInfo, action: str) -> Response:
    names = await _chosen(request)
    done = await _shared(request).control.act(action, names, who.name)
    return JSONResponse({"action": action, "done": done})


@authenticated
async def start_services(request: Request, who: TokenInfo) -> Response:
    return await _act(request, who, "start")


@authenticated
async def stop_services(request: Request, who: TokenInfo) -> Response:
    return await _act(request, who, "stop")


@authenticated
async def restart_services(request: Request, who: TokenInfo) -> Response:
    return await _act(request, who, "restart")


@authenticated
async def reload(request: Request, who: TokenInfo) -> Response:
    outcome = await _shared(request).control.reload(who.name)
    return JSONResponse(outcome.to_dict(), status_code=200 if outcome.ok else 422)


@authenticated
async def shutdown(request: Request, who: TokenInfo) -> Response:
    plan = _shared(request).control.shutdown(who.name)
    # The stop begins once the answer is sent: the API closes as the services stop.
    return JSONResponse(plan.to_dict(), background=BackgroundTask(plan.begin))


@authenticated
async def events(request: Request, who: TokenInfo) -> Response:
    n = _int_param(request, "n", 50)
    following = _bool_param(request, "follow")
    control = _shared(request).control
    if not following:
        return Response(b"".join(last_lines(control.events_path, n)[0]), media_type=_NDJSON)
    # Subscribed before the file is read, with no await between, and events are
    # written as they are emitted: the file's tail and the queue neither overlap
    # nor leave a gap.
    queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=_EVENTS_QUEUED)

    def deliver(event: Event) -> None:
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            pass  # a reader this far behind loses events, never the daemon time

    unsubscribe = control.subscribe(deliver)
    head = b"".join(last_lines(control.events_path, n)[0])

    async def body() -> AsyncIterator[bytes]:
        try:
            yield head
            while True:
                yield ((await queue.get()).to_json() + "\n").encode()
        finally:
            unsubscribe()

    return StreamingResponse(body(), media_type=_NDJSON)


@authenticated
async def metrics(request: Request, who: TokenInfo) -> Response:
    # Imported on the first scrape: a daemon nobody scrapes never pays for it.
    from procward.api._metrics import render_metrics, snapshot

    # The snapshot is taken here, on the loop; the thread only reads /proc and formats.
    body, content_type = await asyncio.get_running_loop().run_in_executor(
        None, render_metrics, snapshot(_shared(request).control))
    return Response(body, media_type=content_type)


_ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/v1/services", list_services, methods=["GET"]),
    Route("/v1/services/{name}", get_service, methods=["GET"]),
    Route("/v1/services/{name}/logs", service_logs, methods=["GET"]),
    Route("/v1/start", start_services, methods=["POST"]),
    Route("/v1/stop", stop_services, methods=["POST"]),
    Route("/v1/restart", restart_services, methods=["POST"]),
    Route("/v1/reload", reload, methods=["POST"]),
    Route("/v1/shutdown", shutdown, methods=["POST"]),
    Route("/v1/events", events, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
