#!/usr/bin/env python3
"""Starting and stopping many services (500 by default).

Every service runs the benchmark child, which reports the CLOCK_MONOTONIC time
at which it began to run through a FIFO, then sleeps.

Start, for a supervisor, is timed from just before the bench launches the
daemon process (so interpreter start-up, imports and reading the
configuration count) until the last of the N children reports that it runs.
The daemon's own view is reported too: from its first log record (procward:
the "procward started" event; supervisord: "supervisord started") to its last
record of a spawn (procward: the last "starting" event; supervisord: the last
"spawned:" line), so the cost of booting the daemon is visible on its own.

The baseline is a plain loop in this process: ``subprocess.Popen`` of the same
N commands (stdin from /dev/null, stdout and stderr to pipes, own session),
timed from before the loop until the last child reports.

Stop is timed from SIGTERM to the daemon until the daemon has exited and none
of the N children runs any more (a zombie counts as ended). The bench waits
until the supervisor reports every child as started before stopping. The
baseline stop is the loop's own: SIGTERM to each child, then waitpid for each.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Any

import common

NAME = "start_stop_many"
FLOOR = "python_floor"  # the least asyncio program that starts the same services

FLOOR_PY = """\
import asyncio, os, sys, tomllib

async def main():
    with open(sys.argv[1], "rb") as f:
        services = tomllib.load(f)["services"]
    loop = asyncio.get_running_loop()
    null = os.open(os.devnull, os.O_RDONLY)
    for service in services.values():
        argv = service["command"]
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        os.posix_spawn(argv[0], argv, os.environ, setsid=True, file_actions=[
            (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2)])
        os.close(out_w)
        os.close(err_w)
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
            loop.add_reader(fd, os.read, fd, 65536)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="start_stop_many.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--services", type=int, default=None,
                   help="number of services (default 500; 50 with --quick)")
    p.add_argument("--rounds", type=int, default=None,
                   help="runs per system, interleaved; each figure is the median "
                        "(default 3; 1 with --quick)")
    return p


def _loop(ws: common.Workspace, child: common.ChildProgram, n: int,
          round_no: int) -> dict[str, Any]:
    fifo = common.ReportFifo(ws.path / f"loop-{round_no}.fifo")
    argv = child.report(fifo.path)
    try:
        t0 = time.monotonic_ns()
        procs = []
        for _ in range(n):
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, start_new_session=True)
            procs.append(p)
        for p in procs:
            ws.track(p)
        reports = fifo.wait_count(n)
        start = (max(r.t_ns for r in reports) - t0) / 1e9
        t1 = time.monotonic()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
        stop = time.monotonic() - t1
        for p in procs:
            for pipe in (p.stdout, p.stderr):
                assert pipe is not None
                pipe.close()
        return {"start_seconds": start, "stop_seconds": stop}
    finally:
        fifo.close()


def _floor(ws: common.Workspace, child: common.ChildProgram, n: int,
           round_no: int) -> dict[str, Any]:
    # procward's own configuration file, written as for its runs.
    daemon = common.ProcwardDaemon(ws, f"floor-{round_no}")
    fifo = common.ReportFifo(daemon.dir / "child.fifo")
    argv = child.report(fifo.path)
    script = daemon.dir / "floor.py"
    script.write_text(FLOOR_PY, encoding="utf-8")
    try:
        config = daemon.write_config(
            [common.Service(f"s{i:04d}", argv, start_seconds=1.0) for i in range(n)])
        t0 = time.monotonic_ns()
        p = subprocess.Popen([sys.executable, str(script), str(config)], cwd=daemon.dir,
                             env=common.daemon_env(), start_new_session=True)
        ws.track(p)
        reports = fifo.wait_count(n)
        pids = sorted({r.pid for r in reports})
        ws.track_pids(pids)
        start = (max(r.t_ns for r in reports) - t0) / 1e9
        # It stops nothing itself: its children, then it, are killed by pid.
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        p.kill()
        p.wait()
        common.wait_gone(pids, timeout=common.DEFAULT_TIMEOUT)
        return {"start_seconds": start}
    finally:
        fifo.close()


