"""The asyncio driver's client: :func:`connect` (and :func:`unix_connect`), with reconnection.

The connection's bytes go to the sans-I/O
:class:`~wsproto_core.drivers._common.ClientOpening` until the server's
answer is decided; a :class:`~wsproto_core.drivers.asyncio.websocket.WebSocket`
then takes the transport over.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from types import TracebackType
from typing import Any

from .._common import ClientOpening, ClientOptions, Settings, parse_url
from ..proxy import open_tunnel
from ..reconnect import Backoff, reconnecting
from .protocol import ConnectionProtocol, Opening
from .websocket import Listener, WebSocket, websocket_class


class _ClientOpening(Opening):
    """The client's handshake, fed from the protocol's callbacks; resolves ``opened``."""

    def __init__(self, opening: ClientOpening, listener: Listener | None) -> None:
        self._opening = opening
        self._listener = listener
        self._protocol: ConnectionProtocol | None = None
        self._transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[WebSocket] = asyncio.get_running_loop().create_future()

    def connection_made(self, protocol: ConnectionProtocol, transport: asyncio.Transport) -> None:
        self._protocol = protocol
        self._transport = transport
        transport.write(self._opening.request)

    def data_received(self, data: bytes) -> None:
        self._receive(data)

    def ended(self) -> None:
        self._receive(b"")

    def abandon(self) -> None:
        """``connect()`` gave up (cancelled, timed out, failed): nobody awaits ``opened`` any more.

        Cancelled now, a connection lost later cannot set an exception on it
        that no one retrieves; one already set is retrieved here for the same reason.
        """
        if not self.opened.done():
            self.opened.cancel()
        elif not self.opened.cancelled():
            self.opened.exception()

    def _receive(self, data: bytes) -> None:
        if self.opened.done():
            return
        try:
            accepted = self._opening.receive(data)
        except Exception as error:  # noqa: BLE001 - handed to the task waiting in connect()
            self.opened.set_exception(error)
            return
        if accepted is None:
            return
        assert self._transport is not None and self._protocol is not None
        opening = self._opening
        websocket = websocket_class(asyncio.get_running_loop())(
            self._transport,
            self._protocol,
            opening.managed(asyncio.get_running_loop().time(), hold_after_message=self._listener is None),
            opening.settings,
            subprotocol=accepted.subprotocol,
            listener=self._listener,
        )
        self.opened.set_result(websocket)
        # Frames that came with the 101 are parsed now, before the next read.
        websocket._start(self._protocol)


class _Connect:
    """``await connect(...)``, ``async with connect(...) as websocket``, or ``async for websocket in connect(...)``."""

    def __init__(self, open_connection: Callable[[], Awaitable[WebSocket]], backoff: Backoff | None = None) -> None:
        self._open = open_connection
        self._backoff = backoff
        self._websocket: WebSocket | None = None

    def __await__(self) -> Generator[Any, None, WebSocket]:
        return self._open().__await__()

    def __aiter__(self) -> AsyncIterator[WebSocket]:
        backoff = self._backoff or Backoff()
        return reconnecting(self._open, backoff, backoff.sleep or asyncio.sleep)

    async def __aenter__(self) -> WebSocket:
        self._websocket = await self._open()
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
    listener: Listener | None = None,
    http2: bool = False,
    proxy: str | bool | None = True,
    backoff: Backoff | None = None,
    unix_path: str | None = None,
    **options: Any,
) -> _Connect:
    """Open a WebSocket connection to ``url`` (``ws://`` or ``wss://``).

    With a ``listener``, messages go to its callbacks instead of ``recv()``.
    ``proxy``: ``True`` takes the proxy from the environment (``HTTPS_PROXY``
    for ``wss://``, ``HTTP_PROXY`` for ``ws://``, then ``ALL_PROXY``; hosts in
    ``NO_PROXY`` are reached directly), a URL (``http://``, ``socks5://``,
    ``socks5h://``) names one, ``None`` connects directly; see
    :mod:`wsproto_core.drivers.proxy`, which raises ``ProxyError`` (an
    ``OSError``) when the proxy refuses.
    Options are those of :class:`~wsproto_core.drivers.Settings` (compression,
    limits, keepalive, timeouts). Raises :class:`HandshakeRejected` when the
    server answers with plain HTTP, ``InvalidURL`` for a bad URL, and ``OSError``
    when the connection fails.

    ``http2=True`` (the ``http2`` extra) opens the WebSocket as a stream of an
    HTTP/2 connection (RFC 8441), reusing this loop's open connection to the
    same server: ``wss://`` negotiates ``h2`` by ALPN, ``ws://`` speaks HTTP/2
    at once (h2c with prior knowledge). The result is a :class:`WebSocket`
    whose transport is the stream (see :mod:`wsproto_core.drivers.http2`).

    ``async for websocket in connect(...)`` reconnects: each iteration yields a
    fresh open connection, and the previous one is closed. Failed attempts are
    retried with exponential backoff and jitter, or raised when they are
    permanent, as ``backoff`` (a :class:`~wsproto_core.drivers.reconnect.Backoff`,
    whose defaults are documented there) says.

    ``unix_path`` connects to a server listening on that Unix domain socket
    instead (no proxy); the URL still gives the request's target and Host,
    and ``wss://`` runs TLS on the socket. See :func:`unix_connect`.
    """
    client = ClientOptions(
        parse_url(url), Settings.from_options(options), subprotocols, extra_headers, ssl, open_timeout, unix_path, proxy
    )
    if http2:
        return _Connect(lambda: _open_http2(client), backoff)
    return _Connect(lambda: _open(client, listener), backoff)


def unix_connect(path: str, url: str = "ws://localhost/", **kwargs: Any) -> _Connect:
    """:func:`connect` to a server listening on the Unix domain socket ``path``.

    ``url`` gives the request's target and Host header (and ``wss://`` TLS on
    the socket, checked against its host). The other arguments are those of
    :func:`connect`: ``await``, ``async with`` and ``async for`` all work.
    """
    return connect(url, unix_path=path, **kwargs)


async def _open(client: ClientOptions, listener: Listener | None) -> WebSocket:
    target, context = client.url, client.ssl_context()
    opening = _ClientOpening(client.opening(), listener)
    loop = asyncio.get_running_loop()
    transport: asyncio.Transport | None = None
    try:
        async with asyncio.timeout(client.open_timeout):
            through = client.through()
            if client.unix_path is not None:
                transport, _ = await loop.create_unix_connection(
                    lambda: ConnectionProtocol(opening),
                    client.unix_path,
                    ssl=context,
                    server_hostname=target.host if context is not None else None,
                )
            elif through is None:
                transport, _ = await loop.create_connection(
                    lambda: ConnectionProtocol(opening), target.host, target.port, ssl=context
                )
            else:
                transport, _ = await loop.create_connection(
                    lambda: ConnectionProtocol(opening),
                    sock=await open_tunnel(through, target),
                    ssl=context,
                    server_hostname=target.host if context is not None else None,
                )
            return await opening.opened
    except BaseException:
        opening.abandon()
        if transport is not None:
            transport.abort()
        raise


async def _open_http2(client: ClientOptions) -> WebSocket:
    from ..http2 import open_websocket  # noqa: PLC0415 (the h2 library is the optional extra "http2")

    async with asyncio.timeout(client.open_timeout):
        return await open_websocket(
            client.url,
            client.settings,
            subprotocols=client.subprotocols,
            extra_headers=client.extra_headers,
            ssl=client.ssl,
        )
