"""Report readiness, heartbeats and status from a supervised program to procward.

    from procward import notify

    notify.ready()                  # started: with notify = true, procward waits for this
    notify.status("synced 120 files")
    notify.heartbeat()              # for a heartbeat health check
    notify.stopping()

Each call returns True if the report was sent, and False, doing nothing,
when the program is not supervised. Under procward the reports go over the
framed loopback protocol named by ``PROCWARD_NOTIFY``; under systemd alone
(``NOTIFY_SOCKET`` set, no ``PROCWARD_NOTIFY``) they go as systemd's own
``READY=1``/``STATUS=``/``WATCHDOG=1``/``STOPPING=1`` datagrams. A call never
raises: a report must not take a program down.

Importing this module costs only the standard library.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from procward._frames import Command, encode

__all__ = ["heartbeat", "is_supervised", "ready", "status", "stopping"]

_TIMEOUT = 2.0


def _parse(value: str) -> tuple[str, int, str] | None:
    """``tcp://HOST:PORT#SECRET`` as ``(host, port, secret)``; None if malformed."""
    if not value.startswith("tcp://"):
        return None
    address, _, secret = value[len("tcp://"):].partition("#")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not secret:
        return None
    return host.strip("[]"), int(port), secret


class _Framed:
    """One loopback TCP connection to procward; the first frame carries the secret."""

    def __init__(self, host: str, port: int, secret: str) -> None:
        self._address = (host, port)
        self._secret = secret
        self._sock: socket.socket | None = None
        self._pid = 0

    def send(self, command: Command, payload: dict[str, Any]) -> bool:
        payload = {**payload, "pid": os.getpid()}
        # Two tries: a connection the daemon dropped (it restarted) is opened again once.
        for _ in range(2):
            try:
                sock = self._connected(payload)
                sock.sendall(encode(command, payload))
                return True
            except (OSError, ValueError):
                self._close()
        return False

    def _connected(self, payload: dict[str, Any]) -> socket.socket:
        # A forked child must not write into its parent's connection.
        if self._sock is not None and self._pid == os.getpid():
            return self._sock
        self._sock = None
        sock = socket.create_connection(self._address, timeout=_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._pid = sock, os.getpid()
        payload["secret"] = self._secret
        return sock

    def _close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None


_SD_WORDS = {
    Command.READY: "READY=1",
    Command.HEARTBEAT: "WATCHDOG=1",
    Command.STOPPING: "STOPPING=1",
}


class _SystemdSocket:
    """systemd's notify datagram socket, for a program run by systemd without procward."""

    def __init__(self, path: str) -> None:
        # A leading '@' names an abstract socket (Linux): a NUL byte on the wire.
        self._path = "\0" + path[1:] if path.startswith("@") else path

    def send(self, command: Command, payload: dict[str, Any]) -> bool:
        lines = [_SD_WORDS[command]] if command in _SD_WORDS else []
        if "status" in payload:
            lines.append("STATUS=" + str(payload["status"]).replace("\n", " "))
        # Chosen by capability: AF_UNIX datagrams exist where systemd does.
        family = getattr(socket, "AF_UNIX", None)
        if family is None or not lines:
            return False
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(lines).encode("utf-8"), self._path)
            return True
        except OSError:
            return False


class _Current:
    """The channel the environment names, found again only when the environment changes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._seen: tuple[str | None, str | None] | None = None
        self._channel: _Framed | _SystemdSocket | None = None

    def channel(self) -> _Framed | _SystemdSocket | None:
        seen = (os.environ.get("PROCWARD_NOTIFY"), os.environ.get("NOTIFY_SOCKET"))
        if seen != self._seen:
            self._seen = seen
            framed = _parse(seen[0]) if seen[0] else None
            if framed is not None:
                self._channel = _Framed(*framed)
            elif seen[1]:
                self._channel = _SystemdSocket(seen[1])
            else:
                self._channel = None
        return self._channel


_current = _Current()


def _send(command: Command, payload: dict[str, Any]) -> bool:
    # One lock: a report from two threads must not interleave bytes of two frames.
    with _current.lock:
        channel = _current.channel()
        return channel.send(command, payload) if channel is not None else False


def is_supervised() -> bool:
    """True when procward (or systemd) is listening for this program's reports."""
    with _current.lock:
        return _current.channel() is not None


def ready(status: str | None = None) -> bool:
    """Say the program has started and serves; optionally with a status line."""
    return _send(Command.READY, {} if status is None else {"status": status})


def status(text: str) -> bool:
    """Set the one-line status shown by ``procward status`` and the API."""
    return _send(Command.STATUS, {"status": text})


def heartbeat() -> bool:
    """Say the program is alive (for ``health.heartbeat``; systemd: ``WATCHDOG=1``)."""
    return _send(Command.HEARTBEAT, {})


def stopping() -> bool:
    """Say the program is shutting down on purpose."""
    return _send(Command.STOPPING, {})
