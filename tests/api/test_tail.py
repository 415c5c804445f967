"""Reading logs for the API: last lines, and following through rotations."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from procward.api._tail import follow, follow_lines, last_lines


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
        stream = follow(log, 0)
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
    """Several files followed at once: only whole lines come, in order per file, each
    starting with its file's prefix, and nothing from before the offset."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_bytes(b"before\n")
    b.write_bytes(b"")

    async def scenario() -> bytes:
        stream = follow_lines([(b"[a] ", a, a.stat().st_size), (b"[b] ", b, 0)])
        with open(a, "ab") as f:
            f.write(b"one\ntw")  # "tw" is not a line yet
        with open(b, "ab") as f:
            f.write(b"x\n")
        got = b""
        while got.count(b"\n") < 2:
            got += await asyncio.wait_for(anext(stream), 5)
        with open(a, "ab") as f:
            f.write(b"o\n")
        while got.count(b"\n") < 3:
            got += await asyncio.wait_for(anext(stream), 5)
        await stream.aclose()
        return got

    lines = asyncio.run(scenario()).splitlines()
    assert [line for line in lines if line.startswith(b"[a] ")] == [b"[a] one", b"[a] two"]
    assert sorted(lines) == [b"[a] one", b"[a] two", b"[b] x"]
