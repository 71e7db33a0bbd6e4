"""The asyncio ``WebSocket``: the shared :class:`~wsproto_core.drivers._websocket.WebSocketState` on a transport.

What is not I/O (queueing sends and Pings, Pong waiters, the record of the
close) is the shared state's; this module adds reading in the protocol's
callbacks, writing, the timer, backpressure and waiting (see the package's
docstring for the design).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Any, cast

from ...errors import LocalProtocolError
from ...events import Message, Pong, Request, TextMessage
from ...managed import ManagedConnection
from ...prepared import PreparedMessage
from ...state import ConnectionState
from .._common import (
    FRAGMENTS_IN_PROGRESS,
    READ_INTO_MIN,
    UNFINISHED_MESSAGE,
    ConnectionClosed,
    Fragments,
    Settings,
    async_pieces,
    send_buffer_full,
)
from .._streaming import IncomingMessage, MessageStream, queue_full, receive_piece, take_message
from .._websocket import WebSocketState
from .protocol import DRIVER_CONTEXT, ConnectionProtocol, PayloadReader, read_buffer, writes_scattered

#: Received bytes that may wait to be parsed (the ordering rule) before the
#: transport stops reading.
PARSE_HOLD_LIMIT = 256 * 1024

#: Replies to pipelined messages are written together up to this many bytes
#: (with the transport's own buffer); beyond it, ``send`` writes at once.
COALESCE_LIMIT = 65536

logger = logging.getLogger("wsproto_core.drivers.asyncio")

# The bits of WebSocket._flags.
#: receive_data(None) was fed: the stream ended.
_ENDED = 1
#: A read (or the start) is being handled: it writes what was queued when done.
_IN_READ = 2
#: _soon() is scheduled for the next loop iteration.
_SOON = 4
#: The transport was told to pause reading.
_READING_PAUSED = 8
#: The transport's buffer is above its high-water mark.
_WRITING_PAUSED = 16
#: Closing: the peer's Close must be read even with the queue full.
_CLOSING = 32
#: A large frame's payload is read straight into its buffer: the transport
#: calls a PayloadReader (see _read_into_payload).
_GATHERING = 64

#: The message queue of every connection with a Listener, which queues no
#: message (a tuple: appending to it would fail loudly).
_NO_QUEUE = cast("list[str | bytes | IncomingMessage]", ())


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


class PongWaiter(asyncio.Future[None]):
    """What :meth:`WebSocket.ping` returns: a Future, done when its Pong arrives.

    It raises :class:`ConnectionClosed` if the connection closes first.
    """

    def _resolve(self, error: ConnectionClosed | None = None) -> None:
        if self.done():
            return
        if error is None:
            self.set_result(None)
        else:
            self.set_exception(error)
            # Nobody may be awaiting it; do not warn about an unretrieved error.
            self.exception()


class WebSocket(asyncio.Protocol, WebSocketState):
    """One open WebSocket connection.

    Created by :func:`connect`, :func:`serve` and :func:`serve_listener`; use
    :meth:`send`, :meth:`recv` (or ``async for``), :meth:`ping` and
    :meth:`close`, or with a :class:`Listener`, :meth:`send_nowait`.

    Attributes: ``subprotocol`` (the negotiated one or ``None``), ``request``
    (server side: the client's ``Request``, with ``target`` and headers),
    ``close_code`` and ``close_reason`` (once closed), and ``closed``
    (whether the connection is closed).
    """

    __slots__ = (
        "__weakref__",
        "_done",
        "_drain_waiter",
        "_flags",
        "_fragmenting",
        "_listener",
        "_timer",
        "_timer_deadline",
        "_transport",
        "_untrack",
        "_waiter",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        protocol: ConnectionProtocol,
        managed: ManagedConnection,
        settings: Settings,
        *,
        subprotocol: str | None,
        request: Request | None = None,
        listener: Listener | None = None,
    ) -> None:
        # A list, not a deque: it holds at most max_queue messages, and an
        # empty list is a tenth of an empty deque's size. A Listener's
        # connection queues none: it shares an immutable empty one.
        super().__init__(managed, settings, [] if listener is None else _NO_QUEUE, subprotocol, request)
        if listener is None:
            # Pieces reach the queue as they arrive, for recv_streaming(); recv()
            # joins them. A Listener gets whole messages.
            managed.assemble_messages = False
        self._transport = transport
        #: _ENDED, _IN_READ, _SOON, _READING_PAUSED, _WRITING_PAUSED and
        #: _CLOSING (one int: an idle connection is smaller).
        self._flags = _WRITING_PAUSED if protocol.writing_paused else 0
        self._listener = listener
        #: The Future a ``recv()`` waits on, only while one waits.
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        #: send_fragments() is sending a message: other sends must wait for it.
        self._fragmenting = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._done: asyncio.Future[None] | None = None
        #: The server's set of open WebSockets, which forgets this one once closed.
        self._untrack: set[Any] | None = None

    def _start(self, protocol: ConnectionProtocol) -> None:
        """Take over the transport from ``protocol``: parse what came with the handshake, start the timer."""
        protocol.opened(self)
        if protocol.writing_paused:
            self._flags |= _WRITING_PAUSED
        # The transport calls this WebSocket directly from now on (one call
        # less per read, and one object less per connection), where it can.
        with contextlib.suppress(NotImplementedError):
            self._transport.set_protocol(self)
        self._flags |= _IN_READ
        try:
            if self._listener is not None:
                self._call_listener(self._listener.on_open)
            self._set_timer()
            self._parse(asyncio.get_running_loop().time())
            self._after_parse()
        finally:
            self._flags &= ~_IN_READ

    # ------------------------------------------------------------- application

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a text (``str``) or binary message; wait only while the transport's buffer is full."""
        if self._fragmenting:
            raise LocalProtocolError(FRAGMENTS_IN_PROGRESS)
        self._queue_message(message)
        if (self._messages or self._managed.held) and (
            self._managed.bytes_to_send + self._transport.get_write_buffer_size() < COALESCE_LIMIT
        ):
            # More received messages wait for the application (a pipelining
            # peer): write this reply together with theirs, when the
            # application next waits in recv(), instead of one write per
            # message. Nothing waits longer than the next loop iteration.
            self._schedule_soon()
            return
        self._write_queued()
        if self._flags & _WRITING_PAUSED:
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
        if self._fragmenting:
            raise LocalProtocolError(FRAGMENTS_IN_PROGRESS)
        if send_buffer_full(self._settings, self._managed.bytes_to_send + self._transport.get_write_buffer_size()):
            self._raise_if_closed()
            self._abort()
            self.close_reason = "outgoing buffer full: the peer does not read"
            raise self._closed_error()
        self._queue_message(message)
        if not self._flags & _IN_READ:
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
        if self._fragmenting:
            raise LocalProtocolError(FRAGMENTS_IN_PROGRESS)
        self._raise_if_closed()
        message.begin(self)
        try:
            # Closed here, not by the garbage collector, when a piece is refused half-way.
            async with contextlib.aclosing(async_pieces(fragments)) as pieces:
                async for piece in pieces:
                    event = message.piece(piece)
                    self._raise_if_closed()
                    self._managed.send(event, asyncio.get_running_loop().time())
                    await self._flush()
            if (end := message.end()) is not None:
                self._raise_if_closed()
                self._managed.send(end, asyncio.get_running_loop().time())
                await self._flush()
        finally:
            if message.release(self) and self.close_code is None:
                # The peer holds the start of a message that will never end.
                self._start_closing(1011, UNFINISHED_MESSAGE)

    async def recv(self) -> str | bytes:
        """Wait for the next message; raise :class:`ConnectionClosed` once closed.

        Raises ``LocalProtocolError`` while a :meth:`recv_streaming` is half-way through the next message.
        """
        messages = self._messages
        while True:
            if messages:
                message = messages[0]
                if message.__class__ is not IncomingMessage:
                    # Hot path: a message that came whole.
                    del messages[0]
                    break
                # One that arrives in pieces: joined once its last came.
                assembled = take_message(messages)
                if assembled is not None:
                    message = assembled
                    break
                if self._flags & _READING_PAUSED:
                    # Assembled here, its pieces no longer count against max_queue.
                    self._update_reading()
            await self._wait_for_piece()
        self._piece_taken()
        return message  # type: ignore[return-value]

    def recv_streaming(self) -> MessageStream:
        """The next message in pieces as they arrive, without assembling it: ``async for piece in ...``.

        Pieces are ``str`` for a text message (decoded as they arrive, UTF-8
        checked across piece boundaries) and ``bytes`` for a binary one; none
        is empty, except the one piece of an empty message. A frame, or what
        one read brought of it, is a piece (with permessage-deflate, its
        inflated output); ``max_message_size`` counts the whole message.
        Reading pauses while ``max_queue`` pieces wait untaken. The loop raises
        :class:`ConnectionClosed` if the connection closes before the message
        ended. Leaving it early (or ``aclose()`` on it) skips the rest of the
        message; until then :meth:`recv` raises ``LocalProtocolError``. The
        same over HTTP/2.
        """
        if self._listener is not None:
            raise LocalProtocolError("This connection hands its messages to its Listener; recv_streaming() gets none.")
        return MessageStream(self)

    def _piece_taken(self) -> None:
        """A message or a piece left the queue: the ordering rule and backpressure may let reading go on."""
        if not self._messages and self._managed.held:
            # Whatever the application does next, the rest of the read is
            # parsed by the next loop iteration (the ordering rule).
            self._schedule_soon()
        if self._flags & _READING_PAUSED:
            self._update_reading()

    async def _wait_for_piece(self) -> None:
        """Wait until something is received (or parse on: the ordering rule); raise once closed."""
        if self.close_code is not None:
            raise self._closed_error()
        if self._listener is not None:
            raise LocalProtocolError("This connection hands its messages to its Listener; recv() gets none.")
        if self._managed.held:
            # The application took every message before the rest of the
            # read: parse on, here (see the ordering rule in the package's docstring).
            self._parse()
            if not self._managed.held:
                self._after_parse()
            return
        if self._managed.bytes_to_send:
            self._write_queued()
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        """``async for``: the next message; the loop ends when the connection closes normally (1000, 1001)."""
        # One coroutine per message (an async generator would add a frame to resume).
        try:
            return await self.recv()
        except ConnectionClosed as closed:
            if closed.normal:
                raise StopAsyncIteration from None
            raise

    async def ping(self, payload: bytes | None = None) -> Awaitable[None]:
        """Send a Ping; return an awaitable (a :class:`PongWaiter`) that completes when its Pong arrives."""
        loop = asyncio.get_running_loop()
        waiter = PongWaiter(loop=loop)
        self._queue_ping(payload, waiter, loop.time())
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
            self._managed.close(code, reason or None, asyncio.get_running_loop().time())
            self._set_timer()
            self._write_queued()
        # The peer's Close must be read even if unread messages fill the queue.
        self._flags |= _CLOSING
        if self.close_code is None:
            if self._managed.held:
                self._parse()
            self._after_parse()

    async def wait_closed(self) -> None:
        """Wait until the transport is closed."""
        if self.close_code is not None:
            return
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._done)

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

    # ------------------------------------------- the transport's protocol callbacks
    # (from the transport itself once _start() took it over, or through the
    # ConnectionProtocol of an HTTP/2 stream)

    def get_buffer(self, sizehint: int) -> memoryview:
        """The transport's callback: where to read (this thread's shared read buffer)."""
        return read_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        """The transport's callback: ``nbytes`` were read into the buffer."""
        # The parser copies what it keeps, at its size.
        if self._flags or self.close_code is not None:
            self._received(read_buffer()[:nbytes])
        else:
            self._read(read_buffer()[:nbytes])

    def data_received(self, data: bytes) -> None:
        """The transport's callback (a transport that does not read into :meth:`get_buffer`): ``data`` was read."""
        if self._flags or self.close_code is not None:
            self._received(data)
        else:
            self._read(data)

    def eof_received(self) -> bool:
        self._received(None)
        # Keep the transport to write our last frames (our Close answers the
        # peer's); _finish() closes it. TLS transports cannot stay half-open.
        return self._transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self._received(None)
        self._connection_lost()

    def pause_writing(self) -> None:
        self._flags |= _WRITING_PAUSED
        self._update_reading()

    def resume_writing(self) -> None:
        self._flags &= ~_WRITING_PAUSED
        self._writing_resumed()

    # ----------------------------------------------------------------- plumbing

    def _write_queued(self) -> bool:
        """Hand what the connection queued to the transport; return whether there was any."""
        parts = self._managed.take_data_to_send()
        if not parts or self._transport.is_closing():
            return False
        if len(parts) == 1:
            self._transport.write(parts[0])
        elif writes_scattered(self._transport):
            # A large payload is a part of its own (ManagedConnection.send_message):
            # the transport sends it from where it is, with its header and the rest.
            self._transport.writelines(parts)
        else:
            self._transport.write(b"".join(parts))
        return True

    def _schedule_soon(self) -> None:
        if not self._flags & _SOON:
            self._flags |= _SOON
            asyncio.get_running_loop().call_soon(self._soon, context=DRIVER_CONTEXT)

    def _soon(self) -> None:
        """Write the replies held back for one write; parse on once the application took every message."""
        self._flags &= ~_SOON
        self._write_queued()
        if self._managed.held and not self._messages and self.close_code is None:
            self._parse()
            if not self._managed.held:
                self._after_parse()

    async def _flush(self) -> None:
        self._write_queued()
        if self._flags & _WRITING_PAUSED:
            await self._drain()

    async def _drain(self) -> None:
        """Wait until the transport's buffer is below its low-water mark, or the connection ended."""
        while self._flags & _WRITING_PAUSED and self.close_code is None:
            if self._drain_waiter is None:
                self._drain_waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._drain_waiter)

    def _writing_resumed(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._update_reading()

    def _parse(self, now: float | None = None) -> None:
        """Deliver received messages; with the handler API, stop after one that has more bytes behind it.

        Hot path: runs once per read.
        """
        listener = self._listener
        for event in self._managed.events(now if now is not None else asyncio.get_running_loop().time()):
            if isinstance(event, Message):
                if listener is not None:
                    try:
                        listener.on_message(self, event.data)
                    except Exception:
                        logger.exception("WebSocket listener failed")
                        self._start_closing(1011, "internal error")
                    continue
                if event.message_finished and self._incoming is None:
                    # Hot path: a message that came whole.
                    self._messages.append(event.data)
                else:
                    self._incoming = receive_piece(
                        self._messages,
                        self._incoming,
                        event.data,
                        text=isinstance(event, TextMessage),
                        last=event.message_finished,
                    )
                waiter = self._waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif isinstance(event, Pong):
                self._pong_received()
        if self._timer_deadline is not None or self._managed.next_deadline is not None:
            self._set_timer()
        if self._flags & _GATHERING or self._managed.buffered_bytes:
            self._read_into_payload()

    def _read_into_payload(self) -> None:
        """Have the transport read into the payload buffer of a large frame while the connection has one.

        The rest of such a frame then costs no copy but the kernel's (and,
        on a server, unmasking where it lies). The transport calls a
        :class:`.protocol.PayloadReader` meanwhile: a plain ``Protocol`` cannot say
        where to read, and this one does not pay two calls per read otherwise.
        """
        view = self._managed.payload_buffer()
        # The rest of a small piece is copied from the reads as they come: a
        # copy that costs less than a read of its own.
        gathering = view is not None and (len(view) >= READ_INTO_MIN or bool(self._flags & _GATHERING))
        if gathering is bool(self._flags & _GATHERING) or self.close_code is not None:
            return
        try:
            self._transport.set_protocol(PayloadReader(self) if gathering else self)
        except NotImplementedError:
            # An HTTP/2 stream's: its reads are copied into the payload buffer instead.
            return
        self._flags ^= _GATHERING

    def _call_listener(self, callback: Callable[..., None], *arguments: Any) -> None:
        try:
            callback(self, *arguments)
        except Exception:
            logger.exception("WebSocket listener failed")
            self._start_closing(1011, "internal error")

    def _received(self, data: bytes | memoryview | None, payload_bytes: int = 0) -> None:
        """The protocol's callback: ``data`` read, or ``None`` once the stream ended.

        Or ``payload_bytes`` were read into the connection's payload buffer (``data`` is then ``None``).
        """
        if self._flags & _ENDED or self.close_code is not None:
            return
        if data is None and not payload_bytes:
            self._flags |= _ENDED
        self._flags |= _IN_READ
        try:
            if payload_bytes:
                self._managed.payload_received(payload_bytes)
            else:
                self._managed.receive_data(data)
            self._parse_received()
        except Exception:
            # A bug of ours: in an event loop callback it would leave the
            # connection hanging, so end it (the parser itself never raises).
            logger.exception("WebSocket connection failed")
            self._abort()
        finally:
            self._flags &= ~_IN_READ

    def _parse_received(self) -> None:
        """Parse what was fed to the connection (unless the ordering rule holds it), then write and pause."""
        if self._flags & _CLOSING or not self._managed.held:
            self._parse(asyncio.get_running_loop().time())
        self._after_parse()

    def _read(self, data: bytes | memoryview) -> None:
        """Hot path of a read while nothing is paused, pending or ending.

        The whole messages that the read starts with skip the parser, its
        events and the clock; the parser takes the rest, if any.
        """
        self._flags = _IN_READ
        try:
            managed = self._managed
            messages = managed.receive_messages(data)
            listener = self._listener
            if listener is not None:
                for message in messages:
                    if self.close_code is not None:
                        # A callback ended the connection (and on_close ran): no more messages.
                        break
                    try:
                        listener.on_message(self, message)
                    except Exception:
                        logger.exception("WebSocket listener failed")
                        self._start_closing(1011, "internal error")
                if not managed.buffered_bytes:
                    if managed.bytes_to_send:
                        self._write_queued()
                    if self._flags == _IN_READ and not managed.should_close_transport:
                        # Hot path: the replies are written, and nothing paused or ended.
                        return
                    self._after_parse()
                    return
            elif messages:
                self._messages += messages
                waiter = self._waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            if managed.buffered_bytes:
                self._parse_received()
            else:
                # Nothing for the parser: no event, no timer to move.
                self._after_parse()
        except Exception:
            # As in _received: a bug of ours must not leave the connection hanging.
            logger.exception("WebSocket connection failed")
            self._abort()
        finally:
            self._flags &= ~_IN_READ

    def _connection_lost(self) -> None:
        if self.close_code is None:
            self._flags |= _CLOSING
            self._finish()

    def _after_parse(self) -> None:
        managed = self._managed
        if managed.bytes_to_send:
            self._write_queued()
        if managed.should_close_transport and (self._flags & _CLOSING or not managed.held):
            self._finish()
        elif (
            self._flags & (_READING_PAUSED | _WRITING_PAUSED)
            or len(self._messages) >= self._settings.max_queue
            or self._incoming is not None
            or managed.held
        ):
            # Only then may reading have to pause or resume (see _update_reading).
            self._update_reading()

    def _update_reading(self) -> None:
        """Pause or resume reading: backpressure from the application, and from the peer."""
        if self.close_code is not None:
            return
        pause = not self._flags & _CLOSING and (
            queue_full(self._messages, self._settings.max_queue)
            or bool(self._flags & _WRITING_PAUSED)
            or (self._managed.held and self._managed.buffered_bytes >= PARSE_HOLD_LIMIT)
        )
        if pause is not bool(self._flags & _READING_PAUSED):
            self._flags ^= _READING_PAUSED
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
        if deadline is not None and self.close_code is None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer, context=DRIVER_CONTEXT)

    def _on_timer(self) -> None:
        managed = self._managed
        deadline = self._timer_deadline
        self._timer = None
        self._timer_deadline = None
        now = asyncio.get_running_loop().time()
        # The loop runs a timer up to its clock resolution early; it is due.
        managed.handle_timers(now if deadline is None else max(now, deadline))
        self._write_queued()
        if managed.should_close_transport and self.close_code is None:
            self._abort()
        else:
            self._set_timer()

    def _abort(self) -> None:
        """Drop the connection: no ordering to keep, nothing more to read."""
        self._flags |= _CLOSING
        self._transport.abort()
        self._received(None)
        if self.close_code is None:
            self._finish()

    def _finish(self) -> None:
        pong_waiters = self._record_close()
        for waiter in (self._waiter, self._drain_waiter, self._done):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self._drain_waiter = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if pong_waiters:
            error = self._closed_error()
            for pong_waiter in pong_waiters:
                pong_waiter._resolve(error)
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


class BufferedWebSocket(WebSocket, asyncio.BufferedProtocol):
    """A :class:`WebSocket` that its transport reads into (:func:`.protocol.read_buffer`).

    What asyncio's own loops get: their plain-``Protocol`` reads allocate a
    new 256 KiB ``bytes`` each, which costs page faults (see ``read_buffer``).
    uvloop reads into its own buffer and hands over a ``bytes`` of what it
    read, which is cheaper than the two calls of a ``BufferedProtocol``.
    """

    __slots__ = ()


def websocket_class(loop: asyncio.AbstractEventLoop) -> type[WebSocket]:
    """The WebSocket class whose reads cost least on ``loop``."""
    return BufferedWebSocket if isinstance(loop, asyncio.BaseEventLoop) else WebSocket
