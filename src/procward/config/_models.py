"""The configuration as validated, immutable data: what a procward.toml means.

These are plain frozen dataclasses, so the daemon can hold a configuration
without importing pydantic (which would cost it about a third of its memory).
pydantic validates them where a file is loaded: each constraint below is an
``Annotated`` marker that turns into pydantic metadata only when pydantic
builds a schema. Durations are float seconds, sizes int bytes, and paths
absolute once the loader has resolved them.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from procward.config._units import parse_duration, parse_size

__all__ = [
    "AlertRule",
    "AlertSink",
    "AlertsSettings",
    "ApiSettings",
    "BackoffSettings",
    "Config",
    "DaemonSettings",
    "Duration",
    "FleetSettings",
    "HealthSettings",
    "LogSettings",
    "ServiceConfig",
    "Size",
    "StartLimitSettings",
    "split_listen",
]


class _Before:
    """Run ``fn`` on the raw value before pydantic checks the type."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self._fn = fn

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_before_validator_function(self._fn, handler(source))


class _Bound:
    """A numeric bound or minimum length, as annotated-types metadata for pydantic."""

    def __init__(self, kind: str, value: int | float) -> None:
        self._kind, self._value = kind, value

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        import annotated_types

        return handler(Annotated[source, getattr(annotated_types, self._kind)(self._value)])


def _split_shell(v: object) -> object:
    # One string is split like a shell would, so "python -m http.server" works.
    return shlex.split(v) if isinstance(v, str) else v


def _signal_name(v: object) -> object:
    if isinstance(v, str):
        v = v.upper()
        return v[3:] if v.startswith("SIG") else v
    return v


def _regex(v: object) -> object:
    if isinstance(v, str):
        try:
            # As the alert matcher compiles it: on the output's bytes, line by line.
            re.compile(v.encode("utf-8"), re.MULTILINE)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from None
    return v


def _listen(v: object) -> object:
    if isinstance(v, str):
        split_listen(v)
    return v


Duration = Annotated[float, _Before(parse_duration)]
Size = Annotated[int, _Before(parse_size)]
Command = Annotated[list[str], _Before(_split_shell), _Bound("MinLen", 1)]

SERVICE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# Names a user may give stop_signal; CTRL_BREAK/CTRL_C are the Windows console events.
StopSignal = Literal["TERM", "INT", "HUP", "QUIT", "KILL", "USR1", "USR2", "CTRL_BREAK", "CTRL_C"]

# Unknown keys are errors, not silently ignored: a typo must not pass as a default.
_STRICT = {"extra": "forbid"}


@dataclass(frozen=True)
class BackoffSettings:
    """Delays between retries of a program that died before it had started."""

    __pydantic_config__ = _STRICT

    initial: Duration = 1.0
    max: Duration = 60.0
    factor: Annotated[float, _Bound("Ge", 1.0)] = 2.0
    jitter: Annotated[float, _Bound("Ge", 0.0), _Bound("Le", 1.0)] = 0.1
    reset_after: Duration = 60.0

    def __post_init__(self) -> None:
        if self.max < self.initial:
            raise ValueError(
                f"max ({self.max:g}s) must not be shorter than initial ({self.initial:g}s)"
            )


@dataclass(frozen=True)
class StartLimitSettings:
    """More automatic restarts than ``burst`` within ``interval`` turn a service ``failed``."""

    __pydantic_config__ = _STRICT

    burst: Annotated[int, _Bound("Ge", 1)] = 5
    interval: Duration = 60.0


@dataclass(frozen=True)
class LogSettings:
    """Where a service's output goes and how it is rotated."""

    __pydantic_config__ = _STRICT

    max_size: Size = 50 * 1024 * 1024
    rotate: Literal["daily", "hourly"] | None = None
    keep: Annotated[int, _Bound("Ge", 0)] = 5
    compress: bool = False
    timestamps: bool = False
    merge_stderr: bool = False


@dataclass(frozen=True)
class HealthSettings:
    """How to tell a running service is healthy (acted on by the health layer)."""

    __pydantic_config__ = _STRICT

    http: str | None = None
    tcp: str | None = None
    command: Annotated[list[str], _Before(_split_shell)] | None = None
    heartbeat: Duration | None = None
    expect_status: int | None = None
    expect_body: str | None = None
    interval: Duration = 5.0
    timeout: Duration = 2.0
    start_period: Duration = 10.0
    failures: Annotated[int, _Bound("Ge", 1)] = 3
    on_unhealthy: Literal["restart", "alert", "none"] = "restart"

    def __post_init__(self) -> None:
        kinds = ("http", "tcp", "command", "heartbeat")
        probes = [p for p in kinds if getattr(self, p) is not None]
        if len(probes) != 1:
            raise ValueError(
                "give exactly one probe: http, tcp, command or heartbeat"
                + (f" (got {', '.join(probes)})" if probes else "")
            )


