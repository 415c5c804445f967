"""The configuration: pure data models, and the loader that builds them from TOML.

Importing this package does not import pydantic: the models are dataclasses,
and the loader (which validates with pydantic) is imported only when called.
"""

from __future__ import annotations

import os

from procward.config._paths import default_config_path, find_config_path

# mypy reads this as True; at run time the CLI's client commands skip `typing`.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from procward.config._graph import dependency_cycles, stop_budget, stop_order
    from procward.config._models import (
        AlertRule,
        AlertSink,
        AlertsSettings,
        ApiSettings,
        BackoffSettings,
        Config,
        DaemonSettings,
        FleetSettings,
        HealthSettings,
        LogSettings,
        ServiceConfig,
        StartLimitSettings,
    )
    from procward.config._transfer import config_from_data
    from procward.config._units import parse_duration, parse_size

# Imported on first use (PEP 562): the CLI's client commands import this package
# only to find the file, and must not pay for building the model classes.
_LAZY = {
    "procward.config._models": (
        "AlertRule", "AlertSink", "AlertsSettings", "ApiSettings", "BackoffSettings", "Config",
        "DaemonSettings", "FleetSettings", "HealthSettings", "LogSettings", "ServiceConfig",
        "StartLimitSettings",
    ),
    "procward.config._graph": ("dependency_cycles", "stop_budget", "stop_order"),
    "procward.config._transfer": ("config_from_data",),
    "procward.config._units": ("parse_duration", "parse_size"),
}


def __getattr__(name: str) -> Any:
    import importlib

    for module, names in _LAZY.items():
        if name in names:
            value = getattr(importlib.import_module(module), name)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AlertRule",
    "AlertSink",
    "AlertsSettings",
    "ApiSettings",
    "BackoffSettings",
    "Config",
    "DaemonSettings",
    "FleetSettings",
    "HealthSettings",
    "IsolatedLoad",
    "LogSettings",
    "ServiceConfig",
    "StartLimitSettings",
    "config_from_data",
    "default_config_path",
    "dependency_cycles",
    "find_config_path",
    "load_config",
    "load_config_isolated",
    "parse_duration",
    "parse_size",
    "stop_budget",
    "stop_order",
    "validate_config",
]


def load_config(
    path: str | os.PathLike[str],
    *,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read, check and validate a procward.toml; raise ``ConfigError`` listing every problem."""
    from procward.config._loader import load_config as load

    return load(path, profile=profile, environ=environ)


def validate_config(data: dict[str, Any]) -> Config:
    """A ``Config`` from plain data (no file, no line numbers); raises ValidationError."""
    from procward.config._validate import validate_config as validate

    return validate(data)


def load_config_isolated(path: str | os.PathLike[str], *, profile: str | None = None) -> Config:
    """``load_config`` run in a child Python process (or its kept answer, see ``IsolatedLoad``):
    this process never imports pydantic.

    The daemon loads its configuration this way; pydantic and the validation
    schemas would otherwise stay in its memory for its whole life.
    """
    return IsolatedLoad(path, profile=profile).result()


class IsolatedLoad:
    """A configuration being validated in a child process; ``result()`` waits for it.

    Starting it first and collecting it later lets the caller import what it
    needs meanwhile, so the two start-up costs overlap. An unchanged file whose
    answer was kept (``_cache``) needs no child at all.
    """

    def __init__(self, path: str | os.PathLike[str], *, profile: str | None = None) -> None:
        import subprocess
        import sys

        from procward.config._cache import ConfigCache

        self._path = path
        profile = profile or os.environ.get("PROCWARD_PROFILE") or None
        self._cache = ConfigCache.open(path, profile)
        self._kept = self._cache.lookup() if self._cache is not None else None
        self._proc: subprocess.Popen[str] | None = None
        if self._kept is not None:
            return
        command = [sys.executable, "-m", "procward.config", os.fspath(path)]
        if profile:
            command += ["--profile", profile]
        # pydantic's plugin discovery scans every installed package; we use none.
        env = {**os.environ, "PYDANTIC_DISABLE_PLUGINS": "1"}
        self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, text=True, env=env)

    @property
    def validated(self) -> bool:
        """Whether a child validated the file (False: the kept answer was used)."""
        return self._proc is not None

    def result(self) -> Config:
        import json
        from pathlib import Path

        from procward.config._transfer import config_from_data
        from procward.errors import ConfigError, ConfigProblem

        if self._proc is None:
            assert self._kept is not None
            return config_from_data(self._kept)
        out, err = self._proc.communicate()
        try:
            answer = json.loads(out)
        except ValueError:
            reason = err.strip() or f"exit {self._proc.returncode}"
            message = f"cannot validate the file: {reason}"
            problem = ConfigProblem(Path(self._path), None, "", message)
            raise ConfigError([problem]) from None
        if "problems" in answer:
            raise ConfigError([ConfigProblem(Path(p["file"]), p["line"], p["key"], p["message"])
                               for p in answer["problems"]])
        if self._cache is not None and answer.get("cacheable"):
            self._cache.store(answer["sha256"], out)
        return config_from_data(answer["config"])
