"""The command line: ``python -m wsproto_core serve`` and ``connect``, run as real subprocesses.

``serve`` is driven over HTTP (urllib) and WebSocket (the ``websockets``
library), then stopped with SIGINT or SIGTERM; ``connect`` runs against
in-process servers (``websockets`` and our asyncio driver). Every process and
server a test starts is stopped by that test. Helpers that need no network
(argument types, messages) are tested in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trustme
import websockets.asyncio.client
import websockets.asyncio.server
import websockets.exceptions
from cli_process import COMMAND, Process, serving, stop

from wsproto_core.cli import build_parser, header, main, port, seconds, size
from wsproto_core.cli._shared import describe_close, format_address
from wsproto_core.cli.connect import HELP, _read_stdin, describe_os_error, describe_rejection, format_message
from wsproto_core.cli.serve import _quiet_cancellations, _urls, load_page
from wsproto_core.drivers import HandshakeRejected
from wsproto_core.drivers.asyncio import WebSocket, serve
from wsproto_core.utilities import generate_accept_token

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

MiB = 1024 * 1024


def no_proxy_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def ws_client(url: str, **kwargs: Any) -> websockets.asyncio.client.connect:
    options: dict[str, Any] = {"proxy": None, "max_size": None, "ping_interval": None}
    return websockets.asyncio.client.connect(url, **(options | kwargs))


def run(test: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    async def main() -> Any:
        async with asyncio.timeout(timeout):
            return await test()

    return asyncio.run(main())


def assert_clean(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


# -------------------------------------------------------------------- serve


def test_serve_page_and_echo() -> None:
    with serving() as (process, address):
        process.wait_for_line(rf"WebSocket clients: ws://{re.escape(address)}/ws")
        opener = no_proxy_opener()
        with opener.open(f"http://{address}/", timeout=10) as response:
            assert response.status == 200
            assert response.headers["content-type"] == "text/html; charset=utf-8"
            assert "default-src 'none'" in response.headers["content-security-policy"]
            page = response.read().decode()
        assert page.startswith("<!doctype html>")
        assert "new WebSocket(url)" in page
        assert 'location.host + "/ws"' in page
        # Self-contained: no script, style sheet, image or font from elsewhere.
        assert not re.search(r"""(?:src|href)\s*=\s*["'](?!data:)""", page)
        assert "@import" not in page
        assert "http://" not in page
        assert "https://" not in page
        with pytest.raises(urllib.error.HTTPError) as info:
            opener.open(f"http://{address}/favicon.ico", timeout=10)
        assert info.value.code == 404
        info.value.close()  # the error holds the response and its socket

        async def talk() -> None:
            async with ws_client(f"ws://{address}/ws") as client:
                assert [e.name for e in client.protocol.extensions] == ["permessage-deflate"]
                for message in ["hello", "\N{WAVING HAND SIGN}", "", b"\x00\x01\x02", b"", os.urandom(MiB), "x" * MiB]:
                    await client.send(message)
                    answer = await client.recv()
                    assert type(answer) is type(message)  # text stays text, bytes stay bytes
                    assert answer == message
                await client.send(["frag", "mented"])
                assert await client.recv() == "fragmented"
                await asyncio.wait_for(await client.ping(), 5)

        run(talk)
        process.wait_for_line(r"127\.0\.0\.1:\d+ /ws subprotocol - closed 1000 \(normal closure\)", "stderr")
        assert stop(process) == 0
    assert_clean(process.text("stderr"))
    assert "stopped" in process.text("stderr")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_on_signal_closing_connections_with_1001(signum: int) -> None:
    with serving() as (process, address):

        async def test() -> None:
            async with ws_client(f"ws://{address}/a") as first, ws_client(f"ws://{address}/b") as second:
                await first.send("ready")
                assert await first.recv() == "ready"
                await second.send("ready")
                assert await second.recv() == "ready"
                process.popen.send_signal(signum)
                for client in (first, second):
                    with pytest.raises(websockets.exceptions.ConnectionClosedOK) as info:
                        await client.recv()
                    assert info.value.rcvd is not None
                    assert info.value.rcvd.code == 1001

        run(test)
        assert process.finish() == 0
    stderr = process.text("stderr")
    assert_clean(stderr)
    assert re.search(r"127\.0\.0\.1:\d+ /a subprotocol - closed 1001 \(going away\) 'server shutting down'", stderr)
    assert re.search(r"/b subprotocol - closed 1001", stderr)


