"""wsproto_core on asyncio streams: ``connect`` for clients, ``serve`` for servers.

The opening handshake runs over asyncio streams. After it, the transport's
protocol hands every read straight to a
:class:`~wsproto_core.managed.ManagedConnection` (which answers Pings and
Closes and assembles messages), in the event loop's callback: no task sits
between the socket and the application, and the only other moving part is one
timer callback scheduled at the connection's next deadline (keepalive, close
timeout). Received messages wait in a bounded queue; when it is full the
transport stops reading, so a slow application slows the peer down through TCP
instead of growing memory. Reading also stops while our replies wait for the
transport to drain. ``send`` waits for the transport to drain.

The ordering rule: a message that was received before a Close (or before a
protocol violation) can still be answered. So the bytes after a received
message are parsed only once the application took that message: a read is
parsed up to the first message with more bytes behind it, and the
application's next :meth:`WebSocket.recv` parses on, in its own task. A
pipelining peer (many messages per read) then costs no task switch per message,
and the replies to those messages go out together in one write, when the
application next waits for a message (or at the next event loop iteration).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from types import TracebackType
from typing import Any

from .. import WSConnection
from ..errors import RemoteProtocolError
from ..events import BytesMessage, Message, Pong, Request, TextMessage
from ..managed import ManagedConnection
from ..state import ConnectionState, ConnectionType
from ._common import (
    ClientOpening,
    ConnectionClosed,
    ProcessRequest,
    ServerOpening,
    Settings,
    accept_for,
    managed_connection,
    parse_url,
    request_for,
)

__all__ = ["Server", "WebSocket", "connect", "serve"]

#: During the opening handshake, take everything the stream holds at once, so
#: that nothing is left in it when the protocol takes over. The stream stops
#: reading from its socket beyond twice its limit, which bounds this.
_STREAM_READ_SIZE = 1 << 20

#: The streams' limit. At the default (64 KiB) one socket read of 256 KiB
#: (asyncio's largest) already crosses twice the limit and pauses the socket.
#: After the handshake, it is also how many received bytes may wait to be
#: parsed (the ordering rule) before the transport stops reading.
_STREAM_LIMIT = 256 * 1024

#: Replies to pipelined messages are written together up to this many bytes
#: (with the transport's own buffer); beyond it, ``send`` writes and drains.
_COALESCE_LIMIT = 65536

logger = logging.getLogger(__name__)


class _Protocol(asyncio.StreamReaderProtocol):
    """Streams for the opening handshake; then every event goes to the :class:`WebSocket`."""

    websocket: WebSocket | None = None
    writing_paused = False

    def data_received(self, data: bytes) -> None:
        websocket = self.websocket
        if websocket is None:
            super().data_received(data)
        else:
            websocket._received(data)

    def eof_received(self) -> bool:
        if self.websocket is not None:
            self.websocket._received(None)
        return bool(super().eof_received())

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.websocket is not None:
            self.websocket._received(None)

    def pause_writing(self) -> None:
        super().pause_writing()
        self.writing_paused = True
        if self.websocket is not None:
            self.websocket._update_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        self.writing_paused = False
        if self.websocket is not None:
            self.websocket._update_reading()


class WebSocket:
    """One open WebSocket connection.

    Created by :func:`connect` and :func:`serve`; use :meth:`send`, :meth:`recv`
    (or ``async for``), :meth:`ping` and :meth:`close`.

    Attributes: ``subprotocol`` (the negotiated one or ``None``), ``request``
    (server side: the client's ``Request``, with ``target`` and headers),
    ``close_code`` and ``close_reason`` (once closed).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        managed: ManagedConnection,
        settings: Settings,
        *,
        subprotocol: str | None,
        request: Request | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._managed = managed
        self._settings = settings
        self._loop = asyncio.get_running_loop()
        self.subprotocol = subprotocol
        self.request = request
        self.close_code: int | None = None
        self.close_reason: str | None = None
        # Any loop's transport will do (uvloop's are not asyncio.Transport
        # subclasses): only the methods asyncio documents are used.
        self._transport: asyncio.Transport = writer.transport  # type: ignore[assignment]
        self._messages: deque[str | bytes] = deque()
        self._message_ready = asyncio.Event()
        #: Received bytes may hold more events, left for ``recv`` to parse (the ordering rule).
        self._parse_pending = False
        self._reading_paused = False
        self._ended = False
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._closed = asyncio.Event()
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._closing = False
        self._pong_waiters: dict[bytes, asyncio.Future[None]] = {}
        protocol: _Protocol = self._transport.get_protocol()  # type: ignore[assignment]
        self._protocol = protocol
        protocol.websocket = self
        self._set_timer()
        # Bytes that came with the handshake may hold frames, and the stream
        # may have ended during it.
        self._parse()
        self._after_parse()
        if reader.at_eof() or reader.exception() is not None:
            self._received(None)

    # ------------------------------------------------------------- application

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a text (``str``) or binary message; wait until the transport drained."""
        self._raise_if_closed()
        event = TextMessage(message) if isinstance(message, str) else BytesMessage(bytes(message))
        managed = self._managed
        managed.send(event, self._loop.time())
        if (self._messages or self._parse_pending) and (
            managed.bytes_to_send + self._transport.get_write_buffer_size() < _COALESCE_LIMIT
        ):
            # More received messages wait for the application (a pipelining
            # peer): write this reply together with theirs, when the
            # application next waits in recv(), instead of one write per
            # message. Nothing waits longer than the next loop iteration.
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._scheduled_flush)
            return
        await self._flush()

    async def recv(self) -> str | bytes:
        """Wait for the next message; raise :class:`ConnectionClosed` once closed."""
        messages = self._messages
        while not messages:
            if self._closed.is_set():
                raise self._closed_error()
            if self._parse_pending and not self._closing:
                # The application took every message before the rest of the
                # read: parse on, here (see the ordering rule above).
                self._parse()
                if not self._parse_pending:
                    self._after_parse()
                continue
            self._write_queued()
            self._message_ready.clear()
            await self._message_ready.wait()
        message = messages.popleft()
        if self._reading_paused:
            self._update_reading()
        return message

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

    async def ping(self, payload: bytes | None = None) -> Awaitable[None]:
        """Send a Ping; return an awaitable that completes when its Pong arrives."""
        self._raise_if_closed()
        payload = self._managed.ping(payload, self._loop.time())
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._pong_waiters[payload] = waiter
        self._set_timer()
        await self._flush()
        return waiter

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (closing handshake, then the transport) and wait for it.

        Cancelling this wait drops the connection at once (code 1006).
        """
        if self._managed.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            self._managed.close(code, reason or None, self._loop.time())
            self._set_timer()
            await self._flush()
        # The peer's Close must be read even if unread messages fill the queue.
        self._closing = True
        if not self._closed.is_set():
            if self._parse_pending:
                self._parse()
            self._after_parse()
        try:
            await self.wait_closed()
        except asyncio.CancelledError:
            # Whoever cancelled the close will not wait for the peer any more.
            self._abort()
            raise

    async def wait_closed(self) -> None:
        """Wait until the transport is closed."""
        await asyncio.shield(self._done)

    @property
    def closed(self) -> bool:
        """Whether the connection is closed."""
        return self._closed.is_set()

    @property
    def remote_address(self) -> Any:
        """The peer's address, as the socket reports it."""
        return self._writer.get_extra_info("peername")

    # ----------------------------------------------------------------- plumbing

    def _raise_if_closed(self) -> None:
        if self._closed.is_set():
            raise self._closed_error()
        if self._managed.state is not ConnectionState.OPEN:
            close = self._managed.close_event
            raise ConnectionClosed(close.code if close else 1000, close.reason if close else None)

    def _closed_error(self) -> ConnectionClosed:
        return ConnectionClosed(self.close_code or 1006, self.close_reason)

    def _write_queued(self) -> bool:
        """Hand what the connection queued to the transport; return whether there was any."""
        data = self._managed.data_to_send()
        if not data or self._writer.is_closing():
            return False
        self._writer.write(data)
        return True

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._write_queued()

    async def _flush(self) -> None:
        if not self._write_queued():
            return
        try:
            await self._writer.drain()
        except (ConnectionError, OSError):
            self._writer.transport.abort()

    def _parse(self) -> None:
        """Queue received messages; stop after one that has more bytes behind it (the ordering rule)."""
        managed = self._managed
        self._parse_pending = False
        for event in managed.events(self._loop.time()):
            if isinstance(event, Message):
                self._messages.append(event.data)
                self._message_ready.set()
                if managed.buffered_bytes and not self._closing:
                    # A Close (or a violation) further in the buffer would
                    # otherwise be answered before the application could reply
                    # to this message, and after a Close only a Close may be
                    # sent (RFC 6455 section 5.5.1). recv() parses on.
                    self._parse_pending = True
                    break
            elif isinstance(event, Pong):
                self._pong_arrived(event.payload)
        self._set_timer()

    def _received(self, data: bytes | None) -> None:
        """The protocol's callback: ``data`` read, or ``None`` once the stream ended."""
        if self._ended or self._closed.is_set():
            return
        if data is None:
            self._ended = True
        try:
            self._managed.receive_data(data, self._loop.time())
            if not self._parse_pending or self._closing:
                self._parse()
            self._after_parse()
        except Exception:
            # A bug of ours: in an event loop callback it would leave the
            # connection hanging, so end it (the parser itself never raises).
            logger.exception("WebSocket connection failed")
            self._abort()

    def _after_parse(self) -> None:
        self._write_queued()
        if self._managed.should_close_transport and (self._closing or not self._parse_pending):
            self._finish()
        else:
            self._update_reading()

    def _update_reading(self) -> None:
        """Pause or resume reading: backpressure from the application, and from the peer."""
        if self._closed.is_set():
            return
        pause = not self._closing and (
            len(self._messages) >= self._settings.max_queue
            or self._protocol.writing_paused
            or (self._parse_pending and self._managed.buffered_bytes >= _STREAM_LIMIT)
        )
        if pause is not self._reading_paused:
            self._reading_paused = pause
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
        if deadline is not None and not self._closed.is_set():
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        managed = self._managed
        deadline = self._timer_deadline
        self._timer = None
        self._timer_deadline = None
        now = self._loop.time()
        # The loop runs a timer up to its clock resolution early; it is due.
        managed.handle_timers(now if deadline is None else max(now, deadline))
        self._write_queued()
        if managed.should_close_transport and not self._closed.is_set():
            self._abort()
        else:
            self._set_timer()

    def _abort(self) -> None:
        """Drop the connection: no ordering to keep, nothing more to read."""
        self._closing = True
        self._transport.abort()
        self._received(None)
        if not self._closed.is_set():
            self._finish()

    def _pong_arrived(self, payload: bytes) -> None:
        # A Pong acknowledges its Ping and every earlier one (RFC 6455 section
        # 5.5.3 lets a peer answer only the latest Ping); an unsolicited Pong
        # acknowledges nothing.
        if payload not in self._pong_waiters:
            return
        for key in list(self._pong_waiters):
            waiter = self._pong_waiters.pop(key)
            if not waiter.done():
                waiter.set_result(None)
            if key == payload:
                break

    def _finish(self) -> None:
        close = self._managed.close_event
        self.close_code = close.code if close is not None else 1006
        self.close_reason = close.reason if close is not None else None
        self._closed.set()
        self._message_ready.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        error = self._closed_error()
        for waiter in self._pong_waiters.values():
            if not waiter.done():
                waiter.set_exception(error)
                # Nobody may be awaiting it; do not warn about an unretrieved error.
                waiter.exception()
        self._pong_waiters.clear()
        if not self._writer.is_closing():
            self._writer.close()
        if not self._done.done():
            self._done.set_result(None)


class _Connect:
    """``await connect(...)`` or ``async with connect(...) as websocket``."""

    def __init__(self, coroutine: Awaitable[WebSocket]) -> None:
        self._coroutine = coroutine
        self._websocket: WebSocket | None = None

    def __await__(self) -> Generator[Any, None, WebSocket]:
        return self._coroutine.__await__()

    async def __aenter__(self) -> WebSocket:
        self._websocket = await self._coroutine
        return self._websocket

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._websocket is not None:
            await self._websocket.close()


def connect(
    url: str,
    *,
    subprotocols: Sequence[str] = (),
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
    ssl: ssl_module.SSLContext | None = None,
    open_timeout: float | None = 10.0,
    http2: bool = False,
    **options: Any,
) -> _Connect:
    """Open a WebSocket connection to ``url`` (``ws://`` or ``wss://``).

    Options are those of :class:`~wsproto_core.drivers.Settings` (compression,
    limits, keepalive, timeouts). Raises :class:`HandshakeRejected` when the
    server answers with plain HTTP, ``InvalidURL`` for a bad URL, and ``OSError``
    when the connection fails.

    ``http2=True`` (the ``http2`` extra) opens the WebSocket as a stream of an
    HTTP/2 connection (RFC 8441), reusing this loop's open connection to the
    same server: ``wss://`` negotiates ``h2`` by ALPN, ``ws://`` speaks HTTP/2
    at once (h2c with prior knowledge). The result is a
    :class:`~wsproto_core.drivers.http2.H2WebSocket`, with the same methods.
    """
    settings = Settings.from_options(options)
    if http2:
        return _Connect(
            _open_http2(
                url,
                settings,
                subprotocols=subprotocols,
                extra_headers=extra_headers,
                ssl=ssl,
                open_timeout=open_timeout,
            )
        )
    return _Connect(
        _open(
            url,
            settings,
            subprotocols=subprotocols,
            extra_headers=extra_headers,
            ssl=ssl,
            open_timeout=open_timeout,
        )
    )


async def _open(
    url: str,
    settings: Settings,
    *,
    subprotocols: Sequence[str],
    extra_headers: Sequence[tuple[bytes, bytes]],
    ssl: ssl_module.SSLContext | None,
    open_timeout: float | None,
) -> WebSocket:
    target = parse_url(url)
    context = (ssl or ssl_module.create_default_context()) if target.secure else None
    async with asyncio.timeout(open_timeout):
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_STREAM_LIMIT, loop=loop)
        protocol = _Protocol(reader, loop=loop)
        transport, _ = await loop.create_connection(lambda: protocol, target.host, target.port, ssl=context)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            connection = WSConnection(
                ConnectionType.CLIENT,
                max_frame_size=settings.max_frame_size,
                max_message_size=settings.max_message_size,
            )
            writer.write(connection.send(request_for(target, settings, subprotocols, extra_headers)))
            opening = ClientOpening(connection)
            while (accepted := opening.receive(await reader.read(_STREAM_READ_SIZE))) is None:
                pass
        except BaseException:
            writer.transport.abort()
            raise
    managed = managed_connection(connection, settings, client=True, now=asyncio.get_running_loop().time())
    return WebSocket(reader, writer, managed, settings, subprotocol=accepted.subprotocol)


