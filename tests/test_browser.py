"""The ``serve`` page in a real browser: headless Chromium, driven over the DevTools protocol.

The DevTools protocol is JSON over a WebSocket, so the test talks to Chromium
with our own asyncio driver's ``connect``. It starts ``python -m wsproto_core
serve``, opens its page, types a message, clicks Send, and waits for the echo
to show up in the page's log; then clicks Close. Skipped when no Chromium or
Chrome binary is installed (``.ci/run`` installs Debian's ``chromium`` when it can).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from cli_process import serving, stop

from wsproto_core.drivers.asyncio import WebSocket, connect


def find_chromium() -> str | None:
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium, chromium-browser or google-chrome binary")


@contextlib.contextmanager
def chromium(profile: Path, log: Path, extra_arguments: Sequence[str] = ()) -> Iterator[tuple[int, str]]:
    """Start headless Chromium; yield the DevTools port and the browser target's path."""
    assert CHROMIUM is not None
    arguments = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        *extra_arguments,
        "about:blank",
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(
            arguments, stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True
        )
    try:
        active_port = profile / "DevToolsActivePort"
        for _ in range(300):  # up to 30 s
            if active_port.exists():
                lines = active_port.read_text().split()
                if len(lines) >= 2:
                    yield int(lines[0]), lines[1]
                    break
            if process.poll() is not None:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"Chromium wrote no DevToolsActivePort in 30 s:\n{log.read_text(errors='replace')[-3000:]}")
        if process.poll() is not None and not active_port.exists():
            pytest.fail(f"Chromium exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
    finally:
        if process.poll() is None:
            # The browser and its helper processes share the session we started it in.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


class DevTools:
    """A minimal DevTools protocol client: commands and their results, events skipped."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.last_id = 0

    async def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.last_id += 1
        command: dict[str, Any] = {"id": self.last_id, "method": method, "params": params}
        if session is not None:
            command["sessionId"] = session
        await self.websocket.send(json.dumps(command))
        while True:
            reply = json.loads(await self.websocket.recv())
            if reply.get("id") == self.last_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                return reply["result"]  # type: ignore[no-any-return]

    async def evaluate(self, session: str, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    async def wait_for(self, session: str, expression: str, timeout: float = 20.0) -> Any:
        """Evaluate ``expression`` until it is truthy; return its value."""
        async with asyncio.timeout(timeout):
            while not (value := await self.evaluate(session, expression)):
                await asyncio.sleep(0.05)
        return value


LOG_LINES = "Array.from(document.querySelectorAll('#log > div'), (e) => e.className + ' ' + e.textContent)"


def test_echo_page_in_headless_chromium(tmp_path: Path) -> None:
    message = "hello from Chromium \N{WAVING HAND SIGN} h\N{LATIN SMALL LETTER E WITH ACUTE}"
    with serving() as (server, address), chromium(tmp_path / "profile", tmp_path / "chromium.log") as devtools:
        devtools_port, browser_path = devtools

        async def drive() -> list[str]:
            url = f"ws://127.0.0.1:{devtools_port}{browser_path}"
            async with connect(url, max_message_size=None) as websocket:
                browser = DevTools(websocket)
                target = await browser.call("Target.createTarget", url=f"http://{address}/")
                attached = await browser.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
                page = attached["sessionId"]
                status = await browser.wait_for(
                    page,
                    "document.getElementById('status')?.dataset.state === 'open' && "
                    "document.getElementById('status').textContent",
                )
                assert status == "connected"
                # Type into the input, as a person would, and click Send.
                await browser.evaluate(page, "document.getElementById('message').focus()")
                await browser.call("Input.insertText", page, text=message)
                assert await browser.evaluate(page, "document.getElementById('message').value") == message
                await browser.evaluate(page, "document.getElementById('send').click()")
                await browser.wait_for(
                    page,
                    f"Array.from(document.querySelectorAll('#log .received'))"
                    f".some((e) => e.textContent.endsWith({json.dumps('← ' + message)}))",
                )
                # Then close from the page.
                await browser.evaluate(page, "document.getElementById('close').click()")
                closed = await browser.wait_for(
                    page,
                    "document.getElementById('status').dataset.state === 'closed' && "
                    "document.getElementById('status').textContent",
                )
                assert closed == "closed (1000)"
                assert await browser.evaluate(page, "document.getElementById('close').textContent") == "Reconnect"
                lines: list[str] = await browser.evaluate(page, LOG_LINES)
                await browser.call("Target.closeTarget", targetId=target["targetId"])
                return lines

        lines = asyncio.run(drive())
        server.wait_for_line(r"127\.0\.0\.1:\d+ /ws subprotocol - closed 1000 \(normal closure\) 'bye'", "stderr")
        assert stop(server) == 0
    texts = [line.split(" ", 1)[1] for line in lines]
    # info/sent/received lines, each after a time stamp
    kinds = [line.split(" ", 1)[0] for line in lines]
    assert kinds == ["info", "info", "sent", "received", "info"], lines
    assert texts[0].endswith(f"connecting to ws://{address}/ws")
    # Chromium offers permessage-deflate and the server accepts it, with the drivers' 12-bit windows.
    deflate = "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    assert texts[1].endswith(f"connected to ws://{address}/ws, {deflate}"), texts[1]
    assert texts[2].endswith(f"→ {message}")
    assert texts[3].endswith(f"← {message}")
    assert texts[4].endswith("closed: 1000 bye")
    assert "Traceback" not in server.text("stderr")
