"""The benchmark suite runs end to end, and procward's log capture loses nothing.

Timings vary with the machine, so nothing here asserts on them: only that every
benchmark completed and that every byte the log benchmark's child wrote was
read back from procward's rotated log files, in order and intact.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="the benchmarks use FIFOs and /proc, and start supervisord: Linux only",
)


@pytest.fixture(scope="module")
def quick_run() -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run_all.py"), "--quick", "--json"],
        capture_output=True, text=True, timeout=600, cwd=REPO, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    data: dict[str, object] = json.loads(done.stdout)
    return data


def test_every_benchmark_completes(quick_run: dict[str, object]) -> None:
    """run_all --quick --json finishes every benchmark without an error."""
    assert quick_run["completed"] is True
    assert quick_run["errors"] == {}
    results = quick_run["results"]
    assert isinstance(results, dict)
    assert set(results) == {"restart_latency", "log_throughput", "start_stop_many", "idle",
                            "control_plane", "alert_matcher"}


def test_control_plane_prints_its_figures(quick_run: dict[str, object]) -> None:
    """The control-plane benchmark measured every figure it prints (no timing is checked)."""
    results = quick_run["results"]
    assert isinstance(results, dict)
    cp = results["control_plane"]
    for label in ("python -c pass", "python -m procward status"):
        assert cp["cli"][label]["n"] > 0
        assert cp["cli"][label]["p50"] > 0
    assert cp["concurrent"]["procward"]["n"] == cp["concurrency"] * cp["bursts"]
    assert cp["flood"]["latency"]["busy"]["n"] > 0
    assert cp["flood"]["capture"]["quiet_mb_s"] > 0
    assert cp["flood"]["capture"]["flood_mb_s"] > 0
    summary = quick_run["summary"]
    assert isinstance(summary, list)
    assert any(row["benchmark"] == "control_plane" for row in summary)


def test_procward_log_capture_loses_no_byte(quick_run: dict[str, object]) -> None:
    """Every line the writer child sent through procward is in the log files, in order."""
    results = quick_run["results"]
    assert isinstance(results, dict)
    verify = results["log_throughput"]["procward"]["verify"]
    assert verify["found_bytes"] == verify["expected_bytes"]
    assert verify["lost_bytes"] == 0
    assert verify["corrupted_lines"] == 0
    assert verify["duplicate_lines"] == 0
    assert verify["out_of_order"] == 0
    assert verify["intact"] is True
    assert verify["files"] > 1  # it did rotate
