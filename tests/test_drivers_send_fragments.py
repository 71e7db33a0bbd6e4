"""``WebSocket.send_fragments`` (asyncio, trio, threads): one message from pieces, never assembled.

The frames on the wire are read from the client's frame log
(drivers.tracing); the server, on 127.0.0.1 and stopped by each test, checks
what arrives as a whole.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
import trio

from wsproto_core.drivers import ConnectionClosed
from wsproto_core.drivers import sync as sync_driver
from wsproto_core.drivers import trio as trio_driver
from wsproto_core.drivers.asyncio import WebSocket, connect, serve
from wsproto_core.errors import LocalProtocolError

T = TypeVar("T")


def run(test: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        async with asyncio.timeout(20):
            return await test()

    return asyncio.run(main())


async def echo(websocket: WebSocket) -> None:
    async for message in websocket:
        await websocket.send(message)


@pytest.fixture
def wire(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[str]]]:
    logger = logging.getLogger("tests.fragments")
    logger.setLevel(logging.DEBUG)
    with caplog.at_level(logging.DEBUG):
        yield lambda: [record.getMessage() for record in caplog.records if record.name == "tests.fragments"]


async def numbered(count: int) -> AsyncIterator[bytes]:
    for index in range(count):
        await asyncio.sleep(0)  # another task may run between pieces
        yield bytes([index]) * 3


def test_pieces_from_an_iterable_and_an_async_iterable_arrive_as_one_message(wire: Callable[[], list[str]]) -> None:
    async def main() -> None:
        logger = logging.getLogger("tests.fragments")
        async with (
            await serve(echo, compression=False) as server,
            connect(f"ws://127.0.0.1:{server.port}/", logger=logger, compression=False) as websocket,
        ):
            await websocket.send_fragments(["hé", "llo"])
            assert await websocket.recv() == "héllo"
            await websocket.send_fragments(numbered(3))
            assert await websocket.recv() == b"\x00\x00\x00\x01\x01\x01\x02\x02\x02"
            # No pieces, no message: the next one is the next echo.
            await websocket.send_fragments([])
            await websocket.send("after")
            assert await websocket.recv() == "after"

    run(main)
    sent = [line for line in wire() if line.startswith(">")]
    assert sent[:7] == [
        "> TEXT 'hé' [3 bytes, message continues]",
        "> TEXT 'llo' [3 bytes, message continues]",
        "> TEXT '' [0 bytes]",
        "> BINARY 00 00 00 [3 bytes, message continues]",
        "> BINARY 01 01 01 [3 bytes, message continues]",
        "> BINARY 02 02 02 [3 bytes, message continues]",
        "> BINARY  [0 bytes]",
    ]
    assert sent[7] == "> TEXT 'after' [5 bytes]"


def test_fragments_with_compression() -> None:
    async def main() -> None:
        async with await serve(echo) as server, connect(f"ws://127.0.0.1:{server.port}/") as websocket:
            pieces = [f"chunk {index} " * 100 for index in range(20)]
            await websocket.send_fragments(pieces)
            assert await websocket.recv() == "".join(pieces)

    run(main)


def test_send_waits_for_nothing_and_refuses_while_fragments_are_sent() -> None:
    async def main() -> None:
        async with await serve(echo) as server, connect(f"ws://127.0.0.1:{server.port}/") as websocket:
            gate = asyncio.Event()
            refused: list[str] = []

            async def pieces() -> AsyncIterator[str]:
                yield "first "
                await gate.wait()
                yield "last"

            async def meddle() -> None:
                with pytest.raises(LocalProtocolError, match="wait until it returns") as caught:
                    await websocket.send("in between")
                refused.append(str(caught.value))
                # A Ping may go between the fragments.
                await (await websocket.ping())
                gate.set()

            await asyncio.gather(websocket.send_fragments(pieces()), meddle())
            assert len(refused) == 1
            assert await websocket.recv() == "first last"
            # Sending works again afterwards.
            await websocket.send("next")
            assert await websocket.recv() == "next"

    run(main)


@pytest.mark.parametrize("kind", ["mixed", "raises"])
def test_a_message_left_unfinished_closes_with_1011(kind: str) -> None:
    class Broken(Exception):
        pass

    def pieces() -> Iterator[str | bytes]:
        yield "text "
        if kind == "mixed":
            yield b"bytes"
        raise Broken

    async def main() -> None:
        async with await serve(echo) as server:
            websocket = await connect(f"ws://127.0.0.1:{server.port}/")
            with pytest.raises(TypeError if kind == "mixed" else Broken):
                await websocket.send_fragments(pieces())
            await websocket.wait_closed()
            assert (websocket.close_code, websocket.close_reason) == (1011, "message left unfinished")
            with pytest.raises(ConnectionClosed):
                await websocket.send("too late")

    run(main)


def test_a_whole_message_is_refused() -> None:
    async def main() -> None:
        async with await serve(echo) as server, connect(f"ws://127.0.0.1:{server.port}/") as websocket:
            with pytest.raises(TypeError, match="send a whole message with send"):
                await websocket.send_fragments("abc")  # type: ignore[arg-type]
            await websocket.send("still open")
            assert await websocket.recv() == "still open"

    run(main)


# ====================================================================== trio and threads


def test_sync_send_fragments(wire: Callable[[], list[str]]) -> None:
    def sync_echo(websocket: sync_driver.WebSocket) -> None:
        for message in websocket:
            websocket.send(message)

    with sync_driver.serve(sync_echo, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            url = f"ws://127.0.0.1:{server.port}/"
            logger = logging.getLogger("tests.fragments")
            with sync_driver.connect(url, logger=logger, compression=False) as websocket:
                refused: list[BaseException] = []

                def pieces() -> Iterator[bytes]:
                    yield b"ab"
                    # Another sender meanwhile is refused.
                    try:
                        websocket.send("in between")
                    except LocalProtocolError as error:
                        refused.append(error)
                    yield b"cd"

                websocket.send_fragments(pieces())
                assert websocket.recv() == b"abcd"
                assert len(refused) == 1
            with sync_driver.connect(url) as websocket:
                with pytest.raises(TypeError):
                    websocket.send_fragments(["text", b"bytes"])
                assert websocket.wait_closed(10)
                assert (websocket.close_code, websocket.close_reason) == (1011, "message left unfinished")
        finally:
            server.shutdown()
            thread.join(10)
    assert [line for line in wire() if line.startswith("> BINARY")] == [
        "> BINARY 61 62 [2 bytes, message continues]",
        "> BINARY 63 64 [2 bytes, message continues]",
        "> BINARY  [0 bytes]",
    ]


def test_trio_send_fragments() -> None:
    async def trio_echo(websocket: trio_driver.WebSocket) -> None:
        async for message in websocket:
            await websocket.send(message)

    async def pieces() -> AsyncIterator[str]:
        for piece in ("hé", "llo"):
            yield piece

    async def main() -> None:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                server: trio_driver.Server = await nursery.start(
                    functools.partial(trio_driver.serve, trio_echo, "127.0.0.1", 0)
                )
                url = f"ws://127.0.0.1:{server.port}/"
                async with trio_driver.connect(url) as websocket:
                    await websocket.send_fragments(pieces())
                    assert await websocket.recv() == "héllo"
                    await websocket.send_fragments([b"x", b"y"])
                    assert await websocket.recv() == b"xy"
                async with trio_driver.connect(url) as websocket:
                    with pytest.raises(TypeError):
                        await websocket.send_fragments([b"bytes", "text"])
                    await websocket.wait_closed()
                    assert (websocket.close_code, websocket.close_reason) == (1011, "message left unfinished")
                await server.close()

    trio.run(main)
