"""The trio driver's I/O on one connection's stream: its reader task, its writes, and its end.

``_trio_connection`` builds the application's ``WebSocket`` on
:class:`WebSocketIO`.
"""

from __future__ import annotations

import contextlib
import math
import socket

import trio

from ..state import ConnectionState
from ._common import READ_SIZE
from ._websocket import WebSocketState

#: What a broken or closed stream raises; the driver treats them all as end of stream.
_STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class WebSocketIO(WebSocketState):
    """A trio ``WebSocket`` without what the application calls: its stream's reading, writing and end.

    The reader task (which also runs the timers), the one write under way and
    the tasks waiting for a change (see the module docstring). Its attributes
    are set by :meth:`_set_up_io`, after the shared state's.
    """

    # One per open connection in a server: slots keep an idle one small.
    __slots__ = (
        "_aborted",
        "_reader_scope",
        "_reader_waits",
        "_sock",
        "_stream",
        "_unsent",
        "_waiting",
        "_writing",
    )

    def _set_up_io(self, stream: trio.abc.Stream) -> None:
        """Set up the reading and writing of ``stream`` (:meth:`_start` starts the reader)."""
        self._stream = stream
        self._sock = _plain_socket(stream)
        #: The tasks waiting for a change (recv, the reader, writers, wait_closed); a change wakes them all.
        self._waiting: list[trio.lowlevel.Task] = []
        self._aborted = False
        self._writing = False
        #: Bytes that the write under way (``_writing``) holds and the socket has not taken yet.
        self._unsent = 0
        self._reader_waits = False
        #: The reader's cancel scope: its deadline is the connection's next timer.
        self._reader_scope = trio.CancelScope()

    def _start(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._read_loop, name="wsproto_core reader")

    # ----------------------------------------------------------------- plumbing

    def _reschedule(self) -> None:
        deadline = self._managed.next_deadline
        if deadline is None:
            deadline = math.inf
        if self._reader_scope.deadline != deadline:
            self._reader_scope.deadline = deadline

    async def _wait(self) -> None:
        # A ParkingLot, reduced to what is needed here (a list holds one task
        # in a fraction of an OrderedDict's size).
        task = trio.lowlevel.current_task()
        self._waiting.append(task)

        def give_up(_: object) -> trio.lowlevel.Abort:
            self._waiting.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(give_up)

    def _wake(self) -> None:
        if self._waiting:
            waiting, self._waiting = self._waiting, []
            for task in waiting:
                trio.lowlevel.reschedule(task)

    def _abort(self) -> None:
        """Give up on the transport: the reader stops and closes it without ceremony."""
        self._aborted = True
        self._reader_scope.cancel()

    # ------------------------------------------------------------------ writing

    def _send_without_waiting(self, data: bytes | memoryview) -> bytes | memoryview | None:
        """What is left of ``data`` after a write that does not wait; None if nothing is (or the socket broke)."""
        sock = self._sock
        if sock is None:
            return data  # TLS or another stream: only trio's send_all writes it
        # Hot path: the kernel usually takes the whole write at once.
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._abort()
            return None
        if sent == len(data):
            return None
        return memoryview(data)[sent:]

    async def _flush(self) -> None:
        """Write what the connection queued; writes keep their order."""
        while self._writing:  # Another task's write waits for the socket: ours goes after it.
            await self._wait()
        data: bytes | memoryview = self._managed.data_to_send()
        if not data or self.closed:
            return
        rest = self._send_without_waiting(data)
        if rest is None:
            return
        data = rest
        self._writing = True
        # The reader's timers wait for a blocked write (cancelling it would break the stream).
        self._reader_scope.deadline = math.inf
        await self._write_rest(data)

    async def _write_rest(self, data: bytes | memoryview) -> None:
        """As the one writer (``_writing`` is set): write ``data``, then what was queued meanwhile."""
        sock = self._sock
        written = False
        try:
            while data:
                self._unsent = len(data)
                if sock is None:
                    await self._stream.send_all(data)
                else:
                    while data:
                        await trio.lowlevel.wait_writable(sock)
                        data = data[sock.send(data) :]
                # A broadcast queues without writing while a write is under way: its bytes go next.
                data = self._managed.data_to_send()
            written = True
        except (*_STREAM_ERRORS, BlockingIOError):
            pass
        finally:
            self._unsent = 0
            self._writing = False
            self._reschedule()
            self._wake()
            # Failed or cancelled halfway: the stream cannot carry frames any more.
            if not written:
                self._abort()

    # ------------------------------------------------------------------ reading

    async def _read_loop(self) -> None:
        """Feed the stream to the connection, deliver its messages, and run its timers until it closes."""
        managed, messages, sock = self._managed, self._messages, self._sock
        # Events first: bytes that came with the handshake may hold frames.
        parse_first = True
        try:
            while not self._aborted:
                with self._reader_scope:
                    while True:
                        if not parse_first:
                            payload_bytes = 0
                            try:
                                if sock is None:
                                    data = await self._stream.receive_some(READ_SIZE)
                                else:
                                    await trio.lowlevel.wait_readable(sock)
                                    # Only this task parses, so the view stays good while it reads.
                                    view = self._payload_view()
                                    if view is None:
                                        data = sock.recv(READ_SIZE)
                                    else:
                                        payload_bytes = sock.recv_into(view)
                                        data = b""
                            except BlockingIOError:
                                continue  # Woken without data (spuriously): wait again.
                            except _STREAM_ERRORS:
                                data = b""
                            if (
                                self._received_into_payload(payload_bytes, trio.current_time())
                                if payload_bytes
                                else self._receive(data, trio.current_time())
                            ):
                                self._wake()
                        elif self._handle_events(trio.current_time()):
                            self._wake()
                        # The ordering rule (see ManagedConnection.held): the
                        # application takes the message before parsing goes on.
                        parse_first = managed.held
                        self._reschedule()
                        if managed.bytes_to_send and not self._writing:
                            # (A write under way takes these bytes after its own:
                            # waiting for it could outlast the close timeout.)
                            await self._flush()
                        if managed.should_close_transport:
                            break
                        while managed.state is ConnectionState.OPEN and (
                            (parse_first and messages) or self._queue_full()
                        ):
                            # The ordering rule above, or backpressure: wait for the application.
                            self._reader_waits = True
                            await self._wait()
                            self._reader_waits = False
                    break  # The transport is to be closed.
                if not self._aborted:
                    # A timer is due (the scope's deadline passed); a new scope for the next one.
                    self._reader_scope = trio.CancelScope()
                    managed.handle_timers(trio.current_time())
                    parse_first = True  # Parse (and flush) before reading again.
        finally:
            self._finish()
            await self._close_stream(graceful=not self._aborted)

    async def _close_stream(self, *, graceful: bool) -> None:
        try:
            if graceful and self._sock is None:
                # A TLS stream sends close_notify; give up on a peer that does not read.
                timeout = self._settings.close_timeout
                with trio.move_on_after(_timeout(timeout)), contextlib.suppress(*_STREAM_ERRORS):
                    while self._writing:
                        await self._wait()
                    await self._stream.aclose()
        finally:
            await trio.aclose_forcefully(self._stream)

    def _finish(self) -> None:
        waiters = self._record_close()
        self._wake()
        for waiter in waiters:
            waiter._resolve(self._closed_error())


def _plain_socket(stream: trio.abc.Stream) -> socket.socket | None:
    """The standard socket under a plain TCP stream, which the driver reads and writes directly.

    trio's stream layers cost a scheduling round per call; without them a
    write that the kernel takes at once does not yield, and a read costs one
    wait for readability. A TLS stream (or any other) goes through trio.
    """
    if isinstance(stream, trio.SocketStream):
        sock = getattr(stream.socket, "_sock", None)  # The standard socket a trio socket wraps.
        if isinstance(sock, socket.socket):
            return sock
    return None


def _timeout(seconds: float | None) -> float:
    return math.inf if seconds is None else seconds
