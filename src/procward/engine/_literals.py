"""The alert matcher's prefilter: which rules' required texts occur in a chunk of output.

Every rule's pattern is reduced to texts one of which any match must contain
(``ERROR|FATAL`` needs "ERROR" or "FATAL"); a chunk in which none of a rule's
texts occurs cannot match it, so its regex is not run. Output without a
matching line is the common case, so the search for the texts is what log
capture pays for its rules, on every byte.

Two finders do that search. The Rust aho-corasick crate (the
``ahocorasick_rs`` package, wheels for Linux, Windows and macOS) looks for all
texts of three bytes or more in one pass of its SIMD "Teddy" searcher (one
per 64 texts), in an order planned on a sample of log lines
(``_bucket_order``): some 4-7 GB/s here (output in the CPU's cache), faster
than Hyperscan on the same texts. Shorter texts defeat that searcher (with a
one-byte text it falls back to an automaton, twenty times slower), so a
short text is first lengthened where that is sound (``_lengthened``); what
stays two bytes long gets a pass of its own, and a single byte is looked for
with ``bytes.find``, a ``memchr``.
Where the package cannot be imported, a pure-Python finder runs instead: one
``memchr`` per distinct rare byte of the texts, then ``bytes.find`` for the
texts whose byte is present.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import math
import platform
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = ["Finder", "finder", "required_literals"]


class Finder(Protocol):
    """Looks for a fixed set of texts in ``chunk[start:end]``.

    A text that begins with a newline stands for a line start: it is also
    found where the rest of it begins the window (a window always starts a
    line; see ``_lengthened``).
    """

    def which(self, chunk: bytes | bytearray, start: int, end: int) -> set[int]:
        """The indexes of the texts that occur (asked of every chunk: mostly none)."""
        ...


class _LineStarts:
    """The texts that begin with a newline, looked for at the start of a window."""

    def __init__(self, ids_of: dict[bytes, list[int]]) -> None:
        self._by_first: dict[int, list[tuple[bytes, list[int]]]] = {}
        self._always: list[int] = []  # a lone newline: every window starts a line
        for text, ids in ids_of.items():
            if text[:1] == b"\n":
                if len(text) > 1:
                    self._by_first.setdefault(text[1], []).append((text[1:], ids))
                else:
                    self._always.extend(ids)
        self.any = bool(self._by_first or self._always)

    def add(self, ids: set[int], chunk: bytes | bytearray, start: int, end: int) -> None:
        if self._always:
            ids.update(self._always)
        if start < end and (texts := self._by_first.get(chunk[start])):
            for rest, text_ids in texts:
                if chunk.startswith(rest, start, end):
                    ids.update(text_ids)


# re's own parser, to find the literal text a pattern requires. Private (and
# untyped), but stable since 3.11; should it change, the ImportError would say so.
sre_parse: Any = importlib.import_module("re._parser")
sre_constants: Any = importlib.import_module("re._constants")


# The searcher's fast mode needs texts of at least this many bytes.
_PACKED_MIN = 3
# At most this many bytes in a class that lengthens a short text.
_CLASS_MAX = 10


def _class_bytes(op: Any, av: Any) -> bytes | None:
    """The bytes one of which an item always matches first, if it is a small plain class."""
    if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
        return _class_bytes(*av[2][0]) if av[0] >= 1 and len(av[2]) == 1 else None
    if op is sre_constants.LITERAL:
        return bytes([av])
    if op is not sre_constants.IN:
        return None
    found: set[int] = set()
    for item_op, item_av in av:
        if item_op is sre_constants.LITERAL:
            found.add(item_av)
        elif item_op is sre_constants.RANGE:
            found.update(range(item_av[0], item_av[1] + 1))
        elif item_op is sre_constants.CATEGORY and item_av is sre_constants.CATEGORY_DIGIT:
            found.update(b"0123456789")  # bytes patterns: ASCII digits only
        else:
            return None  # negated, other categories: not worth listing
        if len(found) > _CLASS_MAX:
            return None
    return bytes(sorted(found))


def _lengthened(text: bytes, line_start: bool, following: bytes | None) -> list[bytes] | None:
    """A text too short for the fast searcher, made long enough where that is sound.

    Before it a line start ('^') adds a newline, which stands for one (the
    finders also take the start of their window, always a line start, as
    one); after it a small class adds each of its bytes. So ``^E\\d{4} ``
    requires "\\nE0" … "\\nE9" instead of a bare "E": real logs have a capital
    E in almost every chunk, and each time the rule's regex ran over the chunk.
    """
    if not text:
        return None
    options = []
    if line_start:
        options.append([b"\n" + text])
    if following is not None:
        options.append([text + bytes([b]) for b in following])
        if line_start:
            options.append([b"\n" + text + bytes([b]) for b in following])
    return next((texts for texts in options if len(texts[0]) >= _PACKED_MIN), None)


# At most this many texts from spelling out an alternation after a literal.
_ALTERNATIVES_MAX = 8


def _prefixes(op: Any, av: Any) -> list[bytes] | None:
    """Texts one of which every match of the item begins with; None if unknown."""
    if op is sre_constants.LITERAL:
        return [bytes([av])]
    if op is sre_constants.SUBPATTERN and not av[1] & sre_constants.SRE_FLAG_IGNORECASE:
        return _seq_prefixes(av[3])
    if op is sre_constants.BRANCH:
        branches = [_seq_prefixes(b) for b in av[1]]
        if all(branches):
            return [text for branch in branches if branch for text in branch]
    return None


def _seq_prefixes(items: Any) -> list[bytes] | None:
    """Texts one of which every match of the item sequence begins with; None if unknown."""
    run = bytearray()
    for op, av in items:
        if op is sre_constants.LITERAL:
            run.append(av)
            continue
        return _spelled_out(run, op, av) or ([bytes(run)] if run else None)
    return [bytes(run)] if run else None


def _spelled_out(run: bytes | bytearray, op: Any, av: Any) -> list[bytes] | None:
    """``run`` followed by each text the item can begin with, if there are few."""
    after = _prefixes(op, av)
    if after and len(after) <= _ALTERNATIVES_MAX:
        return [bytes(run) + text for text in after]
    return None


def _seq_required(items: Any) -> list[bytes] | None:
    """Literals one of which every match of the item sequence contains; None if unknown."""
    candidates: list[list[bytes]] = []
    run = bytearray()
    line_start = False  # whether the run begins at a '^'

    def flush(following: bytes | None) -> None:
        nonlocal run, line_start
        text = bytes(run)
        longer = _lengthened(text, line_start, following) if len(text) < _PACKED_MIN else None
        if longer or text:
            candidates.append(longer or [text])
        run, line_start = bytearray(), False

    for op, av in items:
        if op is sre_constants.LITERAL:
            run.append(av)
            continue
        if op is sre_constants.AT and av is sre_constants.AT_BEGINNING:
            flush(None)
            line_start = True
            continue
        if run:
            # "connection (refused|reset)" requires "connection refused" or
            # "connection reset": a line with "connection pool" is no candidate.
            spelled = _spelled_out(run, op, av)
            if spelled:
                candidates.append(spelled)
            flush(_class_bytes(op, av))
        line_start = False
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
    flush(None)
    if not candidates:
        return None
    # The best requirement is the one whose shortest alternative is longest.
    return max(candidates, key=lambda alts: (min(len(a) for a in alts), -len(alts)))


def required_literals(pattern: bytes) -> list[bytes] | None:
    """Texts one of which every match of ``pattern`` contains, or None if there are none.

    Sound by construction: only plain literals count, under no IGNORECASE,
    lengthened only by a line start before them, a small class after them, or
    what a short alternation after them begins with, and cut only to an end of
    them (``_rare_start``); a part we cannot reason about requires nothing.
    None means "always run the regex".
    """
    try:
        parsed = sre_parse.parse(pattern, re.MULTILINE)
    except re.error:
        return None
    if parsed.state.flags & sre_constants.SRE_FLAG_IGNORECASE:
        return None
    texts = _seq_required(parsed.data)
    return None if texts is None else list(dict.fromkeys(_rare_start(t) for t in texts))


# The fewest bytes a text is cut down to (``_rare_start``), and the least share
# of it kept: a short end of it may be a common word ("failed", "invalid").
_KEEP_MIN = 6
_KEEP_SHARE = 2 / 3


def _rare_start(text: bytes) -> bytes:
    """The end of ``text``, most of it, that begins most rarely in log text.

    Any part of a required text is required too, and the searcher flags places
    by a text's first three bytes and checks each: " retries exhausted" would
    stop it at every " re" ("request", "received"), "retries exhausted" at fewer.
    The longest of equally rare ends is kept. A text beginning with a newline
    (a line start) is kept whole.
    """
    keep = max(_KEEP_MIN, math.ceil(len(text) * _KEEP_SHARE))
    if text[:1] == b"\n" or len(text) <= keep:
        return text
    often = _sample_odds()[1]
    start = min(range(len(text) - keep + 1), key=lambda at: (often(text[at:at + 3]), at))
    return text[start:]


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


# Most texts per searcher pass, the most its SIMD "Teddy" form takes; more are
# split evenly. A pass costs its scan whatever it looks for: some 9 us per 64
# KiB here with up to 32 texts, 14 us with 33-64 (its 16-bucket form), so one
# pass of 39 texts beats three of 13. That holds only for a good order of the
# texts (``_bucket_order``): in a bad one the same 39 texts took 40 us.
_GROUP = 64

# Built searchers by their texts, with the texts in the searcher's order and
# what each can hide: every instance of a service, and both its streams, share
# them (planning and building take 25-30 ms for 39 texts, the hiding table 5 ms).
_Hidden = list[list[tuple[int, tuple[int, ...]]]]
# A finder's pass: (the searcher's call; its texts; what each can hide; the
# rule text ids of each).
_Group = tuple[Any, tuple[bytes, ...], _Hidden, list[list[int]]]
_SEARCHERS: dict[tuple[bytes, ...], tuple[tuple[bytes, ...], Any, _Hidden]] = {}

# How the searcher (the aho-corasick crate's Teddy, 1.x) files texts in
# buckets, from its source: 16 buckets when it has more than 32 texts and the
# CPU has AVX2, else 8; a text goes where an earlier one went whose first
# ``width`` bytes have the same low nibbles, else to bucket (B - 1) - (its index
# % B). A bucket flags a place where each of the next ``width`` bytes has a low
# and a high nibble one of its texts has there: texts that share a bucket let
# through the cross product of their nibbles, and each flagged place is checked
# against each text of the bucket. Should the crate change this, only speed is
# lost: which texts are found does not depend on their order.
_WIDTH_MAX = 4
_SLIM_MAX = 32
# A flagged place costs its check of each text of the bucket, plus this much.
_FLAG_COST = 4
# Buckets weighed at most, then swapping stops: the 39 texts of 20 rules settle
# after some 800 (30 ms); 64 texts of random letters took 9,500 (0.5 s).
_TRIES_MAX = 2000


def _buckets(count: int) -> int:
    # 16 buckets need AVX2, which x86-64 CPUs of the last ten years have; an older
    # one gets an order planned for the wrong count, still sound, only slower.
    wide = platform.machine().lower() in ("x86_64", "amd64")
    return 16 if wide and count > _SLIM_MAX else 8


@functools.cache
def _sample() -> bytes:
    """A few KiB of log lines of many kinds: what the texts' order and cuts are planned on."""
    return Path(__file__).with_name("_sample.log").read_bytes()


