"""wsproto_core on asyncio: ``connect`` for clients, ``serve`` for servers.

Everything runs in the transport's protocol callbacks, with no task between
the socket and the application: the opening handshake is fed to the sans-I/O
:class:`~wsproto_core.drivers._common.ServerOpening` (or ``ClientOpening``) as
bytes arrive, and after it every read goes straight to a
:class:`~wsproto_core.managed.ManagedConnection` (which answers Pings and
Closes and assembles messages). A server starts the handler's task only once
the handshake succeeded. The only other moving part is one timer callback at
the connection's next deadline (keepalive, close timeout, open timeout).

Two ways to receive messages:

- the handler API: ``await websocket.recv()`` or ``async for``. Messages wait
  in a bounded queue; when it is full the transport stops reading, so a slow
  application slows the peer down through TCP instead of growing memory. A
  ``recv()`` that finds a message queued returns it without a Future.
- the callback API (:class:`Listener`, :func:`serve_listener`, ``connect(...,
  listener=...)``): each message is handed to ``listener.on_message`` inside
  the read callback, and :meth:`WebSocket.send_nowait` writes the reply; all
  the replies to one read go out in one write.

Reading also stops while the transport's write buffer is above its high-water
mark; ``send`` waits only then.

The ordering rule (kept by :class:`~wsproto_core.managed.ManagedConnection`,
``hold_after_message``): a message that was received before a Close (or
before a protocol violation) can still be answered. With the handler API a
read is parsed up to the first message with more bytes behind it; the rest is
parsed once the application took that message, either by its next
:meth:`WebSocket.recv` (in its own task: a pipelining peer costs no task switch
per message, and the replies go out together in one write), or at the next
event loop iteration, so that a Close behind the message is answered even if
the application only waits for the end (:meth:`WebSocket.wait_closed`). A
reply sent before the application's task next waits for something else
therefore precedes our answer to that Close. With the callback API the rule
holds by construction: the listener answers inside the parse.

Any event loop that implements asyncio's transport and protocol interfaces
will do (uvloop among them): nothing here checks a transport's class.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import ssl as ssl_module
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Generator, Iterable, Sequence
from types import TracebackType
from typing import Any

from ..errors import LocalProtocolError
from ..events import BytesMessage, Message, Pong, Request, TextMessage
from ..managed import ManagedConnection
from ..prepared import PreparedMessage
from ..state import ConnectionState
from ._common import (
    FRAGMENTS_IN_PROGRESS,
    REFUSAL_GRACE,
    UNFINISHED_MESSAGE,
    ClientOpening,
    ClientOptions,
    ConnectionClosed,
    Fragments,
    ProcessRequest,
    ProcessResponse,
    SelectSubprotocol,
    ServerOpening,
    Settings,
    Upgrade,
    admission_refusal,
    async_pieces,
    handler_close,
    parse_url,
    send_buffer_full,
)
from .proxy import open_tunnel
from .reconnect import Backoff, reconnecting

__all__ = ["Listener", "Server", "WebSocket", "connect", "serve", "serve_listener", "unix_connect", "unix_serve"]

#: Received bytes that may wait to be parsed (the ordering rule) before the
#: transport stops reading.
_PARSE_HOLD_LIMIT = 256 * 1024

#: Replies to pipelined messages are written together up to this many bytes
#: (with the transport's own buffer); beyond it, ``send`` writes at once.
_COALESCE_LIMIT = 65536

logger = logging.getLogger(__name__)

#: The context the driver's own callbacks (timers, deferred writes) run in: one
#: for all, instead of a copy of the caller's per callback scheduled (asyncio's
#: default), which an idle connection's keepalive timer would hold. They read
#: no context variable; the application's tasks keep their own contexts.
_DRIVER_CONTEXT = contextvars.Context()


class Listener:
    """The callback API: subclass it and override what you need.

    Each method runs in the event loop's read callback, so it must not block;
    reply with :meth:`WebSocket.send_nowait`. An exception from a callback
    fails the connection with 1011 (and is logged). A subclass that declares
    ``__slots__`` keeps each connection's listener as small as its fields.
    """

    __slots__ = ()

    def on_open(self, websocket: WebSocket) -> None:
        """The connection is open."""

    def on_message(self, websocket: WebSocket, message: str | bytes) -> None:
        """A whole message arrived."""

    def on_close(self, websocket: WebSocket) -> None:
        """The connection is closed; ``websocket.close_code`` says how."""


class _Protocol(asyncio.Protocol):
    """One TCP connection: the opening handshake, then every event to the :class:`WebSocket`."""

    __slots__ = ("_opening", "_transport", "websocket", "writing_paused")

    def __init__(self, opening: _Opening | None) -> None:
        # None: the WebSocket is already open (an HTTP/2 stream's, whose
        # opening is the HTTP/2 connection's business).
        self._opening = opening
        self._transport: asyncio.Transport | None = None
        self.websocket: WebSocket | None = None
        self.writing_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Any loop's transport will do (uvloop's are not asyncio.Transport
        # subclasses): only the methods asyncio documents are used.
        self._transport = transport  # type: ignore[assignment]
        if self._opening is not None:
            self._opening.connection_made(self, transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        websocket = self.websocket
        if websocket is not None:
            websocket._received(data)
        elif self._opening is not None:
            self._opening.data_received(data)

    def eof_received(self) -> bool:
        self._ended()
        # Keep the transport to write our last frames (our Close answers the
        # peer's); the WebSocket closes it. TLS transports cannot stay half-open.
        return (
            self.websocket is not None
            and self._transport is not None
            and (self._transport.get_extra_info("sslcontext") is None)
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended()
        if self.websocket is not None:
            self.websocket._connection_lost()

    def _ended(self) -> None:
        if self.websocket is not None:
            self.websocket._received(None)
        elif self._opening is not None:
            opening, self._opening = self._opening, None
            opening.ended()

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self.websocket is not None:
            self.websocket._update_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.websocket is not None:
            self.websocket._writing_resumed()

    def opened(self, websocket: WebSocket) -> None:
        self._opening = None
        self.websocket = websocket


class _Opening:
    """What a connection does until its opening handshake is decided (one per role)."""

    __slots__ = ()

    def connection_made(self, protocol: _Protocol, transport: asyncio.Transport) -> None:
        raise NotImplementedError

    def data_received(self, data: bytes) -> None:
        raise NotImplementedError

    def ended(self) -> None:
        raise NotImplementedError


class WebSocket:
    """One open WebSocket connection.

    Created by :func:`connect`, :func:`serve` and :func:`serve_listener`; use
    :meth:`send`, :meth:`recv` (or ``async for``), :meth:`ping` and
    :meth:`close`, or with a :class:`Listener`, :meth:`send_nowait`.

    Attributes: ``subprotocol`` (the negotiated one or ``None``), ``request``
    (server side: the client's ``Request``, with ``target`` and headers),
    ``close_code`` and ``close_reason`` (once closed).
    """

    __slots__ = (
        "__weakref__",
        "_closed",
        "_closing",
        "_done",
        "_drain_waiter",
        "_ended",
        "_fragmenting",
        "_in_read",
        "_listener",
        "_loop",
        "_managed",
        "_messages",
        "_pong_waiters",
        "_protocol",
        "_reading_paused",
        "_settings",
        "_soon_scheduled",
        "_timer",
        "_timer_deadline",
        "_transport",
        "_untrack",
        "_waiter",
        "close_code",
        "close_reason",
        "request",
        "subprotocol",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        protocol: _Protocol,
        managed: ManagedConnection,
        settings: Settings,
        *,
        subprotocol: str | None,
        request: Request | None = None,
        listener: Listener | None = None,
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self._managed = managed
        self._settings = settings
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        self.subprotocol = subprotocol
        self.request = request
        self.close_code: int | None = None
        self.close_reason: str | None = None
        #: Messages waiting for ``recv()``; created with the first one (a deque
        #: is over 600 bytes, and a Listener never needs it).
        self._messages: deque[str | bytes] | None = None
        #: The Future a ``recv()`` waits on, only while one waits.
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._ended = False
        self._closed = False
        self._closing = False
        #: send_fragments() is sending a message: other sends must wait for it.
        self._fragmenting = False
        #: Whether :meth:`_soon` is scheduled for the next loop iteration.
        self._soon_scheduled = False
        #: Whether a read (or the start) is being handled: it writes what was queued when done.
        self._in_read = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._done: asyncio.Future[None] | None = None
        self._pong_waiters: dict[bytes, asyncio.Future[None]] | None = None
        #: The server's set of open WebSockets, which forgets this one once closed.
        self._untrack: set[Any] | None = None

    def _start(self) -> None:
        """Take over the transport: parse what came with the handshake, start the timer."""
        self._protocol.opened(self)
        self._in_read = True
        try:
            if self._listener is not None:
                self._call_listener(self._listener.on_open)
            self._set_timer()
            self._parse(self._loop.time())
            self._after_parse()
        finally:
            self._in_read = False

    # ------------------------------------------------------------- application

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a text (``str``) or binary message; wait only while the transport's buffer is full."""
        if self._closed or self._fragmenting or self._managed.state is not ConnectionState.OPEN:
            self._raise_if_unsendable()
        managed = self._managed
        # No time given: only a Close starts a timer.
        managed.send(TextMessage(message) if message.__class__ is str else _bytes_message(message))  # type: ignore[arg-type]
        if (self._messages or managed.held) and (
            managed.bytes_to_send + self._transport.get_write_buffer_size() < _COALESCE_LIMIT
        ):
            # More received messages wait for the application (a pipelining
            # peer): write this reply together with theirs, when the
            # application next waits in recv(), instead of one write per
            # message. Nothing waits longer than the next loop iteration.
            self._schedule_soon()
            return
        self._write_queued()
        if self._protocol.writing_paused:
            await self._drain()

    def send_nowait(self, message: str | bytes | bytearray | memoryview) -> None:
        """Queue a message without waiting; it is written at the end of the current callback.

        For :class:`Listener` callbacks (and anything else that must not
        await). It never waits for the transport to drain: the connection
        stops reading while the transport's buffer is above its high-water
        mark, which slows an echoing peer down. When the outgoing buffer
        already holds ``max_send_buffer`` bytes (a peer that does not read),
        the connection is dropped and :class:`ConnectionClosed` (1006) raised.
        """
        if self._closed or self._fragmenting or self._managed.state is not ConnectionState.OPEN:
            self._raise_if_unsendable()
        if send_buffer_full(self._settings, self._managed.bytes_to_send + self._transport.get_write_buffer_size()):
            self._abort()
            self.close_reason = "outgoing buffer full: the peer does not read"
            raise self._closed_error()
        self._managed.send(TextMessage(message) if message.__class__ is str else _bytes_message(message))  # type: ignore[arg-type]
        if not self._in_read:
            # Outside a read callback (which writes once it is done): write at the next iteration.
            self._schedule_soon()

    async def send_fragments(self, fragments: Iterable[str | bytes] | AsyncIterable[str | bytes]) -> None:
        """Send one message from its pieces, each in a frame of its own, without assembling it.

        ``fragments`` is an iterable or an async iterable of pieces, all ``str``
        (a text message) or all bytes-like (a binary one). Each piece is written
        as it comes (waiting while the transport's buffer is full), and an
        empty final frame ends the message once the pieces run out; no pieces,
        no message. Meanwhile :meth:`send` raises ``LocalProtocolError`` (a
        message cannot go between another's fragments), while :meth:`ping` and
        :meth:`close` may. If the pieces mix ``str`` and bytes (``TypeError``)
        or their iterator raises, part of the message is already out: the
        connection is closed with 1011 and the error raised.
        """
        message = Fragments(fragments)
        self._raise_if_unsendable()
        message.begin(self)
        try:
            async for piece in async_pieces(fragments):
                event = message.piece(piece)
                self._raise_if_closed()
                self._managed.send(event, self._loop.time())
                await self._flush()
            if (end := message.end()) is not None:
                self._raise_if_closed()
                self._managed.send(end, self._loop.time())
                await self._flush()
        finally:
            if message.release(self) and not self._closed:
                # The peer holds the start of a message that will never end.
                self._start_closing(1011, UNFINISHED_MESSAGE)

    async def recv(self) -> str | bytes:
        """Wait for the next message; raise :class:`ConnectionClosed` once closed."""
        while not (messages := self._messages):
            if self._closed:
                raise self._closed_error()
            if self._listener is not None:
                raise LocalProtocolError("This connection hands its messages to its Listener; recv() gets none.")
            if self._managed.held:
                # The application took every message before the rest of the
                # read: parse on, here (see the ordering rule above).
                self._parse()
                if not self._managed.held:
                    self._after_parse()
                continue
            self._write_queued()
            waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        message = messages.popleft()
        if not messages and self._managed.held:
            # Whatever the application does next, the rest of the read is
            # parsed by the next loop iteration (see the ordering rule above).
            self._schedule_soon()
        if self._reading_paused:
            self._update_reading()
        return message

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str | bytes]:
        """Yield messages until the connection closes (normally: no exception)."""
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
        if self._pong_waiters is None:
            self._pong_waiters = {}
        self._pong_waiters[payload] = waiter
        self._set_timer()
        await self._flush()
        return waiter

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (closing handshake, then the transport) and wait for it.

        Cancelling this wait drops the connection at once (code 1006).
        """
        self._start_closing(code, reason)
        try:
            await self.wait_closed()
        except asyncio.CancelledError:
            # Whoever cancelled the close will not wait for the peer any more.
            self._abort()
            raise

    def _start_closing(self, code: int, reason: str) -> None:
        if self._managed.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            self._managed.close(code, reason or None, self._loop.time())
            self._set_timer()
            self._write_queued()
        # The peer's Close must be read even if unread messages fill the queue.
        self._closing = True
        if not self._closed:
            if self._managed.held:
                self._parse()
            self._after_parse()

    async def wait_closed(self) -> None:
        """Wait until the transport is closed."""
        if self._closed:
            return
        if self._done is None:
            self._done = self._loop.create_future()
        await asyncio.shield(self._done)

    @property
    def closed(self) -> bool:
        """Whether the connection is closed."""
        return self._closed

    @property
    def latency(self) -> float:
        """Seconds from the latest answered Ping (keepalive or :meth:`ping`) to its Pong; 0.0 before one."""
        return self._managed.latency

    # What a fan-out needs (wsproto_core.drivers.broadcast): how much waits to
    # be sent, and a send that queues without waiting, written later for
    # many connections at once.

    @property
    def outgoing_buffer_size(self) -> int:
        """How many bytes were sent on this connection but not yet taken by the OS."""
        return self._managed.bytes_to_send + self._transport.get_write_buffer_size()

    def queue_prepared(self, message: PreparedMessage) -> None:
        """Queue a :class:`~wsproto_core.PreparedMessage` without writing it; :meth:`write_queued` writes it.

        For :func:`~wsproto_core.drivers.broadcast.broadcast`, which bounds
        each connection's buffer itself and writes what it queued once per
        event loop iteration (one system call per connection for several
        messages broadcast in a row). An application sending to one connection
        uses :meth:`send`, which also writes what was queued, in order. Raises
        :class:`ConnectionClosed` when the connection can no longer send.
        """
        try:
            # Hot path (once per recipient): the connection's own state check
            # refuses after a Close, instead of checking here first.
            self._managed.send_prepared(message)
        except LocalProtocolError:
            self._raise_if_closed()
            raise

    def write_queued(self) -> None:
        """Hand everything queued to the transport, without waiting for it to drain."""
        self._write_queued()

    @property
    def remote_address(self) -> Any:
        """The peer's address, as the socket reports it."""
        return self._transport.get_extra_info("peername")

    @property
    def stream_id(self) -> int | None:
        """The HTTP/2 stream that carries this WebSocket (RFC 8441), or ``None`` over HTTP/1.1."""
        return self._transport.get_extra_info("http2_stream_id")  # type: ignore[no-any-return]

    # ----------------------------------------------------------------- plumbing

    def _raise_if_unsendable(self) -> None:
        if self._fragmenting:
            raise LocalProtocolError(FRAGMENTS_IN_PROGRESS)
        self._raise_if_closed()

    def _raise_if_closed(self) -> None:
        if self._closed:
            raise self._closed_error()
        if self._managed.state is not ConnectionState.OPEN:
            close = self._managed.close_event
            raise ConnectionClosed(close.code if close else 1000, close.reason if close else None)

    def _closed_error(self) -> ConnectionClosed:
        return ConnectionClosed(self.close_code or 1006, self.close_reason)

    def _write_queued(self) -> bool:
        """Hand what the connection queued to the transport; return whether there was any."""
        data = self._managed.data_to_send()
        if not data or self._transport.is_closing():
            return False
        self._transport.write(data)
        return True

    def _schedule_soon(self) -> None:
        if not self._soon_scheduled:
            self._soon_scheduled = True
            self._loop.call_soon(self._soon, context=_DRIVER_CONTEXT)

    def _soon(self) -> None:
        """Write the replies held back for one write; parse on once the application took every message."""
        self._soon_scheduled = False
        self._write_queued()
        if self._managed.held and not self._messages and not self._closed:
            self._parse()
            if not self._managed.held:
                self._after_parse()

    async def _flush(self) -> None:
        self._write_queued()
        if self._protocol.writing_paused:
            await self._drain()

    async def _drain(self) -> None:
        """Wait until the transport's buffer is below its low-water mark, or the connection ended."""
        while self._protocol.writing_paused and not self._closed:
            if self._drain_waiter is None:
                self._drain_waiter = self._loop.create_future()
            await asyncio.shield(self._drain_waiter)

    def _writing_resumed(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._update_reading()

    def _parse(self, now: float | None = None) -> None:
        """Deliver received messages; with the handler API, stop after one that has more bytes behind it."""
        managed = self._managed
        listener = self._listener
        for event in managed.events(now if now is not None else self._loop.time()):
            if isinstance(event, Message):
                if listener is not None:
                    self._call_listener(listener.on_message, event.data)
                    continue
                if self._messages is None:
                    self._messages = deque()
                self._messages.append(event.data)
                waiter = self._waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif isinstance(event, Pong):
                self._pings_acknowledged()
        self._set_timer()

    def _call_listener(self, callback: Callable[..., None], *arguments: Any) -> None:
        try:
            callback(self, *arguments)
        except Exception:
            logger.exception("WebSocket listener failed")
            self._start_closing(1011, "internal error")

    def _received(self, data: bytes | None) -> None:
        """The protocol's callback: ``data`` read, or ``None`` once the stream ended."""
        if self._ended or self._closed:
            return
        if data is None:
            self._ended = True
        self._in_read = True
        try:
            now = self._loop.time()
            self._managed.receive_data(data, now)
            if not self._managed.held or self._closing:
                self._parse(now)
            self._after_parse()
        except Exception:
            # A bug of ours: in an event loop callback it would leave the
            # connection hanging, so end it (the parser itself never raises).
            logger.exception("WebSocket connection failed")
            self._abort()
        finally:
            self._in_read = False

    def _connection_lost(self) -> None:
        if not self._closed:
            self._closing = True
            self._finish()

    def _after_parse(self) -> None:
        self._write_queued()
        if self._managed.should_close_transport and (self._closing or not self._managed.held):
            self._finish()
        else:
            self._update_reading()

    def _update_reading(self) -> None:
        """Pause or resume reading: backpressure from the application, and from the peer."""
        if self._closed:
            return
        pause = not self._closing and (
            (self._messages is not None and len(self._messages) >= self._settings.max_queue)
            or self._protocol.writing_paused
            or (self._managed.held and self._managed.buffered_bytes >= _PARSE_HOLD_LIMIT)
        )
        if pause is not self._reading_paused:
            self._reading_paused = pause
            if pause:
                self._transport.pause_reading()
            else:
                self._transport.resume_reading()

    def _set_timer(self) -> None:
        """Schedule :meth:`_on_timer` at the connection's next deadline, if that moved."""
        deadline = self._managed.next_deadline
        if deadline == self._timer_deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_deadline = deadline
        if deadline is not None and not self._closed:
            self._timer = self._loop.call_at(deadline, self._on_timer, context=_DRIVER_CONTEXT)

    def _on_timer(self) -> None:
        managed = self._managed
        deadline = self._timer_deadline
        self._timer = None
        self._timer_deadline = None
        now = self._loop.time()
        # The loop runs a timer up to its clock resolution early; it is due.
        managed.handle_timers(now if deadline is None else max(now, deadline))
        self._write_queued()
        if managed.should_close_transport and not self._closed:
            self._abort()
        else:
            self._set_timer()

    def _abort(self) -> None:
        """Drop the connection: no ordering to keep, nothing more to read."""
        self._closing = True
        self._transport.abort()
        self._received(None)
        if not self._closed:
            self._finish()

    def _pings_acknowledged(self) -> None:
        waiters = self._pong_waiters
        for payload in self._managed.take_acknowledged_pings():
            waiter = waiters.pop(payload, None) if waiters else None
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def _finish(self) -> None:
        close = self._managed.close_event
        self.close_code = close.code if close is not None else 1006
        self.close_reason = close.reason if close is not None else None
        self._closed = True
        for waiter in (self._waiter, self._drain_waiter, self._done):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self._drain_waiter = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pong_waiters:
            error = self._closed_error()
            for waiter in self._pong_waiters.values():
                if not waiter.done():
                    waiter.set_exception(error)
                    # Nobody may be awaiting it; do not warn about an unretrieved error.
                    waiter.exception()
            self._pong_waiters.clear()
        if not self._transport.is_closing():
            self._transport.close()
        if self._untrack is not None:
            self._untrack.discard(self)
        if self._listener is not None:
            listener, self._listener = self._listener, None
            try:
                listener.on_close(self)
            except Exception:
                logger.exception("WebSocket listener failed")


def _bytes_message(message: bytes | bytearray | memoryview) -> BytesMessage:
    return BytesMessage(message if message.__class__ is bytes else bytes(message))


# ------------------------------------------------------------------------- client


class _ClientOpening(_Opening):
    """The client's handshake, fed from the protocol's callbacks; resolves ``opened``."""

    def __init__(self, opening: ClientOpening, listener: Listener | None) -> None:
        self._opening = opening
        self._listener = listener
        self._protocol: _Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[WebSocket] = asyncio.get_running_loop().create_future()

    def connection_made(self, protocol: _Protocol, transport: asyncio.Transport) -> None:
        self._protocol = protocol
        self._transport = transport
        transport.write(self._opening.request)

    def data_received(self, data: bytes) -> None:
        self._receive(data)

    def ended(self) -> None:
        self._receive(b"")

    def _receive(self, data: bytes) -> None:
        if self.opened.done():
            return
        try:
            accepted = self._opening.receive(data)
        except Exception as error:  # noqa: BLE001 - handed to the task waiting in connect()
            self.opened.set_exception(error)
            return
        if accepted is None:
            return
        assert self._transport is not None and self._protocol is not None
        opening = self._opening
        websocket = WebSocket(
            self._transport,
            self._protocol,
            opening.managed(asyncio.get_running_loop().time(), hold_after_message=self._listener is None),
            opening.settings,
            subprotocol=accepted.subprotocol,
            listener=self._listener,
        )
        self.opened.set_result(websocket)
        # Frames that came with the 101 are parsed now, before the next read.
        websocket._start()


class _Connect:
    """``await connect(...)``, ``async with connect(...) as websocket``, or ``async for websocket in connect(...)``."""

    def __init__(self, open_connection: Callable[[], Awaitable[WebSocket]], backoff: Backoff | None = None) -> None:
        self._open = open_connection
        self._backoff = backoff
        self._websocket: WebSocket | None = None

    def __await__(self) -> Generator[Any, None, WebSocket]:
        return self._open().__await__()

    def __aiter__(self) -> AsyncIterator[WebSocket]:
        backoff = self._backoff or Backoff()
        return reconnecting(self._open, backoff, backoff.sleep or asyncio.sleep)

    async def __aenter__(self) -> WebSocket:
        self._websocket = await self._open()
        return self._websocket

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._websocket is not None:
            await self._websocket.close()


def connect(
    url: str,
    *,
    subprotocols: Sequence[str] = (),
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
    ssl: ssl_module.SSLContext | None = None,
    open_timeout: float | None = 10.0,
    listener: Listener | None = None,
    http2: bool = False,
    proxy: str | bool | None = True,
    backoff: Backoff | None = None,
    unix_path: str | None = None,
    **options: Any,
) -> _Connect:
    """Open a WebSocket connection to ``url`` (``ws://`` or ``wss://``).

    With a ``listener``, messages go to its callbacks instead of ``recv()``.
    ``proxy``: ``True`` takes the proxy from the environment (``HTTPS_PROXY``
    for ``wss://``, ``HTTP_PROXY`` for ``ws://``, then ``ALL_PROXY``; hosts in
    ``NO_PROXY`` are reached directly), a URL (``http://``, ``socks5://``,
    ``socks5h://``) names one, ``None`` connects directly; see
    :mod:`wsproto_core.drivers.proxy`, which raises ``ProxyError`` (an
    ``OSError``) when the proxy refuses.
    Options are those of :class:`~wsproto_core.drivers.Settings` (compression,
    limits, keepalive, timeouts). Raises :class:`HandshakeRejected` when the
    server answers with plain HTTP, ``InvalidURL`` for a bad URL, and ``OSError``
    when the connection fails.

    ``http2=True`` (the ``http2`` extra) opens the WebSocket as a stream of an
    HTTP/2 connection (RFC 8441), reusing this loop's open connection to the
    same server: ``wss://`` negotiates ``h2`` by ALPN, ``ws://`` speaks HTTP/2
    at once (h2c with prior knowledge). The result is a :class:`WebSocket`
    whose transport is the stream (see :mod:`wsproto_core.drivers.http2`).

    ``async for websocket in connect(...)`` reconnects: each iteration yields a
    fresh open connection, and the previous one is closed. Failed attempts are
    retried with exponential backoff and jitter, or raised when they are
    permanent, as ``backoff`` (a :class:`~wsproto_core.drivers.reconnect.Backoff`,
    whose defaults are documented there) says.

    ``unix_path`` connects to a server listening on that Unix domain socket
    instead (no proxy); the URL still gives the request's target and Host,
    and ``wss://`` runs TLS on the socket. See :func:`unix_connect`.
    """
    client = ClientOptions(
        parse_url(url), Settings.from_options(options), subprotocols, extra_headers, ssl, open_timeout, unix_path, proxy
    )
    if http2:
        return _Connect(lambda: _open_http2(client), backoff)
    return _Connect(lambda: _open(client, listener), backoff)


def unix_connect(path: str, url: str = "ws://localhost/", **kwargs: Any) -> _Connect:
    """:func:`connect` to a server listening on the Unix domain socket ``path``.

    ``url`` gives the request's target and Host header (and ``wss://`` TLS on
    the socket, checked against its host). The other arguments are those of
    :func:`connect`: ``await``, ``async with`` and ``async for`` all work.
    """
    return connect(url, unix_path=path, **kwargs)


async def _open(client: ClientOptions, listener: Listener | None) -> WebSocket:
    target, context = client.url, client.ssl_context()
    opening = _ClientOpening(client.opening(), listener)
    loop = asyncio.get_running_loop()
    transport: asyncio.Transport | None = None
    try:
        async with asyncio.timeout(client.open_timeout):
            through = client.through()
            if client.unix_path is not None:
                transport, _ = await loop.create_unix_connection(
                    lambda: _Protocol(opening),
                    client.unix_path,
                    ssl=context,
                    server_hostname=target.host if context is not None else None,
                )
            elif through is None:
                transport, _ = await loop.create_connection(
                    lambda: _Protocol(opening), target.host, target.port, ssl=context
                )
            else:
                transport, _ = await loop.create_connection(
                    lambda: _Protocol(opening),
                    sock=await open_tunnel(through, target),
                    ssl=context,
                    server_hostname=target.host if context is not None else None,
                )
            return await opening.opened
    except BaseException:
        if transport is not None:
            transport.abort()
        raise


async def _open_http2(client: ClientOptions) -> WebSocket:
    from .http2 import open_websocket  # noqa: PLC0415 (the h2 library is the optional extra "http2")

    async with asyncio.timeout(client.open_timeout):
        return await open_websocket(
            client.url,
            client.settings,
            subprotocols=client.subprotocols,
            extra_headers=client.extra_headers,
            ssl=client.ssl,
        )


# ------------------------------------------------------------------------- server

Handler = Callable[[WebSocket], Awaitable[None]]


class _Tracked:
    """What a server keeps track of, so that closing it leaves nothing running."""

    def __init__(self) -> None:
        #: Open WebSockets, and HTTP/2 connections (which close theirs): each has ``close(code, reason)``.
        self.open: set[Any] = set()
        #: Connections still in the opening handshake (or answering with plain HTTP).
        self.handshaking: set[asyncio.Transport] = set()
        #: Every handler's task.
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closing = False


class _ServerOpening(_Opening):
    """The server's handshake, fed from the protocol's callbacks, under ``open_timeout``."""

    __slots__ = ("_opening", "_protocol", "_refused", "_server", "_timer", "_transport")

    def __init__(self, server: _ServerConfig) -> None:
        self._server = server
        self._opening = ServerOpening(server.settings, server.process_request)
        self._protocol: _Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, protocol: _Protocol, transport: asyncio.Transport) -> None:
        self._protocol = protocol
        self._transport = transport
        tracked = self._server.tracked
        refusal = admission_refusal(
            self._server.settings,
            handshaking=len(tracked.handshaking),
            connections=len(tracked.handshaking) + len(tracked.open),
        )
        if refusal is not None:
            self._refuse(refusal)
            return
        tracked.handshaking.add(transport)
        if self._server.open_timeout is not None:
            self._timer = asyncio.get_running_loop().call_later(self._server.open_timeout, self._give_up)

    def _refuse(self, answer: bytes) -> None:
        """Send ``answer``, then read and drop whatever comes until the client closes (or the grace ends).

        Closing at once with the client's bytes unread would reset the
        connection, and a reset can destroy the answer before the client reads it.
        """
        transport = self._transport
        assert transport is not None
        self._refused = True
        transport.write(answer)
        if transport.can_write_eof():
            transport.write_eof()
        self._timer = asyncio.get_running_loop().call_later(REFUSAL_GRACE, transport.abort)

    def _give_up(self) -> None:
        self._timer = None
        self._done()
        assert self._transport is not None
        self._transport.abort()

    def _done(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._server.tracked.handshaking.discard(self._transport)

    def ended(self) -> None:
        self._done()
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None and self._protocol is not None
        if self._refused:
            return
        try:
            decided = self._opening.receive(data)
        except Exception:
            logger.exception("WebSocket opening handshake failed")
            decided = False
            self.ended()
        if not decided:
            return
        self._done()
        opening = self._opening
        request = opening.request
        if request is None:
            # Answered with plain HTTP, or rejected: close once that is read.
            self._refuse(opening.response)
            return
        if opening.response:
            transport.write(opening.response)
        server = self._server
        if server.tracked.closing:
            transport.abort()
            return
        answer, accept = opening.upgrade(server.upgrade, server.settings)
        if accept is None:
            # process_response answered with plain HTTP (or a callback failed: 500).
            self._refuse(answer)
            return
        transport.write(answer)
        listener = server.listener_factory() if server.listener_factory is not None else None
        websocket = WebSocket(
            transport,
            self._protocol,
            opening.managed(asyncio.get_running_loop().time(), hold_after_message=listener is None),
            server.settings,
            subprotocol=accept.subprotocol,
            request=request,
            listener=listener,
        )
        server.open(websocket)


class _ServerConfig:
    """A listening server's settings and callbacks, shared by its connections."""

    def __init__(
        self,
        settings: Settings,
        *,
        subprotocols: Sequence[str],
        process_request: ProcessRequest | None,
        open_timeout: float | None,
        handler: Handler | None,
        listener_factory: Callable[[], Listener] | None,
        select_subprotocol: SelectSubprotocol | None = None,
        process_response: ProcessResponse | None = None,
    ) -> None:
        self.settings = settings
        self.subprotocols = subprotocols
        self.upgrade = Upgrade(subprotocols, select_subprotocol, process_response)
        self.process_request = process_request
        self.open_timeout = open_timeout
        self.handler = handler
        self.listener_factory = listener_factory
        self.tracked = _Tracked()

    def protocol(self) -> _Protocol:
        return _Protocol(_ServerOpening(self))

    def open(self, websocket: WebSocket) -> None:
        tracked = self.tracked
        tracked.open.add(websocket)
        websocket._untrack = tracked.open
        if self.handler is not None:
            task = asyncio.get_running_loop().create_task(self._run_handler(websocket))
            tracked.tasks.add(task)
            task.add_done_callback(tracked.tasks.discard)
        websocket._start()

    async def _run_handler(self, websocket: WebSocket) -> None:
        assert self.handler is not None
        error: Exception | None = None
        try:
            await self.handler(websocket)
        except Exception as exc:  # noqa: BLE001 - the policy in handler_close() logs it
            error = exc
        finally:
            code, reason = handler_close(error, logger)
            with contextlib.suppress(Exception):
                await websocket.close(code, reason)
            self.tracked.open.discard(websocket)


class Server:
    """A listening WebSocket server; ``async with`` it, or call :meth:`close`."""

    def __init__(self, server: asyncio.Server, tracked: _Tracked) -> None:
        self._server = server
        self._tracked = tracked

    @property
    def port(self) -> int:
        """The port of the first listening socket (useful with port 0)."""
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def sockets(self) -> tuple[Any, ...]:
        """The listening sockets."""
        return tuple(self._server.sockets)

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        await self._server.serve_forever()

    async def close(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Stop listening, close every connection (1001: going away), and wait for the handlers to return.

        Connections still in the opening handshake are dropped.
        """
        tracked = self._tracked
        tracked.closing = True
        self._server.close()
        for transport in list(tracked.handshaking):
            transport.abort()
        await asyncio.gather(
            *(websocket.close(code, reason) for websocket in list(tracked.open)), return_exceptions=True
        )
        # asyncio.wait, not gather: if this wait is cancelled, the handlers' tasks are not.
        others = tracked.tasks - {asyncio.current_task()}
        if others:
            await asyncio.wait(others)
        await self._server.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()


async def serve(
    handler: Handler,
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    subprotocols: Sequence[str] = (),
    process_request: ProcessRequest | None = None,
    ssl: ssl_module.SSLContext | None = None,
    open_timeout: float | None = 10.0,
    http2: bool = False,
    select_subprotocol: SelectSubprotocol | None = None,
    process_response: ProcessResponse | None = None,
    unix_path: str | None = None,
    **options: Any,
) -> Server:
    """Listen on ``host:port`` and run ``await handler(websocket)`` for each connection.

    ``unix_path`` listens on that Unix domain socket instead (see :func:`unix_serve`).

    ``subprotocols`` are ours, in order of preference. ``process_request`` may
    answer any HTTP request with plain HTTP (see :data:`ProcessRequest`). The
    connection is closed (1000) when the handler returns, or (1011) when it
    raises. Options are those of :class:`~wsproto_core.drivers.Settings`.

    ``select_subprotocol(request)`` chooses the subprotocol instead of the
    ``subprotocols`` list (see :data:`~wsproto_core.drivers.SelectSubprotocol`);
    ``process_response(request, accept)`` may edit the 101 or answer with plain
    HTTP instead (see :data:`~wsproto_core.drivers.ProcessResponse`).
    Both apply to HTTP/1.1 upgrades and to HTTP/2 streams alike.

    ``http2=True`` (the ``http2`` extra) also serves WebSockets over HTTP/2
    (RFC 8441) on the same port, many per connection: with ``ssl``, ALPN
    chooses (``h2`` or ``http/1.1``; the context's ALPN protocols are set);
    without, a client that opens with the HTTP/2 preface gets HTTP/2 (h2c with
    prior knowledge). See :mod:`wsproto_core.drivers.http2`.
    """
    settings = Settings.from_options(options)
    config = _ServerConfig(
        settings,
        subprotocols=subprotocols,
        process_request=process_request,
        open_timeout=open_timeout,
        handler=handler,
        listener_factory=None,
        select_subprotocol=select_subprotocol,
        process_response=process_response,
    )
    protocol: Callable[[], asyncio.BaseProtocol] = config.protocol
    if http2:
        from .http2 import H2Server  # noqa: PLC0415 (the h2 library is the optional extra "http2")

        http2_server = H2Server(config)
        if ssl is not None:
            ssl.set_alpn_protocols(["h2", "http/1.1"])

        def protocol() -> asyncio.BaseProtocol:
            return http2_server.protocol(config.protocol())

    server = await _listen(protocol, host, port, ssl, unix_path)
    return Server(server, config.tracked)


async def unix_serve(handler: Handler, path: str, **kwargs: Any) -> Server:
    """:func:`serve` on the Unix domain socket ``path`` (a stale socket file there is replaced).

    The other arguments are those of :func:`serve`; ``Server.port`` has no meaning here.
    """
    return await serve(handler, unix_path=path, **kwargs)


async def _listen(
    protocol: Callable[[], asyncio.BaseProtocol],
    host: str | None,
    port: int,
    ssl: ssl_module.SSLContext | None,
    unix_path: str | None,
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    if unix_path is not None:
        return await loop.create_unix_server(protocol, unix_path, ssl=ssl)
    return await loop.create_server(protocol, host, port, ssl=ssl)


async def serve_listener(
    listener_factory: Callable[[], Listener],
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    subprotocols: Sequence[str] = (),
    process_request: ProcessRequest | None = None,
    ssl: ssl_module.SSLContext | None = None,
    open_timeout: float | None = 10.0,
    select_subprotocol: SelectSubprotocol | None = None,
    process_response: ProcessResponse | None = None,
    unix_path: str | None = None,
    **options: Any,
) -> Server:
    """Listen on ``host:port`` with the callback API: ``listener_factory()`` makes each connection's :class:`Listener`.

    No task per connection: the listener's methods run in the read callbacks.
    The other arguments are those of :func:`serve`.
    """
    config = _ServerConfig(
        Settings.from_options(options),
        subprotocols=subprotocols,
        process_request=process_request,
        open_timeout=open_timeout,
        handler=None,
        listener_factory=listener_factory,
        select_subprotocol=select_subprotocol,
        process_response=process_response,
    )
    server = await _listen(config.protocol, host, port, ssl, unix_path)
    return Server(server, config.tracked)
