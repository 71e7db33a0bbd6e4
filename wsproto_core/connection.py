"""The post-handshake WebSocket engine: frames in, events out; events in, bytes out.

:class:`Connection` knows nothing of HTTP. It starts OPEN, as it is after an
HTTP/1.1 upgrade or an RFC 8441 extended CONNECT, parses the frames the peer
sends (RFC 6455 section 5), turns them into events, and serialises the events
the application sends. It never touches a socket: ``receive_data`` takes the
bytes the driver read, ``events`` hands out what they meant, ``send`` returns the
bytes the driver must write.

Parsing is lazy: ``receive_data`` only stores bytes, and each step of the
``events()`` iterator parses just enough to produce one event. A state change
(a received Close) therefore happens exactly when its event is handed to the
application, never earlier: an echo server that replies to a message which
arrived in the same read as a Close can still send that reply.
"""

from __future__ import annotations

import codecs
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Final

from .errors import LocalProtocolError, RemoteProtocolError, Violation
from .events import (
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from .extension_interface import Extension
from .frames import (
    MAX_CONTROL_PAYLOAD,
    RSV_BITS_BY_VALUE,
    CloseReason,
    Opcode,
    build_close_payload,
    frame_header,
    is_sendable_close_code,
    parse_close_payload,
    read_frame_header,
    read_whole_message,
    read_whole_messages,
    write_frame,
)
from .masking import PayloadBuffer, PythonPayloadBuffer, apply_mask, unmask_utf8
from .state import ENDS_INPUT, SENDABLE, ConnectionState, ConnectionType, SendKind, Trigger, may_send, next_state

if TYPE_CHECKING:
    from .prepared import PreparedMessage

__all__ = [
    "CLIENT",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MIN_PARTIAL_SIZE",
    "SEPARATE_PAYLOAD_SIZE",
    "SERVER",
    "Connection",
    "ConnectionState",
    "ConnectionType",
    "check_limits",
]

#: The two roles under the module-level names wsproto also gives them
#: (``wsproto.connection.CLIENT``), which httpx-ws, for one, uses.
CLIENT: Final = ConnectionType.CLIENT
SERVER: Final = ConnectionType.SERVER

#: Default ``max_message_size``: 64 MiB. Large enough that a server configured
#: for 16 MiB messages (uvicorn's default ``ws_max_size``, Autobahn's largest
#: case) works without touching it, small enough that one peer cannot make an
#: application that assembles messages hold gigabytes.
DEFAULT_MAX_MESSAGE_SIZE: Final = 64 * 1024 * 1024

#: Default ``max_frame_size``: the same 64 MiB. Frames are streamed to the
#: application as they arrive (in pieces of ``min_partial_size``), so the frame
#: size limits no buffer of ours; it exists for applications that want to
#: refuse huge frames early.
DEFAULT_MAX_FRAME_SIZE: Final = 64 * 1024 * 1024

#: Default ``min_partial_size``: 64 KiB. A binary frame that arrives in small
#: reads is handed out in pieces of at least this size (or its end), so a 1 MiB
#: frame read 4 KiB at a time makes 16 events instead of 256; the bytes held back
#: meanwhile are bounded by this size plus one read.
DEFAULT_MIN_PARTIAL_SIZE: Final = 64 * 1024

#: The smallest piece of a frame gathered in a ``PayloadBuffer``: below it the
#: reads are joined, which costs about as little (and the buffer's code is
#: reached by the fuzz targets' small frames).
_GATHER_MIN: Final = 64
#: A piece is gathered once at least this fraction of it arrived: the buffer is
#: allocated at the piece's size, so a peer that announces a large frame and
#: sends little of it makes us hold at most this many times what it sent.
_GATHER_FRACTION: Final = 8

#: From this size up, :meth:`Connection.send_message_parts` keeps a server's
#: payload apart from its frame header (below it, copying costs less than a
#: part more to write).
SEPARATE_PAYLOAD_SIZE: Final = 16 * 1024

_OPEN = ConnectionState.OPEN
# The binary opcode as a plain int, for the hot paths' comparisons (no enum attribute lookup).
_BINARY: Final = int(Opcode.BINARY)
# First header bytes of the frames the receive fast path takes: unfragmented
# text and binary without RSV bits.
_PLAIN_FIRSTS = frozenset((0x81, 0x82))
#: The receive limit when none is set: larger than any message that fits in memory.
_NO_LIMIT = sys.maxsize
_NO_FIRSTS: frozenset[int] = frozenset()
# Extension hooks take Opcode and RsvBits objects; build them once, not per frame.
_OPCODES: dict[int, Opcode] = {opcode.value: opcode for opcode in Opcode}
_RSV_BITS = RSV_BITS_BY_VALUE


# First header bytes of final text and binary frames with some of the given
# RSV bits set and no other, by those bits: shared by every connection (one
# set each would cost 200 bytes per idle connection).
_FIRSTS_WITH_RSV: dict[int, frozenset[int]] = {
    rsv_bits: frozenset(
        0x80 | bits | opcode for opcode in (0x1, 0x2) for bits in range(0x10, 0x80, 0x10) if not bits & ~rsv_bits
    )
    for rsv_bits in range(0, 0x80, 0x10)
}


_CONTROL_NAMES: dict[int, str] = {0x8: "Close", 0x9: "Ping", 0xA: "Pong"}
_utf8_decoder = codecs.getincrementaldecoder("utf-8")
_read_frame_header = read_frame_header
_read_whole_message = read_whole_message
_read_whole_messages = read_whole_messages
_write_frame = write_frame
# Masks are drawn from the OS entropy source (RFC 6455 section 10.3: "MUST be
# derived from a strong source of entropy") in batches, because one getrandom()
# call per frame would cost more than building the frame.
_MASK_BATCH = 256


def check_limits(**limits: int | None) -> None:
    """Refuse a size limit that is neither ``None`` nor a non-negative int."""
    for name, limit in limits.items():
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise LocalProtocolError(f"{name} must be a non-negative int or None, not {limit!r}")


def check_min_partial_size(min_partial_size: int) -> None:
    """Refuse a ``min_partial_size`` that is not a non-negative int."""
    if min_partial_size is None:
        raise LocalProtocolError("min_partial_size must be a non-negative int (0 hands out every piece), not None")
    check_limits(min_partial_size=min_partial_size)


class Connection:
    """A WebSocket connection after its opening handshake.

    :param connection_type: ``ConnectionType.CLIENT`` or ``ConnectionType.SERVER``;
        it decides which side masks its frames.
    :param extensions: the extensions the handshake negotiated; those whose
        ``enabled()`` is false are ignored.
    :param trailing_data: bytes received after the handshake, to parse first.
    :param max_frame_size: the largest frame payload accepted from the peer, in
        bytes; a larger frame fails the connection with 1009. ``None`` means no
        limit.
    :param max_message_size: the largest message accepted from the peer (after
        decompression, when an extension compresses), in bytes; a larger one
        fails the connection with 1009. ``None`` means no limit.
    :param min_partial_size: a binary frame whose payload arrives over several
        ``receive_data`` calls is handed out in ``BytesMessage`` pieces of at
        least this many received bytes (counted before decompression), or when
        the frame ends; the bytes waiting meanwhile stay buffered (at most this
        size plus one read). 0 hands out every piece as it arrives, as wsproto
        does. Text frames are always handed out as they arrive, so that invalid
        UTF-8 fails the connection at once (section 8.1).

    Attributes:
        ``client``: whether we are the client.
        ``failure``: the :class:`RemoteProtocolError` that failed the connection,
        if the peer broke the protocol, else ``None``.
    """

    # Every attribute is a slot: reading one on the hot paths is a load at a
    # fixed offset, an idle connection carries no dict, and WSConnection, which
    # adds one slot, can become a Connection in all but name after its upgrade
    # (see wsproto_core.WSConnection). _setup assigns them all.
    __slots__ = (
        "__weakref__",
        "_buffer",
        "_frame_fin",
        "_frame_mask",
        "_frame_position",
        "_frame_remaining",
        "_frame_wait",
        "_input_done",
        "_mask_index",
        "_masks",
        "_max_frame_size",
        "_max_message_size",
        "_message_extension",
        "_message_firsts",
        "_message_opcode",
        "_message_send",
        "_message_size",
        "_min_partial_size",
        "_offset",
        "_payload",
        "_plain_firsts",
        "_plain_send",
        "_receive_limit",
        "_send_opcode",
        "_state",
        "_transport_closed",
        "_utf8",
        "_whole_frame_limit",
        "client",
        "extensions",
        "failure",
    )

    #: When true, sending a close code that must never be on the wire (1006,
    #: 1015, 0, 2999, ...) sends 1000 instead of raising, so that the closing
    #: handshake still happens, as it did with wsproto. Set by
    #: :func:`wsproto_core.compat.install` for wsproto applications, which
    #: "close" a dead connection with 1006 or pass codes unchecked.
    wsproto_close_codes = False

    def __init__(
        self,
        connection_type: ConnectionType,
        extensions: Iterable[Extension] | None = None,
        trailing_data: bytes = b"",
        *,
        max_frame_size: int | None = DEFAULT_MAX_FRAME_SIZE,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        min_partial_size: int = DEFAULT_MIN_PARTIAL_SIZE,
    ) -> None:
        if not isinstance(connection_type, ConnectionType):
            raise LocalProtocolError(
                f"connection_type must be ConnectionType.CLIENT or ConnectionType.SERVER, not {connection_type!r}"
            )
        check_limits(max_frame_size=max_frame_size, max_message_size=max_message_size)
        check_min_partial_size(min_partial_size)
        self._setup(
            connection_type is ConnectionType.CLIENT, extensions, max_frame_size, max_message_size, min_partial_size
        )
        if trailing_data:
            self.receive_data(trailing_data)

    def _setup(
        self,
        client: bool,
        extensions: Iterable[Extension] | None,
        max_frame_size: int | None,
        max_message_size: int | None,
        min_partial_size: int,
    ) -> None:
        # Sets every slot; the handshake calls this with limits it already
        # checked, on a new Connection or on the WSConnection it opens.
        self.client = client
        # Only the extensions that the handshake enabled take part: hypercorn,
        # like wsproto's own handshake, passes every configured extension here.
        self.extensions: list[Extension] = (
            [extension for extension in extensions if extension.enabled()] if extensions else []
        )
        self._max_frame_size = max_frame_size
        self._max_message_size = max_message_size
        self._min_partial_size = min_partial_size
        # An only extension that offers whole-message methods (as
        # permessage-deflate does) lets whole messages skip the per-frame
        # hooks: the fast paths then encode and decode with one call each.
        # Chosen by what the extension can do, never by its class.
        only = self.extensions[0] if len(self.extensions) == 1 else None
        self._message_extension = only if only is not None and only.has_message_methods() else None
        # First header bytes of whole messages the receive fast paths take:
        # plain ones (without RSV bits: not the message extension's), and
        # those carrying the message extension's RSV bits.
        self._plain_firsts = _PLAIN_FIRSTS if not self.extensions or self._message_extension is not None else _NO_FIRSTS
        message_extension = self._message_extension
        self._message_firsts = (
            _FIRSTS_WITH_RSV[message_extension.message_rsv_bits & 0x70] if message_extension else _NO_FIRSTS
        )
        # The largest message receive_messages() may return without the parser:
        # the smaller of the two limits.
        receive_limit = _NO_LIMIT
        for limit in (max_frame_size, max_message_size):
            if limit is not None and limit < receive_limit:
                receive_limit = limit
        self._receive_limit = receive_limit
        # The largest frame the parser's fast path may take without checking
        # the limits one by one: the same, at most 64 KiB.
        self._whole_frame_limit = min(0xFFFF, receive_limit)
        self.failure: RemoteProtocolError | None = None
        self._state = _OPEN
        # Unparsed input: _buffer[_offset:]. Kept as the caller's bytes object when
        # possible (no copy), turned into a bytearray when data must be joined.
        self._buffer: bytes | bytearray = b""
        self._offset = 0
        # Set once no more frames will be parsed: a Close was received, the peer
        # broke the protocol, or the transport closed and its bytes are used up.
        self._input_done = False
        self._transport_closed = False
        # The frame whose payload is being read, when its header has been parsed
        # but not all of its payload has arrived.
        self._frame_remaining = -1
        self._frame_fin = False
        self._frame_mask: bytes | bytearray | None = None
        self._frame_position = 0
        # While the frame above streams in: how many bytes must be buffered
        # before _continue_frame has something to hand out; 0 when unknown.
        self._frame_wait = 0
        # The next piece of that frame, while it is gathered straight into its
        # own buffer (see _continue_frame); then nothing else is buffered.
        self._payload: PythonPayloadBuffer | None = None  # or its compiled twin
        # The message being received: its opcode (TEXT or BINARY) while it is
        # fragmented or partly delivered, else 0; its size so far; its decoder.
        self._message_opcode = 0
        self._message_size = 0
        self._utf8: codecs.IncrementalDecoder | None = None
        # The message being sent, while fragmented: its opcode, else 0.
        self._send_opcode = 0
        # Whether send() may take its hot path: no extension, OPEN and no
        # fragmented message in progress.
        self._set_send_paths()
        self._masks = b""
        self._mask_index = 0

    def _transition(self, trigger: Trigger) -> None:
        self._state = next_state(self._state, trigger)
        if trigger in ENDS_INPUT:
            # state.ENDS_INPUT: nothing the peer sends from now on is parsed;
            # drop what it already sent rather than keep it buffered.
            self._input_done = True
            self._buffer = b""
            self._offset = 0
        self._set_send_paths()
        if self._state is ConnectionState.CLOSED or trigger is Trigger.REMOTE_VIOLATION:
            # Nothing more will be compressed or decompressed: let extensions
            # free their state (zlib windows) now rather than at collection.
            for extension in self.extensions:
                extension.release()

    def _set_send_paths(self) -> None:
        # The send fast paths take whole messages while data may be sent (the
        # table says when) with no fragmented message in progress: one with no
        # extension, one through the message extension.
        whole = SendKind.DATA in SENDABLE[self._state] and not self._send_opcode
        self._plain_send = whole and not self.extensions
        self._message_send = whole and self._message_extension is not None

    @property
    def connection_type(self) -> ConnectionType:
        """``ConnectionType.CLIENT`` or ``ConnectionType.SERVER``."""
        return ConnectionType.CLIENT if self.client else ConnectionType.SERVER

    @property
    def min_partial_size(self) -> int:
        """How many bytes of a binary frame's payload are gathered before a piece is handed out."""
        return self._min_partial_size

    @property
    def max_frame_size(self) -> int | None:
        """The largest frame payload accepted from the peer (``None``: no limit)."""
        return self._max_frame_size

    @property
    def max_message_size(self) -> int | None:
        """The largest message accepted from the peer (``None``: no limit)."""
        return self._max_message_size

    @property
    def state(self) -> ConnectionState:
        """The current :class:`ConnectionState`."""
        return self._state

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: bytes | bytearray | memoryview | None) -> None:
        """Feed bytes received from the peer, or ``None`` when the transport closed.

        Nothing is parsed here; iterate :meth:`events` to get what the bytes mean.
        After ``None``, frames that had fully arrived are still delivered, then a
        ``CloseConnection`` with code 1006 if the peer never sent a Close.
        """
        if data is None:
            self._transport_closed = True
            # What is held back of a streaming frame is handed out now.
            self._frame_wait = 0
            self._transition(Trigger.TRANSPORT_CLOSED)
            return
        if self._transport_closed:
            raise LocalProtocolError(
                "receive_data() was called after receive_data(None) said the transport closed; "
                "stop feeding this connection."
            )
        if self._input_done:
            # RFC 6455 section 5.5.1: nothing the peer sends after its Close (or
            # after it broke the protocol) is processed.
            return
        if not data:
            return
        payload = self._payload
        if payload is not None:
            # A large frame's piece is gathered: its bytes go straight to it.
            count = payload.write(data)
            if not payload.missing:
                self._frame_wait = 0
            if count == len(data):
                return
            data = memoryview(data)[count:]
        buffer = self._buffer
        if self._offset >= len(buffer):
            self._buffer = data if data.__class__ is bytes else bytes(data)
            self._offset = 0
        elif buffer.__class__ is bytearray:
            # Compact once per call (amortised O(1): CPython moves the start of
            # a bytearray instead of copying when the front is deleted). While
            # a streaming frame is held back nothing was consumed (hot path).
            if self._offset:
                del buffer[: self._offset]
                self._offset = 0
            buffer += data
        else:
            joined = bytearray(memoryview(buffer)[self._offset :])
            joined += data
            self._buffer = joined
            self._offset = 0

    def receive_messages(self, data: bytes | bytearray | memoryview) -> list[str | bytes]:
        """Feed ``data``; return at once the whole messages it starts with, and feed the parser the rest.

        The fast path of a driver's read. While nothing received waits to be
        parsed, the whole messages that follow each other from the start of
        ``data`` are returned in order: each a single final text or binary
        frame without RSV bits, within the size limits, masked as the peer's
        role requires; ``str`` for text (checked UTF-8), ``bytes`` for binary.
        They change no state and make no event. The rest of ``data`` (part of
        a frame, a control frame, a compressed message, a violation) is fed as
        by :meth:`receive_data`, as all of ``data`` is when no message comes
        first. Those messages come first: once they are handled, iterate
        :meth:`events` for the rest when :attr:`buffered_bytes` is not zero.
        ``data`` is not kept (a buffer the caller reuses will do): the
        messages' payloads are copied as they are unmasked.
        """
        if (
            self._offset >= len(self._buffer)
            and self._frame_remaining < 0
            and not self._message_opcode
            and not self._input_done
            and not self._transport_closed
            and self._plain_firsts is _PLAIN_FIRSTS
        ):
            # A read that is exactly one message (the common case) costs one
            # call that makes no list of positions.
            message = _read_whole_message(data, not self.client, self._receive_limit)
            if message is not None:
                return [message]
            messages, end = _read_whole_messages(data, not self.client, self._receive_limit)
            if end < len(data):
                self.receive_data(memoryview(data)[end:] if end else data)
            return messages
        self.receive_data(data)
        return []

    @property
    def buffered_bytes(self) -> int:
        """How many received bytes are waiting to be parsed (or to be handed out, for a gathered piece)."""
        payload = self._payload
        if payload is None:
            return len(self._buffer) - self._offset
        return len(self._buffer) - self._offset + payload.filled

    def payload_buffer(self) -> memoryview | None:
        """Where the next bytes received may be read straight into, or ``None``.

        A binary frame that arrives over several reads is handed out in
        pieces of ``min_partial_size`` bytes (or its end). Once enough of a
        piece arrived, the connection gathers the rest of it in a buffer of its
        own, the piece's final ``bytes``: this is a writable view of the part of
        it still missing. A driver whose transport can read into a buffer of
        its choosing (asyncio's ``BufferedProtocol``, ``socket.recv_into``)
        reads into this view and calls :meth:`payload_received`, so that the
        payload is copied only by the kernel (and unmasked where it is); it
        reads anywhere and calls :meth:`receive_data` when this is ``None``.
        The view is good until the next call of any other method.
        """
        payload = self._payload
        if payload is None or not payload.missing:
            return None
        return payload.unfilled()

    def payload_received(self, nbytes: int) -> None:
        """``nbytes`` were read into the start of the view :meth:`payload_buffer` returned.

        Like :meth:`receive_data`, nothing is parsed here: iterate :meth:`events`.
        """
        payload = self._payload
        if payload is None:
            raise LocalProtocolError(
                "payload_received() was called while no payload is gathered; "
                "when payload_buffer() returns None, feed what was read with receive_data()."
            )
        try:
            payload.received(nbytes)
        except ValueError:
            raise LocalProtocolError(
                f"payload_received({nbytes!r}): the view from payload_buffer() holds {payload.missing} bytes"
            ) from None
        if not payload.missing:
            self._frame_wait = 0

    def events(self) -> Iterator[Event]:
        """Iterate over the events that the received bytes make up.

        Each step parses one frame (or the available part of one), so the
        iterator may be abandoned and a new one started later. A protocol
        violation by the peer ends the iteration with a ``CloseConnection``
        carrying the close code the RFC names; ``failure`` then tells why.
        """
        # A generator, as wsproto's: the buffer is looked at when the iterator
        # is advanced, so one taken before receive_data() sees what came after.
        return self._parse_events()

    def _parse_events(self) -> Iterator[Event]:
        if self._frame_remaining > 0 and len(self._buffer) - self._offset < self._frame_wait:
            # Hot path while a large frame streams in: not enough of it has
            # arrived to hand out (see _continue_frame).
            return
        while not self._input_done:
            try:
                event = self._parse()
            except RemoteProtocolError as exc:
                yield self._fail(exc)
                return
            except Exception as exc:  # noqa: BLE001 - the parser must never leak an exception
                # A bug of ours or of an extension: fail with 1011 (section
                # 7.4.1, "an unexpected condition prevented it from fulfilling
                # the request") and keep the cause for whoever investigates.
                failure = Violation.INTERNAL_ERROR.error(cause=exc)
                failure.__cause__ = exc
                yield self._fail(failure)
                return
            if event is None:
                if self._transport_closed:
                    # Reached only when no Close was received (a Close ends
                    # the input): section 7.1.5 calls that code 1006.
                    self._input_done = True
                    yield CloseConnection(code=CloseReason.ABNORMAL_CLOSURE)
                return
            yield event

    def _fail(self, failure: RemoteProtocolError) -> CloseConnection:
        """Fail the connection (section 7.1.7) and return the event saying so."""
        self.failure = failure
        self._frame_remaining = -1
        self._payload = None
        self._utf8 = None
        self._transition(Trigger.REMOTE_VIOLATION)
        reason = str(failure).encode("utf-8")[: MAX_CONTROL_PAYLOAD - 2].decode("utf-8", "ignore")
        return CloseConnection(code=failure.code, reason=reason)

    def _parse(self) -> Event | None:
        """Parse the next event from the buffer, or return ``None`` for "need more".

        Hot path: this runs once per received frame. The header is read by the
        codec (``frames.read_frame_header``) and, when the whole frame is
        buffered, the payload is sliced exactly once.
        """
        while True:
            if self._frame_remaining >= 0:
                # None here means "need more bytes": a frame that ends always
                # produces an event.
                return self._continue_frame()

            buffer = self._buffer
            position = self._offset
            header = _read_frame_header(buffer, position)
            if header is None:
                if len(buffer) - position >= 2:
                    # Fail on the first two bytes without waiting for the rest.
                    first = buffer[position]
                    self._check_header(first, buffer[position + 1] & 0x80, first & 0x0F, first & 0x80)
                return None
            first, length, mask, header_size = header
            start = position + header_size
            end = start + length

            if (
                first in self._plain_firsts
                and length <= self._whole_frame_limit
                and end <= len(buffer)
                and (mask is None) is self.client
                and not self._message_opcode
            ):
                # Fast path: a whole unfragmented message in one frame with a
                # small length, no RSV bits, masked as our role expects.
                self._offset = end
                if mask is not None:
                    if first == 0x81:
                        # A server's text message: unmasked and decoded in one
                        # call, with no intermediate bytes.
                        try:
                            return TextMessage(unmask_utf8(buffer, start, end, mask), True, True)
                        except UnicodeDecodeError:
                            raise Violation.INVALID_UTF8.error() from None
                    payload = apply_mask(buffer[start:end], mask)
                elif buffer.__class__ is bytes:
                    payload = buffer[start:end]
                else:
                    payload = bytes(buffer[start:end])
                if first == 0x82:
                    return BytesMessage(payload, True, True)
                try:
                    return TextMessage(payload.decode("utf-8"), True, True)
                except UnicodeDecodeError:
                    raise Violation.INVALID_UTF8.error() from None
            if (
                first in self._message_firsts
                and length <= self._whole_frame_limit
                and end <= len(buffer)
                and (mask is None) is self.client
                and not self._message_opcode
            ):
                return self._parse_encoded_whole(buffer, first, start, end, mask)

            opcode = first & 0x0F
            fin = first & 0x80
            self._check_header(first, mask is not None, opcode, fin)
            if length >> 63:
                raise Violation.LENGTH_TOP_BIT.error()

            if opcode & 0x08:
                # Control frame: at most 125 bytes, handled whole (section 5.5).
                if length > MAX_CONTROL_PAYLOAD:
                    raise Violation.CONTROL_TOO_LONG.error(
                        name=_CONTROL_NAMES[opcode], length=length, limit=MAX_CONTROL_PAYLOAD
                    )
                if len(buffer) < end:
                    return None
                payload = bytes(buffer[start:end])
                self._offset = end
                if mask is not None:
                    payload = apply_mask(payload, mask)
                if self.extensions:
                    self._inbound_header(opcode, first, length)
                return self._control_event(opcode, payload)

            self._start_data_frame(opcode, fin, length, first)
            if end <= len(buffer):
                # The whole frame is here: the common case for small messages.
                # Each branch copies the payload once: unmasking reads straight
                # from the buffer through a view (the view is gone before the
                # buffer can be resized), and a bytes slice is one copy.
                if mask is not None:
                    payload = apply_mask(memoryview(buffer)[start:end], mask)
                elif buffer.__class__ is bytes:
                    payload = buffer[start:end]
                else:
                    payload = bytes(memoryview(buffer)[start:end])
                self._offset = end
                if self.extensions:
                    self._frame_fin = bool(fin)
                    payload = self._inbound_payload(payload, True)
                message_opcode = self._message_opcode
                if fin:
                    self._message_opcode = 0
                    self._message_size = 0
                if message_opcode == _BINARY:
                    return BytesMessage(payload, True, bool(fin))
                return self._text_event(payload, True, bool(fin))

            self._offset = start
            self._frame_remaining = length
            self._frame_fin = bool(fin)
            self._frame_mask = mask
            self._frame_position = 0
            self._frame_wait = 0

    def _check_header(self, first: int, masked: object, opcode: int, fin: int) -> None:
        """Enforce the framing rules that the first two header bytes decide."""
        if first & 0x70 and not self.extensions:
            # Section 5.2: "MUST be 0 unless an extension is negotiated that
            # defines meanings for non-zero values".
            raise Violation.RESERVED_BITS.error(unclaimed="without a negotiated extension")
        if masked:
            if self.client:
                # Section 5.1: "A client MUST close a connection if it detects a
                # masked frame."
                raise Violation.MASKED_FROM_SERVER.error()
        elif not self.client:
            # Section 5.1: "The server MUST close the connection upon receiving
            # a frame that is not masked."
            raise Violation.UNMASKED_FROM_CLIENT.error()
        if opcode & 0x08:
            if opcode > 0x0A:
                raise Violation.RESERVED_OPCODE.error(kind="control", opcode=opcode)
            # Section 5.5: "All control frames MUST have a payload length of 125
            # bytes or less and MUST NOT be fragmented."
            # The length limit is checked once the extended length is read: a
            # non-minimal encoding of a short payload is accepted, as for data
            # frames (section 5.2's "minimal number of bytes" binds the sender).
            if not fin:
                raise Violation.FRAGMENTED_CONTROL.error(name=_CONTROL_NAMES[opcode])
        elif opcode > 0x02:
            raise Violation.RESERVED_OPCODE.error(kind="data", opcode=opcode)
        elif opcode == 0:
            if not self._message_opcode:
                # Section 5.4: fragments after the first use the continuation
                # opcode, so one without a first fragment is a violation.
                raise Violation.ORPHAN_CONTINUATION.error()
        elif self._message_opcode:
            # Section 5.4: "fragments of one message MUST NOT be interleaved".
            raise Violation.INTERLEAVED_MESSAGE.error()

    def _start_data_frame(self, opcode: int, fin: int, length: int, first: int) -> None:
        """Account for a data frame whose header has been parsed and checked."""
        if self._max_frame_size is not None and length > self._max_frame_size:
            raise Violation.FRAME_TOO_BIG.error(length=length, limit=self._max_frame_size)
        if opcode:
            self._message_opcode = opcode
        if self.extensions:
            self._inbound_header(opcode, first, length)
        else:
            size = self._message_size + length
            if self._max_message_size is not None and size > self._max_message_size:
                raise Violation.MESSAGE_TOO_BIG.error(size=size, limit=self._max_message_size)
            self._message_size = size

    def _continue_frame(self) -> Event | None:
        """Deliver what has arrived of the payload of the current data frame."""
        payload = self._payload
        if payload is not None:
            if payload.missing and not self._transport_closed:
                self._frame_wait = 1
                return None
            # The gathered piece (or, once the transport closed, what came of it).
            self._payload = None
            self._frame_wait = 0
            return self._frame_piece(payload.take())
        buffer = self._buffer
        position = self._offset
        remaining = self._frame_remaining
        take = len(buffer) - position
        if take >= remaining:
            take = remaining
        elif take <= 0:
            self._frame_wait = 1
            return None
        elif take < self._min_partial_size and self._message_opcode == _BINARY and not self._transport_closed:
            # Hot path while a large frame streams in: wait for the frame's end,
            # or for min_partial_size bytes of binary payload (text is handed
            # out at once, so that invalid UTF-8 fails without delay; and what
            # arrived before the transport closed is handed out too).
            want = min(remaining, self._min_partial_size)
            if want >= _GATHER_MIN and take * _GATHER_FRACTION >= want:
                # Gather the rest of the piece in its own buffer, its final
                # bytes: the reads are not joined, and each byte is copied
                # once (unmasked on the way), or read there (payload_buffer()).
                payload = self._payload = PayloadBuffer(want, self._frame_mask, self._frame_position)
                payload.write(memoryview(buffer)[position:])
                self._buffer = b""
                self._offset = 0
                self._frame_wait = 1
                return None
            # Come back when that much arrived, or enough to gather the piece.
            self._frame_wait = -(-want // _GATHER_FRACTION) if want >= _GATHER_MIN else want
            return None
        self._frame_wait = 0
        end = position + take
        if self._frame_mask is not None:
            # One pass from the buffer into the new bytes, through a view that
            # is gone before the buffer can be resized.
            chunk = apply_mask(memoryview(buffer)[position:end], self._frame_mask, self._frame_position)
        elif buffer.__class__ is bytes:
            chunk = buffer[position:end]
        else:
            chunk = bytes(memoryview(buffer)[position:end])
        self._offset = end
        return self._frame_piece(chunk)

    def _frame_piece(self, chunk: bytes) -> Event | None:
        """The event for the next ``chunk`` of the current data frame's payload."""
        take = len(chunk)
        self._frame_position += take
        remaining = self._frame_remaining - take
        frame_finished = remaining == 0
        message_finished = frame_finished and self._frame_fin
        if frame_finished:
            self._frame_remaining = -1
            self._frame_mask = None
        else:
            self._frame_remaining = remaining
        if self.extensions:
            chunk = self._inbound_payload(chunk, frame_finished)
        message_opcode = self._message_opcode
        if message_finished:
            self._message_opcode = 0
            self._message_size = 0
        if message_opcode == _BINARY:
            return BytesMessage(chunk, frame_finished, message_finished)
        return self._text_event(chunk, frame_finished, message_finished)

    def _text_event(self, payload: bytes, frame_finished: bool, message_finished: bool) -> TextMessage | None:
        """Decode a piece of a text message, failing on the first invalid byte.

        Returns ``None`` when the piece holds only the start of a character that
        the next piece completes (and does not end a frame).
        """
        decoder = self._utf8
        if decoder is None:
            if message_finished:
                # A whole message in one piece: no state to carry over.
                try:
                    return TextMessage(payload.decode("utf-8"), frame_finished, True)
                except UnicodeDecodeError:
                    raise Violation.INVALID_UTF8.error() from None
            decoder = self._utf8 = _utf8_decoder()
        try:
            text = decoder.decode(payload, message_finished)
        except UnicodeDecodeError:
            raise Violation.INVALID_UTF8.error() from None
        if message_finished:
            self._utf8 = None
        else:
            pending = decoder.getstate()[0]
            # CPython's decoder only rejects a truncated sequence once it sees
            # the byte that breaks it, except for ED followed by A0-BF (the
            # start of a UTF-16 surrogate), which it holds back. Section 8.1
            # asks to fail as soon as the bytes cannot be valid, so check it.
            if len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0:
                raise Violation.INVALID_UTF8.error()
        if not text and not frame_finished:
            return None
        return TextMessage(text, frame_finished, message_finished)

    def _control_event(self, opcode: int, payload: bytes) -> Event:
        if opcode == 0x9:
            return Ping(payload)
        if opcode == 0xA:
            return Pong(payload)
        code, reason = parse_close_payload(payload)
        # Ends the input (state.ENDS_INPUT): the peer sends nothing after its Close.
        self._transition(Trigger.RECEIVE_CLOSE)
        return CloseConnection(code=code, reason=reason)

    # ----------------------------------------------------------- extension hooks

    def _parse_encoded_whole(
        self, buffer: bytes | bytearray, first: int, start: int, end: int, mask: bytes | None
    ) -> TextMessage | BytesMessage:
        """The receive fast path for a whole message that the message extension encoded.

        Takes a whole unfragmented frame carrying the extension's RSV bits (for
        permessage-deflate, RSV1: a compressed message, RFC 7692 section 6)
        whose payload is ``buffer[start:end]``, decodes it with one call to
        ``decode_message`` within ``max_message_size``, and returns its event.
        """
        payload = apply_mask(buffer[start:end], mask) if mask is not None else bytes(buffer[start:end])
        self._offset = end
        extension = self._message_extension
        # _parse calls this only when there is a message extension.
        decoded = extension.decode_message(  # type: ignore[union-attr]
            self, _OPCODES[first & 0x0F], first & 0x70, payload, self._max_message_size
        )
        if isinstance(decoded, CloseReason):
            if decoded == CloseReason.PROTOCOL_ERROR:
                # The hook path's failure for the same refusal, from _inbound_header.
                raise Violation.RESERVED_BITS.error(unclaimed="that no negotiated extension uses")
            raise Violation.EXTENSION_REFUSED_PAYLOAD.error(code=int(decoded), name=extension.name)  # type: ignore[union-attr]
        if first & 0x0F == _BINARY:
            return BytesMessage(decoded, True, True)
        try:
            return TextMessage(decoded.decode("utf-8"), True, True)
        except UnicodeDecodeError:
            raise Violation.INVALID_UTF8.error() from None

    def _inbound_header(self, opcode: int, first: int, length: int) -> None:
        rsv = _RSV_BITS[(first >> 4) & 7]
        claimed = 0
        for extension in self.extensions:
            result = extension.frame_inbound_header(self, _OPCODES[opcode], rsv, length)
            if isinstance(result, CloseReason):
                raise Violation.EXTENSION_REFUSED_FRAME.error(code=int(result), name=extension.name)
            claimed |= (result.rsv1 << 6) | (result.rsv2 << 5) | (result.rsv3 << 4)
        if first & 0x70 & ~claimed:
            raise Violation.RESERVED_BITS.error(unclaimed="that no negotiated extension uses")

    def _inbound_payload(self, chunk: bytes, frame_finished: bool) -> bytes:
        for extension in self.extensions:
            result = extension.frame_inbound_payload(self, chunk, frame_finished, self._frame_fin)
            if isinstance(result, CloseReason):
                raise Violation.EXTENSION_REFUSED_PAYLOAD.error(code=int(result), name=extension.name)
            chunk = result
        size = self._message_size + len(chunk)
        if self._max_message_size is not None and size > self._max_message_size:
            raise Violation.MESSAGE_TOO_BIG.error(size=size, limit=self._max_message_size)
        self._message_size = size
        return chunk

    # -------------------------------------------------------------------- sending

    def send(self, event: Event) -> bytes:
        """Return the bytes that send ``event`` to the peer.

        Raises :class:`LocalProtocolError`, without changing any state, when the
        event cannot be sent now: data after a Close, a message of one type
        continuing a fragmented message of the other, a close code that must not
        be sent, or an event that belongs to the opening handshake.
        """
        cls = event.__class__
        if self._plain_send and (cls is BytesMessage or cls is TextMessage) and event.message_finished:  # type: ignore[attr-defined]
            # Hot path: a whole message with no extension, so no fragment state
            # and no RSV bits to consider.
            data: bytes = event.data  # type: ignore[attr-defined]
            if cls is BytesMessage:
                first = 0x82
                if data.__class__ is not bytes:
                    data = bytes(data)
            else:
                first = 0x81
                try:
                    data = data.encode()  # type: ignore[attr-defined]
                except UnicodeEncodeError:
                    return self._send_message(event)  # type: ignore[arg-type]  # raises the explanation
            return _write_frame(first, data, self._next_mask() if self.client else None)
        if self._message_send and (cls is BytesMessage or cls is TextMessage) and event.message_finished:  # type: ignore[attr-defined]
            return self._send_encoded_whole(event)  # type: ignore[arg-type]
        if cls is BytesMessage or cls is TextMessage or isinstance(event, Message):
            return self._send_message(event)  # type: ignore[arg-type]
        if cls is Ping or cls is Pong:
            self._check_sendable(event, SendKind.DATA)
            return self._frame(0x89 if cls is Ping else 0x8A, event.payload)  # type: ignore[attr-defined]
        if cls is CloseConnection:
            self._check_sendable(event, SendKind.CLOSE)
            code = event.code  # type: ignore[attr-defined]
            if self.wsproto_close_codes and not is_sendable_close_code(code):
                # wsproto put any code on the wire (1006 and 1015 as 1000);
                # the nearest safe behaviour sends 1000 for every unsendable one.
                code = CloseReason.NORMAL_CLOSURE
            payload = build_close_payload(code, event.reason)  # type: ignore[attr-defined]
            data = self._frame(0x88, payload)
            self._send_opcode = 0
            self._transition(Trigger.SEND_CLOSE)
            return data
        raise LocalProtocolError(
            f"{cls.__name__} cannot be sent on a Connection: it sends TextMessage, BytesMessage, "
            "Ping, Pong and CloseConnection (handshake events go to WSConnection)."
        )

    def send_message(self, message: str | bytes | bytearray | memoryview) -> bytes:
        """Return the bytes that send one whole message: text for ``str``, binary for bytes-like.

        The same as ``send(TextMessage(message))`` or
        ``send(BytesMessage(message))``, errors included, without making the event.
        """
        if self._plain_send:
            # Hot path, as in send().
            cls = message.__class__
            if cls is bytes:
                return _write_frame(0x82, message, self._next_mask() if self.client else None)  # type: ignore[arg-type]
            if cls is str:
                try:
                    data = message.encode()  # type: ignore[union-attr]
                except UnicodeEncodeError:
                    pass  # send() raises the explanation
                else:
                    return _write_frame(0x81, data, self._next_mask() if self.client else None)
        if isinstance(message, str):
            return self.send(TextMessage(message))
        if not isinstance(message, bytes | bytearray | memoryview):
            raise TypeError(f"A message is str (text) or bytes-like (binary), not {type(message).__name__}.")
        return self.send(BytesMessage(bytes(message)))

    def send_message_parts(self, message: str | bytes | bytearray | memoryview) -> tuple[bytes, ...]:
        """Return :meth:`send_message`'s bytes as parts to write in this order, without joining them.

        For a scatter-gather write (``transport.writelines``, ``socket.sendmsg``):
        a server's message of at least ``SEPARATE_PAYLOAD_SIZE`` bytes that is
        not compressed comes back as its frame header and its payload (the
        caller's ``bytes`` itself, or the encoded text), so that the payload is
        not copied into a frame. Anything else is one part, what
        :meth:`send_message` returns (a client masks its payload, which copies
        it anyway).
        """
        if self._plain_send and not self.client:
            cls = message.__class__
            if cls is bytes and len(message) >= SEPARATE_PAYLOAD_SIZE:
                return (frame_header(0x82, len(message)), message)  # type: ignore[return-value]
            if cls is str and len(message) >= SEPARATE_PAYLOAD_SIZE:
                try:
                    data = message.encode()  # type: ignore[union-attr]
                except UnicodeEncodeError:
                    pass  # send_message() raises the explanation
                else:
                    return (frame_header(0x81, len(data)), data)
        return (self.send_message(message),)

    def send_prepared(self, message: PreparedMessage) -> bytes:
        """Return the bytes that send a :class:`~wsproto_core.prepared.PreparedMessage`.

        The bytes are shared with the other connections that take the same
        message in the same wire form (see :mod:`wsproto_core.prepared`); the
        message goes through the checks of :meth:`send` for a whole message.
        Raises :class:`LocalProtocolError`, without changing any state, when the
        connection may not send data (a Close was sent or received) or when a
        fragmented message is being sent (a message never interleaves another
        message's fragments, section 5.4).
        """
        if self._plain_send:
            if not self.client:
                # Hot path: a fan-out takes the same server frame once per
                # connection, so take it without another call once built.
                frame = message._plain_frame
                if frame is not None:
                    return frame
            return message._wire_for(self, None)
        if self._message_send:
            return message._wire_for(self, self._message_extension)
        event = message.event()
        self._check_sendable(event, SendKind.DATA)
        if self._send_opcode:
            raise LocalProtocolError(
                "A fragmented message is being sent: finish it (message_finished=True) before sending a "
                "prepared message, which cannot go between its fragments."
            )
        return self._send_message(event)

    def _send_encoded_whole(self, event: BytesMessage | TextMessage) -> bytes:
        """The send fast path with a message extension: a whole message, one frame.

        It encodes with one call to the extension's ``encode_message`` (for
        permessage-deflate: compressed, or left as it is when the threshold or
        ``send_next_uncompressed`` says so), instead of going through
        ``_send_message`` and the per-frame hooks.
        """
        data = event.data
        if event.__class__ is TextMessage:
            opcode = Opcode.TEXT
            try:
                payload = data.encode()  # type: ignore[union-attr]
            except UnicodeEncodeError:
                return self._send_message(event)  # raises the explanation
        else:
            opcode = Opcode.BINARY
            payload = data if data.__class__ is bytes else bytes(data)  # type: ignore[arg-type]
        rsv, payload = self._message_extension.encode_message(self, opcode, payload)  # type: ignore[union-attr]
        return self._frame(0x80 | rsv | opcode, payload)

    def _check_sendable(self, event: Event, kind: SendKind) -> None:
        if not may_send(self._state, ConnectionType.CLIENT if self.client else ConnectionType.SERVER, kind):
            hint = {
                ConnectionState.LOCAL_CLOSING: "a Close was already sent; only receive until the peer's Close",
                ConnectionState.REMOTE_CLOSING: "the peer closed; send CloseConnection (event.response())",
                ConnectionState.CLOSED: "the connection is closed; open a new one",
            }.get(self._state, "wait until the connection is OPEN")
            raise LocalProtocolError(f"Cannot send {type(event).__name__} in state {self._state.name}: {hint}.")

    def _send_message(self, event: Message[str] | Message[bytes]) -> bytes:
        self._check_sendable(event, SendKind.DATA)
        # A plain Message is text or binary by the type of its data, as in
        # wsproto (uvicorn sends Message(data=...)).
        data = event.data
        if isinstance(data, str):
            opcode = 0x1
            try:
                payload = data.encode("utf-8")
            except UnicodeEncodeError:
                raise LocalProtocolError(
                    "TextMessage data contains lone surrogates, which UTF-8 cannot encode; "
                    "send real characters or use BytesMessage."
                ) from None
        elif isinstance(data, (bytes, bytearray, memoryview)):
            opcode = 0x2
            payload = data if data.__class__ is bytes else bytes(data)
        else:
            raise LocalProtocolError(f"Message data must be str or bytes, not {type(data).__name__}.")
        sending = self._send_opcode
        if sending:
            if sending != opcode:
                kind = "text" if sending == 1 else "binary"
                raise LocalProtocolError(
                    f"A fragmented {kind} message is in progress: finish it with a {type(event).__name__} "
                    f"of the same type and message_finished=True before sending {type(event).__name__}."
                )
            frame_opcode = 0
        else:
            frame_opcode = opcode
        self._send_opcode = 0 if event.message_finished else opcode
        self._set_send_paths()
        if self.extensions:
            return self._send_through_extensions(frame_opcode, payload, event.message_finished)
        return self._frame((0x80 | frame_opcode) if event.message_finished else frame_opcode, payload)

    def _send_through_extensions(self, opcode: int, payload: bytes, fin: bool) -> bytes:
        rsv = _RSV_BITS[0]
        for extension in self.extensions:
            rsv, payload = extension.frame_outbound(self, _OPCODES[opcode], rsv, payload, fin)
        bits = (rsv.rsv1 << 6) | (rsv.rsv2 << 5) | (rsv.rsv3 << 4)
        return self._frame((0x80 if fin else 0) | bits | opcode, payload)

    def _next_mask(self) -> bytes:
        index = self._mask_index
        masks = self._masks
        if index >= len(masks):
            masks = self._masks = os.urandom(4 * _MASK_BATCH)
            index = 0
        self._mask_index = index + 4
        return masks[index : index + 4]

    def _frame(self, first: int, payload: bytes) -> bytes:
        """Serialise one frame whose first header byte is ``first``, masked if we are the client."""
        return _write_frame(first, payload, self._next_mask() if self.client else None)
