"""``python -m wsproto_core chat`` as real processes: raw WebSocket clients, two processes on Redis, Chromium.

The Redis test needs ``WSPROTO_CORE_REDIS_URL`` (see tests/test_drivers_topics_redis.py):
it skips without it, except under CI, where it fails. The browser test skips
without a Chromium binary, as tests/test_browser.py does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets.asyncio.client
from cli_process import Process, stop
from test_browser import CHROMIUM, DevTools, chromium

from wsproto_core.drivers.asyncio import connect


@contextlib.contextmanager
def chatting(*args: str) -> Iterator[tuple[Process, str]]:
    """``chat --port 0 ...``: yields the process and its ``host:port``; kills it if the test did not stop it."""
    process = Process("chat", "--port", "0", *args)
    try:
        match = process.wait_for_line(r"open http://([^/\s]+)/ in a browser")
        yield process, match.group(1)
    finally:
        process.kill()


async def request(client: Any, message: Any) -> dict[str, Any]:
    await client.send(message if isinstance(message, (str, bytes)) else json.dumps(message))
    return json.loads(await client.recv())  # type: ignore[no-any-return]


def test_rooms_answers_and_errors_with_raw_clients() -> None:
    with chatting() as (server, address):

        async def talk() -> None:
            url = f"ws://{address}/ws"
            async with websockets.asyncio.client.connect(url) as alice, connect(url) as bob:
                assert await request(alice, {"join": "tea"}) == {"joined": "tea"}
                assert await request(bob, {"join": "tea"}) == {"joined": "tea"}
                said = await request(alice, {"room": "tea", "text": "milk first? ☕"})
                assert (said["room"], said["text"]) == ("tea", "milk first? ☕")
                heard = json.loads(await bob.recv())
                assert heard == said
                # Malformed requests get an error; the connection stays open.
                for bad in (
                    "not json",
                    b"\x01binary",
                    [1, 2],
                    {"join": ""},
                    {"join": 5},
                    {"join": "x" * 65},
                    {"room": "tea"},
                    {"room": "coffee", "text": "not a member"},
                    {"room": "tea", "text": "y" * 4001},
                    {"leave": "coffee"},
                    {"what": "ever"},
                ):
                    answer = await request(alice, bad)
                    assert set(answer) <= {"error", "room"} and answer["error"], (bad, answer)
                assert await request(bob, {"leave": "tea"}) == {"left": "tea"}
                said = await request(alice, {"room": "tea", "text": "still open"})
                assert said["text"] == "still open"
                # Bob left: the next thing he hears is his own next answer.
                assert await request(bob, {"join": "other"}) == {"joined": "other"}

        asyncio.run(talk())
        assert stop(server) == 0
    assert "Traceback" not in server.text("stderr")


def test_two_chat_processes_share_rooms_through_redis(redis_url: str) -> None:
    per_client = 30
    with (
        chatting("--redis", redis_url) as (first, first_address),
        chatting("--redis", redis_url) as (
            second,
            second_address,
        ),
    ):

        async def talk() -> None:
            async with contextlib.AsyncExitStack() as stack:
                clients = [
                    await stack.enter_async_context(connect(f"ws://{address}/ws"))
                    for address in (first_address, second_address)
                    for _ in range(3)
                ]
                room = f"room-{os.getpid()}"
                for client in clients:
                    assert await request(client, {"join": room}) == {"joined": room}

                async def say_all(index: int) -> None:
                    for number in range(per_client):
                        await clients[index].send(json.dumps({"room": room, "text": f"{index}:{number}"}))

                await asyncio.gather(*(say_all(index) for index in range(len(clients))))
                total = per_client * len(clients)
                for client in clients:
                    heard = [json.loads(await client.recv()) for _ in range(total)]
                    assert {message["room"] for message in heard} == {room}
                    texts = [message["text"] for message in heard]
                    for index in range(len(clients)):
                        # Everyone's messages, sender included, once and in the sender's order.
                        assert [text for text in texts if text.startswith(f"{index}:")] == [
                            f"{index}:{number}" for number in range(per_client)
                        ]

        asyncio.run(talk())
        assert stop(first) == 0
        assert stop(second) == 0


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium, chromium-browser or google-chrome binary")
def test_two_browser_pages_talk_in_a_room(tmp_path: Path) -> None:
    with chatting() as (server, address), chromium(tmp_path / "profile", tmp_path / "chromium.log") as devtools:
        devtools_port, browser_path = devtools

        async def drive() -> tuple[list[str], list[str]]:
            async with connect(f"ws://127.0.0.1:{devtools_port}{browser_path}", max_message_size=None) as websocket:
                browser = DevTools(websocket)
                pages = []
                for _ in range(2):
                    target = await browser.call("Target.createTarget", url=f"http://{address}/")
                    attached = await browser.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
                    page = attached["sessionId"]
                    await browser.wait_for(page, "document.getElementById('status')?.textContent === 'connected'")
                    # Join the default room ("lobby") as a person would: click Join.
                    await browser.evaluate(page, "document.querySelector('#join button').click()")
                    await browser.wait_for(page, "document.querySelectorAll('#rooms .room').length === 1")
                    pages.append(page)
                first, second = pages
                await browser.evaluate(first, "document.getElementById('text').focus()")
                await browser.call("Input.insertText", first, text="hello from page one")
                await browser.evaluate(first, "document.querySelector('#say button').click()")
                said = "Array.from(document.querySelectorAll('#log .said'), (e) => e.textContent)"
                for page in pages:
                    await browser.wait_for(page, f"{said}.some((t) => t.endsWith('hello from page one'))")
                return await browser.evaluate(first, said), await browser.evaluate(second, said)

        first_lines, second_lines = asyncio.run(drive())
        assert stop(server) == 0
    assert len(first_lines) == len(second_lines) == 1
    assert first_lines[0].startswith("#lobby 127.0.0.1:")
