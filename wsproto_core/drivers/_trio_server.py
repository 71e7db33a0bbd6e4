"""The trio server: ``serve``, ``unix_serve`` and :class:`Server` (public in :mod:`wsproto_core.drivers.trio`)."""

from __future__ import annotations

import contextlib
import logging
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from ..errors import RemoteProtocolError
from ._common import (
    READ_SIZE,
    REFUSAL_GRACE,
    ProcessRequest,
    ProcessResponse,
    SelectSubprotocol,
    ServerOpening,
    ServerOptions,
    Settings,
    admission_refusal,
    handler_close,
    managed_connection,
    remove_stale_unix_socket,
)
from ._trio_connection import WebSocket
from ._trio_io import _STREAM_ERRORS, _timeout

#: The handlers' failures are logged here (the public module's name).
logger = logging.getLogger("wsproto_core.drivers.trio")


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
    server_options = ServerOptions(
        Settings.from_options(options),
        subprotocols,
        process_request,
        ssl,
        open_timeout,
        select_subprotocol,
        process_response,
        unix_path,
    )
    await _serve(handler, host, port, server_options, task_status)


async def _serve(
    handler: Handler, host: str | None, port: int, options: ServerOptions, task_status: trio.TaskStatus[Server]
) -> None:
    settings = options.settings
    upgrade = options.upgrade()
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
            with trio.fail_after(_timeout(options.open_timeout)):
                opening = await _server_handshake(stream, options)
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
        [await _unix_listener(options.unix_path)]
        if options.unix_path is not None
        else list(await trio.open_tcp_listeners(port, host=host))
    )
    if options.ssl is not None:
        listeners = [trio.SSLListener(listener, options.ssl) for listener in listeners]
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


async def _server_handshake(stream: trio.abc.Stream, options: ServerOptions) -> ServerOpening:
    opening = options.opening()
    try:
        while not opening.receive(await stream.receive_some(READ_SIZE)):
            pass
    except ConnectionError as exc:
        raise trio.BrokenResourceError(str(exc)) from None
    if opening.response:
        await stream.send_all(opening.response)
    return opening
