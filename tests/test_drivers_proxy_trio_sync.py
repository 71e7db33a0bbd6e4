"""The trio and thread clients through HTTP CONNECT and SOCKS5 proxies (one Tunnel, drivers.proxy).

The proxies and the echo server are those of test_drivers_proxy, on
127.0.0.1 in an asyncio loop of their own thread, stopped by each test.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from test_drivers_proxy import echo, http_proxy, socks5_proxy

from wsproto_core.drivers import sync as sync_driver
from wsproto_core.drivers import trio as trio_driver
from wsproto_core.drivers.asyncio import serve
from wsproto_core.drivers.proxy import ProxyError


class Proxies:
    """An echo server, an HTTP CONNECT proxy, a refusing one and a SOCKS5 proxy with a password."""

    def __init__(self) -> None:
        self.seen_http: list[Any] = []
        self.seen_refused: list[Any] = []
        self.seen_socks: list[Any] = []
        self.ports: dict[str, int] = {}


@contextlib.contextmanager
def proxies() -> Iterator[Proxies]:
    running = Proxies()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()

    async def main() -> None:
        server = await serve(echo, "127.0.0.1", 0)
        try:
            async with (
                http_proxy(running.seen_http) as http_port,
                http_proxy(running.seen_refused, refuse=b"HTTP/1.1 403 Forbidden\r\n\r\n") as refusing_port,
                socks5_proxy(running.seen_socks, (b"me", b"secret")) as socks_port,
            ):
                running.ports = {"echo": server.port, "http": http_port, "refusing": refusing_port, "socks": socks_port}
                started.set()
                await stop.wait()
        finally:
            await server.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),))
    thread.start()
    try:
        assert started.wait(10)
        yield running
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
    assert not thread.is_alive()


def test_sync_client_through_http_connect_and_socks5(monkeypatch: pytest.MonkeyPatch) -> None:
    with proxies() as running:
        url = f"ws://127.0.0.1:{running.ports['echo']}/"
        with sync_driver.connect(url, proxy=f"http://127.0.0.1:{running.ports['http']}") as websocket:
            websocket.send("through http")
            assert websocket.recv() == "through http"
        # The environment's proxy, as the asyncio client reads it.
        monkeypatch.setenv("ALL_PROXY", f"socks5h://me:secret@127.0.0.1:{running.ports['socks']}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with sync_driver.connect(url) as websocket:
            websocket.send("through socks")
            assert websocket.recv() == "through socks"
        with pytest.raises(ProxyError, match="403"):
            sync_driver.connect(url, proxy=f"http://127.0.0.1:{running.ports['refusing']}")
    (head,) = running.seen_http
    assert head.startswith(f"CONNECT 127.0.0.1:{running.ports['echo']} HTTP/1.1\r\n".encode())
    assert running.seen_socks == [(b"me", b"secret"), (b"127.0.0.1", running.ports["echo"])]
    assert len(running.seen_refused) == 1


def test_trio_client_through_http_connect_and_socks5() -> None:
    with proxies() as running:
        url = f"ws://127.0.0.1:{running.ports['echo']}/"

        async def main() -> None:
            with trio.fail_after(20):
                async with trio_driver.connect(url, proxy=f"http://127.0.0.1:{running.ports['http']}") as websocket:
                    await websocket.send("through http")
                    assert await websocket.recv() == "through http"
                socks = f"socks5://me:secret@127.0.0.1:{running.ports['socks']}"
                async with trio_driver.connect(url, proxy=socks) as websocket:
                    await websocket.send("through socks")
                    assert await websocket.recv() == "through socks"
                with pytest.raises(ProxyError, match="403"):
                    async with trio_driver.connect(url, proxy=f"http://127.0.0.1:{running.ports['refusing']}"):
                        pytest.fail("a refused tunnel must not open")

        trio.run(main)
    assert len(running.seen_http) == 1
    assert running.seen_socks == [(b"me", b"secret"), (b"127.0.0.1", running.ports["echo"])]
    assert len(running.seen_refused) == 1
