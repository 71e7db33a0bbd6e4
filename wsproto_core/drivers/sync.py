"""wsproto_core on blocking sockets and threads: ``connect`` for clients, ``serve`` for servers.

Whichever thread reads feeds the socket to a
:class:`~wsproto_core.managed.ManagedConnection` (which answers Pings and
Closes and assembles messages) and runs its timers, waiting in ``poll()`` until
the socket is readable or the next deadline (keepalive, close timeout). An
application thread waiting in ``recv()`` reads itself, so that a message costs
no thread switch; each connection's watcher thread reads while the application
does not. A lock guards the ManagedConnection, another keeps socket writes in
order. Received messages wait in a bounded queue; when it is full the watcher
stops reading (backpressure). ``send`` returns once ``sendall`` wrote
everything. A server runs one thread per connection for its handler.

::

    with serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever).start()
        with connect(f"ws://127.0.0.1:{server.port}/") as websocket:
            websocket.send("hello")
            print(websocket.recv())
"""

from __future__ import annotations

from ._sync_client import connect, reconnect, unix_connect
from ._sync_connection import PongWaiter, WebSocket
from ._sync_server import Handler, Server, serve, unix_serve

__all__ = [
    "Handler",
    "PongWaiter",
    "Server",
    "WebSocket",
    "connect",
    "reconnect",
    "serve",
    "unix_connect",
    "unix_serve",
]
