"""Where each key of a TOML document is written: key paths mapped to line numbers.

``tomllib`` returns plain data without positions, yet every configuration
problem must name its line. This module scans the TOML text a second time
(only after ``tomllib`` has accepted it) and records the line of every table
header, key, array element and inline-table key, under the same key path the
data has: ``("services", "web", "alerts", 0, "pattern")``.

The scanner understands exactly as much TOML as it needs to find keys: table
headers, arrays of tables (counted, so their elements get indices), dotted and
quoted keys, inline tables, arrays and every string form (so a ``#`` or ``=``
inside a string is never taken for syntax).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import re
import tomllib
from collections.abc import Mapping

__all__ = ["KeyPath", "format_key", "key_lines", "line_for"]

KeyPath = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_WHITESPACE = " \t\r"
# Characters that end a bare scalar (number, boolean, date) inside a value.
_SCALAR_END = ",]}#\n"


class _ScanError(Exception):
    """The text is not TOML the scanner can follow (tomllib accepted it, so: a scanner gap)."""


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: dict[KeyPath, int] = {}
        # How many elements each array of tables has so far, by its resolved path.
        self._aot_counts: dict[KeyPath, int] = {}
        self._newlines = [i for i, ch in enumerate(text) if ch == "\n"]

    # -- positions -------------------------------------------------------

    def line_at(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def record(self, path: KeyPath, pos: int) -> None:
        # First mention wins: that is where the user defined the key.
        self.lines.setdefault(path, self.line_at(pos))

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def expect(self, token: str) -> None:
        if not self.text.startswith(token, self.pos):
            raise _ScanError(f"expected {token!r} at offset {self.pos}")
        self.pos += len(token)

    # -- whitespace ------------------------------------------------------

    def skip_inline_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
            self.pos += 1

    def skip_comment(self) -> None:
        if self.peek() == "#":
            end = self.text.find("\n", self.pos)
            self.pos = len(self.text) if end < 0 else end

    def skip_all(self) -> None:
        """Skip whitespace, newlines and comments."""
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in _WHITESPACE or ch == "\n":
                self.pos += 1
            elif ch == "#":
                self.skip_comment()
            else:
                return

    # -- keys and strings ------------------------------------------------

    def string_end(self) -> int:
        """Offset just past the string starting at ``pos`` (any of the four TOML forms)."""
        text, start = self.text, self.pos
        for delim in ('"""', "'''"):
            if text.startswith(delim, start):
                i = start + 3
                while i < len(text):
                    if delim == '"""' and text[i] == "\\":
                        i += 2
                        continue
                    if text.startswith(delim, i):
                        i += 3
                        # Up to two quotes right before the closing delimiter belong to
                        # the content: '''it's''''' ends after the fifth quote.
                        extra = 0
                        while extra < 2 and i < len(text) and text[i] == delim[0]:
                            i += 1
                            extra += 1
                        return i
                    i += 1
                raise _ScanError("unterminated multi-line string")
        quote = text[start]
        i = start + 1
        while i < len(text):
            ch = text[i]
            if ch == "\\" and quote == '"':
                i += 2
                continue
            if ch == quote:
                return i + 1
            if ch == "\n":
                break
            i += 1
        raise _ScanError("unterminated string")

    def parse_key(self) -> list[str]:
        """A possibly dotted key: ``a``, ``a.b``, ``"a.b".c``, ``'x' . y``."""
        parts: list[str] = []
        while True:
            self.skip_inline_ws()
            ch = self.peek()
            if ch in ('"', "'"):
                end = self.string_end()
                raw = self.text[self.pos : end]
                # tomllib decodes the quoted key exactly as it did for the data.
                parts.append(tomllib.loads(f"k = {raw}")["k"])
                self.pos = end
            else:
                m = _BARE_KEY.match(self.text, self.pos)
                if not m:
                    raise _ScanError(f"expected a key at offset {self.pos}")
                parts.append(m.group())
                self.pos = m.end()
            self.skip_inline_ws()
            if self.peek() != ".":
                return parts
            self.pos += 1

    # -- values ----------------------------------------------------------

    def record_key(self, table: KeyPath, key: list[str], pos: int) -> KeyPath:
        path = table
        for part in key:
            path = (*path, part)
            self.record(path, pos)
        return path

    def parse_value(self, path: KeyPath) -> None:
        ch = self.peek()
        if ch in ('"', "'"):
            self.pos = self.string_end()
        elif ch == "[":
            self.parse_array(path)
        elif ch == "{":
            self.parse_inline_table(path)
        else:
            start = self.pos
            while self.pos < len(self.text) and self.text[self.pos] not in _SCALAR_END:
                self.pos += 1
            if self.pos == start:
                raise _ScanError(f"expected a value at offset {start}")

    def parse_array(self, path: KeyPath) -> None:
        self.expect("[")
        index = 0
        while True:
            self.skip_all()
            if self.peek() == "]":
                self.pos += 1
                return
            self.record((*path, index), self.pos)
            self.parse_value((*path, index))
            index += 1
            self.skip_all()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "]":
                raise _ScanError(f"expected ',' or ']' at offset {self.pos}")

    def parse_inline_table(self, path: KeyPath) -> None:
        self.expect("{")
        while True:
            self.skip_all()
            if self.peek() == "}":
                self.pos += 1
                return
            key_pos = self.pos
            key_path = self.record_key(path, self.parse_key(), key_pos)
            self.expect("=")
            self.skip_inline_ws()
            self.parse_value(key_path)
            self.skip_all()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "}":
                raise _ScanError(f"expected ',' or '}}' at offset {self.pos}")

    # -- the document ----------------------------------------------------

    def resolve_header(self, key: list[str], pos: int, array: bool) -> KeyPath:
        path: KeyPath = ()
        for part in key[:-1]:
            path = (*path, part)
            self.record(path, pos)
            # [a.b] after [[a]] means "b in the latest element of a".
            if path in self._aot_counts:
                path = (*path, self._aot_counts[path] - 1)
        path = (*path, key[-1])
        self.record(path, pos)
        if array:
            index = self._aot_counts.get(path, 0)
            self._aot_counts[path] = index + 1
            path = (*path, index)
            self.record(path, pos)
        return path

    def scan(self) -> None:
        table: KeyPath = ()
        while True:
            self.skip_all()
            if self.pos >= len(self.text):
                return
            start = self.pos
            if self.peek(2) == "[[":
                self.pos += 2
                key = self.parse_key()
                self.expect("]]")
                table = self.resolve_header(key, start, array=True)
            elif self.peek() == "[":
                self.pos += 1
                key = self.parse_key()
                self.expect("]")
                table = self.resolve_header(key, start, array=False)
            else:
                key_path = self.record_key(table, self.parse_key(), start)
                self.expect("=")
                self.skip_inline_ws()
                self.parse_value(key_path)


def key_lines(text: str) -> dict[KeyPath, int]:
    """Map every key path written in ``text`` (already valid TOML) to its first line.

    If the scanner meets TOML it cannot follow, the lines found so far are
    returned: a problem then points at an enclosing table rather than nowhere.
    """
    scanner = _Scanner(text)
    with contextlib.suppress(_ScanError, IndexError, tomllib.TOMLDecodeError):
        scanner.scan()
    return scanner.lines


def line_for(lines: Mapping[KeyPath, int], path: KeyPath) -> int | None:
    """The line of ``path``, else of its longest prefix that has one (``None`` if none has)."""
    for end in range(len(path), 0, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


def format_key(path: KeyPath) -> str:
    """A key path as a user writes it: ``services.web.alerts.0.pattern``, quoting odd parts."""
    parts = []
    for part in path:
        if isinstance(part, int) or _BARE_KEY.fullmatch(part):
            parts.append(str(part))
        else:
            parts.append(json.dumps(part, ensure_ascii=False))
    return ".".join(parts)
