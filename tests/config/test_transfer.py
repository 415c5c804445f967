"""A configuration crosses to the daemon as JSON, and the daemon never imports pydantic."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from procward.config import config_from_data, load_config, load_config_isolated
from procward.config._validate import dump_json
from procward.errors import ConfigError

FULL = """
[procward]
log_dir = "logs"
state_dir = "state"

[api]
listen = "127.0.0.1:9771"

[services.web]
command = "python -m http.server 8000"
env = { PORT = "${PORT:-8000}" }
restart = "always"
backoff = { initial = "250ms", max = "1m", factor = 3, reset_after = "2m" }
start_limit = { burst = 9, interval = "30s" }
stop_signal = "SIGINT"
depends_on = ["db"]
instances = 2
memory_max = "512MB"

[services.web.logs]
max_size = "1MiB"
rotate = "hourly"
compress = true

[services.web.health]
http = "http://127.0.0.1:8000/healthz"
failures = 2

[[services.web.alerts]]
pattern = "ERROR|Traceback"
actions = ["ops"]

[services.db]
command = ["sleep", "600"]

[alerts.sinks.ops]
type = "webhook"
url = "https://hooks.example/ops"
"""


def test_json_round_trip_gives_back_an_equal_config(tmp_path: Path) -> None:
    """Every field, nested tables, paths and units survive the trip to the daemon."""
    (tmp_path / "procward.toml").write_text(FULL)
    config = load_config(tmp_path / "procward.toml", environ={})
    again = config_from_data(json.loads(dump_json(config)))
    assert again == config
    web = again.services["web"]
    assert web.backoff.initial == 0.25 and web.logs.max_size == 1024 * 1024
    assert isinstance(again.procward.log_dir, Path) and again.procward.log_dir.is_absolute()
    assert web.health is not None and web.health.http == "http://127.0.0.1:8000/healthz"


def test_isolated_load_returns_the_config_or_every_problem(tmp_path: Path) -> None:
    """load_config_isolated validates in a child process and reports problems with lines."""
    good = tmp_path / "procward.toml"
    good.write_text(FULL)
    assert load_config_isolated(good) == load_config(good)
    bad = tmp_path / "bad.toml"
    bad.write_text('[services.x]\ncommand = ["a"]\nrestart = "sometimes"\ninstances = 0\n')
    with pytest.raises(ConfigError) as info:
        load_config_isolated(bad)
    assert [(p.line, p.key) for p in info.value.problems] == [
        (3, "services.x.restart"), (4, "services.x.instances")]
    assert info.value.problems[0].file == bad


def test_the_running_daemon_has_not_loaded_pydantic(tmp_path: Path) -> None:
    """A running daemon maps no pydantic code: validation happened in a process that ended."""
    if not Path("/proc/self/maps").exists():
        pytest.skip("needs /proc to look inside the daemon")
    cfg = tmp_path / "procward.toml"
    cfg.write_text('[api]\nlisten = "127.0.0.1:0"\n[services.s]\ncommand = ["sleep", "600"]\n')
    proc = subprocess.Popen([sys.executable, "-m", "procward", "run", "-c", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        events = tmp_path / "logs" / "procward.events.jsonl"
        deadline = time.monotonic() + 15
        while not (events.exists() and '"state":"starting"' in events.read_text()):
            assert time.monotonic() < deadline, "the daemon never started its service"
            time.sleep(0.02)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "_pydantic_core" not in maps
        assert "psutil" in maps  # the check can see extension modules at all
    finally:
        proc.terminate()
        proc.wait(timeout=15)
