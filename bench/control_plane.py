#!/usr/bin/env python3
"""Control plane: the CLI's wall time, the API under concurrent requests, and
whether control stays responsive while services flood their logs.

1. ``procward status`` with 100 services (20 with --quick): wall time of the
   whole command (interpreter start, imports, reading the configuration, one
   request, printing the table), run both as the installed ``procward``
   console script and as ``python -m procward status``. Beside it, in the same
   run and interleaved: ``supervisorctl -c supervisord.conf status`` against
   supervisord 4.3 with the same 100 programs, and ``python -c pass`` (the
   floor: the cost of starting any Python program). 30 runs of each (5 with
   --quick) after two warm-up runs; median and p90.
2. 100 concurrent ``GET /v1/services``: 100 threads, each with its own
   connection, released at once by a barrier; each latency runs from connect
   to the last byte of the answer. 5 bursts (1 with --quick). Baselines: the
   same request one at a time, and 100 concurrent
   ``supervisor.getAllProcessInfo`` XML-RPC calls to supervisord.
3. Control under a log flood: 4 services write 100-byte lines to stdout as
   fast as procward takes them (the benchmark child's writer mode).
   - latency: 200 sequential ``GET /v1/services`` (40 with --quick) while the
     writers write, against the same requests on the same daemon just before
     they start; 3 rounds (1 with --quick), pooled;
   - capture: 4 writers of 600 MB each (5 MB with --quick); their total
     throughput (bytes over the span from the first writer's first write to
     the last one's last write, as the children measure it) with and without
     4 client threads requesting ``GET /v1/services`` back to back for the
     whole time; every byte is read back from the log files afterwards.
     9 rounds (1 with --quick), each one quiet and one flooded run, in an
     order that alternates; the slowdown is the median of the rounds'
     flooded/quiet ratios. The span is set by the slowest writer, and how
     2 cores are shared among 4 writers and the daemon varies from run to
     run: with 5 rounds of 300 MB, the same code measured -0.2 % to 15 %
     slowdown; 9 rounds of 600 MB keep that noise well inside the target.

All clients are plain sockets in this process, on the same machine as the
daemon, so their CPU competes with the daemon's: on a 2-core machine that is
part of every figure under load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import common

NAME = "control_plane"
SETTLE = 0.5  # seconds between the writers being ready and "go"
REQUEST_TIMEOUT = 30.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="control_plane.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--services", type=int, default=None,
                   help="services for the CLI and concurrency figures (default 100; 20 with "
                        "--quick)")
    p.add_argument("--runs", type=int, default=None,
                   help="timed runs of each command (default 30; 5 with --quick)")
    p.add_argument("--concurrency", type=int, default=100,
                   help="requests released at once in a burst (default 100)")
    p.add_argument("--bursts", type=int, default=None,
                   help="bursts of concurrent requests (default 5; 1 with --quick)")
    p.add_argument("--writers", type=int, default=4,
                   help="services flooding their logs (default 4)")
    p.add_argument("--requests", type=int, default=None,
                   help="sequential requests during the flood (default 200; 40 with --quick)")
    p.add_argument("--flood-threads", type=int, default=4,
                   help="client threads hammering GET /v1/services (default 4)")
    p.add_argument("--size-mb", type=int, default=None,
                   help="megabytes each writer writes in a capture run (default 600; 5 with "
                        "--quick)")
    p.add_argument("--rounds", type=int, default=None,
                   help="rounds of the latency-under-flood run (default 3; 1 with --quick)")
    p.add_argument("--capture-rounds", type=int, default=None,
                   help="rounds of the capture runs, each with and without the request flood "
                        "(default 9; 1 with --quick)")
    return p


# -- raw HTTP ------------------------------------------------------------------


class Endpoint:
    """Where to send one fixed request, and how to tell a good answer."""

    def __init__(self, family: int, address: Any, payload: bytes, fault: bytes | None = None):
        self.family = family
        self.address = address
        self.payload = payload
        self.fault = fault  # a body containing this is an error (XML-RPC faults are 200s)

    def exchange(self) -> tuple[float, str | None]:
        """One request on a fresh connection: (seconds from connect to the answer's last
        byte, error). As procward's CLI does, the body ends at its Content-Length, not
        when the server closes the connection."""
        t0 = time.perf_counter()
        buf = b""
        length: int | None = None
        head = b""
        try:
            with socket.socket(self.family, socket.SOCK_STREAM) as s:
                s.settimeout(REQUEST_TIMEOUT)
                s.connect(self.address)
                s.sendall(self.payload)
                while True:
                    data = s.recv(262144)
                    buf += data
                    if length is None and b"\r\n\r\n" in buf:
                        head = buf.partition(b"\r\n\r\n")[0]
                        length = -1
                        for line in head.split(b"\r\n")[1:]:
                            name, _, value = line.partition(b":")
                            if name.strip().lower() == b"content-length":
                                length = int(value)
                    if not data or (length is not None and length >= 0
                                    and len(buf) >= len(head) + 4 + length):
                        break
        except (OSError, ValueError) as e:
            return time.perf_counter() - t0, f"{type(e).__name__}: {e}"
        elapsed = time.perf_counter() - t0
        body = buf[len(head) + 4:]
        status = head.split(b"\r\n", 1)[0].split(b" ")
        if length is None or len(status) < 2 or status[1] != b"200":
            return elapsed, f"answer {buf[:80]!r}"
        if length >= 0 and len(body) != length:
            return elapsed, f"short body: {len(body)} of {length} bytes"
        if self.fault is not None and self.fault in body:
            return elapsed, "XML-RPC fault"
        return elapsed, None


def procward_endpoint(daemon: common.ProcwardDaemon,
                      timeout: float = common.DEFAULT_TIMEOUT) -> Endpoint:
    """GET /v1/services on the daemon's API, once it has written api.json."""
    state = daemon.dir / "state"
    deadline = time.monotonic() + timeout
    while True:
        try:
            url = json.loads((state / "api.json").read_text(encoding="utf-8"))["url"]
            token = (state / "admin.token").read_text(encoding="utf-8").strip()
            break
        except (OSError, ValueError, KeyError):
            if time.monotonic() > deadline:
                raise common.BenchError(f"procward wrote no api.json within {timeout:g}s; "
                                        f"{daemon.describe()}") from None
            time.sleep(0.01)
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None or parts.port is None:
        raise common.BenchError(f"unexpected API URL {url!r}")
    path = parts.path.rstrip("/") + "/v1/services"
    payload = (f"GET {path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
               f"Authorization: Bearer {token}\r\nAccept: application/json\r\n"
               "Connection: close\r\n\r\n").encode("latin-1")
    return Endpoint(socket.AF_INET, (parts.hostname, parts.port), payload)


