"""Alert rules matched on a service's output lines: the tee, each rule's count, the prefilter.

A rule means Python's ``re`` on each complete line (``^`` and ``$`` at the
line's ends). The tee sits in the output path only of a stream that has
rules, and writes to the log before it looks, so matching never delays or
loses a byte. Every regex on every line is what the rules mean, and what the
tee does where Hyperscan cannot be imported; it is slow. Where it can, one
Hyperscan scan of a database of every rule's pattern goes over each chunk of
whole lines first, and only the rules it reports look at that chunk's lines:
most chunks match no rule and cost that one scan.

Hyperscan reads PCRE syntax, over a chunk of many lines at once. A pattern it
would read differently from Python, or that it cannot compile (lookarounds,
backreferences, one that matches an empty line), is not given to it: that
rule looks at every line. Python's ``re`` on the line decides in every case.
"""

from __future__ import annotations

import functools
import re
import time
from collections import deque
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

from procward._os import OutputSink
from procward.config import AlertRule
from procward.engine.alerts.alert import Alert

if TYPE_CHECKING:
    import hyperscan

__all__ = ["AlertTee", "InstanceRules"]

# Lines kept per rule to send with an alert, and the most of one line sent.
_KEEP_LINES = 20
_LINE_CHARS = 2000
# A line without its end yet is held up to this size; beyond, its start is matched alone.
_MAX_CARRY = 64 * 1024

# Where Python and Hyperscan read a pattern differently, which would make the
# prefilter miss lines Python matches: ``x{,3}`` is a repeat only in Python,
# ``[[:alpha:]]`` a POSIX class only in Hyperscan; ``\A``, ``\Z`` and a scoped
# ``(?-m:...)`` would hold at the ends of the chunk instead of each line; and a
# pattern reaches Hyperscan as a C string, which a NUL would cut short. Matching
# more than is meant costs only speed.
_READ_DIFFERENTLY = re.compile(rb"\{,|(?<!\\)(?:\\\\)*\[[:.=]|\\[AZ]|\(\?[a-zA-Z]*-[a-zA-Z]*m|\x00")


class _Rule:
    """One rule's running state for one instance: recent matches, cooldown."""

    def __init__(self, rule: AlertRule) -> None:
        self.rule = rule
        self.pattern = rule.pattern.encode("utf-8")
        self.regex = re.compile(self.pattern, re.MULTILINE)
        self.times: deque[float] = deque()
        self.lines: deque[str] = deque(maxlen=_KEEP_LINES)
        self.quiet_until = 0.0
        self.suppressed = 0

    def matched(self, line: bytes, now: float) -> bool:
        """Note a matching line; True if the rule should fire now."""
        if now < self.quiet_until:
            self.suppressed += 1
            return False
        self.times.append(now)
        while self.times and now - self.times[0] > self.rule.window:
            self.times.popleft()
        self.lines.append(line.decode("utf-8", "replace").rstrip("\r")[:_LINE_CHARS])
        return len(self.times) >= self.rule.threshold

    def fired(self, now: float) -> None:
        """Start counting again, and stay quiet for the cooldown."""
        self.times.clear()
        self.lines.clear()
        self.suppressed = 0
        self.quiet_until = now + self.rule.cooldown


