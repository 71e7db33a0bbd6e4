"""Reconnecting clients (wsproto_core.drivers.reconnect): the policy, and each driver's loop on 127.0.0.1.

The servers answer the upgrades from a script (503, 500, then accept...) with
``process_request``; the clients get a ``sleep`` that records the delays
instead of waiting, and a ``random`` that makes the jitter known.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from wsproto_core.drivers import HandshakeRejected, HttpResponse, InvalidURL
from wsproto_core.drivers import asyncio as asyncio_driver
from wsproto_core.drivers import sync as sync_driver
from wsproto_core.drivers import trio as trio_driver
from wsproto_core.drivers.proxy import ProxyError
from wsproto_core.drivers.reconnect import Backoff, is_transient
from wsproto_core.errors import RemoteProtocolError

T = TypeVar("T")


def rejection(status: int, *headers: tuple[bytes, bytes]) -> HttpResponse:
    return HttpResponse(status, list(headers), b"not now")


class Script:
    """A ``process_request`` answering the n-th upgrade with the n-th answer (``None``: accept)."""

    def __init__(self, *answers: HttpResponse | None) -> None:
        self.answers = list(answers)
        self.requests = 0

    def __call__(self, target: str, headers: list[tuple[bytes, bytes]]) -> HttpResponse | None:
        answer = self.answers[self.requests] if self.requests < len(self.answers) else None
        self.requests += 1
        return answer


class Delays:
    """A ``sleep`` that records what it was asked to wait, for each driver's kind of sleep."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    def blocking(self, seconds: float) -> None:
        self.asked.append(seconds)

    async def awaitable(self, seconds: float) -> None:
        self.asked.append(seconds)


# ====================================================================== the policy


def test_delays_grow_by_factor_up_to_the_cap_and_jitter_shortens_them() -> None:
    backoff = Backoff(min_delay=1.0, max_delay=10.0, factor=2.0, jitter=0.5, random=lambda: 0.0)
    assert [backoff.delay(failures) for failures in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    most_jitter = Backoff(min_delay=1.0, max_delay=10.0, factor=2.0, jitter=0.5, random=lambda: 1.0)
    assert [most_jitter.delay(failures) for failures in range(1, 5)] == [0.5, 1.0, 2.0, 4.0]
    # Far past the cap the delay stays the cap (no overflow).
    assert backoff.delay(100_000) == 10.0


@given(
    min_delay=st.floats(0, 100),
    extra=st.floats(0, 1000),
    factor=st.floats(1, 10),
    jitter=st.floats(0, 1),
    draws=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=30),
)
def test_delays_stay_within_jitter_of_a_growing_capped_base(
    min_delay: float, extra: float, factor: float, jitter: float, draws: list[float]
) -> None:
    max_delay = min_delay + extra
    pending = iter(draws)
    backoff = Backoff(min_delay, max_delay, factor, jitter, random=lambda: next(pending))
    base = min_delay
    for failures, draw in enumerate(draws, start=1):
        delay = backoff.delay(failures)
        assert base * (1 - jitter) - 1e-9 <= delay <= base + 1e-9
        assert delay == pytest.approx(base * (1 - jitter * draw))
        base = min(base * factor, max_delay)


