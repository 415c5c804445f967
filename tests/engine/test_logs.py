"""Log capture: complete, ordered, never split at rotation, and harmless when the disk fails."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from procward.config import LogSettings
from procward.engine import EventKind, LogDropped, LogResumed, Payload, State
from procward.engine._logs import LogWriter, RotationWorker
from procward.testing import make_config, python, supervised


def _rotated_in_order(log: Path) -> list[Path]:
    """The files of one log, oldest first: .N … .1, then the live file."""
    numbered = sorted(
        (p for p in log.parent.glob(log.name + ".*") if p.name.rsplit(".", 1)[-1].isdigit()),
        key=lambda p: int(p.name.rsplit(".", 1)[-1]), reverse=True)
    return [*numbered, log]


def test_200000_lines_through_rotation_arrive_complete_and_in_order(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """Every line a child writes lands in the rotated files, whole, once, and in order."""
    lines = 200_000
    # 64 kB writes of 100-byte lines, like a busy service; the size limit falls mid-line.
    code = f"""
        import os
        buf = []
        for i in range({lines}):
            buf.append(b'%08d ' % i + b'x' * 90 + b'\\n')
            if len(buf) == 655:
                os.write(1, b''.join(buf)); buf = []
        os.write(1, b''.join(buf))
    """
    cfg = make_config(tmp_path, {"chatty": {
        "command": python(code), "restart": "never", "start_seconds": 0,
        "logs": {"max_size": "333KB", "keep": 1000}}})

    async def scenario() -> None:
        async with supervised(cfg) as (_, rec):
            await rec.wait_state("chatty", "exited")

    run(scenario())
    files = _rotated_in_order(tmp_path / "logs" / "chatty.out.log")
    assert len(files) > 50
    seen = 0
    for f in files:
        data = f.read_bytes()
        assert data.endswith(b"\n"), f"{f.name} ends inside a line"
        assert len(data) <= 333 * 1024 + 100
        for line in data.splitlines():
            assert line == b"%08d " % seen + b"x" * 90, f"line {seen} in {f.name}: {line[:20]!r}"
            seen += 1
    assert seen == lines


def test_line_longer_than_max_size_is_not_split(tmp_path: Path) -> None:
    """A line longer than the size limit stays whole in one file."""
    w = LogWriter(tmp_path / "a.log", LogSettings(max_size=100, keep=5),
                  on_problem=lambda *a: None)
    w.feed(b"short\n" + b"L" * 150)
    w.feed(b"L" * 150 + b"\nafter\n")
    w.close()
    texts = [p.read_bytes() for p in _rotated_in_order(tmp_path / "a.log")]
    assert texts == [b"short\n", b"L" * 300 + b"\n", b"after\n"]


def test_keep_limits_rotated_files_and_compress_gzips_them(tmp_path: Path) -> None:
    """keep bounds the number of rotated files; compress = true gzips each, newest as .1.gz."""
    comp = RotationWorker()
    w = LogWriter(tmp_path / "z.log", LogSettings(max_size=50, keep=3, compress=True),
                  on_problem=lambda *a: None, worker=comp)
    for i in range(10):
        w.feed(b"%02d" % i + b"-" * 37 + b"\n")
    w.close()
    comp.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["z.log", "z.log.1.gz", "z.log.2.gz", "z.log.3.gz"]
    line = [b"%02d" % i + b"-" * 37 + b"\n" for i in range(10)]
    assert gzip.decompress((tmp_path / "z.log.1.gz").read_bytes()) == line[8]
    assert gzip.decompress((tmp_path / "z.log.3.gz").read_bytes()) == line[6]
    assert (tmp_path / "z.log").read_bytes() == line[9]


@pytest.mark.parametrize("keep", [0, 1, 3])
def test_files_past_keep_are_deleted_by_the_worker(tmp_path: Path, keep: int) -> None:
    """With a worker, the file a rotation drops is renamed aside and deleted off the
    loop: afterwards only the log and its ``keep`` newest files are left."""
    worker = RotationWorker()
    w = LogWriter(tmp_path / "k.log", LogSettings(max_size=50, keep=keep),
                  on_problem=lambda *a: None, worker=worker)
    line = [b"%02d" % i + b"-" * 37 + b"\n" for i in range(10)]
    for chunk in line:
        w.feed(chunk)
    w.close()
    worker.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["k.log"] + [f"k.log.{n}" for n in range(1, keep + 1)]
    assert [p.read_bytes() for p in _rotated_in_order(tmp_path / "k.log")] == \
        line[len(line) - 1 - keep:]


def test_a_new_writer_for_the_same_file_never_overwrites_one_set_aside(tmp_path: Path) -> None:
    """After a reload a new writer takes over the file while the worker still holds
    the old writer's rotated file: both rotated files are kept, none overwritten."""
    worker = RotationWorker()
    hold = threading.Event()
    worker.submit(hold.wait)  # the worker is busy: what follows waits in its queue
    try:
        for text in (b"first run\n", b"second run\n"):
            w = LogWriter(tmp_path / "r.log", LogSettings(max_size=12, keep=5, compress=True),
                          on_problem=lambda *a: None, worker=worker)
            w.feed(text + b"next\n")
            w.close()
        assert len(list(tmp_path.glob("r.log.*.pending"))) == 3
    finally:
        hold.set()
        worker.close()
    rotated = sorted(tmp_path.glob("r.log.*.gz"), key=lambda p: -int(p.name.split(".")[2]))
    kept = b"".join(gzip.decompress(p.read_bytes()) for p in rotated)
    assert kept + (tmp_path / "r.log").read_bytes() == b"first run\nnext\nsecond run\nnext\n"