def _daemon(ws: common.Workspace, child: common.ChildProgram, cls: type[common.Daemon],
            n: int, round_no: int) -> dict[str, Any]:
    daemon = cls(ws, f"many-{round_no}")
    fifo = common.ReportFifo(daemon.dir / "child.fifo")
    argv = child.report(fifo.path)
    try:
        services = [common.Service(f"s{i:04d}", argv, start_seconds=1.0) for i in range(n)]
        daemon.launch(services)
        reports = fifo.wait_count(n)
        last_ns = max(r.t_ns for r in reports)
        pids = sorted({r.pid for r in reports})
        ws.track_pids(pids)
        if len(pids) != n:
            raise common.BenchError(f"{n} reports but {len(pids)} distinct children")
        # Every child must count as started before the stop is timed.
        daemon.wait_log("running", n)
        span = daemon.internal_start_span()
        alive = {c.pid for c in daemon.process.children()} if daemon.process else set()
        time.sleep(0.5)
        t0 = time.monotonic()
        os.kill(daemon.pid, signal.SIGTERM)
        assert daemon.popen is not None
        try:
            exited = common.wait_exit(daemon.popen, common.DEFAULT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise common.BenchError(f"{cls.label} did not exit within "
                                    f"{common.DEFAULT_TIMEOUT:g}s of SIGTERM; "
                                    f"{daemon.describe()}") from None
        gone = common.wait_gone(pids, timeout=common.DEFAULT_TIMEOUT)
        return {
            "start_seconds": (last_ns - daemon.launched_ns) / 1e9,
            "internal_start_span_seconds": span,
            "children_seen_alive": len(alive & set(pids)),
            "stop_seconds": gone - t0,
            "daemon_exit_seconds": exited - t0,
        }
    finally:
        fifo.close()


def run(opts: argparse.Namespace, ws: common.Workspace,
        child: common.ChildProgram) -> dict[str, Any]:
    n = opts.services or (50 if opts.quick else 500)
    rounds = opts.rounds or (1 if opts.quick else 3)
    result: dict[str, Any] = {"services": n, "rounds": rounds}
    classes = common.daemon_classes(ws)
    runs: dict[str, list[dict[str, Any]]] = {"loop": [], FLOOR: [],
                                             **{c.label: [] for c in classes}}
    # Rounds interleave the systems, so a slow patch of the machine hits all alike.
    for i in range(rounds):
        common.say(f"{NAME}: round {i + 1}/{rounds}: Popen loop, {n} children")
        runs["loop"].append(_loop(ws, child, n, i))
        common.say(f"{NAME}: round {i + 1}/{rounds}: the least Python program, {n} services")
        runs[FLOOR].append(_floor(ws, child, n, i))
        for cls in classes:
            common.say(f"{NAME}: round {i + 1}/{rounds}: {cls.label}, {n} services")
            runs[cls.label].append(_daemon(ws, child, cls, n, i))
    for key, rs in runs.items():
        # Each figure is the median over the rounds.
        result[key] = {k: _median([r[k] for r in rs]) for k in rs[0]}
        result[key]["rounds"] = rs
    return result


def _median(values: list[Any]) -> Any:
    present = sorted(v for v in values if v is not None)
    return present[len(present) // 2] if present else None


def rows(result: dict[str, Any]) -> list[common.Row]:
    n = result["services"]
    loop = result["loop"]
    pw = result.get("procward", {})
    sv = result.get("supervisord", {})
    start, span, stop = (pw.get(k) for k in ("start_seconds", "internal_start_span_seconds",
                                             "stop_seconds"))
    floor = result.get(FLOOR, {}).get("start_seconds")
    return [
        common.Row(NAME, f"start {n}: launch to all running", "s", start,
                   loop["start_seconds"], "Popen loop", sv.get("start_seconds"),
                   "<= 2x loop",
                   common.verdict(None if start is None
                                  else start <= 2 * loop["start_seconds"])),
        # Not procward: what any Python supervisor pays (see FLOOR_PY), against the loop.
        common.Row(NAME, f"start {n}: least Python asyncio program, same TOML (not procward)",
                   "s", floor, loop["start_seconds"], "Popen loop", None, ""),
        common.Row(NAME, f"start {n}: against the least Python program", "s", start, floor,
                   "least Python program", None, ""),
        common.Row(NAME, f"start {n}: first event to last spawn", "s", span,
                   loop["start_seconds"], "Popen loop",
                   sv.get("internal_start_span_seconds"), ""),
        common.Row(NAME, f"stop {n}: SIGTERM to all gone", "s", stop, loop["stop_seconds"],
                   "kill+wait loop", sv.get("stop_seconds"), "< 0.3 s",
                   common.verdict(None if stop is None else stop < 0.3)),
    ]


def main(argv: list[str] | None = None) -> int:
    return common.main_for(NAME, build_parser(), run, rows, argv)


if __name__ == "__main__":
    sys.exit(main())
