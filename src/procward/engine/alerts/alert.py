"""The alert: the facts a rule or a built-in alert hands to the sinks."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["Alert"]


@dataclass(frozen=True)
class Alert:
    """What is sent to a sink: the facts someone paged at night needs."""

    kind: str  # rule | failed | unhealthy | restart_storm
    service: str
    instance: str
    rule: str
    message: str
    lines: list[str] = field(default_factory=list)
    count: int = 0
    threshold: int = 0
    window: float = 0.0
    suppressed: int = 0
    sinks: list[str] = field(default_factory=list)
    host: str = field(default_factory=socket.gethostname)
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """The facts as a webhook posts them (``sinks`` is procward's, not the receiver's)."""
        return {
            "kind": self.kind, "service": self.service, "instance": self.instance,
            "rule": self.rule, "message": self.message, "lines": self.lines,
            "count": self.count, "threshold": self.threshold, "window": self.window,
            "suppressed": self.suppressed, "host": self.host,
            "time": datetime.fromtimestamp(self.time, UTC).isoformat(),
        }
