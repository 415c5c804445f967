"""Durations ("250ms", "5s", "2m", "1h", or seconds) and sizes ("50MB", "1GiB", or bytes).

KB/MB/GB and KiB/MiB/GiB both count in powers of 1024, as supervisord and
logrotate read them, so a size means the same whichever spelling a user knows.
"""

from __future__ import annotations

import math
import re

__all__ = ["parse_duration", "parse_size"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KIB|K|MB|MIB|M|GB|GIB|G|TB|TIB|T)?\s*$", re.I)
_SIZE_UNITS = {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as ``"250ms"``, ``"5s"``, ``"2m"``, ``"1h"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as \"5s\", got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        if not math.isfinite(value):
            # TOML allows nan and inf; neither makes a timer.
            raise ValueError(f"a duration must be a finite number of seconds, got {value!r}")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    raise ValueError(
        f'expected a duration such as "250ms", "5s", "2m" or "1h", got {_show(value)}'
    )


def parse_size(value: object) -> int:
    """Bytes from a number or a string such as ``"50MB"`` or ``"1GiB"`` (powers of 1024)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as \"50MB\", got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value!r}")
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            unit = (m.group(2) or "B").upper()[0]
            return int(float(m.group(1)) * _SIZE_UNITS[unit])
    raise ValueError(
        f'expected a size such as "50MB", "1GiB" or a number of bytes, got {_show(value)}'
    )


def _show(value: object) -> str:
    # Double quotes, as the value is written in TOML, not Python's repr quotes.
    return f'"{value}"' if isinstance(value, str) else repr(value)
