"""RFC 8441: WebSockets over HTTP/2, driven through real h2 connections in memory."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from wsproto_core.connection import Connection, ConnectionState, ConnectionType
from wsproto_core.errors import LocalProtocolError, RemoteProtocolError
from wsproto_core.events import AcceptConnection, BytesMessage, CloseConnection, RejectConnection, Request, TextMessage
from wsproto_core.http2 import accept_headers, client_accepted, connect_request_headers, request_from_headers


def _pair() -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    client.initiate_connection()
    server.initiate_connection()
    # RFC 8441 section 3: the server enables extended CONNECT in its SETTINGS.
    server.update_settings({h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1})
    _exchange(client, server)
    return client, server


def _exchange(client: h2.connection.H2Connection, server: h2.connection.H2Connection) -> list[h2.events.Event]:
    """Move bytes both ways until quiet; return the events each side saw (server's first)."""
    seen: list[h2.events.Event] = []
    for _ in range(10):
        to_server = client.data_to_send()
        to_client = server.data_to_send()
        if not to_server and not to_client:
            break
        if to_server:
            seen.extend(server.receive_data(to_server))
        if to_client:
            seen.extend(client.receive_data(to_client))
    return seen


def test_websocket_over_an_h2_stream_round_trip() -> None:
    client, server = _pair()
    request = Request(host="example.com", target="/chat", subprotocols=["chat.v2", "chat.v1"])
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, connect_request_headers(request))

    received = [event for event in _exchange(client, server) if isinstance(event, h2.events.RequestReceived)]
    assert len(received) == 1
    server_request = request_from_headers(received[0].headers)
    assert server_request.host == "example.com"
    assert server_request.target == "/chat"
    assert server_request.subprotocols == ["chat.v2", "chat.v1"]

    response, extensions = accept_headers(server_request, AcceptConnection(subprotocol="chat.v1"))
    server.send_headers(stream_id, response)
    responses = [event for event in _exchange(client, server) if isinstance(event, h2.events.ResponseReceived)]
    accepted = client_accepted(request, responses[0].headers)
    assert isinstance(accepted, AcceptConnection)
    assert accepted.subprotocol == "chat.v1"

    ws_client = Connection(ConnectionType.CLIENT)
    ws_server = Connection(ConnectionType.SERVER, extensions)
    client.send_data(stream_id, ws_client.send(TextMessage("over h2")) + ws_client.send(BytesMessage(b"\x00\x01")))
    data = [event for event in _exchange(client, server) if isinstance(event, h2.events.DataReceived)]
    for event in data:
        ws_server.receive_data(event.data)
        server.acknowledge_received_data(event.flow_controlled_length, stream_id)
    assert list(ws_server.events()) == [TextMessage("over h2"), BytesMessage(b"\x00\x01")]

    server.send_data(stream_id, ws_server.send(CloseConnection(1000, "bye")))
    for event in _exchange(client, server):
        if isinstance(event, h2.events.DataReceived):
            ws_client.receive_data(event.data)
    close = list(ws_client.events())
    assert close == [CloseConnection(1000, "bye")]
    ws_server.receive_data(ws_client.send(close[0].response()))
    assert list(ws_server.events()) == [CloseConnection(1000, "bye")]
    assert ws_client.state is ws_server.state is ConnectionState.CLOSED


def _valid_headers() -> list[tuple[bytes, bytes]]:
    return [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"https"),
        (b":path", b"/ws"),
        (b":authority", b"example.com"),
        (b"sec-websocket-version", b"13"),
        (b"origin", b"https://example.com"),
    ]


def test_request_keeps_regular_headers_and_offers() -> None:
    headers = [*_valid_headers(), (b"sec-websocket-extensions", b'x; a="1,2", y')]
    request = request_from_headers(headers)
    assert request.extensions == ['x; a="1,2"', "y"]
    assert (b"origin", b"https://example.com") in request.extra_headers
    assert all(not name.startswith(b":") for name, _ in request.extra_headers)


@pytest.mark.parametrize(
    ("name", "value", "status"),
    [
        (b":method", b"GET", 405),
        (b":protocol", b"h2c", 400),
        (b":scheme", b"ftp", 400),
        (b":path", None, 400),
        (b":authority", None, 400),
        (b"sec-websocket-version", b"8", 426),
        (b"sec-websocket-version", None, 426),
    ],
)
def test_invalid_extended_connect_is_rejected(name: bytes, value: bytes | None, status: int) -> None:
    """RFC 8441 sections 4 and 5: each required pseudo-header and the version."""
    headers = [(key, val) for key, val in _valid_headers() if key != name]
    if value is not None:
        headers.append((name, value))
    with pytest.raises(RemoteProtocolError) as info:
        request_from_headers(headers)
    assert isinstance(info.value.event_hint, RejectConnection)
    assert info.value.event_hint.status_code == status


def test_server_cannot_choose_a_subprotocol_not_offered() -> None:
    request = request_from_headers([*_valid_headers(), (b"sec-websocket-protocol", b"a, b")])
    with pytest.raises(LocalProtocolError):
        accept_headers(request, AcceptConnection(subprotocol="c"))


def test_client_refuses_unoffered_subprotocol_and_reports_rejections() -> None:
    request = Request(host="example.com", target="/", subprotocols=["a"])
    with pytest.raises(RemoteProtocolError):
        client_accepted(request, [(b":status", b"200"), (b"sec-websocket-protocol", b"b")])
    rejected = client_accepted(request, [(":status", "403"), ("content-type", "text/plain")])
    assert isinstance(rejected, RejectConnection)
    assert rejected.status_code == 403
    assert rejected.headers == [(b"content-type", b"text/plain")]
    with pytest.raises(RemoteProtocolError):
        client_accepted(request, [(b"content-type", b"text/plain")])
