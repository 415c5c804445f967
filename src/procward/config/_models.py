"""The configuration as validated, immutable data: what a procward.toml means.

These models know nothing of files, line numbers or the engine: the loader turns
TOML into them, the engine reads them. Durations are float seconds, sizes are
int bytes, paths are absolute once the loader has resolved them.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

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

Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]

SERVICE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# Names a user may give stop_signal; CTRL_BREAK/CTRL_C are the Windows console events.
STOP_SIGNALS = ("TERM", "INT", "HUP", "QUIT", "KILL", "USR1", "USR2", "CTRL_BREAK", "CTRL_C")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackoffSettings(_Model):
    """Delays between retries of a program that died before it had started."""

    initial: Duration = 1.0
    max: Duration = 60.0
    factor: float = Field(2.0, ge=1.0)
    jitter: float = Field(0.1, ge=0.0, le=1.0)
    reset_after: Duration = 60.0

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> BackoffSettings:
        if self.max < self.initial:
            raise ValueError(
                f"max ({self.max:g}s) must not be shorter than initial ({self.initial:g}s)"
            )
        return self


class StartLimitSettings(_Model):
    """More automatic restarts than ``burst`` within ``interval`` turn a service ``failed``."""

    burst: int = Field(5, ge=1)
    interval: Duration = 60.0


class LogSettings(_Model):
    """Where a service's output goes and how it is rotated."""

    max_size: Size = 50 * 1024 * 1024
    rotate: Literal["daily", "hourly"] | None = None
    keep: int = Field(5, ge=0)
    compress: bool = False
    timestamps: bool = False
    merge_stderr: bool = False


class HealthSettings(_Model):
    """How to tell a running service is healthy (acted on by the health layer)."""

    http: str | None = None
    tcp: str | None = None
    command: list[str] | None = None
    heartbeat: Duration | None = None
    expect_status: int | None = None
    expect_body: str | None = None
    interval: Duration = 5.0
    timeout: Duration = 2.0
    start_period: Duration = 10.0
    failures: int = Field(3, ge=1)
    on_unhealthy: Literal["restart", "alert", "none"] = "restart"

    @field_validator("command", mode="before")
    @classmethod
    def _split_command(cls, v: object) -> object:
        return shlex.split(v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_probe(self) -> HealthSettings:
        kinds = ("http", "tcp", "command", "heartbeat")
        probes = [p for p in kinds if getattr(self, p) is not None]
        if len(probes) != 1:
            raise ValueError(
                "give exactly one probe: http, tcp, command or heartbeat"
                + (f" (got {', '.join(probes)})" if probes else "")
            )
        return self


class AlertRule(_Model):
    """A pattern on a service's output that fires sinks when it matches often enough."""

    pattern: str
    stream: Literal["stdout", "stderr", "both"] = "both"
    threshold: int = Field(1, ge=1)
    window: Duration = 60.0
    cooldown: Duration = 300.0
    actions: list[str] = Field(default_factory=list)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from None
        return v


class AlertSink(_Model):
    """Where alerts go: a webhook, a command, or the OS log."""

    type: Literal["webhook", "command", "eventlog", "syslog"]
    url: str | None = None
    command: list[str] | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("command", mode="before")
    @classmethod
    def _split_command(cls, v: object) -> object:
        return shlex.split(v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _needs_target(self) -> AlertSink:
        if self.type == "webhook" and not self.url:
            raise ValueError("a webhook sink needs url")
        if self.type == "command" and not self.command:
            raise ValueError("a command sink needs command")
        return self


class AlertsSettings(_Model):
    sinks: dict[str, AlertSink] = Field(default_factory=dict)


class ServiceConfig(_Model):
    """One ``[services.NAME]`` table: a program and how to keep it running."""

    command: list[str] = Field(min_length=1)
    cwd: Path | None = None
    env: dict[str, str] = Field(default_factory=dict)
    env_file: Path | None = None
    autostart: bool = True
    restart: Literal["always", "on-failure", "never"] = "on-failure"
    success_exit_codes: list[int] = Field(default_factory=lambda: [0])
    start_seconds: Duration = 1.0
    backoff: BackoffSettings = Field(default_factory=BackoffSettings)
    start_limit: StartLimitSettings = Field(default_factory=StartLimitSettings)
    stop_signal: Literal[STOP_SIGNALS] = "TERM"  # type: ignore[valid-type]
    stop_timeout: Duration = 10.0
    depends_on: list[str] = Field(default_factory=list)
    instances: int = Field(1, ge=1, le=10_000)
    memory_max: Size | None = None
    notify: bool = False
    logs: LogSettings = Field(default_factory=LogSettings)
    health: HealthSettings | None = None
    alerts: list[AlertRule] = Field(default_factory=list)

    @field_validator("command", mode="before")
    @classmethod
    def _split_command(cls, v: object) -> object:
        # One string is split like a shell would, so "python -m http.server" works.
        return shlex.split(v) if isinstance(v, str) else v

    @field_validator("stop_signal", mode="before")
    @classmethod
    def _normalise_signal(cls, v: object) -> object:
        if isinstance(v, str):
            v = v.upper()
            return v[3:] if v.startswith("SIG") else v
        return v


class DaemonSettings(_Model):
    """The ``[procward]`` table: where the daemon keeps its logs and state."""

    log_dir: Path = Path("logs")
    state_dir: Path = Path("state")
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class ApiSettings(_Model):
    """The ``[api]`` table: where the control API listens and how it is secured."""

    listen: str = "127.0.0.1:9771"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    allow_insecure: bool = False
    enabled: bool = True

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        split_listen(v)
        return v

    @model_validator(mode="after")
    def _tls(self) -> ApiSettings:
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
        return self


def split_listen(listen: str) -> tuple[str, int]:
    """``"host:port"`` (IPv6 as ``"[::1]:port"``) as ``(host, port)``; ValueError if malformed."""
    host, sep, port = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f'expected "host:port" such as "127.0.0.1:9771", got "{listen}"')
    return host, int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class FleetSettings(_Model):
    """The ``[fleet]`` table: etcd endpoints this host registers with."""

    etcd: list[str] = Field(default_factory=list)
    prefix: str = "/procward"
    ttl: Duration = 10.0


class Config(_Model):
    """A whole procward.toml after profiles, interpolation and validation."""

    source: Path
    procward: DaemonSettings = Field(default_factory=DaemonSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    fleet: FleetSettings | None = None

    @field_validator("services")
    @classmethod
    def _names(cls, v: dict[str, ServiceConfig]) -> dict[str, ServiceConfig]:
        for name in v:
            if not SERVICE_NAME.match(name):
                raise ValueError(
                    f"service name {name!r} may hold only letters, digits, '_', '.' and '-'"
                )
        return v