@functools.cache
def _sample_odds() -> tuple[list[float], Callable[[bytes], float]]:
    """Each byte's share of log text, and how often a text of a few bytes occurs there.

    A text's count in the sample plus what its bytes' shares predict: the
    sample is small, most texts never occur in it, and "cde" (in any run of
    letters) should still count for more than "xq{".
    """
    sample = _sample()
    share = [(sample.count(b) + 0.5) / (len(sample) + 128) for b in range(256)]

    def often(text: bytes) -> float:
        return sample.count(text) + len(sample) * math.prod(share[b] for b in text)

    return share, often


def _bucket_order(texts: Sequence[bytes]) -> list[bytes]:
    """``texts`` in an order that has the searcher file them in the buckets ``_dealt`` plans.

    Index m * count + r lands in bucket (count - 1) - r: the r-th bucket takes
    the first texts of its units at indexes r, r + count, ... With the fuller
    buckets first there is no gap; a unit's other texts follow at the end.
    """
    buckets = _dealt(texts, _buckets(len(texts)))
    order = [bucket[m][0] for m in range(len(buckets[0])) for bucket in buckets
             if m < len(bucket)]
    return order + [text for bucket in buckets for unit in bucket for text in unit[1:]]


def _dealt(texts: Sequence[bytes], count: int) -> list[list[list[bytes]]]:
    """``texts`` dealt into ``count`` buckets, fuller first, each a list of units.

    Texts whose first bytes have the same low nibbles form a unit (the searcher
    puts them together anyway); units are dealt as evenly as the searcher's
    rule allows, so that the places each bucket flags in a sample of log lines
    are few: each unit where it adds least, then swaps between buckets while
    they help.
    """
    width = min(_WIDTH_MAX, *map(len, texts))
    keyed: dict[bytes, list[bytes]] = {}
    for text in texts:
        keyed.setdefault(bytes(b & 15 for b in text[:width]), []).append(text)
    units = list(keyed.values())
    # Per unit and place: the low and the high nibbles its texts have there.
    nibbles = [[(frozenset(t[at] & 15 for t in unit), frozenset(t[at] >> 4 for t in unit))
                for at in range(width)] for unit in units]
    sample = _sample()
    span = len(sample) - width
    # Per place and nibble value, one bit per sample place whose byte there has
    # that low (or high) nibble: every eighth bit, as bytes.translate marks the
    # byte 1 or 0 and int.from_bytes makes the bits. A bucket lets a sample place
    # through where each of the next ``width`` bytes has a low nibble and a high
    # nibble that its texts have at that offset.
    nibble_bits = [[[int.from_bytes(sample[at:at + span].translate(
        bytes((b >> shift) & 15 == value for b in range(256))), "little")
        for value in range(16)] for shift in (0, 4)] for at in range(width)]
    # What a bucket lets through is counted in the sample, and also estimated
    # from the bytes' shares, as in _sample_odds.
    share = _sample_odds()[0]
    costs: dict[frozenset[int], float] = {}

    def flagged(bucket: Iterable[int]) -> float:
        """What a bucket of these units costs: the places it flags, times its checks."""
        key = frozenset(bucket)
        cost = costs.get(key)
        if cost is None:
            places, odds = -1, 1.0
            for at in range(width):
                lows = frozenset().union(*(nibbles[u][at][0] for u in key))
                highs = frozenset().union(*(nibbles[u][at][1] for u in key))
                low_bits = high_bits = 0
                for low in lows:
                    low_bits |= nibble_bits[at][0][low]
                for high in highs:
                    high_bits |= nibble_bits[at][1][high]
                places &= low_bits & high_bits
                odds *= sum(share[high << 4 | low] for low in lows for high in highs)
            checks = sum(len(units[u]) for u in key) + _FLAG_COST
            cost = costs[key] = (places.bit_count() + odds * span) * checks
        return cost

    least, extra = divmod(len(units), count)
    buckets: list[list[int]] = [[] for _ in range(count)]

    def room(bucket: list[int]) -> bool:
        return len(bucket) < least or (
            len(bucket) == least and sum(len(b) > least for b in buckets) < extra)

    for unit in sorted(range(len(units)), key=lambda u: -flagged([u])):
        best = min((b for b in buckets if room(b)),
                   key=lambda b: flagged([*b, unit]) - flagged(b))
        best.append(unit)
    improved = True
    while improved:
        improved = False
        for first, second in itertools.combinations(buckets, 2):
            if len(costs) > _TRIES_MAX:
                break
            for a, b in itertools.product(range(len(first)), range(len(second))):
                now = flagged(first) + flagged(second)
                first[a], second[b] = second[b], first[a]
                if flagged(first) + flagged(second) < now:
                    improved = True
                else:
                    first[a], second[b] = second[b], first[a]
    buckets.sort(key=len, reverse=True)
    return [[units[u] for u in bucket] for bucket in buckets]


