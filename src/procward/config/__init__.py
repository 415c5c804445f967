"""The configuration: pure data models, ``locate()`` and ``load()``.

``locate()`` finds a file and reads it as far as the daemon's state dir and API
address, which is all the CLI's client commands need; ``load()`` goes on to
check and validate the whole file. pydantic is imported only there, when a file
is validated: ``procward status`` never pays for it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from procward.config._locate import Located, find_config_path, locate

if TYPE_CHECKING:
    from procward.config._graph import dependency_cycles, stop_budget, stop_order
    from procward.config._models import (
        SERVICE_NAME,
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
        split_listen,
    )
    from procward.config._suggest import did_you_mean
    from procward.config._units import parse_duration, parse_size

# The rest of the public names, and the module each comes from, imported when
# first asked for: ``procward status`` needs ``locate()`` only, and the models
# (dataclasses, ipaddress, shlex) would be a third of its start-up.
_LATER = {
    **dict.fromkeys(["dependency_cycles", "stop_budget", "stop_order"], "_graph"),
    **dict.fromkeys(["parse_duration", "parse_size"], "_units"),
    "did_you_mean": "_suggest",
    **dict.fromkeys([
        "SERVICE_NAME", "AlertRule", "AlertSink", "AlertsSettings", "ApiSettings",
        "BackoffSettings", "Config", "DaemonSettings", "FleetSettings", "HealthSettings",
        "LogSettings", "ServiceConfig", "StartLimitSettings", "split_listen"], "_models"),
}


def __getattr__(name: str) -> Any:
    module = _LATER.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"procward.config.{module}"), name)
    globals()[name] = value
    return value

def load(path: str | os.PathLike[str] | None = None, *, profile: str | None = None,
         environ: Mapping[str, str] | None = None, present: bool = False) -> Config:
    """Find, read, check and validate a procward.toml (``path`` as ``locate`` takes it);
    raise ``ConfigError`` listing every problem, each with file, line and key.
    ``present`` also checks that each service's working folder and program exist."""
    from procward.config._loader import load as load_located

    return load_located(path, profile=profile, environ=environ, present=present)


def starter_config(python: str = "python") -> str:
    """The commented starter procward.toml ``procward init`` writes; ``python`` is the
    command its example services run."""
    from procward.config._starter import starter_config as text

    return text(python)


def validate_config(data: dict[str, Any]) -> Config:
    """A ``Config`` from plain data (no file, no line numbers); raises pydantic's
    ValidationError. For tests and programs that build a configuration in code."""
    from procward.config._loader import validate_config as validate

    return validate(data)


__all__ = [
    "SERVICE_NAME",
    "AlertRule",
    "AlertSink",
    "AlertsSettings",
    "ApiSettings",
    "BackoffSettings",
    "Config",
    "DaemonSettings",
    "FleetSettings",
    "HealthSettings",
    "Located",
    "LogSettings",
    "ServiceConfig",
    "StartLimitSettings",
    "dependency_cycles",
    "did_you_mean",
    "find_config_path",
    "load",
    "locate",
    "parse_duration",
    "parse_size",
    "split_listen",
    "starter_config",
    "stop_budget",
    "stop_order",
    "validate_config",
]
