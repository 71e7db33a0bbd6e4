"""Hand-built frames, valid or not, for testing other implementations.

:meth:`Connection.send <wsproto_core.connection.Connection.send>` only ever
produces frames that RFC 6455 allows. A compliance test needs the others too:
reserved opcodes, RSV bits without an extension, unmasked client frames, a
length field that lies, fragmented control frames, invalid UTF-8, forbidden
close codes. This module builds them byte for byte and checks nothing about
the protocol; it only refuses values that cannot be encoded at all (an opcode
of 16, a 5-byte mask key, a length that does not fit its field).

It works at the frame codec level: no connection state, no I/O. The command
``python -m wsproto_core fuzz`` is built on it.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Iterable, Mapping, Sequence

from .frames import MAX_CONTROL_PAYLOAD, Opcode, frame_header
from .masking import apply_mask

__all__ = [
    "CraftedFrame",
    "LengthEncoding",
    "close_frame",
    "close_payload",
    "describe_frames",
    "fragment",
    "frames_to_bytes",
    "random_mask",
]

_MAX_64_BIT = (1 << 64) - 1


class LengthEncoding(enum.Enum):
    """How the payload length field of a frame is written (RFC 6455 section 5.2).

    ``MINIMAL`` is what the RFC requires of a sender ("the minimal number of
    bytes MUST be used to encode the length"); the others force one form so a
    receiver can be tested on non-minimal encodings.
    """

    #: The shortest form that holds the length.
    MINIMAL = "minimal"
    #: The 7-bit length in the second header byte (0-125).
    BITS_7 = "7-bit"
    #: The marker 126 followed by a 16-bit length.
    BITS_16 = "16-bit"
    #: The marker 127 followed by a 64-bit length.
    BITS_64 = "64-bit"


_LIMITS = {
    LengthEncoding.BITS_7: MAX_CONTROL_PAYLOAD,
    LengthEncoding.BITS_16: 0xFFFF,
    LengthEncoding.BITS_64: _MAX_64_BIT,
}


# The length field's width in bits for each encoding (None: the minimal one).
_LENGTH_SIZES = {
    LengthEncoding.MINIMAL: None,
    LengthEncoding.BITS_7: 7,
    LengthEncoding.BITS_16: 16,
    LengthEncoding.BITS_64: 64,
}


def random_mask() -> bytes:
    """A fresh 4-byte masking key from the OS entropy source (section 5.3)."""
    return os.urandom(4)


@dataclasses.dataclass(frozen=True, slots=True)
class CraftedFrame:
    """One frame with every header field under the caller's control.

    :param opcode: 0 to 15, reserved values included.
    :param payload: the payload, unmasked; :meth:`to_bytes` masks it.
    :param fin: the FIN bit.
    :param rsv: the three RSV bits as a number from 0 to 7: 4 is RSV1, 2 is
        RSV2, 1 is RSV3.
    :param mask: a 4-byte masking key, or ``None`` for an unmasked frame.
    :param length_encoding: the form of the length field.
    :param declared_length: the length written in the header when it should
        differ from ``len(payload)`` (0 to 2**64 - 1, so the most significant
        bit that section 5.2 reserves may be set); ``None`` writes the truth.

    Raises ``ValueError`` for a value that has no encoding.
    """

    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0
    mask: bytes | None = None
    length_encoding: LengthEncoding = LengthEncoding.MINIMAL
    declared_length: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.opcode <= 15:
            raise ValueError(f"opcode must be 0 to 15, not {self.opcode}")
        if not 0 <= self.rsv <= 7:
            raise ValueError(f"rsv must be 0 to 7 (RSV1=4, RSV2=2, RSV3=1), not {self.rsv}")
        if self.mask is not None and len(self.mask) != 4:
            raise ValueError(f"a masking key is 4 bytes, not {len(self.mask)}")
        if not 0 <= self.length <= _MAX_64_BIT:
            raise ValueError(f"declared_length must be 0 to 2**64 - 1, not {self.length}")
        limit = _LIMITS.get(self.length_encoding)
        if limit is not None and self.length > limit:
            raise ValueError(f"a length of {self.length} does not fit the {self.length_encoding.value} length field")

    @property
    def length(self) -> int:
        """The length the header declares."""
        return len(self.payload) if self.declared_length is None else self.declared_length

    def header(self) -> bytes:
        """The frame header: first byte, length field and masking key."""
        first = (0x80 if self.fin else 0) | self.rsv << 4 | self.opcode
        return frame_header(first, self.length, self.mask, _LENGTH_SIZES[self.length_encoding])

    def to_bytes(self) -> bytes:
        """The frame on the wire: header, then the payload masked if a key is set."""
        if self.mask is None:
            return self.header() + self.payload
        return self.header() + apply_mask(self.payload, self.mask)

    def describe(self) -> str:
        """One line for people: ``TEXT fin mask=37fa213d len=5 b'Hello'``."""
        try:
            name = Opcode(self.opcode).name
        except ValueError:
            name = f"RESERVED-{self.opcode:#x}"
        parts = [name, "fin" if self.fin else "no-fin"]
        if self.rsv:
            parts.append(f"rsv={self.rsv:03b}")
        parts.append("unmasked" if self.mask is None else f"mask={self.mask.hex()}")
        length = f"len={len(self.payload)}"
        if self.declared_length is not None:
            length += f" declared={self.declared_length}"
        if self.length_encoding is not LengthEncoding.MINIMAL:
            length += f" ({self.length_encoding.value})"
        parts.append(length)
        shown = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        parts.append(repr(shown))
        return " ".join(parts)


def close_payload(code: int | None, reason: bytes = b"") -> bytes:
    """A Close payload with any 16-bit ``code`` (0 to 65535) and any ``reason`` bytes.

    ``None`` writes no code: the payload is ``reason`` alone, so the default
    is the empty payload that section 5.5.1 allows, and a reason makes the
    payload's first two bytes read as a code. Nothing is checked against section 7.4: 1004, 1005, 1006, 1015 and
    codes outside the ranges are written as given.
    """
    if code is None:
        return reason
    if not 0 <= code <= 0xFFFF:
        raise ValueError(f"a close code is 16 bits (0 to 65535), not {code}")
    return code.to_bytes(2, "big") + reason


def close_frame(code: int | None = 1000, reason: bytes = b"", *, mask: bytes | None = None) -> CraftedFrame:
    """A Close frame with any code and reason bytes (see :func:`close_payload`).

    For the 1-byte payload that section 5.5.1 rules out, build the frame
    directly: ``CraftedFrame(Opcode.CLOSE, b"\\x03", mask=...)``.
    """
    return CraftedFrame(Opcode.CLOSE, close_payload(code, reason), mask=mask)


def fragment(
    opcode: int,
    payload: bytes,
    sizes: Sequence[int],
    *,
    mask: bytes | None = None,
    rsv: int = 0,
    interleave: Mapping[int, Iterable[CraftedFrame]] | None = None,
) -> list[CraftedFrame]:
    """Split a message into frames (section 5.4).

    The first frame carries ``opcode`` (and ``rsv``), the others the
    continuation opcode, and only the last one has FIN. ``sizes`` gives the
    payload size of each frame but the last, which takes what is left; sizes
    that run past the end give empty frames. ``interleave[i]`` lists frames
    (control frames, for a valid message) to put after the i-th fragment, the
    first fragment being 0. Every fragment uses the same ``mask``.
    """
    if any(size < 0 for size in sizes):
        raise ValueError("fragment sizes must not be negative")
    pieces: list[bytes] = []
    position = 0
    for size in sizes:
        pieces.append(payload[position : position + size])
        position += size
    pieces.append(payload[position:])
    extra = interleave or {}
    frames: list[CraftedFrame] = []
    last = len(pieces) - 1
    for index, piece in enumerate(pieces):
        frames.append(
            CraftedFrame(
                opcode if index == 0 else Opcode.CONTINUATION,
                piece,
                fin=index == last,
                rsv=rsv if index == 0 else 0,
                mask=mask,
            )
        )
        frames.extend(extra.get(index, ()))
    return frames


def frames_to_bytes(frames: Iterable[CraftedFrame]) -> bytes:
    """The frames one after the other, as they go on the wire."""
    return b"".join(frame.to_bytes() for frame in frames)


def describe_frames(frames: Iterable[CraftedFrame]) -> list[str]:
    """:meth:`CraftedFrame.describe` for each frame."""
    return [frame.describe() for frame in frames]
