"""Finding a configuration file and reading it as far as its daemon's whereabouts.

``locate()`` is the first half of every load and all that a CLI client command
needs: which file (``-c``, ``$PROCWARD_CONFIG``, ``./procward.toml``, the
system's default), its TOML, the chosen ``[profiles.NAME]`` laid over it, and
on request a value with ``${VAR}`` interpolated, the state dir resolved against
the file's folder, or the ``[api]`` table. The loader goes on from here to
interpolate and validate everything (``_loader``); a client stops here, so
asking a daemon for its status never builds the validation models.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from procward._os import default_config_path
from procward.config._interpolate import interpolate
from procward.config._lines import KeyPath, format_key, key_lines, line_for
from procward.config._suggest import did_you_mean, show
from procward.errors import ConfigError, ConfigProblem

__all__ = ["CONFIG_NAME", "Located", "find_config_path", "locate"]

CONFIG_NAME = "procward.toml"


def find_config_path(explicit: str | os.PathLike[str] | None = None,
                     environ: Mapping[str, str] | None = None) -> Path:
    """The configuration file to use: ``explicit``, else ``$PROCWARD_CONFIG``, else
    ``./procward.toml`` if it exists, else the system's default.

    The path is returned as given (possibly relative), so messages show it the
    way the user wrote it; nothing but ``./procward.toml`` is checked for existence.
    """
    environ = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if environ.get("PROCWARD_CONFIG"):
        return Path(environ["PROCWARD_CONFIG"])
    if os.path.isfile(CONFIG_NAME):
        return Path(CONFIG_NAME)
    return default_config_path(environ)


class Located:
    """One configuration file, read: its TOML data with the profile laid over it.

    ``data`` is not interpolated or checked yet. ``problems`` holds what reading
    it found wrong with its profiles; the loader reports them with its own.
    """

    def __init__(self, shown: Path, text: str, data: dict[str, Any], profile: str | None,
                 environ: Mapping[str, str]) -> None:
        self.shown = shown  # as the user named it, for messages
        self.source = Path(os.path.abspath(shown))
        self.text = text
        self.data = data
        self.profile = profile
        self.environ = environ
        self.problems: list[ConfigProblem] = []
        self._replaced: list[KeyPath] = []
        self._lines: dict[KeyPath, int] | None = None
        self._apply_profile()

    @property
    def lines(self) -> dict[KeyPath, int]:
        """Where each key is written (a profile's keys where the profile wrote them).

        Mapped only when a problem needs a line: for hundreds of services the
        mapping costs more than the parsing itself.
        """
        if self._lines is None:
            self._lines = key_lines(self.text)
            self._move_lines()
        return self._lines

    def _move_lines(self) -> None:
        """Give every value the profile replaced the line where the profile wrote it."""
        assert self._lines is not None
        origin = ("profiles", self.profile)
        for here in self._replaced:
            for path in [p for p in self._lines if p[: len(here)] == here]:
                del self._lines[path]
            source = (*origin, *here)
            for path, line in list(self._lines.items()):
                if path[: len(source)] == source:
                    self._lines[(*here, *path[len(source) :])] = line

    def problem(self, key: KeyPath, message: str) -> ConfigProblem:
        """A problem at ``key``, with the line it is written on (or its table's)."""
        return ConfigProblem(self.shown, line_for(self.lines, key), format_key(key), message)

    def text_at(self, table: str, key: str, default: str) -> str:
        """The string at ``[table] key`` with ``${VAR}`` interpolated (``default`` when it
        is not a string); an unset variable stays as written (the loader reports it)."""
        section = self.data.get(table)
        value = section.get(key) if isinstance(section, dict) else None
        return interpolate(value, self.environ)[0] if isinstance(value, str) else default

    def resolve(self, value: str) -> Path:
        """A path from the file, made absolute against the file's folder (``abspath``,
        not ``resolve()``: the user's symlinks are kept, ``.`` and ``..`` dropped)."""
        return Path(os.path.abspath(self.source.parent / value))

    @property
    def state_dir(self) -> Path:
        return self.resolve(self.text_at("procward", "state_dir", "state"))

    @property
    def api(self) -> dict[str, Any]:
        """The ``[api]`` table as written, its strings interpolated."""
        table = self.data.get("api")
        if not isinstance(table, dict):
            return {}
        return {k: interpolate(v, self.environ)[0] if isinstance(v, str) else v
                for k, v in table.items()}

    def _apply_profile(self) -> None:
        profiles = self.data.pop("profiles", {})
        if not isinstance(profiles, dict):
            self.problems.append(self.problem(
                ("profiles",), f"expected a table of [profiles.NAME] tables, got {show(profiles)}"))
            profiles = {}
        for key, table in profiles.items():
            if not isinstance(table, dict):
                self.problems.append(self.problem(
                    ("profiles", key), f"a profile must be a table, got {show(table)}"))
            elif "profiles" in table:
                self.problems.append(self.problem(
                    ("profiles", key, "profiles"), "a profile cannot hold profiles"))
        name = self.profile
        if name is None:
            return
        table = profiles.get(name)
        if table is None:
            names = sorted(profiles)
            defined = (f"; this file defines {', '.join(names)}" if names
                       else "; this file defines no [profiles.NAME] tables")
            self.problems.append(self.problem(
                ("profiles",), f'unknown profile "{name}"{did_you_mean(name, names)}{defined}'))
        if not isinstance(table, dict):
            return
        _merge(self.data, {k: v for k, v in table.items() if k != "profiles"}, (),
               self._replaced)
        if self._lines is not None:  # mapped already, for a problem with the profiles
            self._move_lines()


def locate(path: str | os.PathLike[str] | None = None, *, profile: str | None = None,
           environ: Mapping[str, str] | None = None) -> Located:
    """Find and read the configuration (see ``find_config_path``) with ``profile``
    (default: ``$PROCWARD_PROFILE``) laid over it.

    Raises ``ConfigError`` when the file is missing, unreadable, not UTF-8 or not
    TOML; problems with its profiles are kept in ``problems``, not raised.
    """
    environ = os.environ if environ is None else environ
    if profile is None:
        profile = environ.get("PROCWARD_PROFILE") or None
    shown = find_config_path(path, environ)

    def fail(message: str, line: int | None = None) -> ConfigError:
        return ConfigError([ConfigProblem(shown, line, "", message)])

    try:
        raw = shown.read_bytes()
    except FileNotFoundError:
        raise fail("no such file") from None
    except OSError as e:
        raise fail(f"cannot read the file: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise fail("not UTF-8 text; save the file as UTF-8",
                   raw.count(b"\n", 0, e.start) + 1) from None
    # Notepad may save UTF-8 with a byte-order mark, which TOML does not allow.
    text = text.removeprefix("\ufeff")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message, line = _syntax_error(str(e), text)
        raise fail(f"TOML syntax error: {message}", line) from None
    return Located(shown, text, data, profile, environ)


def _merge(base: dict[str, Any], over: Mapping[str, Any], at: KeyPath,
           replaced: list[KeyPath]) -> None:
    """Lay ``over`` onto ``base`` (tables merge, any other value replaces), noting
    the key path of every value replaced."""
    for key, value in over.items():
        here = (*at, key)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, here, replaced)
        else:
            base[key] = value
            replaced.append(here)


def _syntax_error(message: str, text: str) -> tuple[str, int | None]:
    """tomllib's message without its position suffix, and the line it names."""
    m = re.search(r"\s*\(at line (\d+), column \d+\)$", message)
    if m:
        return message[: m.start()], int(m.group(1))
    m = re.search(r"\s*\(at end of document\)$", message)
    if m:
        return message[: m.start()] + " at the end of the file", text.count("\n") + 1
    return message, None