def _hidden(texts: Sequence[bytes]) -> _Hidden:
    """For each text, the others that can begin inside an occurrence of it, and where.

    A leftmost-first pass skips what begins inside a match it reports, and
    nothing else; a text B can begin at offset o of A's occurrence only if B
    and A agree where they overlap.
    """
    hidden: _Hidden = []
    for a in texts:
        inside = []
        for j, b in enumerate(texts):
            if b == a:
                continue
            offsets = tuple(o for o in range(len(a)) if (
                a[o:o + len(b)] == b if o + len(b) <= len(a) else b[:len(a) - o] == a[o:]))
            if offsets:
                inside.append((j, offsets))
        hidden.append(inside)
    return hidden


def _searcher(ac: Any, texts: tuple[bytes, ...]) -> tuple[tuple[bytes, ...], Any, _Hidden]:
    """One pass for ``texts``: their planned order, the searcher, what each can hide."""
    built = _SEARCHERS.get(texts)
    if built is None:
        # Only leftmost-first matching uses Teddy. It reports every text that
        # occurs but those beginning inside a match it reports: which texts can,
        # and where, is known in advance, and each is looked for there, at each
        # match of its hider. (The overlapping automaton that answered this took
        # 215 us per 64 KiB of logs.)
        order = tuple(_bucket_order(texts))
        built = _SEARCHERS[texts] = (order, ac.BytesAhoCorasick(
            list(order), matchkind=ac.MATCHKIND_LEFTMOST_FIRST), _hidden(order))
    return built


