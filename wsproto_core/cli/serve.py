"""``python -m wsproto_core serve``: an echo server, with a page to try it from a browser.

Built on the asyncio driver: ``process_request`` answers plain HTTP requests
(the page at ``/``, 404 elsewhere) and every WebSocket connection, on any
path, gets its messages echoed back with the same type.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.resources
import logging
import ssl
from typing import Any

from ..drivers import ConnectionClosed, HttpResponse
from ..drivers._common import ProcessRequest
from ..drivers.asyncio import Handler, Server, WebSocket, serve
from ._shared import describe_close, error, format_address, on_signals, run_logging, settings_from

__all__ = ["PAGE_PATHS", "load_page", "make_handler", "make_process_request", "run_serve"]

logger = logging.getLogger("wsproto_core.cli")

#: Where the page is served; every other plain HTTP request gets a 404.
PAGE_PATHS = frozenset({"/", "/index.html"})

#: The page loads nothing from elsewhere; the policy makes the browser hold it to that.
_PAGE_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
        b"connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'",
    ),
    (b"connection", b"close"),
]

_NOT_FOUND = (
    b"Not found. The page is at /; WebSocket clients may connect to any path (the page uses /ws).\n",
    [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")],
)


def load_page() -> bytes:
    """The HTML page (one self-contained file: inline CSS and JavaScript)."""
    return importlib.resources.files(__package__).joinpath("page.html").read_bytes()


def _is_upgrade(headers: list[tuple[bytes, bytes]]) -> bool:
    """An HTTP/1.1 upgrade to WebSocket, or an HTTP/2 extended CONNECT (``:protocol: websocket``)."""
    return any(name.lower() in (b"upgrade", b":protocol") and b"websocket" in value.lower() for name, value in headers)


def make_process_request(page: bytes, *, verbose: bool = False) -> ProcessRequest:
    """A ``process_request`` that serves ``page`` at :data:`PAGE_PATHS` and 404 elsewhere.

    WebSocket upgrade requests (any path) go on to the handshake.
    """

    def process_request(target: str, headers: list[tuple[bytes, bytes]]) -> HttpResponse | None:
        if _is_upgrade(headers):
            return None
        if target.partition("?")[0] in PAGE_PATHS:
            response = HttpResponse(200, list(_PAGE_HEADERS), page)
        else:
            body, response_headers = _NOT_FOUND
            response = HttpResponse(404, list(response_headers), body)
        if verbose:
            logger.info("HTTP %s -> %d", target, response.status_code)
        return response

    return process_request


def _summary(message: str | bytes) -> str:
    if isinstance(message, str):
        shown = message if len(message) <= 60 else message[:60] + "..."
        return f"text, {len(message)} characters: {shown!r}"
    return f"binary, {len(message)} bytes: {message[:24].hex(' ')}{' ...' if len(message) > 24 else ''}"


def make_handler(*, verbose: bool = False) -> Handler:
    """The echo handler: each message goes back with the same type; one log line per connection."""

    async def echo(websocket: WebSocket) -> None:
        peer = format_address(websocket.remote_address)
        # Over HTTP/2 (RFC 8441) the WebSocket is one stream of the connection.
        stream_id = getattr(websocket, "stream_id", None)
        carried = f" (HTTP/2 stream {stream_id})" if stream_id is not None else ""
        path = websocket.request.target if websocket.request is not None else "?"
        subprotocol = websocket.subprotocol or "-"
        if verbose:
            logger.info("%s %s open, subprotocol %s", peer, path, subprotocol)
        try:
            async for message in websocket:
                if verbose:
                    logger.info("%s echo %s", peer, _summary(message))
                await websocket.send(message)
        except ConnectionClosed:
            pass
        finally:
            with contextlib.suppress(ConnectionClosed):
                await websocket.close()
            logger.info(
                "%s %s subprotocol %s closed %s%s",
                peer,
                path,
                subprotocol,
                describe_close(websocket.close_code, websocket.close_reason),
                carried,
            )

    return echo


def _urls(host: str, port: int, *, secure: bool = False) -> tuple[str, str]:
    """The page's URL and the WebSocket URL, with an address a browser can open."""
    shown = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    secure_suffix = "s" if secure else ""
    return f"http{secure_suffix}://{shown}:{port}/", f"ws{secure_suffix}://{shown}:{port}/ws"


def tls_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """The server's TLS context for ``--certfile`` and ``--keyfile`` (ALPN is set by ``serve``)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


def _quiet_cancellations(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Stopping at once cancels the connections' tasks: not worth a traceback.

    (Python 3.11's ``asyncio.start_server`` reports a cancelled connection
    task as an "Exception in callback".)
    """
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


async def serve_until_stopped(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """Serve until SIGINT or SIGTERM, then close every connection with 1001."""
    stop = asyncio.Event()
    main = asyncio.current_task()
    assert main is not None

    def on_signal(count: int) -> None:
        if count == 1:
            stop.set()
        else:
            asyncio.get_running_loop().set_exception_handler(_quiet_cancellations)
            main.cancel()

    certfile = getattr(args, "certfile", None)
    if getattr(args, "keyfile", None) is not None and certfile is None:
        error("--keyfile needs --certfile")
        return 2
    context = None
    if certfile is not None:
        try:
            context = tls_context(certfile, getattr(args, "keyfile", None))
        except (OSError, ssl.SSLError) as exc:
            error(f"cannot load the certificate {certfile}: {exc.strerror or exc}")
            return 1
    with on_signals(on_signal):
        try:
            server: Server = await serve(
                make_handler(verbose=args.verbose),
                args.host,
                args.port,
                subprotocols=args.subprotocol,
                process_request=make_process_request(load_page(), verbose=args.verbose),
                ssl=context,
                http2=context is not None or bool(getattr(args, "http2", False)),
                **options,
            )
        except OSError as exc:
            error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
            return 1
        except ModuleNotFoundError as exc:
            error(f"HTTP/2 needs the h2 library ({exc}): pip install 'wsproto_core[http2]'")
            return 1
        page_url, websocket_url = _urls(args.host, server.port, secure=context is not None)
        print(f"wsproto_core echo server: open {page_url} in a browser", flush=True)
        print(f"WebSocket clients: {websocket_url} (any path); press Ctrl-C to stop", flush=True)
        try:
            await stop.wait()
            logger.info("shutting down: closing connections with 1001 (press Ctrl-C again to stop at once)")
            await server.close(1001, "server shutting down")
        except asyncio.CancelledError:
            logger.info("stopped without waiting for the connections to close")
            return 1
    logger.info("stopped")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """Run ``serve`` with the parsed command line; return the exit code."""
    options = settings_from(args, ping_interval=20.0)
    return run_logging(serve_until_stopped(args, options))
