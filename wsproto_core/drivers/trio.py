"""wsproto_core on trio: ``connect`` for clients, ``serve`` for servers.

Each connection has one reader task that feeds the stream to a
:class:`~wsproto_core.managed.ManagedConnection` (which answers Pings and
Closes and assembles messages) and runs its timers: it reads inside a cancel
scope whose deadline is the connection's next one (keepalive, close timeout).
Received messages wait in a bounded queue; when it is full the reader stops
reading (backpressure). ``send`` returns once everything is written. A plain
TCP connection is read and written on its standard socket directly (trio's
stream layers cost a scheduling round per call); TLS is a :class:`trio.SSLStream`.
On a plain TCP connection, a task waiting in ``recv()`` reads the socket
itself, so that a message wakes one task, not two; the reader task stands by
meanwhile and reads again once no task has done so for 50 ms, or at once
when the application closes, pings or waits for the close.

``connect`` is an async context manager; ``serve`` runs until cancelled and
hands its :class:`Server` (with the bound ``port``) to ``nursery.start``::

    async with trio.open_nursery() as nursery:
        server = await nursery.start(functools.partial(serve, handler, "127.0.0.1", 0))
        async with connect(f"ws://127.0.0.1:{server.port}/") as websocket:
            ...
        await server.close()
"""

from __future__ import annotations

from ._trio_client import connect, reconnect, unix_connect
from ._trio_connection import MessageStream, PongWaiter, WebSocket
from ._trio_server import Handler, Server, serve, unix_serve

__all__ = [
    "Handler",
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
