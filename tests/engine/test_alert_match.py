"""The alert matcher: which lines each rule matches, with the Hyperscan prefilter and without."""

from __future__ import annotations

import itertools
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from procward.config import AlertRule
from procward.engine.alerts import Alert, AlertTee, InstanceRules


class _Log:
    """The log writer's place in the output path: keeps what it is fed."""

    def __init__(self) -> None:
        self.data = b""

    def feed(self, data: bytes | memoryview) -> None:
        self.data += bytes(data)

    def end_of_run(self) -> None:
        pass


@contextmanager
def _prefilter(native: bool) -> Iterator[None]:
    """With ``native`` False, ``import hyperscan`` fails, as where it has no wheel.

    Hyperscan cannot be uninstalled for one test, so its entry in sys.modules is
    made None, which is what makes an import fail; nothing else is replaced.
    """
    with mock.patch.dict(sys.modules, {} if native else {"hyperscan": None}):
        yield


_BOTH = pytest.mark.parametrize("native", [True, False], ids=["hyperscan", "fallback"])


def _tee(patterns: list[str], fired: list[Alert], *, native: bool,
         stream: str = "stdout", merged: bool = False) -> tuple[AlertTee, _Log]:
    """A tee over rules that fire on every matching line (threshold 1, no cooldown)."""
    log = _Log()
    with _prefilter(native), warnings.catch_warnings():
        # Patterns Python warns may change meaning ("Possible nested set") are tested too.
        warnings.simplefilter("ignore", FutureWarning)
        rules = InstanceRules("svc", "svc", [AlertRule(pattern=p, cooldown=0) for p in patterns],
                              fire=fired.append, restart=lambda why: None)
        tee = rules.tee(stream, log, merged=merged)
    assert isinstance(tee, AlertTee)
    return tee, log


