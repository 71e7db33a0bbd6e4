"""Client connections through HTTP CONNECT and SOCKS5 proxies (wsproto_core.drivers.proxy).

The proxies are tiny ones written here, on 127.0.0.1, in front of our asyncio
echo server; each records what it was asked, so that a test can tell a
tunnelled connection from a direct one.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsproto_core.drivers._common import parse_url
from wsproto_core.drivers.asyncio import WebSocket, connect, serve
from wsproto_core.drivers.proxy import HttpConnectTunnel, ProxyError, ProxyURL, Socks5Tunnel, bypassed, proxy_for

T = TypeVar("T")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def run(test: Callable[[], Awaitable[T]], timeout: float = 20.0) -> T:
    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await test()

    return asyncio.run(main())


async def echo(websocket: WebSocket) -> None:
    async for message in websocket:
        await websocket.send(message)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def splice(client: tuple[asyncio.StreamReader, asyncio.StreamWriter], host: str, port: int) -> None:
    upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
    await asyncio.gather(pipe(client[0], upstream_writer), pipe(upstream_reader, client[1]))


@contextlib.asynccontextmanager
async def http_proxy(seen: list[Any], refuse: bytes | None = None) -> AsyncIterator[int]:
    """An HTTP CONNECT proxy; ``seen`` gets each request head."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        if refuse is not None:
            writer.write(refuse)
            writer.close()
            return
        host, _, port = head.split()[1].decode().rpartition(":")
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await splice((reader, writer), host.strip("[]"), int(port))

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


