"""Tests for WSConnection: whole connections, handshake included, between a
client and a server joined in memory (RFC 6455 section 4, then section 5)."""

from __future__ import annotations

import gc
import types
import weakref
from typing import Any

import h11
import pytest
from helpers import build_frame, parse_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproto_core import ConnectionState, ConnectionType, WSConnection
from wsproto_core.connection import DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_MESSAGE_SIZE, Connection
from wsproto_core.errors import LocalProtocolError, RemoteProtocolError
from wsproto_core.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto_core.handshake import H11Handshake

CLIENT = ConnectionType.CLIENT
SERVER = ConnectionType.SERVER


def transfer(sender: WSConnection, receiver: WSConnection, event: Event) -> list[Event]:
    """Send ``event`` from ``sender`` and return what ``receiver`` makes of the bytes."""
    receiver.receive_data(sender.send(event))
    return list(receiver.events())


def open_pair(
    request: Request | None = None, accept: AcceptConnection | None = None, **options: object
) -> tuple[WSConnection, WSConnection, Request, AcceptConnection]:
    """A client and a server that completed the handshake; ``options`` go to both."""
    client = WSConnection(CLIENT, **options)
    server = WSConnection(SERVER, **options)
    [received_request] = transfer(client, server, request or Request(host="example.com", target="/"))
    assert isinstance(received_request, Request)
    [received_accept] = transfer(server, client, accept or AcceptConnection())
    assert isinstance(received_accept, AcceptConnection)
    return client, server, received_request, received_accept


# ======================================================================== round trips


def test_full_round_trip() -> None:
    client = WSConnection(CLIENT)
    server = WSConnection(SERVER)
    assert client.state is server.state is ConnectionState.CONNECTING
    assert client.connection is None and server.connection is None
    assert client.client and not server.client

    request = Request(
        host="example.com:8080",
        target="/chat?room=42",
        subprotocols=["chat", "superchat"],
        extra_headers=[(b"Origin", b"https://example.com"), (b"X-Token", b"abc")],
    )
    [received] = transfer(client, server, request)
    assert isinstance(received, Request)
    assert received.host == "example.com:8080"
    assert received.target == "/chat?room=42"
    assert received.subprotocols == ["chat", "superchat"]
    # extra_headers on the receiving side: the request headers that no field
    # carries, names lower-cased (as wsproto).
    assert (b"origin", b"https://example.com") in received.extra_headers
    assert (b"x-token", b"abc") in received.extra_headers
    assert client.state is server.state is ConnectionState.CONNECTING

    [accepted] = transfer(server, client, AcceptConnection(subprotocol="superchat", extra_headers=[(b"X-Ok", b"1")]))
    assert isinstance(accepted, AcceptConnection)
    assert accepted.subprotocol == "superchat"
    assert accepted.extensions == []
    assert (b"x-ok", b"1") in accepted.extra_headers
    assert client.state is server.state is ConnectionState.OPEN
    assert isinstance(client.connection, Connection) and isinstance(server.connection, Connection)

    # Messages both ways (RFC 6455 section 6), control frames, then the closing handshake (section 7).
    assert transfer(client, server, TextMessage("hello \N{SNOWMAN}")) == [TextMessage("hello \N{SNOWMAN}")]
    assert transfer(server, client, TextMessage("hi")) == [TextMessage("hi")]
    assert transfer(client, server, BytesMessage(b"\x00\x01")) == [BytesMessage(b"\x00\x01")]
    assert transfer(server, client, BytesMessage(b"x" * 70_000)) == [BytesMessage(b"x" * 70_000)]
    assert transfer(client, server, TextMessage("frag", message_finished=False)) == [
        TextMessage("frag", message_finished=False)
    ]
    assert transfer(client, server, TextMessage("ment")) == [TextMessage("ment")]
    [ping] = transfer(server, client, Ping(b"are you there"))
    assert ping == Ping(b"are you there")
    assert transfer(client, server, ping.response()) == [Pong(b"are you there")]  # type: ignore[attr-defined]

    [close] = transfer(client, server, CloseConnection(code=1000, reason="bye"))
    assert close == CloseConnection(code=1000, reason="bye")
    assert client.state is ConnectionState.LOCAL_CLOSING
    assert server.state is ConnectionState.REMOTE_CLOSING
    assert transfer(server, client, close.response()) == [CloseConnection(code=1000, reason="bye")]  # type: ignore[attr-defined]
    assert client.state is server.state is ConnectionState.CLOSED
    assert "CLOSED" in repr(client) and "client=True" in repr(client)


