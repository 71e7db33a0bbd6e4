"""Integration: real servers and clients written for wsproto, running on wsproto_core.

Each server runs in its own subprocess that calls ``wsproto_core.compat.install()``
before importing the server, binds 127.0.0.1 on an ephemeral port, prints the
port, and exits as soon as its stdin closes (or after a watchdog delay, whatever
happens to the test process). The ASGI app echoes text as text and bytes as
bytes; its first message says which module ``wsproto`` resolved to, so a test
cannot pass against the real wsproto by accident.

Clients: the real ``websockets`` (an independent implementation, so both sides
are checked against RFC 6455 by someone else's code), trio-websocket (client
and server both on wsproto_core) and httpx-ws (client on wsproto_core).
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import wsproto_core.extensions

HAS_PERMESSAGE_DEFLATE = hasattr(wsproto_core.extensions, "PerMessageDeflate")
NO_PERMESSAGE_DEFLATE = (
    "wsproto_core.extensions.PerMessageDeflate does not exist yet: uvicorn and hypercorn import "
    "wsproto.extensions.PerMessageDeflate, and the client's default offer needs it"
)

#: Seconds any single step (start-up, a receive, a whole client script) may take.
STEP_TIMEOUT = 15.0


def _missing(*modules: str) -> list[str]:
    return [name for name in modules if importlib.util.find_spec(name) is None]


def _requires(*modules: str) -> pytest.MarkDecorator:
    missing = _missing(*modules)
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}")


# ============================================================================ the server subprocess

SERVER_SCRIPT = r"""
import asyncio
import json
import os
import socket
import sys
import threading

kind = sys.argv[1]

# Exit when the test closes our stdin, or after a watchdog delay, whatever happens.
def _exit_on_eof():
    sys.stdin.read()
    os._exit(0)

threading.Thread(target=_exit_on_eof, daemon=True).start()
threading.Timer(120, os._exit, (3,)).start()

if kind in ("uvicorn", "hypercorn"):
    import wsproto_core.compat
    wsproto_core.compat.install()


def _implementation():
    # Which module the server's WebSocket code really uses.
    if kind == "uvicorn":
        return sys.modules["uvicorn.protocols.websockets.wsproto_impl"].wsproto.__name__
    if kind == "hypercorn":
        return sys.modules["hypercorn.protocol.ws_stream"].Connection.__module__
    return "websockets"


async def app(scope, receive, send):
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    wsproto = sys.modules.get("wsproto")
    hello = {"wsproto": wsproto.__name__ if wsproto else None, "implementation": _implementation()}
    await send({"type": "websocket.send", "text": json.dumps(hello)})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text == "close-me":
            await send({"type": "websocket.close", "code": 1000, "reason": "as asked"})
            return
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
sock.listen(64)
sock.set_inheritable(True)

if kind == "hypercorn":
    import hypercorn.asyncio
    import hypercorn.config

    config = hypercorn.config.Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.errorlog = "-"
    serve = hypercorn.asyncio.serve(app, config)
else:
    import uvicorn

    ws = "wsproto" if kind == "uvicorn" else "websockets-sansio"
    config = uvicorn.Config(app, ws=ws, lifespan="off", log_level="warning", ws_ping_interval=None)
    serve = uvicorn.Server(config).serve(sockets=[sock])

