"""The alert prefilter: the texts a pattern requires, and the finders that look for them."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from procward.engine import _literals
from procward.engine._literals import finder, required_literals

_atoms = st.sampled_from(["a", "b", "A", "B", ":", " ", "ab", "Ba", "[ab]", r"\d", ".", "^", "$",
                          r"\b", "E", "[0-2]", "[^a]", r"\d{2}"])


def _patterns() -> st.SearchStrategy[str]:
    return st.recursive(
        _atoms,
        lambda inner: st.one_of(
            st.tuples(inner, inner).map("".join),
            st.tuples(inner, inner).map(lambda t: f"(?:{t[0]}|{t[1]})"),
            st.tuples(inner, st.sampled_from(["?", "*", "+", "{2}"])).map(
                lambda t: f"(?:{t[0]}){t[1]}"),
            inner.map(lambda p: f"(?i:{p})"),
            inner.map(lambda p: f"(?={p})"),
        ),
        max_leaves=6,
    )


@settings(max_examples=400, deadline=None)
@given(_patterns(), st.text(alphabet="abAB: 1E02", max_size=30))
def test_required_literals_never_skip_a_match(pattern: str, line: str) -> None:
    """A line a pattern matches always contains one of the texts the prefilter looks
    for (one that begins with a newline: after one, or at the line's start)."""
    needles = required_literals(pattern.encode())
    data = line.encode()
    if re.search(pattern.encode(), data, re.MULTILINE) and needles is not None:
        assert any(_occurs(n, data) for n in needles), (pattern, line, needles)


def _occurs(text: bytes, window: bytes) -> bool:
    """A finder's meaning of "text is in window": a leading newline is a line start."""
    return text in window or (text[:1] == b"\n" and window.startswith(text[1:]))


@pytest.mark.parametrize(("pattern", "texts"), [
    (rb"^E\d{4} ", [b"\nE%d" % d for d in range(10)]),   # a line start and a class
    (rb"^ab", [b"\nab"]),                                  # a line start
    (rb"ab[xy]", [b"abx", b"aby"]),                         # a class
    (rb"^abc", [b"abc"]),                                   # long enough as it is
    (rb"E\d ", [b"E"]),                                    # "E0" … would still be short
    (rb"x[^a]y", [b"x"]),                                   # a negated class adds nothing
])
def test_short_texts_are_lengthened_where_sound(pattern: bytes, texts: list[bytes]) -> None:
    """A text too short for the fast searcher takes in a line start before it or a
    small class after it, when that makes it long enough."""
    assert required_literals(pattern) == texts


@pytest.mark.parametrize(("pattern", "texts"), [
    (rb"connection (refused|reset|timed out)",
     [b"connection refused", b"connection reset", b"connection timed out"]),
    (rb"disk (full|quota (exceeded|reached))!",
     [b"disk full", b"disk quota exceeded", b"disk quota reached"]),
    (rb"disk (full|)", [b"disk "]),                     # an empty alternative: the literal
    (rb"disk (?i:full|quota)", [b"disk "]),             # case-blind: not spelled out
    (rb"xyz(a1|b2|c3|d4|e5|f6|g7|h8|i9)", [b"xyz"]),    # more than eight: the literal
])
def test_an_alternation_after_a_literal_is_spelled_out(pattern: bytes,
                                                       texts: list[bytes]) -> None:
    """A log line with "connection pool" is no candidate for "connection (refused|reset)"
    (each text may then lose a rarely beginning part: see the next test)."""
    found = required_literals(pattern)
    assert found is not None and len(found) == len(texts)
    assert all(text.endswith(end) for text, end in zip(texts, found, strict=True))
    assert not any(end in b"connection pool exhausted" for end in found)


@pytest.mark.parametrize(("text", "expected"), [
    # " re" begins "request" and "received": the searcher would stop at each.
    (b" retries exhausted", b"retries exhausted"),
    (b"\nE0123 disk", b"\nE0123 disk"),  # a line start is kept
    (b"abcdef", b"abcdef"),              # short: kept whole
])
def test_a_text_is_searched_from_where_it_begins_rarely(text: bytes, expected: bytes) -> None:
    """Any end of a required text is required; the searcher is given the end, at least
    two thirds of it, whose first bytes are rarest in log text."""
    assert _literals._rare_start(text) == expected


def _native_available() -> bool:
    return isinstance(finder([b"xyz"]), _literals._AhoCorasickFinder)


@pytest.mark.parametrize("native", [
    pytest.param(True, marks=pytest.mark.skipif(not _native_available(),
                                                reason="ahocorasick_rs is not installed")),
    False,
])
@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.binary(min_size=1, max_size=5), min_size=1, max_size=8),
       chunk=st.binary(max_size=200), cuts=st.tuples(st.integers(0, 200), st.integers(0, 200)),
       in_bytearray=st.booleans())