def test_a_start_finishes_what_a_killed_daemon_left(tmp_path: Path) -> None:
    """Files set aside by a daemon that died first: one to delete goes, one to
    compress is compressed; another log's are left to that log."""
    (tmp_path / "k.log.4242-7.deleting").write_bytes(b"old\n")
    (tmp_path / "k.log.4242-8.pending").write_bytes(b"rotated\n")
    (tmp_path / "k.log.x.4242-9.deleting").write_bytes(b"not this log's\n")
    worker = RotationWorker()
    w = LogWriter(tmp_path / "k.log", LogSettings(compress=True), on_problem=lambda *a: None,
                  worker=worker)
    w.recover_pending()
    w.recover_pending()  # a second look finds nothing more to do
    worker.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.log.1.gz", "k.log.x.4242-9.deleting"]
    assert gzip.decompress((tmp_path / "k.log.1.gz").read_bytes()) == b"rotated\n"


def test_daily_rotation_happens_at_the_first_line_end_after_midnight(tmp_path: Path) -> None:
    """rotate = daily starts a new file once the day has changed, at a line boundary."""
    now = [1_700_000_000.0]
    w = LogWriter(tmp_path / "d.log", LogSettings(max_size=0, rotate="daily", keep=2),
                  on_problem=lambda *a: None, clock=lambda: now[0])
    w.feed(b"day one\npartial ")
    now[0] += 86_400
    w.feed(b"line\nday two\n")
    w.close()
    assert (tmp_path / "d.log.1").read_bytes() == b"day one\npartial line\n"
    assert (tmp_path / "d.log").read_bytes() == b"day two\n"


def test_timestamps_prefix_each_line_once(tmp_path: Path) -> None:
    """timestamps = true prefixes every line with its arrival time, partial lines once."""
    w = LogWriter(tmp_path / "t.log", LogSettings(timestamps=True),
                  on_problem=lambda *a: None, clock=lambda: 1_700_000_000.25)
    w.feed(b"one\ntw")
    w.feed(b"o\nthree\n")
    w.close()
    lines = (tmp_path / "t.log").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["one", "two", "three"]
    assert all(line.split(" ", 1)[0].endswith(".250") for line in lines)


