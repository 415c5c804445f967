"""Turns a located procward.toml into a validated ``Config``, or a ``ConfigError`` listing
every problem.

The steps after ``locate()`` (file, TOML, profile): interpolate ``${VAR}`` in
strings; make relative paths absolute against the file's folder; merge each
service's ``env_file`` under its ``env``; check what a model alone cannot see
(service names, ``depends_on``, alert sinks); validate with pydantic, in this
process. Problems from every step are gathered and raised together, each with
file, line and dotted key, so one run of ``procward check`` shows every mistake.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from procward.config._envfile import parse_env_file
from procward.config._graph import dependency_cycles
from procward.config._interpolate import interpolate_tree
from procward.config._lines import KeyPath, format_key
from procward.config._locate import Located, locate
from procward.config._models import SERVICE_NAME, Config
from procward.config._suggest import did_you_mean, show
from procward.errors import ConfigError, ConfigProblem

__all__ = ["load", "validate_config"]

# An alert action that is not a sink: restart the service whose output matched.
RESTART_ACTION = "restart"


@functools.cache
def _adapter() -> TypeAdapter[Config]:
    return TypeAdapter(Config)


def validate_config(data: dict[str, Any]) -> Config:
    """A ``Config`` from plain data (no file, no line numbers); raises ValidationError."""
    return _adapter().validate_python(data)


def load(
    path: str | os.PathLike[str] | None = None,
    *,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    present: bool = False,
) -> Config:
    """Find, read, check and validate the configuration (``path`` as for ``locate``).

    ``profile`` (default: ``$PROCWARD_PROFILE``) names a ``[profiles.NAME]``
    table to overlay; ``environ`` (default: ``os.environ``) supplies ``${VAR}``
    values and the profile default. Raises ``ConfigError`` carrying every
    problem found, each with its file, line and key path; nothing is returned
    half-applied. ``present`` also checks that each service's working folder and
    program are there (``procward check``, ``wrap``, ``service install``).
    """
    located = locate(path, profile=profile, environ=environ)
    config = _Loader(located).load()
    if present:
        from procward.config._present import absent

        found = absent(config, dict(located.environ))
        if found:
            raise ConfigError([located.problem(key, message) for key, message in found])
    return config


class _Loader:
    """One load of one located file: the problems found so far."""

    def __init__(self, located: Located) -> None:
        self.located = located
        self.problems: list[ConfigProblem] = list(located.problems)

    def problem(self, key: KeyPath, message: str) -> None:
        self.problems.append(self.located.problem(key, message))

    def fail(self) -> ConfigError:
        unique = list(dict.fromkeys(self.problems))
        # File-level problems first, then top to bottom as the user reads the file.
        unique.sort(key=lambda p: p.line or 0)
        return ConfigError(unique)

    def load(self) -> Config:
        data = self.located.data
        if "source" in data:
            # ``source`` is the one Config field the loader sets; a file may not.
            self.problem(("source",), _unknown_key("source", _known_keys(())))
            del data["source"]
        data, found = interpolate_tree(data, self.located.environ)
        for key, message in found:
            self.problem(key, message)
        # A value left uninterpolated is already reported; its type error would only echo it.
        reported = {key for key, _ in found}
        self.resolve_paths(data)
        self.merge_env_files(data)
        self.check_services(data)
        try:
            config = validate_config({"source": self.located.source, **data})
        except ValidationError as e:
            for err in e.errors(include_url=False):
                loc = tuple(err["loc"])
                if not any(loc[: len(key)] == key for key in reported):
                    self.problem(loc, _message(err))
            raise self.fail() from None
        if self.problems:
            raise self.fail()
        return config

    def resolve_paths(self, data: dict[str, Any]) -> None:
        daemon = data.setdefault("procward", {})
        if isinstance(daemon, dict):
            # The defaults are relative too: they live beside the configuration file.
            daemon.setdefault("log_dir", "logs")
            daemon.setdefault("state_dir", "state")
            self.absolute(daemon, "log_dir", "state_dir")
        api = data.get("api")
        if isinstance(api, dict):
            self.absolute(api, "tls_cert", "tls_key", "client_ca")
        services = data.get("services")
        if isinstance(services, dict):
            for service in services.values():
                if isinstance(service, dict):
                    service.setdefault("cwd", ".")
                    self.absolute(service, "cwd", "env_file")

    def absolute(self, table: dict[str, Any], *keys: str) -> None:
        for key in keys:
            value = table.get(key)
            if isinstance(value, str):
                table[key] = str(self.located.resolve(value))

    def merge_env_files(self, data: dict[str, Any]) -> None:
        services = data.get("services")
        if not isinstance(services, dict):
            return
        for name, service in services.items():
            if not isinstance(service, dict) or not isinstance(service.get("env_file"), str):
                continue
            where = ("services", name, "env_file")
            env_path = Path(service["env_file"])
            try:
                text = env_path.read_bytes().decode("utf-8").removeprefix("\ufeff")
            except FileNotFoundError:
                self.problem(where, f"no such file: {env_path}")
                continue
            except (OSError, UnicodeDecodeError) as e:
                reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
                self.problem(where, f"cannot read {env_path}: {reason or e}")
                continue
            from_file, bad_lines = parse_env_file(text)
            for number, message in bad_lines:
                self.problem(where, f"{env_path}:{number}: {message}")
            env = service.get("env", {})
            if isinstance(env, dict):
                # The table in procward.toml is the more specific setting, so it wins.
                service["env"] = {**from_file, **env}

    def check_services(self, data: dict[str, Any]) -> None:
        services = data.get("services")
        if not isinstance(services, dict):
            return
        for name in list(services):
            if not SERVICE_NAME.match(name):
                self.problem(
                    ("services", name),
                    f'service name "{name}" may hold only letters, digits, "_", "." and "-", '
                    "and may not start with \".\" or \"-\"",
                )
        deps: dict[str, list[str]] = {}
        for name, service in services.items():
            depends_on = service.get("depends_on") if isinstance(service, dict) else None
            if not isinstance(depends_on, list):
                continue
            deps[name] = []
            for index, dep in enumerate(depends_on):
                if not isinstance(dep, str):
                    continue  # the model reports the type
                if dep in services:
                    deps[name].append(dep)
                else:
                    hint = did_you_mean(dep, list(services))
                    self.problem(
                        ("services", name, "depends_on", index), f'unknown service "{dep}"{hint}'
                    )
        for cycle in dependency_cycles(deps, list(services)):
            self.problem(
                ("services", cycle[0], "depends_on"),
                f"dependency cycle: {' -> '.join([*cycle, cycle[0]])}",
            )
        # Bad names were reported above; validating them again would only repeat it.
        for name in list(services):
            if not SERVICE_NAME.match(name):
                del services[name]
        self.check_alert_actions(data, services)

    def check_alert_actions(self, data: dict[str, Any], services: dict[str, Any]) -> None:
        alerts = data.get("alerts")
        sinks = alerts.get("sinks") if isinstance(alerts, dict) else None
        sink_names = list(sinks) if isinstance(sinks, dict) else []
        for name, service in services.items():
            rules = service.get("alerts") if isinstance(service, dict) else None
            if not isinstance(rules, list):
                continue
            for r, rule in enumerate(rules):
                actions = rule.get("actions") if isinstance(rule, dict) else None
                if not isinstance(actions, list):
                    continue
                for a, action in enumerate(actions):
                    if not isinstance(action, str) or action == RESTART_ACTION:
                        continue
                    if action not in sink_names:
                        hint = did_you_mean(action, [*sink_names, RESTART_ACTION])
                        self.problem(
                            ("services", name, "alerts", r, "actions", a),
                            f'unknown alert sink "{action}"{hint}; define it as '
                            f"[alerts.sinks.{format_key((action,))}]",
                        )


# -- messages ------------------------------------------------------------------


def _unknown_key(key: str, known: list[str]) -> str:
    return f'unknown key "{key}"{did_you_mean(key, known)}'


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """A dataclass's fields and their (evaluated) types, with ``Annotated`` kept."""
    return get_type_hints(cls, include_extras=True)