def test_serve_options() -> None:
    args = ["--subprotocol", "chat", "--subprotocol", "superchat", "--no-deflate", "--max-message-size", "1KiB"]
    args += ["--max-frame-size", "1M", "--ping-interval", "0", "--ping-timeout", "0", "--close-timeout", "5", "-v"]
    with serving(*args) as (process, address):

        async def test() -> None:
            async with ws_client(f"ws://{address}/opts", subprotocols=["superchat", "chat"]) as client:
                assert client.subprotocol == "chat"  # the server's order of preference
                assert client.protocol.extensions == []  # --no-deflate
                await client.send(b"x" * 1024)
                assert await client.recv() == b"x" * 1024
                await client.send("short")
                assert await client.recv() == "short"
                await client.send("z" * 100)
                assert await client.recv() == "z" * 100
                await client.send("y" * 1025)
                with pytest.raises(websockets.exceptions.ConnectionClosedError) as info:
                    await client.recv()
                assert info.value.rcvd is not None
                assert info.value.rcvd.code == 1009

        run(test)
        with no_proxy_opener().open(f"http://{address}/index.html?x=1", timeout=10) as response:
            assert response.status == 200
        process.wait_for_line(r"/opts open, subprotocol chat", "stderr")
        process.wait_for_line(r"echo binary, 1024 bytes: 78 78", "stderr")
        process.wait_for_line(r"echo text, 5 characters: 'short'", "stderr")
        process.wait_for_line(r"echo text, 100 characters: 'z{60}\.\.\.'", "stderr")
        process.wait_for_line(r"/opts subprotocol chat closed 1009 \(message too big\)", "stderr")
        process.wait_for_line(r"HTTP /index.html\?x=1 -> 200", "stderr")
        assert stop(process) == 0
    assert_clean(process.text("stderr"))


def test_serve_keepalive_closes_a_silent_client() -> None:
    with serving("--ping-interval", "0.1", "--ping-timeout", "0.2") as (process, address):
        host, _, port_text = address.rpartition(":")
        with socket.create_connection((host, int(port_text)), timeout=10) as sock:
            sock.sendall(
                f"GET /silent HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            # Never answer the pings: the server gives up and logs an abnormal close.
            process.wait_for_line(r"/silent subprotocol - closed 1006", "stderr")
        assert stop(process) == 0
    assert_clean(process.text("stderr"))


def test_serve_second_signal_stops_at_once() -> None:
    with serving("--close-timeout", "60") as (process, address):
        host, _, port_text = address.rpartition(":")
        with socket.create_connection((host, int(port_text)), timeout=10) as sock:
            sock.sendall(
                f"GET / HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            assert sock.recv(4096).startswith(b"HTTP/1.1 101")
            # This client never answers the server's Close: the first Ctrl-C would wait 60 s.
            started = time.monotonic()
            process.popen.send_signal(signal.SIGINT)
            process.wait_for_line(r"shutting down", "stderr")
            process.popen.send_signal(signal.SIGINT)
            assert process.finish() == 1
            assert time.monotonic() - started < 10
    stderr = process.text("stderr")
    assert_clean(stderr)
    assert "stopped without waiting" in stderr


def test_serve_port_in_use() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = taken.getsockname()[1]
        process = Process("serve", "--port", str(busy))
        assert process.finish() == 1
    stderr = process.text("stderr")
    assert_clean(stderr)
    assert re.fullmatch(rf"error: cannot listen on 127\.0\.0\.1:{busy}: .+\n", stderr), stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--port", "99999"], "invalid port"),
        (["serve", "--ping-interval", "-1"], "invalid duration"),
        (["serve", "--ping-timeout", "soon"], "invalid duration"),
        (["serve", "--max-message-size", "lots"], "invalid size"),
        (["connect"], "the following arguments are required: URL"),
        (["connect", "ws://x/", "--header", "no colon"], "invalid header"),
        (["launch-rockets"], "invalid choice"),
    ],
)
def test_usage_errors(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["demo"], ["serve"], ["connect"]])
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    if command == ["serve"]:
        for option in ["--host", "--port", "--no-deflate", "--max-message-size", "--max-frame-size"]:
            assert option in text
        for option in ["--ping-interval", "--ping-timeout", "--subprotocol", "--verbose", "1001"]:
            assert option in text
    elif command == ["connect"]:
        for option in ["URL", "--echo", "/ping", "/close", "--open-timeout", "--header", "Exit status"]:
            assert option in text
    elif not command:
        for name in ["demo", "serve", "connect"]:
            assert name in text


