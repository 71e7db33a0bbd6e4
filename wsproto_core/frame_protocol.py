"""The frame-level names that wsproto applications import from ``wsproto.frame_protocol``.

``Opcode``, ``CloseReason`` and ``RsvBits`` are defined in
:mod:`wsproto_core.frames`; this module gives them their wsproto address. It also
holds wsproto's frame-level API, for programs and extensions written against it:
:class:`FrameProtocol` (frames in and out without connection state),
:class:`Frame`, :class:`ParseFailed` and the two maskers. They are built on
:class:`~wsproto_core.connection.Connection` and the frame codec, not a second
parser, so they parse and check exactly as the connection does; failures carry
wsproto's wording (see :func:`wsproto_core.compat.wsproto_failure_reason`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NamedTuple

from .connection import Connection, ConnectionType
from .errors import RemoteProtocolError
from .events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from .extensions import Extension
from .frames import MAX_CONTROL_PAYLOAD, CloseReason, Opcode, RsvBits, write_frame
from .masking import apply_mask

__all__ = [
    "CloseReason",
    "Frame",
    "FrameProtocol",
    "Opcode",
    "ParseFailed",
    "RsvBits",
    "XorMaskerNull",
    "XorMaskerSimple",
]


class ParseFailed(Exception):
    """The peer's frames broke the protocol; ``code`` is the close code to fail with."""

    def __init__(self, msg: str, code: int = CloseReason.PROTOCOL_ERROR) -> None:
        super().__init__(msg)
        self.code = code


class Frame(NamedTuple):
    """A received frame, or the part of one that has arrived.

    ``payload`` is ``str`` for text, ``bytes`` for binary, Ping and Pong, and
    ``(code, reason)`` for a Close. A continuation frame carries the opcode of
    the message it continues, as in wsproto.
    """

    opcode: Opcode
    payload: bytes | str | tuple[int, str]
    frame_finished: bool
    message_finished: bool


class XorMaskerSimple:
    """Masks consecutive pieces of one payload with one key (RFC 6455 section 5.3)."""

    def __init__(self, masking_key: bytes | bytearray) -> None:
        self._masking_key = bytes(masking_key)
        self._position = 0

    def process(self, data: bytes | bytearray) -> bytearray:
        """Mask (or unmask) the next piece of the payload."""
        masked = bytearray(apply_mask(data, self._masking_key, self._position))
        self._position += len(data)
        return masked


class XorMaskerNull:
    """The masker of unmasked frames: returns the data unchanged."""

    def process(self, data: bytes | bytearray) -> bytes | bytearray:
        """Return ``data`` as it is."""
        return data


class _FrameConnection(Connection):
    """A Connection that remembers the opcode of the frame that broke the protocol.

    wsproto names it when a data frame interrupts a fragmented message.
    """

    failed_opcode: int | None = None

    def _fail(self, failure: RemoteProtocolError) -> CloseConnection:
        buffer, offset = self._buffer, self._offset
        # The offending frame is still unconsumed: its first byte holds the opcode.
        self.failed_opcode = buffer[offset] & 0x0F if offset < len(buffer) else None
        return super()._fail(failure)