def _unwrap(tp: Any) -> Any:
    """The type inside ``Annotated[...]`` and ``X | None``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
            continue
        if origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _known_keys(table: KeyPath) -> list[str]:
    """The keys the model allows in the table at ``table`` (empty if it is not a model)."""
    tp: Any = Config
    for part in table:
        tp = _unwrap(tp)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            hints = _field_types(tp)
            if str(part) not in hints:
                return []
            tp = hints[str(part)]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) is list:
            tp = get_args(tp)[0]
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return [name for name in _field_types(tp) if not (tp is Config and name == "source")]
    return []


_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "dataclass_type": "a table",
    "dataclass_exact_type": "a table",
    "path_type": "a path (a string)",
}

_BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "more than"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
}


def _message(err: ErrorDetails) -> str:
    """A pydantic error as a sentence a user can act on."""
    kind = err["type"]
    loc = tuple(err["loc"])
    ctx = err.get("ctx") or {}
    value = err.get("input")
    got = f", got {show(value)}"
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return _unknown_key(str(loc[-1]), _known_keys(loc[:-1]))
    if kind == "missing":
        return "required key missing"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"expected one of {', '.join(choices)}{got}"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == "list_type" and isinstance(value, dict):
        return (
            f"expected an array, got a table (write [[{format_key(loc)}]] with two brackets "
            "for each entry)"
        )
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}{got}"
    if kind in _BOUNDS:
        bound, words = _BOUNDS[kind]
        return f"must be {words} {ctx.get(bound)}{got}"
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return "must not be empty" if least == 1 else f"needs at least {least} items"
    if kind == "too_long":
        return f"may hold at most {ctx.get('max_length')} items"
    message = err["msg"]
    return message[:1].lower() + message[1:] + got