def test_finder_finds_exactly_the_texts_present(native: bool, texts: list[bytes], chunk: bytes,
                                                cuts: tuple[int, int], in_bytearray: bool) -> None:
    """Each finder reports every text in chunk[start:end], none absent or outside it."""
    start, end = sorted(min(c, len(chunk)) for c in cuts)
    expected = {i for i, text in enumerate(texts) if _occurs(text, chunk[start:end])}
    haystack = bytearray(chunk) if in_bytearray else chunk
    assert finder(texts, native=native).which(haystack, start, end) == expected


@pytest.mark.skipif(not _native_available(), reason="ahocorasick_rs is not installed")
@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.binary(min_size=3, max_size=5), min_size=_literals._GROUP + 1,
                     max_size=2 * _literals._GROUP + 4, unique=True),
       picks=st.lists(st.integers(min_value=0, max_value=2 * _literals._GROUP + 3), max_size=12),
       filler=st.binary(max_size=3), cuts=st.tuples(st.integers(0, 300), st.integers(0, 300)))
def test_native_finder_with_texts_for_several_searchers(texts: list[bytes], picks: list[int],
                                                        filler: bytes,
                                                        cuts: tuple[int, int]) -> None:
    """More texts than one searcher takes (they are split into groups): still exactly
    the texts present, whichever group each is in."""
    chunk = filler.join(texts[i % len(texts)] for i in picks)
    start, end = sorted(min(c, len(chunk)) for c in cuts)
    expected = {i for i, text in enumerate(texts) if _occurs(text, chunk[start:end])}
    searchers = finder(texts)
    assert isinstance(searchers, _literals._AhoCorasickFinder) and len(searchers._groups) >= 2
    assert searchers.which(chunk, start, end) == expected


@pytest.mark.parametrize("native", [
    pytest.param(True, marks=pytest.mark.skipif(not _native_available(),
                                                reason="ahocorasick_rs is not installed")),
    False,
])
def test_a_text_beginning_with_a_newline_also_begins_the_window(native: bool) -> None:
    """A leading newline means a line start: after a newline, or at the window's start."""
    texts = [b"\nE0", b"\nE1", b"abc", b"\nE2"]
    chunk = b"E0 x\nE1 y\nabc E2"
    f = finder(texts, native=native)
    assert f.which(chunk, 0, len(chunk)) == {0, 1, 2}
    assert f.which(chunk, 5, len(chunk)) == {1, 2}
    assert f.which(chunk, 1, len(chunk)) == {1, 2}
    assert f.which(chunk, 14, len(chunk)) == {3}


def test_native_finder_is_used_where_the_dependency_installs() -> None:
    """The fast finder is the one in use: pyproject.toml asks for ahocorasick_rs everywhere."""
    assert _native_available()


_AB = st.sampled_from(b"ab").map(lambda b: bytes([b]))


