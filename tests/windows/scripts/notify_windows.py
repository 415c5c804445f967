"""The Windows side of tests/windows/test_notify_wine.py: run by a Windows python under Wine.

A real Supervisor (Proactor loop, as the daemon runs) supervises a program
that reports through the SDK (``from procward import notify``) over the framed
loopback protocol; another process sends frames with a guessed secret. Beside
it, an HTTP server with an http probe, a program with a command probe, and an
alert rule whose command sink writes a file. One JSON object is printed: what
the Linux test asserts on.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from procward._frames import Command, encode
from procward._os import PLATFORM
from procward.engine import EventKind, State
from procward.testing import make_config, supervised

CHILD = """
import os, sys, time
from procward import notify
notify.status("warming up")
while not os.path.exists(sys.argv[1]):
    notify.heartbeat()  # the Wine steps before the gate can outlast the start period
    time.sleep(0.05)
notify.ready("serving")
while True:
    notify.heartbeat()
    time.sleep(0.1)
"""

FORGER = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(bytes.fromhex(sys.argv[2]))
s.close()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def main() -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="procward-notify-"))
    gate, alert_out = root / "gate", root / "alert.rule"
    port = free_port()
    probe = {"interval": "0.3s", "timeout": "5s", "start_period": "30s"}
    # The sink gets every alert, built-in ones too (a start slowed by the machine
    # can make one, with no lines): each kind writes a file of its own.
    sink = [sys.executable, "-c",
            "import os, sys; path = sys.argv[1] + '.' + os.environ['PROCWARD_ALERT_KIND']; "
            "open(path, 'w').write(os.environ['PROCWARD_ALERT_LINES'])",
            str(root / "alert")]
    cfg = make_config(root, {
        "sdk": {"command": [sys.executable, "-c", CHILD, str(gate)], "notify": True,
                "start_seconds": 0.1,
                "health": {"heartbeat": "2s", "interval": "0.2s", "start_period": "30s"}},
        "web": {"command": [sys.executable, "-u", "-m", "http.server", str(port),
                            "--bind", "127.0.0.1"],
                "health": {"http": f"http://127.0.0.1:{port}/", **probe}},
        "job": {"command": [sys.executable, "-u", "-c",
                            "import time; print('job ERROR 42', flush=True); time.sleep(120)"],
                "health": {"command": [sys.executable, "-c", "import sys; sys.exit(0)"], **probe},
                "alerts": [{"pattern": r"ERROR \d+", "actions": ["file"]}]},
    }, alerts={"sinks": {"file": {"type": "command", "command": sink}}})
    async with supervised(cfg) as (sup, rec):
        await rec.wait_state("sdk", "starting", timeout=60)
        port = sup.notify_hub.port
        forged = [encode(Command.READY, {"secret": "guessed"}), b"XX" + b"\0" * 20]
        loop = asyncio.get_running_loop()
        for frame in forged:
            await loop.run_in_executor(None, lambda f=frame: subprocess.run(
                [sys.executable, "-c", FORGER, str(port), f.hex()], check=True))
        await rec.wait_for(lambda e: e.kind is EventKind.NOTIFY_REJECTED, count=len(forged),
                           timeout=60)
        # A Windows python under Wine now and then dies in DLL initialisation
        # before running a line, and procward starts it again after a backoff:
        # look at the service once a live copy has reported its status (a dead
        # copy's status line stays during the backoff; a spawn clears it).
        deadline = loop.time() + 60
        while loop.time() < deadline:
            now = sup.status(["sdk"])[0]
            if now.state is State.STARTING and now.status_text == "warming up":
                break
            await asyncio.sleep(0.05)
        before_gate = sup.status(["sdk"])[0]
        exits_before_gate = len(rec.matching("sdk", EventKind.EXIT))
        gate.touch()
        await rec.wait_state("sdk", "running", timeout=60)
        await rec.wait_for(lambda e: e.kind is EventKind.HEALTH
                           and e.fields["health"] == "healthy", timeout=60)
        for name in ("web", "job"):
            await rec.wait_for(lambda e, n=name: e.service == n and e.kind is EventKind.HEALTH
                               and e.fields["health"] == "healthy", timeout=60)
        await rec.wait_for(lambda e: e.kind is EventKind.ALERT, timeout=60)
        deadline = loop.time() + 90
        while not (alert_out.exists() and alert_out.read_text()) and loop.time() < deadline:
            await asyncio.sleep(0.1)  # the sink is a separate process writing a file
        status = sup.status(["sdk"])[0]
        ready = rec.matching("sdk", EventKind.NOTIFY, report="ready")
        running = rec.matching("sdk", EventKind.STATE, state="running")
        try:
            PLATFORM.system_log("procward test: an eventlog sink line", error=True)
            eventlog = "ok"
        except OSError as e:
            eventlog = str(e)
        return {
            "eventlog": eventlog,
            "web_health": sup.status(["web"])[0].health,
            "job_health": sup.status(["job"])[0].health,
            "alert_lines": alert_out.read_text() if alert_out.exists() else None,
            # For the assertions' messages: every alert, and how the sdk's runs ended.
            "alerts": [e.message for e in rec.events
                       if e.kind in (EventKind.ALERT, EventKind.ALERT_FAILED)],
            "sdk_exits": [e.message for e in rec.matching("sdk", EventKind.EXIT)],
            "sdk_exits_before_gate": exits_before_gate,
            "state_before_ready": str(before_gate.state),
            "reason_before_ready": before_gate.reason,
            "status_text_before_ready": before_gate.status_text,
            "ready_via": ready[0].fields["via"] if ready else None,
            "ready_before_running": bool(ready and running)
            and rec.events.index(ready[0]) < rec.events.index(running[0]),
            "state": str(status.state),
            "status_text": status.status_text,
            "health": status.health,
            "rejected": sup.notify_hub.rejected,
            "has_notify_socket": sup.notify_hub.sd_notify_address is not None,
        }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())), flush=True)
