"""The exceptions wsproto_core raises: one base class, split by whose fault it is.

``LocalProtocolError`` means the caller asked for something the protocol forbids
(sending data after a close, a 126-byte ping, ...); its message says what to do
instead. ``RemoteProtocolError`` means the peer broke the protocol; it carries the
close code that RFC 6455 names for the violation and, during the opening
handshake, an ``event_hint`` (the rejection to send back).
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError", "Violation"]


class ProtocolError(Exception):
    """Base class of every protocol error raised by wsproto_core."""


class LocalProtocolError(ProtocolError):
    """The local application misused the connection.

    Nothing was sent and the connection state did not change, so the caller may
    correct the call and carry on.
    """


class RemoteProtocolError(ProtocolError):
    """The peer violated the protocol.

    :param message: a human readable description of the violation.
    :param event_hint: during the opening handshake, the event to send in reply
        (usually a ``RejectConnection``); ``None`` after the handshake. Second
        and positional, as in wsproto.
    :param code: the WebSocket close code to fail the connection with (RFC 6455
        section 7.4.1): 1002 for framing errors, 1007 for invalid UTF-8, 1009
        for a frame or message over a configured limit, ...
    """

    def __init__(
        self, message: str, event_hint: Any = None, *, code: int = 1002, kind: Violation | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.event_hint = event_hint
        #: Which rule the peer broke, for a failure after the handshake (see
        #: :class:`Violation`); ``None`` for handshake errors.
        self.kind = kind

    def __repr__(self) -> str:
        return f"RemoteProtocolError({str(self)!r}, code={self.code})"


class Violation(enum.Enum):
    """Every way a peer can break the protocol after the handshake.

    Each member holds its close code (RFC 6455 section 7.4.1) and the wording
    of its message, so that each failure is raised from one place
    (:meth:`error`) and can be told apart by ``RemoteProtocolError.kind``
    rather than by its text (a compatibility layer, for one, maps kinds to
    another library's wording).
    """

    #: Section 5.2: RSV bits "MUST be 0 unless an extension is negotiated that
    #: defines meanings for non-zero values".
    RESERVED_BITS = (1002, "Reserved bits set {unclaimed}")
    #: Section 5.1: a server MUST fail on an unmasked frame.
    UNMASKED_FROM_CLIENT = (1002, "Unmasked frame from the client")
    #: Section 5.1: a client MUST fail on a masked frame.
    MASKED_FROM_SERVER = (1002, "Masked frame from the server")
    #: Section 5.2: opcodes 3-7 and 11-15 are reserved.
    RESERVED_OPCODE = (1002, "Reserved {kind} opcode {opcode:#x}")
    #: Section 5.5: control frames MUST NOT be fragmented.
    FRAGMENTED_CONTROL = (1002, "Fragmented {name} frame")
    #: Section 5.5: control frames carry at most 125 bytes.
    CONTROL_TOO_LONG = (1002, "{name} frame payload of {length} bytes: control frames carry at most {limit}")
    #: Section 5.2: "the most significant bit MUST be 0" in a 64-bit length.
    LENGTH_TOP_BIT = (1002, "Frame length with the most significant bit set")
    #: Section 5.4: a continuation frame continues a message.
    ORPHAN_CONTINUATION = (1002, "Continuation frame without a message to continue")
    #: Section 5.4: "fragments of one message MUST NOT be interleaved".
    INTERLEAVED_MESSAGE = (1002, "New data frame inside a fragmented message")
    #: Section 8.1: text MUST be UTF-8; fail with 1007.
    INVALID_UTF8 = (1007, "Text message is not valid UTF-8")
    #: Section 5.5.1: a Close body is empty or starts with a 2-byte code.
    CLOSE_ONE_BYTE = (1002, "Close frame with a 1-byte payload")
    #: Section 7.4: codes that must not be on the wire.
    CLOSE_INVALID_CODE = (1002, "Close frame with invalid close code {code_value}")
    #: Section 5.5.1: the Close reason MUST be UTF-8.
    CLOSE_REASON_UTF8 = (1007, "Close frame reason is not valid UTF-8")
    #: A frame over ``max_frame_size`` (section 7.4.1, 1009: "too big to process").
    FRAME_TOO_BIG = (1009, "Frame of {length} bytes exceeds max_frame_size={limit}")
    #: A message over ``max_message_size``.
    MESSAGE_TOO_BIG = (1009, "Message of at least {size} bytes exceeds max_message_size={limit}")
    #: An extension refused a frame's header (its code: e.g. RFC 7692 section 6).
    EXTENSION_REFUSED_FRAME = (1002, "Extension {name} refused the frame")
    #: An extension refused a payload (e.g. one that does not inflate).
    EXTENSION_REFUSED_PAYLOAD = (1002, "Extension {name} refused the payload")
    #: A bug of ours or of an extension while parsing (section 7.4.1, 1011).
    INTERNAL_ERROR = (1011, "Internal error while parsing: {cause!r}")

    @property
    def code(self) -> int:
        """The close code this violation fails the connection with."""
        code: int = self.value[0]
        return code

    def error(self, code: int | None = None, **details: object) -> RemoteProtocolError:
        """The :class:`RemoteProtocolError` for this violation, its message filled from ``details``.

        ``code`` overrides the member's close code (an extension names its own).
        """
        default, wording = self.value
        return RemoteProtocolError(wording.format(**details), code=default if code is None else code, kind=self)
