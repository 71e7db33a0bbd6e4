"""The ``serve`` page over HTTPS in headless Chromium: the page and its WebSocket on one HTTP/2 connection.

``serve --certfile --keyfile`` offers ``h2`` and ``http/1.1`` by ALPN and
enables extended CONNECT (RFC 8441). Chromium loads the page over HTTP/2 and,
seeing SETTINGS_ENABLE_CONNECT_PROTOCOL on that connection, opens the
page's WebSocket as a stream of it. The proof is on the server's side: its
log line for the WebSocket names the HTTP/2 stream it came on, and that
stream is not the connection's first (the page was).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
import trustme
from cli_process import serving, stop
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from test_browser import CHROMIUM, DevTools, chromium

from wsproto_core.drivers.asyncio import connect

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium, chromium-browser or google-chrome binary")


def test_page_and_websocket_share_one_http2_connection_in_chromium(tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(chain))
    issued.private_key_pem.write_to_path(str(key))
    # Chromium trusts exactly this key (by the hash of its SPKI), nothing else.
    certificate = x509.load_pem_x509_certificate(issued.cert_chain_pems[0].bytes())
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    spki_hash = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    message = "hello over HTTP/2"
    with (
        serving("--certfile", str(chain), "--keyfile", str(key), "--verbose") as (server, address),
        chromium(
            tmp_path / "profile", tmp_path / "chromium.log", [f"--ignore-certificate-errors-spki-list={spki_hash}"]
        ) as devtools,
    ):
        devtools_port, browser_path = devtools

        async def drive() -> tuple[str, str]:
            async with connect(f"ws://127.0.0.1:{devtools_port}{browser_path}", max_message_size=None) as websocket:
                browser = DevTools(websocket)
                target = await browser.call("Target.createTarget", url=f"https://{address}/")
                attached = await browser.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
                page = attached["sessionId"]
                await browser.wait_for(page, "document.getElementById('status')?.dataset.state === 'open'")
                protocol = await browser.evaluate(page, "performance.getEntriesByType('navigation')[0].nextHopProtocol")
                await browser.evaluate(page, "document.getElementById('message').focus()")
                await browser.call("Input.insertText", page, text=message)
                await browser.evaluate(page, "document.getElementById('send').click()")
                await browser.wait_for(
                    page,
                    f"Array.from(document.querySelectorAll('#log .received'))"
                    f".some((e) => e.textContent.endsWith({json.dumps('← ' + message)}))",
                )
                await browser.evaluate(page, "document.getElementById('close').click()")
                closed = await browser.wait_for(
                    page,
                    "document.getElementById('status').dataset.state === 'closed' && "
                    "document.getElementById('status').textContent",
                )
                await browser.call("Target.closeTarget", targetId=target["targetId"])
                return protocol, closed

        protocol, closed = asyncio.run(drive())
        line = server.wait_for_line(
            r"127\.0\.0\.1:\d+ /ws subprotocol - closed 1000 \(normal closure\) 'bye'(.*)$", "stderr"
        )
        assert stop(server) == 0
    # The page itself came over HTTP/2 ...
    assert protocol == "h2"
    assert closed == "closed (1000)"
    # ... and its WebSocket was an extended CONNECT on a later stream of a connection.
    carried = re.fullmatch(r" \(HTTP/2 stream (\d+)\)", line.group(1))
    assert carried is not None, f"the WebSocket did not come over HTTP/2: {line.group(0)!r}\n{server.text()}"
    assert int(carried.group(1)) > 1
    assert "Traceback" not in server.text("stderr")
