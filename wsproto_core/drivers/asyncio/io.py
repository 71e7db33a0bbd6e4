"""The half of the asyncio ``WebSocket`` that its transport and the event loop drive.

Reading in the protocol's callbacks (:meth:`WebSocketIO.data_received`, the hot path,
and the parser behind it), writing, the timer, backpressure in both
directions, and the end of the connection. The application's half (sending,
``recv()``, closing) is :class:`~wsproto_core.drivers.asyncio.websocket.WebSocket`,
built on this one; what is not I/O at all is the drivers' shared
:class:`~wsproto_core.drivers._websocket.WebSocketState`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol, cast

from ...events import Message, Pong, Request
from ...managed import ManagedConnection
from ...state import ConnectionState
from .._common import READ_INTO_MIN, Settings
from .._streaming import IncomingMessage, queue_full
from .._websocket import WebSocketState
from .protocol import DRIVER_CONTEXT, ConnectionProtocol, PayloadReader, read_buffer, writes_scattered


class ListenerCalls(Protocol):
    """What this half calls on a :class:`~.websocket.Listener` (which takes the whole WebSocket)."""

    def on_open(self, websocket: Any, /) -> None: ...

    def on_message(self, websocket: Any, message: str | bytes, /) -> None: ...

    def on_close(self, websocket: Any, /) -> None: ...


#: Received bytes that may wait to be parsed (the ordering rule) before the
#: transport stops reading.
PARSE_HOLD_LIMIT = 256 * 1024

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


class WebSocketIO(asyncio.Protocol, WebSocketState):
    """A WebSocket as its transport sees it: the protocol callbacks and what they drive (see the module docstring)."""

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
        listener: ListenerCalls | None = None,
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

    # ------------------------------------------- the transport's protocol callbacks
    # (from the transport itself once _start() took it over, or through the
    # ConnectionProtocol of an HTTP/2 stream)

    def get_buffer(self, sizehint: int) -> memoryview:
        """The transport's callback: where to read (this thread's shared read buffer)."""
        return read_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        """The transport's callback: ``nbytes`` were read into the buffer."""
        # The parser copies what it keeps, at its size.
        self.data_received(read_buffer()[:nbytes])

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
                self._queue_received(event)
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

    def data_received(self, data: bytes | memoryview) -> None:
        """The transport's callback (a transport that does not read into :meth:`get_buffer`): ``data`` was read.

        Hot path, while nothing is paused, pending or ending: the whole
        messages that the read starts with skip the parser, its events and the
        clock; the parser takes the rest, if any.
        """
        if self._flags or self.close_code is not None:
            self._received(data)
            return
        self._flags = _IN_READ
        try:
            managed = self._managed
            listener = self._listener
            if listener is not None:
                # The listener answers inside the read, so there is no ordering
                # rule to keep: the connection's own fast path, one call less.
                connection = managed.connection
                for message in connection.receive_messages(data):
                    if self.close_code is not None:
                        # A callback ended the connection (and on_close ran): no more messages.
                        break
                    try:
                        listener.on_message(self, message)
                    except Exception:
                        logger.exception("WebSocket listener failed")
                        self._start_closing(1011, "internal error")
                if not connection.buffered_bytes:
                    if managed.bytes_to_send:
                        self._write_queued()
                    if self._flags == _IN_READ and not managed.should_close_transport:
                        # Hot path: the replies are written, and nothing paused or ended.
                        return
                    self._after_parse()
                    return
            elif messages := managed.receive_messages(data):
                self._messages += messages
                waiter = self._waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            if managed.connection.buffered_bytes:
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
