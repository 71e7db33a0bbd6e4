"""WebSockets over Unix domain sockets: ``unix_serve`` and ``unix_connect`` in each driver.

Each server listens on a socket file in a fresh temporary directory and is
stopped by the test that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import stat
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio
from driver_peers import tls_contexts

from wsproto_core.drivers import asyncio as asyncio_driver
from wsproto_core.drivers import sync as sync_driver
from wsproto_core.drivers import trio as trio_driver

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix domain sockets only")

T = TypeVar("T")


@pytest.fixture
def socket_path() -> Iterator[str]:
    # Not pytest's tmp_path: a socket's path must fit in about 100 bytes.
    with tempfile.TemporaryDirectory(prefix="wsc-") as directory:
        yield os.path.join(directory, "ws.sock")


def is_socket(path: str) -> bool:
    return stat.S_ISSOCK(os.stat(path).st_mode)


def stale_socket(path: str) -> None:
    """Leave a socket file behind, as a server that crashed would."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(path)
    assert is_socket(path)


async def echo_with_target(websocket: Any) -> None:
    """The asyncio and trio handler: each message back, after the request's target."""
    async for message in websocket:
        await websocket.send(f"{websocket.request.target if websocket.request else ''} {message}")


def sync_echo_with_target(websocket: sync_driver.WebSocket) -> None:
    for message in websocket:
        websocket.send(f"{websocket.request.target if websocket.request else ''} {message}")


@contextlib.contextmanager
def sync_serving(
    handler: Callable[[sync_driver.WebSocket], None], path: str, **kwargs: Any
) -> Iterator[sync_driver.Server]:
    """A threads server on ``path``, serving in its own thread until the block ends, then shut down and joined."""
    with sync_driver.unix_serve(handler, path, **kwargs) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            yield server
        finally:
            server.shutdown()
            thread.join(10)
    assert not thread.is_alive()


# ====================================================================== asyncio


def run_asyncio(test: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        async with asyncio.timeout(20):
            return await test()

    return asyncio.run(main())


def test_asyncio_unix_socket_round_trip(socket_path: str) -> None:
    stale_socket(socket_path)

    async def main() -> None:
        async with await asyncio_driver.unix_serve(echo_with_target, socket_path) as server:
            assert is_socket(socket_path)
            assert server.sockets[0].family == socket.AF_UNIX
            async with asyncio_driver.unix_connect(socket_path, "ws://localhost/room?x=1") as websocket:
                await websocket.send("hello")
                assert await websocket.recv() == "/room?x=1 hello"
            assert websocket.close_code == 1000
            # The default URL.
            async with asyncio_driver.unix_connect(socket_path) as websocket:
                await websocket.send("again")
                assert await websocket.recv() == "/ again"

    run_asyncio(main)


def test_asyncio_unix_connect_to_no_server_fails_with_oserror(socket_path: str) -> None:
    async def main() -> None:
        with pytest.raises(OSError):
            await asyncio_driver.unix_connect(socket_path)

    run_asyncio(main)


# ====================================================================== threads


def test_sync_unix_socket_round_trip(socket_path: str) -> None:
    stale_socket(socket_path)

    with sync_serving(sync_echo_with_target, socket_path) as server:
        assert is_socket(socket_path)
        assert server.socket.family == socket.AF_UNIX
        with sync_driver.unix_connect(socket_path, "ws://localhost/chat") as websocket:
            websocket.send("hello")
            assert websocket.recv() == "/chat hello"
        assert websocket.close_code == 1000


def test_sync_unix_serve_refuses_a_path_that_is_not_a_socket(socket_path: str) -> None:
    Path(socket_path).write_text("precious")
    with pytest.raises(OSError):
        sync_driver.unix_serve(lambda websocket: None, socket_path)
    assert Path(socket_path).read_text() == "precious"


# ====================================================================== trio


def run_trio(test: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        with trio.fail_after(20):
            return await test()

    return trio.run(main)


def test_trio_unix_socket_round_trip(socket_path: str) -> None:
    stale_socket(socket_path)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server: trio_driver.Server = await nursery.start(
                functools.partial(trio_driver.unix_serve, echo_with_target, socket_path)
            )
            assert is_socket(socket_path)
            assert server.sockets[0].family == socket.AF_UNIX
            async with trio_driver.unix_connect(socket_path, "ws://localhost/feed") as websocket:
                await websocket.send("hello")
                assert await websocket.recv() == "/feed hello"
            assert websocket.close_code == 1000
            await server.close()

    run_trio(main)


def test_sync_unix_socket_with_tls(socket_path: str) -> None:
    """``wss://`` over a Unix socket: TLS runs on the socket, the URL's host names the certificate."""
    server_context, client_context = tls_contexts()

    def handler(websocket: sync_driver.WebSocket) -> None:
        websocket.send("over tls")

    with (
        sync_serving(handler, socket_path, ssl=server_context),
        sync_driver.unix_connect(socket_path, "wss://localhost/", ssl=client_context) as websocket,
    ):
        assert websocket.recv() == "over tls"