print("PORT", sock.getsockname()[1], flush=True)
asyncio.run(serve)
"""


class ServerProcess:
    """A server subprocess; ``stop()`` always ends it."""

    def __init__(self, kind: str, log: Path) -> None:
        self.kind = kind
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER_SCRIPT, kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
        )
        self.port = self._read_port()

    def _read_port(self) -> int:
        assert self.process.stdout is not None
        deadline = time.monotonic() + STEP_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.1)
            if ready:
                line = self.process.stdout.readline().decode()
                if line.startswith("PORT "):
                    return int(line.split()[1])
                if not line:  # the process died
                    break
        self.stop()
        raise RuntimeError(f"{self.kind} server did not start:\n{self.output()}")

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.close()  # the server exits on EOF
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        self._log_file.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], ServerProcess]]:
    """Start each kind of server at most once for the module; stop them all at the end."""
    started: dict[str, ServerProcess] = {}
    logs = tmp_path_factory.mktemp("server-logs")

    def get(kind: str) -> ServerProcess:
        if kind not in started:
            started[kind] = ServerProcess(kind, logs / f"{kind}.log")
        server = started[kind]
        assert server.process.poll() is None, f"{kind} server died:\n{server.output()}"
        return server

    try:
        yield get
    finally:
        for server in started.values():
            server.stop()


# ============================================================================ websockets client vs uvicorn/hypercorn


def _exchange_with_websockets(port: int, compression: str | None) -> list[str]:
    """Run the whole conversation with the websockets sync client; return the negotiated extensions."""
    from websockets.exceptions import ConnectionClosedOK  # noqa: PLC0415 - optional dependency
    from websockets.sync.client import connect  # noqa: PLC0415

    url = f"ws://127.0.0.1:{port}/echo"
    with connect(url, compression=compression, open_timeout=STEP_TIMEOUT, close_timeout=STEP_TIMEOUT) as ws:
        hello = json.loads(ws.recv(timeout=STEP_TIMEOUT))
        assert hello["wsproto"] == "wsproto_core", hello
        assert hello["implementation"] == "wsproto_core" or hello["implementation"].startswith("wsproto_core."), hello
        extensions = [extension.name for extension in ws.protocol.extensions]

        # Text stays text, bytes stay bytes (RFC 6455 section 5.6).
        ws.send("héllo \N{SNOWMAN}")
        assert ws.recv(timeout=STEP_TIMEOUT) == "héllo \N{SNOWMAN}"
        ws.send(b"\x00\x01\xfe\xff")
        assert ws.recv(timeout=STEP_TIMEOUT) == b"\x00\x01\xfe\xff"
        ws.send("")
        assert ws.recv(timeout=STEP_TIMEOUT) == ""
        # 16-bit and 64-bit payload lengths (section 5.2), compressible and not.
        medium, large = "m" * 1000, os.urandom(70_000)
        ws.send(medium)
        assert ws.recv(timeout=STEP_TIMEOUT) == medium
        ws.send(large)
        assert ws.recv(timeout=STEP_TIMEOUT) == large
        # A fragmented message (section 5.4) comes back whole.
        ws.send(["frag", "men", "ted"])
        assert ws.recv(timeout=STEP_TIMEOUT) == "fragmented"
        # Section 5.5.2: the server answers a ping with a pong carrying its payload.
        assert ws.ping(b"are you there?").wait(STEP_TIMEOUT)
        ws.send("after the ping")
        assert ws.recv(timeout=STEP_TIMEOUT) == "after the ping"
        ws.close(1000, "done")
    # Section 7.1.2 / 7.4.1: the server echoed our 1000.
    assert ws.protocol.close_rcvd is not None
    assert ws.protocol.close_rcvd.code == 1000

    # And the server may close first.
    with connect(url, compression=compression, open_timeout=STEP_TIMEOUT, close_timeout=STEP_TIMEOUT) as ws:
        ws.recv(timeout=STEP_TIMEOUT)
        ws.send("close-me")
        with pytest.raises(ConnectionClosedOK) as info:
            ws.recv(timeout=STEP_TIMEOUT)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1000
    assert info.value.rcvd.reason == "as asked"
    return extensions


@_requires("websockets", "uvicorn", "hypercorn")
@pytest.mark.parametrize("compression", ["deflate", None], ids=["permessage-deflate", "no-compression"])
@pytest.mark.parametrize("kind", ["uvicorn", "hypercorn"])
def test_websockets_client_against_server(
    servers: Callable[[str], ServerProcess], kind: str, compression: str | None
) -> None:
    if not HAS_PERMESSAGE_DEFLATE:
        pytest.skip(NO_PERMESSAGE_DEFLATE)
    server = servers(kind)
    try:
        extensions = _exchange_with_websockets(server.port, compression)
    except BaseException:
        print(f"--- {kind} server output ---\n{server.output()}")
        raise
    # uvicorn (ws_per_message_deflate defaults to True) and hypercorn both accept the offer.
    assert extensions == (["permessage-deflate"] if compression else [])
    assert server.process.poll() is None, server.output()


# ============================================================================ httpx-ws client

HTTPX_WS_CLIENT_SCRIPT = r"""
import json
import sys

import wsproto_core.compat

wsproto_core.compat.install()

import httpx
import httpx_ws

port = int(sys.argv[1])
timeout = float(sys.argv[2])
result = {}
with httpx.Client(timeout=timeout) as client:
    with httpx_ws.connect_ws(f"http://127.0.0.1:{port}/echo", client) as ws:
        result["hello"] = json.loads(ws.receive_text(timeout=timeout))
        ws.send_text("héllo")
        result["text"] = ws.receive_text(timeout=timeout)
        ws.send_bytes(b"\x00\xff")
        result["bytes"] = ws.receive_bytes(timeout=timeout).hex()
        big = "b" * 70_000
        ws.send_text(big)
        result["big"] = ws.receive_text(timeout=timeout) == big
        result["pong"] = ws.ping(b"p").wait(timeout)
        ws.send_text("close-me")
        try:
            ws.receive_text(timeout=timeout)
        except httpx_ws.WebSocketDisconnect as exc:
            result["close"] = [exc.code, exc.reason]
