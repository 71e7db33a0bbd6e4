"""Opening handshakes per second, server and client: wsproto_core vs wsproto vs websockets.

Server: each iteration creates a server connection, feeds it a browser-like
upgrade request (with a permessage-deflate offer that is not accepted, so no
zlib work is measured), reads the request event, accepts it and collects the
101 response bytes.

Client: each iteration creates a client connection, writes its upgrade request
(host, path, an Origin header), feeds it a server's 101 and reads the event
that says the connection is open. Every client draws the RFC 6455 section 1.3
sample key instead of a random one (for all three libraries alike), so that
one prebuilt 101 answers every iteration.

The three implementations run interleaved, repetition by repetition, timed in
CPU time of this process (other work on a shared machine counts less than in
wall time); the table shows medians and the ratio of wsproto_core to each.

Run: python benchmarks/bench_handshake.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import websockets.client
import wsproto
import wsproto.events
import wsproto.handshake
from websockets.client import ClientProtocol
from websockets.http11 import Response as WsResponse
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

import wsproto_core
import wsproto_core.handshake
from wsproto_core.events import AcceptConnection, Request

REQUEST = (
    b"GET /chat?room=1 HTTP/1.1\r\n"
    b"Host: example.com:8080\r\n"
    b"Connection: Upgrade\r\n"
    b"Pragma: no-cache\r\n"
    b"Cache-Control: no-cache\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n"
    b"Upgrade: websocket\r\n"
    b"Origin: https://example.com\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"\r\n"
)


#: RFC 6455 section 1.3's sample key and the Sec-WebSocket-Accept that answers it.
SAMPLE_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
SAMPLE_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#: The 101 a server sends a client that used the sample key.
RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: " + SAMPLE_ACCEPT + b"\r\n"
    b"\r\n"
)
CLIENT_URI = "ws://example.com:8080/chat?room=1"
CLIENT_ORIGIN = "https://example.com"


def sample_key() -> bytes:
    return SAMPLE_KEY


def sample_key_text() -> str:
    return SAMPLE_KEY.decode("ascii")


# Each library draws its clients' keys from these names (see the module docstring).
wsproto_core.handshake.generate_nonce = sample_key
wsproto.handshake.generate_nonce = sample_key
websockets.client.generate_key = sample_key_text  # type: ignore[attr-defined]


def core_handshake() -> bytes:
    connection = wsproto_core.WSConnection(wsproto_core.ConnectionType.SERVER)
    connection.receive_data(REQUEST)
    (_request,) = connection.events()
    return connection.send(AcceptConnection())


def wsproto_handshake() -> bytes:
    connection = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    connection.receive_data(REQUEST)
    (_request,) = connection.events()
    return connection.send(wsproto.events.AcceptConnection())


def websockets_handshake() -> bytes:
    protocol = ServerProtocol(extensions=[])
    protocol.receive_data(REQUEST)
    (request,) = protocol.events_received()
    protocol.send_response(protocol.accept(request))
    return b"".join(protocol.data_to_send())


def core_client_handshake() -> bytes:
    connection = wsproto_core.WSConnection(wsproto_core.ConnectionType.CLIENT)
    request = connection.send(
        Request(host="example.com:8080", target="/chat?room=1", extra_headers=[(b"Origin", CLIENT_ORIGIN.encode())])
    )
    connection.receive_data(RESPONSE)
    (_accept,) = connection.events()
    return request


def wsproto_client_handshake() -> bytes:
    connection = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    request = connection.send(
        wsproto.events.Request(
            host="example.com:8080", target="/chat?room=1", extra_headers=[(b"Origin", CLIENT_ORIGIN.encode())]
        )
    )
    connection.receive_data(RESPONSE)
    (_accept,) = connection.events()
    return request


def websockets_client_handshake() -> bytes:
    protocol = ClientProtocol(parse_uri(CLIENT_URI), origin=CLIENT_ORIGIN)  # type: ignore[arg-type]
    protocol.send_request(protocol.connect())
    (request,) = protocol.data_to_send()
    protocol.receive_data(RESPONSE)
    (response,) = protocol.events_received()
    assert isinstance(response, WsResponse)
    return request


def rate(function: Callable[[], bytes], iterations: int) -> float:
    # CPU time of this process: other work on a busy machine counts less than in wall time.
    start = time.process_time()
    for _ in range(iterations):
        function()
    return iterations / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    roles: dict[str, dict[str, Callable[[], bytes]]] = {
        "server": {
            "wsproto_core": core_handshake,
            "wsproto": wsproto_handshake,
            "websockets": websockets_handshake,
        },
        "client": {
            "wsproto_core": core_client_handshake,
            "wsproto": wsproto_client_handshake,
            "websockets": websockets_client_handshake,
        },
    }
    for name, function in roles["server"].items():
        response = function()
        assert response.startswith(b"HTTP/1.1 101"), (name, response)
        assert SAMPLE_ACCEPT in response, (name, response)
    for name, function in roles["client"].items():
        request = function()
        assert request.startswith(b"GET /chat?room=1 HTTP/1.1\r\n"), (name, request)
        assert SAMPLE_KEY in request, (name, request)
    repetitions = 5 if args.quick else 15
    iterations = 1000 if args.quick else 3000
    results = {(role, name): [] for role, functions in roles.items() for name in functions}
    for _ in range(repetitions):
        for role, functions in roles.items():
            for name, function in functions.items():
                results[role, name].append(rate(function, iterations))
    for role, functions in roles.items():
        medians = {name: statistics.median(results[role, name]) for name in functions}
        print(f"\n{role} handshakes")
        print(f"{'implementation':<14} {'handshakes/s':>13}  wsproto_core is")
        for name, value in medians.items():
            ratio = medians["wsproto_core"] / value
            print(f"{name:<14} {value:>13,.0f}  {ratio:.2f}x")


if __name__ == "__main__":
    main()
