"""The alert prefilter: the texts a pattern requires, and the finders that look for them."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from procward.engine import _literals
from procward.engine._literals import finder, required_literals

_atoms = st.sampled_from(["a", "b", "A", "B", ":", " ", "ab", "Ba", "[ab]", r"\d", ".", "^", "$",
                          r"\b"])


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
@given(_patterns(), st.text(alphabet="abAB: 1", max_size=30))
def test_required_literals_never_skip_a_match(pattern: str, line: str) -> None:
    """A line a pattern matches always contains one of the texts the prefilter looks for."""
    needles = required_literals(pattern.encode())
    if re.search(pattern.encode(), line.encode(), re.MULTILINE) and needles is not None:
        assert any(n in line.encode() for n in needles), (pattern, line, needles)


def _native_available() -> bool:
    return _literals._hyperscan_finder([b"x"]) is not None


@pytest.mark.parametrize("native", [
    pytest.param(True, marks=pytest.mark.skipif(not _native_available(),
                                                reason="hyperscan has no build here")),
    False,
])
@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.binary(min_size=1, max_size=4), min_size=1, max_size=8),
       chunk=st.binary(max_size=200), cut=st.integers(min_value=0, max_value=200))
def test_finder_finds_exactly_the_texts_present(native: bool, texts: list[bytes],
                                                chunk: bytes, cut: int) -> None:
    """Each finder reports every text in chunk[:end], and none that is absent or beyond end."""
    end = min(cut, len(chunk))
    expected = {i for i, text in enumerate(texts) if text in chunk[:end]}
    assert finder(texts, native=native)(chunk, end) == expected


def test_native_finder_is_used_where_hyperscan_installs() -> None:
    """Where the dependency has a wheel, the fast finder is the one in use.

    pyproject.toml asks for hyperscan on x86-64 (and some 64-bit ARM machines);
    everywhere else the pure-Python finder stands in.
    """
    import platform
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("not an x86-64 machine: hyperscan may have no wheel here")
    assert _native_available()
