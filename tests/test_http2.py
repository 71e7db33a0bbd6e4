"""RFC 8441: WebSockets over HTTP/2, driven through real h2 connections in memory."""

from __future__ import annotations

import dataclasses
from typing import Any

import h2.events
import h2.settings
import pytest
from h2_link import H2Link, exchange, h2_pair
from helpers import CLIENT, SERVER, assert_failed, feed_pieces, parse_frame, reassemble, split_at
from hypothesis import given
from hypothesis import strategies as st
from test_conformance import PARAMS, Case
from test_properties import ROLES, SETTINGS, closing, cuts, item, serialise

from wsproto_core import WSConnection
from wsproto_core.connection import Connection, ConnectionState, ConnectionType
from wsproto_core.errors import LocalProtocolError, RemoteProtocolError
from wsproto_core.events import AcceptConnection, BytesMessage, CloseConnection, RejectConnection, Request, TextMessage
from wsproto_core.http2 import (
    SETTINGS_ENABLE_CONNECT_PROTOCOL,
    accept_headers,
    client_accepted,
    connect_request_headers,
    reject_headers,
    request_from_headers,
)
from wsproto_core.permessage_deflate import PerMessageDeflate

_pair = h2_pair
_exchange = exchange


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


def test_settings_identifier_is_h2s() -> None:
    assert SETTINGS_ENABLE_CONNECT_PROTOCOL == h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL


def test_too_many_headers_get_431() -> None:
    headers = [*_valid_headers(), *((f"x-{index}".encode(), b"1") for index in range(200))]
    with pytest.raises(RemoteProtocolError) as info:
        request_from_headers(headers)
    assert isinstance(info.value.event_hint, RejectConnection)
    assert info.value.event_hint.status_code == 431


def test_reject_headers_leave_out_connection_specific_fields() -> None:
    """RFC 9113 section 8.2.2: an HTTP/1.1 rejection's Connection and Upgrade do not go into HTTP/2."""
    rejection = RejectConnection(
        status_code=426,
        headers=[(b"Upgrade", b"websocket"), (b"Connection", b"close"), (b"Sec-WebSocket-Version", b"13")],
    )
    assert reject_headers(rejection) == [(b":status", b"426"), (b"sec-websocket-version", b"13")]
    # h2 sends them: its own header validation agrees.
    client, server = _pair()
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, connect_request_headers(Request(host="example.com", target="/")))
    _exchange(client, server)
    server.send_headers(stream_id, reject_headers(rejection), end_stream=True)
    (response,) = [e for e in _exchange(client, server) if isinstance(e, h2.events.ResponseReceived)]
    refused = client_accepted(Request(host="example.com", target="/"), response.headers)
    assert isinstance(refused, RejectConnection)
    assert refused.status_code == 426


@pytest.mark.parametrize("status", [101, 200, 204, 600])
def test_reject_headers_refuse_a_status_that_is_not_a_rejection(status: int) -> None:
    with pytest.raises(LocalProtocolError, match="from 300 to 599"):
        reject_headers(RejectConnection(status_code=status))


# ------------------------------------------------------- after someone else's upgrade


def test_after_upgrade_starts_open_with_the_negotiated_extensions() -> None:
    link = H2Link(
        Request(host="example.com", target="/", extensions=[PerMessageDeflate()]),
        AcceptConnection(extensions=[PerMessageDeflate()]),
    )
    client = WSConnection.after_upgrade(CLIENT, link.client_extensions)
    first = Connection(CLIENT, link.client_extensions)
    assert client.state is ConnectionState.OPEN
    data = client.send(TextMessage("compressed " * 20))
    # RSV1: the message was compressed, as the extension negotiated over h2 asked.
    assert data[0] & 0x40
    server = WSConnection.after_upgrade(SERVER, link.server_extensions, b"".join(link.deliver(True, [data])))
    assert list(server.events()) == [TextMessage("compressed " * 20)]
    assert first.state is ConnectionState.OPEN


def test_after_upgrade_takes_limits() -> None:
    server = WSConnection.after_upgrade(SERVER, max_message_size=10)
    client = Connection(CLIENT)
    server.receive_data(client.send(BytesMessage(b"x" * 11)))
    (event,) = server.events()
    assert event == CloseConnection(1009, event.reason)


def test_after_upgrade_refuses_a_started_handshake() -> None:
    server = WSConnection(SERVER)
    server.receive_data(WSConnection(CLIENT).send(Request(host="example.com", target="/")))
    with pytest.raises(LocalProtocolError, match="has not started"):
        server.handshake.open_after_upgrade()
    client = WSConnection(CLIENT)
    client.send(Request(host="example.com", target="/"))
    with pytest.raises(LocalProtocolError, match="has not started"):
        client.handshake.open_after_upgrade()


# ------------------------------------------------ the same negotiation as HTTP/1.1

window_bits = st.one_of(st.none(), st.integers(9, 15))
deflates = st.builds(
    PerMessageDeflate,
    client_no_context_takeover=st.booleans(),
    client_max_window_bits=window_bits,
    server_no_context_takeover=st.booleans(),
    server_max_window_bits=window_bits,
)
tokens = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=1, max_size=10)


