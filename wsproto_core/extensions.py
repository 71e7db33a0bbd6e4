"""The WebSocket extension interface (RFC 6455 section 9).

An extension takes part in two phases. During the opening handshake it offers
or accepts parameters (``offer``, ``accept``, ``finalize``). After it, the
connection calls its frame hooks: on every received frame header, on received
payload data, when a received frame completes, and on every outgoing data
frame. The hooks receive the :class:`~wsproto_core.connection.Connection` as
``proto``. The method names and return conventions are wsproto's, so existing
extensions keep working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .frames import CloseReason, Opcode, RsvBits

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


# Re-exported here because wsproto applications import it from
# ``wsproto.extensions``; at the bottom because that module imports Extension.
from .permessage_deflate import PerMessageDeflate  # noqa: E402

#: The extensions this library implements, by token (as in wsproto).
SUPPORTED_EXTENSIONS: dict[str, type[Extension]] = {PerMessageDeflate.name: PerMessageDeflate}

__all__ += ["SUPPORTED_EXTENSIONS", "PerMessageDeflate"]