def test_plain_message_sends_by_data_type() -> None:
    # wsproto applications (uvicorn) send Message(data=...): text or binary by type.
    client, server, _, _ = open_pair()
    assert transfer(server, client, Message(data="text")) == [TextMessage("text")]
    assert transfer(client, server, Message(data=b"bytes")) == [BytesMessage(b"bytes")]


def test_server_closes_first() -> None:
    client, server, _, _ = open_pair()
    [close] = transfer(server, client, CloseConnection(code=1001, reason="going away"))
    assert close == CloseConnection(code=1001, reason="going away")
    assert client.state is ConnectionState.REMOTE_CLOSING
    transfer(client, server, close.response())  # type: ignore[attr-defined]
    assert client.state is server.state is ConnectionState.CLOSED


def test_transport_closed_after_handshake() -> None:
    _client, server, _, _ = open_pair()
    server.receive_data(None)
    assert list(server.events()) == [CloseConnection(code=1006)]
    assert server.state is ConnectionState.CLOSED


# ======================================================================== trailing data


def test_server_101_and_first_frame_in_one_read() -> None:
    # Section 4.1: frames may follow the 101 immediately, in the same segment.
    client = WSConnection(CLIENT)
    server = WSConnection(SERVER)
    transfer(client, server, Request(host="h", target="/"))
    data = server.send(AcceptConnection()) + server.send(TextMessage("first")) + server.send(BytesMessage(b"2nd"))
    client.receive_data(data)
    events = list(client.events())
    assert [type(event) for event in events] == [AcceptConnection, TextMessage, BytesMessage]
    assert events[1:] == [TextMessage("first"), BytesMessage(b"2nd")]
    assert client.state is ConnectionState.OPEN


def test_server_101_and_close_in_one_read() -> None:
    client = WSConnection(CLIENT)
    server = WSConnection(SERVER)
    transfer(client, server, Request(host="h", target="/"))
    client.receive_data(server.send(AcceptConnection()) + server.send(CloseConnection(code=1000)))
    assert [type(event) for event in client.events()] == [AcceptConnection, CloseConnection]
    assert client.state is ConnectionState.REMOTE_CLOSING


def test_client_request_and_first_frame_in_one_read() -> None:
    # A client may pipeline its first frame behind the request (it must not
    # before the 101 per section 4.1, but servers see it; what arrived must not be lost).
    client = WSConnection(CLIENT)
    server = WSConnection(SERVER)
    request_bytes = client.send(Request(host="h", target="/"))
    # The client can only produce frames once open, so build the frame with a
    # second, already-open client connection (frames do not depend on the handshake).
    frame = Connection(CLIENT).send(TextMessage("early"))
    server.receive_data(request_bytes + frame)
    assert [type(event) for event in server.events()] == [Request]
    client.receive_data(server.send(AcceptConnection()))
    assert [type(event) for event in client.events()] == [AcceptConnection]
    assert list(server.events()) == [TextMessage("early")]
    assert transfer(server, client, TextMessage("echo")) == [TextMessage("echo")]


def test_client_frame_in_a_later_read_before_accept() -> None:
    server = WSConnection(SERVER)
    client = WSConnection(CLIENT)
    server.receive_data(client.send(Request(host="h", target="/")))
    assert [type(event) for event in server.events()] == [Request]
    frame = Connection(CLIENT).send(BytesMessage(b"early")) + Connection(CLIENT).send(TextMessage("er"))
    server.receive_data(frame[:3])
    server.receive_data(frame[3:])
    assert list(server.events()) == []
    server.send(AcceptConnection())
    assert list(server.events()) == [BytesMessage(b"early"), TextMessage("er")]


def test_request_split_everywhere_then_frame() -> None:
    client = WSConnection(CLIENT)
    server = WSConnection(SERVER)
    data = client.send(Request(host="h", target="/")) + Connection(CLIENT).send(TextMessage("x"))
    for byte in range(len(data)):
        server.receive_data(data[byte : byte + 1])
    assert [type(event) for event in server.events()] == [Request]
    server.send(AcceptConnection())
    assert list(server.events()) == [TextMessage("x")]


