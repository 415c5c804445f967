"""The configuration: pure data models, and the loader that builds them from TOML.

Importing this package does not import pydantic: the models are dataclasses,
and the loader (which validates with pydantic) is imported only when called.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

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
from procward.config._paths import default_config_path, find_config_path
from procward.config._transfer import config_from_json, config_to_json
from procward.config._units import parse_duration, parse_size

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
    "LogSettings",
    "ServiceConfig",
    "StartLimitSettings",
    "config_from_json",
    "config_to_json",
    "default_config_path",
    "find_config_path",
    "load_config",
    "load_config_isolated",
    "parse_duration",
    "parse_size",
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
    """``load_config`` run in a child Python process: this process never imports pydantic.

    The daemon loads its configuration this way; pydantic and the validation
    schemas would otherwise stay in its memory for its whole life.
    """
    import json
    import subprocess
    import sys
    from pathlib import Path

    from procward.errors import ConfigError, ConfigProblem

    command = [sys.executable, "-m", "procward.config", os.fspath(path)]
    if profile:
        command += ["--profile", profile]
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        reason = done.stderr.strip() or f"exit {done.returncode}"
        raise ConfigError(
            [ConfigProblem(Path(path), None, "", f"could not validate the file: {reason}")]
        ) from None
    if "problems" in answer:
        raise ConfigError([ConfigProblem(Path(p["file"]), p["line"], p["key"], p["message"])
                           for p in answer["problems"]])
    return config_from_json(json.dumps(answer["config"]))
