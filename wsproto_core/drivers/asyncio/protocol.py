"""The asyncio protocol of one connection: its bytes go to the opening handshake, then to the WebSocket."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .io import WebSocketIO
    from .websocket import WebSocket

#: The context the driver's own callbacks (timers, deferred writes) run in: one
#: for all, instead of a copy of the caller's per callback scheduled (asyncio's
#: default), which an idle connection's keepalive timer would hold. They read
#: no context variable; the application's tasks keep their own contexts.
DRIVER_CONTEXT = contextvars.Context()


class Opening:
    """What a connection does until its opening handshake is decided (one per role)."""

    __slots__ = ()

    def connection_made(self, protocol: ConnectionProtocol, transport: asyncio.Transport) -> None:
        raise NotImplementedError

    def data_received(self, data: bytes) -> None:
        raise NotImplementedError

    def ended(self) -> None:
        raise NotImplementedError


#: The most a read may bring: asyncio's own default (its transports' ``max_size``).
READ_BUFFER_SIZE = 256 * 1024

#: The buffer into which every connection of this thread's event loop reads.
_read_buffers = threading.local()


def read_buffer() -> memoryview:
    """The read buffer of this thread's connections (``get_buffer`` of their ``BufferedProtocol``).

    One per thread, shared by its connections: a read is handled before the
    next one starts. asyncio's plain ``Protocol`` gets a new 256 KiB
    ``bytes`` per read instead, which glibc maps and unmaps every time (it is
    above the threshold for mapped memory, and the read shrinks it below the
    size that would raise that threshold): those page faults and system calls
    cost a third of the server's CPU in the echo soak of
    ``benchmarks/bench_load.py``. What a read brought is copied out only where
    it is kept, at its size. A view, not the bytearray: TLS reads fill it in
    several calls through slices of it, and a bytearray's slice is a copy.
    """
    buffer: memoryview | None = getattr(_read_buffers, "buffer", None)
    if buffer is None:
        buffer = _read_buffers.buffer = memoryview(bytearray(READ_BUFFER_SIZE))
    return buffer


class ConnectionProtocol(asyncio.BufferedProtocol):
    """One connection's protocol: the opening handshake, then every callback to the :class:`WebSocket`.

    A transport that can change protocols (``set_protocol``) calls the
    WebSocket directly once it is open, and this object is freed; an HTTP/2
    stream's keeps routing (through :meth:`data_received`). Reads go into
    :func:`read_buffer`.
    """

    __slots__ = ("_opening", "_transport", "websocket", "writing_paused")

    def __init__(self, opening: Opening | None) -> None:
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

    def get_buffer(self, sizehint: int) -> memoryview:
        """The transport's callback: where to read (this thread's shared read buffer)."""
        return read_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        """The transport's callback: ``nbytes`` were read into the buffer."""
        websocket = self.websocket
        if websocket is not None:
            websocket.buffer_updated(nbytes)
        elif self._opening is not None:
            self._opening.data_received(bytes(read_buffer()[:nbytes]))

    def data_received(self, data: bytes) -> None:
        websocket = self.websocket
        if websocket is not None:
            websocket.data_received(data)
        elif self._opening is not None:
            self._opening.data_received(data)

    def eof_received(self) -> bool:
        if self.websocket is not None:
            return self.websocket.eof_received()
        self._opening_ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.websocket is not None:
            self.websocket.connection_lost(exc)
        else:
            self._opening_ended()

    def _opening_ended(self) -> None:
        if self._opening is not None:
            opening, self._opening = self._opening, None
            opening.ended()

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self.websocket is not None:
            self.websocket.pause_writing()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.websocket is not None:
            self.websocket.resume_writing()

    def opened(self, websocket: WebSocket) -> None:
        self._opening = None
        self.websocket = websocket


#: Whether each class of transport seen writes a list of parts without joining them first.
_SCATTERED_WRITES: dict[type, bool] = {}


def writes_scattered(transport: asyncio.BaseTransport) -> bool:
    """Whether ``transport.writelines`` sends its parts as they are (``sendmsg``, ``writev``, TLS records).

    asyncio's own default joins them into one ``bytes`` (all that Python 3.11's
    plain TCP transport has), which a join of ours does as well, in one call fewer.
    """
    kind = type(transport)
    scattered = _SCATTERED_WRITES.get(kind)
    if scattered is None:
        scattered = _SCATTERED_WRITES[kind] = getattr(kind, "writelines", None) not in (
            None,
            asyncio.WriteTransport.writelines,
        )
    return scattered


class PayloadReader(asyncio.BufferedProtocol):
    """A WebSocket's transport's protocol while a large frame's payload is read into its buffer.

    Reads go into ``Connection.payload_buffer()``; every other callback is the
    WebSocket's. The WebSocket takes the transport back once the frame
    (or the piece of it that is gathered) arrived.
    """

    __slots__ = ("_into_payload", "_websocket")

    def __init__(self, websocket: WebSocketIO) -> None:
        self._websocket = websocket
        #: Whether the last get_buffer() returned the payload buffer.
        self._into_payload = False

    def get_buffer(self, sizehint: int) -> memoryview:
        view = self._websocket._managed.payload_buffer()
        self._into_payload = view is not None
        return view if view is not None else read_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        if self._into_payload:
            self._websocket._received(None, nbytes)
        else:
            self._websocket._received(read_buffer()[:nbytes])

    def data_received(self, data: bytes) -> None:
        self._websocket._received(data)

    def eof_received(self) -> bool:
        return self._websocket.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._websocket.connection_lost(exc)

    def pause_writing(self) -> None:
        self._websocket.pause_writing()

    def resume_writing(self) -> None:
        self._websocket.resume_writing()