_XMLRPC_ALL = (b"<?xml version='1.0'?>\n<methodCall>\n<methodName>"
               b"supervisor.getAllProcessInfo</methodName>\n<params>\n</params>\n"
               b"</methodCall>\n")


def supervisord_endpoint(sock_path: Path) -> Endpoint:
    """``supervisor.getAllProcessInfo`` (what ``supervisorctl status`` calls) over its socket."""
    payload = (b"POST /RPC2 HTTP/1.0\r\nHost: localhost\r\nContent-Type: text/xml\r\n"
               b"Content-Length: %d\r\n\r\n" % len(_XMLRPC_ALL)) + _XMLRPC_ALL
    return Endpoint(socket.AF_UNIX, str(sock_path), payload, fault=b"<fault>")


def sequential(endpoint: Endpoint, count: int) -> tuple[list[float], list[str]]:
    latencies, errors = [], []
    for _ in range(count):
        elapsed, err = endpoint.exchange()
        latencies.append(elapsed)
        if err:
            errors.append(err)
    return latencies, errors


def burst(endpoint: Endpoint, n: int) -> tuple[list[float], list[str], float]:
    """``n`` threads, released together, one request each: latencies, errors, burst span."""
    barrier = threading.Barrier(n + 1)
    latencies: list[float] = [math.nan] * n
    errors: list[str | None] = [None] * n

    def one(i: int) -> None:
        try:
            barrier.wait(timeout=REQUEST_TIMEOUT)
        except threading.BrokenBarrierError:
            errors[i] = "barrier broken"
            return
        latencies[i], errors[i] = endpoint.exchange()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait(timeout=REQUEST_TIMEOUT)
    t0 = time.perf_counter()
    for t in threads:
        t.join(REQUEST_TIMEOUT * 2)
    span = time.perf_counter() - t0
    return ([x for x in latencies if not math.isnan(x)], [e for e in errors if e], span)