def test_response_split_everywhere_then_frame() -> None:
    client = WSConnection(CLIENT)
    server = WSConnection(SERVER)
    transfer(client, server, Request(host="h", target="/"))
    data = server.send(AcceptConnection()) + server.send(TextMessage("after"))
    events: list[Event] = []
    for byte in range(len(data)):
        client.receive_data(data[byte : byte + 1])
        events.extend(client.events())
    # The frame's payload is streamed as it arrives (section 5.4 allows that).
    assert isinstance(events[0], AcceptConnection)
    assert all(isinstance(event, TextMessage) for event in events[1:])
    assert "".join(event.data for event in events[1:]) == "after"  # type: ignore[attr-defined]
    assert events[-1].message_finished  # type: ignore[attr-defined]


# ======================================================================== rejection


def test_rejection_without_body() -> None:
    client = WSConnection(CLIENT)
    server = WSConnection(SERVER)
    transfer(client, server, Request(host="h", target="/"))
    data = server.send(RejectConnection(status_code=403, headers=[(b"X-Reason", b"not you")]))
    assert server.state is ConnectionState.CLOSED
    client.receive_data(data)
    events = list(client.events())
    # As in wsproto, a received rejection always says has_body=True and its end
    # is an empty RejectData with body_finished=True.
    assert isinstance(events[0], RejectConnection)
    assert events[0].status_code == 403
    assert events[0].has_body is True
    assert (b"x-reason", b"not you") in events[0].headers
    assert events[1:] == [RejectData(b"", body_finished=True)]
    assert client.state is ConnectionState.CLOSED
    assert client.connection is None


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "chunked"])
def test_rejection_with_body(content_length: bool) -> None:
    client = WSConnection(CLIENT)
    server = WSConnection(SERVER)
    transfer(client, server, Request(host="h", target="/"))
    headers = [(b"Content-Type", b"text/plain")]
    if content_length:
        headers.append((b"Content-Length", b"12"))
    head = server.send(RejectConnection(status_code=401, headers=headers, has_body=True))
    assert server.state is ConnectionState.REJECTING
    first = server.send(RejectData(b"go ", body_finished=False))
    assert server.state is ConnectionState.REJECTING
    second = server.send(RejectData(b"away", body_finished=False))
    last = server.send(RejectData(b"!!!!!"))
    assert server.state is ConnectionState.CLOSED

    client.receive_data(head)
    [rejection] = client.events()
    assert isinstance(rejection, RejectConnection)
    assert rejection.status_code == 401
    assert rejection.has_body is True
    assert (b"content-type", b"text/plain") in rejection.headers
    assert client.state is ConnectionState.REJECTING

    client.receive_data(first + second)
    pieces = list(client.events())
    assert client.state is ConnectionState.REJECTING
    client.receive_data(last)
    pieces += list(client.events())
    assert all(isinstance(piece, RejectData) for piece in pieces)
    assert b"".join(piece.data for piece in pieces) == b"go away!!!!!"  # type: ignore[attr-defined]
    assert [piece.body_finished for piece in pieces].count(True) == 1  # type: ignore[attr-defined]
    assert pieces[-1].body_finished  # type: ignore[attr-defined]
    assert client.state is ConnectionState.CLOSED


def test_rejection_with_body_in_one_read() -> None:
    client = WSConnection(CLIENT)
    server = WSConnection(SERVER)
    transfer(client, server, Request(host="h", target="/"))
    data = server.send(RejectConnection(status_code=404, has_body=True)) + server.send(RejectData(b"nope"))
    client.receive_data(data)
    events = list(client.events())
    assert isinstance(events[0], RejectConnection) and events[0].status_code == 404
    assert events[1:] == [RejectData(b"nope", body_finished=False), RejectData(b"", body_finished=True)]
    assert client.state is ConnectionState.CLOSED


# ======================================================================== sending in the wrong state


def _server_with_request(**request_fields: object) -> WSConnection:
    server = WSConnection(SERVER)
    transfer(WSConnection(CLIENT), server, Request(host="h", target="/", **request_fields))  # type: ignore[arg-type]
    return server


