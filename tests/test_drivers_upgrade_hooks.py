"""``select_subprotocol`` and ``process_response`` on the asyncio, trio and thread servers.

Each server runs in a thread of its own (its event loop there, for asyncio and
trio) on 127.0.0.1 and is stopped by the test; the clients are blocking: our
thread client, and a raw socket where the 101's headers matter.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio

from wsproto_core.drivers import HandshakeRejected, HttpResponse
from wsproto_core.drivers import asyncio as asyncio_driver
from wsproto_core.drivers import sync as sync_driver
from wsproto_core.drivers import trio as trio_driver
from wsproto_core.events import AcceptConnection, Request

DRIVERS = ["asyncio", "trio", "threads"]


def describe(websocket: Any) -> str:
    """What a server handler sends back: the subprotocol it runs."""
    return str(websocket.subprotocol)


@contextlib.contextmanager
def asyncio_server(**kwargs: Any) -> Iterator[int]:
    async def handler(websocket: asyncio_driver.WebSocket) -> None:
        await websocket.send(describe(websocket))

    ports: list[int] = []
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        async with await asyncio_driver.serve(handler, **kwargs) as server:
            ports.append(server.port)
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),))
    thread.start()
    try:
        assert started.wait(10)
        yield ports[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
    assert not thread.is_alive()


@contextlib.contextmanager
def trio_server(**kwargs: Any) -> Iterator[int]:
    async def handler(websocket: trio_driver.WebSocket) -> None:
        await websocket.send(describe(websocket))

    ports: list[int] = []
    started = threading.Event()
    handles: list[tuple[trio.lowlevel.TrioToken, trio_driver.Server]] = []
    stopped = threading.Event()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server: trio_driver.Server = await nursery.start(
                functools.partial(trio_driver.serve, handler, "127.0.0.1", 0, **kwargs)
            )
            handles.append((trio.lowlevel.current_trio_token(), server))
            ports.append(server.port)
            started.set()

    def run() -> None:
        try:
            trio.run(main)
        finally:
            stopped.set()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert started.wait(10)
        yield ports[0]
    finally:
        token, server = handles[0]
        trio.from_thread.run(server.close, trio_token=token)
        thread.join(10)
    assert stopped.is_set() and not thread.is_alive()


@contextlib.contextmanager
def threads_server(**kwargs: Any) -> Iterator[int]:
    def handler(websocket: sync_driver.WebSocket) -> None:
        websocket.send(describe(websocket))

    with sync_driver.serve(handler, "127.0.0.1", 0, **kwargs) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            yield server.port
        finally:
            server.shutdown()
            thread.join(10)
    assert not thread.is_alive()


SERVERS: dict[str, Callable[..., contextlib.AbstractContextManager[int]]] = {
    "asyncio": asyncio_server,
    "trio": trio_server,
    "threads": threads_server,
}


def first_message(port: int, target: str = "/", subprotocols: tuple[str, ...] = ()) -> tuple[str | None, str | bytes]:
    """Our thread client's view: the negotiated subprotocol and the server's first message."""
    with sync_driver.connect(f"ws://127.0.0.1:{port}{target}", subprotocols=subprotocols) as websocket:
        return websocket.subprotocol, websocket.recv()


def response_head(port: int, target: str = "/") -> tuple[int, dict[bytes, bytes], bytes]:
    """A raw upgrade: the status code, the headers (names in lower case) and what followed the head."""
    key = base64.b64encode(os.urandom(16))
    request = (
        (
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: a, b\r\n"
        ).encode()
        + b"Sec-WebSocket-Key: "
        + key
        + b"\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"the server closed before its answer was whole: {received!r}"
            received += chunk
        head, rest = received.split(b"\r\n\r\n", 1)
        status_line, *lines = head.split(b"\r\n")
        headers = {}
        for line in lines:
            name, value = line.split(b":", 1)
            headers[name.strip().lower()] = value.strip()
        if not status_line.startswith(b"HTTP/1.1 101"):
            length = int(headers.get(b"content-length", b"0"))
            while len(rest) < length and (chunk := sock.recv(65536)):
                rest += chunk
        return int(status_line.split()[1]), headers, rest


# ================================================================== select_subprotocol


@pytest.mark.parametrize("driver", DRIVERS)
def test_select_subprotocol_chooses_from_the_request(driver: str) -> None:
    seen: list[tuple[str, list[str]]] = []

    def select(request: Request) -> str | None:
        seen.append((request.target, list(request.subprotocols)))
        if request.target == "/none":
            return None
        # The client's last choice, which the preference list would not pick.
        return request.subprotocols[-1]

    with SERVERS[driver](subprotocols=["chat.v1"], select_subprotocol=select) as port:
        assert first_message(port, "/pick", ("chat.v1", "chat.v2")) == ("chat.v2", "chat.v2")
        assert first_message(port, "/none", ("chat.v1",)) == (None, "None")
    assert seen == [("/pick", ["chat.v1", "chat.v2"]), ("/none", ["chat.v1"])]


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_subprotocol_the_client_did_not_offer_is_a_500_and_logged(
    driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.ERROR, "wsproto_core.drivers"),
        SERVERS[driver](select_subprotocol=lambda request: "other") as port,
        pytest.raises(HandshakeRejected) as caught,
    ):
        first_message(port, "/", ("chat",))
    assert caught.value.status_code == 500
    assert "which the client did not offer" in caplog.text


# ================================================================== process_response


def add_headers(request: Request, accept: AcceptConnection) -> AcceptConnection | HttpResponse | None:
    if request.target == "/forbidden":
        return HttpResponse(403, [(b"content-type", b"text/plain")], b"not for you")
    if request.target == "/as-is":
        return None
    return dataclasses.replace(
        accept, extra_headers=[*accept.extra_headers, (b"x-served-by", request.target.encode()[1:])]
    )


@pytest.mark.parametrize("driver", DRIVERS)
def test_process_response_edits_the_101(driver: str) -> None:
    with SERVERS[driver](subprotocols=["b"], process_response=add_headers) as port:
        status, headers, _ = response_head(port, "/node-7")
        assert status == 101
        assert headers[b"x-served-by"] == b"node-7"
        # The edit keeps what the server negotiated.
        assert headers[b"sec-websocket-protocol"] == b"b"
        status, headers, _ = response_head(port, "/as-is")
        assert status == 101
        assert b"x-served-by" not in headers
        assert first_message(port, "/node-8", ("b",)) == ("b", "b")


@pytest.mark.parametrize("driver", DRIVERS)
def test_process_response_answers_with_plain_http_instead(driver: str) -> None:
    with SERVERS[driver](process_response=add_headers) as port:
        status, headers, body = response_head(port, "/forbidden")
        assert (status, body) == (403, b"not for you")
        assert headers[b"content-type"] == b"text/plain"
        with pytest.raises(HandshakeRejected) as caught:
            first_message(port, "/forbidden")
        assert (caught.value.status_code, caught.value.body) == (403, b"not for you")
        # The server goes on serving.
        assert first_message(port, "/fine") == (None, "None")


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_process_response_that_raises_is_a_500_and_logged(driver: str, caplog: pytest.LogCaptureFixture) -> None:
    def broken(request: Request, accept: AcceptConnection) -> None:
        raise KeyError("bug")

    with caplog.at_level(logging.ERROR, "wsproto_core.drivers"), SERVERS[driver](process_response=broken) as port:
        status, _, body = response_head(port)
        assert (status, body) == (500, b"Internal server error.\n")
    assert "KeyError: 'bug'" in caplog.text