class InstanceRules:
    """The alert rules of one instance, and the tees that feed them its output."""

    def __init__(self, service: str, instance: str, rules: list[AlertRule], *,
                 fire: Callable[[Alert], None], restart: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.service = service
        self.instance = instance
        self._rules = [_Rule(r) for r in rules]
        self._fire = fire
        self._restart = restart
        self._clock = clock

    def tee(self, stream: str, writer: OutputSink, *, merged: bool = False) -> OutputSink:
        """``writer`` itself when no rule reads ``stream``, else a tee that also matches."""
        rules = [r for r in self._rules if merged or r.rule.stream in (stream, "both")]
        return AlertTee(writer, rules, self.hit) if rules else writer

    def hit(self, rule: _Rule, line: bytes) -> None:
        """Count a line ``rule`` matched; fire (and restart) when it reaches the threshold."""
        now = self._clock()
        if not rule.matched(line, now):
            return
        r = rule.rule
        self._fire(Alert(
            kind="rule", service=self.service, instance=self.instance, rule=r.pattern,
            message=f"{len(rule.times)} line(s) matched {r.pattern!r} within {r.window:g}s",
            lines=list(rule.lines), count=len(rule.times), threshold=r.threshold,
            window=r.window, suppressed=rule.suppressed,
            sinks=[a for a in r.actions if a != "restart"]))
        rule.fired(now)
        if "restart" in r.actions:
            self._restart(f"alert rule {r.pattern!r} fired")


class AlertTee:
    """An output sink: writes to the log first, then matches complete lines against rules."""

    def __init__(self, writer: OutputSink, rules: list[_Rule],
                 hit: Callable[[_Rule, bytes], None]) -> None:
        self._writer = writer
        self._rules = rules
        self._hit = hit
        self._carry = b""
        self._found: set[int] = set()  # what the scan under way reported
        self._database, covered = _prefilter(tuple(r.pattern for r in rules))
        self._always = frozenset(range(len(rules))) - covered
        # How many of the rules the prefilter takes (all of them, for typical rules).
        self.prefiltered = len(covered)

    def feed(self, data: bytes | memoryview) -> None:
        self._writer.feed(data)
        # A view starts at the start of its bytearray (OutputSink's contract):
        # find the line ends there rather than copy every chunk into bytes.
        raw: bytes | bytearray = data.obj if isinstance(data, memoryview) else data  # type: ignore[assignment]
        n = len(data)
        end = raw.rfind(b"\n", 0, n) + 1
        if not end:  # no line end: all of it continues the line held
            self._hold(self._carry + raw[:n])
            return
        first = 0
        if self._carry:
            first = raw.find(b"\n", 0, n) + 1
            self._scan(self._carry + raw[:first])
        if first < end:
            self._scan(memoryview(raw)[first:end])
        self._carry = b""
        self._hold(bytes(raw[end:n]))

    def end_of_run(self) -> None:
        self._writer.end_of_run()
        if self._carry:
            carry, self._carry = self._carry, b""
            self._scan(carry)

    def _hold(self, part: bytes) -> None:
        if len(part) > _MAX_CARRY:
            # A line without end grown huge: match what there is, hold nothing.
            self._carry = b""
            self._scan(part)
        else:
            self._carry = part

    def _scan(self, lines: bytes | memoryview) -> None:
        """Match the lines of ``lines`` (whole lines, or the last of a run without its end)."""
        rules = self._rules
        if self._database is not None:
            found = self._found = set()
            # Any bytes-like object will do (its stub names only str and bytes).
            self._database.scan(lines, match_event_handler=self._note)  # type: ignore[type-var]
            if not found and not self._always:
                return
            found |= self._always
            rules = [r for i, r in enumerate(rules) if i in found]
        for line in bytes(lines).split(b"\n"):
            if line:
                for rule in rules:
                    if rule.regex.search(line):
                        self._hit(rule, line)

    def _note(self, rule: int, start: int, end: int, flags: int, context: object) -> None:
        self._found.add(rule)


def _prefilter(patterns: tuple[bytes, ...]) -> tuple[hyperscan.Database | None, frozenset[int]]:
    """A Hyperscan database of the patterns it reads as Python does, and their positions."""
    try:
        import hyperscan
    except ImportError:  # no wheel for this machine: every rule looks at every line
        return None, frozenset()
    return _database(hyperscan, patterns)


# Every instance of a service, and both its streams, share a database: it takes
# some milliseconds per pattern to build.
@functools.lru_cache(maxsize=64)
def _database(hs: ModuleType,
              patterns: tuple[bytes, ...]) -> tuple[hyperscan.Database | None, frozenset[int]]:
    # SINGLEMATCH: one report per pattern and scan, which is all the tee asks.
    flags = hs.HS_FLAG_MULTILINE | hs.HS_FLAG_SINGLEMATCH

    def compiled(expressions: list[bytes], ids: list[int]) -> hyperscan.Database:
        database: hyperscan.Database = hs.Database()
        database.compile(expressions=expressions, ids=ids, elements=len(ids), flags=flags)
        return database

    def takes(pattern: bytes) -> bool:
        try:
            compiled([pattern], [0])
        except hs.error:  # a construct it lacks, or a CPU it cannot run on
            return False
        return True

    ids = [i for i, p in enumerate(patterns) if not _READ_DIFFERENTLY.search(p) and takes(p)]
    if not ids:
        return None, frozenset()
    try:
        return compiled([patterns[i] for i in ids], ids), frozenset(ids)
    except hs.error:  # too much for it together: every rule looks at every line
        return None, frozenset()
