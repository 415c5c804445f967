"""The notify listener with real programs: systemd datagrams, framed reports, strangers."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from procward._frames import Command, encode
from procward._os import PLATFORM
from procward.engine import EventKind, State
from procward.engine._notify import NotifyHub, Report
from procward.testing import make_config, python, supervised

SD_NOTIFY = hasattr(socket, "SO_PASSCRED")
needs_sd_notify = pytest.mark.skipif(not SD_NOTIFY, reason="systemd's notify socket is Linux-only")

# A Type=notify program as written for systemd: the socket module and nothing else.
SD_PROGRAM = """
    import os, socket, sys, time
    def notify(text):
        path = os.environ["NOTIFY_SOCKET"]
        if path.startswith("@"):
            path = "\\0" + path[1:]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(text.encode(), path)
    notify(f"MAINPID={os.getpid()}\\nSTATUS=loading")
    gate = sys.argv[1]
    while not os.path.exists(gate):
        time.sleep(0.05)
    notify("READY=1\\nSTATUS=serving requests")
    time.sleep(60)
"""


@needs_sd_notify
def test_a_notify_service_started_again_says_why_and_that_it_waits(  # type: ignore[no-untyped-def]
        tmp_path: Path, run) -> None:
    """A notify service started again after an early death says both why it was
    started and that it waits for READY."""
    gate, marker = tmp_path / "gate", tmp_path / "died-once"
    first_dies = textwrap.dedent("""
        import os, sys
        if not os.path.exists(sys.argv[2]):
            open(sys.argv[2], "w").close()
            sys.exit(3)
    """) + textwrap.dedent(SD_PROGRAM)
    cfg = make_config(tmp_path, {"sd": {"command": [*python(first_dies), str(gate), str(marker)],
                                        "notify": True, "backoff": {"initial": "0.1s"}}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait(EventKind.NOTIFY, report="mainpid")
            status = sup.status(["sd"])[0]
            assert status.state is State.STARTING
            assert status.reason == "retry after backoff; waiting for READY"
            gate.touch()
            await rec.wait_state("sd", "running")

    run(scenario())


@needs_sd_notify
def test_sd_notify_program_is_started_only_on_ready(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A program speaking sd_notify with the socket module stays starting until READY=1."""
    gate = tmp_path / "gate"
    cfg = make_config(tmp_path, {"sd": {"command": [*python(SD_PROGRAM), str(gate)],
                                        "notify": True, "start_seconds": 0.1}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            mainpid = await rec.wait(EventKind.NOTIFY, report="mainpid")
            status = sup.status(["sd"])[0]
            # Well past start_seconds, and still not started: READY has not come.
            assert status.state is State.STARTING and status.reason == "waiting for READY"
            assert status.status_text == "loading"
            assert mainpid[0].payload.main_pid == status.pid
            assert mainpid[0].payload.via == "sd_notify"
            gate.touch()
            await rec.wait_state("sd", "running")
            ready = rec.matching("sd", EventKind.NOTIFY, report="ready")
            running = rec.matching("sd", EventKind.STATE, state="running")
            assert ready and rec.events.index(ready[0]) < rec.events.index(running[0])
            status = sup.status(["sd"])[0]
            assert status.status_text == "serving requests"
            assert status.to_dict()["status_text"] == "serving requests"

    run(scenario())


@needs_sd_notify
def test_a_dead_programs_status_goes_with_it(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """While a service waits out its backoff, no process runs: the STATUS= of the
    one that died is not shown as if it still did."""
    dies = textwrap.dedent("""
        import os, socket, sys, time
        path = os.environ["NOTIFY_SOCKET"]
        if path.startswith("@"):
            path = "\\0" + path[1:]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(f"MAINPID={os.getpid()}\\nSTATUS=serving requests".encode(), path)
        time.sleep(1)  # time for the test to see the status while it runs
        sys.exit(3)
    """)
    cfg = make_config(tmp_path, {"sd": {"command": python(dies), "start_seconds": 5,
                                        "backoff": {"initial": "30s"}}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait(EventKind.NOTIFY, report="mainpid")
            status = sup.status(["sd"])[0]
            assert status.status_text == "serving requests"
            await rec.wait_state("sd", "backoff")
            status = sup.status(["sd"])[0]
            assert status.status_text is None

    run(scenario())


@needs_sd_notify
def test_children_get_their_own_notify_socket_not_the_daemons(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """The daemon's own NOTIFY_SOCKET and WATCHDOG_* never reach a child."""
    out = tmp_path / "env.txt"
    code = f"""
        import os
        with open({str(out)!r}, "w") as f:
            f.write(repr((os.environ.get("NOTIFY_SOCKET"), os.environ.get("WATCHDOG_PID"),
                          os.environ.get("PROCWARD_NOTIFY", "")[:6])))
    """
    cfg = make_config(tmp_path, {"envs": {"command": python(code), "restart": "never",
                                          "start_seconds": 0}})
    environ = {"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": "/run/systemd/notify",
               "WATCHDOG_PID": "1"}

    async def scenario() -> None:
        async with supervised(cfg, environ=environ) as (_, rec):
            await rec.wait_state("envs", "exited")
        notify_socket, watchdog_pid, framed = eval(out.read_text())
        assert notify_socket is not None and notify_socket != "/run/systemd/notify"
        assert watchdog_pid is None and framed == "tcp://"

    run(scenario())


@needs_sd_notify
def test_datagram_from_a_stranger_is_refused(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """READY=1 sent to NOTIFY_SOCKET by a process outside every service does not start one."""
    cfg = make_config(tmp_path, {"waits": {"command": python("import time; time.sleep(60)"),
                                           "notify": True}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait_state("waits", "starting")
            address = sup.notify_hub.sd_notify_address
            assert address is not None
            # Another process, not of the service's tree, claims to be ready.
            code = ("import socket,sys; a=sys.argv[1]; a='\\0'+a[1:] if a.startswith('@') "
                    "else a; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto("
                    "b'READY=1', a)")
            subprocess.run([sys.executable, "-c", code, address], check=True)
            rejected = await rec.wait(EventKind.NOTIFY_REJECTED)
            assert "belongs to no service" in rejected[0].message
            assert sup.status(["waits"])[0].state is State.STARTING
            assert sup.notify_hub.rejected >= 1

    run(scenario())


def _sender(port: int, frames: bytes) -> list[str]:
    """A separate process that connects to the listener and sends ``frames``."""
    code = ("import socket,sys,time; s=socket.create_connection(('127.0.0.1', int(sys.argv[1])));"
            "s.sendall(bytes.fromhex(sys.argv[2])); time.sleep(0.3); s.close()")
    return [sys.executable, "-c", code, str(port), frames.hex()]


def test_forged_frames_are_refused_and_others_unaffected(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """Frames without the secret, with a wrong one or damaged, are refused; a real report lands."""
    code = """
        import os, socket, sys, time, json, zlib, struct
        url = os.environ["PROCWARD_NOTIFY"]
        address, secret = url[len("tcp://"):].split("#")
        host, port = address.rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
        def frame(cmd, payload):
            body = json.dumps(payload).encode()
            return b"MS" + bytes([cmd]) + struct.pack("<II", len(body), zlib.crc32(body)) + body
        while not os.path.exists(sys.argv[1]):
            time.sleep(0.05)
        s.sendall(frame(2, {"secret": secret, "status": "one"}))
        s.sendall(frame(3, {"status": "two"}))
        time.sleep(60)
    """
    gate = tmp_path / "gate"
    cfg = make_config(tmp_path, {"real": {"command": [*python(code), str(gate)],
                                          "notify": True}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait_state("real", "starting")
            port = sup.notify_hub.port
            forged = [
                encode(Command.READY, {}),                          # no secret
                encode(Command.READY, {"secret": "guessed"}),       # wrong secret
                b"XX" + encode(Command.READY, {})[2:],              # bad magic
                encode(Command.READY, {"secret": "x"})[:-1] + b"!",  # bad CRC
                b"MS\x03\xff\xff\xff\xff\x00\x00\x00\x00",          # length over the limit
            ]
            procs = [subprocess.Popen(_sender(port, f)) for f in forged]
            for proc in procs:
                await asyncio.get_running_loop().run_in_executor(None, proc.wait)
            await rec.wait(EventKind.NOTIFY_REJECTED, count=len(forged))
            assert sup.notify_hub.rejected == len(forged)
            assert sup.status(["real"])[0].state is State.STARTING
            # The service's own connection, opened before the attack, still works.
            gate.touch()
            await rec.wait_state("real", "running")
            assert sup.status(["real"])[0].status_text == "two"
            assert sup.notify_hub.rejected == len(forged)

    run(scenario())


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    # For state that no event reports (connection counts, a status line).
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


def test_idle_connections_without_a_secret_are_capped(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """Past 64 connections that have shown no secret, a new one is closed at once."""
    cfg = make_config(tmp_path, {"idle": {"command": python("import time; time.sleep(60)")}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            port = sup.notify_hub.port
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(64)]
            await until(lambda: sup.notify_hub._unproven == 64)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(reader.read(1), 10) == b""  # closed by the hub
            refused = await rec.wait(EventKind.NOTIFY_REJECTED)
            assert "more than 64 connections" in refused[0].payload.reason
            writer.close()
            for _, w in held:
                w.close()
            # Room again once they are gone: a report with the secret still lands.
            secret = sup.instances()[0].setup.spec.env["PROCWARD_NOTIFY"].split("#")[1]
            await until(lambda: sup.notify_hub._unproven == 0)
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(encode(Command.STATUS, {"secret": secret, "status": "fine"}))
            await w.drain()
            await until(lambda: sup.status(["idle"])[0].status_text == "fine")
            w.close()

    run(scenario())


class _Listener:
    """A Reporter for a bare NotifyHub: keeps what it is told."""

    def __init__(self) -> None:
        self.name = "svc"
        self.pid: int | None = None
        self.reports: list[Report] = []

    def notified(self, report: Report) -> None:
        self.reports.append(report)


async def _garbage_then_good(garbage: bytes, state_dir: Path) -> tuple[int, list[Report]]:
    hub = NotifyHub(PLATFORM, state_dir, lambda event: None)
    await hub.start()
    try:
        listener = _Listener()
        secret = hub.register(listener)["PROCWARD_NOTIFY"].split("#")[1]
        # The good connection is open before the bad one, and used after it.
        _, good = await asyncio.open_connection("127.0.0.1", hub.port)
        _, bad = await asyncio.open_connection("127.0.0.1", hub.port)
        bad.write(garbage)
        await bad.drain()
        bad.close()
        await until(lambda: hub.rejected == 1)
        good.write(encode(Command.STATUS, {"secret": secret, "status": "still here"}))
        await good.drain()
        await until(lambda: bool(listener.reports))
        good.close()
        return hub.rejected, listener.reports
    finally:
        await hub.close()


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=64).filter(lambda b: b[:2] != b"MS")
       | st.builds(lambda cmd, tail: b"MS" + bytes([cmd]) + tail,
                   st.integers(0, 255), st.binary(min_size=8, max_size=40)))
def test_listener_survives_any_bytes(garbage: bytes) -> None:
    """Whatever a stranger sends, it gets no report in, and a good connection still works."""
    with tempfile.TemporaryDirectory() as tmp:
        rejected, reports = asyncio.run(_garbage_then_good(garbage, Path(tmp)))
    assert [r.status for r in reports] == ["still here"]
    assert rejected == 1


@needs_sd_notify
def test_mainpid_must_name_a_process_of_the_service(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """MAINPID naming a process outside the service's tree is refused; its own is taken."""
    code = """
        import os, socket, time
        path = os.environ["NOTIFY_SOCKET"]
        path = "\\0" + path[1:] if path.startswith("@") else path
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.sendto(f"MAINPID={os.getppid()}".encode(), path)   # the daemon: not ours
        time.sleep(0.2)
        s.sendto(f"MAINPID={os.getpid()}".encode(), path)
        time.sleep(60)
    """
    cfg = make_config(tmp_path, {"m": {"command": python(code)}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            refused = await rec.wait(EventKind.NOTIFY_REJECTED, "m")
            assert "is not a process of this service" in refused[0].message
            taken = await rec.wait(EventKind.NOTIFY, "m", report="mainpid")
            assert taken[0].payload.main_pid == sup.status(["m"])[0].pid

    run(scenario())
