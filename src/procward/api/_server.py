"""The API server: uvicorn serving the Starlette app on the daemon's own event loop.

Starting is two steps. ``listen()`` binds the socket, makes sure the admin
token exists, checks the TLS files and writes ``api.json``, before any
service starts, so "address in use" or a bad certificate is a clear error at
start (uvicorn would ``sys.exit`` from inside the loop) and no child is
spawned. ``serve()``, which the daemon runs once the services' spawns are
under way, imports the web stack (most of the daemon's own start-up) and
starts answering; a client that connects in between waits in the listen
backlog. Only uvicorn's ``startup()`` and ``shutdown()`` are used, not
``serve()``: its main loop wakes ten times a second for ever (to refresh the
Date header and watch for exit), which was most of an idle daemon's CPU. So
answers carry no Date header, and uvicorn never touches the signal handlers
(the daemon owns Ctrl+C).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from procward.api._tokens import TokenStore
from procward.config import ApiSettings, split_listen
from procward.engine import Control
from procward.errors import ProcwardError

if TYPE_CHECKING:
    import uvicorn

__all__ = ["API_FILE", "ApiServer"]

# Written into the state dir while the API is up: where the local CLI finds it.
API_FILE = "api.json"
_UNSPECIFIED = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def _bind(host: str, port: int) -> socket.socket:
    # create_server sets SO_REUSEADDR where it means "reuse a port in
    # TIME_WAIT" (POSIX), not where it would let a second daemon take the port
    # (Windows). "::" means every address, IPv4 ones included.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    dualstack = host == "::" and socket.has_dualstack_ipv6()
    try:
        sock = socket.create_server((host, port), family=family, backlog=512,
                                    dualstack_ipv6=dualstack)
    except OSError as e:
        raise ProcwardError(
            f"the control API cannot listen on {host}:{port}: {e.strerror or e}; "
            "choose another [api] listen address, or stop what uses it") from None
    sock.setblocking(False)
    return sock


def _check_tls(s: ApiSettings) -> None:
    """Load the TLS files as uvicorn will, so a bad one fails the start, not the serving."""
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(s.tls_cert), str(s.tls_key) if s.tls_key else None)
        if s.client_ca is not None:
            ctx.load_verify_locations(str(s.client_ca))
    except (OSError, ssl.SSLError) as e:
        raise _tls_error(e) from None


def _tls_error(e: Exception) -> ProcwardError:
    return ProcwardError(f"the control API cannot load its TLS files: {e}; check "
                         "[api] tls_cert, tls_key and client_ca")


class ApiServer:
    """Serves the control API for one daemon until closed."""

    def __init__(self, control: Control, settings: ApiSettings, state_dir: Path) -> None:
        self.settings = settings
        self.tokens = TokenStore(state_dir)
        self.state_dir = state_dir
        self._control = control
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self.url = ""

    def listen(self) -> None:
        """Bind, and find every reason the API could not start; raises ProcwardError."""
        s = self.settings
        host, port = split_listen(s.listen)
        sock = _bind(host, port)
        try:
            if s.tls_cert is not None:
                _check_tls(s)
            self.tokens.ensure_local_admin()
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        port = sock.getsockname()[1]
        local = _UNSPECIFIED.get(host, host)
        shown = f"[{local}]" if ":" in local else local
        tls = s.tls_cert is not None
        self.url = f"{'https' if tls else 'http'}://{shown}:{port}"
        info = {"url": self.url, "pid": os.getpid(), "tls": tls,
                "cafile": str(s.tls_cert) if tls else None,
                "client_cert_required": s.client_ca is not None}
        # Readable by all (it holds no secret): another user with a token of
        # their own finds the address here; the token file stays owner-only.
        path = self.state_dir / API_FILE
        tmp = path.with_name(f".{API_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(info) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    async def serve(self) -> None:
        """Answer on the socket ``listen()`` bound."""
        import uvicorn

        from procward.api._app import build_app

        s = self.settings
        assert self._sock is not None, "listen() first"
        tls = s.tls_cert is not None
        config = uvicorn.Config(
            build_app(self._control, self.tokens), lifespan="off", log_config=None,
            access_log=False, http="h11", ws="none", interface="asgi3",
            timeout_graceful_shutdown=2, server_header=False, date_header=False,
            ssl_certfile=str(s.tls_cert) if tls else None,
            ssl_keyfile=str(s.tls_key) if s.tls_key else None,
            ssl_ca_certs=str(s.client_ca) if s.client_ca else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if s.client_ca else ssl.CERT_NONE,
        )
        try:
            config.load()
        except (OSError, ssl.SSLError) as e:  # changed since listen() checked them
            raise _tls_error(e) from None
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[self._sock])
        self._server = server

    async def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / API_FILE).unlink()
        sock, self._sock = self._sock, None
        if self._server is not None:
            server, self._server = self._server, None
            # Closes the socket too; open follow streams are ended after
            # timeout_graceful_shutdown.
            await server.shutdown()
        elif sock is not None:
            sock.close()  # bound, never served
