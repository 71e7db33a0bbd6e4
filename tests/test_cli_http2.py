"""``serve --certfile --keyfile``: HTTPS with HTTP/2 and HTTP/1.1 on one port; ``connect --http2``."""

from __future__ import annotations

import asyncio
import re
import ssl
from pathlib import Path

import trustme
from cli_process import Process, serving, stop
from test_cli import run_connect

from wsproto_core.cli.serve import tls_context


def _certificate(directory: Path) -> tuple[str, str, str]:
    """A certificate for 127.0.0.1 from a throwaway CA: (certificate chain, key, CA bundle) files."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    chain, key, bundle = directory / "chain.pem", directory / "key.pem", directory / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(chain))
    for pem in issued.cert_chain_pems[1:]:
        pem.write_to_path(str(chain), append=True)
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(bundle))
    return str(chain), str(key), str(bundle)


def test_serve_https_with_http2_and_http11_on_one_port(tmp_path: Path) -> None:
    chain, key, bundle = _certificate(tmp_path)
    with serving("--certfile", chain, "--keyfile", key) as (server, address):
        assert f"open https://{address}/ in a browser" in server.text("stdout")
        server.wait_for_line(rf"WebSocket clients: wss://{re.escape(address)}/ws ")
        trust = {"SSL_CERT_FILE": bundle}
        over_h2 = asyncio.run(run_connect("--http2", f"wss://{address}/h2", stdin=b"one\n/close\n", env=trust))
        over_h11 = asyncio.run(run_connect(f"wss://{address}/h1", stdin=b"two\n/close\n", env=trust))
        assert over_h2[0] == 0, over_h2
        assert "< one" in over_h2[1]
        assert over_h11[0] == 0, over_h11
        assert "< two" in over_h11[1]
        # The server's log tells which came as an extended CONNECT.
        server.wait_for_line(r"/h2 subprotocol - closed 1000 \(normal closure\) \(HTTP/2 stream 1\)", "stderr")
        line = server.wait_for_line(r"/h1 subprotocol - closed 1000 \(normal closure\)(.*)$", "stderr")
        assert line.group(1) == ""
        assert stop(server) == 0


def test_connect_http2_to_a_server_without_it(tmp_path: Path) -> None:
    """Plain serve speaks HTTP/1.1 only: connect --http2 says so and fails."""
    with serving() as (server, address):
        code, stdout, stderr = asyncio.run(run_connect("--http2", "--echo", f"ws://{address}/"))
        assert (code, stdout) == (1, "")
        assert stderr.startswith(f"error: cannot connect to ws://{address}/: ")
        assert stop(server) == 0
    with serving("--http2") as (server, address):
        code, stdout, stderr = asyncio.run(run_connect("--http2", f"ws://{address}/h2c", stdin=b"three\n/close\n"))
        assert code == 0, stderr
        assert "< three" in stdout
        server.wait_for_line(r"/h2c subprotocol - closed 1000 \(normal closure\) \(HTTP/2 stream 1\)", "stderr")
        assert stop(server) == 0


def test_serve_certificate_errors(tmp_path: Path) -> None:
    chain, key, _bundle = _certificate(tmp_path)
    assert tls_context(chain, key).verify_mode is ssl.CERT_NONE  # a server asks no client certificate
    missing = Process("serve", "--port", "0", "--certfile", str(tmp_path / "missing.pem"))
    assert missing.finish() == 1
    assert missing.text("stderr").startswith(f"error: cannot load the certificate {tmp_path / 'missing.pem'}: ")
    lonely_key = Process("serve", "--port", "0", "--keyfile", key)
    assert lonely_key.finish() == 2
    assert lonely_key.text("stderr") == "error: --keyfile needs --certfile\n"
