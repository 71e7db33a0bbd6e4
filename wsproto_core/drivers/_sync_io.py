"""The threads driver's I/O on one connection's socket: who reads it, its writes, and its end.

An application thread that waits (in ``recv()``, ``wait_closed()``, or for a
Pong) reads the socket itself; the connection's watcher thread reads while
none does. ``_sync_connection`` builds the application's ``WebSocket`` on
:class:`WebSocketIO`.
"""

from __future__ import annotations

import contextlib
import math
import select
import selectors
import socket
import ssl as ssl_module
import threading
from collections.abc import Callable

from ..state import ConnectionState
from ._common import READ_SIZE
from ._websocket import WebSocketState
from .clock import Clock

#: Who reads a connection's socket (WebSocketIO._reader): an application thread
#: waiting in recv() (or wait_closed(), or for a Pong) reads itself, so that a
#: message costs no thread switch; the connection's watcher thread reads while
#: none does, once none has for _WATCHER_GRACE seconds (Pings, Closes and
#: timers are then handled without the application).
_APPLICATION, _WATCHER = "application", "watcher"
_WATCHER_GRACE = 0.05

#: Whether this platform has poll() (not Windows); elsewhere a select() selector waits.
_HAS_POLL = hasattr(select, "poll")


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


class WebSocketIO(WebSocketState):
    """A threads-driver ``WebSocket`` without what the application calls: its socket's reading, writing and end.

    The reader hand-over between application threads and the watcher thread,
    the writer thread that finishes a broadcast's writes, and the locks that
    keep both in order (see the module docstring). Its attributes are set by
    :meth:`_set_up_io`, after the shared state's.
    """

    def _set_up_io(self, sock: socket.socket, clock: Clock) -> None:
        """Set up the reading and writing of ``sock``, then start reading.

        The ``WebSocket``'s constructor calls it last: the watcher thread starts at once.
        """
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
        #: A thread writes what a broadcast queued (see write_queued), and how much it holds.
        self._writer_behind = False
        self._unsent = 0
        #: Threads waiting on _changed: notify_all() is skipped while none does
        #: (it costs a microsecond or two of Python twice per message otherwise).
        self._waiting = 0
        self._tls = isinstance(sock, ssl_module.SSLSocket)
        # poll() called directly, where there is one: no file descriptor of its
        # own (unlike epoll), and no selectors layer on each read.
        self._poll: select.poll | None = None
        self._selector: selectors.BaseSelector | None = None
        if _HAS_POLL:
            self._poll = select.poll()
            self._poll.register(sock, select.POLLIN)
            self._poll.register(self._waker, select.POLLIN)
        else:
            self._selector = selectors.SelectSelector()
            self._selector.register(sock, selectors.EVENT_READ)
            self._selector.register(self._waker, selectors.EVENT_READ)
        clock.subscribe(self._time_moved)
        self._process(None)  # Bytes that came with the handshake may hold frames.
        threading.Thread(target=self._watch_loop, name="wsproto_core watcher", daemon=True).start()

    def _deadline_after(self, timeout: float | None) -> float | None:
        return None if timeout is None else self._now() + timeout

    def _time_moved(self) -> None:
        """The clock jumped (a test moved it): whoever reads or waits looks at the timers again."""
        with self._lock:
            self._changed.notify_all()
            self._watch.notify_all()
        self._waker.wake()

    def _abort(self) -> None:
        """Give up on the transport: whoever reads stops and closes it."""
        with self._lock:
            self._aborted = True
            self._changed.notify_all()
            self._watch.notify_all()
        self._waker.wake()

    # ------------------------------------------------------------------ writing

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

    # ------------------------------------------------------------------ reading

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
                self._waiting += 1
                try:
                    woken = self._changed.wait(None if deadline is None else deadline - self._now())
                finally:
                    self._waiting -= 1
                if not woken:
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
                if self._waiting:
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
                self._waiting += 1
                try:
                    self._changed.wait(timeout)
                finally:
                    self._waiting -= 1
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
            if data:
                # Hot path: the whole messages the read starts with skip the parser.
                self._receive(data, now)
                managed.handle_timers(now)
            else:
                if payload_bytes:
                    managed.payload_received(payload_bytes, now)
                elif data is not None:
                    managed.receive_data(None, now)
                managed.handle_timers(now)
                self._handle_events(now)
            if self._waiting:
                self._changed.notify_all()
            done = managed.should_close_transport or self._aborted
        if managed.bytes_to_send and not self._writer_behind:
            # (The writer thread takes these bytes after its own: waiting for
            # it could outlast the close timeout.)
            self._flush()
        if done:
            self._finish()

    def _readable(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (``None``: no limit) for the socket to be readable, or the waker."""
        if self._tls and self._sock.pending():  # type: ignore[attr-defined]
            return True  # Decrypted bytes already wait in the TLS layer.
        readable = False
        if self._poll is not None:
            waker = self._waker.fileno()
            for fd, _ in self._poll.poll(None if timeout is None else math.ceil(timeout * 1000)):
                if fd == waker:
                    self._waker.drain()
                else:
                    readable = True
            return readable
        assert self._selector is not None
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
