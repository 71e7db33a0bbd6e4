"""The trio driver's I/O on one connection's stream: who reads it, its writes, and its end.

An application task that waits in ``recv()`` (or for the next piece of a
message) reads a plain TCP socket itself, so that a message costs it one
wake-up, not the reader task's and then its own; the connection's reader
task stands by meanwhile, and reads again (Pings, Closes and timers are then
handled without the application) once no application task has read for
:data:`_READER_GRACE` seconds. A TLS stream is read by the reader task only.
``_trio_connection`` builds the application's ``WebSocket`` on
:class:`WebSocketIO`.
"""

from __future__ import annotations

import contextlib
import math
import socket

import outcome
import trio

from ..state import ConnectionState
from ._common import READ_SIZE
from ._websocket import WebSocketState

#: What a broken or closed stream raises; the driver treats them all as end of stream.
_STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)

#: How long the reader task leaves the socket to the application's tasks after
#: one last read it (see the module docstring).
_READER_GRACE = 0.05


class WebSocketIO(WebSocketState):
    """A trio ``WebSocket`` without what the application calls: its stream's reading, writing and end.

    The reader task (which also runs the timers), the one write under way and
    the tasks waiting for a change (see the module docstring). Its attributes
    are set by :meth:`_set_up_io`, after the shared state's.
    """

    # One per open connection in a server: slots keep an idle one small.
    __slots__ = (
        "_aborted",
        "_application_reads",
        "_hand_over",
        "_reader_scope",
        "_reader_standing_by",
        "_reader_waits",
        "_reader_waits_for_a_read",
        "_reading",
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
        #: A task (the reader or an application task) waits for the socket or reads it.
        self._reading = False
        #: Reads by application tasks since the reader task stood by (it reads again after one grace without any).
        self._application_reads = 0
        #: An application task waits for the reader task's next message, and reads itself after it.
        self._hand_over = False
        #: The reader task while it stands by for the application's reads.
        self._reader_standing_by: trio.lowlevel.Task | None = None
        #: It stands by until the application task that waits for the socket has read.
        self._reader_waits_for_a_read = False
        #: The reader's cancel scope: its deadline is the connection's next timer.
        self._reader_scope = trio.CancelScope()

    def _start(self, nursery: trio.Nursery) -> None:
        # The reader parses what came with the handshake before any task reads the socket.
        self._reading = True
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
        """Wake every task waiting for a change, the reader task standing by among them."""
        self._wake_waiting()
        self._hand_back()

    def _wake_waiting(self) -> None:
        """Wake the tasks waiting in :meth:`_wait` (not the reader task, if it stands by)."""
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

    def _write_without_waiting(self) -> None:
        """Hand what is queued to the socket; what the kernel does not take at once, a system task writes."""
        if self._writing or self.close_code is not None:
            return  # The write under way takes these bytes after its own (see _write_rest).
        data: bytes | memoryview = self._managed.data_to_send()
        if not data:
            return
        rest = self._send_without_waiting(data)
        if rest is None:
            return
        self._writing = True
        self._unsent = len(rest)
        trio.lowlevel.spawn_system_task(self._write_rest, rest, name="wsproto_core writer")

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

    async def _wait_for_data(self) -> None:
        """Wait in ``recv()`` until something changed: read the socket for it when no other task does.

        Hot path, once per message for an application that answers each
        before the next arrives.
        """
        managed = self._managed
        sock = self._sock
        if (
            sock is None
            or self._reading
            or self._aborted
            or managed.should_close_transport
            or managed.state is not ConnectionState.OPEN
        ):
            # The reader task reads (and ends the connection): wait for it, and
            # have it stand by once it delivered something.
            self._hand_over = True
            await self._wait()
            return
        if managed.held:
            # The ordering rule held the next message back until the queue emptied, as it now has.
            self._after_application_read(self._handle_events(trio.current_time()))
            return
        self._reading = True
        self._application_reads += 1
        try:
            try:
                await trio.lowlevel.wait_readable(sock)
            except trio.Cancelled:
                self._hand_back()  # The application gave up on this wait.
                raise
            data, payload_bytes = self._read_socket(sock)
        except BlockingIOError:
            return  # Woken without data (spuriously).
        except _STREAM_ERRORS:
            if self.closed or self._aborted:
                return  # The reader closed the stream under this wait.
            data = b""
        finally:
            self._reading = False
            if self._reader_waits_for_a_read:
                self._wake_reader(handed_back=False)
        self._after_application_read(self._feed(data, payload_bytes))

    def _read_socket(self, sock: socket.socket) -> tuple[bytes, int]:
        """Read what the socket holds, as the one task that reads it: ``(data, 0)``.

        Or ``(b"", nbytes)``: ``nbytes`` went straight into a large frame's
        payload buffer (see ``_payload_view``); the view stays good because
        only this task reads meanwhile.
        """
        view = self._payload_view()
        if view is None:
            return sock.recv(READ_SIZE), 0
        return b"", sock.recv_into(view)

    def _feed(self, data: bytes | bytearray, payload_bytes: int) -> bool:
        """Deliver what :meth:`_read_socket` read (``b""``: the end); return whether a message came."""
        now = trio.current_time()
        return self._received_into_payload(payload_bytes, now) if payload_bytes else self._receive(data, now)

    def _after_application_read(self, received: bool) -> None:
        """What the reader task does after a read, for an application task's: wake, reschedule, write, hand back."""
        managed = self._managed
        if received:
            self._wake_waiting()
        self._reschedule()
        if managed.bytes_to_send and not self._writing:
            self._write_without_waiting()
        if managed.state is not ConnectionState.OPEN:
            self._hand_back()  # The reader task reads the rest of the closing, and ends the connection.

    def _hand_back(self) -> None:
        """The application waits elsewhere than in ``recv()``: the reader task reads at once, not after a grace."""
        self._wake_reader(handed_back=True)

    def _wake_reader(self, *, handed_back: bool) -> None:
        """Wake the reader task if it stands by: to read (``handed_back``), or to start its grace."""
        task = self._reader_standing_by
        if task is not None:
            self._reader_standing_by = None
            self._reader_waits_for_a_read = False
            trio.lowlevel.reschedule(task, outcome.Value(handed_back))

    def _deliver(self) -> None:
        """The reader task queued a message: wake its takers; stand by next if an application task asked to read."""
        self._wake()
        if self._hand_over:
            self._hand_over = False
            self._application_reads += 1

    def _left_to_the_application(self) -> bool:
        """Whether the reader task stands by: an application task reads, or read since the reader last looked.

        Once the connection is closing, the reader reads as soon as no
        application task does (only one task may wait for the socket).
        """
        return self._reading or (self._application_reads > 0 and self._managed.state is ConnectionState.OPEN)

    async def _stand_by(self) -> None:
        """Leave the socket to the application's tasks until none has read for a grace, or a change wakes the reader.

        While an application task waits for the socket, the grace waits for
        its read (an idle connection then wakes nobody); after that, no task
        wakes the reader until the grace is over.
        """
        task = trio.lowlevel.current_task()

        def give_up(_: object) -> trio.lowlevel.Abort:
            self._reader_standing_by = None
            self._reader_waits_for_a_read = False
            return trio.lowlevel.Abort.SUCCEEDED

        while self._left_to_the_application():
            self._application_reads = 0
            self._reader_standing_by = task
            if self._reading:
                self._reader_waits_for_a_read = True
                handed_back = await trio.lowlevel.wait_task_rescheduled(give_up)
            else:
                handed_back = False
                with trio.move_on_after(_READER_GRACE):
                    handed_back = await trio.lowlevel.wait_task_rescheduled(give_up)
            if handed_back:
                # Something changed that the reader must see, and it reads
                # next unless an application task reads at that moment.
                self._application_reads = 0
                return

    async def _read_loop(self) -> None:
        """Feed the stream to the connection, deliver its messages, and run its timers until it closes."""
        managed, messages, sock = self._managed, self._messages, self._sock
        # Events first: bytes that came with the handshake may hold frames.
        parse_first = True
        # Until they are parsed, no application task reads the socket (see _start).
        self._reading = False
        try:
            while not self._aborted:
                with self._reader_scope:
                    while True:
                        if not parse_first and sock is not None and self._left_to_the_application():
                            await self._stand_by()
                        elif not parse_first:
                            payload_bytes = 0
                            self._reading = True
                            try:
                                if sock is None:
                                    data = await self._stream.receive_some(READ_SIZE)
                                else:
                                    await trio.lowlevel.wait_readable(sock)
                                    data, payload_bytes = self._read_socket(sock)
                            except BlockingIOError:
                                continue  # Woken without data (spuriously): wait again.
                            except _STREAM_ERRORS:
                                data = b""
                            finally:
                                self._reading = False
                            if self._feed(data, payload_bytes):
                                self._deliver()
                        elif self._handle_events(trio.current_time()):
                            self._deliver()
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