result["client_wsproto"] = sys.modules["httpx_ws._api"].wsproto.__name__
print(json.dumps(result))
"""


@_requires("httpx", "httpx_ws", "uvicorn")
@pytest.mark.parametrize("kind", ["uvicorn", "uvicorn-websockets"], ids=["uvicorn-wsproto_core", "uvicorn-websockets"])
def test_httpx_ws_client(servers: Callable[[str], ServerProcess], kind: str) -> None:
    # Against uvicorn on wsproto_core, and against uvicorn on websockets (so the
    # client role of wsproto_core also meets an independent server).
    if kind == "uvicorn" and not HAS_PERMESSAGE_DEFLATE:
        pytest.skip(NO_PERMESSAGE_DEFLATE)
    if kind == "uvicorn-websockets" and _missing("websockets"):
        pytest.skip("not installed: websockets")
    server = servers(kind)
    result = subprocess.run(
        [sys.executable, "-c", HTTPX_WS_CLIENT_SCRIPT, str(server.port), str(STEP_TIMEOUT)],
        capture_output=True,
        text=True,
        timeout=4 * STEP_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"{result.stderr}\n--- server ---\n{server.output()}"
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["client_wsproto"] == "wsproto_core"
    if kind == "uvicorn":
        assert report["hello"]["wsproto"] == "wsproto_core"
    assert report["text"] == "héllo"
    assert report["bytes"] == "00ff"
    assert report["big"] is True
    assert report["pong"] is True
    assert report["close"] == [1000, "as asked"]


# ============================================================================ trio-websocket, both ends

TRIO_SCRIPT = r"""
import json
import sys

import wsproto_core.compat

wsproto_core.compat.install()

import trio
import trio_websocket
from trio_websocket import ConnectionClosed, open_websocket_url, serve_websocket

timeout = float(sys.argv[1])
result = {"server_closed": None}


async def handler(request):
    ws = await request.accept()
    await ws.send_message(sys.modules["wsproto"].__name__)
    try:
        while True:
            message = await ws.get_message()
            if message == "close-me":
                await ws.aclose(1000, "as asked")
                break
            await ws.send_message(message)
    except ConnectionClosed:
        pass
    result["server_closed"] = [ws.closed.code, ws.closed.reason] if ws.closed else None


async def main():
    with trio.fail_after(3 * timeout):
        await conversation()


async def conversation():
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
        url = f"ws://127.0.0.1:{server.port}/echo"
        async with open_websocket_url(url) as ws:
            result["hello"] = await ws.get_message()
            await ws.send_message("héllo")
            result["text"] = await ws.get_message()
            await ws.send_message(b"\x00\xff")
            result["bytes"] = (await ws.get_message()).hex()
            big = b"B" * 70_000
            await ws.send_message(big)
            result["big"] = (await ws.get_message()) == big
            await ws.ping(b"are you there?")  # returns when the pong arrives
            result["pong"] = True
        result["client_closed"] = [ws.closed.code, ws.closed.reason]

        # The server closes first this time.
        async with open_websocket_url(url) as ws:
            await ws.get_message()
            await ws.send_message("close-me")
            try:
                await ws.get_message()
            except ConnectionClosed as exc:
                result["closed_by_server"] = [exc.reason.code, exc.reason.reason]
        await trio.sleep(0.1)  # let the handler record its side
        nursery.cancel_scope.cancel()


trio.run(main)
result["impl"] = trio_websocket._impl.WSConnection.__module__
print(json.dumps(result))
"""


@_requires("trio", "trio_websocket")
def test_trio_websocket_pair() -> None:
    result = subprocess.run(
        [sys.executable, "-c", TRIO_SCRIPT, str(STEP_TIMEOUT)],
        capture_output=True,
        text=True,
        timeout=4 * STEP_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["impl"] == "wsproto_core"
    assert report["hello"] == "wsproto_core"
    assert report["text"] == "héllo"
    assert report["bytes"] == "00ff"
    assert report["big"] is True
    assert report["pong"] is True
    # The client closed with trio-websocket's default code, 1000, and the server answered it.
    assert report["client_closed"][0] == 1000
    assert report["closed_by_server"] == [1000, "as asked"]
    assert report["server_closed"] is not None
    assert report["server_closed"][0] == 1000
