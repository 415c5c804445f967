"""Status answers: each instance's state with its process's CPU and memory, encoded
once and reused until anything happens.

A burst of requests costs one reading of ``/proc``; an answer is never stale
in state (the next event drops it) and at most ``_STATUS_TTL`` old in its CPU
and memory figures.
"""

from __future__ import annotations

import json
import time
from typing import Any

from procward.api._resources import ResourceSampler
from procward.engine import Control

__all__ = ["StatusAnswers"]

# A cached status answer is reused this long, unless anything happens first.
_STATUS_TTL = 0.5
# States in which an instance's pid is its running program's.
_ALIVE = ("starting", "running", "stopping")
# More distinct questions than this and the cache starts again.
_MAX_CACHED = 256

_Key = tuple[str, ...] | None


class StatusAnswers:
    """The JSON bodies of ``GET /v1/services`` and ``GET /v1/services/{name}``."""

    def __init__(self, control: Control) -> None:
        self._control = control
        self._sampler = ResourceSampler()
        self._bodies: dict[_Key, tuple[float, bytes]] = {}
        control.subscribe(lambda event: self._bodies.clear())

    def body(self, names: list[str] | None) -> bytes:
        """Every instance (None), or those the names select; raises UnknownService."""
        key = None if names is None else tuple(names)
        found = self._bodies.get(key)
        if found is not None and time.monotonic() - found[0] <= _STATUS_TTL:
            return found[1]
        body = json.dumps({"services": self._rows(names)}, separators=(",", ":")).encode()
        if len(self._bodies) > _MAX_CACHED:
            self._bodies.clear()
        self._bodies[key] = (time.monotonic(), body)
        return body

    def _rows(self, names: list[str] | None) -> list[dict[str, Any]]:
        rows = []
        live = set()
        for st in self._control.status(names):
            row = st.to_dict()
            usage = None
            # The pid of an instance that has ended may be another process's by now.
            if st.pid is not None and str(st.state) in _ALIVE:
                usage = self._sampler.usage(st.pid, st.started_at)
                live.add(st.pid)
            row["cpu_percent"] = usage.cpu_percent if usage else None
            row["memory_rss"] = usage.rss if usage else None
            rows.append(row)
        if names is None:
            self._sampler.forget_except(live)
        return rows