def test_merge_stderr_puts_both_streams_in_one_file_in_order(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """merge_stderr = true writes stdout and stderr into one file, in the order written."""
    code = """
        import sys
        for i in range(5):
            print('out', i, flush=True)
            print('err', i, file=sys.stderr, flush=True)
    """
    cfg = make_config(tmp_path, {"both": {"command": python(code), "restart": "never",
                                          "start_seconds": 0, "logs": {"merge_stderr": True}}})

    async def scenario() -> None:
        async with supervised(cfg) as (_, rec):
            await rec.wait_state("both", "exited")

    run(scenario())
    expected = "".join(f"out {i}\nerr {i}\n" for i in range(5))
    assert (tmp_path / "logs" / "both.out.log").read_text() == expected
    assert not (tmp_path / "logs" / "both.err.log").exists()


def test_partial_last_line_is_ended_before_the_next_run(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """Output a crashed run left without a newline does not run into the next run's first line."""
    cfg = make_config(tmp_path, {"cut": {
        "command": python("import os, time; time.sleep(0.15); os.write(1, b'no newline');"
                          " os._exit(1)"),
        "start_seconds": 0.1, "start_limit": {"burst": 1, "interval": "1m"}}})

    async def scenario() -> None:
        async with supervised(cfg) as (_, rec):
            await rec.wait_state("cut", "failed")

    run(scenario())
    assert (tmp_path / "logs" / "cut.out.log").read_text() == "no newline\nno newline\n"


@contextmanager
def _broken_folder(tmp_path: Path, kind: str) -> Iterator[Path]:
    """A real unwritable (EROFS/EACCES) or full (ENOSPC) log folder."""
    folder = tmp_path / kind
    folder.mkdir()
    if os.geteuid() == 0:
        # root ignores permissions: a real read-only or tiny filesystem instead.
        opts = "ro,size=1m" if kind == "readonly" else "size=64k"
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            pytest.fail(f"cannot mount a tmpfs for the test: {r.stderr}")
        try:
            yield folder
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
    elif kind == "readonly":
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
    else:
        # /dev/full answers every write with ENOSPC, as a full disk does.
        (folder / "talker.out.log").symlink_to("/dev/full")
        yield folder


@pytest.mark.parametrize("kind", ["readonly", "full"])
def test_unwritable_log_folder_leaves_the_service_running(tmp_path: Path, run, kind: str) -> None:  # type: ignore[no-untyped-def]
    """A read-only or full log folder costs only the output: counted, reported, service alive."""
    code = """
        import time
        for i in range(4000):
            print('line', i, 'y' * 80, flush=True)
        print('done', flush=True)
        time.sleep(600)
    """
    with _broken_folder(tmp_path, kind) as folder:
        cfg = make_config(tmp_path, {"talker": {"command": python(code), "start_seconds": 0.2}},
                          procward={"log_dir": folder})

        async def scenario() -> None:
            async with supervised(cfg) as (sup, rec):
                await rec.wait_state("talker", "running")
                dropped = await rec.wait(EventKind.LOG_DROPPED)
                assert dropped[0].service == "talker"
                assert dropped[0].payload.file == str(folder / "talker.out.log")
                writer = sup.instances()[0].setup.stdout_log
                # every line the child printed was either written or counted as dropped
                total = sum(len(f"line {i} {'y' * 80}\n") for i in range(4000)) + len("done\n")
                while writer.bytes_written + writer.bytes_dropped < total:
                    await asyncio.sleep(0.05)  # counters: no event tells of them
                assert writer.bytes_dropped > 0
                assert writer.bytes_written + writer.bytes_dropped == total
                assert sup.status(["talker"])[0].state is State.RUNNING
                assert len(rec.matching("talker", EventKind.LOG_DROPPED)) == 1

        run(scenario())


def test_writing_resumes_when_the_folder_becomes_writable(tmp_path: Path) -> None:
    """After a failure the writer retries, resumes, and reports how much was dropped."""
    now = [1000.0]
    problems: list[Payload] = []
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the folder should be")
    w = LogWriter(blocker / "r.log", LogSettings(), clock=lambda: now[0],
                  on_problem=lambda payload, message: problems.append(payload))
    w.feed(b"lost\n")
    blocker.unlink()
    w.feed(b"lost too, retry not due\n")
    now[0] += 2
    w.feed(b"kept\n")
    w.close()
    path = str(blocker / "r.log")
    assert [type(p) for p in problems] == [LogDropped, LogResumed]
    assert problems[0].file == path
    assert problems[1] == LogResumed(path, len(b"lost\n") + len(b"lost too, retry not due\n"))
    assert (blocker / "r.log").read_bytes() == b"kept\n"


def test_events_are_json_lines_with_pid_and_exit(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """The daemon's events land in procward.events.jsonl with pid, exit code and reason."""
    import json

    cfg = make_config(tmp_path, {"once": {"command": python("raise SystemExit(4)"),
                                          "restart": "never", "start_seconds": 0}})

    async def scenario() -> None:
        async with supervised(cfg) as (_, rec):
            await rec.wait_state("once", "exited")

    run(scenario())
    records = [json.loads(line) for line in
               (tmp_path / "logs" / "procward.events.jsonl").read_text().splitlines()]
    exits = [r for r in records if r["kind"] == "exit"]
    assert exits and exits[0]["service"] == "once" and exits[0]["exit_code"] == 4
    assert isinstance(exits[0]["pid"], int)
    states = [r["state"] for r in records if r["kind"] == "state" and r["service"] == "once"]
    assert states == ["starting", "running", "exited"]
    assert records[0]["kind"] == "daemon" and records[-1]["message"] == "procward stopped"


def test_bytes_captured_counts_every_stream(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """The API's flood meter reads this: each byte a service wrote, on either stream."""
    from procward.engine._control import Control

    code = ("import sys; sys.stdout.write('o' * 2999 + '\\n'); "
            "sys.stderr.write('e' * 499 + '\\n')")
    cfg = make_config(tmp_path, {"a": {"command": python(code), "restart": "never"},
                                 "b": {"command": python(code), "restart": "never"}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait(EventKind.EXIT, count=2)
            assert Control(sup).bytes_captured() == 2 * (3000 + 500)

    run(scenario())