async def _open_http2(
    url: str,
    settings: Settings,
    *,
    subprotocols: Sequence[str],
    extra_headers: Sequence[tuple[bytes, bytes]],
    ssl: ssl_module.SSLContext | None,
    open_timeout: float | None,
) -> Any:
    from .http2 import open_websocket  # noqa: PLC0415 (the h2 library is the optional extra "http2")

    async with asyncio.timeout(open_timeout):
        return await open_websocket(
            parse_url(url), settings, subprotocols=subprotocols, extra_headers=extra_headers, ssl=ssl
        )


Handler = Callable[[WebSocket], Awaitable[None]]


class _Tracked:
    """What a server keeps track of, so that closing it leaves nothing running."""

    def __init__(self) -> None:
        #: Open WebSockets, and HTTP/2 connections (which close theirs): each has ``close(code, reason)``.
        self.open: set[Any] = set()
        #: Connections still in the opening handshake (or answering with plain HTTP).
        self.handshaking: set[asyncio.StreamWriter] = set()
        #: Every connection's task, from accept to the handler's end.
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closing = False


class Server:
    """A listening WebSocket server; ``async with`` it, or call :meth:`close`."""

    def __init__(self, server: asyncio.Server, tracked: _Tracked) -> None:
        self._server = server
        self._tracked = tracked

    @property
    def port(self) -> int:
        """The port of the first listening socket (useful with port 0)."""
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def sockets(self) -> tuple[Any, ...]:
        """The listening sockets."""
        return tuple(self._server.sockets)

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        await self._server.serve_forever()

    async def close(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Stop listening, close every connection (1001: going away), and wait for the handlers to return.

        Connections still in the opening handshake are dropped.
        """
        tracked = self._tracked
        tracked.closing = True
        self._server.close()
        for writer in list(tracked.handshaking):
            writer.transport.abort()
        await asyncio.gather(
            *(websocket.close(code, reason) for websocket in list(tracked.open)), return_exceptions=True
        )
        # asyncio.wait, not gather: if this wait is cancelled, the connections' tasks are not.
        others = tracked.tasks - {asyncio.current_task()}
        if others:
            await asyncio.wait(others)
        await self._server.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()


async def serve(
    handler: Handler,
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    subprotocols: Sequence[str] = (),
    process_request: ProcessRequest | None = None,
    ssl: ssl_module.SSLContext | None = None,
    open_timeout: float | None = 10.0,
    http2: bool = False,
    **options: Any,
) -> Server:
    """Listen on ``host:port`` and run ``await handler(websocket)`` for each connection.

    ``subprotocols`` are ours, in order of preference. ``process_request`` may
    answer any HTTP request with plain HTTP (see :data:`ProcessRequest`). The
    connection is closed (1000) when the handler returns, or (1011) when it
    raises. Options are those of :class:`~wsproto_core.drivers.Settings`.

    ``http2=True`` (the ``http2`` extra) also serves WebSockets over HTTP/2
    (RFC 8441) on the same port, many per connection: with ``ssl``, ALPN
    chooses (``h2`` or ``http/1.1``; the context's ALPN protocols are set);
    without, a client that opens with the HTTP/2 preface gets HTTP/2 (h2c with
    prior knowledge). See :mod:`wsproto_core.drivers.http2`.
    """
    settings = Settings.from_options(options)
    tracked = _Tracked()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tracked.tasks.add(task)
        try:
            await connection_task(reader, writer)
        finally:
            tracked.tasks.discard(task)

    async def connection_task(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tracked.handshaking.add(writer)
        try:
            async with asyncio.timeout(open_timeout):
                connection, request = await _server_handshake(reader, writer, settings, process_request)
        except (TimeoutError, ConnectionError, OSError, RemoteProtocolError):
            writer.transport.abort()
            return
        finally:
            tracked.handshaking.discard(writer)
        if request is None:
            writer.close()
            return
        if tracked.closing:
            writer.transport.abort()
            return
        accept = accept_for(request, settings, subprotocols)
        writer.write(connection.send(accept))
        websocket = WebSocket(
            reader,
            writer,
            managed_connection(connection, settings, client=False, now=asyncio.get_running_loop().time()),
            settings,
            subprotocol=accept.subprotocol,
            request=request,
        )
        tracked.open.add(websocket)
        try:
            await handler(websocket)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("WebSocket handler failed")
            with contextlib.suppress(Exception):
                await websocket.close(1011, "internal error")
        finally:
            with contextlib.suppress(Exception):
                await websocket.close()
            tracked.open.discard(websocket)

    loop = asyncio.get_running_loop()

    http2_server = None
    if http2:
        from .http2 import H2Server  # noqa: PLC0415 (the h2 library is the optional extra "http2")

        http2_server = H2Server(handler, settings, subprotocols, process_request, tracked)  # type: ignore[arg-type]
        if ssl is not None:
            ssl.set_alpn_protocols(["h2", "http/1.1"])

    def protocol() -> asyncio.BaseProtocol:
        http1 = _Protocol(asyncio.StreamReader(limit=_STREAM_LIMIT, loop=loop), on_client, loop=loop)
        return http1 if http2_server is None else http2_server.protocol(http1)

    server = await loop.create_server(protocol, host, port, ssl=ssl)
    return Server(server, tracked)


async def _server_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    settings: Settings,
    process_request: ProcessRequest | None,
) -> tuple[WSConnection, Request | None]:
    opening = ServerOpening(settings, process_request)
    while not opening.receive(await reader.read(_STREAM_READ_SIZE)):
        pass
    writer.write(opening.response)
    return opening.connection, opening.request