@pytest.mark.parametrize(
    "event",
    [TextMessage("x"), BytesMessage(b"x"), Ping(), Pong(), CloseConnection(1000), AcceptConnection(), RejectData(b"")],
)
def test_client_cannot_send_before_request(event: Event) -> None:
    client = WSConnection(CLIENT)
    with pytest.raises(LocalProtocolError):
        client.send(event)
    assert client.state is ConnectionState.CONNECTING


@pytest.mark.parametrize(
    "event",
    [
        Request(host="h", target="/"),
        TextMessage("x"),
        BytesMessage(b"x"),
        Ping(),
        CloseConnection(1000),
        AcceptConnection(),
        RejectConnection(),
    ],
)
def test_client_cannot_send_while_awaiting_response(event: Event) -> None:
    client = WSConnection(CLIENT)
    client.send(Request(host="h", target="/"))
    with pytest.raises(LocalProtocolError):
        client.send(event)
    assert client.state is ConnectionState.CONNECTING


@pytest.mark.parametrize(
    "event",
    [
        AcceptConnection(),
        TextMessage("x"),
        Ping(),
        CloseConnection(1000),
        RejectData(b"x"),
        Request(host="h", target="/"),
    ],
)
def test_server_cannot_send_before_request(event: Event) -> None:
    server = WSConnection(SERVER)
    with pytest.raises(LocalProtocolError):
        server.send(event)
    assert server.state is ConnectionState.CONNECTING


@pytest.mark.parametrize(
    "event",
    [TextMessage("x"), BytesMessage(b"x"), Ping(), Pong(), CloseConnection(1000), Request(host="h", target="/")],
)
def test_server_cannot_send_frames_before_accepting(event: Event) -> None:
    server = _server_with_request()
    with pytest.raises(LocalProtocolError):
        server.send(event)
    assert server.state is ConnectionState.CONNECTING


def test_reject_data_before_reject_connection() -> None:
    server = _server_with_request()
    with pytest.raises(LocalProtocolError):
        server.send(RejectData(b"body"))
    # Nothing changed: the server can still reject properly.
    server.send(RejectConnection(status_code=400, has_body=True))
    server.send(RejectData(b"body"))
    assert server.state is ConnectionState.CLOSED


def test_reject_data_after_body_finished() -> None:
    server = _server_with_request()
    server.send(RejectConnection(status_code=400, has_body=True))
    server.send(RejectData(b"body", body_finished=True))
    with pytest.raises(LocalProtocolError):
        server.send(RejectData(b"more"))


def test_reject_data_after_rejection_without_body() -> None:
    server = _server_with_request()
    server.send(RejectConnection(status_code=400))
    for event in (RejectData(b"x"), AcceptConnection(), RejectConnection(), TextMessage("x")):
        with pytest.raises(LocalProtocolError):
            server.send(event)


@pytest.mark.parametrize("event", [AcceptConnection(), RejectConnection(), TextMessage("x")])
def test_nothing_but_reject_data_while_rejecting(event: Event) -> None:
    server = _server_with_request()
    server.send(RejectConnection(status_code=400, has_body=True))
    with pytest.raises(LocalProtocolError):
        server.send(event)
    assert server.state is ConnectionState.REJECTING


def test_accept_with_subprotocol_not_offered() -> None:
    # Section 4.2.2 item 5.4: the server's subprotocol is one the client offered.
    server = _server_with_request(subprotocols=["chat"])
    with pytest.raises(LocalProtocolError):
        server.send(AcceptConnection(subprotocol="superchat"))
    assert server.state is ConnectionState.CONNECTING
    assert server.connection is None
    server.send(AcceptConnection(subprotocol="chat"))
    assert server.state is ConnectionState.OPEN


def test_accept_with_subprotocol_when_none_offered() -> None:
    server = _server_with_request()
    with pytest.raises(LocalProtocolError):
        server.send(AcceptConnection(subprotocol="chat"))


@pytest.mark.parametrize(
    "header",
    [
        (b"X-Bad", b"value\r\nInjected: yes"),  # response splitting (RFC 7230 section 3.2)
        (b"X-Bad", b"a\nb"),
        (b"X-Bad", b"nul\x00"),
        (b"Bad Name", b"v"),
        (b"", b"v"),
        (b"X-Bad:", b"v"),
    ],
)
def test_accept_with_invalid_extra_header(header: tuple[bytes, bytes]) -> None:
    server = _server_with_request()
    with pytest.raises(LocalProtocolError):
        server.send(AcceptConnection(extra_headers=[header]))
    assert server.state is ConnectionState.CONNECTING
    server.send(AcceptConnection())
    assert server.state is ConnectionState.OPEN


