"""Server opening handshakes per second: wsproto_core vs wsproto vs websockets.

Each iteration creates a server connection, feeds it a browser-like upgrade
request (with a permessage-deflate offer that is not accepted, so no zlib work
is measured), reads the request event, accepts it and collects the 101
response bytes. The three implementations run interleaved, repetition by
repetition, timed in CPU time of this process (other work on a shared machine
counts less than in wall time); the table shows medians and the ratio of
wsproto_core to each.

Run: python benchmarks/bench_handshake.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import wsproto
import wsproto.events
from websockets.server import ServerProtocol

import wsproto_core
from wsproto_core.events import AcceptConnection

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
    implementations = {
        "wsproto_core": core_handshake,
        "wsproto": wsproto_handshake,
        "websockets": websockets_handshake,
    }
    for name, function in implementations.items():
        response = function()
        assert response.startswith(b"HTTP/1.1 101"), (name, response)
        assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in response, (name, response)
    repetitions = 5 if args.quick else 15
    iterations = 1000 if args.quick else 3000
    results: dict[str, list[float]] = {name: [] for name in implementations}
    for _ in range(repetitions):
        for name, function in implementations.items():
            results[name].append(rate(function, iterations))
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(f"{'implementation':<14} {'handshakes/s':>13}  wsproto_core is")
    for name, value in medians.items():
        ratio = medians["wsproto_core"] / value
        print(f"{name:<14} {value:>13,.0f}  {ratio:.2f}x")


if __name__ == "__main__":
    main()
