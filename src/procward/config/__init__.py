"""The configuration: pure data models and the loader that builds them from TOML."""

from procward.config._loader import find_config_path, load_config
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
    "find_config_path",
    "load_config",
    "parse_duration",
    "parse_size",
]