class Flood:
    """Client threads sending the same request back to back until stopped."""

    def __init__(self, endpoint: Endpoint, threads: int) -> None:
        self._endpoint = endpoint
        self._stop = threading.Event()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]
        self.seconds = 0.0

    def _loop(self) -> None:
        while not self._stop.is_set():
            elapsed, err = self._endpoint.exchange()
            self.latencies.append(elapsed)  # list.append is atomic
            if err:
                self.errors.append(err)

    def __enter__(self) -> Flood:
        self._t0 = time.perf_counter()
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(REQUEST_TIMEOUT * 2)
        self.seconds = time.perf_counter() - self._t0


def latency_figures(latencies: Sequence[float]) -> dict[str, float]:
    """p50, p90, p95, max and mean, in milliseconds (nearest-rank percentiles)."""
    ms = [x * 1000 for x in latencies]
    out = common.percentiles(ms)
    if ms:
        s = sorted(ms)
        out["p95"] = s[max(0, math.ceil(0.95 * len(s)) - 1)]
    return out


# -- supervisord with its control socket -------------------------------------------


class SupervisordWithControl(common.SupervisordDaemon):
    """supervisord as in the other benchmarks, plus what ``supervisorctl`` needs: a
    UNIX socket server, the RPC interface, and the client's server URL."""

    @property
    def sock(self) -> Path:
        return self.dir / "supervisor.sock"

    def write_config(self, services: Sequence[common.Service]) -> Path:
        path = super().write_config(services)
        sock = str(self.sock).replace("%", "%%")
        extra = [
            "",
            "[unix_http_server]",
            f"file={sock}",
            "chmod=0700",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{sock}",
            "",
        ]
        with open(path, "a", encoding="utf-8") as f:
            f.write("\n".join(extra))
        return path


def _script(name: str) -> str | None:
    """A console script installed beside this interpreter (the environment's bin/)."""
    path = Path(sys.executable).parent / name
    return str(path) if os.access(path, os.X_OK) else None


# -- 1. CLI wall time ----------------------------------------------------------------


def _run_cli(argv: list[str],
             env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    t0 = time.perf_counter()
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env,
                          check=False, timeout=REQUEST_TIMEOUT)
    return time.perf_counter() - t0, done


def _cli(commands: dict[str, list[str]], services: int, runs: int) -> dict[str, Any]:
    env = common.daemon_env()  # bytecode cached, as for an installed program
    # Warm-up, and a check that each command really did its job.
    for label, argv in commands.items():
        for _ in range(2):
            _, done = _run_cli(argv, env)
        if done.returncode != 0:
            raise common.BenchError(f"{label}: {shlex_join(argv)} exited {done.returncode}: "
                                    f"{done.stderr.decode(errors='replace')[-500:]}")
        if label != "python -c pass":
            lines = done.stdout.decode(errors="replace").strip().splitlines()
            if len(lines) < services:
                raise common.BenchError(f"{label}: {len(lines)} lines of output for "
                                        f"{services} services")
    times: dict[str, list[float]] = {label: [] for label in commands}
    labels = list(commands)
    for i in range(runs):
        # Rotate the order, so none always runs right after the same neighbour.
        for label in labels[i % len(labels):] + labels[:i % len(labels)]:
            elapsed, done = _run_cli(commands[label], env)
            if done.returncode != 0:
                raise common.BenchError(f"{label} exited {done.returncode} on run {i + 1}")
            times[label].append(elapsed)
    return {label: {**latency_figures(ts), "argv": shlex_join(commands[label])}
            for label, ts in times.items()}


def shlex_join(argv: Sequence[str]) -> str:
    """The command as shown in results: the program by its name, not its full path."""
    return shlex.join([Path(argv[0]).name, *argv[1:]])


