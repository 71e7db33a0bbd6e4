"""``python -m wsproto_core demo``: the protocol at work, without a network.

A scripted, in-memory conversation between a client and a server
``Connection``: every frame on the wire and every event each side sees is
printed, so a newcomer can watch the protocol work.
"""

from __future__ import annotations

from ..connection import Connection, ConnectionType
from ..events import BytesMessage, CloseConnection, Event, Message, Ping, TextMessage


def _describe_frame(data: bytes) -> str:
    opcode = data[0] & 0x0F
    names = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
    flags = "FIN" if data[0] & 0x80 else "---"
    masked = "masked" if data[1] & 0x80 else "unmasked"
    return f"{names.get(opcode, hex(opcode)):<12} {flags} {masked:<8} {len(data):>3} bytes: {data.hex(' ')}"


def _deliver(sender: str, data: bytes, receiver: Connection, name: str) -> list[Event]:
    print(f"  {sender} -> wire   {_describe_frame(data)}")
    receiver.receive_data(data)
    received = list(receiver.events())
    for event in received:
        print(f"  {name} <- event  {event!r}")
    print(f"  {name} state: {receiver.state.name}")
    return received


def demo() -> int:
    """Run the scripted round trip and return a process exit code."""
    client = Connection(ConnectionType.CLIENT)
    server = Connection(ConnectionType.SERVER)
    print("wsproto_core demo: a client and a server Connection talking through memory\n")
    # The server echoes whole messages, so it collects the pieces of fragmented ones.
    pieces: list[str | bytes] = []

    script: list[tuple[str, Event]] = [
        ("client", TextMessage("Hello, WebSocket! \N{WAVING HAND SIGN}")),
        ("client", BytesMessage(bytes(range(8)))),
        ("client", TextMessage("frag", message_finished=False)),
        ("client", TextMessage("mented")),
        ("server", Ping(b"are you there?")),
    ]
    for who, event in script:
        sender, receiver, other = (client, server, "server") if who == "client" else (server, client, "client")
        print(f"{who} sends {event!r}")
        for received in _deliver(who, sender.send(event), receiver, other):
            if isinstance(received, Ping):
                print(f"{other} answers the ping")
                _deliver(other, receiver.send(received.response()), sender, who)
            elif isinstance(received, Message) and other == "server":
                pieces.append(received.data)
                if received.message_finished:
                    whole = "".join(pieces) if isinstance(received, TextMessage) else b"".join(pieces)  # type: ignore[arg-type]
                    pieces.clear()
                    echo = TextMessage(whole) if isinstance(whole, str) else BytesMessage(whole)
                    print("server echoes the whole message back")
                    _deliver("server", server.send(echo), client, "client")
        print()

    print("client starts the closing handshake")
    for received in _deliver("client", client.send(CloseConnection(1000, "done")), server, "server"):
        if isinstance(received, CloseConnection):
            print("server replies with event.response()")
            _deliver("server", server.send(received.response()), client, "client")
    print(f"\nfinal states: client={client.state.name} server={server.state.name}")
    print("\nOver a real network: `python -m wsproto_core serve`, then open http://127.0.0.1:8765/")
    return 0 if client.state.name == server.state.name == "CLOSED" else 1
