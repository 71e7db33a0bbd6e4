"""Fuzz target: a client WSConnection fed the server's HTTP response (and frames after it) in chunks.

The literal ``{ACCEPT}`` in the input is replaced by the right
``Sec-WebSocket-Accept`` value for this run's random key, so that the fuzzer can
get past the key check and reach extension and subprotocol negotiation and the
frames that follow the 101.
"""

from __future__ import annotations

import sys

from _common import CLIENT, Provider, main, run_handshake

from wsproto_core import WSConnection
from wsproto_core.events import AcceptConnection, Event, RejectConnection, RejectData, Request
from wsproto_core.permessage_deflate import PerMessageDeflate
from wsproto_core.utilities import generate_accept_token

PLACEHOLDER = b"{ACCEPT}"


def test_one_input(data: bytes) -> None:
    provider = Provider(data[-3:])
    options = provider.byte()
    ws = WSConnection(CLIENT, max_message_size=1000)
    extensions = [PerMessageDeflate(server_no_context_takeover=bool(options & 2))] if options & 1 else []
    request = ws.send(Request(host="example.com", target="/", extensions=extensions, subprotocols=["chat", "x"]))
    assert ws.state.name == "CONNECTING"
    key = next(
        line.split(b": ", 1)[1] for line in request.split(b"\r\n") if line.lower().startswith(b"sec-websocket-key")
    )
    data = data.replace(PLACEHOLDER, generate_accept_token(key))
    rejected: list[Event] = []

    def on_event(event: Event) -> None:
        if isinstance(event, AcceptConnection):
            assert not rejected
            assert ws.state.name == "OPEN", ws.state
            assert event.subprotocol in (None, "chat", "x"), event
            assert all(extension in extensions for extension in event.extensions), event
        elif isinstance(event, RejectConnection):
            assert not rejected
            rejected.append(event)
            assert 100 <= event.status_code <= 999 and event.status_code != 101
        else:
            assert isinstance(event, RejectData), event
            assert rejected, "RejectData before RejectConnection"
            if event.body_finished:
                assert ws.state.name == "CLOSED", ws.state

    run_handshake(Provider(data[::-1]), ws, data, on_event)


if __name__ == "__main__":
    main(test_one_input, ("wsproto_core", "h11"))
    sys.exit(0)