def test_reject_with_status_101() -> None:
    server = _server_with_request()
    with pytest.raises(LocalProtocolError):
        server.send(RejectConnection(status_code=101))
    assert server.state is ConnectionState.CONNECTING


@pytest.mark.parametrize(
    "event", [AcceptConnection(), RejectConnection(), RejectData(b""), Request(host="h", target="/")]
)
def test_handshake_events_after_open(event: Event) -> None:
    client, server, _, _ = open_pair()
    for ws in (client, server):
        with pytest.raises(LocalProtocolError):
            ws.send(event)
        assert ws.state is ConnectionState.OPEN


# ======================================================================== after the upgrade


def reachable(root: object) -> list[object]:
    """Every object that ``root`` holds, by references the garbage collector sees.

    Classes, functions and modules are shared by every connection: not followed.
    """
    seen = {id(root)}
    found = [root]
    stack = [root]
    while stack:
        for referent in gc.get_referents(stack.pop()):
            if id(referent) not in seen and not isinstance(referent, (type, types.FunctionType, types.ModuleType)):
                seen.add(id(referent))
                found.append(referent)
                stack.append(referent)
    return found


def test_upgraded_connection_keeps_nothing_of_the_http_exchange() -> None:
    client, server, _, _ = open_pair(Request(host="h", target="/", extra_headers=[(b"x-big", b"v" * 4000)]))
    for ws in (client, server):
        held = reachable(ws)
        assert not [obj for obj in held if isinstance(obj, (h11.Connection, Request, AcceptConnection))]
        # The 4000-byte header value of the request is gone too.
        assert not [obj for obj in held if isinstance(obj, bytes) and len(obj) >= 4000]
        assert ws.handshake.request_head is None


def test_upgraded_connection_calls_go_straight_to_the_connection() -> None:
    client, server, _, _ = open_pair()
    for ws in (client, server):
        # The WSConnection is its Connection, and its class finds Connection's
        # own methods, as a Connection's does (nothing in between).
        assert ws.connection is ws
        for name in ("send", "send_prepared", "receive_data", "events", "state", "buffered_bytes"):
            assert getattr(type(ws), name) is vars(Connection)[name], name
        assert isinstance(ws, WSConnection) and isinstance(ws, Connection)
        assert repr(ws) == f"WSConnection(client={ws.client}, state=OPEN)"
    assert transfer(client, server, TextMessage("hi")) == [TextMessage("hi")]
    assert transfer(server, client, BytesMessage(b"yo")) == [BytesMessage(b"yo")]
    assert client.buffered_bytes == server.buffered_bytes == 0
    assert client.failure is server.failure is None


def test_client_reads_after_the_101_before_its_events() -> None:
    client = WSConnection(CLIENT)
    server = WSConnection(SERVER)
    transfer(client, server, Request(host="h", target="/"))
    client.receive_data(server.send(AcceptConnection()))
    # The AcceptConnection has not been handed out; later bytes still reach the connection.
    client.receive_data(server.send(TextMessage("one")))
    client.receive_data(server.send(TextMessage("two")))
    assert client.buffered_bytes > 0
    assert [type(event) for event in client.events()] == [AcceptConnection, TextMessage, TextMessage]
    assert client.connection is client and type(client).send is Connection.send


def test_server_accepting_before_reading_the_request_event() -> None:
    server = WSConnection(SERVER)
    client = WSConnection(CLIENT)
    request = client.send(Request(host="h", target="/"))
    server.initiate_upgrade_connection(*_parsed_request(request))
    # The Request has not been read from events() yet, but it is known: accept it.
    client.receive_data(server.send(AcceptConnection()))
    server.receive_data(client.send(TextMessage("ping")) if list(client.events()) else b"")
    assert [type(event) for event in server.events()] == [Request, TextMessage]
    assert server.connection is server and type(server).send is Connection.send


