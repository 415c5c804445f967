"""The dependency graph: the order services stop in, and how long a whole stop can take."""

from __future__ import annotations

from pathlib import Path

from procward.config import stop_budget, stop_order
from procward.testing import make_config


def test_dependents_stop_first_and_independent_services_together(tmp_path: Path) -> None:
    """Each level stops together; a service stops only after everything that depends on
    it, and within a level the file's order is kept."""
    config = make_config(tmp_path, {
        "db": {"command": ["x"]},
        "cache": {"command": ["x"]},
        "api": {"command": ["x"], "depends_on": ["db", "cache"]},
        "web": {"command": ["x"], "depends_on": ["api"]},
        "worker": {"command": ["x"], "depends_on": ["db"]},
        "lone": {"command": ["x"]},
    })
    assert stop_order(config.services) == [["web", "worker", "lone"], ["api"], ["db", "cache"]]


def test_stop_budget_sums_dependency_chains(tmp_path: Path) -> None:
    """Dependents stop before their dependencies, so a chain's stop timeouts add up;
    independent services overlap."""
    config = make_config(tmp_path, {
        "db": {"command": ["x"], "stop_timeout": 20},
        "api": {"command": ["x"], "stop_timeout": 5, "depends_on": ["db"]},
        "web": {"command": ["x"], "stop_timeout": 7, "depends_on": ["api"]},
        "lone": {"command": ["x"], "stop_timeout": 30},
    })
    assert stop_budget(config.services) == 32
    assert stop_budget({}) == 0
