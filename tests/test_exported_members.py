"""The public names of each public module are exactly those listed, sorted, and all exist."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "procward": [
        "ClientError", "ConfigError", "ConfigProblem", "FrameError", "IllegalTransition",
        "NotPrivileged", "OsHostError", "ProcwardError", "Service", "SpawnError",
        "StateDirLocked", "UnknownService", "__version__",
    ],
    "procward.api": [
        "ADMIN_TOKEN_FILE", "API_FILE", "TOKENS_FILE", "ApiServer", "TokenInfo", "TokenStore",
    ],
    "procward.config": [
        "SERVICE_NAME", "AlertRule", "AlertSink", "AlertsSettings", "ApiSettings",
        "BackoffSettings", "Config", "DaemonSettings", "FleetSettings", "HealthSettings",
        "Located", "LogSettings", "ServiceConfig", "StartLimitSettings", "dependency_cycles",
        "did_you_mean", "find_config_path", "load", "locate", "parse_duration", "parse_size",
        "split_listen", "starter_config", "stop_budget", "stop_order", "validate_config",
    ],
    "procward.engine": [
        "EVENTS_FILE", "AlertFailure", "AlertFired", "AuthFailure", "Control", "ControlAction",
        "DaemonNote", "Event", "EventKind", "Exit", "Health", "HealthChange", "InstanceStatus",
        "LogDropped", "LogError", "LogResumed", "MemoryMax", "NotifyRejection", "NotifyReport",
        "Payload", "Reload", "ReloadOutcome", "ReloadResult", "SpawnFailure", "State",
        "StateChange", "Supervisor",
    ],
    "procward.service": ["MainFunction", "Service"],
    "procward.testing": ["EventRecorder", "make_config", "python", "supervised"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names(module: str) -> None:
    """__all__ lists the agreed names (in ruff's RUF022 order) and each one is importable."""
    mod = importlib.import_module(module)
    assert mod.__all__ == PUBLIC[module]
    for name in mod.__all__:
        assert hasattr(mod, name), name


def test_config_import_leaves_models_and_validator_for_later() -> None:
    """Importing procward.config (as ``procward status`` does for ``locate()``) imports
    neither pydantic nor the models; asking for a model imports it."""
    import subprocess
    import sys

    probe = ("import sys, procward.config as c\n"
             "later = ['pydantic', 'procward.config._models']\n"
             "assert not [m for m in later if m in sys.modules], sys.modules.keys()\n"
             "c.Config\n"
             "assert 'procward.config._models' in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