@pytest.mark.parametrize(
    ("min_delay", "max_delay", "factor", "jitter"),
    [(-1.0, 5.0, 2.0, 0.5), (6.0, 5.0, 2.0, 0.5), (1.0, 5.0, 0.5, 0.5), (1.0, 5.0, 2.0, 1.5)],
)
def test_backoff_refuses_settings_that_make_no_sense(
    min_delay: float, max_delay: float, factor: float, jitter: float
) -> None:
    with pytest.raises(ValueError, match="Backoff needs"):
        Backoff(min_delay, max_delay, factor, jitter)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionRefusedError(), True),
        (ConnectionError("The server closed the connection during the WebSocket handshake"), True),
        (TimeoutError(), True),
        (ProxyError("refused"), True),
        (ssl.SSLError("handshake failure"), True),
        (ssl.SSLCertVerificationError("certificate verify failed"), False),
        (HandshakeRejected(503, [], b""), True),
        (HandshakeRejected(429, [], b""), True),
        (HandshakeRejected(502, [], b""), True),
        (HandshakeRejected(403, [], b""), False),
        (HandshakeRejected(404, [], b""), False),
        (HandshakeRejected(501, [], b""), False),
        (RemoteProtocolError("bad 101"), False),
        (InvalidURL("http://x"), False),
        (TypeError("Unknown option"), False),
    ],
)
def test_which_failures_are_retried(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_retry_after_lengthens_a_delay_up_to_the_cap_and_success_resets_the_count() -> None:
    attempts = Backoff(min_delay=1.0, max_delay=30.0, random=lambda: 0.0).attempts()
    assert attempts.failed(HandshakeRejected(503, [(b"Retry-After", b"7")], b"")) == 7.0
    assert attempts.failed(HandshakeRejected(429, [(b"retry-after", b"3600")], b"")) == 30.0
    # An HTTP date is not honoured: the backoff alone decides (third failure: 4 s).
    assert attempts.failed(HandshakeRejected(503, [(b"retry-after", b"Fri, 31 Dec 1999 23:59:59 GMT")], b"")) == 4.0
    assert attempts.failed(HandshakeRejected(403, [(b"retry-after", b"1")], b"")) is None
    attempts.opened()
    assert attempts.failed(ConnectionResetError()) == 1.0


def test_a_custom_retry_rule_decides() -> None:
    attempts = Backoff(retry=lambda error: isinstance(error, KeyError), random=lambda: 0.0).attempts()
    assert attempts.failed(ConnectionRefusedError()) is None
    assert attempts.failed(KeyError("x")) == 1.0


# ====================================================================== asyncio


def run_asyncio(test: Callable[[], Awaitable[T]], timeout: float = 20.0) -> T:
    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await test()

    return asyncio.run(main())


def test_asyncio_async_for_retries_transient_failures_then_yields_fresh_connections() -> None:
    script = Script(rejection(503, (b"Retry-After", b"3")), rejection(500), None, None)
    delays = Delays()
    closed: list[int | None] = []

    async def echo(websocket: asyncio_driver.WebSocket) -> None:
        async for message in websocket:
            await websocket.send(message)
        closed.append(websocket.close_code)

    async def main() -> None:
        async with await asyncio_driver.serve(echo, process_request=script) as server:
            backoff = Backoff(random=lambda: 0.0, sleep=delays.awaitable)
            seen: list[asyncio_driver.WebSocket] = []
            async for websocket in asyncio_driver.connect(f"ws://127.0.0.1:{server.port}/", backoff=backoff):
                await websocket.send(f"hello {len(seen)}")
                assert await websocket.recv() == f"hello {len(seen)}"
                seen.append(websocket)
                if len(seen) == 1:
                    # Two failures before the first connection: Retry-After
                    # made the first wait 3 s, the second is the backoff's 2 s.
                    assert delays.asked == [3.0, 2.0]
                else:
                    break
            first, second = seen
            assert first is not second
            assert first.closed and first.close_code == 1000
            # The connection opened: no wait before the next attempt.
            assert delays.asked == [3.0, 2.0]
            # Leaving the loop closes the connection in hand.
            await second.wait_closed()
            assert second.close_code == 1000
        assert script.requests == 4
        assert closed == [1000, 1000]

    run_asyncio(main)


def test_asyncio_async_for_raises_a_permanent_rejection_without_waiting() -> None:
    script = Script(rejection(403))
    delays = Delays()

    async def main() -> None:
        async with await asyncio_driver.serve(lambda websocket: websocket.close(), process_request=script) as server:
            backoff = Backoff(sleep=delays.awaitable)
            with pytest.raises(HandshakeRejected) as caught:
                async for _ in asyncio_driver.connect(f"ws://127.0.0.1:{server.port}/", backoff=backoff):
                    pytest.fail("a 403 must not yield a connection")
            assert caught.value.status_code == 403
        assert script.requests == 1
        assert delays.asked == []

    run_asyncio(main)


def unused_port() -> int:
    """A port nothing listens on (connections to it are refused) until a test starts a server there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_asyncio_async_for_retries_a_refused_connection_until_the_server_is_up() -> None:
    port = unused_port()

    async def main() -> None:
        servers: list[asyncio_driver.Server] = []
        asked: list[float] = []

        async def start_server_instead_of_waiting(seconds: float) -> None:
            asked.append(seconds)
            if len(asked) == 2:
                servers.append(await asyncio_driver.serve(lambda websocket: websocket.close(4000), port=port))

        backoff = Backoff(random=lambda: 0.5, sleep=start_server_instead_of_waiting)
        try:
            async for websocket in asyncio_driver.connect(f"ws://127.0.0.1:{port}/", backoff=backoff, proxy=None):
                await websocket.wait_closed()
                assert websocket.close_code == 4000
                break
        finally:
            for server in servers:
                await server.close()
        assert asked == [0.75, 1.5]

    run_asyncio(main)


# ====================================================================== threads


@contextlib.contextmanager
def sync_server(
    handler: Callable[[sync_driver.WebSocket], None], port: int = 0, **kwargs: Any
) -> Iterator[sync_driver.Server]:
    with sync_driver.serve(handler, "127.0.0.1", port, **kwargs) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server.shutdown()
            thread.join(10)
            assert not thread.is_alive()


def test_sync_reconnect_retries_transient_failures_then_yields_fresh_connections() -> None:
    script = Script(rejection(502), rejection(429, (b"Retry-After", b"5")), None, None)
    delays = Delays()
    closed: list[int | None] = []

    def echo(websocket: sync_driver.WebSocket) -> None:
        for message in websocket:
            websocket.send(message)
        closed.append(websocket.close_code)

    with sync_server(echo, process_request=script) as server:
        backoff = Backoff(random=lambda: 0.0, sleep=delays.blocking)
        seen: list[sync_driver.WebSocket] = []
        for websocket in sync_driver.reconnect(f"ws://127.0.0.1:{server.port}/", backoff=backoff):
            websocket.send(b"ping %d" % len(seen))
            assert websocket.recv() == b"ping %d" % len(seen)
            seen.append(websocket)
            if len(seen) == 1:
                assert delays.asked == [1.0, 5.0]
            else:
                break
        first, second = seen
        assert first is not second
        assert (first.close_code, second.close_code) == (1000, 1000)
        assert delays.asked == [1.0, 5.0]
    assert script.requests == 4
    assert closed == [1000, 1000]


def test_sync_reconnect_raises_a_permanent_rejection_without_waiting() -> None:
    script = Script(rejection(404))
    delays = Delays()
    with (
        sync_server(lambda websocket: None, process_request=script) as server,
        pytest.raises(HandshakeRejected) as caught,
    ):
        for _ in sync_driver.reconnect(f"ws://127.0.0.1:{server.port}/", backoff=Backoff(sleep=delays.blocking)):
            pytest.fail("a 404 must not yield a connection")
    assert caught.value.status_code == 404
    assert (script.requests, delays.asked) == (1, [])


def test_sync_reconnect_retries_a_refused_connection_until_the_server_is_up() -> None:
    port = unused_port()
    servers: list[contextlib.ExitStack] = []

    def start_server_instead_of_waiting(seconds: float) -> None:
        stack = contextlib.ExitStack()
        stack.enter_context(sync_server(lambda websocket: websocket.close(4001), port=port))
        servers.append(stack)

    backoff = Backoff(random=lambda: 0.0, sleep=start_server_instead_of_waiting)
    try:
        for websocket in sync_driver.reconnect(f"ws://127.0.0.1:{port}/", backoff=backoff):
            assert websocket.wait_closed(10)
            assert websocket.close_code == 4001
            break
    finally:
        for stack in servers:
            stack.close()
    assert len(servers) == 1


# ====================================================================== trio


def run_trio(test: Callable[[], Awaitable[T]], timeout: float = 20.0) -> T:
    async def main() -> T:
        with trio.fail_after(timeout):
            return await test()

    return trio.run(main)


def test_trio_reconnect_retries_transient_failures_then_yields_fresh_connections() -> None:
    script = Script(rejection(504), rejection(503), rejection(503), None, None)
    delays = Delays()
    closed: list[int | None] = []

    async def echo(websocket: trio_driver.WebSocket) -> None:
        async for message in websocket:
            await websocket.send(message)
        closed.append(websocket.close_code)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server: trio_driver.Server = await nursery.start(
                functools.partial(trio_driver.serve, echo, "127.0.0.1", 0, process_request=script)
            )
            backoff = Backoff(random=lambda: 1.0, sleep=delays.awaitable)
            seen: list[trio_driver.WebSocket] = []
            async with trio_driver.reconnect(f"ws://127.0.0.1:{server.port}/", backoff=backoff) as connections:
                async for websocket in connections:
                    await websocket.send("hi")
                    assert await websocket.recv() == "hi"
                    seen.append(websocket)
                    if len(seen) == 2:
                        break
                    assert delays.asked == [0.5, 1.0, 2.0]
            first, second = seen
            assert first is not second
            assert (first.close_code, second.close_code) == (1000, 1000)
            assert delays.asked == [0.5, 1.0, 2.0]
            await server.close()
        assert script.requests == 5
        assert closed == [1000, 1000]

    run_trio(main)


async def hang_up(websocket: trio_driver.WebSocket) -> None:
    await websocket.close()


def test_trio_reconnect_raises_a_permanent_rejection_without_waiting() -> None:
    script = Script(rejection(401, (b"www-authenticate", b"Basic")))
    delays = Delays()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server: trio_driver.Server = await nursery.start(
                functools.partial(
                    trio_driver.serve, trio_driver.WebSocket.close, "127.0.0.1", 0, process_request=script
                )
            )
            backoff = Backoff(sleep=delays.awaitable)
            with pytest.raises(HandshakeRejected) as caught:
                async with trio_driver.reconnect(f"ws://127.0.0.1:{server.port}/", backoff=backoff) as connections:
                    async for _ in connections:
                        pytest.fail("a 401 must not yield a connection")
            assert caught.value.status_code == 401
            await server.close()
        assert (script.requests, delays.asked) == (1, [])

    run_trio(main)