class _AhoCorasickFinder:
    """Texts of two bytes or more in searcher passes; one-byte texts by ``bytes.find``."""

    def __init__(self, ac: Any, texts: Sequence[bytes]) -> None:
        ids_of: dict[bytes, list[int]] = {}
        for i, text in enumerate(texts):
            ids_of.setdefault(text, []).append(i)
        long = [t for t in ids_of if len(t) >= _PACKED_MIN]
        pairs = [t for t in ids_of if len(t) == _PACKED_MIN - 1]
        self._short = [(t, ids_of[t]) for t in ids_of if len(t) < _PACKED_MIN - 1]
        starts = _LineStarts(ids_of)
        self._line_starts = starts if starts.any else None
        # Two-byte texts get passes of their own: among the others they would
        # narrow every text's fingerprint to two bytes, and bytes.find took 80-90
        # us per 64 KiB for one that is absent (a pass of its own, 4-10 us).
        self._groups: list[_Group] = []
        for kind in (long, pairs):
            size = -(-len(kind) // -(-len(kind) // _GROUP)) if kind else 1
            for at in range(0, len(kind), size):
                group, searcher, hidden = _searcher(ac, tuple(kind[at:at + size]))
                # The searcher reports texts by their index in group.
                self._groups.append((searcher.find_matches_as_indexes, group, hidden,
                                     [ids_of[t] for t in group]))

    def which(self, chunk: bytes | bytearray, start: int, end: int) -> set[int]:
        # Asked twice per chunk (the line a read cut in two, then the rest), and
        # mostly nothing is found: the Python around the passes is kept to a
        # minimum (it was 3 of 3.8 us for a line of 100 bytes).
        ids: set[int] = set()
        if self._groups:
            view = memoryview(chunk)[start:end] if start or end < len(chunk) else chunk
            for entry in self._groups:
                matches = entry[0](view)
                if matches:
                    _found(ids, matches, entry, chunk=chunk, start=start, end=end)
        if self._short:
            for text, text_ids in self._short:
                if chunk.find(text, start, end) >= 0:
                    ids.update(text_ids)
        if self._line_starts is not None:
            self._line_starts.add(ids, chunk, start, end)
        return ids


def _found(ids: set[int], matches: list[tuple[int, int, int]], entry: _Group, *,
           chunk: bytes | bytearray, start: int, end: int) -> None:
    """Add to ``ids`` the rule texts of one pass's matches, and of what they hid."""
    _, group, hidden, group_ids = entry
    found = {k for k, _, _ in matches}
    for k in found:
        ids.update(group_ids[k])
    if any(hidden[k] for k in found):
        # Where a skipped text could begin: a few startswith per match,
        # where bytes.find over the chunk took 20-50 us per text.
        for k, at, _ in matches:
            for j, offsets in hidden[k]:
                if j not in found and any(
                        chunk.startswith(group[j], start + at + o, end) for o in offsets):
                    found.add(j)
                    ids.update(group_ids[j])


def _rarest(byte_values: Iterable[int]) -> bytes:
    """The byte of these with the least share of log text (``_sample_odds``)."""
    return bytes([min(byte_values, key=_sample_odds()[0].__getitem__)])


class _PythonFinder:
    """One ``memchr`` per distinct rare byte, then ``bytes.find`` for the texts it may start."""

    def __init__(self, texts: Sequence[bytes]) -> None:
        by_byte: dict[bytes, list[tuple[int, bytes]]] = {}
        ids_of: dict[bytes, list[int]] = {}
        for i, text in enumerate(texts):
            by_byte.setdefault(_rarest(text), []).append((i, text))
            ids_of.setdefault(text, []).append(i)
        self._groups = list(by_byte.items())
        self._line_starts = _LineStarts(ids_of)

    def which(self, chunk: bytes | bytearray, start: int, end: int) -> set[int]:
        ids: set[int] = set()
        for byte, entries in self._groups:
            if chunk.find(byte, start, end) < 0:
                continue
            for i, text in entries:
                if chunk.find(text, start, end) >= 0:
                    ids.add(i)
        if self._line_starts.any:
            self._line_starts.add(ids, chunk, start, end)
        return ids