def _status_and_bursts(opts: argparse.Namespace, ws: common.Workspace,
                       child: common.ChildProgram, *, n: int, runs: int,
                       bursts: int) -> dict[str, Any]:
    classes = common.daemon_classes(ws)
    with_sv = common.SupervisordDaemon in classes
    fifo = common.ReportFifo(ws.path / "status.fifo")
    try:
        services = [common.Service(f"s{i:04d}", child.report(fifo.path), start_seconds=1.0)
                    for i in range(n)]
        pw = common.ProcwardDaemon(ws, "status")
        pw.launch(services)
        sv = None
        if with_sv:
            sv = SupervisordWithControl(ws, "status")
            sv.launch(services)
        total = n * (2 if sv else 1)
        ws.track_pids([r.pid for r in fifo.wait_count(total)])
        pw.wait_log("running", n)
        if sv:
            sv.wait_log("running", n)
        endpoint = procward_endpoint(pw)
        time.sleep(0.5)

        config = str(pw.dir / "procward.toml")
        commands: dict[str, list[str]] = {"python -c pass": [sys.executable, "-c", "pass"]}
        script = _script("procward")
        if script:
            commands["procward status"] = [script, "status", "-c", config]
        else:
            common.say(f"{NAME}: no procward console script beside {sys.executable}")
        commands["python -m procward status"] = [sys.executable, "-m", "procward", "status",
                                                 "-c", config]
        if sv:
            ctl = _script("supervisorctl")
            commands["supervisorctl status"] = (
                [ctl] if ctl else [sys.executable, "-m", "supervisor.supervisorctl"]
            ) + ["-c", str(sv.dir / "supervisord.conf"), "status"]
        common.say(f"{NAME}: CLI status wall time, {n} services, {runs} runs of "
                   f"{len(commands)} commands")
        out: dict[str, Any] = {"cli": _cli(commands, n, runs)}

        common.say(f"{NAME}: {opts.concurrency} concurrent GET /v1/services x {bursts}")
        single, single_err = sequential(endpoint, 20)
        lat: list[float] = []
        errs: list[str] = []
        spans: list[float] = []
        for _ in range(bursts):
            la, er, span = burst(endpoint, opts.concurrency)
            lat += la
            errs += er
            spans.append(span)
            time.sleep(0.2)
        out["concurrent"] = {
            "procward": {**latency_figures(lat), "errors": len(errs),
                         "error_samples": sorted(set(errs))[:5],
                         "burst_ms": [s * 1000 for s in spans],
                         "single": {**latency_figures(single), "errors": len(single_err)}},
        }
        if sv:
            sve = supervisord_endpoint(sv.sock)
            single, single_err = sequential(sve, 20)
            lat, errs = [], []
            for _ in range(bursts):
                la, er, _span = burst(sve, opts.concurrency)
                lat += la
                errs += er
                time.sleep(0.2)
            out["concurrent"]["supervisord"] = {
                **latency_figures(lat), "errors": len(errs),
                "error_samples": sorted(set(errs))[:5],
                "single": {**latency_figures(single), "errors": len(single_err)}}
        pw.stop()
        if sv:
            sv.stop()
        return out
    finally:
        fifo.close()


# -- 3. control under a log flood --------------------------------------------------


def _read_reports(paths: Sequence[Path], timeout: float) -> list[tuple[int, int, int]]:
    deadline = time.monotonic() + timeout
    out = []
    for p in paths:
        while not p.exists():
            if time.monotonic() > deadline:
                raise common.BenchError(f"a writer did not finish within {timeout:g}s")
            time.sleep(0.01)
        written, t0, t1 = (int(x) for x in p.read_text().split())
        out.append((written, t0, t1))
    return out


def _writers(ws: common.Workspace, child: common.ChildProgram, tag: str, *, count: int,
             lines: int, max_size: int, keep: int
             ) -> tuple[common.ProcwardDaemon, list[common.GoSignal], list[Path], Endpoint]:
    daemon = common.ProcwardDaemon(ws, tag)
    gos = [common.GoSignal(daemon.dir / f"go{i}.fifo") for i in range(count)]
    reports = [daemon.dir / f"report{i}" for i in range(count)]
    daemon.launch([common.Service(f"w{i}", child.writer(lines, gos[i].path, reports[i]),
                                  restart=False, start_seconds=0, max_size=max_size, keep=keep)
                   for i in range(count)])
    try:
        daemon.wait_ready()
    except common.BenchError as e:
        raise common.BenchError(f"{e}\n{daemon.describe()}") from None
    for g in gos:
        g.wait_ready()
    endpoint = procward_endpoint(daemon)
    time.sleep(SETTLE)
    return daemon, gos, reports, endpoint


