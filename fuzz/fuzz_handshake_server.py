"""Fuzz target: a server WSConnection fed an HTTP upgrade request (and frames after it) in chunks.

Only ``RemoteProtocolError`` may escape ``receive_data``, its ``event_hint`` must be
a sendable rejection, a valid request is answered (accepted with or without
permessage-deflate and a subprotocol, or rejected with a body) and the response
must be well-formed; after the upgrade the frame invariants apply.
"""

from __future__ import annotations

import sys

import h11
from _common import SERVER, Provider, main, run_handshake

from wsproto_core import WSConnection
from wsproto_core.errors import LocalProtocolError
from wsproto_core.events import AcceptConnection, Event, RejectConnection, RejectData, Request
from wsproto_core.permessage_deflate import PerMessageDeflate


def test_one_input(data: bytes) -> None:
    provider = Provider(data[-3:])
    answer = provider.byte()
    ws = WSConnection(SERVER, max_handshake_size=provider.choice((64, 1024, 16 * 1024)), max_message_size=1000)

    def on_event(event: Event) -> None:
        assert isinstance(event, Request), event
        assert ws.state.name == "CONNECTING"
        if answer & 3 == 0:
            response = ws.send(RejectConnection(status_code=403, has_body=True))
            response += ws.send(RejectData(b"no", body_finished=True))
            assert ws.state.name == "CLOSED", ws.state
            _check_http_response(response, 403)
            return
        subprotocol = event.subprotocols[answer % len(event.subprotocols)] if event.subprotocols else None
        extensions = [PerMessageDeflate(client_max_window_bits=12)] if answer & 4 else []
        try:
            response = ws.send(AcceptConnection(subprotocol=subprotocol, extensions=extensions))
        except LocalProtocolError:
            # Only a subprotocol or an extension response that cannot be a header value.
            assert ws.state.name == "CONNECTING"
            return
        assert ws.state.name == "OPEN", ws.state
        _check_http_response(response, 101)

    run_handshake(Provider(data[::-1]), ws, data, on_event)


def _check_http_response(data: bytes, status: int) -> None:
    """The bytes we answered with parse as an HTTP/1.1 response with that status."""
    client = h11.Connection(h11.CLIENT)
    client.send(
        h11.Request(
            method="GET", target="/", headers=[("Host", "x"), ("Upgrade", "websocket"), ("Connection", "Upgrade")]
        )
    )
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    event = client.next_event()
    assert isinstance(event, (h11.Response, h11.InformationalResponse)), event
    assert event.status_code == status, event


if __name__ == "__main__":
    main(test_one_input, ("wsproto_core", "h11"))
    sys.exit(0)
