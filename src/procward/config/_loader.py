"""Turns a procward.toml into a validated ``Config``, or a ``ConfigError`` listing every problem.

The steps, in order: read and parse the file (``tomllib``); map each key to its
line (``_lines``); overlay the chosen ``[profiles.NAME]``; interpolate
``${VAR}`` in strings; make relative paths absolute against the file's folder;
merge each service's ``env_file`` under its ``env``; check what a model alone
cannot see (service names, ``depends_on``, alert sinks); validate with the
pydantic models. Problems from every step are gathered and raised together,
each with file, line and dotted key, so one run of ``procward check`` shows
every mistake.

This module also owns where the configuration file is looked for
(``find_config_path``) and the one platform-dependent default location.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
import tomllib
import types
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, NamedTuple, Union, get_args, get_origin

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from procward.config._envfile import parse_env_file
from procward.config._graph import dependency_cycles
from procward.config._interpolate import interpolate_tree
from procward.config._lines import KeyPath, format_key, key_lines, line_for
from procward.config._models import SERVICE_NAME, Config
from procward.config._paths import default_config_path, find_config_path
from procward.config._validate import field_types, validate_config
from procward.errors import ConfigError, ConfigProblem

__all__ = ["LoadFacts", "default_config_path", "find_config_path", "load_config",
           "load_config_with_facts"]

# An alert action that is not a sink: restart the service whose output matched.
RESTART_ACTION = "restart"


def load_config(
    path: str | os.PathLike[str],
    *,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read, check and validate the configuration at ``path``.

    ``profile`` (default: ``$PROCWARD_PROFILE``) names a ``[profiles.NAME]``
    table to overlay; ``environ`` (default: ``os.environ``) supplies ``${VAR}``
    values and the profile default. Raises ``ConfigError`` carrying every
    problem found, each with its file, line and key path; nothing is returned
    half-applied.
    """
    return load_config_with_facts(path, profile=profile, environ=environ)[0]


class LoadFacts(NamedTuple):
    """What a successful load rested on, for the validated-configuration cache."""

    sha256: str  # of the file's bytes as parsed
    cacheable: bool  # False when it read an environment variable or an env_file


def load_config_with_facts(
    path: str | os.PathLike[str],
    *,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Config, LoadFacts]:
    """``load_config``, and the facts that say when its answer may be used again."""
    environ = os.environ if environ is None else environ
    if profile is None:
        profile = environ.get("PROCWARD_PROFILE") or None
    loader = _Loader(Path(path), _Recording(environ))
    config = loader.load(profile)
    cacheable = not loader.environ.names and not loader.read_env_file
    return config, LoadFacts(loader.digest, cacheable)


class _Recording(Mapping[str, str]):
    """An environment that remembers which names were looked up."""

    def __init__(self, inner: Mapping[str, str]) -> None:
        self.inner = inner
        self.names: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.names.add(name)
        return self.inner[name]

    def __iter__(self) -> Iterator[str]:
        self.names.add("*")  # a walk over every name depends on all of them
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)


