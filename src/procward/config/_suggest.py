"""How configuration messages show a value, and suggest the name that was meant."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable

__all__ = ["did_you_mean", "show"]


def show(value: object) -> str:
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


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean "x"?)`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""
