"""wsproto_core on asyncio: ``connect`` for clients, ``serve`` for servers.

Everything runs in the transport's protocol callbacks, with no task between
the socket and the application: the opening handshake is fed to the sans-I/O
:class:`~wsproto_core.drivers._common.ServerOpening` (or ``ClientOpening``) as
bytes arrive, and after it every read goes straight to a
:class:`~wsproto_core.managed.ManagedConnection` (which answers Pings and
Closes and assembles messages). A server starts the handler's task only once
the handshake succeeded. The only other moving part is one timer callback at
the connection's next deadline (keepalive, close timeout, open timeout).

Two ways to receive messages:

- the handler API: ``await websocket.recv()`` or ``async for``. Messages wait
  in a bounded queue; when it is full the transport stops reading, so a slow
  application slows the peer down through TCP instead of growing memory. A
  ``recv()`` that finds a message queued returns it without a Future.
- the callback API (:class:`Listener`, :func:`serve_listener`, ``connect(...,
  listener=...)``): each message is handed to ``listener.on_message`` inside
  the read callback, and :meth:`WebSocket.send_nowait` writes the reply; all
  the replies to one read go out in one write.

Reading also stops while the transport's write buffer is above its high-water
mark; ``send`` waits only then.

The ordering rule (kept by :class:`~wsproto_core.managed.ManagedConnection`,
``hold_after_message``): a message that was received before a Close (or
before a protocol violation) can still be answered. With the handler API a
read is parsed up to the first message with more bytes behind it; the rest is
parsed once the application took that message, either by its next
:meth:`WebSocket.recv` (in its own task: a pipelining peer costs no task switch
per message, and the replies go out together in one write), or at the next
event loop iteration, so that a Close behind the message is answered even if
the application only waits for the end (:meth:`WebSocket.wait_closed`). A
reply sent before the application's task next waits for something else
therefore precedes our answer to that Close. With the callback API the rule
holds by construction: the listener answers inside the parse.

Any event loop that implements asyncio's transport and protocol interfaces
will do (uvloop among them): nothing here checks a transport's class.

Its modules: ``websocket`` (the :class:`WebSocket` as the application uses it,
and :class:`Listener`), ``io`` (the WebSocket's half that the transport and the
loop drive: reading, writing, the timer, backpressure; on the drivers' shared
sans-I/O ``WebSocketState``), ``protocol`` (the transport's protocol, which
hands bytes to the opening handshake, then to the WebSocket), ``server`` and
``client``.
"""

from __future__ import annotations

from .client import connect, unix_connect
from .server import Handler as Handler
from .server import Server, serve, serve_listener, unix_serve
from .websocket import Listener, PongWaiter, WebSocket

__all__ = [
    "Listener",
    "PongWaiter",
    "Server",
    "WebSocket",
    "connect",
    "serve",
    "serve_listener",
    "unix_connect",
    "unix_serve",
]
