"""What a connection tells about itself: frame-level debug logs (drivers.tracing) and ``latency``.

The latency rule is checked on a ManagedConnection with an injected clock;
the drivers' ``latency`` and frame logs on real connections over 127.0.0.1,
each server stopped by its test.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import trio
from helpers import CLIENT, OP_PONG, build_frame, parse_frame

from wsproto_core.connection import Connection
from wsproto_core.drivers import asyncio as asyncio_driver
from wsproto_core.drivers import sync as sync_driver
from wsproto_core.drivers import trio as trio_driver
from wsproto_core.drivers.tracing import FrameLog, describe
from wsproto_core.events import BytesMessage, CloseConnection, Ping, Pong, Request, TextMessage
from wsproto_core.managed import ManagedConnection

T = TypeVar("T")


# ====================================================================== latency, sans-I/O


def pong_for(payload: bytes) -> bytes:
    """A server's Pong (unmasked) as a client receives it."""
    return build_frame(OP_PONG, payload, mask=None)


def sent_ping(managed: ManagedConnection) -> bytes:
    _, _, _, _, payload, rest = parse_frame(managed.data_to_send())
    assert rest == b""
    return payload


def test_latency_is_the_round_trip_of_the_last_answered_ping() -> None:
    managed = ManagedConnection(Connection(CLIENT), client=True, ping_interval=10, ping_timeout=5, now=0.0)
    assert managed.latency == 0.0
    managed.handle_timers(10.0)  # the keepalive Ping
    keepalive = sent_ping(managed)
    managed.receive_data(pong_for(keepalive), 10.25)
    assert list(managed.events(10.25)) == [Pong(keepalive)]
    assert managed.latency == pytest.approx(0.25)
    # An application's Ping measures too; a Pong answering a later Ping
    # measures from that one (section 5.5.3: only the latest may be answered).
    managed.ping(b"one", 12.0)
    managed.ping(b"two", 12.5)
    managed.data_to_send()
    managed.receive_data(pong_for(b"two"), 12.625)
    list(managed.events(12.625))
    assert managed.latency == pytest.approx(0.125)
    # An unsolicited Pong measures nothing.
    managed.receive_data(pong_for(b"stray"), 20.0)
    list(managed.events(20.0))
    assert managed.latency == pytest.approx(0.125)


def test_latency_without_a_ping_timeout() -> None:
    managed = ManagedConnection(Connection(CLIENT), client=True, ping_interval=None, ping_timeout=None, now=0.0)
    managed.ping(b"x", 3.0)
    assert managed.next_deadline is None
    managed.receive_data(pong_for(b"x"), 3.5)
    list(managed.events(3.5))
    assert managed.latency == pytest.approx(0.5)


# ====================================================================== describe


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (TextMessage("hello"), "TEXT 'hello' [5 bytes]"),
        (TextMessage("é", frame_finished=False), "TEXT 'é' [2 bytes, frame continues]"),
        (BytesMessage(b"\x00\xff", message_finished=False), "BINARY 00 ff [2 bytes, message continues]"),
        (BytesMessage(bytes(40)), "BINARY " + " ".join(["00"] * 32) + " ... [40 bytes]"),
        (TextMessage("x" * 40), "TEXT " + repr("x" * 32) + " ... [40 bytes]"),
        (Ping(b"ab"), "PING 61 62 [2 bytes]"),
        (Pong(b""), "PONG  [0 bytes]"),
        (CloseConnection(1000, "bye"), "CLOSE 1000 'bye'"),
        (CloseConnection(1006), "CLOSE 1006"),
        (Request(host="h", target="/"), repr(Request(host="h", target="/"))),
    ],
)
def test_describe(event: Any, line: str) -> None:
    assert describe(event) == line


# ====================================================================== drivers


@pytest.fixture
def frames_logger() -> logging.Logger:
    logger = logging.getLogger("tests.frames")
    logger.setLevel(logging.DEBUG)
    return logger


def lines(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == name]