def _capture(ws: common.Workspace, child: common.ChildProgram, *, count: int, size_mb: int,
             flood_threads: int, round_no: int) -> dict[str, Any]:
    """One capture run: ``count`` writers of ``size_mb`` each, with or without a flood."""
    lines = size_mb * 10**6 // common.LINE_BYTES
    max_size = 50 * common.MIB
    keep = math.ceil(lines * common.LINE_BYTES / max_size) + 2
    tag = f"capture-{'flood' if flood_threads else 'quiet'}-{round_no}"
    daemon, gos, reports, endpoint = _writers(ws, child, tag, count=count, lines=lines,
                                                   max_size=max_size, keep=keep)
    timeout = 60 + count * size_mb / 5
    flood = Flood(endpoint, flood_threads) if flood_threads else None
    if flood:
        flood.__enter__()
        time.sleep(0.2)  # the flood runs before the first byte and after the last
    cpu0 = daemon.cpu_seconds()
    try:
        for g in gos:
            g.go()
        done = _read_reports(reports, timeout)
        cpu = daemon.cpu_seconds() - cpu0
    finally:
        if flood:
            flood.__exit__()
    written = sum(d[0] for d in done)
    span = (max(d[2] for d in done) - min(d[1] for d in done)) / 1e9
    # Every byte must be in the files before the daemon stops and they are checked.
    deadline = time.monotonic() + 30
    while sum(p.stat().st_size for i in range(count)
              for p in daemon.log_paths(f"w{i}")) < written and time.monotonic() < deadline:
        time.sleep(0.01)
    daemon.stop()
    out: dict[str, Any] = {"bytes": written, "span_seconds": span,
                           "throughput_mb_s": written / 1e6 / span, "daemon_cpu_seconds": cpu}
    lost = 0
    for i in range(count):
        paths = daemon.log_paths(f"w{i}")
        v = common.verify_log(paths, lines)
        lost += v["lost_bytes"]
        for p in paths:
            p.unlink()
    out["lost_bytes"] = lost
    if flood:
        out["flood"] = {**latency_figures(flood.latencies), "errors": len(flood.errors),
                        "error_samples": sorted(set(flood.errors))[:5],
                        "requests_per_second": len(flood.latencies) / flood.seconds}
    return out


def _latency_under_flood(ws: common.Workspace, child: common.ChildProgram, *, count: int,
                         requests: int, round_no: int,
                         max_size: int = 50 * common.MIB) -> dict[str, Any]:
    """Sequential requests before the writers start, then while they write."""
    # Writers that never finish on their own; small logs that rotate away.
    daemon, gos, reports, endpoint = _writers(ws, child, f"latency-{round_no}", count=count,
                                              lines=10**12, max_size=max_size, keep=1)
    idle, idle_err = sequential(endpoint, requests)
    for g in gos:
        g.go()
    time.sleep(0.05)  # the writers are at full speed
    cpu0 = daemon.cpu_seconds()
    t0 = time.monotonic()
    busy, busy_err = sequential(endpoint, requests)
    seconds = time.monotonic() - t0
    cpu = daemon.cpu_seconds() - cpu0
    still = all(not p.exists() for p in reports)
    # Bytes captured while the requests ran: what the log files grew by, plus rotations.
    daemon.stop()
    if not still:
        raise common.BenchError("a writer ended before the requests did")
    return {"idle": [x * 1000 for x in idle], "busy": [x * 1000 for x in busy],
            "idle_errors": len(idle_err), "busy_errors": len(busy_err),
            "error_samples": sorted(set(idle_err + busy_err))[:5],
            "busy_seconds": seconds, "daemon_cpu_seconds": cpu}


