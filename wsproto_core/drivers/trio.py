"""wsproto_core on trio: ``connect`` for clients, ``serve`` for servers.

Each connection has one reader task that feeds the stream to a
:class:`~wsproto_core.managed.ManagedConnection` (which answers Pings and
Closes and assembles messages) and runs its timers: it reads inside a cancel
scope whose deadline is the connection's next one (keepalive, close timeout).
Received messages wait in a bounded queue; when it is full the reader stops
reading (backpressure). ``send`` returns once everything is written. A plain
TCP connection is read and written on its standard socket directly (trio's
stream layers cost a scheduling round per call); TLS is a :class:`trio.SSLStream`.

``connect`` is an async context manager; ``serve`` runs until cancelled and
hands its :class:`Server` (with the bound ``port``) to ``nursery.start``::

    async with trio.open_nursery() as nursery:
        server = await nursery.start(functools.partial(serve, handler, "127.0.0.1", 0))
        async with connect(f"ws://127.0.0.1:{server.port}/") as websocket:
            ...
        await server.close()
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import ssl as ssl_module
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Generator, Iterable, Sequence
from typing import Any

import trio

from ..errors import LocalProtocolError, RemoteProtocolError
from ..events import BytesMessage, Request, TextMessage
from ..managed import ManagedConnection
from ..state import ConnectionState
from ._common import (
    FRAGMENTS_IN_PROGRESS,
    READ_SIZE,
    REFUSAL_GRACE,
    UNFINISHED_MESSAGE,
    ClientOptions,
    ConnectionClosed,
    Fragments,
    ProcessRequest,
    ProcessResponse,
    SelectSubprotocol,
    ServerOpening,
    Settings,
    Upgrade,
    WebSocketURL,
    admission_refusal,
    async_pieces,
    handler_close,
    managed_connection,
    parse_url,
    remove_stale_unix_socket,
)
from ._streaming import MessageStream, take_message
from ._websocket import WebSocketState
from .proxy import ProxyURL, Tunnel
from .reconnect import Backoff, reconnecting

__all__ = [
    "MessageStream",
    "PongWaiter",
    "Server",
    "WebSocket",
    "connect",
    "reconnect",
    "serve",
    "unix_connect",
    "unix_serve",
]

logger = logging.getLogger(__name__)

#: Sends in a row that did not yield before one does (see WebSocket.send).
_SENDS_PER_YIELD = 16

#: What a broken or closed stream raises; the driver treats them all as end of stream.
_STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


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


class WebSocket(WebSocketState):
    """One open WebSocket connection.

    Created by :func:`connect` and :func:`serve`; use :meth:`send`, :meth:`recv`
    (or ``async for``), :meth:`ping` and :meth:`close`.

    Attributes: ``subprotocol`` (the negotiated one or ``None``), ``request``
    (server side: the client's ``Request``, with ``target`` and headers),
    ``close_code`` and ``close_reason`` (once closed).
    """

    # One per open connection in a server: slots keep an idle one small.
    __slots__ = (
        "_aborted",
        "_fragmenting",
        "_reader_scope",
        "_reader_waits",
        "_sends_unyielded",
        "_sock",
        "_stream",
        "_waiting",
        "_writing",
    )

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
        self._stream = stream
        self._sock = _plain_socket(stream)
        #: The tasks waiting for a change (recv, the reader, writers, wait_closed); a change wakes them all.
        self._waiting: list[trio.lowlevel.Task] = []
        self._aborted = False
        self._writing = False
        self._reader_waits = False
        self._sends_unyielded = 0
        #: The reader's cancel scope: its deadline is the connection's next timer.
        self._reader_scope = trio.CancelScope()
        #: send_fragments() is sending a message: other sends must wait for it.
        self._fragmenting = False

    def _start(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._read_loop, name="wsproto_core reader")

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
            async for piece in async_pieces(fragments):
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
            await self._wait()

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
        await self._wait()

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

    async def _flush(self) -> None:
        """Write what the connection queued; writes keep their order."""
        while self._writing:  # Another task's write waits for the socket: ours goes after it.
            await self._wait()
        data: bytes | memoryview = self._managed.data_to_send()
        if not data or self.closed:
            return
        sock = self._sock
        if sock is not None:
            # Hot path: the kernel usually takes the whole write at once.
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._abort()
                return
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
        self._writing = True
        written = False
        # The reader's timers wait for a blocked write (cancelling it would break the stream).
        self._reader_scope.deadline = math.inf
        try:
            if sock is None:
                await self._stream.send_all(data)
            else:
                while data:
                    await trio.lowlevel.wait_writable(sock)
                    data = data[sock.send(data) :]
            written = True
        except (*_STREAM_ERRORS, BlockingIOError):
            pass
        finally:
            self._writing = False
            self._reschedule()
            self._wake()
            # Failed or cancelled halfway: the stream cannot carry frames any more.
            if not written:
                self._abort()

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
                            try:
                                if sock is None:
                                    data = await self._stream.receive_some(READ_SIZE)
                                else:
                                    await trio.lowlevel.wait_readable(sock)
                                    data = sock.recv(READ_SIZE)
                            except BlockingIOError:
                                continue  # Woken without data (spuriously): wait again.
                            except _STREAM_ERRORS:
                                data = b""
                            managed.receive_data(data or None, trio.current_time())
                        if self._handle_events(trio.current_time()):
                            self._wake()
                        # The ordering rule (see ManagedConnection.held): the
                        # application takes the message before parsing goes on.
                        parse_first = managed.held
                        self._reschedule()
                        if managed.bytes_to_send:
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


@contextlib.asynccontextmanager
async def connect(
    url: str,
    *,
    subprotocols: Sequence[str] = (),
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
    ssl: ssl_module.SSLContext | None = None,
    open_timeout: float | None = 10.0,
    unix_path: str | None = None,
    proxy: str | bool | None = True,
    **options: Any,
) -> AsyncIterator[WebSocket]:
    """``async with connect(url) as websocket``: a WebSocket connection to ``url``.

    ``unix_path`` connects to a server listening on that Unix domain socket
    instead; the URL still gives the request's target and Host (see :func:`unix_connect`).
    ``proxy`` is that of the asyncio driver's
    :func:`~wsproto_core.drivers.asyncio.connect`: the environment's proxy
    (``True``), a proxy URL, or ``None`` to connect directly.

    Options are those of :class:`~wsproto_core.drivers.Settings` (compression,
    limits, keepalive, timeouts). Raises :class:`HandshakeRejected` when the
    server answers with plain HTTP, ``InvalidURL`` for a bad URL, ``OSError``
    when the connection (or TLS) fails and ``trio.TooSlowError`` after
    ``open_timeout``. The connection is closed (1000) when the block exits.
    """
    websocket = await _open(
        ClientOptions(
            parse_url(url),
            Settings.from_options(options),
            subprotocols,
            extra_headers,
            ssl,
            open_timeout,
            unix_path,
            proxy,
        )
    )
    # The block's exception is re-raised outside the nursery, so that it does
    # not come out wrapped in an ExceptionGroup.
    error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        websocket._start(nursery)
        try:
            yield websocket
        except BaseException as exc:  # noqa: BLE001 - re-raised below, once the nursery is closed
            error = exc
        await websocket.close()
    if error is not None:
        raise error


async def _open(options: ClientOptions) -> WebSocket:
    target = options.url
    with trio.fail_after(_timeout(options.open_timeout)):
        through = options.through()
        stream: trio.abc.Stream
        if through is not None:
            stream = await _open_tunnel(through, target)
        elif options.unix_path is not None:
            stream = await trio.open_unix_socket(options.unix_path)
        else:
            stream = await trio.open_tcp_stream(target.host, target.port)
        try:
            context = options.ssl_context()
            if context is not None:
                stream = trio.SSLStream(stream, context, server_hostname=target.host)
            opening = options.opening()
            try:
                await stream.send_all(opening.request)
                while (accepted := opening.receive(await stream.receive_some(READ_SIZE))) is None:
                    pass
            except trio.BrokenResourceError as exc:
                # A TLS failure: raise the ssl module's error, as the other drivers do.
                raise (exc.__cause__ if isinstance(exc.__cause__, OSError) else ConnectionError(str(exc))) from exc
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
    managed = opening.managed(trio.current_time(), hold_after_message=True)
    return WebSocket(stream, managed, options.settings, subprotocol=accepted.subprotocol)


@contextlib.asynccontextmanager
async def reconnect(
    url: str, *, backoff: Backoff | None = None, **kwargs: Any
) -> AsyncIterator[AsyncIterator[WebSocket]]:
    """``async with reconnect(url) as connections: async for websocket in connections``.

    Each iteration yields a fresh open connection; the previous one is closed
    when the loop asks for the next, and the current one when the block exits.
    Failed attempts are retried with exponential backoff and jitter, or raised
    when they are permanent, as ``backoff`` (a
    :class:`~wsproto_core.drivers.reconnect.Backoff`) says; an attempt that
    takes longer than ``open_timeout`` fails with ``TimeoutError`` (transient).
    The connections' tasks run in a nursery that the block owns, which is why
    this is an ``async with`` around the ``async for`` (an async generator
    must not yield from inside a nursery). The other arguments are those of
    :func:`connect`.
    """
    options = ClientOptions.parse(url, **kwargs)
    backoff = backoff or Backoff()
    error: BaseException | None = None
    async with trio.open_nursery() as nursery:

        async def open_connection() -> WebSocket:
            try:
                websocket = await _open(options)
            except trio.TooSlowError as exc:
                raise TimeoutError(f"The WebSocket handshake took more than {options.open_timeout} s") from exc
            websocket._start(nursery)
            return websocket

        connections = reconnecting(open_connection, backoff, backoff.sleep or trio.sleep)
        try:
            yield connections
        except BaseException as exc:  # noqa: BLE001 - re-raised below, once the nursery is closed
            error = exc
        finally:
            # Closes the connection the loop holds, if any (its tasks then end).
            await connections.aclose()
    if error is not None:
        raise error


async def _open_tunnel(proxy: ProxyURL, target: WebSocketURL) -> trio.abc.Stream:
    """A stream to ``target`` through ``proxy`` (HTTP CONNECT or SOCKS5, see :mod:`~wsproto_core.drivers.proxy`)."""
    stream = await trio.open_tcp_stream(proxy.host, proxy.port)
    try:
        tunnel = Tunnel(proxy, target)
        await stream.send_all(tunnel.opening)
        while True:
            to_send, opened = tunnel.receive(await stream.receive_some(4096))
            if to_send:
                await stream.send_all(to_send)
            if opened:
                return stream
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise


def unix_connect(
    path: str, url: str = "ws://localhost/", **kwargs: Any
) -> contextlib.AbstractAsyncContextManager[WebSocket]:
    """``async with unix_connect(path) as websocket``: :func:`connect` to the Unix domain socket ``path``.

    ``url`` gives the request's target and Host header (and ``wss://`` TLS on
    the socket, checked against its host); the other arguments are those of :func:`connect`.
    """
    return connect(url, unix_path=path, **kwargs)


Handler = Callable[[WebSocket], Awaitable[None]]


class Server:
    """A running :func:`serve`: its ``port``, and :meth:`close` to stop it."""

    def __init__(self, listeners: Sequence[trio.abc.Listener[Any]], connections: set[WebSocket]) -> None:
        self.listeners = list(listeners)
        self._connections = connections
        self._accept_scope = trio.CancelScope()
        self._serve_scope = trio.CancelScope()
        self._stopped = trio.Event()

    @property
    def sockets(self) -> tuple[Any, ...]:
        """The listening sockets."""
        sockets = []
        for listener in self.listeners:
            transport: Any = listener
            while isinstance(transport, trio.SSLListener):
                transport = transport.transport_listener
            sockets.append(transport.socket)
        return tuple(sockets)

    @property
    def port(self) -> int:
        """The port of the first listening socket (useful with port 0)."""
        return int(self.sockets[0].getsockname()[1])

    async def close(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Stop listening, close every connection (1001: going away), and wait for :func:`serve` to return.

        Handlers still running once their connections are closed, and
        connections still in the opening handshake, are cancelled.
        """
        self._accept_scope.cancel()
        async with trio.open_nursery() as nursery:
            for websocket in list(self._connections):
                nursery.start_soon(websocket.close, code, reason)
        self._serve_scope.cancel()
        await self._stopped.wait()


