"""The asyncio driver's servers: :func:`serve` (a handler per connection) and :func:`serve_listener` (callbacks).

Each accepted connection's bytes go to the sans-I/O
:class:`~wsproto_core.drivers._common.ServerOpening` until the handshake is
decided; a :class:`~wsproto_core.drivers.asyncio.websocket.WebSocket` then
takes the transport over, and the handler's task starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any

from .._common import (
    REFUSAL_GRACE,
    ProcessRequest,
    ProcessResponse,
    SelectSubprotocol,
    ServerOptions,
    Settings,
    admission_refusal,
    handler_close,
)
from .protocol import ConnectionProtocol, Opening
from .websocket import Listener, WebSocket, websocket_class

logger = logging.getLogger("wsproto_core.drivers.asyncio")

Handler = Callable[[WebSocket], Awaitable[None]]


class _Tracked:
    """What a server keeps track of, so that closing it leaves nothing running."""

    def __init__(self) -> None:
        #: Open WebSockets, and HTTP/2 connections (which close theirs): each has ``close(code, reason)``.
        self.open: set[Any] = set()
        #: Connections still in the opening handshake (or answering with plain HTTP).
        self.handshaking: set[asyncio.Transport] = set()
        #: Every handler's task.
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closing = False


class _ServerOpening(Opening):
    """The server's handshake, fed from the protocol's callbacks, under ``open_timeout``."""

    __slots__ = ("_opening", "_protocol", "_refused", "_server", "_timer", "_transport")

    def __init__(self, server: ServerConfig) -> None:
        self._server = server
        self._opening = server.options.opening()
        self._protocol: ConnectionProtocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, protocol: ConnectionProtocol, transport: asyncio.Transport) -> None:
        self._protocol = protocol
        self._transport = transport
        tracked = self._server.tracked
        refusal = admission_refusal(
            self._server.settings,
            handshaking=len(tracked.handshaking),
            connections=len(tracked.handshaking) + len(tracked.open),
        )
        if refusal is not None:
            self._refuse(refusal)
            return
        tracked.handshaking.add(transport)
        if self._server.open_timeout is not None:
            self._timer = asyncio.get_running_loop().call_later(self._server.open_timeout, self._give_up)

    def _refuse(self, answer: bytes) -> None:
        """Send ``answer``, then read and drop whatever comes until the client closes (or the grace ends).

        Closing at once with the client's bytes unread would reset the
        connection, and a reset can destroy the answer before the client reads it.
        """
        transport = self._transport
        assert transport is not None
        self._refused = True
        transport.write(answer)
        if transport.can_write_eof():
            transport.write_eof()
        self._timer = asyncio.get_running_loop().call_later(REFUSAL_GRACE, transport.abort)

    def _give_up(self) -> None:
        self._timer = None
        self._done()
        assert self._transport is not None
        self._transport.abort()

    def _done(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._server.tracked.handshaking.discard(self._transport)

    def ended(self) -> None:
        self._done()
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None and self._protocol is not None
        if self._refused:
            return
        try:
            decided = self._opening.receive(data)
        except Exception:
            logger.exception("WebSocket opening handshake failed")
            decided = False
            self.ended()
        if not decided:
            return
        self._done()
        opening = self._opening
        request = opening.request
        if request is None:
            # Answered with plain HTTP, or rejected: close once that is read.
            self._refuse(opening.response)
            return
        if opening.response:
            transport.write(opening.response)
        server = self._server
        if server.tracked.closing:
            transport.abort()
            return
        answer, accept = opening.upgrade(server.upgrade, server.settings)
        if accept is None:
            # process_response answered with plain HTTP (or a callback failed: 500).
            self._refuse(answer)
            return
        transport.write(answer)
        listener = server.listener_factory() if server.listener_factory is not None else None
        websocket = websocket_class(asyncio.get_running_loop())(
            transport,
            self._protocol,
            opening.managed(asyncio.get_running_loop().time(), hold_after_message=listener is None),
            server.settings,
            subprotocol=accept.subprotocol,
            request=request,
            listener=listener,
        )
        server.open(websocket, self._protocol)


class ServerConfig:
    """A listening server's settings and callbacks, shared by its connections."""

    def __init__(
        self, options: ServerOptions, *, handler: Handler | None, listener_factory: Callable[[], Listener] | None
    ) -> None:
        self.options = options
        self.settings = options.settings
        self.upgrade = options.upgrade()
        self.process_request = options.process_request
        self.open_timeout = options.open_timeout
        self.handler = handler
        self.listener_factory = listener_factory
        self.tracked = _Tracked()

    def protocol(self) -> ConnectionProtocol:
        return ConnectionProtocol(_ServerOpening(self))

    def open(self, websocket: WebSocket, protocol: ConnectionProtocol) -> None:
        """Track ``websocket``, start its handler, and let it take its transport over from ``protocol``."""
        tracked = self.tracked
        tracked.open.add(websocket)
        websocket._untrack = tracked.open
        if self.handler is not None:
            task = asyncio.get_running_loop().create_task(self._run_handler(websocket))
            tracked.tasks.add(task)
            task.add_done_callback(tracked.tasks.discard)
        websocket._start(protocol)

    async def _run_handler(self, websocket: WebSocket) -> None:
        assert self.handler is not None
        error: Exception | None = None
        try:
            await self.handler(websocket)
        except Exception as exc:  # noqa: BLE001 - the policy in handler_close() logs it
            error = exc
        finally:
            code, reason = handler_close(error, logger)
            with contextlib.suppress(Exception):
                await websocket.close(code, reason)
            self.tracked.open.discard(websocket)


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
        for transport in list(tracked.handshaking):
            transport.abort()
        await asyncio.gather(
            *(websocket.close(code, reason) for websocket in list(tracked.open)), return_exceptions=True
        )
        # asyncio.wait, not gather: if this wait is cancelled, the handlers' tasks are not.
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
    select_subprotocol: SelectSubprotocol | None = None,
    process_response: ProcessResponse | None = None,
    unix_path: str | None = None,
    **options: Any,
) -> Server:
    """Listen on ``host:port`` and run ``await handler(websocket)`` for each connection.

    ``unix_path`` listens on that Unix domain socket instead (see :func:`unix_serve`).

    ``subprotocols`` are ours, in order of preference. ``process_request`` may
    answer any HTTP request with plain HTTP (see :data:`ProcessRequest`). The
    connection is closed (1000) when the handler returns, or (1011) when it
    raises. Options are those of :class:`~wsproto_core.drivers.Settings`.

    ``select_subprotocol(request)`` chooses the subprotocol instead of the
    ``subprotocols`` list (see :data:`~wsproto_core.drivers.SelectSubprotocol`);
    ``process_response(request, accept)`` may edit the 101 or answer with plain
    HTTP instead (see :data:`~wsproto_core.drivers.ProcessResponse`).
    Both apply to HTTP/1.1 upgrades and to HTTP/2 streams alike.

    ``http2=True`` (the ``http2`` extra) also serves WebSockets over HTTP/2
    (RFC 8441) on the same port, many per connection: with ``ssl``, ALPN
    chooses (``h2`` or ``http/1.1``; the context's ALPN protocols are set);
    without, a client that opens with the HTTP/2 preface gets HTTP/2 (h2c with
    prior knowledge). See :mod:`wsproto_core.drivers.http2`.
    """
    config = ServerConfig(
        ServerOptions(
            Settings.from_options(options),
            subprotocols,
            process_request,
            ssl,
            open_timeout,
            select_subprotocol,
            process_response,
            unix_path,
        ),
        handler=handler,
        listener_factory=None,
    )
    protocol: Callable[[], asyncio.BaseProtocol] = config.protocol
    if http2:
        from ..http2 import H2Server  # noqa: PLC0415 (the h2 library is the optional extra "http2")

        http2_server = H2Server(config)
        if ssl is not None:
            ssl.set_alpn_protocols(["h2", "http/1.1"])

        def protocol() -> asyncio.BaseProtocol:
            return http2_server.protocol(config.protocol())

    server = await _listen(protocol, host, port, config.options)
    return Server(server, config.tracked)


