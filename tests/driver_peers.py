"""Real peers on 127.0.0.1 for the trio and thread driver tests.

* :func:`websockets_server` runs the ``websockets`` library's threaded server on
  an ephemeral port (an independent RFC 6455 implementation);
* :func:`silent_server` / :func:`silent_client` complete the opening handshake
  by hand and then never read again: a peer that never answers a Ping or a Close;
* :func:`tls_contexts` makes a throwaway CA and a certificate for 127.0.0.1;
* :func:`http_get` sends one plain HTTP request and reads the whole answer.

Everything started here is stopped when its ``with`` block ends.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import trustme
import websockets.exceptions
import websockets.sync.server

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
MiB = 1024 * 1024


@contextlib.contextmanager
def websockets_server(handler: Callable[[Any], None], **kwargs: Any) -> Iterator[int]:
    """Run ``websockets.sync.server.serve(handler, ...)`` in a thread; yield its port."""
    with websockets.sync.server.serve(handler, "127.0.0.1", 0, **kwargs) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.socket.getsockname()[1]
        finally:
            server.shutdown()
            thread.join(10)


def websockets_echo(record: dict[str, Any]) -> Callable[[Any], None]:
    """A websockets handler that echoes and notes what it saw in ``record``."""

    def handler(connection: Any) -> None:
        record["path"] = connection.request.path
        record["subprotocol"] = connection.subprotocol
        record["extensions"] = [extension.name for extension in connection.protocol.extensions]
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            for message in connection:
                connection.send(message)
        record["close_code"] = connection.close_code
        record["close_reason"] = connection.close_reason

    return handler


def _read_head(sock: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return head


def _accept_value(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


@contextlib.contextmanager
def raw_server(script: Callable[[socket.socket, threading.Event], None] | None = None) -> Iterator[int]:
    """A server that accepts one upgrade by hand, then runs ``script(sock, stop)``.

    The default script never reads again: no Pong, no reply to a Close.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def run() -> None:
        with contextlib.suppress(OSError):
            sock, _ = listener.accept()
            accepted.append(sock)
            head = _read_head(sock)
            key = next(
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            sock.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + _accept_value(key) + b"\r\n\r\n"
            )
            if script is None:
                stop.wait(20)
            else:
                script(sock, stop)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(10)
        for sock in accepted:
            sock.close()


def silent_server() -> contextlib.AbstractContextManager[int]:
    """A server that accepts the upgrade, then never reads (no Pong, no Close reply)."""
    return raw_server()


def rude_server() -> contextlib.AbstractContextManager[int]:
    """A server that accepts the upgrade, reads a little, then resets the connection.

    Send more than the socket buffers hold: the reset interrupts the write.
    """

    def script(sock: socket.socket, stop: threading.Event) -> None:
        sock.recv(1)
        time.sleep(0.2)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    return raw_server(script)


def frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked server frame (payload under 126 bytes)."""
    assert len(payload) < 126
    return bytes([0x80 | opcode, len(payload)]) + payload


def silent_client(port: int, target: str = "/") -> socket.socket:
    """Open a WebSocket by hand and return the socket; the caller then never reads from it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {KEY.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = _read_head(sock)
    assert head.startswith(b"HTTP/1.1 101"), head
    assert _accept_value(KEY) in head
    return sock


def read_until_eof(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@contextlib.contextmanager
def mute_server() -> Iterator[int]:
    """A TCP server that accepts and never answers (for ``open_timeout``)."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@contextlib.contextmanager
def hangup_server() -> Iterator[int]:
    """A TCP server that reads the request and hangs up without answering."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        with contextlib.suppress(OSError):
            sock, _ = listener.accept()
            with sock:
                _read_head(sock)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(10)


def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1 and localhost, and a client context trusting it."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def http_get(port: int, target: str = "/", request: bytes | None = None) -> bytes:
    """Send a plain HTTP GET (or ``request``) and return the whole response."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request or f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        return read_until_eof(sock)
