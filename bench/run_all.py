#!/usr/bin/env python3
"""Run every procward benchmark and print one summary table.

Each benchmark measures procward, supervisord and the limit (no supervisor)
in the same run; the table shows procward's figure, the baseline, their
ratio, supervisord's figure, the target and PASS/MISS. A benchmark that fails
to measure is reported as ERROR and the others still run; the exit status is
1 if any did.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from types import ModuleType
from typing import Any

import alert_matcher
import common
import control_plane
import idle
import log_throughput
import restart_latency
import start_stop_many

BENCHMARKS: dict[str, ModuleType] = {
    restart_latency.NAME: restart_latency,
    log_throughput.NAME: log_throughput,
    start_stop_many.NAME: start_stop_many,
    idle.NAME: idle,
    control_plane.NAME: control_plane,
    alert_matcher.NAME: alert_matcher,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_all.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_arguments(p)
    p.add_argument("--only", action="append", choices=sorted(BENCHMARKS), default=None,
                   help="run only this benchmark (repeat for several)")
    return p


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    common.install_signal_handlers()
    shared = [flag for flag, on in (("--quick", opts.quick), ("--keep", opts.keep),
                                    ("--python-child", opts.python_child)) if on]
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    rows: list[common.Row] = []
    child_kind = None
    started = time.monotonic()
    for name, module in BENCHMARKS.items():
        if opts.only and name not in opts.only:
            continue
        # Each benchmark's own defaults, as if its script were run with the shared flags.
        bench_opts = module.build_parser()
        common.add_common_arguments(bench_opts)
        try:
            result = common.run_one(name, bench_opts.parse_args(shared), module.run)
        except Exception as e:  # one broken benchmark must not hide the others
            common.say(f"{name}: ERROR {e!r}")
            errors[name] = "".join(traceback.format_exception(e))
            rows.append(common.Row(name, "did not complete", "", None, verdict="ERROR",
                                   target=repr(e)[:60]))
            continue
        results[name] = result
        child_kind = result.get("child", child_kind)
        rows.extend(module.rows(result))
    elapsed = time.monotonic() - started
    if opts.json:
        print(json.dumps({
            "completed": not errors,
            "quick": opts.quick,
            "seconds": round(elapsed, 1),
            "machine": common.machine_info(child_kind),
            "results": results,
            "errors": errors,
            "summary": [r.to_dict() for r in rows],
        }, indent=2))
    else:
        info = common.machine_info(child_kind)
        print(f"procward {info['procward']} vs supervisor {info['supervisor']} | "
              f"{info['nproc']} x {info['cpu']} | Python {info['python']} | child: "
              f"{info['child']} | {'quick' if opts.quick else 'full'} run, {elapsed:.0f}s")
        print(common.format_table(rows))
        for name, tb in errors.items():
            print(f"\n{name} failed:\n{tb}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
