"""memory_max with real processes: the RSS of the whole tree counts, and a hog is restarted."""

from __future__ import annotations

from pathlib import Path

from procward.engine import EventKind, State
from procward.testing import make_config, python, supervised

MIB = 1024 * 1024

# 70 MiB in the main process and 70 MiB in a helper it starts: each alone is under
# the 100 MiB limit, the tree together is over it.
HOG = """
    import subprocess, sys, time
    code = sys.argv[1]
    if sys.argv[2:] == ["helper"]:
        block = b"x" * (70 * 1024 * 1024)
        time.sleep(60)
        sys.exit()
    helper = subprocess.Popen([sys.executable, "-I", "-S", "-c", code, code, "helper"])
    block = b"x" * (70 * 1024 * 1024)
    time.sleep(60)
"""


def test_memory_hog_tree_is_restarted(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A tree whose RSS stays above memory_max is restarted, with a memory_max event."""
    hog = python(HOG)
    cfg = make_config(tmp_path, {
        "hog": {"command": [*hog, hog[-1]], "memory_max": "100MiB", "start_seconds": 0.1,
                "start_limit": {"burst": 50, "interval": "60s"}},
        "calm": {"command": python("import time; time.sleep(60)"), "memory_max": "1GiB"},
    })

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            first = await rec.wait_state("hog", "starting")
            event = await rec.wait(EventKind.MEMORY_MAX)
            over = event[0].payload
            assert event[0].service == "hog" and over.pid == first[0].payload.pid
            assert over.rss > 100 * MIB and over.memory_max == 100 * MIB
            assert "over memory_max" in event[0].message
            stopping = await rec.wait_state("hog", "stopping")
            assert "restarting: memory" in stopping[0].message
            respawn = await rec.wait_for(
                lambda e: e.service == "hog" and e.kind is EventKind.STATE
                and e.payload.state is State.STARTING and e.payload.pid
                and e.payload.pid != first[0].payload.pid)
            assert respawn[0].message.startswith("starting: restart: memory")
            assert sup.status(["hog"])[0].restarts >= 1
            assert not rec.matching("calm", EventKind.MEMORY_MAX)

    run(scenario())
