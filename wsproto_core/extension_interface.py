"""The WebSocket extension interface (RFC 6455 section 9): what a connection may ask of an extension.

An extension takes part in two phases. During the opening handshake it offers
or accepts parameters (``offer``, ``accept``, ``finalize``). After it, the
connection calls its frame hooks: on every received frame header, on received
payload data, when a received frame completes, and on every outgoing data
frame. The hooks receive the :class:`~wsproto_core.connection.Connection` as
``proto``. The method names and return conventions are wsproto's, so existing
extensions keep working.

An extension may also offer whole-message methods (:meth:`Extension.encode_message`,
:meth:`Extension.decode_message`): a connection whose only extension overrides
both sends and receives whole single-frame messages through one call each,
skipping the per-frame hooks. The defaults run the per-frame hooks, so the
result is the same either way; a connection chooses by what the extension
offers, never by its class. ``wsproto_core.extensions`` re-exports this
interface with the extensions the library implements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .frames import RSV_BITS_BY_VALUE, CloseReason, Opcode, RsvBits

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["Extension"]


class Extension:
    """Base class of WebSocket extensions; every hook defaults to "do nothing"."""

    #: The extension token used in ``Sec-WebSocket-Extensions``.
    name: str

    def enabled(self) -> bool:
        """Whether the handshake negotiated this extension for the connection."""
        return False

    def offer(self) -> bool | str:
        """Client side: the offer to put in the request (``True`` for no parameters)."""
        raise NotImplementedError

    def accept(self, offer: str) -> bool | str | None:
        """Server side: answer an offer; ``None``/``False`` declines it."""
        raise NotImplementedError

    def finalize(self, offer: str) -> None:
        """Client side: apply the parameters the server accepted."""
        raise NotImplementedError

    def frame_inbound_header(
        self, proto: Connection, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        """Inspect a received frame header; return the RSV bits this extension owns
        (so they are not treated as a violation) or a close code to fail with."""
        return RsvBits(False, False, False)

    def frame_inbound_payload_data(self, proto: Connection, data: bytes) -> bytes | CloseReason:
        """Transform received payload data (possibly part of a frame)."""
        return data

    def frame_inbound_complete(self, proto: Connection, fin: bool) -> bytes | CloseReason | None:
        """Called when a received data frame ends; may return trailing data."""
        return None

    def frame_inbound_payload(
        self, proto: Connection, data: bytes, frame_finished: bool, fin: bool
    ) -> bytes | CloseReason:
        """Transform received payload data, knowing whether it ends the frame.

        This is what the connection calls. The default runs wsproto's two hooks,
        :meth:`frame_inbound_payload_data` then (at the end of a frame)
        :meth:`frame_inbound_complete`, so extensions written for wsproto work
        unchanged; an extension may override it to do both in one step.
        """
        result = self.frame_inbound_payload_data(proto, data)
        if isinstance(result, CloseReason) or not frame_finished:
            return result
        tail = self.frame_inbound_complete(proto, fin)
        if isinstance(tail, CloseReason):
            return tail
        return result + tail if tail else result

    def release(self) -> None:
        """Free per-connection resources: the connection is closed or failed.

        Not part of wsproto's interface; the default does nothing.
        """

    def frame_outbound(
        self, proto: Connection, opcode: Opcode, rsv: RsvBits, data: bytes, fin: bool
    ) -> tuple[RsvBits, bytes]:
        """Transform an outgoing data frame; return its RSV bits and payload."""
        return rsv, data

    # ---------------------------------------------------- whole-message methods
    #
    # Optional. A connection whose only extension overrides both takes its
    # fast paths through them (see has_message_methods); otherwise it calls the
    # per-frame hooks above, which these defaults call too.

    #: The RSV bits, in place in the first header byte (0x40 RSV1, 0x20 RSV2,
    #: 0x10 RSV3), by which this extension marks a message it transformed. A
    #: whole message received without any of them is delivered as it arrived,
    #: without a call to :meth:`decode_message` (permessage-deflate: RSV1, RFC
    #: 7692 section 6).
    message_rsv_bits: int = 0

    def encode_message(self, proto: Connection, opcode: Opcode, data: bytes) -> tuple[int, bytes]:
        """Send side: a whole message sent as one frame; return its RSV bits (in place) and payload.

        The default calls :meth:`frame_outbound` for a final frame.
        """
        rsv, payload = self.frame_outbound(proto, opcode, RSV_BITS_BY_VALUE[0], data, True)
        return (rsv.rsv1 << 6) | (rsv.rsv2 << 5) | (rsv.rsv3 << 4), payload

    def decode_message(
        self, proto: Connection, opcode: Opcode, rsv: int, payload: bytes, max_size: int | None
    ) -> bytes | CloseReason:
        """Receive side: a whole message that arrived as one frame with ``rsv`` bits (in place).

        Return the message, or the close code to fail with: among them
        ``CloseReason.MESSAGE_TOO_BIG`` when it would exceed ``max_size`` bytes
        (``None``: no limit), and ``CloseReason.PROTOCOL_ERROR`` for RSV bits
        the extension does not use. The default calls
        :meth:`frame_inbound_header`, then :meth:`frame_inbound_payload` for
        the whole frame, and checks the size.
        """
        claimed = self.frame_inbound_header(proto, opcode, RSV_BITS_BY_VALUE[rsv >> 4], len(payload))
        if isinstance(claimed, CloseReason):
            return claimed
        if rsv & ~((claimed.rsv1 << 6) | (claimed.rsv2 << 5) | (claimed.rsv3 << 4)):
            return CloseReason.PROTOCOL_ERROR
        result = self.frame_inbound_payload(proto, payload, True, True)
        if isinstance(result, CloseReason):
            return result
        if max_size is not None and len(result) > max_size:
            return CloseReason.MESSAGE_TOO_BIG
        return result

    @classmethod
    def has_message_methods(cls) -> bool:
        """Whether this extension overrides both whole-message methods (its capability)."""
        return cls.encode_message is not Extension.encode_message and cls.decode_message is not Extension.decode_message
