#!/usr/bin/env python3
"""Log capture: how fast a chatty child can write through its supervisor, at what CPU cost,
and whether every byte arrives.

The writer child writes 100-byte numbered lines to stdout in 64 KiB writes
(so lines straddle writes) and measures its own throughput, from just before
its first write to just after its last. It starts only when the bench writes a
byte to a "go" FIFO, so the supervisor's boot is outside every figure.

- limit: ``writer | cat > file``; cat's CPU comes from ``wait4``'s rusage;
- procward: one service, ``restart = "never"``, logs ``max_size`` 50 MiB,
  ``keep`` large enough that no rotated file is deleted;
- supervisord: the same with ``stdout_logfile_maxbytes`` / ``_backups``.

A supervisor's CPU is its daemon process's user+system time (psutil) from the
"go" until every byte is in its log files. Then every log file is read back
and checked line by line: ``lost_bytes`` counts the bytes of each line that
is missing or damaged, ``split_lines`` the files that end inside a line.
With several rounds (systems interleaved), the round with the median
throughput is reported, CPU is the median, and loss is the worst round's.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import common

NAME = "log_throughput"
SETTLE = 0.5  # seconds between the writer being ready and "go": the daemon goes quiet


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="log_throughput.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-mb", type=int, default=None,
                   help="megabytes (10^6 bytes) the child writes (default 500; 20 with --quick)")
    p.add_argument("--max-size-mib", type=int, default=None,
                   help="rotate at this size (default 50; 4 with --quick, so it still rotates)")
    p.add_argument("--rounds", type=int, default=None,
                   help="runs per system; the median is reported and every run is verified "
                        "(default 3; 1 with --quick)")
    return p


def _read_report(path: Path, timeout: float) -> tuple[int, float]:
    """(bytes written, seconds from first to last write) as the writer child measured."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise common.BenchError(f"the writer did not finish within {timeout:g}s")
        time.sleep(0.02)
    written, t0, t1 = (int(x) for x in path.read_text().split())
    return written, (t1 - t0) / 1e9


def _figures(total: int, child_s: float, wall_s: float, cpu_s: float) -> dict[str, Any]:
    return {"child_seconds": child_s, "throughput_mb_s": total / 1e6 / child_s,
            "wall_seconds": wall_s, "cpu_seconds": cpu_s}