@dataclass(frozen=True)
class AlertRule:
    """A pattern on a service's output that fires sinks when it matches often enough."""

    __pydantic_config__ = _STRICT

    pattern: Annotated[str, _Before(_regex)]
    stream: Literal["stdout", "stderr", "both"] = "both"
    threshold: Annotated[int, _Bound("Ge", 1)] = 1
    window: Duration = 60.0
    cooldown: Duration = 300.0
    actions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AlertSink:
    """Where alerts go: a webhook, a command, or the OS log."""

    __pydantic_config__ = _STRICT

    type: Literal["webhook", "command", "eventlog", "syslog"]
    url: str | None = None
    command: Annotated[list[str], _Before(_split_shell)] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type == "webhook" and not self.url:
            raise ValueError("a webhook sink needs url")
        if self.type == "command" and not self.command:
            raise ValueError("a command sink needs command")


@dataclass(frozen=True)
class AlertsSettings:
    __pydantic_config__ = _STRICT

    sinks: dict[str, AlertSink] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceConfig:
    """One ``[services.NAME]`` table: a program and how to keep it running."""

    __pydantic_config__ = _STRICT

    command: Command
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    env_file: Path | None = None
    autostart: bool = True
    restart: Literal["always", "on-failure", "never"] = "on-failure"
    success_exit_codes: list[int] = field(default_factory=lambda: [0])
    start_seconds: Duration = 1.0
    backoff: BackoffSettings = field(default_factory=BackoffSettings)
    start_limit: StartLimitSettings = field(default_factory=StartLimitSettings)
    stop_signal: Annotated[StopSignal, _Before(_signal_name)] = "TERM"
    stop_timeout: Duration = 10.0
    depends_on: list[str] = field(default_factory=list)
    instances: Annotated[int, _Bound("Ge", 1), _Bound("Le", 10_000)] = 1
    memory_max: Size | None = None
    notify: bool = False
    logs: LogSettings = field(default_factory=LogSettings)
    health: HealthSettings | None = None
    alerts: list[AlertRule] = field(default_factory=list)


@dataclass(frozen=True)
class DaemonSettings:
    """The ``[procward]`` table: where the daemon keeps its logs and state."""

    __pydantic_config__ = _STRICT

    log_dir: Path = Path("logs")
    state_dir: Path = Path("state")
    log_level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True)
class ApiSettings:
    """The ``[api]`` table: where the control API listens and how it is secured."""

    __pydantic_config__ = _STRICT

    listen: Annotated[str, _Before(_listen)] = "127.0.0.1:0"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    allow_insecure: bool = False
    enabled: bool = True

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither")
        if self.client_ca is not None and self.tls_cert is None:
            raise ValueError("client_ca (mutual TLS) needs tls_cert and tls_key")
        host, _ = split_listen(self.listen)
        if self.enabled and self.tls_cert is None and not self.allow_insecure and not (
            _is_loopback(host)
        ):
            # Tokens would cross the network in clear text.
            raise ValueError(
                f"listening on {host} (beyond loopback) needs tls_cert and tls_key, "
                "or allow_insecure = true"
            )


def split_listen(listen: str) -> tuple[str, int]:
    """``"host:port"`` (IPv6 as ``"[::1]:port"``) as ``(host, port)``; ValueError if malformed."""
    host, sep, port = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f'expected "host:port" such as "127.0.0.1:8080", got "{listen}"')
    return host, int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class FleetSettings:
    """The ``[fleet]`` table: etcd endpoints this host registers with."""

    __pydantic_config__ = _STRICT

    etcd: list[str] = field(default_factory=list)
    prefix: str = "/procward"
    ttl: Duration = 10.0


@dataclass(frozen=True)
class Config:
    """A whole procward.toml after profiles, interpolation and validation."""

    __pydantic_config__ = _STRICT

    source: Path
    procward: DaemonSettings = field(default_factory=DaemonSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    services: dict[str, ServiceConfig] = field(default_factory=dict)
    alerts: AlertsSettings = field(default_factory=AlertsSettings)
    fleet: FleetSettings | None = None

    def __post_init__(self) -> None:
        for name in self.services:
            if not SERVICE_NAME.match(name):
                raise ValueError(
                    f"service name {name!r} may hold only letters, digits, '_', '.' and '-'"
                )