async def serve(
    handler: Handler,
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    subprotocols: Sequence[str] = (),
    process_request: ProcessRequest | None = None,
    ssl: ssl_module.SSLContext | None = None,
    open_timeout: float | None = 10.0,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
    select_subprotocol: SelectSubprotocol | None = None,
    process_response: ProcessResponse | None = None,
    unix_path: str | None = None,
    **options: Any,
) -> None:
    """Listen on ``host:port`` and run ``await handler(websocket)`` for each connection, until cancelled.

    ``unix_path`` listens on that Unix domain socket instead (see :func:`unix_serve`).

    Start it with ``await nursery.start(...)`` to get the :class:`Server` once
    it listens. ``subprotocols`` are ours, in order of preference.
    ``process_request`` may answer any HTTP request with plain HTTP (see
    :data:`ProcessRequest`). The connection is closed (1000) when the handler
    returns, or (1011) when it raises. Options are those of
    :class:`~wsproto_core.drivers.Settings`. ``select_subprotocol`` and
    ``process_response`` are those of the asyncio driver's
    :func:`~wsproto_core.drivers.asyncio.serve`.
    """
    settings = Settings.from_options(options)
    upgrade = Upgrade(subprotocols, select_subprotocol, process_response)
    connections: set[WebSocket] = set()
    handshaking = 0

    async def opened(stream: trio.abc.Stream) -> WebSocket | None:
        """The connection once its handshake succeeded (registered, its reader started), else ``None``.

        A function of its own, so that the handshake's objects are freed when it returns.
        """
        nonlocal handshaking
        handshaking += 1
        websocket = None
        try:
            with trio.fail_after(_timeout(open_timeout)):
                opening = await _server_handshake(stream, settings, process_request)
                connection, request = opening.connection, opening.request
                if request is None:
                    await stream.aclose()
                    return None
                answer, accept = opening.upgrade(upgrade, settings)
                if accept is None:
                    await stream.send_all(answer)
                    await stream.aclose()
                    return None
                managed = managed_connection(
                    connection, settings, client=False, now=trio.current_time(), hold_after_message=True
                )
                websocket = WebSocket(stream, managed, settings, subprotocol=accept.subprotocol, request=request)
                # Registered before the 101 goes out, so that Server.close()
                # closes a connection whose client saw it; writes wait for the 101.
                websocket._writing = True
                connections.add(websocket)
                # The reader runs in the server's nursery (one per connection would cost memory).
                websocket._start(handlers)
                await stream.send_all(answer)
                return websocket
        except (trio.TooSlowError, *_STREAM_ERRORS, RemoteProtocolError):
            if websocket is None:
                await trio.aclose_forcefully(stream)
            else:
                websocket._abort()
                connections.discard(websocket)
            return None
        finally:
            handshaking -= 1
            if websocket is not None:
                websocket._writing = False
                websocket._wake()

    async def on_client(stream: trio.abc.Stream) -> None:
        refusal = admission_refusal(settings, handshaking=handshaking, connections=handshaking + len(connections))
        if refusal is not None:
            await _refuse(stream, refusal)
            return
        websocket = await opened(stream)
        if websocket is None:
            return
        try:
            error: Exception | None = None
            try:
                await handler(websocket)
            except Exception as exc:  # noqa: BLE001 - the handler policy (handler_close) decides
                error = exc
            await websocket.close(*handler_close(error, logger))
        finally:
            connections.discard(websocket)

    listeners: list[trio.abc.Listener[Any]] = (
        [await _unix_listener(unix_path)]
        if unix_path is not None
        else list(await trio.open_tcp_listeners(port, host=host))
    )
    if ssl is not None:
        listeners = [trio.SSLListener(listener, ssl) for listener in listeners]
    server = Server(listeners, connections)
    try:
        with server._serve_scope:
            async with trio.open_nursery() as handlers:

                async def accept() -> None:
                    with server._accept_scope:
                        await trio.serve_listeners(on_client, listeners, handler_nursery=handlers)

                handlers.start_soon(accept)
                task_status.started(server)
    finally:
        server._stopped.set()


