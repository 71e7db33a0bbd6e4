"""The threads client: ``connect``, ``reconnect`` and ``unix_connect`` (public in :mod:`wsproto_core.drivers.sync`)."""

from __future__ import annotations

import socket
import ssl as ssl_module
import time
from collections.abc import Iterator, Sequence
from typing import Any

from ._common import (
    READ_SIZE,
    ClientOptions,
    Settings,
    WebSocketURL,
    parse_url,
)
from ._sync_connection import WebSocket, _Deadline
from .clock import MONOTONIC, Clock
from .proxy import ProxyURL, Tunnel
from .reconnect import Backoff


def connect(
    url: str,
    *,
    subprotocols: Sequence[str] = (),
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
    ssl: ssl_module.SSLContext | None = None,
    open_timeout: float | None = 10.0,
    unix_path: str | None = None,
    proxy: str | bool | None = True,
    clock: Clock = MONOTONIC,
    **options: Any,
) -> WebSocket:
    """Open a WebSocket connection to ``url`` (``ws://`` or ``wss://``); ``with`` closes it.

    ``unix_path`` connects to a server listening on that Unix domain socket
    instead; the URL still gives the request's target and Host (see :func:`unix_connect`).
    ``proxy`` is that of the asyncio driver's
    :func:`~wsproto_core.drivers.asyncio.connect`: the environment's proxy
    (``True``), a proxy URL, or ``None`` to connect directly.

    Options are those of :class:`~wsproto_core.drivers.Settings` (compression,
    limits, keepalive, timeouts). Raises :class:`HandshakeRejected` when the
    server answers with plain HTTP, ``InvalidURL`` for a bad URL, ``OSError``
    when the connection (or TLS) fails and ``TimeoutError`` after ``open_timeout``.

    ``clock`` is what the connection's timers read (see :mod:`~wsproto_core.drivers.clock`):
    a test gives a :class:`~wsproto_core.drivers.clock.ManualClock` to fire
    keepalive and timeouts without waiting.
    """
    return _open(
        clock,
        ClientOptions(
            parse_url(url),
            Settings.from_options(options),
            subprotocols,
            extra_headers,
            ssl,
            open_timeout,
            unix_path,
            proxy,
        ),
    )


def _open(clock: Clock, options: ClientOptions) -> WebSocket:
    target = options.url
    deadline = _Deadline(options.open_timeout)
    through = options.through()
    if through is not None:
        sock = _open_tunnel(through, target, deadline)
    elif options.unix_path is None:
        sock = socket.create_connection((target.host, target.port), timeout=options.open_timeout)
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            deadline.apply(sock).connect(options.unix_path)
        except BaseException:
            sock.close()
            raise
    try:
        context = options.ssl_context()
        if context is not None:
            sock = context.wrap_socket(deadline.apply(sock), server_hostname=target.host)
        opening = options.opening()
        deadline.apply(sock).sendall(opening.request)
        while (accepted := opening.receive(deadline.apply(sock).recv(READ_SIZE))) is None:
            pass
        sock.settimeout(None)
    except BaseException:
        sock.close()
        raise
    managed = opening.managed(clock.now(), hold_after_message=True)
    return WebSocket(sock, managed, options.settings, subprotocol=accepted.subprotocol, clock=clock)


def _open_tunnel(proxy: ProxyURL, target: WebSocketURL, deadline: _Deadline) -> socket.socket:
    """A socket to ``target`` through ``proxy`` (HTTP CONNECT or SOCKS5, see :mod:`~wsproto_core.drivers.proxy`)."""
    sock = deadline.apply(socket.create_connection((proxy.host, proxy.port)))
    try:
        tunnel = Tunnel(proxy, target)
        sock.sendall(tunnel.opening)
        while True:
            to_send, opened = tunnel.receive(deadline.apply(sock).recv(4096))
            if to_send:
                sock.sendall(to_send)
            if opened:
                return sock
    except BaseException:
        sock.close()
        raise


def unix_connect(path: str, url: str = "ws://localhost/", **kwargs: Any) -> WebSocket:
    """:func:`connect` to a server listening on the Unix domain socket ``path``.

    ``url`` gives the request's target and Host header (and ``wss://`` TLS on
    the socket, checked against its host); the other arguments are those of :func:`connect`.
    """
    return connect(url, unix_path=path, **kwargs)


def reconnect(
    url: str, *, backoff: Backoff | None = None, clock: Clock = MONOTONIC, **kwargs: Any
) -> Iterator[WebSocket]:
    """``for websocket in reconnect(url)``: a fresh open connection each time the previous one is done with.

    The previous connection is closed when the loop asks for the next one, and
    the current one when the loop is left. Failed attempts are retried with
    exponential backoff and jitter, or raised when they are permanent, as
    ``backoff`` (a :class:`~wsproto_core.drivers.reconnect.Backoff`) says. The
    other arguments are those of :func:`connect`.
    """
    options = ClientOptions.parse(url, **kwargs)
    backoff = backoff or Backoff()
    sleep = backoff.sleep or time.sleep
    attempts = backoff.attempts()
    while True:
        try:
            websocket = _open(clock, options)
        except Exception as error:
            delay = attempts.failed(error)
            if delay is None:
                raise
            sleep(delay)
            continue
        attempts.opened()
        with websocket:
            yield websocket