@pytest.mark.skipif(not _native_available(), reason="ahocorasick_rs is not installed")
@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.lists(_AB, min_size=2, max_size=6).map(b"".join), min_size=2,
                      max_size=10),
       chunk=st.lists(st.sampled_from([b"a", b"b", b"\n"]), max_size=80).map(b"".join))
# "babb" can begin at offsets 1 and 3 of "abab"; here only at 3.
@example(texts=[b"abab", b"babb"], chunk=b"abababb")
def test_native_finder_reports_texts_that_overlap_each_other(texts: list[bytes],
                                                             chunk: bytes) -> None:
    """Over two letters nearly every text begins inside another's occurrence: the fast
    pass skips those, and the finder must look for each one it could have hidden."""
    expected = {i for i, text in enumerate(texts) if text in chunk}
    assert finder(texts).which(chunk, 0, len(chunk)) == expected


def test_native_finder_reports_overlapped_texts() -> None:
    """A text inside another's match is still reported (the fast pass alone would miss it)."""
    texts = [b"connection refused", b"refused", b"tion ref", b"E"]
    found = finder(texts).which(b"xx connection refused\nE1234 x\n", 3, 32)
    assert found == {0, 1, 2, 3}


def _filed(order: list[bytes], count: int) -> set[frozenset[bytes]]:
    """The buckets the searcher makes of ``order``, by the rule in _literals' comment
    (the aho-corasick crate's Teddy, 1.x): a text joins an earlier one whose first
    bytes have the same low nibbles, else goes to bucket (count - 1) - index % count."""
    width = min(4, *map(len, order))
    bucket_of: dict[bytes, int] = {}
    buckets: list[set[bytes]] = [set() for _ in range(count)]
    for index, text in enumerate(order):
        key = bytes(b & 15 for b in text[:width])
        buckets[bucket_of.setdefault(key, (count - 1) - index % count)].add(text)
    return {frozenset(b) for b in buckets if b}


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(st.binary(min_size=3, max_size=8), min_size=1, max_size=64, unique=True))
def test_the_order_lands_each_text_in_its_planned_bucket(texts: list[bytes]) -> None:
    """Every text once, and the searcher's rule files them as they were dealt."""
    count = _literals._buckets(len(texts))
    order = _literals._bucket_order(texts)
    assert sorted(order) == sorted(texts)
    planned = _literals._dealt(texts, count)
    assert _filed(order, count) == {frozenset(t for unit in b for t in unit)
                                    for b in planned if b}
    sizes = [len(b) for b in planned]
    assert max(sizes) - min(sizes) <= 1  # as even as the rule allows: no gap in the order


def test_texts_share_a_bucket_where_together_they_let_through_little() -> None:
    """Nine texts, eight buckets: seven common in text, and two that together let
    through only what each does ("\\nE0", "\\nE1": a newline, E, then 0 or 1): those two
    share a bucket."""
    texts = [b"the", b"\nE0", b"ing", b"and", b"ion", b"\nE1", b"ent", b"for", b"est"]
    assert _literals._buckets(len(texts)) == 8
    filed = _filed(_literals._bucket_order(texts), 8)
    assert frozenset({b"\nE0", b"\nE1"}) in filed and len(filed) == 8


@pytest.mark.skipif(not _native_available(), reason="ahocorasick_rs is not installed")
def test_two_byte_texts_get_a_searcher_pass_of_their_own() -> None:
    """A two-byte text is not looked for with bytes.find (80-90 us per 64 KiB when
    absent), nor among the longer texts (it would narrow their fingerprint)."""
    found = finder([b"OK", b"%%", b"timeout", b"E"])
    passes = [group for _, group, _, _ in found._groups]  # type: ignore[attr-defined]
    assert sorted(map(sorted, passes)) == [[b"%%", b"OK"], [b"timeout"]]
    assert found._short == [(b"E", [3])]  # type: ignore[attr-defined]
    assert found.which(b"x OK timeout %", 0, 14) == {0, 2}
