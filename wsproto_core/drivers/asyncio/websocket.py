"""The asyncio ``WebSocket``: what the application calls, and the :class:`Listener` of the callback API.

The transport's half (reading, writing, the timer, backpressure, the end) is
:class:`~wsproto_core.drivers.asyncio.io.WebSocketIO`, which this class
extends with sending, receiving, Pings and closing (see the package's
docstring for the design).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, Awaitable, Iterable
from typing import Any

from ...errors import LocalProtocolError
from ...prepared import PreparedMessage
from .._common import (
    FRAGMENTS_IN_PROGRESS,
    UNFINISHED_MESSAGE,
    ConnectionClosed,
    Fragments,
    async_pieces,
)
from .._streaming import IncomingMessage, MessageStream, take_message
from .io import _IN_READ, _READING_PAUSED, _WRITING_PAUSED, WebSocketIO
from .protocol import ConnectionProtocol

#: Replies to pipelined messages are written together up to this many bytes
#: (with the transport's own buffer); beyond it, ``send`` writes at once.
COALESCE_LIMIT = 65536


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


class WebSocket(WebSocketIO):
    """One open WebSocket connection.

    Created by :func:`connect`, :func:`serve` and :func:`serve_listener`; use
    :meth:`send`, :meth:`recv` (or ``async for``), :meth:`ping` and
    :meth:`close`, or with a :class:`Listener`, :meth:`send_nowait`.

    Attributes: ``subprotocol`` (the negotiated one or ``None``), ``request``
    (server side: the client's ``Request``, with ``target`` and headers),
    ``close_code`` and ``close_reason`` (once closed), and ``closed``
    (whether the connection is closed).
    """

    __slots__ = ()

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
        limit = self._settings.max_send_buffer
        if limit is not None and self._managed.bytes_to_send + self._transport.get_write_buffer_size() >= limit:
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
            # Hot path: wait here, without a coroutine of _wait_for_piece()'s.
            waiter = self._piece_waiter()
            if waiter is not None:
                await waiter
        if self._flags & _READING_PAUSED or (not messages and self._managed.held):
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
        waiter = self._piece_waiter()
        if waiter is not None:
            await waiter

    def _piece_waiter(self) -> asyncio.Future[None] | None:
        """The Future that something received completes; ``None`` if the parser went on instead.

        Raises once closed. The parser goes on when the ordering rule held
        the rest of a read until the application took every message. The
        Future stays in ``_waiter`` once done (or cancelled with its ``recv()``):
        the next wait replaces it, and nothing completes a done one.
        """
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
            return None
        if self._managed.bytes_to_send:
            self._write_queued()
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        return waiter

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
