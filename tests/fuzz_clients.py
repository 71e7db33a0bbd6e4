"""Echo clients for ``fuzz --client`` tests: ``python tests/fuzz_clients.py KIND URL [--reconnect]``.

Each connects to URL, sends every message back with its type until the
server closes, and exits 0 if the server closed with 1000, 1 otherwise (the
convention ``fuzz --client`` judges). With ``--reconnect`` it connects again
after each connection instead of exiting, so that a campaign does not start a
Python process per case.

Kinds: ``websockets`` (its asyncio client), ``aiohttp``, ``websocket-client``,
and ``broken``: wsproto_core's own ``Connection`` with violations planted on
purpose, which the tests expect to be found:

1. the 101 is not checked: any answer that starts with ``HTTP/1.1 101`` opens
   the connection (section 4.1);
2. Pings are never answered (section 5.5.2);
3. after the server breaks a rule, a text message ``late`` goes out before the
   Close (section 7.1.7: nothing may follow the failure).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import sys
from collections.abc import Callable

from wsproto_core import WSConnection
from wsproto_core.connection import Connection, ConnectionType
from wsproto_core.crafting import CraftedFrame, random_mask
from wsproto_core.drivers import parse_url
from wsproto_core.events import CloseConnection, Message, Request
from wsproto_core.frames import Opcode


def websockets_client(url: str) -> int:
    from websockets.asyncio.client import connect  # noqa: PLC0415
    from websockets.exceptions import ConnectionClosed  # noqa: PLC0415

    async def run() -> int:
        async with connect(url, open_timeout=10, ping_interval=None, max_size=None) as websocket:
            try:
                async for message in websocket:
                    await websocket.send(message)
            except ConnectionClosed:
                return 1
            return 0 if websocket.close_code == 1000 else 1

    return asyncio.run(run())


def aiohttp_client(url: str) -> int:
    import aiohttp  # noqa: PLC0415

    async def run() -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, max_msg_size=0, compress=15) as websocket,
        ):
            async for message in websocket:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await websocket.send_str(message.data)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    await websocket.send_bytes(message.data)
            return 0 if websocket.close_code == 1000 else 1

    return asyncio.run(run())


def websocket_client(url: str) -> int:
    import websocket  # noqa: PLC0415 (websocket-client)

    connection = websocket.create_connection(url, timeout=10)
    try:
        while True:
            opcode, data = connection.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return 0 if data[:2] == b"\x03\xe8" else 1
            connection.send(data, opcode)
    except websocket.WebSocketPayloadException:
        # websocket-client raises and leaves the Close to the application:
        # this one closes with the code the RFC names (7.4.1).
        connection.close(status=1007)
    except websocket.WebSocketProtocolException:
        connection.close(status=1002)
    except Exception:  # noqa: BLE001 (a reset, a timeout: the exit status says so)
        connection.close()
    return 1


def broken_client(url: str) -> int:
    target = parse_url(url)
    sock = socket.create_connection((target.host, target.port), timeout=10)
    handshake = WSConnection(ConnectionType.CLIENT)
    sock.sendall(handshake.send(Request(host=target.authority, target=target.target)))
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(65536)
        if not data:
            return 1
        head += data
    answer, _, trailing = head.partition(b"\r\n\r\n")
    if not answer.startswith(b"HTTP/1.1 101"):  # planted 1: nothing else is checked
        return 1
    connection = Connection(ConnectionType.CLIENT, trailing_data=trailing)
    while True:
        for event in connection.events():
            if isinstance(event, Message):
                sock.sendall(connection.send(event))
            elif isinstance(event, CloseConnection):
                if connection.failure is not None:  # planted 3
                    sock.sendall(CraftedFrame(Opcode.TEXT, b"late", mask=random_mask()).to_bytes())
                sock.sendall(connection.send(event.response()))
                sock.close()
                return 0 if event.code == 1000 else 1
            # planted 2: a Ping gets no Pong
        data = sock.recv(65536)
        connection.receive_data(data or None)


CLIENTS: dict[str, Callable[[str], int]] = {
    "websockets": websockets_client,
    "aiohttp": aiohttp_client,
    "websocket-client": websocket_client,
    "broken": broken_client,
}


def main(argv: list[str]) -> int:
    kind, url, *flags = argv
    client = CLIENTS[kind]
    if "--reconnect" not in flags:
        try:
            return client(url)
        except Exception:  # noqa: BLE001 (a refused handshake, a reset: the exit status says so)
            return 1
    campaign = os.getppid()
    while os.getppid() == campaign:
        try:
            client(url)
        except Exception as error:  # noqa: BLE001 (the next case needs a new connection either way)
            if _refused(error):
                return 0  # the campaign is over: its listener is closed
    return 0  # the campaign's process is gone (killed, so nobody closed the listener for us)


def _refused(error: BaseException | None) -> bool:
    """Whether the listener refused us, however the client library wrapped it.

    aiohttp raises its own connector error with the refusal as its cause; a
    loop that only caught ``ConnectionRefusedError`` retried forever at full
    speed once a campaign ended.
    """
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, ConnectionRefusedError) or (
            isinstance(error, OSError) and error.errno == errno.ECONNREFUSED
        ):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
