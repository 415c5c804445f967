"""`procward logs` and `procward events` with no daemon running: the files on disk, said so."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from procward.cli import EXIT_BAD_CONFIG

CONFIG = """
[services.web]
command = ["prog"]

[services.worker]
command = ["prog"]
instances = 2

[services.fresh]
command = ["prog"]

[services.merged]
command = ["prog"]
[services.merged.logs]
merge_stderr = true
"""


def _cli(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "procward", *argv, "-c",
                           str(root / "procward.toml")],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A configuration whose daemon is not running, and the logs a past run left."""
    (tmp_path / "procward.toml").write_text(CONFIG, encoding="utf-8")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "web.out.log").write_bytes(b"listening on 8000\nrequest 1\n")
    (logs / "web.err.log").write_bytes(b"Traceback (most recent call last):\nKeyError: 'x'\n")
    (logs / "worker@0.out.log").write_bytes(b"job 1\n")
    (logs / "worker@1.err.log").write_bytes(b"job 2 failed\n")
    (logs / "merged.out.log").write_bytes(b"out and err\n")
    return tmp_path


def test_logs_without_a_daemon_reads_both_streams_marked(root: Path) -> None:
    """With no daemon, `logs NAME` prints the files' last lines, stdout's then stderr's,
    each line marked with its stream, and says on stderr that it read the files."""
    out = _cli(root, "logs", "web")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "stdout | listening on 8000", "stdout | request 1",
        "stderr | Traceback (most recent call last):", "stderr | KeyError: 'x'"]
    assert "not running" in out.stderr
    assert f"reading the files in {root / 'logs'}" in out.stderr
    last = _cli(root, "logs", "web", "-n", "1")
    assert last.stdout.splitlines() == ["stdout | request 1", "stderr | KeyError: 'x'"]


def test_logs_stdout_or_stderr_picks_one_stream_unmarked(root: Path) -> None:
    """--stdout and --stderr each show one stream, without marks; both at once is refused."""
    assert _cli(root, "logs", "web", "--stdout").stdout == "listening on 8000\nrequest 1\n"
    assert _cli(root, "logs", "web", "--stderr").stdout == (
        "Traceback (most recent call last):\nKeyError: 'x'\n")
    assert _cli(root, "logs", "web", "--stdout", "--stderr").returncode == EXIT_BAD_CONFIG


def test_logs_of_merged_streams_and_of_instances(root: Path) -> None:
    """A service that merges stderr into stdout shows its one file unmarked; several
    instances are each named; one instance can be asked for; a service that never ran is
    said to have no files yet; an unknown name is an error."""
    assert _cli(root, "logs", "merged").stdout == "out and err\n"
    assert _cli(root, "logs", "merged", "--stderr").stdout == "out and err\n"
    assert _cli(root, "logs", "worker").stdout.splitlines() == [
        "[worker:0] stdout | job 1", "[worker:1] stderr | job 2 failed"]
    assert _cli(root, "logs", "worker:1").stdout == "stderr | job 2 failed\n"
    fresh = _cli(root, "logs", "fresh")
    assert (fresh.returncode, fresh.stdout) == (0, "")
    assert "(none written yet)" in fresh.stderr
    assert "(none written yet)" not in _cli(root, "logs", "web").stderr
    for name in ("nosuch", "worker:2", "web:0"):
        missing = _cli(root, "logs", name)
        assert missing.returncode == EXIT_BAD_CONFIG
        assert repr(name) in missing.stderr


