"""The notify SDK: light to import, silent when unsupervised, heard by procward when supervised."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from procward.engine import EventKind, State
from procward.testing import make_config, supervised


def sdk_program(code: str) -> list[str]:
    """A child running ``code`` that can import procward (not isolated, unlike ``python``)."""
    import textwrap

    return [sys.executable, "-c", textwrap.dedent(code)]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PROCWARD_NOTIFY", "NOTIFY_SOCKET")}


def test_public_names() -> None:
    from procward import notify

    assert notify.__all__ == ["heartbeat", "is_supervised", "ready", "status", "stopping"]


def test_import_costs_only_the_standard_library() -> None:
    """``from procward import notify`` loads nothing outside the standard library and procward."""
    code = ("import sys, json; before = set(sys.modules); from procward import notify; "
            "print(json.dumps(sorted(set(sys.modules) - before)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env=_clean_env())
    loaded = {name.split(".")[0] for name in json.loads(done.stdout)}
    foreign = {n for n in loaded if n not in sys.stdlib_module_names and n != "procward"}
    assert not foreign, foreign
    assert "pydantic" not in loaded and "psutil" not in loaded


def test_calls_are_no_ops_when_not_supervised() -> None:
    """Without PROCWARD_NOTIFY or NOTIFY_SOCKET every call returns False and does nothing."""
    code = ("from procward import notify; print([notify.is_supervised(), notify.ready(), "
            "notify.status('x'), notify.heartbeat(), notify.stopping()])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env=_clean_env())
    assert done.stdout.strip() == "[False, False, False, False, False]"


def test_a_listener_that_is_gone_does_not_raise() -> None:
    """A PROCWARD_NOTIFY naming a closed port: calls return False, the program carries on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**_clean_env(), "PROCWARD_NOTIFY": f"tcp://127.0.0.1:{port}#secret"}
    code = "from procward import notify; print(notify.ready(), notify.heartbeat())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env=env)
    assert done.stdout.strip() == "False False"


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs AF_UNIX datagrams")
def test_under_systemd_alone_it_speaks_sd_notify(tmp_path: Path) -> None:
    """With only NOTIFY_SOCKET set, ready/status/heartbeat/stopping arrive as systemd's words."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.settimeout(10)
        env = {**_clean_env(), "NOTIFY_SOCKET": str(path)}
        code = ("from procward import notify; notify.ready('up'); notify.status('busy'); "
                "notify.heartbeat(); notify.stopping()")
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        got = [listener.recv(4096).decode() for _ in range(4)]
    assert got == ["READY=1\nSTATUS=up", "STATUS=busy", "WATCHDOG=1", "STOPPING=1"]


def test_sdk_over_the_framed_protocol(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """Under procward the SDK's ready() gates the start, and status() shows in the status."""
    gate = tmp_path / "gate"
    code = f"""
        import os, time
        from procward import notify
        notify.status("warming up")
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.05)
        notify.ready("serving")
        notify.stopping()
        time.sleep(60)
    """
    # The child has both variables; the SDK prefers the framed channel of PROCWARD_NOTIFY.
    cfg = make_config(tmp_path, {"sdk": {"command": sdk_program(code), "notify": True,
                                         "start_seconds": 0.1}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait_state("sdk", "starting")
            gate.touch()
            await rec.wait_state("sdk", "running")
            ready = rec.matching("sdk", EventKind.NOTIFY, report="ready")
            assert ready and ready[0].fields["via"] == "framed"
            await rec.wait_for(lambda e: e.kind is EventKind.NOTIFY
                               and e.fields["report"] == "stopping")
            status = sup.status(["sdk"])[0]
            assert status.state is State.RUNNING and status.status_text == "serving"
            assert sup.notify_hub.rejected == 0

    run(scenario())
