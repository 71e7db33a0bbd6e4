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
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from ..connection import Connection
from ..errors import RemoteProtocolError
from ..events import AcceptConnection, BytesMessage, Message, Pong, RejectConnection, Request, TextMessage
from ..http2 import accept_headers, client_accepted, connect_request_headers, request_from_headers, response_headers
from ..managed import ManagedConnection
from ..state import ConnectionState, ConnectionType
from ._common import (
    ConnectionClosed,
    HandshakeRejected,
    HttpResponse,
    ProcessRequest,
    Settings,
    WebSocketURL,
    accept_for,
    request_for,
)

__all__ = ["STREAM_WINDOW", "ExtendedConnectUnsupported", "H2Server", "H2WebSocket", "open_websocket"]

logger = logging.getLogger(__name__)

#: The HTTP/2 connection preface a client sends first (RFC 9113 section 3.4):
#: with prior knowledge (h2c), it tells an HTTP/2 client from an HTTP/1.1 one.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

#: Each stream's receive window, in bytes: how much a peer may send on one
#: WebSocket that the application has not taken yet (HTTP/2's default).
STREAM_WINDOW = 65535

#: The connection's receive window, in bytes. It is topped up as bytes
#: arrive, whether or not an application took them: only the streams' own
#: windows wait for applications, so one stalled stream never closes the
#: connection's window on the others.
CONNECTION_WINDOW = 1 << 20

#: How many WebSocket streams a peer may open at once on one connection.
MAX_CONCURRENT_STREAMS = 100

#: A rejection's or page's body is read up to this size by a client.
_MAX_REJECTION_BODY = 65536