def _parsed_request(data: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    http = h11.Connection(h11.SERVER)
    http.receive_data(data)
    request = http.next_event()
    assert isinstance(request, h11.Request)
    return list(request.headers), request.target


def test_handshake_after_the_upgrade() -> None:
    client, server, _, _ = open_pair()
    for ws in (client, server):
        handshake = ws.handshake
        assert handshake.state is ConnectionState.OPEN
        with pytest.raises(LocalProtocolError):
            handshake.send(Request(host="h", target="/"))
        with pytest.raises(LocalProtocolError):
            handshake.send(AcceptConnection())
    with pytest.raises(LocalProtocolError, match="once, before anything else"):
        server.handshake.initiate_upgrade_connection([(b"host", b"h")], "/")
    # Bytes fed to the handshake after the upgrade belong to the WebSocket.
    server.handshake.receive_data(Connection(CLIENT).send(TextMessage("late")))
    assert list(server.events()) == [TextMessage("late")]


def test_bare_handshake_object_releases_http_too() -> None:
    handshake = H11Handshake(SERVER)
    client = WSConnection(CLIENT)
    handshake.receive_data(client.send(Request(host="h", target="/")))
    assert [type(event) for event in handshake.events()] == [Request]
    client.receive_data(handshake.send(AcceptConnection()))
    assert [type(event) for event in client.events()] == [AcceptConnection]
    assert not [obj for obj in reachable(handshake) if isinstance(obj, (h11.Connection, Request))]
    assert handshake.connection is not None and not handshake.pending_events


# ======================================================================== options


def test_default_limits_reach_the_connection() -> None:
    client, server, _, _ = open_pair()
    for ws in (client, server):
        assert ws.connection is not None
        assert ws.connection.max_message_size == DEFAULT_MAX_MESSAGE_SIZE
        assert ws.connection.max_frame_size == DEFAULT_MAX_FRAME_SIZE


def test_limits_reach_the_connection() -> None:
    client, server, _, _ = open_pair(max_message_size=16, max_frame_size=10)
    for ws in (client, server):
        assert ws.connection is not None
        assert ws.connection.max_message_size == 16
        assert ws.connection.max_frame_size == 10
    # Within both limits.
    assert transfer(client, server, BytesMessage(b"0123456789")) == [BytesMessage(b"0123456789")]
    # Two frames of 10 and 6 bytes: 16 in all, the largest message allowed.
    transfer(client, server, BytesMessage(b"0123456789", message_finished=False))
    assert transfer(client, server, BytesMessage(b"abcdef")) == [BytesMessage(b"abcdef")]
    # A frame over max_frame_size: 1009 (RFC 6455 section 7.4.1).
    [close] = transfer(client, server, BytesMessage(b"x" * 11))
    assert isinstance(close, CloseConnection)
    assert close.code == 1009


def test_max_message_size_reaches_the_connection() -> None:
    client, server, _, _ = open_pair(max_message_size=16)
    transfer(client, server, TextMessage("a" * 10, message_finished=False))
    events = transfer(client, server, TextMessage("b" * 7))
    assert isinstance(events[-1], CloseConnection)
    assert events[-1].code == 1009
    assert server.state is ConnectionState.REMOTE_CLOSING
    # And the client side has its own limit.
    client2, server2, _, _ = open_pair(max_message_size=4)
    [close] = transfer(server2, client2, BytesMessage(b"12345"))
    assert isinstance(close, CloseConnection) and close.code == 1009


def test_unlimited_sizes() -> None:
    client, server, _, _ = open_pair(max_message_size=None, max_frame_size=None)
    assert server.connection is not None
    assert server.connection.max_message_size is None
    assert transfer(client, server, BytesMessage(b"x" * 100_000)) == [BytesMessage(b"x" * 100_000)]


@pytest.mark.parametrize(("min_partial_size", "pieces"), [(0, 26), (None, 2), (40_000, 3)])
def test_min_partial_size_reaches_the_connection(min_partial_size: int | None, pieces: int) -> None:
    """A 100 000-byte binary frame read 4 000 bytes at a time comes out in pieces of min_partial_size."""
    options = {} if min_partial_size is None else {"min_partial_size": min_partial_size}
    client, server, _, _ = open_pair(**options)
    data = client.send(BytesMessage(b"x" * 100_000))
    received: list[Event] = []
    for start in range(0, len(data), 4_000):
        server.receive_data(data[start : start + 4_000])
        received.extend(server.events())
    assert all(isinstance(event, BytesMessage) for event in received)
    assert b"".join(event.data for event in received if isinstance(event, BytesMessage)) == b"x" * 100_000
    assert len(received) == pieces


def test_unknown_option_is_refused_at_construction() -> None:
    # As wsproto's WSConnection: a typo must fail where it is made, not when
    # the handshake completes (after the 101 was already produced).
    with pytest.raises(TypeError):
        WSConnection(SERVER, max_mesage_size=10)


@pytest.mark.parametrize(
    "options",
    [{"max_message_size": -1}, {"max_frame_size": "10"}, {"min_partial_size": None}, {"min_partial_size": -1}],
)
def test_invalid_limit_is_refused_at_construction(options: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        WSConnection(SERVER, **options)


def test_invalid_connection_type_is_refused() -> None:
    # Connection refuses anything but a ConnectionType; so must WSConnection.
    with pytest.raises(LocalProtocolError):
        WSConnection("server")  # type: ignore[arg-type]


# ======================================================================== status lines


def test_status_lines_carry_reason_phrases() -> None:
    # RFC 7230 section 3.1.2: status-line = HTTP-version SP status-code SP reason-phrase CRLF.
    server = _server_with_request()
    assert server.send(AcceptConnection()).startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    server = _server_with_request()
    assert server.send(RejectConnection(status_code=403)).startswith(b"HTTP/1.1 403 Forbidden\r\n")
    server = _server_with_request()
    # An unregistered code has an empty (but present) reason phrase.
    assert server.send(RejectConnection(status_code=599)).startswith(b"HTTP/1.1 599 \r\n")


# ======================================================================== permessage-deflate through WSConnection


def test_permessage_deflate_round_trip() -> None:
    extensions = pytest.importorskip("wsproto_core.extensions")
    if not hasattr(extensions, "PerMessageDeflate"):
        pytest.skip("wsproto_core.extensions.PerMessageDeflate does not exist yet")
    client, server, request, accepted = open_pair(
        Request(host="h", target="/", extensions=[extensions.PerMessageDeflate()]),
        AcceptConnection(extensions=[extensions.PerMessageDeflate()]),
    )
    assert [offer.split(";")[0] for offer in request.extensions] == ["permessage-deflate"]  # type: ignore[union-attr]
    assert [extension.name for extension in accepted.extensions] == ["permessage-deflate"]
    assert client.connection is not None and server.connection is not None
    assert [extension.name for extension in server.connection.extensions] == ["permessage-deflate"]
    text = "squeeze " * 500
    data = client.send(TextMessage(text))
    assert data[0] & 0x40  # RSV1 marks a compressed message (RFC 7692 section 6)
    assert len(data) < len(text) // 4
    server.receive_data(data)
    assert "".join(event.data for event in server.events()) == text  # type: ignore[attr-defined]
    client.receive_data(server.send(BytesMessage(text.encode())))
    assert b"".join(event.data for event in client.events()) == text.encode()  # type: ignore[attr-defined]


def test_after_upgrade_goes_straight_to_the_connection() -> None:
    server = WSConnection.after_upgrade(SERVER, received=Connection(CLIENT).send(TextMessage("h2")))
    assert server.connection is server and server.state is ConnectionState.OPEN
    assert type(server).send is Connection.send
    assert list(server.events()) == [TextMessage("h2")]


# ======================================================================== an upgraded WSConnection is a Connection


def test_upgraded_connection_is_freed_by_reference_counting() -> None:
    """No reference cycle: a dropped connection goes at once, not at the next garbage collection."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        client, server, _, _ = open_pair()
        # A server that rejects, and one that never finishes its handshake.
        rejecting, abandoned = WSConnection(SERVER), WSConnection(SERVER)
        rejecting.receive_data(WSConnection(CLIENT).send(Request(host="h", target="/")))
        list(rejecting.events())
        rejecting.send(RejectConnection(status_code=403))
        abandoned.receive_data(b"GET / HTTP/1.1\r\n")
        references = [weakref.ref(ws) for ws in (client, server, rejecting, abandoned)]
        del client, server, rejecting, abandoned
        assert [reference() for reference in references] == [None] * 4
    finally:
        if was_enabled:
            gc.enable()


def test_subclass_keeps_its_class_after_the_upgrade() -> None:
    class Recording(WSConnection):
        __slots__ = ("sent",)

        def send(self, event: Event) -> bytes:
            self.sent = event
            return super().send(event)

    client = Recording(CLIENT)
    server = WSConnection(SERVER)
    transfer(client, server, Request(host="h", target="/"))
    transfer(server, client, AcceptConnection())
    assert type(client) is Recording and client.connection is client
    assert transfer(client, server, TextMessage("hi")) == [TextMessage("hi")]
    assert client.sent == TextMessage("hi")
    assert transfer(server, client, BytesMessage(b"yo")) == [BytesMessage(b"yo")]
    assert client.state is ConnectionState.OPEN and client.buffered_bytes == 0


def _frames(data: bytes, masked: bool) -> list[tuple[int, bytes]]:
    """The frames in ``data`` as (first header byte, unmasked payload): masks are random."""
    frames = []
    while data:
        first, _length, has_mask, _key, payload, data = parse_frame(data)
        assert has_mask is masked
        frames.append((first, payload))
    return frames


def _outcome(target: Connection, operation: tuple[str, Any]) -> Any:
    """What one operation returns, or the error it raises (type and words)."""
    kind, argument = operation
    try:
        if kind == "send":
            return _frames(target.send(argument), target.client)
        if kind == "receive":
            target.receive_data(argument)
            return None
        return list(target.events())
    except (LocalProtocolError, RemoteProtocolError) as error:
        return type(error), str(error)


_sent_events = st.one_of(
    st.builds(TextMessage, st.text(max_size=20), st.booleans(), st.booleans()),
    st.builds(BytesMessage, st.binary(max_size=20), st.booleans(), st.booleans()),
    st.builds(Message, st.one_of(st.text(max_size=5), st.binary(max_size=5)), st.booleans(), st.booleans()),
    st.builds(Ping, st.binary(max_size=10)),
    st.builds(Pong, st.binary(max_size=10)),
    st.builds(CloseConnection, st.sampled_from([1000, 1001, 1006, 3000, 4999, 999]), st.text(max_size=10)),
    st.just(Request(host="h", target="/")),
    st.just(AcceptConnection()),
)


@st.composite
def _received_bytes(draw: st.DrawFn, masked: bool) -> bytes | None:
    if draw(st.integers(0, 20)) == 0:
        return None  # the transport closed
    frames = draw(
        st.lists(
            st.builds(
                build_frame,
                st.sampled_from([0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA]),
                st.binary(max_size=30),
                fin=st.booleans(),
                rsv=st.sampled_from([0, 0, 0, 4]),
                mask=st.just(masked) if draw(st.integers(0, 9)) else st.booleans(),
            ),
            max_size=3,
        )
    )
    data = b"".join(frames)
    cut = draw(st.integers(0, len(data)))
    return data[:cut] if draw(st.booleans()) else data


@st.composite
def _operations(draw: st.DrawFn, client: bool) -> list[tuple[str, Any]]:
    operation = st.one_of(
        st.tuples(st.just("send"), _sent_events),
        st.tuples(st.just("receive"), _received_bytes(not client)),
        st.tuples(st.just("events"), st.none()),
    )
    return draw(st.lists(operation, max_size=12))


@settings(max_examples=300, deadline=None)
@given(client=st.booleans(), data=st.data())
def test_upgraded_connection_behaves_as_a_connection(client: bool, data: st.DataObject) -> None:
    """After the upgrade a WSConnection answers every sequence of calls exactly as a bare Connection.

    The same sends (handshake events and misuse included), received bytes
    (valid or not, cut anywhere, the end of the transport) and event reads
    give the same bytes, events, errors with the same words, states and
    failures: the WSConnection adds nothing and drops nothing.
    """
    ws_client, ws_server, _, _ = open_pair()
    upgraded = ws_client if client else ws_server
    bare = Connection(CLIENT if client else SERVER)
    for operation in data.draw(_operations(client)):
        assert _outcome(upgraded, operation) == _outcome(bare, operation), operation
        assert upgraded.state is bare.state
        assert upgraded.buffered_bytes == bare.buffered_bytes
        assert str(upgraded.failure) == str(bare.failure)
