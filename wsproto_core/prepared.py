"""Prepared messages: one message encoded once, then sent on any number of connections.

Fan-out (chat rooms, dashboards, notifications) sends the same message to many
connections. ``Connection.send`` on each of them encodes the text, builds a
header and copies the payload once per connection, and with permessage-deflate
compresses it once per connection. A :class:`PreparedMessage` does each of
these once per *wire form* and hands the same ``bytes`` object to every
connection that shares that form:

- A server's frame without extension is the same for every connection (RFC
  6455 section 5.1: "A server MUST NOT mask any frames that it sends"): it is
  built once.
- A client masks every frame with a fresh key (section 5.3), so clients share
  the encoded (and compressed) payload and mask it each.
- With permessage-deflate and no context takeover on our side (a server whose
  connection agreed ``server_no_context_takeover``, RFC 7692 section 7.1.1.1),
  every message is compressed from an empty window. Its compressed form then
  depends only on the window bits, compression level and memory level, so it
  is compressed once per such combination and shared by every connection with
  it.
- A connection whose compression context carries over from one message to the
  next cannot share: its compressed bytes refer to what it sent before. The
  message's ``compress_with_context`` chooses between compressing a copy for
  that connection (less bandwidth) and sending it the message uncompressed
  (less CPU), which RFC 7692 section 6 allows for any message: RSV1 on the
  first frame is what says a message is compressed. (A few peers mishandle an
  uncompressed message on a compressed connection, which is why it is not the
  default.)
- Any other extension (or one that is not exactly :class:`PerMessageDeflate`)
  goes through the connection's extension hooks, with the encoding shared.

``Connection.send_prepared`` takes the message through the same checks as
``send``: a connection that sent or received a Close refuses it, and one in
the middle of sending a fragmented message refuses it rather than interleave
it with the fragments. A compressed connection's per-message choices
(``compression_threshold``, ``send_next_uncompressed()``) apply as to any
message it sends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import LocalProtocolError
from .events import BytesMessage, TextMessage
from .frames import Opcode
from .permessage_deflate import PerMessageDeflate

if TYPE_CHECKING:
    from .connection import Connection
    from .extension_interface import Extension

__all__ = ["PreparedMessage"]

# RFC 7692 section 6: RSV1 on a message's first frame marks it compressed.
_RSV1 = 0x40


class PreparedMessage:
    """A whole text or binary message, encoded once for sending on many connections.

    :param data: ``str`` for a text message, bytes-like for a binary one.
    :param compress_with_context: what to do for a connection with
        permessage-deflate whose compression context carries over between
        messages (it cannot share a compressed payload): ``True`` (default)
        compresses a copy for it, ``False`` sends it this message uncompressed.

    Send it with ``Connection.send_prepared(message)`` (or a driver's
    ``broadcast``). A prepared message keeps the wire forms it built until it
    is dropped; it is meant to live as long as one fan-out.

    Attributes:
        ``compressions``: how many times the message was compressed so far
        (once per shared key, plus once per connection with context takeover).
    """

    __slots__ = (
        "_compressed",
        "_compressed_frames",
        "_data",
        "_first",
        "_payload",
        "_plain_frame",
        "compress_with_context",
        "compressions",
    )

    def __init__(self, data: str | bytes | bytearray | memoryview, *, compress_with_context: bool = True) -> None:
        if isinstance(data, str):
            try:
                self._payload = data.encode("utf-8")
            except UnicodeEncodeError:
                raise LocalProtocolError(
                    "The text contains lone surrogates, which UTF-8 cannot encode; "
                    "prepare real characters, or bytes for a binary message."
                ) from None
            # FIN and opcode 1 (text), section 5.2.
            self._first = 0x81
            self._data: str | bytes = data
        elif isinstance(data, (bytes, bytearray, memoryview)):
            self._payload = bytes(data)
            self._first = 0x82
            self._data = self._payload
        else:
            raise LocalProtocolError(f"A prepared message is str (text) or bytes (binary), not {type(data).__name__}.")
        self.compress_with_context = bool(compress_with_context)
        self.compressions = 0
        self._plain_frame: bytes | None = None
        # Compressed payloads and the server frames carrying them, by the
        # key of PerMessageDeflate._shared_compression_key.
        self._compressed: dict[tuple[int, int, int], bytes] = {}
        self._compressed_frames: dict[tuple[int, int, int], bytes] = {}

    @property
    def is_text(self) -> bool:
        """Whether this is a text message (else binary)."""
        return self._first == 0x81

    @property
    def data(self) -> str | bytes:
        """The message: ``str`` for text, ``bytes`` for binary."""
        return self._data

    @property
    def payload(self) -> bytes:
        """The message's bytes as sent uncompressed (UTF-8 for text)."""
        return self._payload

    def event(self) -> TextMessage | BytesMessage:
        """The same message as an event for ``Connection.send``."""
        if self._first == 0x81:
            return TextMessage(self._data)  # type: ignore[arg-type]
        return BytesMessage(self._payload)

    def __repr__(self) -> str:
        kind = "text" if self._first == 0x81 else "binary"
        return f"<PreparedMessage {kind}, {len(self._payload)} bytes, {self.compressions} compressions>"

    def _wire_for(self, connection: Connection, extension: Extension | None) -> bytes:
        """The bytes that send this message on ``connection``, built or taken from the cache.

        ``Connection.send_prepared`` calls it once it checked that the
        connection may send a whole message now, with ``extension``, the
        connection's only extension when it has whole-message methods (``None``
        for none).
        Frames are serialised by ``Connection._frame``, the one writer of the
        frame format; a server's frames are cached, a client's are masked anew.
        """
        payload = self._payload
        first = self._first
        if extension is not None and not isinstance(extension, PerMessageDeflate):
            # An extension with whole-message methods that this module does not
            # know: encoded for each connection, nothing shared.
            rsv, encoded = extension.encode_message(connection, Opcode(first & 0x0F), payload)
            return connection._frame(first | rsv, encoded)
        deflate = extension
        if deflate is not None:
            key = deflate._shared_compression_key(len(payload))
            if key is not None:
                compressed = self._compressed.get(key)
                if compressed is None:
                    # A fresh compressor (no context takeover): the shared form.
                    compressed = deflate._compress_whole(payload)
                    assert compressed is not None
                    self._compressed[key] = compressed
                    self.compressions += 1
                if connection.client:
                    return connection._frame(first | _RSV1, compressed)
                frame = self._compressed_frames.get(key)
                if frame is None:
                    frame = self._compressed_frames[key] = connection._frame(first | _RSV1, compressed)
                return frame
            if deflate._keeps_send_context and not self.compress_with_context:
                # Uncompressed for this connection, its context untouched.
                deflate.send_next_uncompressed()
            # Its own compression (context takeover), or none (threshold,
            # send_next_uncompressed), decided as for any message it sends.
            compressed = deflate._compress_whole(payload)
            if compressed is not None:
                self.compressions += 1
                return connection._frame(first | _RSV1, compressed)
        if connection.client:
            return connection._frame(first, payload)
        frame = self._plain_frame
        if frame is None:
            frame = self._plain_frame = connection._frame(first, payload)
        return frame
