"""The command line: ``python -m wsproto_core [demo | serve | chat | connect | fuzz]``.

- ``demo`` (the default): a client and a server talking through memory, every
  frame and event printed;
- ``serve``: an echo server on the asyncio driver, with a page at ``/`` to try
  it from a browser;
- ``chat``: chat rooms in a browser, on the topics hub (``--redis URL``:
  shared by several processes);
- ``connect URL``: an interactive client, or (``--echo``) an echo client for
  test suites such as Autobahn's fuzzingserver;
- ``fuzz URL``: a compliance fuzzer that sends generated valid and invalid
  frames to an echo server and checks its reactions against RFC 6455.

Like the drivers, the command line sits outside the sans-I/O core: it may use
asyncio and sockets. The commands' modules are imported only when run, so
``demo`` and ``--help`` stay light.
"""

from __future__ import annotations

import argparse

__all__ = ["main"]

_UNITS = {"": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2, "g": 1024**3}
_UNITS |= {"gb": 1024**3, "gib": 1024**3}


def size(text: str) -> int | None:
    """An argparse type: a byte count such as ``65536``, ``64KiB`` or ``16M``; 0 means no limit."""
    stripped = text.strip().lower()
    digits = stripped.rstrip("kmgib")
    unit = stripped[len(digits) :]
    if not digits.isdigit() or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: use a number of bytes such as 1048576, 64KiB or 16M")
    value = int(digits) * _UNITS[unit]
    return value or None


def seconds(text: str) -> float:
    """An argparse type: a non-negative number of seconds (0 usually means off)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: use a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: use a number of seconds, 0 or more")
    return value


def port(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535 (0: any free port)."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: use a number from 0 to 65535")
    return int(text)


def count(text: str) -> int:
    """An argparse type: a positive whole number."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: use a whole number, 1 or more")
    return int(text)


def header(text: str) -> tuple[bytes, bytes]:
    """An argparse type: an HTTP header, ``"Name: value"``."""
    name, colon, value = text.partition(":")
    if not colon or not name.strip() or any(c in name for c in " \t\r\n") or any(c in value for c in "\r\n"):
        raise argparse.ArgumentTypeError(f"invalid header {text!r}: use 'Name: value'")
    return name.strip().encode("latin-1", "replace"), value.strip().encode("latin-1", "replace")