Handler = Callable[["H2WebSocket"], Awaitable[None]]


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
        self.streams: dict[int, H2WebSocket] = {}
        self.writing_paused = False
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._connection_consumed = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self.lost = self._loop.create_future()

    # ------------------------------------------------------------- transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Any loop's transport (uvloop's too) has the asyncio.Transport methods.
        self.transport = cast(asyncio.Transport, transport)
        self.h2.initiate_connection()
        # HTTP/2 starts every connection's window at 65535 bytes.
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self.flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            # A connection error (RFC 9113 section 5.4.1): h2 queued the
            # GOAWAY; every stream ends with it.
            self.flush()
            self._terminate()
            return
        self._connection_consumed += sum(
            event.flow_controlled_length for event in events if isinstance(event, h2.events.DataReceived)
        )
        for event in events:
            self.dispatch(event)
        if self._connection_consumed >= CONNECTION_WINDOW // 4 and not self.closed:
            # The connection's window never waits for an application: each
            # stream's own window bounds what it buffers.
            self.h2.increment_flow_control_window(self._connection_consumed)
            self._connection_consumed = 0
        self.flush()

    def eof_received(self) -> bool:
        self._terminate()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        for stream in list(self.streams.values()):
            stream._ended(reset=True)
        self._drained.set()
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._drained.clear()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._drained.set()
        for stream in list(self.streams.values()):
            stream._pump()
        self.flush()

    def flush(self) -> None:
        """Write what h2 queued."""
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drained(self) -> None:
        """Wait while the transport's buffer is over its high-water mark."""
        await self._drained.wait()

    def _terminate(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        for stream in list(self.streams.values()):
            stream._ended(reset=True)

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
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream._received(event.data, event.flow_controlled_length)
            else:
                self._other_data(event)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream._ended(reset=False)
            else:
                self._other_stream_ended(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream._ended(reset=True)
            self._other_stream_reset(event.stream_id)
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id == 0:
                for stream in list(self.streams.values()):
                    stream._pump()
            elif (stream := self.streams.get(event.stream_id)) is not None:
                stream._pump()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._settings_changed()
            # A larger initial window opens every stream's window.
            for stream in list(self.streams.values()):
                stream._pump()
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
        """Requests (server) and responses (client)."""

    def forget(self, stream_id: int) -> None:
        """A WebSocket stream is done."""
        self.streams.pop(stream_id, None)


class H2WebSocket:
    """One WebSocket on one HTTP/2 stream; the same API as the asyncio driver's ``WebSocket``.

    Attributes: ``subprotocol``, ``request`` (server side: the client's
    ``Request``), ``stream_id``, ``close_code`` and ``close_reason`` (once
    closed), and ``http2`` (always true: it came as an extended CONNECT).
    """

    http2 = True

    def __init__(
        self,
        protocol: _H2Protocol,
        stream_id: int,
        managed: ManagedConnection,
        settings: Settings,
        *,
        subprotocol: str | None,
        request: Request | None = None,
    ) -> None:
        self._protocol = protocol
        self._h2 = protocol.h2
        self.stream_id = stream_id
        self._managed = managed
        self._settings = settings
        self._loop = asyncio.get_running_loop()
        self.subprotocol = subprotocol
        self.request = request
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._messages: deque[str | bytes] = deque()
        #: What recv() waits on when nothing is queued (created only then).
        self._message_waiter: asyncio.Future[None] | None = None
        self._parse_pending = False
        self._closing = False
        #: Bytes for DATA frames that wait for the peer's window (bounded: send waits).
        self._outgoing = bytearray()
        self._sent = asyncio.Event()
        self._sent.set()
        #: Received flow-controlled bytes not yet given back to the peer's window.
        self._unacknowledged = 0
        self._stream_done = False
        self._cancel_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._closed = asyncio.Event()
        self._pong_waiters: dict[bytes, asyncio.Future[None]] = {}
        protocol.streams[stream_id] = self
        self._set_timer()

    # ------------------------------------------------------------- application

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a text (``str``) or binary message; wait until it went to the transport."""
        self._raise_if_closed()
        event = TextMessage(message) if isinstance(message, str) else BytesMessage(bytes(message))
        self._managed.send(event, self._loop.time())
        await self._flush()

    async def recv(self) -> str | bytes:
        """Wait for the next message; raise :class:`ConnectionClosed` once closed."""
        messages = self._messages
        while not messages:
            if self._closed.is_set():
                raise self._closed_error()
            if self._parse_pending and not self._closing:
                self._parse()
                self._after_parse()
                continue
            waiter = self._message_waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._message_waiter = None
        message = messages.popleft()
        self._acknowledge()
        return message

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str | bytes]:
        while True:
            try:
                yield await self.recv()
            except ConnectionClosed as closed:
                if closed.normal:
                    return
                raise

    async def ping(self, payload: bytes | None = None) -> Awaitable[None]:
        """Send a Ping; return an awaitable that completes when its Pong arrives."""
        self._raise_if_closed()
        payload = self._managed.ping(payload, self._loop.time())
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._pong_waiters[payload] = waiter
        self._set_timer()
        await self._flush()
        return waiter

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket (closing handshake, then the end of its stream) and wait for it.

        Cancelling this wait resets the stream at once (code 1006).
        """
        if self._managed.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            self._managed.close(code, reason or None, self._loop.time())
            self._set_timer()
            self._pump()
        self._closing = True
        if not self._closed.is_set():
            if self._parse_pending:
                self._parse()
            self._after_parse()
        try:
            await self.wait_closed()
        except asyncio.CancelledError:
            self._reset()
            raise

    async def wait_closed(self) -> None:
        """Wait until the stream is closed."""
        await asyncio.shield(self._closed.wait())

    @property
    def closed(self) -> bool:
        """Whether the WebSocket is closed."""
        return self._closed.is_set()

    @property
    def remote_address(self) -> Any:
        """The peer's address, as the socket reports it (shared by every stream of the connection)."""
        transport = self._protocol.transport
        return transport.get_extra_info("peername") if transport is not None else None

    # ----------------------------------------------------------------- plumbing

    def _raise_if_closed(self) -> None:
        if self._closed.is_set():
            raise self._closed_error()
        if self._managed.state is not ConnectionState.OPEN:
            close = self._managed.close_event
            raise ConnectionClosed(close.code if close else 1000, close.reason if close else None)

    def _closed_error(self) -> ConnectionClosed:
        return ConnectionClosed(self.close_code or 1006, self.close_reason)

    async def _flush(self) -> None:
        self._pump()
        while (self._outgoing or self._protocol.writing_paused) and not self._closed.is_set():
            if self._outgoing:
                self._sent.clear()
                await self._sent.wait()
            else:
                await self._protocol.drained()

    def _pump(self) -> None:
        """Move queued frames into DATA frames as far as the windows allow; end the stream when due."""
        if self._stream_done:
            return
        data = self._managed.data_to_send()
        if data:
            self._outgoing += data
        h2_connection = self._h2
        sent = False
        while self._outgoing and not self._protocol.writing_paused:
            try:
                window = h2_connection.local_flow_control_window(self.stream_id)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                self._outgoing.clear()
                break
            size = min(window, h2_connection.max_outbound_frame_size, len(self._outgoing))
            if size <= 0:
                break
            h2_connection.send_data(self.stream_id, bytes(self._outgoing[:size]))
            del self._outgoing[:size]
            sent = True
        if not self._outgoing:
            self._sent.set()
            if self._managed.should_close_transport:
                self._end_stream()
            elif self._managed.state is ConnectionState.CLOSED and not self._cancel_scheduled:
                # A client after the closing handshake: the server ends the
                # stream first, as it closes TCP first over HTTP/1.1, and its
                # END_STREAM usually came in the same read. If it did not, the
                # stream is "no longer needed" (RFC 9113 section 7, CANCEL):
                # waiting close_timeout for it would gain nothing, and a
                # server that forgets a closed WebSocket's stream without
                # ending it (hypercorn 0.18 does) fails its whole connection
                # on a later DATA frame, but not on a reset.
                self._cancel_scheduled = True
                self._loop.call_soon(self._cancel_unless_ended)
        if sent:
            self._protocol.flush()

    def _cancel_unless_ended(self) -> None:
        if not self._stream_done:
            self._reset()

    def _end_stream(self) -> None:
        """Section 6 of RFC 8441: END_STREAM after a closing handshake, RST_STREAM after a failure."""
        if self._stream_done:
            return
        self._stream_done = True
        connection = self._managed.connection
        failed = isinstance(connection, Connection) and connection.failure is not None
        clean = self._managed.state is ConnectionState.CLOSED and not failed
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
            if clean:
                self._h2.end_stream(self.stream_id)
            else:
                self._h2.reset_stream(self.stream_id, h2.errors.ErrorCodes.CANCEL)
        self._protocol.flush()
        self._finish()

    def _reset(self) -> None:
        """Drop the stream at once."""
        self._closing = True
        if not self._stream_done:
            self._stream_done = True
            with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
                self._h2.reset_stream(self.stream_id, h2.errors.ErrorCodes.CANCEL)
            self._protocol.flush()
        self._managed.receive_data(None, self._loop.time())
        for _ in self._managed.events(self._loop.time()):
            pass
        self._finish()

    def _received(self, data: bytes, flow_controlled_length: int) -> None:
        if self._closed.is_set():
            return
        self._unacknowledged += flow_controlled_length
        self._managed.receive_data(data, self._loop.time())
        if self._messages and not self._closing:
            # The ordering rule across DATA frames: these bytes are behind a
            # message the application has not taken (a Close among them must
            # not be answered before the application could reply to it).
            self._parse_pending = True
        elif not self._parse_pending or self._closing:
            self._parse()
        self._after_parse()

    def _ended(self, *, reset: bool) -> None:
        """The peer ended its side of the stream (END_STREAM), or it was reset."""
        if self._closed.is_set():
            return
        if reset:
            # Nothing more can be sent on a reset stream.
            self._stream_done = True
            self._outgoing.clear()
            self._sent.set()
        self._closing = self._closing or reset
        self._managed.receive_data(None, self._loop.time())
        self._parse()
        self._after_parse()
        if reset:
            self._finish()

    def _parse(self) -> None:
        managed = self._managed
        self._parse_pending = False
        for event in managed.events(self._loop.time()):
            if isinstance(event, Message):
                self._messages.append(event.data)
                self._wake_receiver()
                if managed.buffered_bytes and not self._closing:
                    # The ordering rule (see the asyncio driver).
                    self._parse_pending = True
                    break
            elif isinstance(event, Pong):
                self._pong_arrived(event.payload)
        self._set_timer()

    def _wake_receiver(self) -> None:
        waiter = self._message_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _after_parse(self) -> None:
        self._pump()
        self._acknowledge()

    def _acknowledge(self) -> None:
        """Reopen the stream's window for what the application took (the backpressure)."""
        if (
            self._unacknowledged
            and not self._stream_done
            and not self._parse_pending
            and len(self._messages) < self._settings.max_queue
            # In halves of the window: a WINDOW_UPDATE per small message would
            # cost a frame and a write each way, and the peer keeps at least
            # half a window to send with meanwhile.
            and self._unacknowledged >= STREAM_WINDOW // 2
        ):
            increment, self._unacknowledged = self._unacknowledged, 0
            with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
                self._h2.increment_flow_control_window(increment, self.stream_id)
            self._protocol.flush()

    def _set_timer(self) -> None:
        deadline = self._managed.next_deadline
        if deadline == self._timer_deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_deadline = deadline
        if deadline is not None and not self._closed.is_set():
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        deadline = self._timer_deadline
        self._timer = None
        self._timer_deadline = None
        now = self._loop.time()
        self._managed.handle_timers(now if deadline is None else max(now, deadline))
        if self._managed.should_close_transport and self._managed.state is not ConnectionState.CLOSED:
            # Given up on the peer (keepalive or close timeout): the Close
            # that says why, if the window lets it through, then a reset.
            self._pump()
            self._reset()
        else:
            self._pump()
            self._set_timer()

    def _pong_arrived(self, payload: bytes) -> None:
        if payload not in self._pong_waiters:
            return
        for key in list(self._pong_waiters):
            waiter = self._pong_waiters.pop(key)
            if not waiter.done():
                waiter.set_result(None)
            if key == payload:
                break

    def _finish(self) -> None:
        if self._closed.is_set():
            return
        close = self._managed.close_event
        self.close_code = close.code if close is not None else 1006
        self.close_reason = close.reason if close is not None else None
        self._closed.set()
        self._wake_receiver()
        self._sent.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        error = self._closed_error()
        for waiter in self._pong_waiters.values():
            if not waiter.done():
                waiter.set_exception(error)
                waiter.exception()
        self._pong_waiters.clear()
        self._protocol.forget(self.stream_id)


def _managed(settings: Settings, extensions: list[Any], *, client: bool, now: float) -> ManagedConnection:
    connection = Connection(
        ConnectionType.CLIENT if client else ConnectionType.SERVER,
        extensions,
        max_frame_size=settings.max_frame_size,
        max_message_size=settings.max_message_size,
    )
    return ManagedConnection(
        connection,
        client=client,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        close_timeout=settings.close_timeout,
        now=now,
    )


# ---------------------------------------------------------------------- server


class H2Server:
    """The HTTP/2 side of a server started by the asyncio driver's ``serve(..., http2=True)``.

    :meth:`protocol` wraps each new connection's HTTP/1.1 protocol: with TLS,
    ALPN decides (``h2``, else HTTP/1.1); without TLS, the first bytes do (the
    HTTP/2 preface, that is h2c with prior knowledge, else HTTP/1.1).
    """

    def __init__(
        self,
        handler: Handler,
        settings: Settings,
        subprotocols: Sequence[str],
        process_request: ProcessRequest | None,
        tracked: Any,
    ) -> None:
        self.handler = handler
        self.settings = settings
        self.subprotocols = subprotocols
        self.process_request = process_request
        self.tracked = tracked

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
            assert isinstance(target, asyncio.Protocol)
            target.data_received(head)

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
        self._tasks: set[asyncio.Task[None]] = set()
        #: Plain HTTP answers whose body waits for the window (stream id -> body left).
        self._bodies: dict[int, bytearray] = {}
        server.tracked.open.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.server.tracked.open.discard(self)

    async def close(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Close every WebSocket of this connection, then the connection (GOAWAY).

        ``Server.close()`` calls it, as it calls each WebSocket's ``close``.
        """
        await asyncio.gather(
            *(stream.close(code, reason) for stream in list(self.streams.values())), return_exceptions=True
        )
        self.goaway()

    def _other_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._request(event.stream_id, event.headers or [])
        elif isinstance(event, h2.events.WindowUpdated):
            self._send_bodies()

    def dispatch(self, event: h2.events.Event) -> None:
        super().dispatch(event)
        if isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._send_bodies()

    def _request(self, stream_id: int, raw_headers: list[Any]) -> None:
        headers = [(bytes(name), bytes(value)) for name, value in raw_headers]
        fields = dict(headers)
        server = self.server
        if server.tracked.closing:
            self._respond(stream_id, HttpResponse(503, [(b"content-type", b"text/plain")], b"shutting down\n"))
            return
        if server.process_request is not None:
            path = fields.get(b":path", b"/").decode("latin-1")
            # Over HTTP/2 the header list includes the pseudo-headers
            # (:method, :protocol, :path...), so an answer can tell an
            # extended CONNECT from a page request.
            answer = server.process_request(path, headers)
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
        accept = accept_for(request, server.settings, server.subprotocols)
        response, extensions = accept_headers(request, accept)
        self.h2.send_headers(stream_id, response)
        websocket = H2WebSocket(
            self,
            stream_id,
            _managed(server.settings, extensions, client=False, now=self._loop.time()),
            server.settings,
            subprotocol=accept.subprotocol,
            request=request,
        )
        self.flush()
        task = self._loop.create_task(self._run(websocket))
        server.tracked.tasks.add(task)
        task.add_done_callback(server.tracked.tasks.discard)

    async def _run(self, websocket: H2WebSocket) -> None:
        tracked = self.server.tracked
        tracked.open.add(websocket)
        try:
            await self.server.handler(websocket)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("WebSocket handler failed")
            with contextlib.suppress(Exception):
                await websocket.close(1011, "internal error")
        finally:
            with contextlib.suppress(Exception):
                await websocket.close()
            tracked.open.discard(websocket)

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
        self.settings_received = self._loop.create_future()
        #: Stream id -> the response headers, then the rejection's body, as they come.
        self.responses: dict[int, asyncio.Future[list[tuple[bytes, bytes]]]] = {}
        self.bodies: dict[int, tuple[bytearray, asyncio.Future[bytes]]] = {}
        self.opening = 0

    def _settings_changed(self) -> None:
        if not self.settings_received.done():
            self.settings_received.set_result(None)

    def _other_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            waiter = self.responses.pop(event.stream_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result([(bytes(name), bytes(value)) for name, value in event.headers or []])

    def _other_data(self, event: h2.events.DataReceived) -> None:
        super()._other_data(event)
        entry = self.bodies.get(event.stream_id)
        if entry is not None and len(entry[0]) < _MAX_REJECTION_BODY:
            entry[0].extend(event.data[: _MAX_REJECTION_BODY - len(entry[0])])

    def _other_stream_ended(self, stream_id: int) -> None:
        entry = self.bodies.pop(stream_id, None)
        if entry is not None and not entry[1].done():
            entry[1].set_result(bytes(entry[0]))

    def _other_stream_reset(self, stream_id: int) -> None:
        self._fail_stream(stream_id, ConnectionError(f"The server reset stream {stream_id}"))

    def _fail_stream(self, stream_id: int, error: Exception) -> None:
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
) -> H2WebSocket:
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
        response: asyncio.Future[list[tuple[bytes, bytes]]] = protocol._loop.create_future()
        protocol.responses[stream_id] = response
        body: asyncio.Future[bytes] = protocol._loop.create_future()
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
            with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
                protocol.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            protocol.flush()
            raise
        protocol.bodies.pop(stream_id, None)
        assert isinstance(answer, AcceptConnection)
        return H2WebSocket(
            protocol,
            stream_id,
            _managed(settings, answer.extensions, client=True, now=protocol._loop.time()),
            settings,
            subprotocol=answer.subprotocol,
        )
    finally:
        protocol.opening -= 1
        protocol.close_if_idle()
