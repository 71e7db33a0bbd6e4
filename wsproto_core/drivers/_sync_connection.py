"""One WebSocket connection on a blocking socket: who reads it, its writes, and what the application calls.

:mod:`wsproto_core.drivers.sync` is the public face; the opening of
connections lives in ``_sync_client`` and ``_sync_server``.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl as ssl_module
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from ..errors import LocalProtocolError
from ..events import BytesMessage, Request, TextMessage
from ..managed import ManagedConnection
from ..prepared import PreparedMessage
from ..state import ConnectionState
from ._common import (
    FRAGMENTS_IN_PROGRESS,
    READ_SIZE,
    UNFINISHED_MESSAGE,
    ConnectionClosed,
    Fragments,
    Settings,
)
from ._streaming import END, WAIT, IncomingMessage, PieceReader, message_ready, piece_ready, take_message
from ._websocket import WebSocketState
from .clock import MONOTONIC, Clock

__all__ = ["PongWaiter", "WebSocket"]

#: Who reads a connection's socket (WebSocket._reader): an application thread
#: waiting in recv() (or wait_closed(), or for a Pong) reads itself, so that a
#: message costs no thread switch; the connection's watcher thread reads while
#: none does, once none has for _WATCHER_GRACE seconds (Pings, Closes and
#: timers are then handled without the application).
_APPLICATION, _WATCHER = "application", "watcher"
_WATCHER_GRACE = 0.05

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


class _Waker:
    """A socket pair that interrupts a poll from another thread."""

    def __init__(self) -> None:
        self._receiver, self._sender = socket.socketpair()
        self._receiver.setblocking(False)
        self._sender.setblocking(False)

    def fileno(self) -> int:
        return self._receiver.fileno()

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # Full (already woken) or closed.
            self._sender.send(b"\0")

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            self._receiver.recv(4096)

    def close(self) -> None:
        self._receiver.close()
        self._sender.close()


class WebSocket(WebSocketState):
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
        self._sock = sock
        self._clock = clock
        #: The clock's reading, for the timers (``time.monotonic`` unless a test moves time itself).
        self._now = clock.now
        # _lock guards the ManagedConnection, the queue and the flags below;
        # _send_lock keeps writes whole and in order (it is taken before _lock, never inside it).
        self._lock = threading.Lock()
        #: Application threads wait here for messages, the end, or their turn to read.
        self._changed = threading.Condition(self._lock)
        #: The watcher thread waits here while the application reads.
        self._watch = threading.Condition(self._lock)
        self._send_lock = threading.Lock()
        self._aborted = False
        #: Who reads the socket now: None, _APPLICATION or _WATCHER.
        self._reader: str | None = None
        self._handover = False  # The application asks the watcher for the socket.
        self._space_wanted = False  # The reader waits for the application to take a message.
        self._calls = 0  # Counts the application's reads, for the watcher to see it is active.
        self._watcher_idle = False
        self._waker = _Waker()
        #: send_fragments() is sending a message: other sends must wait for it.
        self._fragmenting = False
        #: A thread writes what a broadcast queued (see write_queued), and how much it holds.
        self._writer_behind = False
        self._unsent = 0
        # poll(), where there is one: no file descriptor of its own, unlike epoll.
        self._selector = getattr(selectors, "PollSelector", selectors.SelectSelector)()
        self._selector.register(sock, selectors.EVENT_READ)
        self._selector.register(self._waker, selectors.EVENT_READ)
        clock.subscribe(self._time_moved)
        self._process(None)  # Bytes that came with the handshake may hold frames.
        threading.Thread(target=self._watch_loop, name="wsproto_core watcher", daemon=True).start()

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

    def _deadline_after(self, timeout: float | None) -> float | None:
        return None if timeout is None else self._now() + timeout

    def _time_moved(self) -> None:
        """The clock jumped (a test moved it): whoever reads or waits looks at the timers again."""
        with self._lock:
            self._changed.notify_all()
            self._watch.notify_all()
        self._waker.wake()

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

    def _abort(self) -> None:
        """Give up on the transport: whoever reads stops and closes it."""
        with self._lock:
            self._aborted = True
            self._changed.notify_all()
            self._watch.notify_all()
        self._waker.wake()

    def _flush(self) -> None:
        with self._send_lock:
            # Take the bytes under the send lock, so that writes keep their order.
            with self._lock:
                data = self._managed.data_to_send()
            self._write(data)

    def _write(self, data: bytes | memoryview) -> None:
        if data and not self.closed:
            try:
                self._sock.sendall(data)
            except OSError:
                self._abort()

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

    def _start_writer(self, data: bytes | memoryview | None) -> None:
        """Under _lock: a thread writes ``data`` (holding the send lock) or, for ``None``, waits for it."""
        self._writer_behind = True
        self._unsent = 0 if data is None else len(data)
        threading.Thread(target=self._write_behind, args=(data,), name="wsproto_core writer", daemon=True).start()

    def _write_behind(self, data: bytes | memoryview | None) -> None:
        """The writer thread: write ``data`` and then what is queued, until nothing is."""
        if data is None:
            self._send_lock.acquire()
            data = b""
        try:
            while True:
                if data:
                    self._write(data)
                with self._lock:
                    # write_queued() sees _writer_behind and this queue under the
                    # same lock: a broadcast's bytes are written here, or it
                    # finds the send lock free (or starts the next writer).
                    data = self._managed.data_to_send()
                    if not data or self.close_code is not None:
                        self._writer_behind = False
                        self._unsent = 0
                        return
                    self._unsent = len(data)
        finally:
            self._send_lock.release()

    def _read_until(self, ready: Callable[[], object], deadline: float | None) -> None:
        """Read the socket in this thread until ``ready()``, the end, or ``deadline``.

        The application thread that waits reads itself (no thread switch per
        message); another one waits for it, and the watcher hands the socket over.
        """
        with self._lock:
            self._calls += 1
            while not (ready() or self.closed):
                if self._reader is None:
                    self._reader = _APPLICATION
                    break
                if self._reader is _WATCHER and not self._handover:
                    self._handover = True
                    self._changed.notify_all()
                    self._waker.wake()
                if not self._changed.wait(None if deadline is None else deadline - self._now()):
                    return
            else:
                return
        try:
            while not (ready() or self.closed):
                if deadline is not None and self._now() >= deadline:
                    return
                self._step(deadline)
        finally:
            with self._lock:
                self._reader = None
                self._calls += 1
                self._changed.notify_all()
                if self._watcher_idle:
                    self._watch.notify()

    def _timeout(self, deadline: float | None) -> float | None:
        """Seconds until the connection's next timer or ``deadline``, whichever comes first."""
        timer = self._managed.next_deadline
        if deadline is not None and (timer is None or deadline < timer):
            timer = deadline
        return None if timer is None else max(0.0, timer - self._now())

    def _step(self, deadline: float | None) -> None:
        """As the thread that reads: read once (or wait for the application), then handle what came.

        It waits until ``deadline`` at most, or the connection's next timer.
        """
        managed, messages = self._managed, self._messages
        with self._lock:
            # Under the lock, so that a clock moved meanwhile wakes the wait below.
            timeout = self._timeout(deadline)
            waits = bool(messages) and managed.state is ConnectionState.OPEN and (managed.held or self._queue_full())
            if waits:
                # The ordering rule (see ManagedConnection.held), or
                # backpressure: wait until the application takes a message.
                self._space_wanted = True
                self._changed.wait(timeout)
                self._space_wanted = False
        data = None
        payload_bytes = 0
        if not (waits or managed.held or self._aborted) and self._readable(timeout):
            try:
                # Only this thread parses, so the view stays good while it reads.
                view = self._payload_view()
                if view is None:
                    data = self._sock.recv(READ_SIZE)
                else:
                    payload_bytes = self._sock.recv_into(view)
                    data = None if payload_bytes else b""
            except OSError:
                data = b""
        self._process(data, payload_bytes)

    def _process(self, data: bytes | None, payload_bytes: int = 0) -> None:
        """Feed what was read (``None``: nothing), hand out the messages, run the timers, write the replies.

        Or ``payload_bytes`` were read into :meth:`_payload_view`'s view (``data`` is then ``None``).
        """
        managed = self._managed
        with self._lock:
            now = self._now()
            if payload_bytes:
                managed.payload_received(payload_bytes, now)
            elif data is not None:
                managed.receive_data(data or None, now)
            managed.handle_timers(now)
            self._handle_events(now)
            self._changed.notify_all()
            done = managed.should_close_transport or self._aborted
        if managed.bytes_to_send and not self._writer_behind:
            # (The writer thread takes these bytes after its own: waiting for
            # it could outlast the close timeout.)
            self._flush()
        if done:
            self._finish()

    def _readable(self, timeout: float | None) -> bool:
        if isinstance(self._sock, ssl_module.SSLSocket) and self._sock.pending():
            return True  # Decrypted bytes already wait in the TLS layer.
        readable = False
        for key, _ in self._selector.select(timeout):
            if key.fileobj is self._waker:
                self._waker.drain()
            else:
                readable = True
        return readable

    def _watch_loop(self) -> None:
        """The watcher: it reads while the application does not (Pings, Closes, timers)."""
        seen = -1
        with self._lock:
            while not self.closed:
                if self._reader is not None or (self._calls != seen and not self._aborted):
                    # The application reads, or did within the last grace period: leave the socket to it.
                    self._watcher_idle = self._reader is not None and self._calls == seen
                    seen = self._calls
                    self._watch.wait(None if self._watcher_idle else _WATCHER_GRACE)
                    self._watcher_idle = False
                    continue
                self._reader = _WATCHER
                self._lock.release()
                try:
                    while not (self._handover or self.closed):
                        self._step(None)
                finally:
                    self._lock.acquire()
                    self._reader = None
                    self._handover = False
                    self._changed.notify_all()

    def _finish(self) -> None:
        with self._lock:
            if self.closed:
                return
            waiters = self._record_close()
            self._clock.unsubscribe(self._time_moved)
            self._changed.notify_all()
            self._watch.notify_all()
        error = self._closed_error()
        for waiter in waiters:
            waiter._resolve(error)
        # shutdown() wakes a thread blocked in sendall; close once it let go.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with self._send_lock:
            self._sock.close()
        self._waker.close()


class _Deadline:
    """``open_timeout`` for a sequence of blocking socket calls."""

    def __init__(self, seconds: float | None) -> None:
        self._at = None if seconds is None else time.monotonic() + seconds

    def apply(self, sock: socket.socket) -> socket.socket:
        """Set the socket timeout to what is left (the next call raises ``TimeoutError`` once it is gone)."""
        if self._at is not None:
            sock.settimeout(max(self._at - time.monotonic(), 1e-6))
        return sock