def _add_connection_options(parser: argparse.ArgumentParser, *, client: bool) -> None:
    """The options both commands share: the driver's settings."""
    group = parser.add_argument_group("WebSocket options")
    group.add_argument(
        "--subprotocol",
        action="append",
        default=[],
        metavar="NAME",
        help="a subprotocol to "
        + ("offer, in order of preference" if client else "accept, in order of preference (the first one")
        + ("" if client else " the client also offers is chosen)")
        + "; repeat for several",
    )
    group.add_argument(
        "--no-deflate",
        action="store_true",
        help="do not negotiate permessage-deflate compression (RFC 7692)",
    )
    group.add_argument(
        "--max-message-size",
        type=size,
        default="64MiB",
        metavar="BYTES",
        help="the largest message accepted (a bigger one closes the connection with 1009); "
        "a number of bytes or with a suffix such as 64KiB or 16M; 0 means no limit (default: %(default)s)",
    )
    group.add_argument(
        "--max-frame-size",
        type=size,
        default="64MiB",
        metavar="BYTES",
        help="the largest frame accepted, same format as --max-message-size (default: %(default)s)",
    )
    group.add_argument(
        "--ping-interval",
        type=seconds,
        default=None if client else 20.0,
        metavar="SECONDS",
        help="send a keepalive Ping this often; 0 disables keepalive pings "
        + (
            "(default: 20, or 0 with --echo so that test suites see only their own frames)"
            if client
            else "(default: 20)"
        ),
    )
    group.add_argument(
        "--ping-timeout",
        type=seconds,
        default=20,
        metavar="SECONDS",
        help="close the connection when a keepalive Pong is this late; 0 waits forever (default: %(default)s)",
    )
    group.add_argument(
        "--close-timeout",
        type=seconds,
        default=10,
        metavar="SECONDS",
        help="how long to wait for the peer during the closing handshake; 0 waits forever (default: %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m wsproto_core``."""
    parser = argparse.ArgumentParser(
        prog="python -m wsproto_core",
        description="wsproto_core, a sans-I/O WebSocket library (RFC 6455): demos and tools.",
        epilog="Run 'python -m wsproto_core COMMAND --help' for a command's options. Without a command, runs 'demo'.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    commands.add_parser(
        "demo",
        help="a client and a server talking through memory, every frame printed (the default)",
        description="Run a scripted conversation between a client and a server Connection in memory and print "
        "every frame on the wire and every event each side sees. No network involved.",
    )

    serve = commands.add_parser(
        "serve",
        help="an echo server with a page to try it from a browser",
        description="Run a WebSocket echo server: every message comes back with the same type (text stays text, "
        "binary stays binary). Open http://HOST:PORT/ in a browser for a page that sends what you type and shows "
        "what comes back; WebSocket clients may connect to any path (the page uses /ws). Runs until Ctrl-C "
        "(SIGINT) or SIGTERM, which close every connection with 1001 (going away); a second Ctrl-C stops at once.",
        epilog="Logs one line per connection (address, path, subprotocol, close code) to stderr.",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on; 0.0.0.0 or :: for all (default: %(default)s)"
    )
    serve.add_argument(
        "--port", type=port, default=8765, help="the port to listen on; 0 for any free one (default: %(default)s)"
    )
    serve.add_argument("--verbose", "-v", action="store_true", help="also log HTTP requests and every message")
    serve.add_argument(
        "--certfile",
        metavar="FILE",
        help="serve HTTPS and wss:// with this PEM certificate chain (with --keyfile): HTTP/2 and HTTP/1.1 on one "
        "port, chosen by ALPN; over HTTP/2, WebSockets are streams of one connection (RFC 8441)",
    )
    serve.add_argument("--keyfile", metavar="FILE", help="the private key of --certfile (PEM)")
    serve.add_argument(
        "--http2",
        action="store_true",
        help="without TLS, also accept HTTP/2 with prior knowledge (h2c) on the same port (always on with --certfile)",
    )
    _add_connection_options(serve, client=False)

    chat = commands.add_parser(
        "chat",
        help="chat rooms in a browser; with --redis, shared by several processes",
        description="Run a chat server: open http://HOST:PORT/ in several browser tabs (or machines) and talk in "
        "rooms. "
        'Its WebSocket, at /ws, speaks JSON: send {"join": ROOM}, {"leave": ROOM} and {"room": ROOM, "text": TEXT}; '
        'every member of ROOM, the sender included, receives {"room": ROOM, "text": TEXT, ...}; a malformed message '
        'gets {"error": ...} back. With --redis URL, rooms are shared by every chat process on the same Redis.',
    )
    chat.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on; 0.0.0.0 or :: for all (default: %(default)s)"
    )
    chat.add_argument(
        "--port", type=port, default=8766, help="the port to listen on; 0 for any free one (default: %(default)s)"
    )
    chat.add_argument(
        "--redis", metavar="URL", help="share rooms through Redis pub/sub, e.g. redis://127.0.0.1:6379/0 (extra: redis)"
    )
    _add_connection_options(chat, client=False)

    connect = commands.add_parser(
        "connect",
        help="an interactive client, or an echo client (--echo)",
        description="Connect to a WebSocket server. Interactive (the default): every line read from stdin is sent "
        "as a text message and every message received is printed ('< text', or '< (binary, N bytes) HEX'); "
        "type /ping to measure the round-trip time, /close [CODE [REASON]] to close, /help for help, and start a "
        "line with // to send one that begins with /. End of input (Ctrl-D) closes too. With --echo, every "
        "message received is sent back whole with the same type, until the server closes.",
        epilog="Exit status: 0 after a clean close (1000 or 1001), 1 when the connection fails or closes with "
        "another code (or the handshake is rejected, or times out), 2 for a bad URL or option.",
    )
    connect.add_argument("url", metavar="URL", help="a ws:// or wss:// URL")
    connect.add_argument(
        "--echo",
        action="store_true",
        help="echo every message received (same type) until the server closes; exit 0 if it closed with 1000 "
        "or 1001 (for Autobahn's fuzzingserver and similar test suites)",
    )
    connect.add_argument(
        "--header",
        action="append",
        type=header,
        default=[],
        metavar="'NAME: VALUE'",
        help="an extra HTTP header for the handshake (Origin, Authorization, ...); repeat for several",
    )
    connect.add_argument(
        "--open-timeout",
        type=seconds,
        default=10,
        metavar="SECONDS",
        help="give up when the connection and handshake take longer; 0 waits forever (default: %(default)s)",
    )
    connect.add_argument(
        "--verbose", "-v", action="store_true", help="with --echo, print the status lines and every message echoed"
    )
    connect.add_argument(
        "--http2",
        action="store_true",
        help="open the WebSocket as a stream of an HTTP/2 connection (RFC 8441): ALPN h2 for wss://, "
        "prior knowledge (h2c) for ws://",
    )
    _add_connection_options(connect, client=True)

    fuzz = commands.add_parser(
        "fuzz",
        help="fuzz a WebSocket echo server for RFC 6455 compliance (needs hypothesis)",
        description="Send generated sequences of valid and invalid frames to a WebSocket server, one connection "
        "each, and check its reactions against RFC 6455, with wsproto_core as the oracle: messages echoed intact and "
        "in order, Pings answered with the same payload, Close answered, violations failing the connection with the "
        "right close code (1002, or 1007 for invalid UTF-8, 1002 accepted too) and nothing sent after them, and the "
        "server's own frames well-formed. The server must echo every message (as Autobahn's test servers do); with "
        "--no-echo only the protocol reactions are checked. Each distinct finding is shrunk to a minimal byte "
        "sequence and printed as hex and as a list of frames.",
        epilog="Exit status: 0 when no violation was found (warnings, such as a failure without a Close frame, "
        "are printed but do not count), 1 when violations were found, 2 for a bad URL or option, a server that "
        "cannot be reached, or hypothesis missing (pip install 'wsproto_core[compliance]').",
    )
    fuzz.add_argument("url", metavar="URL", nargs="?", help="a ws:// or wss:// URL of an echo server")
    fuzz.add_argument(
        "--client",
        metavar="'CMD {url}'",
        default=None,
        help="fuzz a client instead of a server: start a hostile server on 127.0.0.1 and run this command, "
        "with {url} replaced by the server's URL, once per case (or once, if it connects again after each case); "
        "the client should echo every message and exit 0 after a normal closure, non-zero after a failure",
    )
    fuzz.add_argument(
        "--ignore-exit",
        action="store_true",
        help="with --client: do not judge the client's exit status",
    )
    fuzz.add_argument(
        "--examples", type=count, default=100, metavar="N", help="how many sequences to try (default: %(default)s)"
    )
    fuzz.add_argument(
        "--seed",
        type=int,
        default=None,
        help="the hypothesis seed, to repeat a run; the seed used is printed (default: random)",
    )
    fuzz.add_argument(
        "--timeout",
        type=seconds,
        default=2.0,
        metavar="SECONDS",
        help="how long to wait for each read of the server's reaction; a server silent that long after a "
        "violation did not detect it (connecting and the handshake get at least 5 s) (default: %(default)s)",
    )
    fuzz.add_argument(
        "--max-frames",
        type=count,
        default=8,
        metavar="N",
        help="the most frames in one sequence (default: %(default)s)",
    )
    fuzz.add_argument(
        "--budget",
        type=seconds,
        default=300,
        metavar="SECONDS",
        help="stop starting new examples after this long; 0 for no limit (default: %(default)s)",
    )
    fuzz.add_argument(
        "--no-echo", action="store_true", help="the server does not echo: check only the protocol reactions"
    )
    fuzz.add_argument(
        "--max-message-size",
        type=size,
        default=None,
        metavar="BYTES",
        help="the server's message size limit, to check it: messages just over it are sent too and must fail "
        "the connection with 1009 (or 1008); a number of bytes or with a suffix such as 64KiB (default: not checked)",
    )
    fuzz.add_argument(
        "--header",
        action="append",
        type=header,
        default=[],
        metavar="'NAME: VALUE'",
        help="an extra HTTP header for each handshake (Origin, Authorization, ...); repeat for several",
    )
    fuzz.add_argument(
        "--subprotocol", action="append", default=[], metavar="NAME", help="a subprotocol to offer; repeat for several"
    )
    fuzz.add_argument(
        "--deflate",
        action="store_true",
        help="offer permessage-deflate (RFC 7692) and, once the server accepts, compress every message sent "
        "(exit 2 if it declines)",
    )
    fuzz.add_argument(
        "--json",
        metavar="FILE",
        default=None,
        help="write a JSON report: every case with its status, bytes and expected reaction, and the findings "
        "(shape: wsproto_core/cli/fuzz_report.schema.json)",
    )
    fuzz.add_argument(
        "--html",
        metavar="FILE",
        default=None,
        help="write the same report as one self-contained HTML page, with a summary table at the top",
    )
    fuzz.add_argument("--verbose", "-v", action="store_true", help="print each kind of finding as it is found")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the chosen command and return its exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from .serve import run_serve  # noqa: PLC0415 (asyncio only for the commands that use it)

        return run_serve(args)
    if args.command == "chat":
        from .chat import run_chat  # noqa: PLC0415

        return run_chat(args)
    if args.command == "connect":
        from .connect import run_connect  # noqa: PLC0415

        return run_connect(args)
    if args.command == "fuzz":
        if args.client is not None:
            from .fuzz_client import run_fuzz_client  # noqa: PLC0415

            if args.url is not None:
                from ._shared import error  # noqa: PLC0415

                error("give either a URL (to fuzz a server) or --client (to fuzz a client), not both")
                return 2
            return run_fuzz_client(args)
        from .fuzz import run_fuzz  # noqa: PLC0415

        if args.url is None:
            from ._shared import error  # noqa: PLC0415

            error("fuzz needs a URL (to fuzz a server) or --client 'CMD {url}' (to fuzz a client)")
            return 2
        return run_fuzz(args)
    from .demo import demo  # noqa: PLC0415

    return demo()
