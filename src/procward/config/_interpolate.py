"""``${VAR}`` and ``${VAR:-default}`` in configuration strings.

Only string values are interpolated (also inside arrays and inline tables),
never keys. ``$$`` is a literal ``$``; a ``$`` followed by anything else is
left alone, so ``"$HOME"`` stays as written. ``${VAR:-default}`` uses the
default when the variable is unset or empty, as a POSIX shell does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from procward.config._lines import KeyPath

__all__ = ["interpolate", "interpolate_tree"]

_TOKEN = re.compile(
    r"""\$(?:
        (?P<dollar>\$)
      | \{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}$]*))?\}
      | (?P<bad>\{)
    )""",
    re.VERBOSE,
)


def interpolate(value: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """``value`` with every ``${…}`` replaced, and a message for each one that could not be."""
    problems: list[str] = []

    def replace(m: re.Match[str]) -> str:
        if m.group("dollar"):
            return "$"
        name = m.group("name")
        if name is None:
            problems.append(
                'malformed "${": write ${NAME} or ${NAME:-default} (a default cannot hold '
                '"$" or "}"; write $$ for a literal $)'
            )
            return m.group()
        current = environ.get(name)
        default = m.group("default")
        if default is not None:
            return current if current else default
        if current is None:
            problems.append(
                f"environment variable {name} is not set (give a default with ${{{name}:-value}})"
            )
            return m.group()
        return current

    return _TOKEN.sub(replace, value), problems


def interpolate_tree(
    data: Any, environ: Mapping[str, str], path: KeyPath = ()
) -> tuple[Any, list[tuple[KeyPath, str]]]:
    """A copy of ``data`` with every string interpolated, and ``(key path, message)`` problems."""
    problems: list[tuple[KeyPath, str]] = []
    if isinstance(data, str):
        value, messages = interpolate(data, environ)
        return value, [(path, msg) for msg in messages]
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, item in data.items():
            out[key], found = interpolate_tree(item, environ, (*path, key))
            problems += found
        return out, problems
    if isinstance(data, list):
        items: list[Any] = []
        for index, item in enumerate(data):
            new, found = interpolate_tree(item, environ, (*path, index))
            items.append(new)
            problems += found
        return items, problems
    return data, problems