def _flood(opts: argparse.Namespace, ws: common.Workspace, child: common.ChildProgram,
           *, rounds: int, capture_rounds: int, requests: int,
           size_mb: int) -> dict[str, Any]:
    w = opts.writers
    lat = []
    for i in range(rounds):
        common.say(f"{NAME}: latency round {i + 1}/{rounds}: {requests} GET /v1/services "
                   f"before, then while, {w} services flood their logs")
        lat.append(_latency_under_flood(ws, child, count=w, requests=requests, round_no=i))
    quiet: list[dict[str, Any]] = []
    flooded: list[dict[str, Any]] = []
    for i in range(capture_rounds):
        # Alternate which goes first, so a drift of the machine hits both alike.
        for flood_threads in ((0, opts.flood_threads) if i % 2 == 0
                              else (opts.flood_threads, 0)):
            common.say(f"{NAME}: capture round {i + 1}/{capture_rounds}: {w} x {size_mb} MB, "
                       + (f"{flood_threads} threads requesting GET /v1/services"
                          if flood_threads else "no requests"))
            r = _capture(ws, child, count=w, size_mb=size_mb, flood_threads=flood_threads,
                         round_no=i)
            (flooded if flood_threads else quiet).append(r)

    def median(values: list[float]) -> float:
        return common.percentiles(values)["p50"]

    q = median([r["throughput_mb_s"] for r in quiet])
    f = median([r["throughput_mb_s"] for r in flooded])
    paired = [fr["throughput_mb_s"] / qr["throughput_mb_s"]
              for qr, fr in zip(quiet, flooded, strict=True)]
    flood_stats = [r["flood"] for r in flooded]
    idle_ms = [x for r in lat for x in r["idle"]]
    busy_ms = [x for r in lat for x in r["busy"]]
    return {
        "writers": w, "size_mb_per_writer": size_mb,
        "latency": {
            "rounds": rounds, "requests_per_round": requests,
            "idle": {**common.percentiles(idle_ms), "p95": _p95(idle_ms),
                     "errors": sum(r["idle_errors"] for r in lat)},
            "busy": {**common.percentiles(busy_ms), "p95": _p95(busy_ms),
                     "errors": sum(r["busy_errors"] for r in lat)},
            "error_samples": sorted({e for r in lat for e in r["error_samples"]})[:5],
            "per_round": [{k: v for k, v in r.items() if k not in ("idle", "busy")}
                          for r in lat],
        },
        "capture": {
            "rounds": capture_rounds,
            "quiet_mb_s": q, "flood_mb_s": f, "flood_vs_quiet": f / q,
            "flood_vs_quiet_per_round": paired,
            "flood_vs_quiet_paired_median": median(paired),
            "slowdown_percent": (1 - median(paired)) * 100,
            "lost_bytes": sum(r["lost_bytes"] for r in quiet + flooded),
            "flood_requests_per_second": median([x["requests_per_second"]
                                                 for x in flood_stats]),
            "flood_errors": sum(x["errors"] for x in flood_stats),
            "flood_p50_ms": median([x["p50"] for x in flood_stats]),
            "flood_p95_ms": median([x["p95"] for x in flood_stats]),
            "quiet": quiet, "flood": flooded,
        },
    }


def _p95(values: Sequence[float]) -> float:
    s = sorted(values)
    return s[max(0, math.ceil(0.95 * len(s)) - 1)] if s else math.nan


def run(opts: argparse.Namespace, ws: common.Workspace,
        child: common.ChildProgram) -> dict[str, Any]:
    n = opts.services or (20 if opts.quick else 100)
    runs = opts.runs or (5 if opts.quick else 30)
    bursts = opts.bursts or (1 if opts.quick else 5)
    requests = opts.requests or (40 if opts.quick else 200)
    size_mb = opts.size_mb or (5 if opts.quick else 600)
    rounds = opts.rounds or (1 if opts.quick else 3)
    capture_rounds = opts.capture_rounds or (1 if opts.quick else 9)
    result: dict[str, Any] = {"services": n, "runs": runs, "concurrency": opts.concurrency,
                              "bursts": bursts, "load_before": os.getloadavg()}
    result.update(_status_and_bursts(opts, ws, child, n=n, runs=runs, bursts=bursts))
    result["flood"] = _flood(opts, ws, child, rounds=rounds, capture_rounds=capture_rounds,
                              requests=requests, size_mb=size_mb)
    result["load_after"] = os.getloadavg()
    return result


