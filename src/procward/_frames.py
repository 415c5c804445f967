"""The framed notify protocol: how a supervised program reports to procward over loopback TCP.

Standard library only: the SDK (imported by user programs) and the daemon both
use this one codec, so what one writes the other reads, byte for byte.

A frame is an 11-byte header followed by the payload::

    offset  size  field
    0       2     magic, the bytes 0x4D 0x53 ("MS")
    2       1     command: 1 heartbeat, 2 status, 3 ready, 4 stopping
    3       4     payload length, u32 little-endian (at most MAX_PAYLOAD)
    7       4     CRC32 of the payload (zlib.crc32), u32 little-endian
    11      n     payload: a UTF-8 JSON object

The first frame of a connection carries ``"secret"`` in its payload; the
listener checks it (docs/notify-protocol.md describes the whole exchange).
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from procward.errors import FrameError

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "MAX_PAYLOAD",
    "Command",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "decode_header",
    "decode_payload",
    "encode",
]

MAGIC = b"\x4d\x53"
_HEADER = struct.Struct("<2sBII")
HEADER_SIZE = _HEADER.size  # 11
# A report is a few short fields; anything larger is a bug or an attack, and the
# listener must not buffer it.
MAX_PAYLOAD = 64 * 1024


class Command(IntEnum):
    HEARTBEAT = 1
    STATUS = 2
    READY = 3
    STOPPING = 4


@dataclass(frozen=True)
class Frame:
    command: Command
    payload: dict[str, Any] = field(default_factory=dict)


def encode(command: Command | int, payload: dict[str, Any] | None = None) -> bytes:
    """One frame, ready to send; ValueError if the payload is too large."""
    body = json.dumps(payload or {}, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(body) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(body)} bytes is over the limit of {MAX_PAYLOAD}")
    return _HEADER.pack(MAGIC, int(Command(command)), len(body), zlib.crc32(body)) + body


def decode_header(header: bytes) -> tuple[Command, int, int]:
    """``(command, payload length, crc)`` from the 11 header bytes; FrameError if invalid."""
    if len(header) != HEADER_SIZE:
        raise FrameError(f"a header is {HEADER_SIZE} bytes, got {len(header)}")
    magic, command, length, crc = _HEADER.unpack(header)
    if magic != MAGIC:
        raise FrameError(f"bad magic {magic.hex()}, expected {MAGIC.hex()}")
    try:
        cmd = Command(command)
    except ValueError:
        raise FrameError(f"unknown command {command}") from None
    if length > MAX_PAYLOAD:
        raise FrameError(f"payload length {length} is over the limit of {MAX_PAYLOAD}")
    return cmd, length, crc


def decode_payload(command: Command, body: bytes, crc: int) -> Frame:
    """The frame whose header gave ``command`` and ``crc``; FrameError if the body is bad."""
    if zlib.crc32(body) != crc:
        raise FrameError("CRC32 of the payload does not match the header")
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise FrameError("payload is not UTF-8 JSON") from None
    if not isinstance(payload, dict):
        raise FrameError("payload is not a JSON object")
    return Frame(command, payload)


class FrameDecoder:
    """Turns a byte stream into frames; after the first FrameError it accepts nothing more.

    A stream cannot be resynchronised after a bad frame (any byte could be the
    start of the next one), so the caller closes the connection.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._broken = False

    def feed(self, data: bytes) -> list[Frame]:
        if self._broken:
            raise FrameError("the stream already held a bad frame")
        self._buffer += data
        frames: list[Frame] = []
        try:
            while len(self._buffer) >= HEADER_SIZE:
                command, length, crc = decode_header(bytes(self._buffer[:HEADER_SIZE]))
                if len(self._buffer) < HEADER_SIZE + length:
                    break
                body = bytes(self._buffer[HEADER_SIZE:HEADER_SIZE + length])
                del self._buffer[:HEADER_SIZE + length]
                frames.append(decode_payload(command, body, crc))
        except FrameError:
            self._broken = True
            self._buffer.clear()
            raise
        return frames

    @property
    def pending(self) -> int:
        """Bytes held for a frame not complete yet."""
        return len(self._buffer)
