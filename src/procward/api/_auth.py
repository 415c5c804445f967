"""Who may ask: the bearer token of a request, its role, and the slow-down after
wrong tokens.

``Guard.admit`` gives the token of a request it lets in, or the answer to one
it does not: 401 without a valid token (each refusal an ``auth_failed``
event), 403 when the token's role does not allow the method. The routes put
it in front of every protected handler with the ``authenticated`` decorator
(in ``_app.py``).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from procward.api._tokens import TokenInfo, TokenStore
from procward.engine import Control, EventKind

__all__ = ["Guard"]

# Failed attempts from one address: each answer waits longer, up to this.
_MAX_DELAY = 5.0
# Addresses whose failures are counted at once; more, and counting starts again.
_MAX_TRACKED = 4096


class Guard:
    """Bearer-token checks, the slow-down after failures, and their events."""

    def __init__(self, tokens: TokenStore, control: Control) -> None:
        self._tokens = tokens
        self._control = control
        self._failures: dict[str, int] = {}

    async def admit(self, request: Request) -> TokenInfo | Response:
        """The token that lets ``request`` in, or the refusal to send instead."""
        client = request.client.host if request.client else "?"
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        info = self._tokens.check(token.strip()) if scheme.lower() == "bearer" else None
        if info is None:
            return await self._refuse(client, request, bool(header))
        self._failures.pop(client, None)
        if not info.allows(request.method):
            return JSONResponse({"error": f"token {info.name!r} has role {info.role}; "
                                          f"{request.method} {request.url.path} needs admin"},
                                status_code=403)
        return info

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
