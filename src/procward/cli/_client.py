"""How the CLI finds a running daemon and talks to it.

Local by default: the configuration file names the state dir, where the
daemon keeps ``api.json`` (its URL while it runs) and ``admin.token``. The
file is read with ``tomllib`` alone — no validation, no pydantic — so a
command like ``procward status`` starts in milliseconds. ``--url`` /
``$PROCWARD_URL`` and ``--token`` / ``$PROCWARD_TOKEN`` reach another host.

HTTP is the few lines of ``_http``: one short request does not need a client
library, and importing one would cost more than the request.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from procward.cli import EXIT_BAD_CONFIG, EXIT_FAILED, EXIT_UNREACHABLE
from procward.cli._common import add_config_options
from procward.cli._http import HttpError, Response, request

if TYPE_CHECKING:
    import ssl

__all__ = ["ApiClient", "ClientError", "add_client_options", "connect", "fail", "locate_state_dir"]


class ClientError(Exception):
    """Say ``message`` and exit with ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def add_client_options(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser)
    g = parser.add_argument_group("reaching the daemon (default: the local one, found "
                                  "through the configuration's state dir)")
    g.add_argument("--url", default=os.environ.get("PROCWARD_URL"),
                   help="the API's address, e.g. https://host:9771 (default: $PROCWARD_URL)")
    g.add_argument("--token", default=os.environ.get("PROCWARD_TOKEN"),
                   help="bearer token (default: $PROCWARD_TOKEN, else the local admin token)")
    g.add_argument("--cacert", default=os.environ.get("PROCWARD_CACERT"), metavar="PEM",
                   help="CA (or server certificate) to trust for https (default: "
                        "$PROCWARD_CACERT, else the system's)")
    g.add_argument("--cert", default=os.environ.get("PROCWARD_CLIENT_CERT"), metavar="PEM",
                   help="client certificate for mutual TLS (default: $PROCWARD_CLIENT_CERT)")
    g.add_argument("--key", default=os.environ.get("PROCWARD_CLIENT_KEY"), metavar="PEM",
                   help="its private key (default: $PROCWARD_CLIENT_KEY)")


class _Located(NamedTuple):
    config: Path
    state_dir: Path
    api: dict[str, Any]


def _read_config(args: argparse.Namespace) -> _Located:
    from procward.config._interpolate import interpolate
    from procward.config._paths import find_config_path

    path = find_config_path(args.config)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClientError(f"no configuration at {path}: pass -c FILE, or --url to reach a "
                          "daemon elsewhere", EXIT_BAD_CONFIG) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ClientError(f"cannot read {path}: {e}; `procward check` says more",
                          EXIT_BAD_CONFIG) from None
    daemon = dict(data.get("procward") or {})
    api = dict(data.get("api") or {})
    profile = args.profile or os.environ.get("PROCWARD_PROFILE")
    overlay = (data.get("profiles") or {}).get(profile) if profile else None
    if isinstance(overlay, dict):
        daemon.update(overlay.get("procward") or {})
        api.update(overlay.get("api") or {})

    def text(value: object, default: str) -> str:
        if not isinstance(value, str):
            return default
        return interpolate(value, os.environ)[0]

    base = path.resolve().parent
    state_dir = base / text(daemon.get("state_dir"), "state")
    resolved = {k: text(v, "") if isinstance(v, str) else v for k, v in api.items()}
    return _Located(path, state_dir, resolved)


def locate_state_dir(args: argparse.Namespace) -> Path:
    return _read_config(args).state_dir


class _Target(NamedTuple):
    url: str
    token: str
    cafile: str | None
    local: bool


def _target(args: argparse.Namespace) -> _Target:
    if args.url:
        if not args.token:
            raise ClientError("--url needs a token: pass --token or set $PROCWARD_TOKEN "
                              "(make one on that host with `procward token new NAME`)",
                              EXIT_BAD_CONFIG)
        return _Target(args.url.rstrip("/"), args.token, args.cacert, False)
    found = _read_config(args)
    if found.api.get("enabled") is False:
        raise ClientError(f"the control API is disabled in {found.config} ([api] enabled = "
                          "false)", EXIT_BAD_CONFIG)
    url, cafile = "", args.cacert
    try:
        info = json.loads((found.state_dir / "api.json").read_text(encoding="utf-8"))
        url = str(info["url"])
        cafile = cafile or info.get("cafile")
    except FileNotFoundError:
        raise ClientError(f"procward is not running for {found.config} (no api.json in "
                          f"{found.state_dir}); start it with `procward run`",
                          EXIT_UNREACHABLE) from None
    except PermissionError:
        raise _unreadable(found.state_dir / "api.json") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise ClientError(f"{found.state_dir / 'api.json'} is damaged; restart the daemon "
                          "or pass --url", EXIT_UNREACHABLE) from None
    token = args.token
    if not token:
        token_path = found.state_dir / "admin.token"
        try:
            token = token_path.read_text(encoding="utf-8").strip()
        except PermissionError:
            raise _unreadable(token_path) from None
        except OSError:
            raise ClientError(f"no admin token at {token_path}; pass --token",
                              EXIT_FAILED) from None
    return _Target(url, token, cafile, True)


