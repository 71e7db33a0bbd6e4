"""One WebSocket connection on a blocking socket: what the application calls.

:mod:`wsproto_core.drivers.sync` is the public face; the socket's reading and
writing live in ``_sync_io``, the opening of connections in ``_sync_client``
and ``_sync_server``.
"""

from __future__ import annotations

import socket
import ssl as ssl_module
import time
from collections import deque
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

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
)
from ._streaming import END, WAIT, IncomingMessage, PieceReader, message_ready, piece_ready, take_message
from ._sync_io import WebSocketIO
from .clock import MONOTONIC, Clock

__all__ = ["PongWaiter", "WebSocket"]

#: send() without blocking on a blocking socket (not on every platform: there, broadcast's writes go to a thread).
_DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)


class PongWaiter:
    """What :meth:`WebSocket.ping` returns: :meth:`wait` for the Pong.

    ``wait`` raises :class:`ConnectionClosed` if the connection closes first.
    """

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._done = False
        self._error: ConnectionClosed | None = None

    def is_set(self) -> bool:
        """Whether the Pong arrived (or the connection closed)."""
        return self._done

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the Pong; return ``False`` if ``timeout`` seconds passed first."""
        self._websocket._read_until(self.is_set, self._websocket._deadline_after(timeout))
        if self._error is not None:
            raise self._error
        return self._done

    def _resolve(self, error: ConnectionClosed | None = None) -> None:
        self._error = error
        self._done = True


class WebSocket(WebSocketIO):
    """One open WebSocket connection.

    Created by :func:`connect` and :func:`serve`; use :meth:`send`, :meth:`recv`
    (or ``for``), :meth:`ping` and :meth:`close`, from any thread. ``with``
    closes it.

    Attributes: ``subprotocol`` (the negotiated one or ``None``), ``request``
    (server side: the client's ``Request``, with ``target`` and headers),
    ``close_code`` and ``close_reason`` (once closed).
    """

    _messages: deque[str | bytes | IncomingMessage]

    def __init__(
        self,
        sock: socket.socket,
        managed: ManagedConnection,
        settings: Settings,
        *,
        subprotocol: str | None,
        request: Request | None = None,
        clock: Clock = MONOTONIC,
    ) -> None:
        # Pieces reach the queue as they arrive, for recv_streaming(); recv() joins them.
        managed.assemble_messages = False
        super().__init__(managed, settings, deque(), subprotocol, request)
        #: send_fragments() is sending a message: other sends must wait for it.
        self._fragmenting = False
        self._set_up_io(sock, clock)

    # ------------------------------------------------------------- application

    def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a text (``str``) or binary message; return once it is written."""
        with self._send_lock:
            with self._lock:
                if self._fragmenting:
                    raise LocalProtocolError(FRAGMENTS_IN_PROGRESS)
                self._queue_message(message, self._now())
                data = self._managed.data_to_send()
            self._write(data)

    def send_fragments(self, fragments: Iterable[str | bytes]) -> None:
        """Send one message from an iterable of pieces, each in a frame of its own, without assembling it.

        As the asyncio driver's
        :meth:`~wsproto_core.drivers.asyncio.WebSocket.send_fragments`: all
        ``str`` or all bytes; :meth:`send` from other threads raises
        ``LocalProtocolError`` meanwhile; a failure halfway closes the
        connection with 1011.
        """
        message = Fragments(fragments)
        with self._lock:
            self._raise_if_closed()
            message.begin(self)
        try:
            for piece in fragments:
                self._send_event(message.piece(piece))
            if (end := message.end()) is not None:
                self._send_event(end)
        finally:
            with self._lock:
                unfinished = message.release(self)
            if unfinished and not self.closed:
                # The peer holds the start of a message that will never end.
                self.close(1011, UNFINISHED_MESSAGE)

    def _send_event(self, event: TextMessage | BytesMessage) -> None:
        with self._lock:
            self._raise_if_closed()
            self._managed.send(event, self._now())
        self._flush()

    def recv(self, timeout: float | None = None) -> str | bytes:
        """Wait for the next message; raise :class:`ConnectionClosed` once closed.

        Raises ``TimeoutError`` if ``timeout`` seconds pass first.
        """
        deadline = self._deadline_after(timeout)
        messages = self._messages
        while True:
            with self._lock:
                if messages:
                    message = take_message(messages)
                    if self._space_wanted:
                        # A message taken, or one now assembled here: either frees the reader.
                        self._changed.notify_all()
                    if message is not None:
                        return message
                if self.closed:
                    raise self._closed_error()
            if deadline is not None and self._now() >= deadline:
                raise TimeoutError("No message received in time")
            self._read_until(self._message_ready, deadline)

    def _message_ready(self) -> bool:
        return message_ready(self._messages)

    def recv_streaming(self) -> Iterator[str | bytes]:
        """The next message in pieces as they arrive, without assembling it: ``for piece in ...``.

        As the trio driver's
        :meth:`~wsproto_core.drivers.trio.WebSocket.recv_streaming`: ``str``
        pieces for a text message, ``bytes`` for a binary one; raises
        :class:`ConnectionClosed` if the connection closes before the message
        ended. Leaving the loop early (or ``close()`` on the iterator) skips
        the rest of the message; :meth:`recv` meanwhile raises ``LocalProtocolError``.
        """
        reader = PieceReader(self._messages)
        try:
            while True:
                with self._lock:
                    piece = reader.next_piece()
                    if piece is END:
                        return
                    if piece is not WAIT and self._space_wanted:
                        self._changed.notify_all()
                    if piece is WAIT and self.closed:
                        raise self._closed_error()
                if piece is not WAIT:
                    yield piece  # type: ignore[misc]
                else:
                    self._read_until(self._piece_ready, None)
        finally:
            with self._lock:
                if reader.abandon():
                    self._changed.notify_all()

    def _piece_ready(self) -> bool:
        return piece_ready(self._messages)

    def __iter__(self) -> Iterator[str | bytes]:
        """Yield messages until the connection closes (normally: no exception)."""
        while True:
            try:
                yield self.recv()
            except ConnectionClosed as closed:
                if closed.normal:
                    return
                raise

    def ping(self, payload: bytes | None = None) -> PongWaiter:
        """Send a Ping; return a :class:`PongWaiter` that is set when its Pong arrives."""
        waiter = PongWaiter(self)
        with self._lock:
            self._queue_ping(payload, waiter, self._now())
        self._waker.wake()  # The reader's next deadline moved.
        self._flush()
        return waiter

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (closing handshake, then the transport) and wait for it."""
        self._start_closing(code, reason)
        self.wait_closed()

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the transport is closed; return ``False`` on timeout."""
        self._read_until(self._is_closed, self._deadline_after(timeout))
        return self.closed

    @property
    def latency(self) -> float:
        """Seconds from the latest answered Ping (keepalive or :meth:`ping`) to its Pong; 0.0 before one."""
        return self._managed.latency

    @property
    def remote_address(self) -> Any:
        """The peer's address, as the socket reports it."""
        return self._sock.getpeername()

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # ----------------------------------------------------------------- plumbing

    def _is_closed(self) -> bool:
        return self.closed

    def _start_closing(self, code: int, reason: str, *, wait: bool = True) -> None:
        with self._lock:
            if self._managed.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
                self._managed.close(code, reason or None, self._now())
            # Read the peer's reply even if the application left the queue full.
            self._changed.notify_all()
        self._waker.wake()
        if wait:
            self._flush()
        else:
            self.write_queued()

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
        with self._lock:
            if self.close_code is not None:
                raise self._closed_error()
            try:
                self._managed.send_prepared(message)
            except LocalProtocolError:
                self._raise_if_closed()
                raise

    def write_queued(self) -> None:
        """Hand what is queued to the socket without blocking.

        What the kernel does not take at once (or everything, while another
        thread writes, or over TLS) is written by a thread of its own, in
        order with :meth:`send`; meanwhile it counts in
        :attr:`outgoing_buffer_size`.
        """
        with self._lock:
            if self._writer_behind or self.close_code is not None or not self._managed.bytes_to_send:
                return  # The writer thread takes these bytes after its own.
            # Taken under _lock (never waiting for it): see _write_behind for why that is safe.
            if not self._send_lock.acquire(blocking=False):
                self._start_writer(None)  # Another thread writes now: the writer waits for its turn.
                return
            data: bytes | memoryview = self._managed.data_to_send()
        if not _DONTWAIT or isinstance(self._sock, ssl_module.SSLSocket):
            with self._lock:
                self._start_writer(data)
            return
        try:
            sent = self._sock.send(data, _DONTWAIT)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._send_lock.release()
            self._abort()
            return
        if sent == len(data):
            self._send_lock.release()
            return
        with self._lock:
            self._start_writer(memoryview(data)[sent:])

    def _close_soon(self, code: int, reason: str) -> None:
        """Start the closing handshake without waiting: the Close goes after what is queued."""
        self._start_closing(code, reason, wait=False)


class _Deadline:
    """``open_timeout`` for a sequence of blocking socket calls."""

    def __init__(self, seconds: float | None) -> None:
        self._at = None if seconds is None else time.monotonic() + seconds

    def apply(self, sock: socket.socket) -> socket.socket:
        """Set the socket timeout to what is left (the next call raises ``TimeoutError`` once it is gone)."""
        if self._at is not None:
            sock.settimeout(max(self._at - time.monotonic(), 1e-6))
        return sock
