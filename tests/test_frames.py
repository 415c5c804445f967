"""The framed notify codec: encoded frames decode to themselves; damaged ones are refused."""

from __future__ import annotations

import json
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from procward._frames import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    Command,
    Frame,
    FrameDecoder,
    FrameError,
    encode,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12,
)
payloads = st.dictionaries(st.text(max_size=16), json_values, max_size=6)
commands = st.sampled_from(list(Command))


def test_header_layout_is_byte_exact() -> None:
    """A ready frame with an empty object is magic, command 3, length 2, CRC32 of b'{}', b'{}'."""
    frame = encode(Command.READY, {})
    assert frame == b"MS\x03" + struct.pack("<II", 2, zlib.crc32(b"{}")) + b"{}"


@settings(deadline=None)  # a busy machine must not fail a correct example
@given(commands, payloads)
def test_round_trip(command: Command, payload: dict[str, object]) -> None:
    """Every frame decodes to the command and payload it was made from."""
    assert FrameDecoder().feed(encode(command, payload)) == [Frame(command, payload)]


@settings(deadline=None)
@given(st.lists(st.tuples(commands, payloads), min_size=1, max_size=5), st.data())
def test_round_trip_in_any_pieces(frames: list[tuple[Command, dict[str, object]]],
                                  data: st.DataObject) -> None:
    """Frames split at arbitrary points across reads come out whole and in order."""
    stream = b"".join(encode(c, p) for c, p in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = FrameDecoder()
    got: list[Frame] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        got += decoder.feed(stream[last:cut])
        last = cut
    assert got == [Frame(c, p) for c, p in frames]
    assert decoder.pending == 0


@settings(max_examples=300, deadline=None)
@given(commands, payloads, st.data())
def test_any_corruption_is_rejected(command: Command, payload: dict[str, object],
                                    data: st.DataObject) -> None:
    """Changing any byte of a frame makes it refused or still incomplete, with one exception.

    A flipped byte in the length field can make the decoder wait for more bytes.
    The CRC covers the payload only (as the design lays the frame out), so a
    command byte changed into another valid command is not detectable: the
    test pins that this is the only change that gets through.
    """
    frame = bytearray(encode(command, payload))
    index = data.draw(st.integers(0, len(frame) - 1))
    flip = data.draw(st.integers(1, 255))
    frame[index] ^= flip
    decoder = FrameDecoder()
    try:
        got = decoder.feed(bytes(frame))
    except FrameError:
        with pytest.raises(FrameError):
            decoder.feed(encode(Command.HEARTBEAT, {}))  # a broken stream stays broken
        return
    if index == 2:
        assert got == [Frame(Command(frame[2]), payload)]
        return
    # Only a grown length can leave the frame incomplete; it is never accepted as data.
    assert got == [] and 7 > index >= 3


@settings(deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash(garbage: bytes) -> None:
    """Arbitrary bytes produce FrameError or wait for more; no other exception escapes."""
    try:
        frames = FrameDecoder().feed(garbage)
    except FrameError:
        return
    for frame in frames:
        assert isinstance(frame.payload, dict)


@pytest.mark.parametrize(("header", "why"), [
    (b"XY\x01" + struct.pack("<II", 2, zlib.crc32(b"{}")), "magic"),
    (b"MS\x09" + struct.pack("<II", 2, zlib.crc32(b"{}")), "command"),
    (b"MS\x01" + struct.pack("<II", MAX_PAYLOAD + 1, 0), "limit"),
    (b"MS\x01" + struct.pack("<II", 2, 12345), "CRC"),
])
def test_each_kind_of_bad_frame_is_named(header: bytes, why: str) -> None:
    """Wrong magic, unknown command, length over the limit and a bad CRC are each refused."""
    with pytest.raises(FrameError, match=why):
        FrameDecoder().feed(header + b"{}")


def test_payload_must_be_a_json_object() -> None:
    """A valid CRC over bytes that are not a JSON object is still refused."""
    for body in (b"[1]", b"\xff\xfe", b"not json"):
        frame = b"MS\x02" + struct.pack("<II", len(body), zlib.crc32(body)) + body
        with pytest.raises(FrameError):
            FrameDecoder().feed(frame)


def test_oversized_payload_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="limit"):
        encode(Command.STATUS, {"status": "x" * MAX_PAYLOAD})
    assert json.loads(encode(Command.STATUS, {"status": "é"})[HEADER_SIZE:]) == {"status": "é"}


def test_the_documented_example_frame() -> None:
    """The worked example of docs/notify-protocol.md, byte for byte."""
    frame = encode(Command.READY, {"secret": "k3PZ0uTq", "status": "up"})
    assert frame.hex(" ").upper() == (
        "4D 53 03 23 00 00 00 34 6B 5C 0C 7B 22 73 65 63 72 65 74 22 3A 22 6B 33 50 "
        "5A 30 75 54 71 22 2C 22 73 74 61 74 75 73 22 3A 22 75 70 22 7D")
    heartbeat = encode(Command.HEARTBEAT, {})
    assert heartbeat.hex(" ").upper() == "4D 53 01 02 00 00 00 43 BF A6 A3 7B 7D"