class FrameProtocol:
    """wsproto's frame layer: parse received frames and serialise frames to send.

    Unlike :class:`~wsproto_core.connection.Connection` it keeps no closing
    state: it sends whatever frame it is asked for, and reports received frames
    (a Close included) as :class:`Frame` objects. A protocol violation raises
    :class:`ParseFailed` from :meth:`received_frames`.

    :param client: whether this side masks its frames.
    :param extensions: the negotiated extensions; those not ``enabled()`` are ignored.
    """

    def __init__(self, client: bool, extensions: list[Extension]) -> None:
        from .compat import take_role  # noqa: PLC0415 - compat imports the modules this one does

        self.client = client
        self.extensions = [extension for extension in extensions if extension.enabled()]
        for extension in self.extensions:
            # An extension switched on by hand (wsproto's _enabled) learns its role here.
            take_role(extension, client)
        role = ConnectionType.CLIENT if client else ConnectionType.SERVER
        # min_partial_size=0: every piece is reported as it arrives, as wsproto does.
        self._connection = _FrameConnection(role, self.extensions, min_partial_size=0)
        self._outbound_opcode: Opcode | None = None

    @property
    def max_message_size(self) -> int | None:
        """The largest message accepted from the peer, as on the underlying connection."""
        return self._connection.max_message_size

    def receive_bytes(self, data: bytes) -> None:
        """Feed bytes received from the peer."""
        self._connection.receive_data(data)

    def received_frames(self) -> Iterator[Frame]:
        """Yield the frames (or parts of frames) the received bytes make up."""
        from .compat import wsproto_failure_reason  # noqa: PLC0415 - compat imports this module's users

        connection = self._connection
        for event in connection.events():
            if isinstance(event, TextMessage):
                yield Frame(Opcode.TEXT, event.data, event.frame_finished, event.message_finished)
            elif isinstance(event, BytesMessage):
                yield Frame(Opcode.BINARY, event.data, event.frame_finished, event.message_finished)
            elif isinstance(event, Ping):
                yield Frame(Opcode.PING, event.payload, True, True)
            elif isinstance(event, Pong):
                yield Frame(Opcode.PONG, event.payload, True, True)
            elif isinstance(event, CloseConnection):
                failure = connection.failure
                if failure is not None:
                    raise ParseFailed(wsproto_failure_reason(failure, connection.failed_opcode), failure.code)
                yield Frame(Opcode.CLOSE, (event.code, event.reason or ""), True, True)

    def close(self, code: int | None = None, reason: str | None = None) -> bytearray:
        """A Close frame; a code that must not be on the wire sends 1000 instead."""
        from .frames import build_close_payload, is_valid_close_code  # noqa: PLC0415

        if code is CloseReason.NO_STATUS_RCVD:
            # wsproto tests identity here, so only the enum member means "no
            # code"; a plain 1005 is unsendable and becomes 1000 below.
            code = None
        if code is None and reason:
            raise TypeError("cannot specify a reason without a code")
        if code is not None and not is_valid_close_code(code):
            code = CloseReason.NORMAL_CLOSURE
        return self._serialize_frame(Opcode.CLOSE, build_close_payload(code, reason))

    def ping(self, payload: bytes = b"") -> bytearray:
        """A Ping frame."""
        return self._serialize_frame(Opcode.PING, payload)

    def pong(self, payload: bytes = b"") -> bytearray:
        """A Pong frame."""
        return self._serialize_frame(Opcode.PONG, payload)

    def send_data(self, payload: bytes | bytearray | str = b"", fin: bool = True) -> bytearray:
        """A data frame: text for ``str``, binary for bytes; ``fin=False`` starts or continues a message."""
        if isinstance(payload, (bytes, bytearray, memoryview)):
            opcode = Opcode.BINARY
            data = bytes(payload)
        elif isinstance(payload, str):
            opcode = Opcode.TEXT
            data = payload.encode("utf-8")
        else:
            raise TypeError("Must provide bytes or text")
        if self._outbound_opcode is None:
            self._outbound_opcode = opcode
        elif self._outbound_opcode is not opcode:
            raise TypeError("Data type mismatch inside message")
        else:
            opcode = Opcode.CONTINUATION
        if fin:
            self._outbound_opcode = None
        return self._serialize_frame(opcode, data, fin)

    def _serialize_frame(self, opcode: Opcode, payload: bytes | bytearray = b"", fin: bool = True) -> bytearray:
        data = bytes(payload)
        rsv = RsvBits(False, False, False)
        # wsproto runs the outbound hooks last-negotiated first.
        for extension in reversed(self.extensions):
            rsv, data = extension.frame_outbound(self, opcode, rsv, data, fin)  # type: ignore[arg-type]
        if opcode.iscontrol() and len(data) > MAX_CONTROL_PAYLOAD:
            raise ValueError("payload too long for control frame")
        first = (0x80 if fin else 0) | (rsv.rsv1 << 6) | (rsv.rsv2 << 5) | (rsv.rsv3 << 4) | opcode
        # Section 5.3: a client masks every frame with a fresh, unpredictable key.
        return bytearray(write_frame(first, data, os.urandom(4) if self.client else None))
