"""Log files: their names, their last lines (both streams together), and following them
through rotations."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from procward._logfiles import (
    LogFile,
    follow,
    follow_lines,
    instance_log_files,
    labelled,
    last_lines,
    log_path,
    tail_lines,
)


def test_file_names_and_labels(tmp_path: Path) -> None:
    """Each instance's streams have their own file (one with merged streams); lines are
    marked with the stream when an instance shows two, with the instance when several are
    shown."""
    assert log_path(tmp_path, "web:1", "stderr") == tmp_path / "web@1.err.log"
    both = instance_log_files(tmp_path, "web", "both", merged=False)
    assert [(f.stream, f.path.name) for f in both] == [
        ("stdout", "web.out.log"), ("stderr", "web.err.log")]
    assert [f.path.name for f in instance_log_files(tmp_path, "web", "stderr", merged=True)] \
        == ["web.out.log"]
    assert [p for p, _ in labelled(both)] == [b"stdout | ", b"stderr | "]
    assert [p for p, _ in labelled(both[1:])] == [b""]
    two = [LogFile("w:0", "stdout", tmp_path / "a"), LogFile("w:1", "stdout", tmp_path / "b")]
    assert [p for p, _ in labelled(two)] == [b"[w:0] ", b"[w:1] "]


def test_tail_lines_interleaves_by_timestamp_when_lines_carry_one(tmp_path: Path) -> None:
    """With timestamps the two streams' last lines come in time order (an unstamped line,
    such as a traceback's, stays after its file's line before it); without, stdout's
    come whole before stderr's; a partial last line is ended."""
    out, err = tmp_path / "x.out.log", tmp_path / "x.err.log"
    out.write_bytes(b"2026-01-01T10:00:00.000 start\n2026-01-01T10:00:02.000 request\n")
    err.write_bytes(b"2026-01-01T10:00:01.000 Traceback\n  File x\n"
                    b"2026-01-01T10:00:03.000 done")
    sources = [(b"stdout | ", out), (b"stderr | ", err)]
    assert tail_lines(sources, 10).splitlines() == [
        b"stdout | 2026-01-01T10:00:00.000 start", b"stderr | 2026-01-01T10:00:01.000 Traceback",
        b"stderr |   File x", b"stdout | 2026-01-01T10:00:02.000 request",
        b"stderr | 2026-01-01T10:00:03.000 done"]
    assert tail_lines(sources, 10).endswith(b"done\n")
    out.write_bytes(b"a\nb\n")
    err.write_bytes(b"c\nd\n")
    assert tail_lines(sources, 1) == b"stdout | b\nstderr | d\n"


def test_last_lines(tmp_path: Path) -> None:
    """last_lines gives the last N lines (the last one possibly partial) and where the file ends."""
    log = tmp_path / "x.log"
    log.write_bytes(b"".join(f"line {i}\n".encode() for i in range(100_000)))
    lines, end = last_lines(log, 3)
    assert lines == [b"line 99997\n", b"line 99998\n", b"line 99999\n"]
    assert end == log.stat().st_size
    assert last_lines(log, 0) == ([], end)
    assert last_lines(tmp_path / "missing.log", 5) == ([], 0)
    log.write_bytes(b"a\nb\npartial")
    assert last_lines(log, 2)[0] == [b"b\n", b"partial"]


def test_follow_reads_every_file_of_several_rotations(tmp_path: Path) -> None:
    """Three rotations between two looks: the rotated files are read in order."""
    log = tmp_path / "x.log"
    log.write_bytes(b"0\n")

    async def scenario() -> bytes:
        got = b""
        stream = follow(log, None)
        got += await anext(stream)
        for n in range(1, 4):  # rotate as LogWriter does: shift .N, rename, create
            for k in range(n - 1, 0, -1):
                os.replace(f"{log}.{k}", f"{log}.{k + 1}")
            with open(log, "ab") as f:
                f.write(f"{n}a\n".encode())
            os.replace(log, f"{log}.1")
            log.write_bytes(f"{n}b\n".encode())
        while got.count(b"\n") < 7:
            got += await asyncio.wait_for(anext(stream), 5)
        await stream.aclose()
        return got

    assert asyncio.run(scenario()) == b"0\n1a\n1b\n2a\n2b\n3a\n3b\n"


def test_follow_lines_gives_whole_lines_of_each_file_with_its_prefix(tmp_path: Path) -> None:
    """Several files followed at once: their last lines first, then only whole new lines,
    in order per file, each starting with its file's prefix."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_bytes(b"old\nlast\n")
    b.write_bytes(b"")

    async def scenario() -> list[bytes]:
        stream = follow_lines([(b"[a] ", a), (b"[b] ", b)], 1)
        got = [await anext(stream)]
        with open(a, "ab") as f:
            f.write(b"one\ntw")  # "tw" is not a line yet
        with open(b, "ab") as f:
            f.write(b"x\n")
        while b"".join(got).count(b"\n") < 3:
            got.append(await asyncio.wait_for(anext(stream), 5))
        with open(a, "ab") as f:
            f.write(b"o\n")
        while b"".join(got).count(b"\n") < 4:
            got.append(await asyncio.wait_for(anext(stream), 5))
        await stream.aclose()
        return got

    got = asyncio.run(scenario())
    assert got[0] == b"[a] last\n"
    lines = b"".join(got[1:]).splitlines()
    assert [line for line in lines if line.startswith(b"[a] ")] == [b"[a] one", b"[a] two"]
    assert sorted(lines) == [b"[a] one", b"[a] two", b"[b] x"]


def test_follow_lines_gives_a_line_being_written_whole(tmp_path: Path) -> None:
    """With several files, a last line not ended yet is held back, then comes whole with
    its prefix once ended, instead of cut in two."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_bytes(b"done\nhalf")
    b.write_bytes(b"other\n")

    async def scenario() -> list[bytes]:
        stream = follow_lines([(b"stdout | ", a), (b"stderr | ", b)], 5)
        got = [await anext(stream)]
        with open(a, "ab") as f:
            f.write(b" and the rest\n")
        while b"".join(got).count(b"\n") < 3:
            got.append(await asyncio.wait_for(anext(stream), 5))
        await stream.aclose()
        return got

    got = asyncio.run(scenario())
    assert got[0] == b"stdout | done\nstderr | other\n"
    assert b"".join(got[1:]) == b"stdout | half and the rest\n"


def test_follow_lines_loses_nothing_to_a_rotation_before_the_first_look(tmp_path: Path) -> None:
    """A file rotated just after its last lines were read is followed to its end, then
    the new file from its start."""
    log = tmp_path / "x.log"
    log.write_bytes(b"a\nb\n")

    async def scenario() -> bytes:
        stream = follow_lines([(b"", log)], 1)
        got = await anext(stream)
        # Before following has looked at all: one more line, then a rotation to a
        # new file longer than the old one was.
        with open(log, "ab") as f:
            f.write(b"c\n")
        os.replace(log, f"{log}.1")
        log.write_bytes(b"d, longer than the whole old file\n")
        while got.count(b"\n") < 3:
            got += await asyncio.wait_for(anext(stream), 5)
        await stream.aclose()
        return got

    assert asyncio.run(scenario()) == b"b\nc\nd, longer than the whole old file\n"
