"""The RFC 6455 frame vocabulary: opcodes, close codes, and frame serialisation.

This module owns the wire format rules that do not depend on connection state:
which opcodes and close codes exist, how a frame header is laid out (section
5.2), and how a Close frame's payload is encoded and checked (sections 5.5.1 and
7.4). Its frame codec (:func:`read_frame_header`, :func:`write_frame`,
:func:`frame_header`) is the only code that reads or writes a frame header:
the connection, the crafting tools, the fuzzers and the benchmarks call it.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

from .errors import LocalProtocolError, Violation
from .masking import SPEEDUPS, apply_mask, masked_frame

__all__ = [
    "LOCAL_ONLY_CLOSE_REASONS",
    "MAX_CONTROL_PAYLOAD",
    "RSV_BITS_BY_VALUE",
    "CloseReason",
    "Opcode",
    "RsvBits",
    "build_close_payload",
    "build_frame_header",
    "frame_header",
    "is_sendable_close_code",
    "is_valid_close_code",
    "parse_close_payload",
    "python_read_frame_header",
    "python_read_whole_message",
    "python_read_whole_messages",
    "python_write_frame",
    "read_frame_header",
    "read_whole_message",
    "read_whole_messages",
    "write_frame",
]

#: RFC 6455 section 5.5: "All control frames MUST have a payload length of 125
#: bytes or less".
MAX_CONTROL_PAYLOAD = 125


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 section 5.2). Values 3-7 and 11-15 are reserved."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA

    def iscontrol(self) -> bool:
        """Whether this is a control opcode (Close, Ping, Pong)."""
        return bool(self & 0x08)


class CloseReason(enum.IntEnum):
    """Close codes registered with IANA (RFC 6455 section 7.4.1 and the registry)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_FRAME_PAYLOAD_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXT = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE_FAILED = 1015


#: Section 7.4.1: 1005, 1006 and 1015 "MUST NOT be set as a status code in a
#: Close control frame by an endpoint"; they only describe a closure locally.
LOCAL_ONLY_CLOSE_REASONS = frozenset(
    {
        CloseReason.NO_STATUS_RCVD,
        CloseReason.ABNORMAL_CLOSURE,
        CloseReason.TLS_HANDSHAKE_FAILED,
    }
)


_REGISTERED_CLOSE_CODES = frozenset(CloseReason)


class RsvBits(NamedTuple):
    """The three reserved bits of a frame header, as extensions see them."""

    rsv1: bool
    rsv2: bool
    rsv3: bool


