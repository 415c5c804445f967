"""How the CLI finds a running daemon and talks to it.

Local by default: the configuration file names the state dir, where the
daemon keeps ``api.json`` (its URL while it runs) and ``admin.token``. The
file is read with ``tomllib`` alone — no validation, no pydantic — and what
it says about the state dir and the API is kept in the user's cache folder,
keyed by the file's path, size, modification time and inode: the next command
against an unchanged file reads no TOML at all. ``--url`` / ``$PROCWARD_URL``
and ``--token`` / ``$PROCWARD_TOKEN`` reach another host.

This module, and what it imports, stays off ``typing``, ``pathlib``,
``urllib`` and ``tomllib`` on the way to a request: on a small machine each
costs ``procward status`` several milliseconds of a budget of tens.

HTTP is the few lines of ``_http``: one short request does not need a client
library, and importing one would cost more than the request.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from procward.cli import EXIT_BAD_CONFIG, EXIT_FAILED, EXIT_UNREACHABLE
from procward.cli._common import add_config_options
from procward.cli._http import HttpError, Response, request
from procward.errors import ClientError

TYPE_CHECKING = False  # mypy reads this as True

if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

__all__ = ["ApiClient", "ClientError", "add_client_options", "connect", "fail",
           "locate_state_dir", "quote", "split_url"]


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


class _Located:
    """What the configuration says about finding its daemon."""

    __slots__ = ("api", "config", "state_dir")

    def __init__(self, config: str, state_dir: str, api: dict[str, Any]) -> None:
        self.config = config
        self.state_dir = state_dir
        self.api = api


# The cache of what configuration files say about their daemon: entries beyond
# this many (the least recently written) are dropped.
_CACHE_NAME = "locations.json"
_CACHE_ENTRIES = 50


def _read_config(args: argparse.Namespace) -> _Located:
    from procward.config._paths import config_path_text

    path = config_path_text(args.config)
    profile = args.profile or os.environ.get("PROCWARD_PROFILE") or ""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise _no_config(path) from None
    except OSError as e:
        raise ClientError(f"cannot read {path}: {e}", EXIT_BAD_CONFIG) from None
    key = os.path.abspath(path)
    stamp = [st.st_mtime_ns, st.st_size, st.st_ino]
    cache = _load_cache()
    entry = cache.get(key)
    if isinstance(entry, dict) and entry.get("stamp") == stamp and \
            entry.get("profile") == profile and isinstance(entry.get("api"), dict):
        return _Located(path, str(entry["state_dir"]), entry["api"])
    found, cacheable = _parse_config(path, profile)
    stale = cache.pop(key, None) is not None
    if cacheable:
        cache[key] = {"stamp": stamp, "profile": profile, "state_dir": found.state_dir,
                      "api": found.api}
    if cacheable or stale:
        _store_cache(dict(list(cache.items())[-_CACHE_ENTRIES:]))
    return found


def _no_config(path: str) -> ClientError:
    return ClientError(f"no configuration at {path}: pass -c FILE, or --url to reach a "
                       "daemon elsewhere", EXIT_BAD_CONFIG)


def _parse_config(path: str, profile: str) -> tuple[_Located, bool]:
    """Read the file with tomllib; the bool says whether the answer may be cached (it
    may not when a value it used names an environment variable)."""
    import tomllib

    from procward.config._interpolate import interpolate

    try:
        with open(path, encoding="utf-8") as f:
            data = tomllib.loads(f.read())
    except FileNotFoundError:
        raise _no_config(path) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ClientError(f"cannot read {path}: {e}; `procward check` says more",
                          EXIT_BAD_CONFIG) from None
    daemon = dict(data.get("procward") or {})
    api = dict(data.get("api") or {})
    overlay = (data.get("profiles") or {}).get(profile) if profile else None
    if isinstance(overlay, dict):
        daemon.update(overlay.get("procward") or {})
        api.update(overlay.get("api") or {})
    cacheable = True

    def text(value: object, default: str) -> str:
        nonlocal cacheable
        if not isinstance(value, str):
            return default
        cacheable = cacheable and "$" not in value
        return interpolate(value, os.environ)[0]

    base = os.path.dirname(os.path.abspath(path))
    # As the loader does: abspath, not realpath (the user's symlinks are kept).
    state_dir = os.path.abspath(os.path.join(base, text(daemon.get("state_dir"), "state")))
    resolved = {k: text(v, "") if isinstance(v, str) else v for k, v in api.items()}
    return _Located(path, state_dir, resolved), cacheable


def _cache_path() -> str | None:
    from procward.config._paths import user_cache_dir

    folder = user_cache_dir()
    return os.path.join(folder, _CACHE_NAME) if folder else None


def _load_cache() -> dict[str, Any]:
    path = _cache_path()
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}  # none yet, or damaged: it is only a cache
    return data if isinstance(data, dict) else {}


def _store_cache(data: dict[str, Any]) -> None:
    path = _cache_path()
    if path is None:
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError):
        # A read-only home (or a value JSON cannot hold, such as a TOML date in
        # [api], which `procward check` refuses) costs only the speed-up.
        try:
            os.unlink(tmp)
        except OSError:
            pass


def locate_state_dir(args: argparse.Namespace) -> Path:
    from pathlib import Path

    return Path(_read_config(args).state_dir)


class _Target:
    """Where to send requests, with which token, trusting which CA."""

    __slots__ = ("cafile", "local", "token", "url")

    def __init__(self, url: str, token: str, cafile: str | None, local: bool) -> None:
        self.url = url
        self.token = token
        self.cafile = cafile
        self.local = local


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
    info_path = os.path.join(found.state_dir, "api.json")
    try:
        with open(info_path, encoding="utf-8") as f:
            info = json.load(f)
        url = str(info["url"])
        cafile = cafile or info.get("cafile")
    except FileNotFoundError:
        raise ClientError(f"procward is not running for {found.config} (no api.json in "
                          f"{found.state_dir}); start it with `procward run`",
                          EXIT_UNREACHABLE) from None
    except PermissionError:
        raise _unreadable(info_path) from None
    except (OSError, ValueError, KeyError, TypeError):
        raise ClientError(f"{info_path} is damaged; restart the daemon or pass --url",
                          EXIT_UNREACHABLE) from None
    token = args.token
    if not token:
        token_path = os.path.join(found.state_dir, "admin.token")
        try:
            with open(token_path, encoding="utf-8") as f:
                token = f.read().strip()
        except PermissionError:
            raise _unreadable(token_path) from None
        except OSError:
            raise ClientError(f"no admin token at {token_path}; pass --token",
                              EXIT_FAILED) from None
    return _Target(url, token, cafile, True)


def _unreadable(path: str) -> ClientError:
    return ClientError(f"cannot read {path}: it belongs to the user that runs procward; run "
                       "this as that user (or with sudo / an elevated prompt), or pass a token "
                       "of your own with --token (`procward token new NAME` makes one)",
                       EXIT_FAILED)


class ApiClient:
    """One daemon's API; each call is one request on a fresh connection."""

    def __init__(self, target: _Target, cert: str | None = None, key: str | None = None) -> None:
        self.url = target.url
        self._token = target.token
        parts = split_url(target.url)
        if parts is None:
            raise ClientError(f"not an http(s) URL: {target.url!r}", EXIT_BAD_CONFIG)
        scheme, self._host, port, path = parts
        self._https = scheme == "https"
        self._port = port or (443 if self._https else 80)
        self._prefix = path.rstrip("/")
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


# URLs by hand: ``urllib.parse`` imports ``ipaddress`` and costs ``procward status``
# more than parsing the one kind of URL it is given.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def split_url(url: str) -> tuple[str, str, int | None, str] | None:
    """``(scheme, host, port or None, path)`` of an http(s) URL; None if it is not one.

    ``http://[::1]:9771/x`` gives ``("http", "::1", 9771, "/x")``; a query or
    fragment is dropped, user info is refused.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        return None
    for mark in "?#":
        rest = rest.split(mark, 1)[0]
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        return None
    if netloc.startswith("["):
        host, bracket, after = netloc[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            return None
        port_text = after[1:]
    else:
        host, _, port_text = netloc.partition(":")
    port: int | None = None
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            return None
        port = int(port_text)
    if not host:
        return None
    return scheme, host.lower(), port, slash + path


def quote(text: str) -> str:
    """``text`` percent-encoded for one segment of a URL path (nothing is left unescaped
    but letters, digits and ``-._~``)."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode("utf-8"))
