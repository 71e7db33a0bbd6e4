"""WebSockets over HTTP/2 (RFC 8441) on asyncio, with the ``h2`` library.

One TCP (or TLS) connection carries many WebSockets, each on its own HTTP/2
stream opened by an extended CONNECT, each with its own
:class:`~wsproto_core.managed.ManagedConnection`. The asyncio driver's
``serve(..., http2=True)`` and ``connect(url, http2=True)`` come here; the
``h2`` library is the optional extra ``http2``.

Backpressure is HTTP/2's flow control, per stream:

- receiving: the stream's window is reopened only for bytes the application
  took (messages queued below ``max_queue``, nothing held back by the ordering
  rule), so a slow reader closes its own stream's window and nobody else's.
  The connection's window is reopened as soon as bytes arrive: one stream can
  never hold the others up, and each stream buffers at most its window
  (:data:`STREAM_WINDOW`) plus its queue.
- sending: frames wait in the stream until the peer's window for that stream
  (and the connection's) lets them through; ``send`` returns once they went
  to the transport, and waits while the transport's own buffer is full.

A protocol failure (an invalid frame) sends its Close and resets that stream
(``RST_STREAM`` with ``CANCEL``, RFC 8441 section 6: the equivalent of a TCP
reset); a closing handshake ends the stream with ``END_STREAM`` in both
directions (the server's first, as a server closes TCP first). Requests that
are not extended CONNECTs (a page, a health check) get ``process_request``'s
answer, so a browser's page and its WebSocket can share one connection.

The ordering rule of the asyncio driver holds here too: a message received
before a Close can still be answered, because the bytes behind a message are
parsed only once the application took it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from ..connection import Connection
from ..errors import RemoteProtocolError
from ..events import AcceptConnection, RejectConnection
from ..http2 import accept_headers, client_accepted, connect_request_headers, request_from_headers, response_headers
from ..managed import ManagedConnection
from ..state import ConnectionState, ConnectionType
from ._common import (
    DRIVER_PIECE_SIZE,
    HandshakeRejected,
    HttpResponse,
    Settings,
    WebSocketURL,
    request_for,
)
from .asyncio.protocol import ConnectionProtocol
from .asyncio.server import ServerConfig
from .asyncio.websocket import WebSocket

__all__ = ["STREAM_HIGH_WATER", "STREAM_WINDOW", "ExtendedConnectUnsupported", "H2Server", "open_websocket"]

logger = logging.getLogger(__name__)

#: The HTTP/2 connection preface a client sends first (RFC 9113 section 3.4):
#: with prior knowledge (h2c), it tells an HTTP/2 client from an HTTP/1.1 one.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

#: Each stream's receive window, in bytes: how much a peer may send on one
#: WebSocket that the application has not taken yet (HTTP/2's default).
STREAM_WINDOW = 65535

#: A stream's outgoing bytes waiting for the peer's window beyond which its
#: WebSocket's ``send`` waits (the high-water mark of a transport's buffer);
#: ``send`` goes on once they are down to :data:`STREAM_LOW_WATER`.
STREAM_HIGH_WATER = 65536
STREAM_LOW_WATER = 16384

#: The connection's receive window, in bytes. It is topped up as bytes
#: arrive, whether or not an application took them: only the streams' own
#: windows wait for applications, so one stalled stream never closes the
#: connection's window on the others.
CONNECTION_WINDOW = 1 << 20

#: Frame types that start or continue a header block, and the flag that ends it (RFC 9113 section 6.2).
_HEADER_BLOCK_FRAMES = frozenset({0x1, 0x5, 0x9})
_END_HEADERS = 0x4

#: A WINDOW_UPDATE frame's header: a 4-byte payload, type 0x8, no flags (RFC 9113 section 6.9).
_WINDOW_UPDATE_HEAD = b"\x00\x00\x04\x08\x00"

#: How many WebSocket streams a peer may open at once on one connection.
MAX_CONCURRENT_STREAMS = 100

#: A rejection's or page's body is read up to this size by a client.
_MAX_REJECTION_BODY = 65536


class ExtendedConnectUnsupported(ConnectionError):
    """The server's SETTINGS did not enable extended CONNECT (RFC 8441 section 3).

    It cannot carry WebSockets over HTTP/2; connect over HTTP/1.1 instead.
    """


def _configuration(*, client: bool) -> h2.config.H2Configuration:
    # A server checks requests itself (request_from_headers): h2 would take a
    # malformed request (a CONNECT without :protocol, say) for a connection
    # error and end every stream, where RFC 9113 section 8.1.1 makes it an
    # error of that stream only. Responses are h2's to check.
    return h2.config.H2Configuration(client_side=client, header_encoding=None, validate_inbound_headers=client)


class _H2Protocol(asyncio.Protocol):
    """One HTTP/2 connection: the h2 state machine, its transport, and its WebSocket streams."""

    def __init__(self, *, client: bool, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.h2 = h2.connection.H2Connection(_configuration(client=client))
        initial: dict[h2.settings.SettingCodes, int] = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
        }
        if not client:
            # RFC 8441 section 3, in the first SETTINGS frame, so that a client
            # never sees SETTINGS without it.
            initial[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
        self.h2.local_settings = h2.settings.Settings(client=client, initial_values=initial)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.writing_paused = False
        self.closed = False
        self.loop = asyncio.get_running_loop()
        #: Connection-level flow-controlled bytes received and not given back
        #: yet: those h2 saw (h2 keeps their window), and those it did not.
        self._connection_consumed = 0
        self._fast_connection_consumed = 0
        #: A server's h2 reads the client's preface first (h2c's, or after ALPN).
        self._preface_left = 0 if client else len(PREFACE)
        #: The start of a frame whose end has not arrived yet.
        self._partial = b""
        #: Inside a header block (HEADERS without END_HEADERS, then CONTINUATIONs).
        self._header_block = False
        #: Frames of ours (WINDOW_UPDATEs for bytes h2 did not see), in order with h2's.
        self._outgoing = bytearray()
        #: Inside data_received: what h2 queued is written once, at its end.
        self._receiving = False
        self._flush_scheduled = False
        #: Streams with DATA frames from the current read, handed over at its end.
        self.arrived: list[_Stream] = []
        self.lost = self.loop.create_future()

    # ------------------------------------------------------------- transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Any loop's transport (uvloop's too) has the asyncio.Transport methods.
        self.transport = cast(asyncio.Transport, transport)
        self.h2.initiate_connection()
        # HTTP/2 starts every connection's window at 65535 bytes.
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self.flush()

    def data_received(self, data: bytes) -> None:
        self._receiving = True
        try:
            if self._preface_left:
                # A server's first bytes are the client's preface, for h2.
                preface, data = data[: self._preface_left], data[self._preface_left :]
                self._preface_left -= len(preface)
                self._to_h2(preface)
            if self._partial:
                data, self._partial = self._partial + data, b""
            if data and not self.closed:
                self._split(data)
            if self._connection_consumed >= CONNECTION_WINDOW // 4 and not self.closed:
                # The connection's window never waits for an application: each
                # stream's own window bounds what it buffers.
                self.h2.increment_flow_control_window(self._connection_consumed)
                self._connection_consumed = 0
            if self._fast_connection_consumed >= CONNECTION_WINDOW // 4 and not self.closed:
                self.window_update(0, self._fast_connection_consumed)
                self._fast_connection_consumed = 0
            arrived = self.arrived
            while arrived:
                arrived.pop(0).deliver()
        finally:
            self._receiving = False
        # Everything the events made h2 queue (replies of every stream,
        # WINDOW_UPDATEs) goes out in one write.
        self.flush()

    def _split(self, data: bytes) -> None:
        """Cut ``data`` into frames: a WebSocket stream's plain DATA frames here, the rest to h2.

        Hot path. h2 costs tens of microseconds per frame (its state machines,
        its frame objects, a repr of each frame for its trace log), which
        would double the cost of a small message; so a DATA frame without
        flags (no END_STREAM, no padding) on an open WebSocket stream, outside
        a header block, goes straight to its stream. Every other frame goes
        to h2, in order, and the connection's and those streams' windows for
        the bytes taken here are kept here (h2 never sees those bytes, so its
        own windows stay right for the frames it does see). A frame over our
        SETTINGS_MAX_FRAME_SIZE goes to h2 at once, which fails the connection.
        """
        streams = self.streams
        max_frame_size = self.h2.max_inbound_frame_size
        size = len(data)
        position = 0
        #: Where the frames for h2 that were not handed over yet begin.
        pending = -1
        while size - position >= 9:
            length = int.from_bytes(data[position : position + 3], "big")
            if length > max_frame_size:
                pending = position if pending < 0 else pending
                position = size
                break
            end = position + 9 + length
            if end > size:
                break
            kind = data[position + 3]
            flags = data[position + 4]
            if kind == 0 and flags == 0 and not self._header_block:
                stream = streams.get(int.from_bytes(data[position + 5 : position + 9], "big") & 0x7FFFFFFF)
                if stream is not None and not stream.peer_ended:
                    if pending >= 0:
                        self._to_h2(data[pending:position])
                        pending = -1
                        if self.closed:
                            return
                        # Look at this frame again: what h2 just read may
                        # have ended or reset its stream.
                        continue
                    self._fast_data(stream, data[position + 9 : end], length)
                    if self.closed:
                        return
                    position = end
                    continue
            elif kind in _HEADER_BLOCK_FRAMES:
                # RFC 9113 section 6.10: until END_HEADERS, only CONTINUATION
                # frames of that block may come; h2 checks them all.
                self._header_block = not flags & _END_HEADERS
            if pending < 0:
                pending = position
            position = end
        if pending >= 0:
            self._to_h2(data[pending:position])
        if position < size and not self.closed:
            self._partial = data[position:]

    def _to_h2(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            # A connection error (RFC 9113 section 5.4.1): h2 queued the
            # GOAWAY; every stream ends with it.
            self.flush()
            self._terminate()
            return
        for event in events:
            self.dispatch(event)

    def _fast_data(self, stream: _Stream, data: bytes, length: int) -> None:
        """A DATA frame taken past h2: the flow control that h2 would have checked."""
        self._fast_connection_consumed += length
        if self._fast_connection_consumed + self._connection_consumed > CONNECTION_WINDOW:
            # RFC 9113 section 6.9.1: more than the window is a connection error.
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.h2.close_connection(h2.errors.ErrorCodes.FLOW_CONTROL_ERROR)
            self.flush()
            self._terminate()
            return
        stream.data_arrived(data, length, fast=True)

    def send_frame(self, frame: bytes | bytearray) -> None:
        """Write a frame that h2 did not build, in order with those it did.

        A WebSocket stream's DATA frames are built here: h2 spends tens of
        microseconds on one (frame objects, state machines). The send windows
        stay h2's to keep: the caller took the frame's size off them, as
        h2's ``send_data`` does, so that h2 still applies every
        WINDOW_UPDATE and SETTINGS change, and checks them.
        """
        pending = self.h2.data_to_send()
        outgoing = self._outgoing
        if pending:
            outgoing += pending
        if outgoing or self._receiving or len(self.streams) > 1:
            outgoing += frame
            self.schedule_flush()
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def window_update(self, stream_id: int, increment: int) -> None:
        """Send a WINDOW_UPDATE for bytes h2 did not see (:meth:`_split`), in order with h2's frames."""
        outgoing = self._outgoing
        outgoing += self.h2.data_to_send()
        outgoing += _WINDOW_UPDATE_HEAD + stream_id.to_bytes(4, "big") + increment.to_bytes(4, "big")
        self.schedule_flush()

    def eof_received(self) -> bool:
        self._terminate()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        for stream in list(self.streams.values()):
            stream.reset()
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        # The streams keep what they are given (each up to its high-water
        # mark, then its WebSocket waits) until the transport drains.
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        for stream in list(self.streams.values()):
            stream.pump()
        self.flush()

    def schedule_flush(self) -> None:
        """Have what h2 queued written, once for everything queued meanwhile.

        Inside :meth:`data_received`, at its end. Elsewhere (a handler's
        ``send``): at once when the connection carries one WebSocket, as its
        own TCP connection would; with several, at the next event loop
        iteration, so that the sends of one iteration share one write.
        """
        if self._receiving:
            self._flush_scheduled = True
        elif len(self.streams) <= 1:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what h2 queued (after our own frames, if any, that came before)."""
        self._flush_scheduled = False
        data = self.h2.data_to_send()
        if self._outgoing:
            self._outgoing += data
            data = bytes(self._outgoing)
            self._outgoing.clear()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _terminate(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        for stream in list(self.streams.values()):
            stream.reset()

    def goaway(self) -> None:
        """End the connection: GOAWAY, then close the transport once written."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.h2.close_connection()
        self.flush()
        if self.transport is not None:
            self.transport.close()

    # ---------------------------------------------------------------- events

    def dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            self._connection_consumed += event.flow_controlled_length
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.data_arrived(event.data, event.flow_controlled_length)
            else:
                self._other_data(event)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.ended()
            else:
                self._other_stream_ended(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.reset()
            self._other_stream_reset(event.stream_id)
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id == 0:
                for stream in list(self.streams.values()):
                    stream.pump()
            elif (stream := self.streams.get(event.stream_id)) is not None:
                stream.pump()
            self._other_event(event)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._settings_changed()
            # A larger initial window opens every stream's window.
            for stream in list(self.streams.values()):
                stream.pump()
            self._other_event(event)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._terminate()
        else:
            self._other_event(event)

    def _other_data(self, event: h2.events.DataReceived) -> None:
        """Data of a stream that is not a WebSocket: consumed at once (its window reopens)."""
        if event.flow_controlled_length:
            with contextlib.suppress(h2.exceptions.StreamClosedError, KeyError):
                self.h2.increment_flow_control_window(event.flow_controlled_length, event.stream_id)

    def _other_stream_ended(self, stream_id: int) -> None:
        """A stream that is not a WebSocket ended; nothing to do by default."""

    def _other_stream_reset(self, stream_id: int) -> None:
        """A stream was reset; nothing to do by default."""

    def _settings_changed(self) -> None:
        """The peer's SETTINGS arrived."""

    def _other_event(self, event: h2.events.Event) -> None:
        """Requests (server) and responses (client), and window changes for plain answers' bodies."""

    def forget(self, stream_id: int) -> None:
        """A WebSocket stream is done."""
        self.streams.pop(stream_id, None)


class _Stream(asyncio.Transport):
    """One WebSocket's HTTP/2 stream, as the transport of an asyncio driver :class:`WebSocket`.

    The WebSocket writes, pauses, closes and aborts it as it would a TCP
    transport; RFC 8441 section 6 maps those onto the stream:

    - ``write``: DATA frames as far as the peer's windows (the stream's and
      the connection's) allow; the rest waits here, and past
      :data:`STREAM_HIGH_WATER` bytes the WebSocket is told to pause writing
      (its ``send`` waits, and it stops reading);
    - ``pause_reading``: what arrives waits here and the stream's receive
      window stops reopening, so the peer runs out of window on this stream
      only;
    - ``close``: ``END_STREAM`` once everything was sent (a TCP FIN), or
      ``RST_STREAM`` with ``CANCEL`` after a protocol failure; ``abort``:
      ``RST_STREAM`` at once (a TCP reset).
    """

    def __init__(
        self,
        connection: _H2Protocol,
        stream_id: int,
        managed: ManagedConnection,
        protocol: ConnectionProtocol,
        *,
        client: bool,
    ) -> None:
        super().__init__()
        self._connection = connection
        self._h2 = connection.h2
        self.stream_id = stream_id
        self._managed = managed
        self._protocol = protocol
        self._client = client
        self._loop = connection.loop
        #: Bytes written that wait for the peer's window (bounded: past the
        #: high-water mark the WebSocket waits in send).
        self._outgoing = bytearray()
        self._writing_paused = False
        self._reading_paused = False
        #: What arrived while reading was paused (``None``: the peer ended the
        #: stream); at most a window of bytes, as the window stays shut.
        self._held: deque[bytes | None] = deque()
        #: The DATA frames of the connection's current read, not handed over yet.
        self._incoming: list[bytes] = []
        #: Received flow-controlled bytes not given back to the peer's window
        #: yet: in frames h2 saw (it keeps their window), and in frames it did not.
        self._unacknowledged = 0
        self._fast_unacknowledged = 0
        self.peer_ended = False
        #: What follows the length in each of this stream's DATA frames: type
        #: 0x0, no flags, the stream id (RFC 9113 section 6.1).
        self._data_frame_head = b"\x00\x00" + stream_id.to_bytes(4, "big")
        #: h2's own record of the stream, whose send window this driver
        #: consumes when it writes a DATA frame itself (see send_frame); None
        #: if this h2 keeps it elsewhere, and then h2 writes every frame.
        self._h2_stream = _h2_stream(self._h2, stream_id)
        self._closing = False
        #: Nothing more can be sent: END_STREAM or RST_STREAM went out, or the peer reset.
        self._done = False
        self._cancel_scheduled = False
        connection.streams[stream_id] = self
        protocol.connection_made(self)

    @property
    def websocket(self) -> WebSocket | None:
        """The WebSocket this stream carries."""
        return self._protocol.websocket

    # ------------------------------------------------- the transport interface

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` in DATA frames as the windows allow; keep the rest."""
        if self._done:
            return
        if not self._outgoing and not self._connection.writing_paused:
            # Hot path: the whole write in one frame, when it fits.
            h2_stream = self._h2_stream
            h2_connection = self._h2
            size = len(data)
            if h2_stream is not None:
                if (
                    size <= h2_stream.outbound_flow_control_window
                    and size <= h2_connection.outbound_flow_control_window
                    and size <= h2_connection.max_outbound_frame_size
                    and not h2_stream.closed
                ):
                    h2_stream.outbound_flow_control_window -= size
                    h2_connection.outbound_flow_control_window -= size
                    self._connection.send_frame(size.to_bytes(3, "big") + self._data_frame_head + data)
                    return
            else:
                # h2 checks the window and the frame size before it changes any state.
                try:
                    h2_connection.send_data(self.stream_id, bytes(data) if isinstance(data, bytearray) else data)
                except h2.exceptions.ProtocolError:
                    pass
                else:
                    self._connection.schedule_flush()
                    return
        self._outgoing += data
        self._pump()

    def get_write_buffer_size(self) -> int:
        """Bytes written but not yet in a DATA frame (waiting for the peer's window)."""
        return len(self._outgoing)

    def is_closing(self) -> bool:
        """Whether the stream was closed or reset."""
        return self._closing or self._done

    def close(self) -> None:
        """End the stream once everything written was sent."""
        if self._closing or self._done:
            return
        self._closing = True
        if not self._outgoing:
            self._end()

    def abort(self) -> None:
        """Reset the stream at once (``RST_STREAM`` with ``CANCEL``)."""
        self._held.clear()
        if not self._done:
            self._stop(reset=True)

    def pause_reading(self) -> None:
        """Stop handing over what arrives, and stop reopening the stream's window."""
        self._reading_paused = True

    def resume_reading(self) -> None:
        """Hand over what waited (at the next loop iteration, as a socket would), and reopen the window."""
        if not self._reading_paused:
            return
        self._reading_paused = False
        if self._held:
            self._loop.call_soon(self._deliver_held)
        else:
            self._acknowledge()

    def is_reading(self) -> bool:
        """Whether what arrives is handed over at once."""
        return not self._reading_paused

    def can_write_eof(self) -> bool:
        """No: a WebSocket ends its stream with :meth:`close` (RFC 8441 section 6)."""
        return False

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The WebSocket's protocol."""
        return self._protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``http2_stream_id``, or what the connection's transport says (``peername``, ``ssl_object``...)."""
        if name == "http2_stream_id":
            return self.stream_id
        transport = self._connection.transport
        return transport.get_extra_info(name, default) if transport is not None else default

    # ------------------------------------------------------- from the connection

    def data_arrived(self, data: bytes, flow_controlled_length: int, *, fast: bool = False) -> None:
        """A DATA frame of this stream (``fast``: one that h2 did not see); see :meth:`deliver`."""
        if fast:
            self._fast_unacknowledged += flow_controlled_length
            if self._fast_unacknowledged + self._unacknowledged > STREAM_WINDOW:
                # RFC 9113 section 6.9.1: more than the stream's window is a
                # stream error (h2 checks the frames it sees).
                self._incoming.clear()
                self._stop(reset=True, error=h2.errors.ErrorCodes.FLOW_CONTROL_ERROR)
                return
        else:
            self._unacknowledged += flow_controlled_length
        if not self._incoming:
            self._connection.arrived.append(self)
        self._incoming.append(data)

    def deliver(self) -> None:
        """Hand over this read's DATA frames as one ``data_received``, as a socket's read would be.

        One call, not one per frame: the WebSocket applies the ordering rule
        to what one call brings (a message and a Close behind it in the next
        frame must not have the Close answered first).
        """
        incoming = self._incoming
        if not incoming:
            return
        data = incoming[0] if len(incoming) == 1 else b"".join(incoming)
        incoming.clear()
        if self._reading_paused or self._held:
            self._held.append(data)
            return
        self._protocol.data_received(data)
        self._after_delivery()

    def ended(self) -> None:
        """The peer ended its side of the stream (``END_STREAM``)."""
        self.peer_ended = True
        self.deliver()
        if self._reading_paused or self._held:
            self._held.append(None)
            return
        self._protocol.eof_received()
        self._after_delivery()

    def reset(self) -> None:
        """The peer reset the stream, or the connection is gone."""
        self._incoming.clear()
        self._held.clear()
        if not self._done:
            self._done = True
            self._outgoing.clear()
            self._release()

    def pump(self) -> None:
        """Send what waits, as far as the windows allow (called when a window opens)."""
        if self._outgoing and not self._done:
            self._pump()

    # ------------------------------------------------------------------ plumbing

    def _pump(self) -> None:
        outgoing = self._outgoing
        connection = self._connection
        if outgoing and not connection.writing_paused and not self._done:
            h2_connection = self._h2
            h2_stream = self._h2_stream
            stream_id = self.stream_id
            try:
                while outgoing:
                    size = min(
                        h2_connection.local_flow_control_window(stream_id),
                        h2_connection.max_outbound_frame_size,
                        len(outgoing),
                    )
                    if size <= 0:
                        break
                    if h2_stream is not None and not h2_stream.closed:
                        h2_stream.outbound_flow_control_window -= size
                        h2_connection.outbound_flow_control_window -= size
                        connection.send_frame(size.to_bytes(3, "big") + self._data_frame_head + outgoing[:size])
                    else:
                        h2_connection.send_data(stream_id, bytes(outgoing[:size]))
                        connection.schedule_flush()
                    del outgoing[:size]
            except (h2.exceptions.ProtocolError, KeyError):
                # The stream is gone (h2 forgot it, or it was reset meanwhile).
                outgoing.clear()
        if not outgoing and self._closing and not self._done:
            self._end()
        size = len(outgoing)
        if self._writing_paused:
            if size <= STREAM_LOW_WATER or self._done:
                self._writing_paused = False
                self._protocol.resume_writing()
        elif size > STREAM_HIGH_WATER:
            self._writing_paused = True
            self._protocol.pause_writing()

    def _end(self) -> None:
        """RFC 8441 section 6: END_STREAM after a closing handshake, RST_STREAM after a failure."""
        connection = self._managed.connection
        failed = isinstance(connection, Connection) and connection.failure is not None
        self._stop(reset=failed or self._managed.state is not ConnectionState.CLOSED)

    def _stop(self, *, reset: bool, error: h2.errors.ErrorCodes = h2.errors.ErrorCodes.CANCEL) -> None:
        self._done = True
        self._outgoing.clear()
        with contextlib.suppress(h2.exceptions.ProtocolError, KeyError):
            if reset:
                self._h2.reset_stream(self.stream_id, error)
            else:
                self._h2.end_stream(self.stream_id)
        self._connection.schedule_flush()
        self._release()

    def _release(self) -> None:
        """The stream carries nothing more: the connection forgets it, the protocol hears it is lost."""
        self._connection.forget(self.stream_id)
        # As a transport does, after close() returned.
        self._loop.call_soon(self._protocol.connection_lost, None)

    def _deliver_held(self) -> None:
        held = self._held
        while held and not self._reading_paused:
            data = held.popleft()
            if data is None:
                self._protocol.eof_received()
            else:
                self._protocol.data_received(data)
        self._after_delivery()

    def _after_delivery(self) -> None:
        if self._client and not self._cancel_scheduled and self._managed.state is ConnectionState.CLOSED:
            # A client after the closing handshake: the server ends the stream
            # first, as it closes TCP first over HTTP/1.1, and its END_STREAM
            # usually came in the same read. If it did not, the stream is "no
            # longer needed" (RFC 9113 section 7, CANCEL): waiting
            # close_timeout for it would gain nothing, and a server that
            # forgets a closed WebSocket's stream without ending it (hypercorn
            # 0.18 does) fails its whole connection on a later DATA frame,
            # but not on a reset.
            self._cancel_scheduled = True
            self._loop.call_soon(self.abort)
        self._acknowledge()

    def _acknowledge(self) -> None:
        """Reopen the stream's window for what the WebSocket took (the backpressure)."""
        if (
            # In halves of the window: a WINDOW_UPDATE per small message would
            # cost a frame each way, and the peer keeps at least half a window
            # to send with meanwhile, so it never waits for one.
            self._unacknowledged + self._fast_unacknowledged >= STREAM_WINDOW // 2
            and not self._reading_paused
            and not self._held
            and not self._done
        ):
            if self._unacknowledged:
                increment, self._unacknowledged = self._unacknowledged, 0
                with contextlib.suppress(h2.exceptions.ProtocolError, KeyError):
                    self._h2.increment_flow_control_window(increment, self.stream_id)
                self._connection.schedule_flush()
            if self._fast_unacknowledged:
                increment, self._fast_unacknowledged = self._fast_unacknowledged, 0
                self._connection.window_update(self.stream_id, increment)


def _h2_keeps_send_windows(connection_class: type[h2.connection.H2Connection] = h2.connection.H2Connection) -> bool:
    """Whether this h2 keeps the send windows where :meth:`_Stream.write` takes its frames' sizes off them.

    ``H2Connection.outbound_flow_control_window`` and its streams' are not
    h2's documented API, so this is tried once, at import, on a throwaway
    connection: ``send_data`` must take its frame's size off both, and
    h2's public ``local_flow_control_window`` must see what is taken off
    them by hand. If any of it fails, every DATA frame goes through h2's
    ``send_data`` (slower, and right).
    """
    try:
        connection = connection_class(h2.config.H2Configuration(client_side=True, header_encoding=None))
        connection.initiate_connection()
        connection.send_headers(
            1, [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"a")]
        )
        stream = connection.streams[1]
        connection.send_data(1, b"0123456789")
        if not (
            stream.outbound_flow_control_window == connection.outbound_flow_control_window == 65535 - 10
            and stream.closed is False
        ):
            return False
        stream.outbound_flow_control_window -= 5
        if connection.local_flow_control_window(1) != 65535 - 15:
            return False
        connection.outbound_flow_control_window -= 10
        return bool(connection.local_flow_control_window(1) == 65535 - 20)
    except Exception:  # noqa: BLE001 - any failure at all: do not rely on them
        return False


#: Decided once: whether WebSocket streams' DATA frames are built here (see :func:`_h2_keeps_send_windows`).
_H2_KEEPS_SEND_WINDOWS = _h2_keeps_send_windows()


def _h2_stream(connection: h2.connection.H2Connection, stream_id: int) -> Any:
    """h2's object for a stream, whose send window this driver consumes; None if h2 must write every frame."""
    if not _H2_KEEPS_SEND_WINDOWS:
        return None
    return connection.streams.get(stream_id)


def _managed(settings: Settings, extensions: list[Any], *, client: bool, now: float) -> ManagedConnection:
    connection = Connection(
        ConnectionType.CLIENT if client else ConnectionType.SERVER,
        extensions,
        max_frame_size=settings.max_frame_size,
        max_message_size=settings.max_message_size,
        min_partial_size=DRIVER_PIECE_SIZE,
    )
    return ManagedConnection(
        connection,
        client=client,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        close_timeout=settings.close_timeout,
        now=now,
        # The asyncio WebSocket's ordering rule: what follows a message waits
        # until the application took it.
        hold_after_message=True,
    )


# ---------------------------------------------------------------------- server


class H2Server:
    """The HTTP/2 side of a server started by the asyncio driver's ``serve(..., http2=True)``.

    :meth:`protocol` wraps each new connection's HTTP/1.1 protocol: with TLS,
    ALPN decides (``h2``, else HTTP/1.1); without TLS, the first bytes do (the
    HTTP/2 preface, that is h2c with prior knowledge, else HTTP/1.1).
    """

    def __init__(self, config: ServerConfig) -> None:
        #: The asyncio server's settings, handler and bookkeeping: a WebSocket
        #: over HTTP/2 is opened, run and tracked as one over HTTP/1.1 is.
        self.config = config
        self.settings = config.settings

    def protocol(self, http1: asyncio.BaseProtocol) -> asyncio.BaseProtocol:
        """The protocol for a new connection: it becomes HTTP/2 or hands over to ``http1``."""
        return _Dispatch(self, http1)


class _Dispatch(asyncio.Protocol):
    """Decides between HTTP/2 and HTTP/1.1 for one connection, then steps aside."""

    def __init__(self, server: H2Server, http1: asyncio.BaseProtocol) -> None:
        self._server = server
        self._http1 = http1
        self._transport: asyncio.Transport | None = None
        self._head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            # RFC 9113 section 3.2: over TLS, ALPN says which protocol follows.
            self._hand_over(_H2ServerProtocol(self._server) if ssl_object.selected_alpn_protocol() == "h2" else None)

    def data_received(self, data: bytes) -> None:
        self._head += data
        if self._head[: len(PREFACE)] != PREFACE[: len(self._head)]:
            self._hand_over(None)
        elif len(self._head) >= len(PREFACE):
            self._hand_over(_H2ServerProtocol(self._server))

    def _hand_over(self, h2_protocol: _H2ServerProtocol | None) -> None:
        transport = self._transport
        assert transport is not None
        target = h2_protocol if h2_protocol is not None else self._http1
        transport.set_protocol(target)
        target.connection_made(transport)
        if self._head:
            head, self._head = self._head, b""
            # Both take bytes through data_received (the HTTP/1.1 one, a
            # BufferedProtocol, reads the socket into its buffer otherwise).
            cast(asyncio.Protocol, target).data_received(head)

    def eof_received(self) -> bool:
        if self._transport is not None:
            self._transport.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


class _H2ServerProtocol(_H2Protocol):
    def __init__(self, server: H2Server) -> None:
        super().__init__(client=False, settings=server.settings)
        self.server = server
        #: Plain HTTP answers whose body waits for the window (stream id -> body left).
        self._bodies: dict[int, bytearray] = {}
        server.config.tracked.open.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.server.config.tracked.open.discard(self)

    async def close(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Close every WebSocket of this connection, then the connection (GOAWAY).

        ``Server.close()`` calls it, as it calls each WebSocket's ``close``.
        """
        websockets = [stream.websocket for stream in list(self.streams.values()) if stream.websocket is not None]
        await asyncio.gather(*(websocket.close(code, reason) for websocket in websockets), return_exceptions=True)
        self.goaway()

    def _other_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._request(event.stream_id, event.headers or [])
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._send_bodies()

    def _request(self, stream_id: int, raw_headers: list[Any]) -> None:
        headers = [(bytes(name), bytes(value)) for name, value in raw_headers]
        fields = dict(headers)
        config = self.server.config
        if config.tracked.closing:
            self._respond(stream_id, HttpResponse(503, [(b"content-type", b"text/plain")], b"shutting down\n"))
            return
        if config.process_request is not None:
            path = fields.get(b":path", b"/").decode("latin-1")
            # Over HTTP/2 the header list includes the pseudo-headers
            # (:method, :protocol, :path...), so an answer can tell an
            # extended CONNECT from a page request.
            answer = config.process_request(path, headers)
            if answer is not None:
                self._respond(stream_id, answer)
                return
        try:
            request = request_from_headers(headers)
        except RemoteProtocolError as error:
            hint = error.event_hint
            rejection = hint if isinstance(hint, RejectConnection) else RejectConnection(status_code=400)
            body = f"{error}\n".encode()
            self._respond(
                stream_id,
                HttpResponse(rejection.status_code, [*rejection.headers, (b"content-type", b"text/plain")], body),
            )
            return
        # subprotocols, select_subprotocol and process_response, decided as for HTTP/1.1.
        accept = config.upgrade.decide(request, config.settings)
        if isinstance(accept, HttpResponse):
            self._respond(stream_id, accept)
            return
        response, extensions = accept_headers(request, accept)
        self.h2.send_headers(stream_id, response)
        self.flush()
        managed = _managed(config.settings, extensions, client=False, now=self.loop.time())
        protocol = ConnectionProtocol(None)
        stream = _Stream(self, stream_id, managed, protocol, client=False)
        config.open(
            WebSocket(stream, protocol, managed, config.settings, subprotocol=accept.subprotocol, request=request),
            protocol,
        )

    def _respond(self, stream_id: int, answer: HttpResponse) -> None:
        rejection = answer.rejection()
        headers = response_headers(rejection.status_code, rejection.headers)
        self.h2.send_headers(stream_id, headers, end_stream=not answer.body)
        if answer.body:
            self._bodies[stream_id] = bytearray(answer.body)
            self._send_bodies()
        self.flush()

    def _send_bodies(self) -> None:
        for stream_id, body in list(self._bodies.items()):
            try:
                while body:
                    size = min(self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size, len(body))
                    if size <= 0:
                        break
                    self.h2.send_data(stream_id, bytes(body[:size]), end_stream=size == len(body))
                    del body[:size]
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
                body.clear()
            if not body:
                del self._bodies[stream_id]
        self.flush()

    def _other_stream_reset(self, stream_id: int) -> None:
        self._bodies.pop(stream_id, None)


# ---------------------------------------------------------------------- client


class _H2ClientProtocol(_H2Protocol):
    def __init__(self, settings: Settings) -> None:
        super().__init__(client=True, settings=settings)
        self.settings_received = self.loop.create_future()
        #: Stream id -> the response headers, then the rejection's body, as they come.
        self.responses: dict[int, asyncio.Future[list[tuple[bytes, bytes]]]] = {}
        self.bodies: dict[int, tuple[bytearray, asyncio.Future[bytes]]] = {}
        #: Stream id -> what followed a 200 before its WebSocket took the
        #: stream: (DATA, flow-controlled length), or (None, 0) for END_STREAM.
        #: The stream's window is not reopened for it, so it holds at most a window.
        self.early: dict[int, list[tuple[bytes | None, int]]] = {}
        self.opening = 0

    def _settings_changed(self) -> None:
        if not self.settings_received.done():
            self.settings_received.set_result(None)

    def _other_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            waiter = self.responses.pop(event.stream_id, None)
            if waiter is not None and not waiter.done():
                headers = [(bytes(name), bytes(value)) for name, value in event.headers or []]
                waiter.set_result(headers)
                if (b":status", b"200") in headers:
                    # The server may send its first message in the same read
                    # as its 200, before the opening task resumes to attach
                    # the WebSocket: keep it for that WebSocket.
                    self.early[event.stream_id] = []

    def _other_data(self, event: h2.events.DataReceived) -> None:
        early = self.early.get(event.stream_id)
        if early is not None:
            early.append((event.data, event.flow_controlled_length))
            return
        super()._other_data(event)
        entry = self.bodies.get(event.stream_id)
        if entry is not None and len(entry[0]) < _MAX_REJECTION_BODY:
            entry[0].extend(event.data[: _MAX_REJECTION_BODY - len(entry[0])])

    def _other_stream_ended(self, stream_id: int) -> None:
        early = self.early.get(stream_id)
        if early is not None:
            early.append((None, 0))
        entry = self.bodies.pop(stream_id, None)
        if entry is not None and not entry[1].done():
            entry[1].set_result(bytes(entry[0]))

    def _other_stream_reset(self, stream_id: int) -> None:
        self._fail_stream(stream_id, ConnectionError(f"The server reset stream {stream_id}"))

    def _fail_stream(self, stream_id: int, error: Exception) -> None:
        self.early.pop(stream_id, None)
        waiter = self.responses.pop(stream_id, None)
        entry = self.bodies.pop(stream_id, None)
        for future in (waiter, entry[1] if entry is not None else None):
            if future is not None and not future.done():
                future.set_exception(error)
                # Whoever opens the stream awaits one of the two, maybe neither.
                future.exception()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        error = ConnectionError("The HTTP/2 connection closed")
        if not self.settings_received.done():
            self.settings_received.set_exception(error)
            self.settings_received.exception()
        for stream_id in list(self.responses) + list(self.bodies):
            self._fail_stream(stream_id, error)

    def _terminate(self) -> None:
        super()._terminate()
        for stream_id in list(self.responses) + list(self.bodies):
            self._fail_stream(stream_id, ConnectionError("The server ended the HTTP/2 connection (GOAWAY)"))

    def forget(self, stream_id: int) -> None:
        super().forget(stream_id)
        self.close_if_idle()

    def close_if_idle(self) -> None:
        """A client's connection lives as long as it carries a WebSocket, or one is opening."""
        if not self.streams and not self.opening:
            self.goaway()


#: Open client connections, for reuse: (loop, secure, host, port, ssl context) -> protocol.
_pool: dict[tuple[Any, ...], _H2ClientProtocol] = {}


async def _client_connection(
    url: WebSocketURL, settings: Settings, ssl: ssl_module.SSLContext | None
) -> _H2ClientProtocol:
    loop = asyncio.get_running_loop()
    key = (loop, url.secure, url.host, url.port, id(ssl))
    existing = _pool.get(key)
    if existing is not None and not existing.closed:
        existing.opening += 1
        try:
            await asyncio.shield(existing.settings_received)
        except BaseException:
            existing.opening -= 1
            raise
        return existing
    context: ssl_module.SSLContext | None = None
    if url.secure:
        context = ssl or ssl_module.create_default_context()
        # RFC 9113 section 3.2: "h2" over TLS is chosen by ALPN.
        context.set_alpn_protocols(["h2"])
    protocol = _H2ClientProtocol(settings)
    protocol.opening += 1
    _pool[key] = protocol
    protocol.lost.add_done_callback(lambda _: _pool.pop(key, None) if _pool.get(key) is protocol else None)
    try:
        transport, _ = await loop.create_connection(lambda: protocol, url.host, url.port, ssl=context)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() != "h2":
            raise ExtendedConnectUnsupported(
                f"{url.host}:{url.port} did not choose HTTP/2 in the TLS handshake (ALPN); connect without http2=True"
            )
        await protocol.settings_received
    except BaseException:
        protocol.opening -= 1
        if _pool.get(key) is protocol:
            del _pool[key]
        protocol.goaway()
        raise
    return protocol


async def open_websocket(
    url: WebSocketURL,
    settings: Settings,
    *,
    subprotocols: Sequence[str],
    extra_headers: Sequence[tuple[bytes, bytes]],
    ssl: ssl_module.SSLContext | None,
) -> WebSocket:
    """Open a WebSocket on a new stream of an HTTP/2 connection to ``url``'s server (reused if open).

    ``wss://`` negotiates ``h2`` by ALPN; ``ws://`` speaks HTTP/2 at once (h2c
    with prior knowledge). Raises :class:`ExtendedConnectUnsupported` when the
    server cannot carry WebSockets over HTTP/2, :class:`HandshakeRejected` when
    it refuses this one.
    """
    protocol = await _client_connection(url, settings, ssl)
    try:
        # RFC 8441 section 3: no :protocol before the server said it understands it.
        if protocol.h2.remote_settings.enable_connect_protocol != 1:
            raise ExtendedConnectUnsupported(
                f"{url.host}:{url.port} did not enable extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL, "
                "RFC 8441 section 3): it cannot carry WebSockets over HTTP/2; connect without http2=True"
            )
        request = request_for(url, settings, subprotocols, extra_headers)
        stream_id = protocol.h2.get_next_available_stream_id()
        response: asyncio.Future[list[tuple[bytes, bytes]]] = protocol.loop.create_future()
        protocol.responses[stream_id] = response
        body: asyncio.Future[bytes] = protocol.loop.create_future()
        protocol.bodies[stream_id] = (bytearray(), body)
        protocol.h2.send_headers(stream_id, connect_request_headers(request, "https" if url.secure else "http"))
        protocol.flush()
        try:
            headers = await response
            answer = client_accepted(request, headers)
            if isinstance(answer, RejectConnection):
                raise HandshakeRejected(answer.status_code, list(answer.headers), await body)
        except BaseException:
            protocol.responses.pop(stream_id, None)
            protocol.bodies.pop(stream_id, None)
            protocol.early.pop(stream_id, None)
            with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
                protocol.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            protocol.flush()
            raise
        protocol.bodies.pop(stream_id, None)
        assert isinstance(answer, AcceptConnection)
        managed = _managed(settings, answer.extensions, client=True, now=protocol.loop.time())
        stream_protocol = ConnectionProtocol(None)
        stream = _Stream(protocol, stream_id, managed, stream_protocol, client=True)
        websocket = WebSocket(stream, stream_protocol, managed, settings, subprotocol=answer.subprotocol)
        websocket._start(stream_protocol)
        for data, length in protocol.early.pop(stream_id, ()):
            if data is None:
                stream.ended()
            else:
                stream.data_arrived(data, length)
                stream.deliver()
        return websocket
    finally:
        protocol.opening -= 1
        protocol.close_if_idle()
