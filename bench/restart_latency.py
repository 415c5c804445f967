#!/usr/bin/env python3
"""Restart latency: from SIGKILL of a started child until its replacement runs.

The child reports the CLOCK_MONOTONIC time at which it began to run (first
thing in main) through a FIFO; the latency of one restart is that time minus
the bench's CLOCK_MONOTONIC just before ``kill(pid, SIGKILL)``.

- limit: a plain loop in this process: kill, waitpid, ``subprocess.Popen`` the
  same child (stdout and stderr to pipes, own session, as a supervisor does),
  wait for its report;
- procward: one service, ``restart = "always"``, ``start_seconds = 0.1``;
- supervisord: one program, ``autorestart=true``, ``startsecs=0``.

Before each kill the bench waits until the supervisor itself says the child
has started (procward's ``running`` event, supervisord's ``success:`` line),
so every kill hits a started child, which both restart at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import common

NAME = "restart_latency"
WARMUP = 1  # restarts before the measured ones, not counted
PAUSE = 0.05  # seconds between "started" and the next kill


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="restart_latency.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=None,
                   help="measured kills per system (default 50; 2 with --quick)")
    return p


def _pid_is(pid: int) -> Callable[[common.Report], bool]:
    return lambda r: r.pid == pid


def _pid_is_not(pid: int) -> Callable[[common.Report], bool]:
    return lambda r: r.pid != pid


def _limit(ws: common.Workspace, child: common.ChildProgram, kills: int) -> list[float]:
    fifo = common.ReportFifo(ws.path / "limit.fifo")
    argv = child.report(fifo.path)

    def spawn() -> subprocess.Popen[bytes]:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
        ws.track(p)
        return p

    try:
        proc = spawn()
        fifo.wait_for(_pid_is(proc.pid))
        latencies = []
        for i in range(WARMUP + kills):
            time.sleep(PAUSE)
            t0 = time.monotonic_ns()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            old, proc = proc, spawn()
            rep = fifo.wait_for(_pid_is(proc.pid))
            for pipe in (old.stdout, old.stderr):
                assert pipe is not None
                pipe.close()
            if i >= WARMUP:
                latencies.append((rep.t_ns - t0) / 1e6)
        return latencies
    finally:
        fifo.close()


def _daemon(ws: common.Workspace, child: common.ChildProgram, cls: type[common.Daemon],
            kills: int) -> list[float]:
    daemon = cls(ws, "restart")
    fifo = common.ReportFifo(daemon.dir / "child.fifo")
    try:
        daemon.launch([common.Service("child", child.report(fifo.path), restart=True,
                                      start_seconds=0.1)])
        daemon.wait_ready()
        rep = fifo.wait_for(lambda r: True, timeout=common.DEFAULT_TIMEOUT)
        ws.track_pids([rep.pid])
        daemon.wait_log("running", 1, "child", timeout=30)
        latencies = []
        for i in range(WARMUP + kills):
            time.sleep(PAUSE)
            old = rep.pid
            t0 = time.monotonic_ns()
            os.kill(old, signal.SIGKILL)
            rep = fifo.wait_for(_pid_is_not(old), timeout=30)
            ws.track_pids([rep.pid])
            if i >= WARMUP:
                latencies.append((rep.t_ns - t0) / 1e6)
            # The next kill must hit a started child: wait for the supervisor to say so.
            daemon.wait_log("running", i + 2, "child", timeout=30)
        daemon.stop()
        return latencies
    finally:
        fifo.close()


def run(opts: argparse.Namespace, ws: common.Workspace,
        child: common.ChildProgram) -> dict[str, Any]:
    kills = opts.kills or (2 if opts.quick else 50)
    result: dict[str, Any] = {"kills": kills}
    common.say(f"{NAME}: limit loop, {kills} kills")
    result["limit"] = _summary(_limit(ws, child, kills))
    for cls in common.daemon_classes(ws):
        common.say(f"{NAME}: {cls.label}, {kills} kills")
        result[cls.label] = _summary(_daemon(ws, child, cls, kills))
    return result


def _summary(latencies: list[float]) -> dict[str, Any]:
    return {**common.percentiles(latencies), "samples_ms": [round(x, 3) for x in latencies]}


def rows(result: dict[str, Any]) -> list[common.Row]:
    limit = result["limit"]
    pw = result.get("procward", {})
    sv = result.get("supervisord", {})
    out = []
    compiled = str(result.get("child", "")).startswith("C")
    for stat in ("p50", "p90", "max"):
        target, ok = "", None
        if stat == "p50" and pw.get("p50") is not None:
            # A Python child spends ~20 ms starting its interpreter before it
            # reports, so only the ratio can be held against it.
            target = "<= 2x limit and < 10 ms" if compiled else "<= 2x limit"
            ok = pw["p50"] <= 2 * limit["p50"] and (pw["p50"] < 10 or not compiled)
        out.append(common.Row(NAME, f"restart {stat}", "ms", pw.get(stat), limit.get(stat),
                              "fork/exec loop", sv.get(stat), target, common.verdict(ok)))
    return out


def main(argv: list[str] | None = None) -> int:
    return common.main_for(NAME, build_parser(), run, rows, argv)


if __name__ == "__main__":
    sys.exit(main())
