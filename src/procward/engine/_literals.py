"""The alert matcher's prefilter: which rules' required texts occur in a chunk of output.

Every rule's pattern is reduced to texts one of which any match must contain
(``ERROR|FATAL`` needs "ERROR" or "FATAL"); a chunk in which none of a rule's
texts occurs cannot match it, so its regex is not run. Output without a
matching line is the common case, so the search for the texts is what log
capture pays for its rules, on every byte.

Two finders do that search. The Rust aho-corasick crate (the
``ahocorasick_rs`` package, wheels for Linux, Windows and macOS) looks for all
texts of three bytes or more in one pass of its SIMD "Teddy" searcher: some
7 GB/s for 25 of the 26 texts of 20 typical rules here (output in the CPU's
cache), three and a half times Hyperscan's speed on the same texts. Shorter
texts defeat that searcher (with a one-byte text it falls back to an
automaton, twenty times slower), so they are looked for with ``bytes.find``,
a ``memchr`` for one byte. Where the package cannot be imported, a
pure-Python finder runs instead: one ``memchr`` per distinct rare byte of the
texts, then ``bytes.find`` for the texts whose byte is present.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["Finder", "finder", "required_literals"]


class Finder(Protocol):
    """Looks for a fixed set of texts in ``chunk[start:end]``."""

    def which(self, chunk: bytes | bytearray, start: int, end: int) -> set[int]:
        """The indexes of the texts that occur (asked of every chunk: mostly none)."""
        ...


# re's own parser, to find the literal text a pattern requires. Private (and
# untyped), but stable since 3.11; should it change, the ImportError would say so.
sre_parse: Any = importlib.import_module("re._parser")
sre_constants: Any = importlib.import_module("re._constants")


def _seq_required(items: Any) -> list[bytes] | None:
    """Literals one of which every match of the item sequence contains; None if unknown."""
    candidates: list[list[bytes]] = []
    run = bytearray()
    for op, av in items:
        if op is sre_constants.LITERAL:
            run.append(av)
            continue
        if run:
            candidates.append([bytes(run)])
            run = bytearray()
        found: list[bytes] | None = None
        if op is sre_constants.SUBPATTERN:
            _, add_flags, _, sub = av
            if not add_flags & sre_constants.SRE_FLAG_IGNORECASE:
                found = _seq_required(sub)
        elif op is sre_constants.BRANCH:
            branches = [_seq_required(b) for b in av[1]]
            if all(branches):
                found = [lit for branch in branches if branch for lit in branch]
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT) and av[0] >= 1:
            found = _seq_required(av[2])
        # Anything else (classes, anchors, lookarounds) requires no literal we can use.
        if found:
            candidates.append(found)
    if run:
        candidates.append([bytes(run)])
    if not candidates:
        return None
    # The best requirement is the one whose shortest alternative is longest.
    return max(candidates, key=lambda alts: (min(len(a) for a in alts), -len(alts)))


def required_literals(pattern: bytes) -> list[bytes] | None:
    """Texts one of which every match of ``pattern`` contains, or None if there are none.

    Sound by construction: only plain literals count, under no IGNORECASE; a
    part we cannot reason about requires nothing. None means "always run the regex".
    """
    try:
        parsed = sre_parse.parse(pattern, re.MULTILINE)
    except re.error:
        return None
    if parsed.state.flags & sre_constants.SRE_FLAG_IGNORECASE:
        return None
    return _seq_required(parsed.data)


def finder(texts: Sequence[bytes], *, native: bool = True) -> Finder:
    """The fastest finder available for ``texts`` (aho-corasick unless ``native`` is False)."""
    if native:
        try:
            ac: Any = importlib.import_module("ahocorasick_rs")
        except ImportError:  # no wheel for this machine, and no Rust to build one
            pass
        else:
            return _AhoCorasickFinder(ac, texts)
    return _PythonFinder(texts)


# The searcher's fast mode needs texts of at least this many bytes.
_PACKED_MIN = 3

# Most texts per searcher. Teddy's pass over 64 KiB took ~10 us here with 8
# to 32 texts, 15-16.5 us with 40 to 48, and 49-60 us with 52 to 64; two
# searchers of 32 texts each, 23 us together. More texts are split evenly.
_GROUP = 48

# Built searchers by their texts: every instance of a service, and both its
# streams, share them (building takes a few ms; 500 instances would add up).
_SEARCHERS: dict[tuple[bytes, ...], tuple[Any, Any]] = {}


class _AhoCorasickFinder:
    """Texts of three bytes or more in searcher passes; shorter ones by ``bytes.find``."""

    def __init__(self, ac: Any, texts: Sequence[bytes]) -> None:
        ids_of: dict[bytes, list[int]] = {}
        for i, text in enumerate(texts):
            ids_of.setdefault(text, []).append(i)
        long = [t for t in ids_of if len(t) >= _PACKED_MIN]
        self._short = [(t, ids_of[t]) for t in ids_of if len(t) < _PACKED_MIN]
        # Per group of texts: (any?, which?, the rule text ids of each of its texts).
        self._groups: list[tuple[Any, Any, list[list[int]]]] = []
        size = -(-len(long) // -(-len(long) // _GROUP)) if long else 1
        for at in range(0, len(long), size):
            group = tuple(long[at:at + size])
            searchers = _SEARCHERS.get(group)
            if searchers is None:
                # Only leftmost-first matching uses Teddy; it reports at least one
                # match if any text occurs, but not a text overlapped by another's
                # match. So it answers "any?", and the standard automaton,
                # overlapping, answers "which?" in the rare chunk where it is yes.
                searchers = (ac.BytesAhoCorasick(list(group),
                                                 matchkind=ac.MATCHKIND_LEFTMOST_FIRST),
                             ac.BytesAhoCorasick(list(group)))
                _SEARCHERS[group] = searchers
            self._groups.append((searchers[0].find_matches_as_indexes,
                                 searchers[1].find_matches_as_indexes,
                                 [ids_of[t] for t in group]))

    def which(self, chunk: bytes | bytearray, start: int, end: int) -> set[int]:
        ids: set[int] = set()
        if self._groups:
            view = memoryview(chunk)[start:end] if start or end < len(chunk) else chunk
            for quick, every, group_ids in self._groups:
                # The automaton, some twenty times slower, only where Teddy saw a text.
                if quick(view):
                    for k, _, _ in every(view, overlapping=True):
                        ids.update(group_ids[k])
        for text, text_ids in self._short:
            if chunk.find(text, start, end) >= 0:
                ids.update(text_ids)
        return ids


# Bytes from most to least common in log text: a text is looked for by its
# rarest byte. Anything not listed (most punctuation) counts as rarest.
_COMMON_BYTES = (b" etaoinsrhldcumfpgwybvkxjqz0123456789:.-/=_,'\"ETAOINSRHLDCUMFPGWYBVKXJQZ"
                 b"[]()<>")
_RANK = {b: i for i, b in enumerate(_COMMON_BYTES)}


def _rarest(text: bytes) -> bytes:
    return bytes([max(text, key=lambda b: _RANK.get(b, len(_RANK)))])


class _PythonFinder:
    """One ``memchr`` per distinct rare byte, then ``bytes.find`` for the texts it may start."""

    def __init__(self, texts: Sequence[bytes]) -> None:
        by_byte: dict[bytes, list[tuple[int, bytes]]] = {}
        for i, text in enumerate(texts):
            by_byte.setdefault(_rarest(text), []).append((i, text))
        self._groups = list(by_byte.items())

    def which(self, chunk: bytes | bytearray, start: int, end: int) -> set[int]:
        ids: set[int] = set()
        for byte, entries in self._groups:
            if chunk.find(byte, start, end) < 0:
                continue
            for i, text in entries:
                if chunk.find(text, start, end) >= 0:
                    ids.add(i)
        return ids