def test_a_daemon_that_is_gone_leaves_the_files_to_read(root: Path) -> None:
    """An api.json left by a daemon that died (nothing answers at its address) is no
    obstacle: the files are read, and the message says nothing answered."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again at once: nothing listens there
    (root / "state").mkdir()
    (root / "state" / "api.json").write_text(json.dumps({"url": f"http://127.0.0.1:{port}"}))
    (root / "state" / "admin.token").write_text("t")
    out = _cli(root, "logs", "web", "--stderr")
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith("KeyError: 'x'\n")
    assert f"does not answer at http://127.0.0.1:{port}" in out.stderr


def test_a_disabled_api_leaves_the_files_to_read(root: Path) -> None:
    """With `[api] enabled = false` there is no daemon to ask: the files are read, and
    the message says why."""
    config = root / "procward.toml"
    config.write_text("[api]\nenabled = false\n" + config.read_text())
    out = _cli(root, "logs", "web", "--stdout", "-n", "1")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "request 1\n"
    assert "the control API is disabled" in out.stderr


def test_events_without_a_daemon_read_the_event_log(root: Path) -> None:
    """`events` reads procward.events.jsonl when no daemon runs: --json as written, else
    one readable line an event."""
    lines = [json.dumps({"time": 1_700_000_000 + i, "kind": "state", "service": "web",
                         "message": f"event {i}"}) for i in range(5)]
    (root / "logs" / "procward.events.jsonl").write_text("".join(f"{x}\n" for x in lines))
    raw = _cli(root, "events", "--json", "-n", "2")
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout.splitlines() == lines[-2:]
    human = _cli(root, "events", "-n", "3").stdout.splitlines()
    assert len(human) == 3
    assert human[-1].endswith("event 4") and " web " in human[-1]


@pytest.mark.skipif(sys.platform == "win32", reason="renames an open file")
def test_logs_follow_without_a_daemon_goes_on_across_rotation(root: Path) -> None:
    """`logs -f` with no daemon follows the files: new lines of both streams as they are
    written, and the new file once the old one is rotated away."""
    logs = root / "logs"
    follower = subprocess.Popen(
        [sys.executable, "-m", "procward", "logs", "web", "-f", "-n", "1", "-c",
         str(root / "procward.toml")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True)
    assert follower.stdout is not None

    def seen(count: int) -> list[str]:
        assert follower.stdout is not None
        got = []
        for _ in range(count):
            line = follower.stdout.readline()
            assert line, "the follow stream ended"
            got.append(line.rstrip("\n"))
        return got

    def append(name: str, data: bytes) -> None:
        with open(logs / name, "ab") as f:
            f.write(data)

    try:
        assert seen(2) == ["stdout | request 1", "stderr | KeyError: 'x'"]
        append("web.out.log", b"request 2\n")
        assert seen(1) == ["stdout | request 2"]
        append("web.err.log", b"warning\n")
        assert seen(1) == ["stderr | warning"]
        # Rotated as the engine rotates: renamed to .1, a new file in its place.
        append("web.out.log", b"last of the old file\n")
        os.replace(logs / "web.out.log", logs / "web.out.log.1")
        append("web.out.log", b"first of the new file\n")
        assert seen(2) == ["stdout | last of the old file", "stdout | first of the new file"]
    finally:
        follower.kill()
        follower.wait()
        follower.stdout.close()


@pytest.mark.skipif(sys.platform == "win32", reason="renames an open file")
def test_events_follow_without_a_daemon_prints_new_events(root: Path) -> None:
    """`events -f --json` with no daemon prints what is appended to the event log."""
    log = root / "logs" / "procward.events.jsonl"
    first = json.dumps({"time": 1, "kind": "state", "service": "web", "message": "one"})
    log.write_text(first + "\n")
    follower = subprocess.Popen(
        [sys.executable, "-m", "procward", "events", "-f", "--json", "-c",
         str(root / "procward.toml")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True)
    assert follower.stdout is not None
    try:
        assert follower.stdout.readline() == first + "\n"
        second = json.dumps({"time": 2, "kind": "exit", "service": "web", "message": "two"})
        with open(log, "a") as f:
            f.write(second + "\n")
        assert follower.stdout.readline() == second + "\n"
    finally:
        follower.kill()
        follower.wait()
        follower.stdout.close()