# ------------------------------------------------------------------ connect


async def run_connect(
    *args: str, stdin: bytes | None = None, timeout: float = 20.0, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """``python -m wsproto_core connect ...``: exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "connect",
        *args,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=None if env is None else os.environ | env,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(stdin), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@contextlib.asynccontextmanager
async def ws_server(handler: Callable[[Any], Awaitable[None]], **kwargs: Any) -> AsyncIterator[int]:
    options: dict[str, Any] = {"max_size": None, "ping_interval": None}
    async with websockets.asyncio.server.serve(handler, "127.0.0.1", 0, **(options | kwargs)) as server:
        yield server.sockets[0].getsockname()[1]


ECHO_CHECKS: list[Any] = [
    "hello",
    "\N{WAVING HAND SIGN} h\N{LATIN SMALL LETTER E WITH ACUTE}llo",
    "",
    b"",
    b"\x00\xff binary",
    os.urandom(MiB),
    "t" * MiB,
    ["frag", "men", "ted"],  # sent as three frames: must come back as one text message
    [b"\x01", b"\x02"],
]


def echo_checker(close_code: int, results: list[bool]) -> Callable[[Any], Awaitable[None]]:
    """A server that sends messages, checks that each comes back whole with its type, then closes."""

    async def handler(connection: Any) -> None:
        for message in ECHO_CHECKS:
            await connection.send(message)
            expected = (
                ("" if isinstance(message[0], str) else b"").join(message) if isinstance(message, list) else message
            )
            answer = await connection.recv()
            results.append(type(answer) is type(expected) and answer == expected)
        await connection.close(close_code, "checks done")

    return handler


@pytest.mark.parametrize(("close_code", "exit_code"), [(1000, 0), (1001, 0), (4000, 1)])
def test_connect_echo(close_code: int, exit_code: int) -> None:
    results: list[bool] = []

    async def test() -> tuple[str, int, str, str]:
        async with ws_server(echo_checker(close_code, results)) as server_port:
            url = f"ws://127.0.0.1:{server_port}/"
            return (url, *await run_connect("--echo", url))

    url, code, stdout, stderr = run(test)
    assert results == [True] * len(ECHO_CHECKS)
    assert code == exit_code, stderr
    assert stdout == ""
    assert stderr == (f"error: {url}: connection closed: 4000 'checks done'\n" if exit_code else "")


def test_connect_echo_verbose_and_options() -> None:
    seen: dict[str, Any] = {}

    async def handler(connection: Any) -> None:
        seen["subprotocol"] = connection.subprotocol
        seen["extensions"] = [extension.name for extension in connection.protocol.extensions]
        seen["header"] = connection.request.headers.get("X-Token")
        await connection.send("one")
        seen["echo"] = await connection.recv()
        await connection.close()

    async def test() -> tuple[str, int, str, str]:
        async with ws_server(handler, subprotocols=["chat"]) as server_port:
            url = f"ws://127.0.0.1:{server_port}/"
            options = ["--no-deflate", "--subprotocol", "chat", "--header", "X-Token: abc", "--max-message-size", "1M"]
            return (url, *await run_connect("--echo", "-v", *options, "--ping-interval", "5", url))

    url, code, stdout, stderr = run(test)
    assert code == 0, stderr
    assert seen == {"subprotocol": "chat", "extensions": [], "header": "abc", "echo": "one"}
    assert stdout.splitlines() == [
        f"* connected to {url}, subprotocol chat; echoing",
        "* echo one",
        "* connection closed: 1000 (normal closure)",
    ]


def test_connect_interactive() -> None:
    seen: list[WebSocket] = []

    async def handler(websocket: WebSocket) -> None:
        seen.append(websocket)
        async for message in websocket:
            await websocket.send(message)

    async def test() -> None:
        server = await serve(handler, "127.0.0.1", 0)
        process = await asyncio.create_subprocess_exec(
            *COMMAND,
            "connect",
            f"ws://127.0.0.1:{server.port}/chat",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert process.stdin is not None
            assert process.stdout is not None

            async def expect(prefix: str) -> str:
                assert process.stdout is not None
                while True:
                    line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
                    assert line, f"no line starting with {prefix!r}"
                    if line.startswith(prefix):
                        return line.rstrip("\n")

            async def type_line(text: str) -> None:
                assert process.stdin is not None
                process.stdin.write(text.encode() + b"\n")
                await process.stdin.drain()

            await expect(f"* connected to ws://127.0.0.1:{server.port}/chat")
            await type_line("hello \N{WAVING HAND SIGN}")
            assert await expect("< ") == "< hello \N{WAVING HAND SIGN}"
            await type_line("//starts with a slash")
            assert await expect("< ") == "< /starts with a slash"
            await type_line("/ping")
            assert re.fullmatch(r"\* pong: round trip \d+\.\d\d ms", await expect("* pong"))
            await type_line("/ping " + "x" * 200)
            assert "cannot ping" in await expect("* cannot ping")
            await type_line("/what")
            assert "unknown command /what" in await expect("* unknown")
            await type_line("/help")
            assert await expect("* type a line") == HELP.splitlines()[0]
            await type_line("/close soon")
            assert "usage: /close" in await expect("* usage")
            await type_line("/close 1006")
            assert "cannot close with 1006" in await expect("* cannot close")
            await type_line("")  # an empty line is an empty message
            assert await expect("<") == "< "
            await type_line("/close 4000 done here")
            assert await expect("* connection closed") == "* connection closed: 4000 'done here'"
            stderr = await asyncio.wait_for(process.stderr.read(), 10)  # type: ignore[union-attr]
            assert await process.wait() == 0, stderr
            assert_clean(stderr.decode())
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await server.close()
        (websocket,) = seen
        assert (websocket.close_code, websocket.close_reason) == (4000, "done here")

    run(test)


@pytest.mark.parametrize(("close_code", "exit_code"), [(1001, 0), (1011, 1)])
def test_connect_interactive_server_closes(close_code: int, exit_code: int) -> None:
    async def handler(websocket: WebSocket) -> None:
        await websocket.send(b"\x00" * 100)  # binary: printed as hex, cut at 64 bytes
        await websocket.recv()
        await websocket.close(close_code, "bye")

    async def test() -> tuple[int, str, str]:
        server = await serve(handler, "127.0.0.1", 0)
        try:
            # The input never ends: the server's close ends the client.
            process = await asyncio.create_subprocess_exec(
                *COMMAND,
                "connect",
                f"ws://127.0.0.1:{server.port}/",
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert process.stdin is not None and process.stdout is not None and process.stderr is not None
            process.stdin.write(b"go\n")
            # Not communicate(): since Python 3.12 it closes stdin, and the end of input closes the connection.
            stdout, stderr, returncode = await asyncio.wait_for(
                asyncio.gather(process.stdout.read(), process.stderr.read(), process.wait()), 20
            )
            process.stdin.close()
            return returncode, stdout.decode(), stderr.decode()
        finally:
            await server.close()

    code, stdout, stderr = run(test)
    assert code == exit_code, stderr
    assert "< (binary, 100 bytes) " + "00 " * 63 + "00 ..." in stdout
    assert_clean(stderr)
    if exit_code:
        assert stderr.endswith("connection closed: 1011 (internal error) 'bye'\n")
    else:
        assert "* connection closed: 1001 (going away) 'bye'" in stdout


def test_connect_end_of_input_closes() -> None:
    async def test() -> tuple[int, str, str]:
        server = await serve(lambda websocket: websocket.wait_closed(), "127.0.0.1", 0)
        try:
            return await run_connect(f"ws://127.0.0.1:{server.port}/", stdin=b"")
        finally:
            await server.close()

    code, stdout, stderr = run(test)
    assert code == 0, stderr
    assert stdout.endswith("* connection closed: 1000 (normal closure)\n")


def test_connect_sigint_closes_with_1001() -> None:
    seen: list[WebSocket] = []

    async def handler(websocket: WebSocket) -> None:
        seen.append(websocket)
        await websocket.send("hi")
        await websocket.wait_closed()

    async def test() -> None:
        server = await serve(handler, "127.0.0.1", 0)
        try:
            process = await asyncio.create_subprocess_exec(
                *COMMAND,
                "connect",
                f"ws://127.0.0.1:{server.port}/",
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert process.stdout is not None
            while not (await asyncio.wait_for(process.stdout.readline(), 10)).startswith(b"< hi"):
                pass
            process.send_signal(signal.SIGINT)
            stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
            assert process.returncode == 0, stderr
            assert b"* connection closed: 1001 (going away) 'client quit'" in stdout
            assert_clean(stderr.decode())
        finally:
            await server.close()
        assert seen[0].close_code == 1001

    run(test)


def test_connect_errors() -> None:
    async def test() -> None:
        # A bad URL: a usage error.
        code, stdout, stderr = await run_connect("http://127.0.0.1/")
        assert (code, stdout) == (2, "")
        assert stderr == "error: 'http://127.0.0.1/' is not a WebSocket URL: it must start with ws:// or wss://\n"
        # Nobody listens.
        with socket.create_server(("127.0.0.1", 0)) as sock:
            free = sock.getsockname()[1]
        code, stdout, stderr = await run_connect(f"ws://127.0.0.1:{free}/")
        assert (code, stdout) == (1, "")
        assert stderr == f"error: cannot connect to ws://127.0.0.1:{free}/: connection refused\n"

        # The server rejects the handshake.
        def reject(connection: Any, request: Any) -> Any:
            return connection.respond(403, "Forbidden: no\ttoken\n")

        async with ws_server(lambda connection: connection.close(), process_request=reject) as server_port:
            code, stdout, stderr = await run_connect(f"ws://127.0.0.1:{server_port}/")
        assert (code, stdout) == (1, "")
        expected = f"error: ws://127.0.0.1:{server_port}/: the server rejected the WebSocket handshake with HTTP 403"
        assert stderr == expected + ": Forbidden: no token\n"
        # The server accepts TCP and never answers.
        with socket.create_server(("127.0.0.1", 0)) as mute:
            mute_port = mute.getsockname()[1]
            code, stdout, stderr = await run_connect("--open-timeout", "0.3", f"ws://127.0.0.1:{mute_port}/")
        assert (code, stdout) == (1, "")
        assert stderr == f"error: ws://127.0.0.1:{mute_port}/: timed out after 0.3 s opening the connection\n"
        # The server does not speak WebSocket.
        async with http_only_server() as http_port:
            code, stdout, stderr = await run_connect(f"ws://127.0.0.1:{http_port}/")
        assert (code, stdout) == (1, "")
        assert stderr.startswith(f"error: ws://127.0.0.1:{http_port}/: invalid WebSocket handshake response: ")
        assert stderr.count("\n") == 1

    run(test, timeout=60)


@contextlib.asynccontextmanager
async def http_only_server() -> AsyncIterator[int]:
    """Answers every request with a 101 that lacks the WebSocket headers."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def test_connect_to_our_serve_command() -> None:
    """Both commands together: the client's lines come back from the server process."""
    with serving() as (server, address):

        async def test() -> tuple[int, str, str]:
            process = await asyncio.create_subprocess_exec(
                *COMMAND,
                "connect",
                f"ws://{address}/ws",
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert process.stdin is not None
            assert process.stdout is not None
            process.stdin.write(b"ping pong\n")
            while not (await asyncio.wait_for(process.stdout.readline(), 10)).startswith(b"< ping pong"):
                pass
            stdout, stderr = await asyncio.wait_for(process.communicate(b"/close\n"), 20)
            assert process.returncode is not None
            return process.returncode, stdout.decode(), stderr.decode()

        code, stdout, stderr = run(test)
        assert code == 0, stderr
        assert "* connection closed: 1000" in stdout
        server.wait_for_line(r"/ws subprotocol - closed 1000", "stderr")
        assert stop(server) == 0


def test_connect_tls_errors_and_success(tmp_path: Any) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))

    async def test() -> None:
        server = await serve(lambda websocket: websocket.close(), "127.0.0.1", 0, ssl=server_context)
        try:
            url = f"wss://127.0.0.1:{server.port}/"
            # The system's trust store does not know the throwaway CA.
            code, stdout, stderr = await run_connect("--echo", url)
            assert (code, stdout) == (1, "")
            assert stderr.startswith(f"error: cannot connect to {url}: TLS certificate verification failed (")
            assert stderr.count("\n") == 1
            # Trusted through the environment (SSL_CERT_FILE), it connects.
            code, stdout, stderr = await run_connect("--echo", "-v", url, env={"SSL_CERT_FILE": str(bundle)})
            assert code == 0, stderr
            assert "* connection closed: 1000 (normal closure)" in stdout
        finally:
            await server.close()

    run(test)