@contextlib.asynccontextmanager
async def socks5_proxy(seen: list[Any], credentials: tuple[bytes, bytes] | None = None) -> AsyncIterator[int]:
    """A SOCKS5 proxy (RFC 1928), with username/password (RFC 1929) if ``credentials``; ``seen``: what it was asked."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        wanted = 2 if credentials else 0
        if wanted not in methods:
            writer.write(b"\x05\xff")
            writer.close()
            return
        writer.write(bytes([5, wanted]))
        if credentials:
            _, length = await reader.readexactly(2)
            user = await reader.readexactly(length)
            password = await reader.readexactly((await reader.readexactly(1))[0])
            ok = (user, password) == credentials
            seen.append((user, password))
            writer.write(b"\x01\x00" if ok else b"\x01\x01")
            if not ok:
                writer.close()
                return
        _, command, _, address_type = await reader.readexactly(4)
        assert (command, address_type) == (1, 3)
        name = await reader.readexactly((await reader.readexactly(1))[0])
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        seen.append((name, port))
        # Bound to 127.0.0.1:0, as far as the client is told.
        writer.write(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x00")
        await splice((reader, writer), name.decode(), port)

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def round_trip(url: str, **kwargs: Any) -> None:
    async with connect(url, **kwargs) as websocket:
        await websocket.send("through")
        assert await websocket.recv() == "through"


def test_an_explicit_http_proxy_tunnels_the_connection() -> None:
    seen: list[Any] = []

    async def test() -> None:
        server = await serve(echo, "127.0.0.1", 0)
        port = server.port
        try:
            async with http_proxy(seen) as proxy_port:
                await round_trip(f"ws://127.0.0.1:{port}/", proxy=f"http://user:pa%20ss@127.0.0.1:{proxy_port}")
        finally:
            await server.close()
        (head,) = seen
        assert head.startswith(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n".encode())
        assert b"\r\nProxy-Authorization: Basic dXNlcjpwYSBzcw==\r\n" in head  # user:pa ss

    run(test)


def test_the_environment_chooses_the_proxy_and_no_proxy_bypasses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    async def test() -> None:
        server = await serve(echo, "127.0.0.1", 0)
        try:
            async with http_proxy(seen) as proxy_port:
                monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
                await round_trip(f"ws://127.0.0.1:{server.port}/")
                assert len(seen) == 1
                monkeypatch.setenv("NO_PROXY", "example.com, 127.0.0.1")
                await round_trip(f"ws://127.0.0.1:{server.port}/")
                assert len(seen) == 1  # not through the proxy
                monkeypatch.delenv("NO_PROXY")
                await round_trip(f"ws://127.0.0.1:{server.port}/", proxy=None)
                assert len(seen) == 1
        finally:
            await server.close()

    run(test)


def test_socks5_with_credentials_from_all_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    async def test() -> None:
        server = await serve(echo, "127.0.0.1", 0)
        port = server.port
        try:
            async with socks5_proxy(seen, credentials=(b"alice", b"s3cret")) as proxy_port:
                monkeypatch.setenv("ALL_PROXY", f"socks5h://alice:s3cret@127.0.0.1:{proxy_port}")
                await round_trip(f"ws://127.0.0.1:{port}/")
        finally:
            await server.close()
        # The name goes to the proxy to resolve, as a name.
        assert seen == [(b"alice", b"s3cret"), (b"127.0.0.1", port)]

    run(test)


def test_refusals_raise_proxy_error() -> None:
    async def test() -> None:
        async with http_proxy([], refuse=b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n") as port:
            with pytest.raises(ProxyError, match="407"):
                await round_trip("ws://127.0.0.1:9/", proxy=f"http://127.0.0.1:{port}")
        async with socks5_proxy([], credentials=(b"alice", b"s3cret")) as port:
            with pytest.raises(ProxyError, match="username and password"):
                await round_trip("ws://127.0.0.1:9/", proxy=f"socks5://alice:wrong@127.0.0.1:{port}")
            with pytest.raises(ProxyError, match="authentication methods"):
                await round_trip("ws://127.0.0.1:9/", proxy=f"socks5://127.0.0.1:{port}")

    run(test)


def test_proxy_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    secure, plain = parse_url("wss://example.com/"), parse_url("ws://example.com/")
    assert proxy_for(secure) is None
    monkeypatch.setenv("ALL_PROXY", "socks5://all:1")
    monkeypatch.setenv("HTTPS_PROXY", "http://secure:3128")
    assert proxy_for(secure) == ProxyURL("http", "secure", 3128)
    assert proxy_for(plain) == ProxyURL("socks5", "all", 1)
    assert proxy_for(plain, "proxy.local") == ProxyURL("http", "proxy.local", 80)
    assert proxy_for(plain, None) is None
    monkeypatch.setenv("NO_PROXY", ".example.com")
    assert proxy_for(secure) is None
    with pytest.raises(ValueError, match="not a proxy URL"):
        ProxyURL.parse("https://proxy:443")


@pytest.mark.parametrize(
    ("no_proxy", "host", "expected"),
    [
        ("*", "anything", True),
        ("example.com", "example.com", True),
        ("example.com", "www.example.com", True),
        (".example.com", "www.example.com", True),
        ("example.com", "badexample.com", False),
        ("example.com:443", "example.com", True),
        ("[::1]:8080, localhost", "::1", True),
        ("", "example.com", False),
    ],
)
def test_no_proxy(no_proxy: str, host: str, expected: bool) -> None:
    assert bypassed(host, no_proxy) is expected


@given(st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=40))
def test_socks5_answers_in_any_pieces(sizes: list[int]) -> None:
    tunnel = Socks5Tunnel(ProxyURL("socks5", "p", 1, "u", "pw"), parse_url("ws://example.com:8080/"))
    assert tunnel.greeting == b"\x05\x02\x00\x02"
    answers = b"\x05\x02" + b"\x01\x00" + b"\x05\x00\x00\x03\x04host\x1f\x90"
    sent = b""
    result = None
    position = 0
    for size in [*sizes, len(answers)]:
        piece = answers[position : position + size]
        if not piece:
            break
        position += len(piece)
        to_send, result = tunnel.receive(piece)
        sent += to_send
    assert result == b""
    assert sent == b"\x01\x01u\x02pw" + b"\x05\x01\x00\x03\x0bexample.com\x1f\x90"


@given(st.integers(min_value=1, max_value=60))
def test_http_connect_answer_in_two_pieces(split: int) -> None:
    tunnel = HttpConnectTunnel(ProxyURL("http", "p", 1), parse_url("wss://[::1]/"))
    assert tunnel.request == b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n"
    answer = b"HTTP/1.1 200 Connection established\r\nVia: test\r\n\r\n"
    first = tunnel.receive(answer[:split])
    assert first is None if split < len(answer) else first == b""
    if split < len(answer):
        assert tunnel.receive(answer[split:]) == b""