async def unix_serve(handler: Handler, path: str, **kwargs: Any) -> Server:
    """:func:`serve` on the Unix domain socket ``path`` (a stale socket file there is replaced).

    The other arguments are those of :func:`serve`; ``Server.port`` has no meaning here.
    """
    return await serve(handler, unix_path=path, **kwargs)


async def _listen(
    protocol: Callable[[], asyncio.BaseProtocol], host: str | None, port: int, options: ServerOptions
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    if options.unix_path is not None:
        return await loop.create_unix_server(protocol, options.unix_path, ssl=options.ssl)
    return await loop.create_server(protocol, host, port, ssl=options.ssl)


async def serve_listener(
    listener_factory: Callable[[], Listener],
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    subprotocols: Sequence[str] = (),
    process_request: ProcessRequest | None = None,
    ssl: ssl_module.SSLContext | None = None,
    open_timeout: float | None = 10.0,
    select_subprotocol: SelectSubprotocol | None = None,
    process_response: ProcessResponse | None = None,
    unix_path: str | None = None,
    **options: Any,
) -> Server:
    """Listen on ``host:port`` with the callback API: ``listener_factory()`` makes each connection's :class:`Listener`.

    No task per connection: the listener's methods run in the read callbacks.
    The other arguments are those of :func:`serve`.
    """
    config = ServerConfig(
        ServerOptions(
            Settings.from_options(options),
            subprotocols,
            process_request,
            ssl,
            open_timeout,
            select_subprotocol,
            process_response,
            unix_path,
        ),
        handler=None,
        listener_factory=listener_factory,
    )
    server = await _listen(config.protocol, host, port, config.options)
    return Server(server, config.tracked)
