"""``python -m wsproto_core chat``: chat rooms in a browser, rooms as topics of a hub.

The page at ``/`` joins rooms and talks in them; its WebSocket, at ``/ws``,
speaks JSON text messages that any client can use:

- ``{"join": ROOM}`` and ``{"leave": ROOM}``: enter or leave a room;
- ``{"room": ROOM, "text": TEXT}``: say something in a room one has joined;
  every member of the room, in every process, the sender included, receives
  ``{"room": ROOM, "text": TEXT, "from": NAME, "time": SECONDS}``.

Every request is answered: a join or a leave with ``{"joined": ROOM}`` or
``{"left": ROOM}``, anything malformed with ``{"error": ...}``; the connection
stays open. With ``--redis URL`` the rooms are topics on Redis, so two chat
processes (on other ports or machines) share them; without it they are local.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.resources
import json
import logging
import time
from typing import Any

from ..drivers import ConnectionClosed, HttpResponse
from ..drivers._common import ProcessRequest
from ..drivers.asyncio import Handler, Server, WebSocket, serve
from ..drivers.topics import Backend, Hub, PublishError
from ._shared import error, format_address, on_signals, run_logging, settings_from

__all__ = ["MAX_ROOM_LENGTH", "MAX_TEXT_LENGTH", "make_handler", "run_chat"]

logger = logging.getLogger("wsproto_core.cli")

#: The longest room name and message text accepted, in characters.
MAX_ROOM_LENGTH = 64
MAX_TEXT_LENGTH = 4000

_PAGE_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        b"connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'",
    ),
    (b"connection", b"close"),
]


def _page() -> bytes:
    return importlib.resources.files(__package__).joinpath("chat.html").read_bytes()


def _process_request(page: bytes) -> ProcessRequest:
    def process_request(target: str, headers: list[tuple[bytes, bytes]]) -> HttpResponse | None:
        path = target.partition("?")[0]
        upgrade = any(name.lower() == b"upgrade" and b"websocket" in value.lower() for name, value in headers)
        if path == "/ws" and upgrade:
            return None
        if path in ("/", "/index.html") and not upgrade:
            return HttpResponse(200, list(_PAGE_HEADERS), page)
        body = b"Not found. The chat page is at /, its WebSocket at /ws.\n"
        return HttpResponse(404, [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")], body)

    return process_request


def _room(value: Any) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= MAX_ROOM_LENGTH and value.isprintable():
        return value
    return None


def make_handler(hub: Hub) -> Handler:
    """The chat's WebSocket handler: JSON requests in, room messages and answers out."""

    async def chat(websocket: WebSocket) -> None:
        peer = format_address(websocket.remote_address)
        logger.info("%s joined the chat server", peer)
        try:
            async for message in websocket:
                answer = await _answer(hub, websocket, message, peer)
                if answer is not None:
                    await websocket.send(json.dumps(answer))
        except ConnectionClosed:
            pass
        finally:
            await hub.unsubscribe(websocket)
            logger.info("%s left", peer)

    return chat


async def _answer(hub: Hub, websocket: WebSocket, message: str | bytes, peer: str) -> dict[str, Any] | None:
    """What to send back for one request (``None``: nothing, the room message is the answer)."""
    if not isinstance(message, str):
        return {"error": "send JSON text messages, not binary"}
    try:
        request = json.loads(message)
    except ValueError:
        return {"error": 'not JSON: send {"join": ROOM}, {"leave": ROOM} or {"room": ROOM, "text": TEXT}'}
    if not isinstance(request, dict):
        return {"error": "send a JSON object"}
    if "join" in request:
        room = _room(request["join"])
        if room is None:
            return {"error": f"a room is a name of 1 to {MAX_ROOM_LENGTH} printable characters"}
        await hub.subscribe(websocket, room)
        return {"joined": room}
    if "leave" in request:
        room = _room(request["leave"])
        if room is None or room not in hub.topics(websocket):
            return {"error": "leave a room you joined"}
        await hub.unsubscribe(websocket, room)
        return {"left": room}
    room, text = _room(request.get("room")), request.get("text")
    if room is None or not isinstance(text, str):
        return {"error": 'send {"join": ROOM}, {"leave": ROOM} or {"room": ROOM, "text": TEXT}'}
    if room not in hub.topics(websocket):
        return {"error": f"join {room!r} before talking in it", "room": room}
    if len(text) > MAX_TEXT_LENGTH:
        return {"error": f"messages are at most {MAX_TEXT_LENGTH} characters", "room": room}
    said = {"room": room, "text": text, "from": peer, "time": round(time.time(), 3)}
    try:
        await hub.publish(room, json.dumps(said))
    except PublishError as exc:
        return {"error": f"not sent: {exc}", "room": room}
    return None


async def _run(args: argparse.Namespace, options: dict[str, Any]) -> int:
    stop = asyncio.Event()
    backend: Backend | None = None
    if args.redis:
        try:
            from ..drivers.topics_redis import RedisBackend  # noqa: PLC0415 (redis is an optional extra)
        except ModuleNotFoundError as exc:
            error(f"--redis needs the redis library ({exc}): pip install 'wsproto_core[redis]'")
            return 1

        def on_change(connected: bool) -> None:
            logger.info("Redis %s", "connected" if connected else "lost: reconnecting")

        backend = RedisBackend(args.redis, channel_prefix="wsproto_core-chat:", on_connection_change=on_change)
    with on_signals(lambda count: stop.set()):
        hub = Hub(backend)
        try:
            await hub.start()
        except ConnectionError as exc:
            error(str(exc))
            return 1
        try:
            try:
                server: Server = await serve(
                    make_handler(hub),
                    args.host,
                    args.port,
                    process_request=_process_request(_page()),
                    **options,
                )
            except OSError as exc:
                error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
                return 1
            shown = "127.0.0.1" if args.host in ("", "0.0.0.0") else args.host
            print(f"wsproto_core chat: open http://{shown}:{server.port}/ in a browser", flush=True)
            print(
                f"WebSocket: ws://{shown}:{server.port}/ws; rooms "
                + (f"shared through Redis at {args.redis}" if args.redis else "in this process only"),
                flush=True,
            )
            await stop.wait()
            await server.close(1001, "server shutting down")
        finally:
            await hub.close()
    return 0


def run_chat(args: argparse.Namespace) -> int:
    """Run ``chat`` with the parsed command line; return the exit code."""
    options = settings_from(args, ping_interval=20.0)
    return run_logging(_run(args, options))