def run_asyncio(test: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        async with asyncio.timeout(20):
            return await test()

    return asyncio.run(main())


async def asyncio_echo(websocket: asyncio_driver.WebSocket) -> None:
    async for message in websocket:
        await websocket.send(message)


def test_asyncio_frames_are_logged_on_both_sides(
    caplog: pytest.LogCaptureFixture, frames_logger: logging.Logger
) -> None:
    server_logger = logging.LoggerAdapter(logging.getLogger("tests.server-frames"), {})
    server_logger.logger.setLevel(logging.DEBUG)

    async def main() -> None:
        async with await asyncio_driver.serve(asyncio_echo, logger=server_logger, compression=False) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            async with asyncio_driver.connect(url, logger=frames_logger, compression=False) as websocket:
                await websocket.send("hello")
                assert await websocket.recv() == "hello"
                await websocket.close(1000, "bye")

    with caplog.at_level(logging.DEBUG):
        run_asyncio(main)
    assert lines(caplog, "tests.frames") == [
        "> TEXT 'hello' [5 bytes]",
        "< TEXT 'hello' [5 bytes]",
        "> CLOSE 1000 'bye'",
        "< CLOSE 1000 'bye'",
        "< end of stream",
    ]
    assert lines(caplog, "tests.server-frames")[:4] == [
        "< TEXT 'hello' [5 bytes]",
        "> TEXT 'hello' [5 bytes]",
        "< CLOSE 1000 'bye'",
        "> CLOSE 1000 'bye'",
    ]


def test_nothing_is_wrapped_when_debug_is_off(caplog: pytest.LogCaptureFixture) -> None:
    quiet = logging.getLogger("tests.quiet")
    quiet.setLevel(logging.INFO)

    async def main() -> None:
        async with (
            await asyncio_driver.serve(asyncio_echo) as server,
            asyncio_driver.connect(f"ws://127.0.0.1:{server.port}/", logger=quiet) as websocket,
        ):
            assert not isinstance(websocket._managed.connection, FrameLog)
            await websocket.send("x")
            assert await websocket.recv() == "x"

    with caplog.at_level(logging.DEBUG):
        # The root logger at DEBUG; tests.quiet says INFO.
        run_asyncio(main)
    assert lines(caplog, "tests.quiet") == []


def test_the_default_loggers_are_client_and_server(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with (
            await asyncio_driver.serve(asyncio_echo, compression=False) as server,
            asyncio_driver.connect(f"ws://127.0.0.1:{server.port}/", compression=False) as websocket,
        ):
            await websocket.send(b"\x01")
            assert await websocket.recv() == b"\x01"

    with caplog.at_level(logging.DEBUG, "wsproto_core"):
        run_asyncio(main)
    assert "> BINARY 01 [1 bytes]" in lines(caplog, "wsproto_core.client")
    assert "< BINARY 01 [1 bytes]" in lines(caplog, "wsproto_core.server")


def test_asyncio_latency_after_a_ping() -> None:
    async def main() -> None:
        async with (
            await asyncio_driver.serve(asyncio_echo) as server,
            asyncio_driver.connect(f"ws://127.0.0.1:{server.port}/") as websocket,
        ):
            assert websocket.latency == 0.0
            await (await websocket.ping())
            assert websocket.latency > 0.0

    run_asyncio(main)


def test_sync_latency_and_frames(caplog: pytest.LogCaptureFixture, frames_logger: logging.Logger) -> None:
    def echo(websocket: sync_driver.WebSocket) -> None:
        for message in websocket:
            websocket.send(message)

    with sync_driver.serve(echo, "127.0.0.1", 0) as server, caplog.at_level(logging.DEBUG):
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            with sync_driver.connect(
                f"ws://127.0.0.1:{server.port}/", logger=frames_logger, compression=False
            ) as websocket:
                assert websocket.latency == 0.0
                assert websocket.ping(b"p").wait(10)
                assert websocket.latency > 0.0
                websocket.send("hi")
                assert websocket.recv() == "hi"
        finally:
            server.shutdown()
            thread.join(10)
    assert lines(caplog, "tests.frames")[:4] == [
        "> PING 70 [1 bytes]",
        "< PONG 70 [1 bytes]",
        "> TEXT 'hi' [2 bytes]",
        "< TEXT 'hi' [2 bytes]",
    ]


def test_trio_latency_and_frames(caplog: pytest.LogCaptureFixture, frames_logger: logging.Logger) -> None:
    async def echo(websocket: trio_driver.WebSocket) -> None:
        async for message in websocket:
            await websocket.send(message)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server: trio_driver.Server = await nursery.start(functools.partial(trio_driver.serve, echo, "127.0.0.1", 0))
            async with trio_driver.connect(
                f"ws://127.0.0.1:{server.port}/", logger=frames_logger, compression=False
            ) as websocket:
                assert websocket.latency == 0.0
                await (await websocket.ping(b"p"))
                assert websocket.latency > 0.0
                await websocket.send("hi")
                assert await websocket.recv() == "hi"
            await server.close()

    with caplog.at_level(logging.DEBUG):
        trio.run(main)
    assert lines(caplog, "tests.frames")[:4] == [
        "> PING 70 [1 bytes]",
        "< PONG 70 [1 bytes]",
        "> TEXT 'hi' [2 bytes]",
        "< TEXT 'hi' [2 bytes]",
    ]
