"""The notify listener: where supervised programs report READY, status, heartbeats, STOPPING.

Two doors, one meaning:

- the framed protocol (``procward._frames``) on a loopback TCP port, on every
  OS. Each instance has a secret of its own, given to its children in
  ``PROCWARD_NOTIFY``; the first frame of a connection must carry it, and the
  connection then speaks for that instance only.
- on Linux, systemd's datagram protocol on one ``NOTIFY_SOCKET`` for all
  children. The kernel tells us the sender's pid (SO_PASSCRED), and a report
  counts only if that pid is in the session (or process tree) of an instance
  we started; the message itself cannot claim to be anyone.

A bad frame or a stranger's datagram is refused and counted; the connection
that sent it is closed, and no other connection notices.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

from procward._frames import HEADER_SIZE, Command, FrameError, decode_header, decode_payload
from procward._os import NotifySocket, Platform
from procward.engine._events import DaemonNote, Event, NotifyRejection

__all__ = ["NotifyHub", "Report", "Reporter"]

# A connection must say who it is this soon, or it is dropped: an idle socket
# from a stranger must not be held open forever.
_FIRST_FRAME_TIMEOUT = 10.0
# Connections that have not yet shown a secret, at most: past this a new one is
# closed at once, so a local process cannot tie up the daemon with idle sockets.
_MAX_UNPROVEN = 64
# At most this many notify_rejected events a second, so a flood of bad connections
# cannot flood the event log; each event's count says how many were refused in all.
_REJECT_EVENTS_PER_SECOND = 10
_LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Report:
    """One report from a program, whichever door it came through."""

    kind: str  # ready | status | heartbeat | stopping | mainpid
    pid: int
    via: str  # framed | sd_notify
    status: str | None = None
    main_pid: int | None = None


class Reporter(Protocol):
    """What the hub needs of an instance: its name, its main pid, where reports go."""

    name: str

    @property
    def pid(self) -> int | None: ...

    def notified(self, report: Report) -> None: ...


_SD_KINDS = {"READY=1": "ready", "WATCHDOG=1": "heartbeat", "STOPPING=1": "stopping"}


def parse_sd_notify(data: bytes, pid: int) -> list[Report]:
    """The reports in one systemd notify datagram (``KEY=VALUE`` lines); others ignored."""
    reports: list[Report] = []
    for raw in data.decode("utf-8", "replace").split("\n"):
        line = raw.strip("\r")
        if line in _SD_KINDS:
            reports.append(Report(_SD_KINDS[line], pid, "sd_notify"))
        elif line.startswith("STATUS="):
            reports.append(Report("status", pid, "sd_notify", status=line[len("STATUS="):]))
        elif line.startswith("MAINPID=") and line[len("MAINPID="):].isdigit():
            reports.append(Report("mainpid", pid, "sd_notify", main_pid=int(line[8:])))
    return reports


def in_tree(pid: int, root: int) -> bool:
    """Whether ``pid`` is ``root`` or one of its descendants (by ancestry, now)."""
    if pid == root:
        return True
    try:
        return any(parent.pid == root for parent in psutil.Process(pid).parents())
    except psutil.Error:
        return False


class NotifyHub:
    """Listens for reports from every instance and hands each to the instance it is from."""

    def __init__(self, platform: Platform, state_dir: Path,
                 emit: Callable[[Event], None]) -> None:
        self._platform = platform
        self._state_dir = state_dir
        self._emit = emit
        # Looked up by the secret itself: str hashes are keyed at random per
        # process, so the lookup's timing tells an outsider nothing usable.
        self._by_secret: dict[str, Reporter] = {}
        self._secrets: dict[Reporter, str] = {}  # in the order they registered
        self._server: asyncio.Server | None = None
        self._datagrams: NotifySocket | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._unproven = 0
        self.port = 0
        self.rejected = 0
        self._reject_second = 0
        self._reject_events = 0

    # -- set up and tear down -------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, _LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            self._datagrams = self._platform.open_notify_socket(self._state_dir)
        except OSError as e:
            self._emit(Event.of(DaemonNote(error=str(e)), f"no NOTIFY_SOCKET for children: {e}"))
        if self._datagrams is not None:
            asyncio.get_running_loop().add_reader(self._datagrams.fileno(), self._on_datagram)

    async def close(self) -> None:
        if self._datagrams is not None:
            asyncio.get_running_loop().remove_reader(self._datagrams.fileno())
            self._datagrams.close()
            self._datagrams = None
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    # -- instances ------------------------------------------------------------

    def register(self, reporter: Reporter) -> dict[str, str]:
        """Take reports for ``reporter``; return the environment its children need."""
        secret = base64.urlsafe_b64encode(os.urandom(24)).decode("ascii")
        self._by_secret[secret] = reporter
        self._secrets[reporter] = secret
        env = {"PROCWARD_NOTIFY": f"tcp://{_LOOPBACK}:{self.port}#{secret}"}
        if self._datagrams is not None:
            env["NOTIFY_SOCKET"] = self._datagrams.address
        return env

    @property
    def sd_notify_address(self) -> str | None:
        """The NOTIFY_SOCKET children get, or None where there is none."""
        return None if self._datagrams is None else self._datagrams.address

    def unregister(self, reporter: Reporter) -> None:
        secret = self._secrets.pop(reporter, None)
        if secret is not None:
            del self._by_secret[secret]

    # -- the framed protocol --------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        peer = writer.get_extra_info("peername")
        reporter: Reporter | None = None
        self._unproven += 1
        try:
            if self._unproven > _MAX_UNPROVEN:
                raise FrameError(f"more than {_MAX_UNPROVEN} connections without a secret yet")
            while True:
                try:
                    if reporter is None:
                        header = await asyncio.wait_for(reader.readexactly(HEADER_SIZE),
                                                        _FIRST_FRAME_TIMEOUT)
                    else:
                        header = await reader.readexactly(HEADER_SIZE)
                except asyncio.IncompleteReadError as e:
                    if e.partial:
                        raise FrameError("connection closed inside a frame header") from None
                    return  # a clean end between frames
                command, length, crc = decode_header(header)
                try:
                    body = await reader.readexactly(length)
                except asyncio.IncompleteReadError:
                    raise FrameError("connection closed inside a payload") from None
                frame = decode_payload(command, body, crc)
                if reporter is None:
                    secret = frame.payload.get("secret")
                    if isinstance(secret, str):
                        reporter = self._by_secret.get(secret)
                    if reporter is None:
                        raise FrameError("the first frame carries no valid secret")
                    self._unproven -= 1
                pid = frame.payload.get("pid")
                self._deliver(reporter, self._framed_report(frame.command, frame.payload,
                                                            pid if isinstance(pid, int) else 0))
        except FrameError as e:
            self._reject(str(e), None if reporter is None else reporter.name, peer)
        except TimeoutError:
            self._reject("no frame within "
                         f"{_FIRST_FRAME_TIMEOUT:g}s of connecting", None, peer)
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            if reporter is None:
                self._unproven -= 1
            with contextlib.suppress(Exception):
                writer.close()
            if task is not None:
                self._connections.discard(task)

    @staticmethod
    def _framed_report(command: Command, payload: dict[str, object], pid: int) -> Report:
        text = payload.get("status")
        status = text if isinstance(text, str) else None
        kind = {Command.HEARTBEAT: "heartbeat", Command.STATUS: "status",
                Command.READY: "ready", Command.STOPPING: "stopping"}[command]
        return Report(kind, pid, "framed", status=status)

    # -- systemd's datagrams --------------------------------------------------

    def _on_datagram(self) -> None:
        if self._datagrams is None:
            return
        for data, pid, session in self._datagrams.receive():
            reporter = self._owner(pid, session)
            if reporter is None:
                self._reject(f"datagram from pid {pid}, which belongs to no service", None, pid)
                continue
            for report in parse_sd_notify(data, pid):
                if report.main_pid is not None and (
                    reporter.pid is None or not in_tree(report.main_pid, reporter.pid)
                ):
                    # MAINPID may only name a process of the sender's own service.
                    self._reject(f"MAINPID={report.main_pid} is not a process of this service",
                                 reporter.name, pid)
                    continue
                self._deliver(reporter, report)

    def _owner(self, pid: int, session: int | None) -> Reporter | None:
        if pid <= 0:
            return None
        # Each child leads its own session; helpers it starts stay in it.
        for reporter in self._secrets:
            if reporter.pid is not None and reporter.pid in (pid, session):
                return reporter
        for reporter in self._secrets:
            if reporter.pid is not None and in_tree(pid, reporter.pid):
                return reporter
        return None

    # -- both -----------------------------------------------------------------

    def _deliver(self, reporter: Reporter, report: Report) -> None:
        reporter.notified(report)

    def _reject(self, reason: str, service: str | None, peer: object) -> None:
        self.rejected += 1
        second = int(time.monotonic())
        if second != self._reject_second:
            self._reject_second, self._reject_events = second, 0
        self._reject_events += 1
        if self._reject_events <= _REJECT_EVENTS_PER_SECOND:
            self._emit(Event.of(NotifyRejection(reason, str(peer), self.rejected),
                                f"refused a report: {reason}", service))