async def unix_serve(
    handler: Handler,
    path: str,
    *,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
    **kwargs: Any,
) -> None:
    """:func:`serve` on the Unix domain socket ``path`` (a stale socket file there is replaced).

    The other arguments are those of :func:`serve`; ``Server.port`` has no meaning here.
    """
    await serve(handler, unix_path=path, task_status=task_status, **kwargs)


async def _unix_listener(path: str) -> trio.SocketListener:
    remove_stale_unix_socket(path)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    try:
        await sock.bind(path)
        sock.listen()
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)


async def _refuse(stream: trio.abc.Stream, answer: bytes) -> None:
    """Send ``answer`` (a 503), then drop what the client sends until it closes or the grace ends."""
    with trio.move_on_after(REFUSAL_GRACE), contextlib.suppress(*_STREAM_ERRORS):
        await stream.send_all(answer)
        if isinstance(stream, trio.abc.HalfCloseableStream):
            await stream.send_eof()
        while await stream.receive_some(READ_SIZE):
            pass
    await trio.aclose_forcefully(stream)


async def _server_handshake(
    stream: trio.abc.Stream, settings: Settings, process_request: ProcessRequest | None
) -> ServerOpening:
    opening = ServerOpening(settings, process_request)
    try:
        while not opening.receive(await stream.receive_some(READ_SIZE)):
            pass
    except ConnectionError as exc:
        raise trio.BrokenResourceError(str(exc)) from None
    if opening.response:
        await stream.send_all(opening.response)
    return opening
