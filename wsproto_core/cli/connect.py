"""``python -m wsproto_core connect URL``: an interactive client, or an echo client.

Interactive: lines from stdin go out as text messages and received messages
are printed (``< text``; status lines start with ``*``). ``--echo``: every
received message goes back whole, with the same type, until the server closes.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import os
import socket
import ssl
import sys
import threading
from collections.abc import Awaitable
from typing import Any

from ..drivers import ConnectionClosed, HandshakeRejected, InvalidURL, parse_url
from ..drivers.asyncio import WebSocket, connect
from ..errors import LocalProtocolError, RemoteProtocolError
from ._shared import describe_close, error, on_signals, settings_from

__all__ = ["HELP", "run_connect"]

#: Exit codes (see the command's --help).
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

HELP = """\
* type a line and press Enter to send it as a text message; received messages are printed as '< ...'
*   /ping [PAYLOAD]        send a Ping and print the round-trip time when its Pong arrives
*   /close [CODE [REASON]] close the connection (default: 1000) and exit
*   /help                  this help
*   //...                  send a line that begins with '/' (the first '/' is dropped)
* end of input (Ctrl-D) closes with 1000, Ctrl-C with 1001"""


def say(line: str) -> None:
    """Print a line to stdout at once (the output may be a pipe)."""
    print(line, flush=True)


def format_message(message: str | bytes) -> str:
    """How a received message is printed."""
    if isinstance(message, str):
        return f"< {message}"
    shown = message[:64].hex(" ") + (" ..." if len(message) > 64 else "")
    return f"< (binary, {len(message)} bytes) {shown}".rstrip()


def describe_os_error(exc: OSError) -> str:
    """A short, one-line reason for a failed connection."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed ({exc.verify_message or exc})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({getattr(exc, 'reason', None) or exc})"
    return " ".join(str(exc).split()) or type(exc).__name__


def describe_rejection(exc: HandshakeRejected) -> str:
    """``HTTP 403: body excerpt``."""
    text = " ".join(exc.body.decode("utf-8", "replace").split())
    if len(text) > 120:
        text = text[:117] + "..."
    return f"HTTP {exc.status_code}" + (f": {text}" if text else "")