# -- the summary -------------------------------------------------------------------


def rows(result: dict[str, Any]) -> list[common.Row]:
    n = result["services"]
    cli = result["cli"]
    floor = cli["python -c pass"]
    ctl = cli.get("supervisorctl status")
    out: list[common.Row] = []
    for label in ("procward status", "python -m procward status"):
        fig = cli.get(label)
        if fig is None:
            continue
        for q in ("p50", "p90"):
            base = ctl[q] if ctl else None
            target = "< 60 ms" if q == "p50" else ""
            ok = fig[q] < 60 if q == "p50" else None
            out.append(common.Row(NAME, f"`{label}` wall, {n} services, {q}", "ms", fig[q],
                                  base, "supervisorctl" if ctl else "", base, target,
                                  common.verdict(ok)))
    out.append(common.Row(NAME, "`python -c pass` wall (floor), p50", "ms", None, floor["p50"],
                          "python -c pass"))
    # The target was set on a machine where `python -c pass` took 12 ms and
    # `supervisorctl status` 124 ms: 60 ms is 5.0x the one and 0.48x the other.
    # On a slower machine those ratios are the target's measure.
    status = cli.get("procward status")
    if status is not None:
        ratio = status["p50"] / floor["p50"]
        out.append(common.Row(NAME, "`procward status` p50 / `python -c pass` p50", "x", ratio,
                              None, "", None, "<= 5.0x (60 ms / 12 ms)",
                              common.verdict(ratio <= 5.0)))
        if ctl:
            ratio = status["p50"] / ctl["p50"]
            out.append(common.Row(NAME, "`procward status` p50 / `supervisorctl status` p50", "x",
                                  ratio, None, "", None, "<= 0.5x",
                                  common.verdict(ratio <= 0.5)))
    conc = result["concurrent"]
    pw, sv = conc["procward"], conc.get("supervisord")
    c = result["concurrency"]
    out.append(common.Row(NAME, f"{c} concurrent GET /v1/services: errors", "req",
                          pw["errors"], None, "", sv["errors"] if sv else None, "0",
                          common.verdict(pw["errors"] == 0)))
    for q in ("p50", "p95", "max"):
        out.append(common.Row(NAME, f"{c} concurrent GET /v1/services, {q}", "ms", pw[q],
                              pw["single"]["p50"], "one at a time, p50",
                              sv[q] if sv else None))
    fl = result["flood"]
    lat, cap = fl["latency"], fl["capture"]
    w = fl["writers"]
    out.append(common.Row(NAME, f"GET /v1/services during {w}-writer log flood, p50", "ms",
                          lat["busy"]["p50"], lat["idle"]["p50"], "no flood"))
    out.append(common.Row(NAME, f"GET /v1/services during {w}-writer log flood, p95", "ms",
                          lat["busy"]["p95"], lat["idle"]["p95"], "no flood", None, "< 50 ms",
                          common.verdict(lat["busy"]["p95"] < 50)))
    out.append(common.Row(NAME, f"log capture, {w} writers, {fl['size_mb_per_writer']} MB each, "
                          "with status flood", "MB/s", cap["flood_mb_s"], cap["quiet_mb_s"],
                          "no requests", None))
    out.append(common.Row(NAME, "capture slowdown from the status flood (median of rounds)",
                          "%",
                          cap["slowdown_percent"], None, "", None, "< 10 %",
                          common.verdict(cap["slowdown_percent"] < 10)))
    out.append(common.Row(NAME, "status requests served during the capture flood", "req/s",
                          cap["flood_requests_per_second"], None, "", None))
    out.append(common.Row(NAME, "status requests failed during the capture flood", "req",
                          cap["flood_errors"], None, "", None, "0",
                          common.verdict(cap["flood_errors"] == 0)))
    out.append(common.Row(NAME, "log bytes lost or damaged (all capture runs)", "B",
                          cap["lost_bytes"], None, "", None, "0",
                          common.verdict(cap["lost_bytes"] == 0)))
    return out


def main(argv: list[str] | None = None) -> int:
    return common.main_for(NAME, build_parser(), run, rows, argv)


if __name__ == "__main__":
    sys.exit(main())
