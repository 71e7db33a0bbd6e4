"""The trio client: ``connect``, ``reconnect`` and ``unix_connect`` (public in :mod:`wsproto_core.drivers.trio`)."""

from __future__ import annotations

import contextlib
import ssl as ssl_module
from collections.abc import AsyncIterator, Sequence
from typing import Any

import trio

from ._common import (
    READ_SIZE,
    ClientOptions,
    Settings,
    WebSocketURL,
    parse_url,
)
from ._trio_connection import WebSocket
from ._trio_io import _timeout
from .proxy import ProxyURL, Tunnel
from .reconnect import Backoff, reconnecting


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