def _http11(request: Request, choose: Any) -> tuple[Request, AcceptConnection, list[tuple[bytes, bytes]]]:
    client, server = WSConnection(CLIENT), WSConnection(SERVER)
    server.receive_data(client.send(request))
    (received,) = server.events()
    assert isinstance(received, Request)
    response = server.send(choose(received))
    client.receive_data(response)
    (accepted,) = client.events()
    assert isinstance(accepted, AcceptConnection)
    head = response.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    headers = [tuple(line.split(b": ", 1)) for line in head]
    return received, accepted, [(name.lower(), value) for name, value in headers]  # type: ignore[misc]


@SETTINGS
@given(
    subprotocols=st.lists(tokens, max_size=3, unique=True),
    client_deflate=st.one_of(st.none(), deflates),
    server_deflate=st.one_of(st.none(), deflates),
    pick=st.integers(0, 3),
    extra=st.lists(st.tuples(st.sampled_from([b"origin", b"cookie", b"x-trace"]), tokens.map(str.encode)), max_size=3),
)
def test_negotiation_is_the_same_as_over_http11(
    subprotocols: list[str],
    client_deflate: PerMessageDeflate | None,
    server_deflate: PerMessageDeflate | None,
    pick: int,
    extra: list[tuple[bytes, bytes]],
) -> None:
    """Section 5 of RFC 8441: subprotocols and extensions are negotiated as in RFC 6455.

    The same request, sent as an HTTP/1.1 upgrade and as an extended CONNECT,
    gives the server the same Request, the response the same negotiation
    headers, and the client the same choices.
    """

    def request() -> Request:
        offers = [] if client_deflate is None else [PerMessageDeflate(**_parameters(client_deflate))]
        return Request(
            host="example.com", target="/chat?x=1", subprotocols=subprotocols, extensions=offers, extra_headers=extra
        )

    def choose(received: Request) -> AcceptConnection:
        chosen = received.subprotocols[pick] if pick < len(received.subprotocols) else None
        offers = [] if server_deflate is None else [PerMessageDeflate(**_parameters(server_deflate))]
        return AcceptConnection(subprotocol=chosen, extensions=offers)

    received_11, accepted_11, headers_11 = _http11(request(), choose)

    h2_request = request()
    server_request = request_from_headers(connect_request_headers(h2_request))
    # The same Request but for the headers that only an HTTP/1.1 upgrade has.
    upgrade_only = {b"upgrade", b"connection", b"sec-websocket-key"}
    assert server_request == dataclasses.replace(
        received_11,
        extra_headers=[(name, value) for name, value in received_11.extra_headers if name not in upgrade_only],
    )
    response, server_extensions = accept_headers(server_request, choose(server_request))
    assert response[0] == (b":status", b"200")
    negotiated = [
        (name, value)
        for name, value in headers_11
        if name.startswith(b"sec-websocket-") and name != b"sec-websocket-accept"
    ]
    assert response[1:] == negotiated
    accepted = client_accepted(h2_request, response)
    assert isinstance(accepted, AcceptConnection)
    assert accepted.subprotocol == accepted_11.subprotocol
    assert [ext.negotiated for ext in accepted.extensions] == [ext.negotiated for ext in accepted_11.extensions]  # type: ignore[attr-defined]
    assert [ext.name for ext in server_extensions] == [ext.name for ext in accepted.extensions]


def _parameters(deflate: PerMessageDeflate) -> dict[str, Any]:
    return {
        "client_no_context_takeover": deflate.client_no_context_takeover,
        "client_max_window_bits": deflate.client_max_window_bits,
        "server_no_context_takeover": deflate.server_no_context_takeover,
        "server_max_window_bits": deflate.server_max_window_bits,
    }


# ------------------------------------------- RFC 6455 framing, carried by an h2 stream


@pytest.mark.parametrize(("case", "role", "chunk"), PARAMS)
def test_malformed_input_fails_connection_over_h2(case: Case, role: ConnectionType, chunk: int | None) -> None:
    """The framing conformance table, with the bytes in DATA frames (whole, or one byte per frame)."""
    link = H2Link()
    conn = Connection(role)
    data = case.build(conn)
    pieces = [data] if chunk is None else split_at(data, range(len(data)))
    received = feed_pieces(conn, link.deliver(role is SERVER, pieces))
    assert_failed(conn, received, case.code)
    (close,) = [event for event in received if isinstance(event, CloseConnection)]
    reply = b"".join(link.deliver(role is CLIENT, [conn.send(close.response())]))
    first, _length, masked, _key, payload, rest = parse_frame(reply)
    assert (first, masked, rest) == (0x88, conn.client, b"")
    assert int.from_bytes(payload[:2], "big") == case.code


@SETTINGS
@given(sender_role=ROLES, items=st.lists(item, max_size=6), close=closing, cut_points=cuts)
def test_round_trip_over_an_h2_stream(
    sender_role: ConnectionType, items: list[Any], close: Any, cut_points: list[int]
) -> None:
    """Every message arrives intact however the bytes are cut into DATA frames."""
    link = H2Link()
    sender = Connection(sender_role)
    receiver = Connection(SERVER if sender_role is CLIENT else CLIENT)
    data, expected = serialise(sender, items, close)
    received = feed_pieces(receiver, link.deliver(sender_role is CLIENT, split_at(data, cut_points)))
    assert receiver.failure is None
    assert reassemble(received) == expected
    assert receiver.state is (ConnectionState.OPEN if close is None else ConnectionState.REMOTE_CLOSING)