def _read_stdin(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    """Read stdin in a thread and hand each line (then ``None`` at the end) to the loop.

    ``os.read`` on the file descriptor, not ``sys.stdin``: a daemon thread
    blocked inside ``sys.stdin.readline()`` holds the buffer's lock, which can
    abort the interpreter at exit.
    """
    encoding = getattr(sys.stdin, "encoding", None) or "utf-8"
    decoder = codecs.getincrementaldecoder(encoding)("replace")
    pending = ""
    try:
        descriptor = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        descriptor = -1

    def post(item: str | None) -> bool:
        try:
            loop.call_soon_threadsafe(lines.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            return False
        return True

    while descriptor >= 0:
        try:
            chunk = os.read(descriptor, 65536)
        except OSError:
            chunk = b""
        pending += decoder.decode(chunk, final=not chunk)
        *complete, pending = pending.split("\n")
        for line in complete:
            if not post(line.removesuffix("\r")):
                return
        if not chunk:
            break
    if pending:
        post(pending.removesuffix("\r"))
    post(None)


async def _print_messages(websocket: WebSocket) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in websocket:
            say(format_message(message))


async def _report_pong(pong: Awaitable[None], sent_at: float) -> None:
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionClosed):
        await pong
        say(f"* pong: round trip {(loop.time() - sent_at) * 1000:.2f} ms")


async def _run_command(websocket: WebSocket, line: str, tasks: set[asyncio.Task[None]]) -> bool:
    """Act on one line typed by the user; return whether it closed the connection."""
    if not line.startswith("/") or line.startswith("//"):
        await websocket.send(line[1:] if line.startswith("//") else line)
        return False
    command, _, argument = line.partition(" ")
    if command == "/ping":
        sent_at = asyncio.get_running_loop().time()
        try:
            pong = await websocket.ping(argument.encode() if argument else None)
        except LocalProtocolError as exc:
            say(f"* cannot ping: {exc}")
            return False
        task = asyncio.create_task(_report_pong(pong, sent_at))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    elif command == "/close":
        code_text, _, reason = argument.strip().partition(" ")
        if code_text and not code_text.isdigit():
            say("* usage: /close [CODE [REASON]], for example /close 1000 bye")
            return False
        try:
            await websocket.close(int(code_text) if code_text else 1000, reason.strip())
        except LocalProtocolError as exc:
            say(f"* cannot close with {code_text}: {exc}")
            return False
        return True
    elif command == "/help":
        say(HELP)
    else:
        say(f"* unknown command {command}: /help lists them; start the line with // to send it as text")
    return False


async def interactive(websocket: WebSocket) -> bool:
    """Send stdin's lines, print what arrives, until the connection closes.

    Return whether we closed the connection (/close or end of input).
    """
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=_read_stdin, args=(loop, lines), name="stdin", daemon=True).start()
    printer = asyncio.create_task(_print_messages(websocket))
    closed = asyncio.ensure_future(websocket.wait_closed())
    tasks: set[asyncio.Task[None]] = set()
    closed_by_us = False
    try:
        while not websocket.closed:
            next_line = asyncio.ensure_future(lines.get())
            await asyncio.wait({next_line, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not next_line.done():
                next_line.cancel()
                break
            line = next_line.result()
            try:
                if line is None:
                    await websocket.close()
                    closed_by_us = True
                else:
                    closed_by_us = await _run_command(websocket, line, tasks)
            except ConnectionClosed:
                break
        await closed
        await printer
        return closed_by_us
    finally:
        for task in (printer, closed, *tasks):
            task.cancel()


async def echo(websocket: WebSocket, *, verbose: bool = False) -> None:
    """Send every message back, whole and with the same type, until the connection closes."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            message = await websocket.recv()
            if verbose:
                say(f"* echo {format_message(message)[2:]}")
            await websocket.send(message)
    await websocket.wait_closed()


async def connect_and_run(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """Open the connection, run the interactive or echo loop, and return the exit code."""
    main = asyncio.current_task()
    assert main is not None
    opened: list[WebSocket] = []
    closed_by_us = False
    closing: set[asyncio.Task[None]] = set()

    def on_signal(count: int) -> None:
        # First Ctrl-C on an open connection: close it (1001, going away). Otherwise stop now.
        if opened and count == 1 and not opened[0].closed:
            task = asyncio.create_task(opened[0].close(1001, "client quit"))
            closing.add(task)
            task.add_done_callback(closing.discard)
        else:
            main.cancel()

    timeout = float(args.open_timeout) or None
    with on_signals(on_signal):
        try:
            websocket = await connect(
                args.url,
                subprotocols=args.subprotocol,
                extra_headers=args.header,
                open_timeout=timeout,
                http2=args.http2,
                **options,
            )
        except HandshakeRejected as exc:
            error(f"{args.url}: the server rejected the WebSocket handshake with {describe_rejection(exc)}")
            return EXIT_FAILURE
        except TimeoutError:
            error(f"{args.url}: timed out after {timeout:g} s opening the connection")
            return EXIT_FAILURE
        except OSError as exc:
            error(f"cannot connect to {args.url}: {describe_os_error(exc)}")
            return EXIT_FAILURE
        except RemoteProtocolError as exc:
            error(f"{args.url}: invalid WebSocket handshake response: {exc}")
            return EXIT_FAILURE
        except ModuleNotFoundError as exc:
            error(f"--http2 needs the h2 library ({exc}): pip install 'wsproto_core[http2]'")
            return EXIT_FAILURE
        except asyncio.CancelledError:
            error("interrupted")
            return EXIT_INTERRUPTED
        opened.append(websocket)
        try:
            if args.echo:
                if args.verbose:
                    say(f"* connected to {args.url}, subprotocol {websocket.subprotocol or '-'}; echoing")
                await echo(websocket, verbose=args.verbose)
            else:
                say(
                    f"* connected to {args.url}"
                    + (f" (subprotocol {websocket.subprotocol})" if websocket.subprotocol else "")
                )
                say("* type a message and press Enter; /help for commands")
                closed_by_us = await interactive(websocket)
        except asyncio.CancelledError:
            error("interrupted")
            return EXIT_INTERRUPTED
    closed = describe_close(websocket.close_code, websocket.close_reason)
    # Clean: the server closed normally, or the closing handshake we started completed.
    if websocket.close_code in (1000, 1001) or (closed_by_us and websocket.close_code != 1006):
        if not args.echo or args.verbose:
            say(f"* connection closed: {closed}")
        return EXIT_OK
    error(f"{args.url}: connection closed: {closed}")
    return EXIT_FAILURE


def run_connect(args: argparse.Namespace) -> int:
    """Run ``connect`` with the parsed command line; return the exit code."""
    try:
        parse_url(args.url)
    except InvalidURL as exc:
        error(str(exc))
        return EXIT_USAGE
    options = settings_from(args, ping_interval=None if args.echo else 20.0)
    try:
        return asyncio.run(connect_and_run(args, options))
    except KeyboardInterrupt:  # Ctrl-C before the loop's own handlers were in place
        error("interrupted")
        return EXIT_INTERRUPTED