def _cat(ws: common.Workspace, child: common.ChildProgram, lines: int,
         timeout: float, round_no: int) -> dict[str, Any]:
    folder = ws.path / f"cat-{round_no}"
    folder.mkdir()
    go = common.GoSignal(folder / "go.fifo")
    report, out_path = folder / "report", folder / "writer.out.log"
    with open(out_path, "wb") as out:
        writer = subprocess.Popen(child.writer(lines, go.path, report), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, start_new_session=True)
        ws.track(writer)
        cat = subprocess.Popen([shutil.which("cat") or "cat"], stdin=writer.stdout, stdout=out,
                               start_new_session=True)
        ws.track(cat)
    assert writer.stdout is not None
    writer.stdout.close()
    go.wait_ready()
    t0 = time.monotonic()
    go.go()
    written, child_s = _read_report(report, timeout)
    writer.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(cat.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            raise common.BenchError("cat did not finish")
        time.sleep(0.005)
    wall_s = time.monotonic() - t0
    cat.returncode = os.waitstatus_to_exitcode(status)
    result = _figures(written, child_s, wall_s, usage.ru_utime + usage.ru_stime)
    result["verify"] = common.verify_log([out_path], lines)
    out_path.unlink()
    return result


def _daemon(ws: common.Workspace, child: common.ChildProgram, cls: type[common.Daemon], *,
            lines: int, max_size: int, timeout: float, round_no: int) -> dict[str, Any]:
    daemon = cls(ws, f"logs-{round_no}")
    go, report = common.GoSignal(daemon.dir / "go.fifo"), daemon.dir / "report"
    total = lines * common.LINE_BYTES
    keep = math.ceil(total / max_size) + 2
    daemon.launch([common.Service("writer", child.writer(lines, go.path, report), restart=False,
                                  start_seconds=0, max_size=max_size, keep=keep)])
    daemon.wait_ready()
    go.wait_ready()
    time.sleep(SETTLE)
    cpu0, faults0 = daemon.cpu_seconds(), daemon.minor_faults()
    t0 = time.monotonic()
    go.go()
    written, child_s = _read_report(report, timeout)
    # Every byte the child wrote must be in the files before the CPU is read.
    deadline, last, last_change = time.monotonic() + timeout, -1, time.monotonic()
    while True:
        size = sum(p.stat().st_size for p in daemon.log_paths("writer"))
        now = time.monotonic()
        if size >= written:
            break
        if size != last:
            last, last_change = size, now
        if now > deadline or now - last_change > 10:
            common.say(f"{NAME}: {cls.label} logged {size} of {written} bytes; giving up waiting")
            break
        time.sleep(0.01)
    wall_s = time.monotonic() - t0
    cpu, faults = daemon.cpu_seconds() - cpu0, daemon.minor_faults() - faults0
    daemon.stop()
    result = _figures(written, child_s, wall_s, cpu)
    result["minor_faults"] = faults
    paths = daemon.log_paths("writer")
    result["verify"] = common.verify_log(paths, lines)
    result["keep"] = keep
    for p in paths:
        p.unlink()
    return result


def _median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median throughput, with the worst verification of all rounds."""
    ranked = sorted(rounds, key=lambda r: r["throughput_mb_s"])
    out = dict(ranked[len(ranked) // 2])
    out["rounds"] = [{k: v for k, v in r.items() if k != "verify"} for r in rounds]
    out["verify"] = max((r["verify"] for r in rounds), key=lambda v: (v["lost_bytes"],
                                                                      v["split_lines"]))
    out["cpu_seconds"] = sorted(r["cpu_seconds"] for r in rounds)[len(rounds) // 2]
    return out


def run(opts: argparse.Namespace, ws: common.Workspace,
        child: common.ChildProgram) -> dict[str, Any]:
    size_mb = opts.size_mb or (20 if opts.quick else 500)
    max_size = (opts.max_size_mib or (4 if opts.quick else 50)) * common.MIB
    rounds = opts.rounds or (1 if opts.quick else 3)
    lines = size_mb * 10**6 // common.LINE_BYTES
    # Generous: even 5 MB/s finishes in time.
    timeout = 60 + size_mb / 5
    result: dict[str, Any] = {"bytes": lines * common.LINE_BYTES, "max_size": max_size,
                              "rounds": rounds}
    classes = common.daemon_classes(ws)
    runs: dict[str, list[dict[str, Any]]] = {"cat": [], **{c.label: [] for c in classes}}
    # Rounds interleave the systems, so a slow patch of the machine hits all alike.
    for i in range(rounds):
        common.say(f"{NAME}: round {i + 1}/{rounds}: cat, {size_mb} MB")
        runs["cat"].append(_cat(ws, child, lines, timeout, i))
        for cls in classes:
            common.say(f"{NAME}: round {i + 1}/{rounds}: {cls.label}, {size_mb} MB")
            runs[cls.label].append(_daemon(ws, child, cls, lines=lines, max_size=max_size,
                                          timeout=timeout, round_no=i))
    for key, rs in runs.items():
        result[key] = _median_round(rs)
    for key in ("procward", "supervisord"):
        if key in result:
            r = result[key]
            r["throughput_vs_cat"] = r["throughput_mb_s"] / result["cat"]["throughput_mb_s"]
            r["cpu_vs_cat"] = r["cpu_seconds"] / result["cat"]["cpu_seconds"]
    return result


def rows(result: dict[str, Any]) -> list[common.Row]:
    cat = result["cat"]
    pw = result.get("procward")
    sv = result.get("supervisord")

    def get(r: dict[str, Any] | None, *keys: str) -> Any:
        for k in keys:
            if r is None:
                return None
            r = r.get(k)
        return r

    tput, cpu = get(pw, "throughput_mb_s"), get(pw, "cpu_seconds")
    lost = get(pw, "verify", "lost_bytes")
    return [
        common.Row(NAME, "child throughput", "MB/s", tput, cat["throughput_mb_s"], "cat",
                   get(sv, "throughput_mb_s"), ">= 0.90x cat",
                   common.verdict(None if tput is None
                                  else tput >= 0.9 * cat["throughput_mb_s"])),
        common.Row(NAME, "daemon CPU", "s", cpu, cat["cpu_seconds"], "cat",
                   get(sv, "cpu_seconds"), "<= 1.3x cat",
                   common.verdict(None if cpu is None else cpu <= 1.3 * cat["cpu_seconds"])),
        common.Row(NAME, "bytes lost or damaged", "B", lost,
                   cat["verify"]["lost_bytes"], "cat", get(sv, "verify", "lost_bytes"), "0",
                   common.verdict(None if lost is None else lost == 0)),
        common.Row(NAME, "files ending mid-line", "files", get(pw, "verify", "split_lines"),
                   None, "", get(sv, "verify", "split_lines"), ""),
    ]


def main(argv: list[str] | None = None) -> int:
    return common.main_for(NAME, build_parser(), run, rows, argv)


if __name__ == "__main__":
    sys.exit(main())
