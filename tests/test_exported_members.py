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


def test_config_exports_are_sorted_and_importable() -> None:
    """procward.config exports models, loading and units, without importing pydantic."""
    import subprocess
    import sys

    from procward import config

    assert config.__all__ == sorted(config.__all__)
    assert all(hasattr(config, name) for name in config.__all__)
    probe = "import sys, procward.config; sys.exit('pydantic' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0
