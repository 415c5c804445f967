#!/usr/bin/env python3
"""Alert rules: what 20 regex rules on a service's output cost its log capture.

Each figure is set against the same path without rules, in the same run:

- through the daemon: the log benchmark's writer child (100-byte lines in
  64 KiB writes) runs under ``procward run`` twice, once plain and once with
  20 ``[[services.writer.alerts]]`` rules on both streams; the child's own
  throughput and the daemon's CPU are compared. Every byte is verified.
- in the daemon's process, without pipes: the same lines, in 64 KiB chunks
  copied into a reused buffer as the POSIX reader reads them, fed to a
  ``LogWriter`` (the capture path) and to the ``AlertTee`` that wraps it when
  rules exist; lines per second each sustains. Then again with application
  log lines (words, mixed case, near misses). Both again, on fewer lines,
  with ``import hyperscan`` made to fail: the matcher's plain-Python fallback.

The rules are typical (error words, tracebacks, HTTP 5xx, timeouts) and none
matches the writer's lines, the common case: a matching line costs more, but
matching lines are rare by nature. Target: through the daemon, with rules at
least half the throughput without (>= 0.5x); the in-process figures are shown
for what they explain.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common
import log_throughput

NAME = "alert_matcher"

RULES = [
    r"ERROR|FATAL|CRITICAL",
    r"Traceback \(most recent call last\)",
    r"\bpanic\b",
    r"segfault|Segmentation fault",
    r"connection (refused|reset|timed out)",
    r"timeout after \d+ ?ms",
    r'HTTP/1\.[01]" 5\d\d',
    r"disk (full|quota exceeded)",
    r"OOM|oom-killer|Out of memory",
    r"deadlock detected",
    r"WARN(ING)?:",
    r"[A-Z][a-z]+Exception:",
    r"permission denied",
    r"\d+ retries exhausted",
    r"host unreachable",
    r"certificate (expired|invalid)",
    r"stack overflow",
    r"assertion failed",
    r"^E\d{4} ",
    r"checksum mismatch|corrupt",
]


class RuledProcward(common.ProcwardDaemon):
    """procward with the 20 rules on every service."""

    label = "procward+rules"

    def write_config(self, services: Sequence[common.Service]) -> Path:
        path = super().write_config(services)
        extra: list[str] = []
        for s in services:
            for pattern in RULES:
                extra += [f"[[services.{s.name}.alerts]]",
                          f"pattern = '{pattern}'",  # a TOML literal string: no escapes
                          'stream = "both"', "threshold = 5", "window = 60", ""]
        path.write_text(path.read_text(encoding="utf-8") + "\n" + "\n".join(extra),
                        encoding="utf-8")
        return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="alert_matcher.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-mb", type=int, default=None,
                   help="megabytes the child writes per run (default 300; 20 with --quick)")
    p.add_argument("--rounds", type=int, default=None,
                   help="runs per variant, interleaved; the median is reported "
                        "(default 3; 1 with --quick)")
    return p


def _lines_blob(lines: int) -> bytes:
    # The writer child's line format: a 12-digit number, a space, 86 letters, a newline.
    fills = [bytes(97 + (k + j) % 26 for j in range(86)) + b"\n" for k in range(26)]
    return b"".join(b"%012d " % i + fills[i % 26] for i in range(lines))


# Application log lines as services print them: mixed case, words, numbers,
# and near misses (a "connection " that is not refused) that send a chunk on to
# the rules' regexes. The writer's lines are kind to the prefilter: their letters
# run in alphabet order (measured here, one pass of the rules' 25 texts of the
# time over 64 KiB took 8.6 us on them and 39-44 us on this project's docs).
_TEMPLATES = (
    "INFO  http: request served method=GET path=/api/v1/orders/{n} status=200 bytes={m} "
    "took={k}ms",
    "DEBUG cache: miss for key user:{n}:profile, loading it from the database",
    "INFO  auth: session {h} renewed for user {w} from 10.0.{k}.{m}",
    "INFO  jobs: worker {k} picked up job {n} from the queue emails, attempt 1",
    "DEBUG db: connection pool size={k} idle={m} in use={n}, waiting requests none",
    "INFO  scheduler: cleanup finished, removed {m} expired entries in {k} ms",
    "DEBUG http: keep-alive kept for client {w}, {m} requests on this socket",
)
_WORDS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")


def _log_lines_blob(lines: int) -> bytes:
    """``lines`` log lines from the templates above, the same every run."""
    import random

    pick = random.Random(7)
    out = []
    for i in range(lines):
        text = pick.choice(_TEMPLATES).format(
            n=pick.randrange(10**6), m=pick.randrange(10**4), k=pick.randrange(256),
            h=f"{pick.getrandbits(48):012x}", w=pick.choice(_WORDS))
        out.append(f"2026-11-22T10:{i // 60000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}Z "
                   f"{text}\n".encode())
    return b"".join(out)


def in_process(lines: int, rounds: int, blob: bytes, *,
               native: bool = True) -> dict[str, Any]:
    """Lines per second through LogWriter.feed alone and through the AlertTee around it
    (with ``native`` False, the tee is built where ``import hyperscan`` fails)."""
    from unittest import mock

    from procward.config import AlertRule, LogSettings
    from procward.engine._logs import LogWriter
    from procward.engine.alerts import InstanceRules

    chunks = [memoryview(blob)[i:i + 65536] for i in range(0, len(blob), 65536)]
    # As the POSIX reader does: each chunk is read into one reused buffer (here
    # copied, there by the kernel) and the sink gets a view of its start.
    buffer = bytearray(65536)
    read = memoryview(buffer)
    fired: list[object] = []
    results: dict[str, list[float]] = {"plain": [], "rules": []}
    prefiltered = 0
    with tempfile.TemporaryDirectory(prefix="procward-bench-alerts-") as tmp:
        settings = LogSettings(max_size=0)
        for _ in range(rounds):
            for variant, figures in results.items():
                path = Path(tmp) / f"{variant}.log"
                writer = LogWriter(path, settings, on_problem=lambda *a: None)
                sink: Any = writer
                if variant == "rules":
                    with mock.patch.dict(sys.modules, {} if native else {"hyperscan": None}):
                        rules = InstanceRules("svc", "svc", [AlertRule(pattern=p) for p in RULES],
                                              fire=fired.append, restart=lambda why: None)
                        sink = rules.tee("stdout", writer)
                    prefiltered = sink.prefiltered
                t0 = time.perf_counter()
                for chunk in chunks:
                    n = len(chunk)
                    read[:n] = chunk
                    sink.feed(read[:n])
                figures.append(lines / (time.perf_counter() - t0))
                writer.close()
                path.unlink()
    if fired:
        raise common.BenchError("a rule matched the benchmark's lines; the figure would be off")
    plain = sorted(results["plain"])[rounds // 2]
    ruled = sorted(results["rules"])[rounds // 2]
    return {"lines": lines, "plain_lines_s": plain, "rules_lines_s": ruled,
            "ratio": ruled / plain, "prefiltered": prefiltered, "rounds": results}


_FALLBACK_LINES = 100_000


def run(opts: argparse.Namespace, ws: common.Workspace,
        child: common.ChildProgram) -> dict[str, Any]:
    size_mb = opts.size_mb or (20 if opts.quick else 300)
    rounds = opts.rounds or (1 if opts.quick else 3)
    lines = size_mb * 10**6 // common.LINE_BYTES
    max_size = 50 * common.MIB
    timeout = 60 + size_mb / 5
    runs: dict[str, list[dict[str, Any]]] = {"procward": [], "procward+rules": []}
    for i in range(rounds):
        for cls in (common.ProcwardDaemon, RuledProcward):
            common.say(f"{NAME}: round {i + 1}/{rounds}: {cls.label}, {size_mb} MB")
            runs[cls.label].append(log_throughput._daemon(
                ws, child, cls, lines=lines, max_size=max_size, timeout=timeout,
                round_no=len(runs[cls.label]) + 10 * (cls is RuledProcward)))
    result: dict[str, Any] = {"bytes": lines * common.LINE_BYTES, "rules": len(RULES)}
    for label, rs in runs.items():
        r = log_throughput._median_round(rs)
        r["lines_s"] = r["throughput_mb_s"] * 1e6 / common.LINE_BYTES
        result[label] = r
    plain, ruled = result["procward"], result["procward+rules"]
    result["throughput_ratio"] = ruled["throughput_mb_s"] / plain["throughput_mb_s"]
    # psutil counts CPU in 10 ms ticks: a short --quick run can show none at all.
    result["cpu_ratio"] = (ruled["cpu_seconds"] / plain["cpu_seconds"]
                           if plain["cpu_seconds"] else None)
    for key, blob_of in (("in_process", _lines_blob), ("in_process_log_lines", _log_lines_blob)):
        common.say(f"{NAME}: in-process matcher ({key}), {lines} lines")
        result[key] = in_process(lines, rounds, blob_of(lines))
        # Every regex on every line is slow: fewer lines keep the run short.
        few = min(lines, _FALLBACK_LINES)
        common.say(f"{NAME}: in-process matcher without Hyperscan ({key}), {few} lines")
        result[key + "_fallback"] = in_process(few, rounds, blob_of(few), native=False)
    return result


def rows(result: dict[str, Any]) -> list[common.Row]:
    plain, ruled = result["procward"], result["procward+rules"]
    lost = ruled["verify"]["lost_bytes"]
    out = [
        common.Row(NAME, "20 rules: child throughput", "lines/s", ruled["lines_s"],
                   plain["lines_s"], "no rules", None, ">= 0.5x no rules",
                   common.verdict(result["throughput_ratio"] >= 0.5)),
        common.Row(NAME, "20 rules: daemon CPU", "s", ruled["cpu_seconds"],
                   plain["cpu_seconds"], "no rules", None, ""),
    ]
    for key, lines in (("in_process", ""), ("in_process_log_lines", ", log lines")):
        for suffix, how in (("", ""), ("_fallback", " without Hyperscan")):
            r = result[key + suffix]
            out.append(common.Row(NAME, f"20 rules: in-process feed{how}{lines}", "lines/s",
                                  r["rules_lines_s"], r["plain_lines_s"], "LogWriter alone",
                                  None, ""))
    out.append(common.Row(NAME, "20 rules: bytes lost or damaged", "B", lost, None, "", None,
                          "0", common.verdict(lost == 0)))
    return out


def main(argv: list[str] | None = None) -> int:
    return common.main_for(NAME, build_parser(), run, rows, argv)


if __name__ == "__main__":
    sys.exit(main())
