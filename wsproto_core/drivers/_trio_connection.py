"""One trio WebSocket connection: what the application calls.

:mod:`wsproto_core.drivers.trio` is the public face; the stream's reading and
writing live in ``_trio_io``, the opening of connections in ``_trio_client``
and ``_trio_server``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Generator, Iterable
from typing import Any

import trio

from ..errors import LocalProtocolError
from ..events import BytesMessage, Request, TextMessage
from ..managed import ManagedConnection
from ..prepared import PreparedMessage
from ..state import ConnectionState
from ._common import (
    FRAGMENTS_IN_PROGRESS,
    UNFINISHED_MESSAGE,
    ConnectionClosed,
    Fragments,
    Settings,
    async_pieces,
)
from ._streaming import MessageStream, take_message
from ._trio_io import WebSocketIO

__all__ = ["MessageStream", "PongWaiter", "WebSocket"]

#: Sends in a row that did not yield before one does (see WebSocket.send).
_SENDS_PER_YIELD = 16


class PongWaiter:
    """What :meth:`WebSocket.ping` returns: ``await`` it for the Pong.

    It raises :class:`ConnectionClosed` if the connection closes first.
    """

    def __init__(self) -> None:
        self._event = trio.Event()
        self._error: ConnectionClosed | None = None

    def is_set(self) -> bool:
        """Whether the Pong arrived (or the connection closed)."""
        return self._event.is_set()

    async def wait(self) -> None:
        """Wait for the Pong."""
        await self._event.wait()
        if self._error is not None:
            raise self._error

    def __await__(self) -> Generator[Any, None, None]:
        return self.wait().__await__()

    def _resolve(self, error: ConnectionClosed | None = None) -> None:
        self._error = error
        self._event.set()


class WebSocket(WebSocketIO):
    """One open WebSocket connection.

    Created by :func:`connect` and :func:`serve`; use :meth:`send`, :meth:`recv`
    (or ``async for``), :meth:`ping` and :meth:`close`.

    Attributes: ``subprotocol`` (the negotiated one or ``None``), ``request``
    (server side: the client's ``Request``, with ``target`` and headers),
    ``close_code`` and ``close_reason`` (once closed).
    """

    # One per open connection in a server: slots keep an idle one small.
    __slots__ = ("_fragmenting", "_sends_unyielded")

    def __init__(
        self,
        stream: trio.abc.Stream,
        managed: ManagedConnection,
        settings: Settings,
        *,
        subprotocol: str | None,
        request: Request | None = None,
    ) -> None:
        # Pieces reach the queue as they arrive, for recv_streaming(); recv() joins them.
        managed.assemble_messages = False
        # A list, not a deque: it holds at most max_queue messages, and an
        # empty list is a tenth of an empty deque's size.
        super().__init__(managed, settings, [], subprotocol, request)
        self._set_up_io(stream)
        self._sends_unyielded = 0
        #: send_fragments() is sending a message: other sends must wait for it.
        self._fragmenting = False

    # ------------------------------------------------------------- application

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a text (``str``) or binary message; return once it is written."""
        if self._fragmenting:
            raise LocalProtocolError(FRAGMENTS_IN_PROGRESS)
        await trio.lowlevel.checkpoint_if_cancelled()
        self._queue_message(message, trio.current_time())
        await self._flush()
        # A write that the kernel took at once did not yield: let other tasks
        # run now and then, so that a loop that only sends cannot starve them
        # (recv resets the count whenever it waits).
        self._sends_unyielded += 1
        if self._sends_unyielded >= _SENDS_PER_YIELD:
            self._sends_unyielded = 0
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def send_fragments(self, fragments: Iterable[str | bytes] | AsyncIterable[str | bytes]) -> None:
        """Send one message from its pieces (an iterable or an async iterable), each in a frame of its own.

        As the asyncio driver's
        :meth:`~wsproto_core.drivers.asyncio.WebSocket.send_fragments`: all
        ``str`` or all bytes; :meth:`send` raises meanwhile; a failure halfway
        closes the connection with 1011.
        """
        message = Fragments(fragments)
        self._raise_if_closed()
        message.begin(self)
        try:
            # Closed here, not by the garbage collector, when a piece is refused half-way.
            async with contextlib.aclosing(async_pieces(fragments)) as pieces:
                async for piece in pieces:
                    await self._send_event(message.piece(piece))
            if (end := message.end()) is not None:
                await self._send_event(end)
        finally:
            if message.release(self) and not self.closed:
                # The peer holds the start of a message that will never end.
                with trio.CancelScope(shield=True):
                    await self.close(1011, UNFINISHED_MESSAGE)

    async def _send_event(self, event: TextMessage | BytesMessage) -> None:
        self._raise_if_closed()
        self._managed.send(event, trio.current_time())
        await self._flush()

    async def recv(self) -> str | bytes:
        """Wait for the next message; raise :class:`ConnectionClosed` once closed.

        Raises ``LocalProtocolError`` while a :meth:`recv_streaming` is half-way through the next message.
        """
        messages = self._messages
        while True:
            if messages:
                message = take_message(messages)
                if self._reader_waits:
                    # A message taken, or one now assembled here: either frees the reader.
                    self._wake()
                if message is not None:
                    return message
            if self.closed:
                raise self._closed_error()
            self._sends_unyielded = 0
            await self._wait_for_data()

    def recv_streaming(self) -> MessageStream:
        """The next message in pieces as they arrive, without assembling it: ``async for piece in ...``.

        Pieces are ``str`` for a text message (decoded as they arrive, UTF-8
        checked across piece boundaries) and ``bytes`` for a binary one; none
        is empty, except the one piece of an empty message. A frame, or what
        one read brought of it, is a piece (with permessage-deflate, its
        inflated output); ``max_message_size`` counts the whole message.
        Reading pauses while ``max_queue`` pieces wait untaken. The loop raises
        :class:`ConnectionClosed` if the connection closes before the message
        ended. Leaving it early (or :meth:`MessageStream.aclose`) skips the rest
        of the message; until then :meth:`recv` raises ``LocalProtocolError``.
        """
        return MessageStream(self)

    def _piece_taken(self) -> None:
        if self._reader_waits:
            self._wake()

    async def _wait_for_piece(self) -> None:
        if self.closed:
            raise self._closed_error()
        self._sends_unyielded = 0
        await self._wait_for_data()

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

    async def ping(self, payload: bytes | None = None) -> PongWaiter:
        """Send a Ping; return a :class:`PongWaiter` that completes when its Pong arrives."""
        waiter = PongWaiter()
        self._queue_ping(payload, waiter, trio.current_time())
        self._reschedule()
        # Its Pong is read by the reader task, unless the application reads first.
        self._hand_back()
        await self._flush()
        return waiter

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (closing handshake, then the transport) and wait for it."""
        if self._managed.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            self._managed.close(code, reason or None, trio.current_time())
            self._reschedule()
            # Wake the reader: it reads the peer's reply even if the application left the queue full.
            self._wake()
            await self._flush()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the transport is closed."""
        self._hand_back()
        while not self.closed:
            await self._wait()

    @property
    def latency(self) -> float:
        """Seconds from the latest answered Ping (keepalive or :meth:`ping`) to its Pong; 0.0 before one."""
        return self._managed.latency

    @property
    def remote_address(self) -> Any:
        """The peer's address, as the socket reports it."""
        stream: Any = self._stream
        while isinstance(stream, trio.SSLStream):
            stream = stream.transport_stream
        return stream.socket.getpeername()

    # ---------------------------------------------------------------- fan-out
    # What wsproto_core.drivers.broadcast needs: how much waits to be sent, a
    # send that queues without writing, a write and a close that never wait.

    @property
    def outgoing_buffer_size(self) -> int:
        """How many bytes were sent on this connection but not yet taken by the OS."""
        return self._managed.bytes_to_send + self._unsent

    def queue_prepared(self, message: PreparedMessage) -> None:
        """Queue a :class:`~wsproto_core.PreparedMessage` without writing it; :meth:`write_queued` writes it.

        For :func:`~wsproto_core.drivers.broadcast.broadcast`. Raises
        :class:`ConnectionClosed` when the connection can no longer send.
        """
        if self.close_code is not None:
            raise self._closed_error()
        try:
            # Hot path (once per recipient): the connection's own state check
            # refuses after a Close, instead of checking here first.
            self._managed.send_prepared(message)
        except LocalProtocolError:
            self._raise_if_closed()
            raise

    def write_queued(self) -> None:
        """Hand what is queued to the socket without waiting.

        What the kernel does not take at once is written by a task of its
        own (a trio system task), before anything sent after it; meanwhile
        it counts in :attr:`outgoing_buffer_size`.
        """
        self._write_without_waiting()

    def _close_soon(self, code: int, reason: str) -> None:
        """Start the closing handshake without waiting: the Close goes after what is queued."""
        if self._managed.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            self._managed.close(code, reason or None, trio.current_time())
            self._reschedule()
            self._wake()
            self.write_queued()
