"""The RFC 6455 frame vocabulary: opcodes, close codes, and frame serialisation.

This module owns the wire format rules that do not depend on connection state:
which opcodes and close codes exist, how a frame header is laid out (section
5.2), and how a Close frame's payload is encoded and checked (sections 5.5.1 and
7.4). The connection state machine in :mod:`wsproto_core.connection` parses
headers inline for speed, but takes every constant and every close-payload rule
from here.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from .errors import LocalProtocolError, Violation

__all__ = [
    "LOCAL_ONLY_CLOSE_REASONS",
    "MAX_CONTROL_PAYLOAD",
    "RSV_BITS_BY_VALUE",
    "CloseReason",
    "Opcode",
    "RsvBits",
    "build_close_payload",
    "build_frame_header",
    "is_sendable_close_code",
    "is_valid_close_code",
    "parse_close_payload",
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


def build_frame_header(opcode: int, length: int, fin: bool = True, rsv: int = 0, mask: bytes | None = None) -> bytes:
    """Serialise a frame header (section 5.2) with the minimal length encoding.

    ``rsv`` holds the RSV bits already in position (0x40 for RSV1, ...). The
    4-byte ``mask`` key, when given, sets the MASK bit and follows the length.
    """
    first = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if mask is not None else 0
    if length < 126:
        header = bytes((first, mask_bit | length))
    elif length < 0x10000:
        header = bytes((first, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((first, mask_bit | 127)) + length.to_bytes(8, "big")
    if mask is not None:
        header += mask
    return header
