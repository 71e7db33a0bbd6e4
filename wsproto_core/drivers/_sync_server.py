"""The threads server: ``serve``, ``unix_serve`` and :class:`Server` (public in :mod:`wsproto_core.drivers.sync`)."""

from __future__ import annotations

import logging
import selectors
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

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
    remove_stale_unix_socket,
)
from ._sync_connection import WebSocket, _Deadline
from ._sync_io import _Waker
from .clock import MONOTONIC, Clock

#: The handlers' failures are logged here (the public module's name).
logger = logging.getLogger("wsproto_core.drivers.sync")


Handler = Callable[[WebSocket], None]


class Server:
    """A listening WebSocket server: :meth:`serve_forever` in a thread, :meth:`shutdown` (or ``with``) to stop."""

    def __init__(
        self, sock: socket.socket, handler: Handler, options: ServerOptions, *, clock: Clock = MONOTONIC
    ) -> None:
        self.socket = sock
        self._clock = clock
        self._handler = handler
        self._options = options
        self._settings = options.settings
        self._upgrade = options.upgrade()
        self._lock = threading.Lock()
        self._connections: set[WebSocket] = set()
        self._threads: set[threading.Thread] = set()
        self._waker = _Waker()
        self._shutting_down = False
        self._serving = threading.Lock()

    @property
    def port(self) -> int:
        """The port of the listening socket (useful with port 0)."""
        return int(self.socket.getsockname()[1])

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets."""
        return (self.socket,)

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown`, each handled in its own thread."""
        with self._serving:
            if self._shutting_down:
                return
            with selectors.DefaultSelector() as selector:
                selector.register(self.socket, selectors.EVENT_READ)
                selector.register(self._waker, selectors.EVENT_READ)
                while not self._shutting_down:
                    selector.select()
                    self._accept()

    def _accept(self) -> None:
        try:
            conn, _ = self.socket.accept()
        except OSError:
            return  # Woken for shutdown, or the client gave up already.
        conn.setblocking(True)
        thread = threading.Thread(target=self._handle, args=(conn,), name="wsproto_core handler", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def shutdown(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Stop listening, close every connection (1001: going away), and wait for the handlers."""
        with self._lock:
            self._shutting_down = True
        self._waker.wake()
        with self._serving:  # serve_forever has returned.
            self.socket.close()
            self._waker.close()
        with self._lock:
            connections, threads = list(self._connections), list(self._threads)
        for websocket in connections:
            websocket._start_closing(code, reason)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.shutdown()

    def _handle(self, sock: socket.socket) -> None:
        try:
            self._run(sock)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _run(self, sock: socket.socket) -> None:
        settings = self._settings
        with self._lock:
            # This thread is one of them; those not yet open are handshaking.
            refusal = admission_refusal(
                settings,
                handshaking=len(self._threads) - len(self._connections) - 1,
                connections=len(self._threads) - 1,
            )
        if refusal is not None:
            _refuse(sock, refusal)
            return
        options = self._options
        deadline = _Deadline(options.open_timeout)
        try:
            if options.ssl is not None:
                sock = options.ssl.wrap_socket(deadline.apply(sock), server_side=True)
            opening = _server_handshake(sock, options, deadline)
            if opening.request is None:
                sock.close()
                return
            answer, accept = opening.upgrade(self._upgrade, settings)
            # The timers start before the 101 goes out: a client (or a test
            # moving a ManualClock) that saw it cannot be ahead of them.
            managed = opening.managed(self._clock.now(), hold_after_message=True)
            deadline.apply(sock).sendall(answer)
            sock.settimeout(None)
        except (OSError, RemoteProtocolError):
            sock.close()
            return
        if accept is None:
            sock.close()
            return
        websocket = WebSocket(
            sock, managed, settings, subprotocol=accept.subprotocol, request=opening.request, clock=self._clock
        )
        with self._lock:
            shutting_down = self._shutting_down
            self._connections.add(websocket)
        error: BaseException | None = None
        try:
            if shutting_down:  # shutdown() did not see this connection.
                websocket.close(1001, "server shutting down")
            else:
                self._handler(websocket)
        except Exception as exc:  # noqa: BLE001 - the handler policy (handler_close) decides
            error = exc
        finally:
            websocket.close(*handler_close(error, logger))
            with self._lock:
                self._connections.discard(websocket)


def _refuse(sock: socket.socket, answer: bytes) -> None:
    """Send ``answer`` (a 503), then drop what the client sends until it closes or the grace ends."""
    deadline = time.monotonic() + REFUSAL_GRACE
    try:
        sock.settimeout(REFUSAL_GRACE)
        sock.sendall(answer)
        sock.shutdown(socket.SHUT_WR)
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            if not sock.recv(READ_SIZE):
                break
    except OSError:
        pass
    finally:
        sock.close()


def serve(
    handler: Handler,
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
    clock: Clock = MONOTONIC,
    **options: Any,
) -> Server:
    """Listen on ``host:port``; :meth:`Server.serve_forever` runs ``handler(websocket)`` per connection.

    ``unix_path`` listens on that Unix domain socket instead (see :func:`unix_serve`).

    ``subprotocols`` are ours, in order of preference. ``process_request`` may
    answer any HTTP request with plain HTTP (see :data:`ProcessRequest`). The
    connection is closed (1000) when the handler returns, or (1011) when it
    raises. Options are those of :class:`~wsproto_core.drivers.Settings`.
    ``select_subprotocol`` and ``process_response`` are those of the asyncio
    driver's :func:`~wsproto_core.drivers.asyncio.serve`. ``clock`` is that of :func:`connect`.
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
    if unix_path is not None:
        remove_stale_unix_socket(unix_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(unix_path)
            sock.listen()
        except BaseException:
            sock.close()
            raise
    elif host is None and socket.has_dualstack_ipv6():
        # Every interface, IPv4 and IPv6, as asyncio and trio do.
        sock = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
    else:
        sock = socket.create_server((host or "", port))
    sock.setblocking(False)  # accept() after select() must not block if the client left.
    return Server(sock, handler, server_options, clock=clock)


def unix_serve(handler: Handler, path: str, **kwargs: Any) -> Server:
    """:func:`serve` on the Unix domain socket ``path`` (a stale socket file there is replaced).

    The other arguments are those of :func:`serve`; ``Server.port`` has no meaning here.
    """
    return serve(handler, unix_path=path, **kwargs)


def _server_handshake(sock: socket.socket, options: ServerOptions, deadline: _Deadline) -> ServerOpening:
    opening = options.opening()
    while not opening.receive(deadline.apply(sock).recv(READ_SIZE)):
        pass
    if opening.response:
        sock.sendall(opening.response)
    return opening
