"""How the CLI finds a running daemon and talks to it.

Local by default: ``procward.config.locate()`` reads the configuration as far as
its state dir, where the daemon keeps ``api.json`` (its URL while it runs) and
``admin.token``. ``--url`` / ``$PROCWARD_URL`` and ``--token`` /
``$PROCWARD_TOKEN`` reach another host. Each call is one request on a fresh
connection, with the standard library's ``http.client``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from procward.cli import EXIT_BAD_CONFIG, EXIT_FAILED, EXIT_UNREACHABLE
from procward.cli._common import add_config_options
from procward.config import Located, locate
from procward.errors import ClientError, ConfigError

__all__ = ["ApiClient", "ClientError", "NoDaemon", "add_client_options", "connect", "fail",
           "locate_state_dir", "segment"]


class NoDaemon(ClientError):
    """There is no local daemon to ask: none runs (no ``api.json``, or nothing answers
    at its address), or its API is disabled. ``reason`` says which, briefly;
    commands that can do without a daemon (``logs``, ``events``) read the files."""

    def __init__(self, message: str, code: int, reason: str) -> None:
        super().__init__(message, code)
        self.reason = reason


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


def _located(args: argparse.Namespace) -> Located:
    try:
        found = locate(args.config, profile=args.profile)
    except ConfigError as e:
        problem = e.problems[0]
        if problem.message == "no such file":
            raise ClientError(f"no configuration at {problem.file}: pass -c FILE, or --url to "
                              f"reach a daemon elsewhere{_others()}", EXIT_BAD_CONFIG) from None
        raise ClientError(f"{e}\n(`procward check` says more)", EXIT_BAD_CONFIG) from None
    if found.problems:
        raise ClientError("\n".join(str(p) for p in found.problems), EXIT_BAD_CONFIG)
    return found


def _others() -> str:
    """The daemons this user runs, each with the ``-c FILE`` that reaches it from here."""
    from procward._running import config_option, running

    found = running()
    if not found:
        return ""
    lines = [f"  {config_option(r.config) or '(no -c needed)'}    pid {r.pid}"
             + (f", {r.url}" if r.url else "") for r in found]
    return ("\nprocward runs for these configurations; name one with -c:\n"
            + "\n".join(lines))


def locate_state_dir(args: argparse.Namespace) -> Path:
    return _located(args).state_dir


class _Target(NamedTuple):
    """Where to send requests, with which token, trusting which CA."""

    url: str
    token: str
    cafile: str | None
    local: bool


def _read_private(path: Path, missing: str, code: int,
                  absent: ClientError | None = None) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except PermissionError:
        raise ClientError(f"cannot read {path}: it belongs to the user that runs procward; "
                          "run this as that user (or with sudo / an elevated prompt), or pass "
                          "a token of your own with --token (`procward token new NAME` makes "
                          "one)", EXIT_FAILED) from None
    except OSError:
        raise (absent or ClientError(missing, code)) from None


def _target(args: argparse.Namespace) -> _Target:
    if args.url:
        if not args.token:
            raise ClientError("--url needs a token: pass --token or set $PROCWARD_TOKEN "
                              "(make one on that host with `procward token new NAME`)",
                              EXIT_BAD_CONFIG)
        return _Target(args.url.rstrip("/"), args.token, args.cacert, False)
    found = _located(args)
    if found.api.get("enabled") is False:
        raise NoDaemon(f"the control API is disabled in {found.shown} ([api] enabled = "
                       "false)", EXIT_BAD_CONFIG,
                       f"the control API is disabled in {found.shown}")
    info_path = found.state_dir / "api.json"
    not_running = f"procward is not running for {found.shown}"
    text = _read_private(info_path, "", 0, NoDaemon(
        f"{not_running} (no api.json in {found.state_dir}); start it with `procward run`",
        EXIT_UNREACHABLE, not_running))
    try:
        info = json.loads(text)
        url, cafile = str(info["url"]), args.cacert or info.get("cafile")
    except (ValueError, KeyError, TypeError):
        raise ClientError(f"{info_path} is damaged; restart the daemon or pass --url",
                          EXIT_UNREACHABLE) from None
    token = args.token
    if not token:
        token_path = found.state_dir / "admin.token"
        token = _read_private(token_path, f"no admin token at {token_path}; pass --token",
                              EXIT_FAILED)
    return _Target(url, token.strip(), cafile, True)


class ApiClient:
    """One daemon's API; each call is one request on a fresh connection."""

    def __init__(self, target: _Target, cert: str | None = None, key: str | None = None) -> None:
        self.url = target.url
        # Found through this machine's state dir (not --url): its pids are ours to watch.
        self.local = target.local
        self._token = target.token
        parts = urlsplit(target.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientError(f"not an http(s) URL: {target.url!r}", EXIT_BAD_CONFIG)
        try:
            self._port = parts.port
        except ValueError:
            raise ClientError(f"not an http(s) URL: {target.url!r}", EXIT_BAD_CONFIG) from None
        self._host = parts.hostname
        self._prefix = parts.path.rstrip("/")
        self._context: ssl.SSLContext | None = None
        if parts.scheme == "https":
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

    def _send(self, method: str, path: str, body: object,
              timeout: float | None) -> http.client.HTTPResponse:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn: http.client.HTTPConnection
        if self._context is not None:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                               context=self._context)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            conn.request(method, self._prefix + path, body=payload, headers=headers)
            return conn.getresponse()
        except http.client.HTTPException as e:
            conn.close()
            raise ClientError(f"{self.url} answered, but not as procward does: {e!r}",
                              EXIT_UNREACHABLE) from None
        except ssl.SSLError as e:
            conn.close()
            raise ClientError(f"TLS with {self.url} failed: {e}; check --cacert (and "
                              "--cert/--key for mutual TLS)", EXIT_UNREACHABLE) from None
        except OSError as e:
            conn.close()
            message = (f"procward does not answer at {self.url} ({e}); is it running? "
                       "Start it with `procward run`")
            if self.local:  # the address of a daemon that has gone, most likely
                raise NoDaemon(message, EXIT_UNREACHABLE,
                               f"procward does not answer at {self.url}") from None
            raise ClientError(message, EXIT_UNREACHABLE) from None

    def _read(self, method: str, path: str, body: object, timeout: float | None,
              accept: tuple[int, ...]) -> bytes:
        with self._send(method, path, body, timeout) as resp:
            data = resp.read()
        if resp.status not in accept:
            raise _http_error(resp.status, data)
        return data

    def call(self, method: str, path: str, body: object = None, *,
             accept: tuple[int, ...] = (200,), timeout: float | None = 60) -> Any:
        """JSON in and out; raise ClientError for a status not in ``accept``."""
        data = self._read(method, path, body, timeout, accept)
        return _maybe_json(data) if data else None

    def text(self, path: str) -> bytes:
        return self._read("GET", path, None, 60, (200,))

    def stream(self, path: str) -> Iterator[bytes]:
        """Yield the response line by line as it arrives (follow mode)."""
        with self._send("GET", path, None, None) as resp:
            if resp.status != 200:
                raise _http_error(resp.status, resp.read())
            try:
                yield from iter(resp.readline, b"")
            except (OSError, http.client.HTTPException):
                return  # the daemon went away: the stream simply ends


def segment(text: str) -> str:
    """``text`` percent-encoded as one segment of a URL path (a service name)."""
    return quote(text, safe="")


def _maybe_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _http_error(status: int, raw: bytes) -> ClientError:
    decoded = _maybe_json(raw)
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
