#!/usr/bin/env python3
"""Idle cost: a supervisor with 200 quiet children, over a 20 s window.

Each service runs the benchmark child, which reports that it runs and then
sleeps without output. Once every child has reported and the supervisor says
every one has started, the bench waits a further 2 s (0.5 s with --quick),
then measures over the window:

- RSS of the daemon process (psutil ``memory_info().rss``, MiB) at the end;
- CPU time the daemon used inside the window, in ms: on-CPU time from
  ``/proc/PID/task/*/schedstat`` (nanoseconds), or psutil's user+system (10 ms
  ticks) where schedstat is missing;
- open descriptors per child: the daemon's ``num_fds()`` with N services minus
  its ``num_fds()`` with none (a separate run, sampled after the same wait up to
  12 s, so files a daemon closes when idle count the same in both), over N;
- procward's guardian helper's RSS, on its own (not in the daemon's figure).

There is no "no supervisor" limit here: the target for CPU is supervisord's
figure measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import common

NAME = "idle"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="idle.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--services", type=int, default=None,
                   help="number of children (default 200; 20 with --quick)")
    p.add_argument("--seconds", type=float, default=None,
                   help="length of the measured window (default 20; 1 with --quick)")
    return p


def _rss_mib(proc: Any) -> float:
    return float(proc.memory_info().rss) / common.MIB


def _empty(ws: common.Workspace, cls: type[common.Daemon], wait: float) -> dict[str, Any]:
    daemon = cls(ws, "idle-empty")
    daemon.launch([])
    daemon.wait_ready()
    time.sleep(wait)
    assert daemon.process is not None
    out = {"fds": daemon.process.num_fds(), "rss_mib": _rss_mib(daemon.process)}
    daemon.stop()
    return out


def _loaded(ws: common.Workspace, child: common.ChildProgram, cls: type[common.Daemon], *,
            n: int, window: float, settle: float) -> dict[str, Any]:
    daemon = cls(ws, "idle")
    fifo = common.ReportFifo(daemon.dir / "child.fifo")
    try:
        services = [common.Service(f"s{i:04d}", child.report(fifo.path), start_seconds=1.0)
                    for i in range(n)]
        daemon.launch(services)
        reports = fifo.wait_count(n)
        ws.track_pids([r.pid for r in reports])
        daemon.wait_log("running", n)
        time.sleep(settle)
        proc = daemon.process
        assert proc is not None
        cpu0, fine0 = daemon.cpu_seconds(), daemon.cpu_ns_precise()
        time.sleep(window)
        cpu, fine1 = daemon.cpu_seconds() - cpu0, daemon.cpu_ns_precise()
        fine = None if fine0 is None or fine1 is None else (fine1 - fine0) / 1e6
        out: dict[str, Any] = {
            "rss_mib": _rss_mib(proc),
            "cpu_ms": cpu * 1000 if fine is None else fine,
            "cpu_ms_ticks": cpu * 1000,
            "fds": proc.num_fds(),
            "threads": proc.num_threads(),
        }
        if isinstance(daemon, common.ProcwardDaemon):
            guardian = daemon.guardian()
            out["guardian_rss_mib"] = _rss_mib(guardian) if guardian else None
        daemon.stop()
        return out
    finally:
        fifo.close()


def run(opts: argparse.Namespace, ws: common.Workspace,
        child: common.ChildProgram) -> dict[str, Any]:
    n = opts.services or (20 if opts.quick else 200)
    window = opts.seconds or (1.0 if opts.quick else 20.0)
    settle = 0.5 if opts.quick else 2.0
    result: dict[str, Any] = {"services": n, "window_seconds": window}
    for cls in common.daemon_classes(ws):
        common.say(f"{NAME}: {cls.label}, no services")
        empty = _empty(ws, cls, min(settle + window, 12.0))
        common.say(f"{NAME}: {cls.label}, {n} services, {window:g}s window")
        loaded = _loaded(ws, child, cls, n=n, window=window, settle=settle)
        loaded["fds_empty"] = empty["fds"]
        loaded["rss_empty_mib"] = empty["rss_mib"]
        loaded["fds_per_child"] = (loaded["fds"] - empty["fds"]) / n
        result[cls.label] = loaded
    return result


def rows(result: dict[str, Any]) -> list[common.Row]:
    n = result["services"]
    pw = result.get("procward", {})
    sv = result.get("supervisord", {})
    rss, cpu, fds = pw.get("rss_mib"), pw.get("cpu_ms"), pw.get("fds_per_child")
    sv_cpu = sv.get("cpu_ms")
    window = result["window_seconds"]
    return [
        common.Row(NAME, f"daemon RSS, {n} children", "MiB", rss, None, "", sv.get("rss_mib"),
                   "<= 45 MiB", common.verdict(None if rss is None else rss <= 45)),
        common.Row(NAME, f"daemon CPU in {window:g}s", "ms", cpu, sv_cpu, "supervisord",
                   sv_cpu, "<= supervisord",
                   common.verdict(None if cpu is None or sv_cpu is None else cpu <= sv_cpu)),
        common.Row(NAME, "open fds per child", "fds", fds, None, "", sv.get("fds_per_child"),
                   "<= 3", common.verdict(None if fds is None else fds <= 3)),
        common.Row(NAME, "guardian RSS", "MiB", pw.get("guardian_rss_mib"), None, "", None, ""),
        common.Row(NAME, "daemon RSS, no services", "MiB", pw.get("rss_empty_mib"), None, "",
                   sv.get("rss_empty_mib"), ""),
    ]


def main(argv: list[str] | None = None) -> int:
    return common.main_for(NAME, build_parser(), run, rows, argv)


if __name__ == "__main__":
    sys.exit(main())
