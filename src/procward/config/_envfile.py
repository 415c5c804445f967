"""Reading a service's ``env_file``: ``KEY=VALUE`` lines, the dotenv dialect most tools share.

Accepted: blank lines, ``#`` comments, an optional ``export`` prefix, values in
single quotes (taken literally), double quotes (``\\n``, ``\\t``, ``\\"`` and
``\\\\`` unescaped) or bare (trimmed, and cut at a `` #`` comment). Values are
not interpolated: the file says exactly what the program gets.
"""

from __future__ import annotations

import re

__all__ = ["parse_env_file"]

_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*)$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group()), value)


def _closing_quote(value: str, quote: str) -> int:
    """Index of the quote closing ``value[0]`` (escapes count in double quotes), or -1."""
    i = 1
    while i < len(value):
        if quote == '"' and value[i] == "\\":
            i += 2
            continue
        if value[i] == quote:
            return i
        i += 1
    return -1


def parse_env_file(text: str) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """The variables in ``text``, and ``(line number, message)`` for each line that is not one."""
    env: dict[str, str] = {}
    problems: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            problems.append((number, f"expected KEY=VALUE, got {line!r}"))
            continue
        key, value = m.group(1), m.group(2)
        if value[:1] in ('"', "'"):
            quote = value[0]
            end = _closing_quote(value, quote)
            rest = value[end + 1 :].strip() if end > 0 else ""
            if end < 0 or (rest and not rest.startswith("#")):
                problems.append((number, f"unbalanced {quote} quote in the value of {key}"))
                continue
            value = value[1:end]
            if quote == '"':
                value = _unescape(value)
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        env[key] = value
    return env, problems