def _feed(tee: AlertTee, stream: bytes, cuts: list[int]) -> None:
    """Feed as the POSIX reader does: views of one reused buffer, cut anywhere, with
    stale bytes past each view; then the end of the run."""
    stale = b"E1 ERROR disk full\n"
    buffer = bytearray(stale * (len(stream) // len(stale) + 2))
    for a, b in itertools.pairwise(sorted({0, len(stream), *(c for c in cuts if c < len(stream))})):
        buffer[:b - a] = stream[a:b]
        tee.feed(memoryview(buffer)[:b - a])
    tee.end_of_run()


def _expected(patterns: list[str], stream: bytes) -> list[tuple[str, str]]:
    """(pattern, line) for each line of ``stream`` and each pattern ``re`` finds in it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        regexes = [re.compile(p.encode(), re.MULTILINE) for p in patterns]
    return [(p, line.decode("utf-8", "replace").rstrip("\r"))
            for line in stream.split(b"\n") if line
            for p, regex in zip(patterns, regexes, strict=True) if regex.search(line)]


def _reported(fired: list[Alert]) -> list[tuple[str, str]]:
    return [(alert.rule, alert.lines[0]) for alert in fired]


@_BOTH
def test_lines_split_across_chunks_still_match(native: bool) -> None:
    """A line cut between two reads is matched whole; the log gets every byte unchanged."""
    fired: list[Alert] = []
    tee, log = _tee(["^disk (full|gone)$"], fired, native=native)
    stream = b"ok\ndisk fu" + b"ll\nnothing\ndisk gone"
    _feed(tee, stream, [9])
    assert log.data == stream
    assert [a.lines for a in fired] == [["disk full"], ["disk gone"]]


# Pieces of patterns, most of them read alike by Python and Hyperscan, some not
# (the last row), and ways to put them together, some Hyperscan cannot compile.
_ATOMS = ["a", "b", "E", "1", " ", ":", r"\.", "-", "[ab]", "[^a]", "[a-]", "[]a]", r"\d", r"\w",
          r"\s", r"\S", ".", "^a", "b$", r"\bE", r"\B1", r"\x0b", r"\t", r"\\", "_", "[.]",
          "^", "$", r"\b", r"\A", r"\Z", "[[:alpha:]]", "[a[:digit:]]", "(?-m:^b)", "(?-m:a$)"]
_REPEATS = ["?", "*", "+", "{2}", "{1,2}", "{2,}", "??", "*?", "{,2}", "{,}", "*+"]


def _patterns() -> st.SearchStrategy[str]:
    body = st.recursive(st.sampled_from(_ATOMS), lambda inner: st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map(lambda t: f"(?:{t[0]}|{t[1]})"),
        st.tuples(inner, st.sampled_from(_REPEATS)).map(lambda t: f"(?:{t[0]}){t[1]}"),
        st.tuples(st.sampled_from(["(", "(?i:", "(?s:", "(?x: ", "(?>", "(?=", "(?!"]), inner)
        .map(lambda t: f"{t[0]}{t[1]})"),
        st.tuples(st.sampled_from(["(?<!a)", "(?<=b)"]), inner).map("".join),
    ), max_leaves=5)
    return st.tuples(st.sampled_from(["", "(?i)", "(?x)"]), body).map("".join)


@st.composite
def _rules_and_output(draw: st.DrawFn) -> tuple[list[str], bytes]:
    """Patterns, and output whose lines are random or made to match one of them."""
    patterns = draw(st.lists(_patterns(), min_size=1, max_size=3, unique=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        try:
            for p in patterns:
                re.compile(p.encode())
        except re.error:
            assume(False)
        ascii_text = st.characters(codec="ascii")
        line = st.one_of(st.text(alphabet="abE1 :.-_\t\x0b[]AB", max_size=10),
                         *(st.from_regex(p, alphabet=ascii_text) for p in patterns))
        lines = draw(st.lists(line.map(str.encode), max_size=8))
    return patterns, b"\n".join(lines) + draw(st.sampled_from([b"", b"\n"]))


@_BOTH
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.filter_too_much])
@given(case=_rules_and_output(), cuts=st.lists(st.integers(0, 120), max_size=4))
@example(case=(["(?-m:^b)", "a"], b"a\nb\n"), cuts=[])
@example(case=([r"a{,2}b", r"x[[:alpha:]]", r"\Ab", r"a\Z", "E"], b"ab\nx[]\nb\na\nE\n"), cuts=[])
def test_the_tee_reports_exactly_the_lines_re_matches(native: bool,
                                                      case: tuple[list[str], bytes],
                                                      cuts: list[int]) -> None:
    """Over generated patterns and output, fed in pieces, each rule fires on exactly
    the lines Python's re finds it in, in order, once each; the log gets every byte."""
    patterns, stream = case
    expected = _expected(patterns, stream)
    assume(expected)
    fired: list[Alert] = []
    tee, log = _tee(patterns, fired, native=native)
    if native:
        assume(tee.prefiltered > 0)  # else this is the fallback's case again
    _feed(tee, stream, cuts)
    assert log.data == stream
    assert _reported(fired) == expected


@pytest.mark.parametrize(("pattern", "line"), [
    (r"a{,2}b", b"aab"),              # a repeat in Python, text in Hyperscan
    (r"x[[:alpha:]]", b"x[]"),        # "[:alph" and a "]" in Python, a POSIX class in Hyperscan
    (r"\Aline", b"line"),             # the start of the line, not of the chunk
    (r"line\Z", b"line"),
    (r"(?-m:^line$)", b"line"),
    ("x\x00y|line", b"line"),          # a C string: Hyperscan would read "x"
    (r"(?<!x)line", b"line"),         # what Hyperscan cannot compile
    (r"(l)ine\1*", b"line"),
    (r"lin++e", b"line"),
    (r"x*", b"line"),
])
def test_a_rule_the_prefilter_does_not_take_still_matches(pattern: str, line: bytes) -> None:
    """A pattern Hyperscan would read differently, or cannot compile, fires on the
    lines Python's re matches, in the middle of a chunk as at its ends."""
    fired: list[Alert] = []
    tee, _ = _tee([pattern], fired, native=True)
    _feed(tee, b"first\n" + line + b"\nlast\n", [])
    assert _reported(fired) == _expected([pattern], b"first\n" + line + b"\nlast\n")
    assert (pattern, line.decode()) in _reported(fired)


def test_typical_rules_all_go_through_the_prefilter() -> None:
    """Where Hyperscan installs (it is a dependency), typical rules all take the fast path."""
    typical = [r"ERROR|FATAL", r"Traceback \(most recent call last\)", r"\bpanic\b",
               r"connection (refused|reset)", r"timeout after \d+ ?ms", r"^E\d{4} ",
               r"[A-Z][a-z]+Exception:", r"(?i)out of memory", r"\[error\]"]
    tee, _ = _tee(typical, [], native=True)
    assert tee.prefiltered == len(typical)


def test_a_huge_line_without_end_is_matched_without_waiting_for_it() -> None:
    """Past 64 KiB a line without end is matched as it stands, so memory stays bounded."""
    fired: list[Alert] = []
    tee, _ = _tee(["^ERROR"], fired, native=True)
    tee.feed(b"ERROR " + b"x" * 70_000)
    assert [a.lines[0][:6] for a in fired] == ["ERROR "]


@pytest.mark.parametrize(("stream", "merged", "fires"), [
    ("stdout", False, ["out", "both"]),
    ("stderr", False, ["err", "both"]),
    ("stdout", True, ["out", "err", "both"]),   # merged: one stream, every rule
])
def test_each_stream_gets_the_rules_that_read_it(stream: str, merged: bool,
                                                 fires: list[str]) -> None:
    """A rule reads stdout, stderr or both; with merged streams every rule reads the one."""
    fired: list[Alert] = []
    log = _Log()
    rules = InstanceRules("svc", "svc", [
        AlertRule(pattern="out", stream="stdout", cooldown=0),
        AlertRule(pattern="err", stream="stderr", cooldown=0),
        AlertRule(pattern="both", stream="both", cooldown=0)],
        fire=fired.append, restart=lambda why: None)
    tee = rules.tee(stream, log, merged=merged)
    tee.feed(b"out err both\n")
    assert [a.rule for a in fired] == fires


def test_a_stream_without_rules_is_not_wrapped() -> None:
    """Zero cost without rules: the platform gets the log writer itself."""
    log = _Log()
    rules = InstanceRules("svc", "svc", [AlertRule(pattern="x", stream="stderr")],
                          fire=lambda a: None, restart=lambda why: None)
    assert rules.tee("stdout", log) is log
    assert rules.tee("stderr", log) is not log