def _unreadable(path: Path) -> ClientError:
    return ClientError(f"cannot read {path}: it belongs to the user that runs procward; run "
                       "this as that user (or with sudo / an elevated prompt), or pass a token "
                       "of your own with --token (`procward token new NAME` makes one)",
                       EXIT_FAILED)


class ApiClient:
    """One daemon's API; each call is one request on a fresh connection."""

    def __init__(self, target: _Target, cert: str | None = None, key: str | None = None) -> None:
        self.url = target.url
        self._token = target.token
        parts = urlsplit(target.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientError(f"not an http(s) URL: {target.url!r}", EXIT_BAD_CONFIG)
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._context: ssl.SSLContext | None = None
        if self._https:
            import ssl

            ctx = ssl.create_default_context(cafile=target.cafile)
            if target.local and target.cafile:
                # The local daemon's own certificate, read from its own state dir, is
                # trusted as it is, whatever names it carries (we dial 127.0.0.1).
                ctx.check_hostname = False
                ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
            if cert:
                try:
                    ctx.load_cert_chain(cert, key)
                except (OSError, ssl.SSLError) as e:
                    raise ClientError(f"cannot load the client certificate {cert}: {e}",
                                      EXIT_BAD_CONFIG) from None
            self._context = ctx

    def _send(self, method: str, path: str, body: object, timeout: float | None) -> Response:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            return request(method, self._prefix + path, host=self._host, port=self._port,
                           headers=headers, body=payload, context=self._context,
                           server_hostname=self._host, timeout=timeout)
        except HttpError as e:
            raise ClientError(f"{self.url} answered, but not as procward does: {e}",
                              EXIT_UNREACHABLE) from None
        except OSError as e:
            if type(e).__module__ == "ssl" or e.__class__.__name__.startswith("SSL"):
                raise ClientError(f"TLS with {self.url} failed: {e}; check --cacert (and "
                                  "--cert/--key for mutual TLS)", EXIT_UNREACHABLE) from None
            raise ClientError(f"procward does not answer at {self.url} ({e}); is it running? "
                              "Start it with `procward run`", EXIT_UNREACHABLE) from None

    def call(self, method: str, path: str, body: object = None, *,
             accept: tuple[int, ...] = (200,), timeout: float | None = 60) -> Any:
        """JSON in and out; raise ClientError for a status not in ``accept``."""
        with self._send(method, path, body, timeout) as resp:
            data = resp.read()
            status = resp.status
        decoded = _maybe_json(data) if data else None
        if status not in accept:
            raise _http_error(status, decoded, data)
        return decoded

    def text(self, path: str) -> bytes:
        with self._send("GET", path, None, 60) as resp:
            data = resp.read()
            if resp.status != 200:
                raise _http_error(resp.status, _maybe_json(data), data)
            return data

    def stream(self, path: str) -> Iterator[bytes]:
        """Yield the response line by line as it arrives (follow mode)."""
        resp = self._send("GET", path, None, None)
        with resp:
            if resp.status != 200:
                data = resp.read()
                raise _http_error(resp.status, _maybe_json(data), data)
            try:
                yield from resp.lines()
            except OSError:
                return  # the daemon went away: the stream simply ends


def _maybe_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _http_error(status: int, decoded: Any, raw: bytes) -> ClientError:
    message = decoded.get("error") if isinstance(decoded, dict) else None
    message = message or raw.decode("utf-8", "replace").strip() or f"HTTP {status}"
    if status == 401:
        return ClientError(f"{message} (the token was refused)", EXIT_FAILED)
    if status == 404:
        return ClientError(message, EXIT_BAD_CONFIG)
    return ClientError(f"{message} (HTTP {status})", EXIT_FAILED)


def connect(args: argparse.Namespace) -> ApiClient:
    return ApiClient(_target(args), args.cert, args.key)


def fail(error: ClientError) -> int:
    print(f"procward: {error}", file=sys.stderr)
    return error.code