#: The eight RsvBits values, indexed by ``(first_header_byte >> 4) & 7``:
#: built once so that per-frame code never constructs one.
RSV_BITS_BY_VALUE = tuple(RsvBits(bool(bits & 4), bool(bits & 2), bool(bits & 1)) for bits in range(8))


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a Close frame on the wire.

    Section 7.4.2: 0-999 are unused; 1000-2999 belong to the RFC and IANA, of
    which only the registered, non-local-only codes may be sent; 3000-3999 are
    for libraries and frameworks (IANA registered) and 4000-4999 for private use.
    Anything at 5000 or above does not exist.
    """
    if 3000 <= code <= 4999:
        return True
    return 1000 <= code <= 1014 and code not in (1004, 1005, 1006)


def is_sendable_close_code(code: int) -> bool:
    """Whether ``send(CloseConnection(code))`` accepts ``code``.

    Every wire-valid code, plus 1005 (NO_STATUS_RCVD), which means "no code":
    it is what a received empty Close frame reports, so replying to one with
    ``event.response()`` sends an empty Close frame back.
    """
    return code == CloseReason.NO_STATUS_RCVD or is_valid_close_code(code)


def build_close_payload(code: int | None, reason: str | None) -> bytes:
    """Encode a Close frame payload, refusing what the RFC forbids.

    A reason longer than the 123 bytes a control frame leaves for it is cut at a
    UTF-8 character boundary rather than refused: applications pass reasons from
    their own users, and wsproto truncated too.
    """
    if code is None or code == CloseReason.NO_STATUS_RCVD:
        if reason:
            raise LocalProtocolError(
                "A close reason needs a close code: pass code=1000 (or another code) with the reason."
            )
        return b""
    if not is_sendable_close_code(code):
        raise LocalProtocolError(
            f"Close code {code} must not be sent (RFC 6455 section 7.4): use 1000 for a normal "
            "closure, 1001 when going away, 1011 for an internal error, or 3000-4999."
        )
    payload = code.to_bytes(2, "big")
    if reason:
        encoded = reason.encode("utf-8", "surrogatepass")
        if len(encoded) > MAX_CONTROL_PAYLOAD - 2:
            encoded = encoded[: MAX_CONTROL_PAYLOAD - 2]
            # Drop the trailing bytes of a character cut in half.
            encoded = encoded.decode("utf-8", "ignore").encode("utf-8")
        try:
            encoded.decode("utf-8")
        except UnicodeDecodeError:
            raise LocalProtocolError(
                "The close reason contains lone surrogates, which are not valid UTF-8; "
                "pass a reason made of real characters."
            ) from None
        payload += encoded
    return payload


def parse_close_payload(payload: bytes) -> tuple[int, str]:
    """Decode a received Close frame payload into ``(code, reason)``.

    An empty payload means no code was given: section 7.1.5 says the close code
    is then considered to be 1005. Raises :class:`RemoteProtocolError` with code
    1002 for a 1-byte payload or a code that must not be on the wire, and 1007
    for a reason that is not UTF-8 (section 5.5.1: "the data MUST be UTF-8").
    """
    if not payload:
        return CloseReason.NO_STATUS_RCVD, ""
    if len(payload) == 1:
        raise Violation.CLOSE_ONE_BYTE.error()
    code = int.from_bytes(payload[:2], "big")
    if not is_valid_close_code(code):
        raise Violation.CLOSE_INVALID_CODE.error(code_value=code)
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise Violation.CLOSE_REASON_UTF8.error() from None
    if code in _REGISTERED_CLOSE_CODES:
        code = CloseReason(code)
    return code, reason


# ------------------------------------------------------------------ the codec
#
# Section 5.2's header: byte 0 is FIN, RSV1-3 and the opcode; byte 1 is MASK
# and a 7-bit length, where 126 announces a 16-bit length and 127 a 64-bit one
# in the bytes that follow (network order); then the 4-byte masking key when
# MASK is set. read_frame_header and write_frame (and frame_header, for every
# form a test may want) are the only code that knows this layout; both run
# once per frame (hot path): compiled in _speedups.c, and here in Python,
# indexing bytes directly, for when no compiler was available.

_pack_16 = struct.Struct("!BBH").pack
_pack_64 = struct.Struct("!BBQ").pack
_from_bytes = int.from_bytes
# Two-byte headers of frames with a 7-bit length, for the first header bytes
# sent most (unfragmented text and binary, plain or compressed), looked up
# rather than built.
_SHORT_HEADERS = {first: tuple(bytes((first, length)) for length in range(126)) for first in (0x81, 0x82, 0xC1, 0xC2)}


def python_read_frame_header(
    data: bytes | bytearray | memoryview, position: int = 0
) -> tuple[int, int, bytes | None, int] | None:
    """Read the frame header at ``data[position:]`` (RFC 6455 section 5.2).

    Returns ``(first, length, mask, header_size)``: the first header byte
    (FIN ``0x80``, RSV bits ``0x70``, opcode ``0x0F``), the payload length as
    written (up to 2**64 - 1: the most significant bit that section 5.2
    reserves is the caller's to check), the 4-byte masking key or ``None``,
    and the size of the header including the key. Returns ``None`` when the
    header has not fully arrived. Any length form is accepted, minimal or not.
    """
    available = len(data) - position
    if available < 2:
        return None
    second = data[position + 1]
    length = second & 0x7F
    if length < 126:
        size = 2
    elif length == 126:
        if available < 4:
            return None
        length = (data[position + 2] << 8) | data[position + 3]
        size = 4
    else:
        if available < 10:
            return None
        length = _from_bytes(data[position + 2 : position + 10], "big")
        size = 10
    if second & 0x80:
        if available < size + 4:
            return None
        return data[position], length, bytes(data[position + size : position + size + 4]), size + 4
    return data[position], length, None, size


def frame_header(first: int, length: int, mask: bytes | None = None, length_size: int | None = None) -> bytes:
    """Write a frame header: ``first`` byte, length field, masking key.

    ``length_size`` forces the form of the length field (7, 16 or 64 bits;
    ``None``, the minimal form that section 5.2 requires of a sender), so
    that tests can write every form a receiver must accept or refuse. The
    length must fit the form; nothing else is checked.
    """
    mask_bit = 0x80 if mask is not None else 0
    if length_size is None:
        length_size = 7 if length < 126 else 16 if length < 0x10000 else 64
    if length_size == 7:
        header = bytes((first, mask_bit | length))
    elif length_size == 16:
        header = _pack_16(first, mask_bit | 126, length)
    else:
        header = _pack_64(first, mask_bit | 127, length)
    return header if mask is None else header + mask


def python_write_frame(first: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One frame on the wire: its header (minimal length form) and payload, masked with ``mask`` if given.

    Hot path: every frame that a ``Connection`` sends is written here.
    """
    length = len(payload)
    if mask is not None:
        if length < 126:
            return masked_frame(bytes((first, 0x80 | length)) + mask, payload, mask)
        if length < 0x10000:
            return masked_frame(_pack_16(first, 0xFE, length) + mask, payload, mask)
        return masked_frame(_pack_64(first, 0xFF, length) + mask, payload, mask)
    if length < 126:
        short = _SHORT_HEADERS.get(first)
        return (short[length] if short is not None else bytes((first, length))) + payload
    if length < 0x10000:
        return _pack_16(first, 126, length) + payload
    return _pack_64(first, 127, length) + payload


#: First header bytes of a whole message without RSV bits: final text, final binary.
_WHOLE_MESSAGE_FIRSTS = frozenset((0x81, 0x82))


def python_read_whole_message(data: bytes | bytearray | memoryview, masked: bool, limit: int) -> bytes | str | None:
    """The payload of ``data`` if it is exactly one whole message, else ``None``.

    One whole message: a single final text or binary frame (first byte
    ``0x81`` or ``0x82``: no RSV bits), masked if and only if ``masked``, whose
    payload of at most ``limit`` bytes ends where ``data`` ends. Text comes
    back decoded (strict UTF-8) and bad UTF-8 gives ``None`` too: this only
    recognises the common case, and a parser says what is wrong with the rest.
    """
    messages, end = python_read_whole_messages(data, masked, limit)
    return messages[0] if len(messages) == 1 and end == len(data) else None


def python_read_whole_messages(
    data: bytes | bytearray | memoryview, masked: bool, limit: int
) -> tuple[list[bytes | str], int]:
    """The whole messages that follow each other from the start of ``data``, and where they end.

    Each is what :func:`python_read_whole_message` takes (and returns); the
    scan stops at the first frame that is not one (or at bad UTF-8), whose
    offset is returned: ``len(data)`` when all of ``data`` was whole messages.
    """
    messages: list[bytes | str] = []
    view = memoryview(data)
    position = 0
    while True:
        header = python_read_frame_header(view, position)
        if header is None:
            break
        first, length, mask, size = header
        start = position + size
        end = start + length
        if first not in _WHOLE_MESSAGE_FIRSTS or (mask is not None) is not masked or end > len(view) or length > limit:
            break
        payload = apply_mask(view[start:end], mask) if mask is not None else bytes(view[start:end])
        if first == 0x81:
            try:
                messages.append(payload.decode("utf-8"))
            except UnicodeDecodeError:
                break
        else:
            messages.append(payload)
        position = end
    return messages, position


# The compiled codec when the C extension is there (and not disabled by
# WSPROTO_CORE_PURE_PYTHON), with the same results; the Python one otherwise.
read_frame_header = python_read_frame_header
read_whole_message = python_read_whole_message
read_whole_messages = python_read_whole_messages
write_frame = python_write_frame
if SPEEDUPS:
    from ._speedups import read_frame_header, read_whole_message, read_whole_messages, write_frame


def build_frame_header(opcode: int, length: int, fin: bool = True, rsv: int = 0, mask: bytes | None = None) -> bytes:
    """Serialise a frame header (section 5.2) with the minimal length encoding.

    ``rsv`` holds the RSV bits already in position (0x40 for RSV1, ...). The
    4-byte ``mask`` key, when given, sets the MASK bit and follows the length.
    """
    return frame_header((0x80 if fin else 0) | rsv | opcode, length, mask)