def test_connect_interrupted_while_connecting() -> None:
    async def test() -> None:
        connected = asyncio.Event()

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connected.set()  # and never answer
            await reader.read()
            writer.close()

        mute = await asyncio.start_server(on_client, "127.0.0.1", 0)
        try:
            mute_port = mute.sockets[0].getsockname()[1]
            process = await asyncio.create_subprocess_exec(
                *COMMAND,
                "connect",
                "--open-timeout",
                "60",
                f"ws://127.0.0.1:{mute_port}/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            await asyncio.wait_for(connected.wait(), 20)
            process.send_signal(signal.SIGINT)
            stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
            assert process.returncode == 130
            assert (stdout, stderr) == (b"", b"error: interrupted\n")
        finally:
            mute.close()

    run(test)


def test_connect_second_signal_stops_at_once() -> None:
    async def test() -> None:
        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Accept the upgrade, then never answer: our Close gets no reply.
            head = await reader.readuntil(b"\r\n\r\n")
            key = re.search(rb"(?im)^sec-websocket-key:\s*(\S+)", head)
            assert key is not None
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + generate_accept_token(key.group(1)) + b"\r\n\r\n"
            )
            await reader.read()
            writer.close()

        silent = await asyncio.start_server(on_client, "127.0.0.1", 0)
        try:
            silent_port = silent.sockets[0].getsockname()[1]
            process = await asyncio.create_subprocess_exec(
                *COMMAND,
                "connect",
                "--echo",
                "-v",
                "--close-timeout",
                "60",
                f"ws://127.0.0.1:{silent_port}/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert process.stdout is not None
            assert (await asyncio.wait_for(process.stdout.readline(), 20)).startswith(b"* connected to ")
            process.send_signal(signal.SIGINT)  # closes with 1001 and waits for the reply (60 s)
            await asyncio.sleep(0.2)
            process.send_signal(signal.SIGINT)  # stops at once
            _, stderr = await asyncio.wait_for(process.communicate(), 10)
            assert process.returncode == 130
            assert stderr == b"error: interrupted\n"
        finally:
            silent.close()

    run(test)


def test_connect_input_details() -> None:
    """CRLF line ends are dropped, and a last line without a newline is still sent."""
    received: list[str | bytes] = []

    async def handler(websocket: WebSocket) -> None:
        async for message in websocket:
            received.append(message)

    async def test() -> tuple[int, str, str]:
        server = await serve(handler, "127.0.0.1", 0)
        try:
            return await run_connect(f"ws://127.0.0.1:{server.port}/", stdin=b"one\r\ntwo\n\xff\nlast")
        finally:
            await server.close()

    code, _, stderr = run(test)
    assert code == 0, stderr
    assert received == ["one", "two", "\N{REPLACEMENT CHARACTER}", "last"]


# ------------------------------------------------------------ in-process bits


def test_argument_types() -> None:
    assert size("65536") == 65536
    assert size("64KiB") == size("64k") == size("64 KB".replace(" ", "")) == 65536
    assert size("16M") == size("16MiB") == 16 * MiB
    assert size("1g") == 1024 * MiB
    assert size("0") is None
    for bad in ["", "-1", "1.5M", "12 parsecs", "M"]:
        with pytest.raises(argparse.ArgumentTypeError):
            size(bad)
    assert seconds("0.5") == 0.5
    assert seconds("0") == 0
    for bad in ["-1", "nan", "inf", "soon"]:
        with pytest.raises(argparse.ArgumentTypeError):
            seconds(bad)
    assert port("0") == 0
    assert port("65535") == 65535
    for bad in ["65536", "-1", "http"]:
        with pytest.raises(argparse.ArgumentTypeError):
            port(bad)
    assert header("Origin: http://example.com") == (b"Origin", b"http://example.com")
    assert header("X-Empty:") == (b"X-Empty", b"")
    for bad in ["no colon", ": value", "Bad Name: x", "X: a\r\nInjected: yes"]:
        with pytest.raises(argparse.ArgumentTypeError):
            header(bad)


def test_parser_defaults() -> None:
    parser = build_parser()
    serve_args = parser.parse_args(["serve"])
    assert (serve_args.host, serve_args.port, serve_args.ping_interval) == ("127.0.0.1", 8765, 20)
    assert serve_args.max_message_size == serve_args.max_frame_size == 64 * MiB
    connect_args = parser.parse_args(["connect", "ws://x/"])
    assert connect_args.ping_interval is None  # 20 when interactive, off with --echo
    assert parser.parse_args([]).command is None


def test_messages_for_people() -> None:
    assert format_message("hi") == "< hi"
    assert format_message(b"\x01\x02") == "< (binary, 2 bytes) 01 02"
    assert format_message(b"") == "< (binary, 0 bytes)"
    assert format_message(bytes(65)).endswith("00 ...")
    assert describe_close(1000, None) == "1000 (normal closure)"
    assert describe_close(4000, "bye") == "4000 'bye'"
    assert describe_close(1006, "") == "1006 (connection lost without a Close frame)"
    assert format_address(("127.0.0.1", 80)) == "127.0.0.1:80"
    assert format_address(("::1", 80, 0, 0)) == "[::1]:80"
    assert format_address("/tmp/socket") == "/tmp/socket"
    assert describe_os_error(ConnectionRefusedError(111, "refused")) == "connection refused"
    assert describe_os_error(socket.gaierror(-2, "Name or service not known")) == (
        "cannot resolve the host name (Name or service not known)"
    )
    assert describe_os_error(ssl.SSLError(1, "bad")).startswith("TLS error")
    assert describe_os_error(OSError("a\nb")) == "a b"
    assert describe_os_error(OSError()) == "OSError"
    assert describe_rejection(HandshakeRejected(404, [], b"")) == "HTTP 404"
    assert describe_rejection(HandshakeRejected(500, [], b"x" * 500)) == "HTTP 500: " + "x" * 117 + "..."


def test_page_is_package_data() -> None:
    page = load_page().decode()
    assert "<title>wsproto_core echo</title>" in page
    for element in ['id="status"', 'id="log"', 'id="message"', 'id="send"', 'id="close"']:
        assert element in page


def test_page_and_websocket_urls() -> None:
    assert _urls("127.0.0.1", 8765) == ("http://127.0.0.1:8765/", "ws://127.0.0.1:8765/ws")
    assert _urls("0.0.0.0", 80) == ("http://127.0.0.1:80/", "ws://127.0.0.1:80/ws")
    assert _urls("::", 80) == ("http://[::1]:80/", "ws://[::1]:80/ws")
    assert _urls("::1", 80) == ("http://[::1]:80/", "ws://[::1]:80/ws")
    assert _urls("example.com", 80) == ("http://example.com:80/", "ws://example.com:80/ws")


def test_forced_stop_hides_only_cancellations() -> None:
    reported: list[dict[str, Any]] = []
    loop = asyncio.new_event_loop()
    try:
        loop.default_exception_handler = reported.append  # type: ignore[method-assign]
        _quiet_cancellations(loop, {"message": "cancelled", "exception": asyncio.CancelledError()})
        assert reported == []
        _quiet_cancellations(loop, {"message": "real", "exception": ValueError()})
        assert [context["message"] for context in reported] == ["real"]
    finally:
        loop.close()


def test_ctrl_c_before_the_loop_handles_it(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(coroutine: Any) -> None:
        coroutine.close()
        raise KeyboardInterrupt

    monkeypatch.setattr(asyncio, "run", interrupted)
    assert main(["serve"]) == 0
    assert main(["connect", "ws://127.0.0.1/"]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"


def test_stdin_reader_edge_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    # No usable stdin (pythonw, closed descriptor): the input is empty.
    monkeypatch.setattr(sys, "stdin", None)
    loop = asyncio.new_event_loop()
    try:
        _read_stdin(loop, lines)
        loop.run_until_complete(asyncio.sleep(0))
        assert lines.get_nowait() is None
    finally:
        loop.close()
    # The loop closed under the reader: it stops without complaint.
    read_end, write_end = os.pipe()
    with open(read_end, encoding="utf-8") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        os.write(write_end, b"line\n")
        os.close(write_end)
        _read_stdin(loop, lines)
    assert lines.empty()