class _Loader:
    """One load of one file: the problems found so far and where each key is written."""

    def __init__(self, path: Path, environ: _Recording) -> None:
        self.shown = path  # as the user gave it, for messages
        self.source = Path(os.path.abspath(path))
        self.base = self.source.parent
        self.environ = environ
        self.digest = ""
        self.read_env_file = False
        self._text = ""
        self._lines: dict[KeyPath, int] | None = None
        self.problems: list[ConfigProblem] = []

    @property
    def lines(self) -> dict[KeyPath, int]:
        """Where each key is written; mapped only once a problem or a profile needs it
        (for hundreds of services that costs more than the parsing itself)."""
        if self._lines is None:
            self._lines = key_lines(self._text)
        return self._lines

    def problem(self, key: KeyPath, message: str, line: int | None = None) -> None:
        if line is None:
            line = line_for(self.lines, key)
        self.problems.append(ConfigProblem(self.shown, line, format_key(key), message))

    def fail(self) -> ConfigError:
        unique = list(dict.fromkeys(self.problems))
        # File-level problems first, then top to bottom as the user reads the file.
        unique.sort(key=lambda p: p.line or 0)
        return ConfigError(unique)

    # -- the steps -------------------------------------------------------

    def load(self, profile: str | None) -> Config:
        data = self.parse()
        if data is None:
            raise self.fail()
        self.apply_profile(data, profile)
        if "source" in data:
            # ``source`` is the one Config field the loader sets; a file may not.
            self.problem(("source",), _unknown_key("source", _known_keys(())))
            del data["source"]
        data, found = interpolate_tree(data, self.environ)
        for key, message in found:
            self.problem(key, message)
        # A value left uninterpolated is already reported; its type error would only echo it.
        reported = {key for key, _ in found}
        self.resolve_paths(data)
        self.merge_env_files(data)
        self.check_services(data)
        try:
            config = validate_config({"source": self.source, **data})
        except ValidationError as e:
            for err in e.errors(include_url=False):
                loc = tuple(err["loc"])
                if not any(loc[: len(key)] == key for key in reported):
                    self.problem(loc, _message(err))
            raise self.fail() from None
        if self.problems:
            raise self.fail()
        return config

    def parse(self) -> dict[str, Any] | None:
        try:
            raw = self.source.read_bytes()
        except FileNotFoundError:
            self.problem((), "no such file")
            return None
        except OSError as e:
            self.problem((), f"cannot read the file: {e.strerror or e}")
            return None
        self.digest = hashlib.sha256(raw).hexdigest()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            self.problem(
                (), "not UTF-8 text; save the file as UTF-8", raw.count(b"\n", 0, e.start) + 1
            )
            return None
        # Notepad may save UTF-8 with a byte-order mark, which TOML does not allow.
        text = text.removeprefix("\ufeff")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            message, line = _syntax_error(str(e), text)
            self.problem((), f"TOML syntax error: {message}", line)
            return None
        self._text = text
        return data

    def apply_profile(self, data: dict[str, Any], name: str | None) -> None:
        profiles = data.pop("profiles", {})
        if not isinstance(profiles, dict):
            self.problem(
                ("profiles",), f"expected a table of [profiles.NAME] tables, got {_show(profiles)}"
            )
            profiles = {}
        for key, table in profiles.items():
            if not isinstance(table, dict):
                self.problem(("profiles", key), f"a profile must be a table, got {_show(table)}")
            elif "profiles" in table:
                self.problem(("profiles", key, "profiles"), "a profile cannot hold profiles")
        if name is None:
            return
        table = profiles.get(name)
        if not isinstance(table, dict):
            if table is None:
                names = sorted(profiles)
                hint = _did_you_mean(name, names)
                defined = (
                    f"; this file defines {', '.join(names)}"
                    if names
                    else "; this file defines no [profiles.NAME] tables"
                )
                self.problem(("profiles",), f'unknown profile "{name}"{hint}{defined}')
            return
        overlay = {k: v for k, v in table.items() if k != "profiles"}
        _overlay(data, overlay, (), self.lines, ("profiles", name))

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
                # abspath, not resolve(): keep the user's symlinks, drop "." and "..".
                table[key] = os.path.abspath(self.base / value)

    def merge_env_files(self, data: dict[str, Any]) -> None:
        services = data.get("services")
        if not isinstance(services, dict):
            return
        for name, service in services.items():
            if not isinstance(service, dict) or not isinstance(service.get("env_file"), str):
                continue
            where = ("services", name, "env_file")
            env_path = Path(service["env_file"])
            self.read_env_file = True
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
                    hint = _did_you_mean(dep, list(services))
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
                        hint = _did_you_mean(action, [*sink_names, RESTART_ACTION])
                        self.problem(
                            ("services", name, "alerts", r, "actions", a),
                            f'unknown alert sink "{action}"{hint}; define it as '
                            f"[alerts.sinks.{format_key((action,))}]",
                        )


# -- profiles ------------------------------------------------------------------


def _overlay(
    base: dict[str, Any],
    over: Mapping[str, Any],
    at: KeyPath,
    lines: dict[KeyPath, int],
    origin: KeyPath,
) -> None:
    """Merge ``over`` into ``base`` (tables merge, other values replace) and move the
    lines of every replaced value to where the profile wrote it."""
    for key, value in over.items():
        here = (*at, key)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _overlay(base[key], value, here, lines, origin)
            continue
        base[key] = value
        for path in [p for p in lines if p[: len(here)] == here]:
            del lines[path]
        source = (*origin, *here)
        for path, line in list(lines.items()):
            if path[: len(source)] == source:
                lines[(*here, *path[len(source) :])] = line


# -- messages ------------------------------------------------------------------


def _syntax_error(message: str, text: str) -> tuple[str, int | None]:
    """tomllib's message without its position suffix, and the line it names."""
    m = re.search(r"\s*\(at line (\d+), column \d+\)$", message)
    if m:
        return message[: m.start()], int(m.group(1))
    m = re.search(r"\s*\(at end of document\)$", message)
    if m:
        return message[: m.start()] + " at the end of the file", text.count("\n") + 1
    return message, None


def _show(value: object) -> str:
    """A value as the user wrote it in TOML, short enough for a one-line message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        shown = json.dumps(value, ensure_ascii=False, default=str)
        return shown if len(shown) <= 60 else f"an array of {len(value)} items"
    return str(value)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _unknown_key(key: str, known: list[str]) -> str:
    return f'unknown key "{key}"{_did_you_mean(key, known)}'


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
            hints = field_types(tp)
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
        return [name for name in field_types(tp) if not (tp is Config and name == "source")]
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
    got = f", got {_show(value)}"
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
