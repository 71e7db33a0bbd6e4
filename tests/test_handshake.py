"""Tests for wsproto_core.handshake: the HTTP/1.1 opening handshake (RFC 6455 section 4).

Server rows feed raw request bytes, so every header the RFC constrains is tried
present, absent, repeated and malformed; client rows answer a real client
request with crafted responses. Extension negotiation uses a toy extension.
"""

from __future__ import annotations

import importlib
import random
import re
import types
from collections.abc import Sequence
from typing import Any

import h11
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wsproto_core import ConnectionState, ConnectionType, WSConnection
from wsproto_core import handshake as handshake_module
from wsproto_core.errors import LocalProtocolError, RemoteProtocolError
from wsproto_core.events import (
    AcceptConnection,
    BytesMessage,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto_core.extensions import Extension
from wsproto_core.frames import Opcode, RsvBits
from wsproto_core.handshake import (
    DEFAULT_MAX_HANDSHAKE_SIZE,
    MAX_HEADER_COUNT,
    WEBSOCKET_VERSION,
    H11Handshake,
    _decode_host,
    client_extensions_handshake,
    origin_allowed,
    server_extensions_handshake,
)
from wsproto_core.utilities import generate_accept_token

CLIENT = ConnectionType.CLIENT
SERVER = ConnectionType.SERVER

#: The key and accept token of the example in RFC 6455 section 1.3.
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

Headers = list[tuple[bytes, bytes]]

#: The request of RFC 6455 section 1.2 (minus Origin and the optional headers).
BASE_HEADERS: Headers = [
    (b"Host", b"server.example.com"),
    (b"Upgrade", b"websocket"),
    (b"Connection", b"Upgrade"),
    (b"Sec-WebSocket-Key", KEY),
    (b"Sec-WebSocket-Version", b"13"),
]


def raw_request(
    *,
    method: bytes = b"GET",
    version: bytes = b"1.1",
    target: bytes = b"/chat",
    replace: dict[bytes, bytes | None] | None = None,
    add: Sequence[tuple[bytes, bytes]] = (),
) -> bytes:
    """An upgrade request: BASE_HEADERS with some values replaced (``None`` drops the header)."""
    replace = replace or {}
    headers: Headers = []
    for name, value in BASE_HEADERS:
        new = replace.get(name, value)
        if new is not None:
            headers.append((name, new))
    headers.extend(add)
    lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return method + b" " + target + b" HTTP/" + version + b"\r\n" + lines + b"\r\n"


def receive_request(data: bytes, **options: object) -> tuple[WSConnection, Request]:
    ws = WSConnection(SERVER, **options)
    ws.receive_data(data)
    events = list(ws.events())
    assert len(events) == 1, events
    assert isinstance(events[0], Request)
    return ws, events[0]


def parse_response(data: bytes) -> tuple[h11.Response | h11.InformationalResponse, bytes]:
    """Parse a server's response with h11 as a client would; return it and its body."""
    client = h11.Connection(h11.CLIENT)
    upgrade = [(b"Host", b"x"), (b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")]
    client.send(h11.Request(method=b"GET", target=b"/", headers=upgrade))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    response = client.next_event()
    assert isinstance(response, h11.Response | h11.InformationalResponse), response
    body = b""
    if isinstance(response, h11.Response):
        while True:
            event = client.next_event()
            if isinstance(event, h11.Data):
                body += event.data
            else:
                assert isinstance(event, h11.EndOfMessage), event
                break
    return response, body


def header_values(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [value for key, value in headers if key.lower() == name]


# ======================================================================== server: valid requests


def test_server_accepts_rfc_example_request() -> None:
    ws, request = receive_request(raw_request(add=[(b"Origin", b"http://example.com")]))
    assert request.host == "server.example.com"
    assert request.target == "/chat"
    assert request.subprotocols == []
    assert request.extensions == []
    # wsproto hands every request header to the application in extra_headers.
    assert (b"origin", b"http://example.com") in request.extra_headers
    assert (b"sec-websocket-key", KEY) in request.extra_headers
    assert ws.state is ConnectionState.CONNECTING

    response, _ = parse_response(ws.send(AcceptConnection()))
    # Section 4.2.2 item 5: 101, Upgrade: websocket, Connection: Upgrade and the
    # accept token of section 1.3.
    assert response.status_code == 101
    assert [v.lower() for v in header_values(response.headers, b"upgrade")] == [b"websocket"]
    assert [v.lower() for v in header_values(response.headers, b"connection")] == [b"upgrade"]
    assert header_values(response.headers, b"sec-websocket-accept") == [ACCEPT]
    assert header_values(response.headers, b"sec-websocket-protocol") == []
    assert header_values(response.headers, b"sec-websocket-extensions") == []
    assert ws.state is ConnectionState.OPEN
    assert ws.connection is not None


@pytest.mark.parametrize(
    ("replace", "add"),
    [
        # Section 4.2.1 item 3: Upgrade "includes" websocket, case-insensitively
        # (RFC 7230 section 6.7: a list of protocol names).
        ({b"Upgrade": b"WebSocket"}, ()),
        ({b"Upgrade": b"WEBSOCKET"}, ()),
        ({b"Upgrade": b"foo, WebSocket"}, ()),
        ({b"Upgrade": b"websocket, h2c"}, ()),
        # A list header may be repeated (RFC 7230 section 3.2.2).
        ({b"Upgrade": b"foo"}, [(b"Upgrade", b"websocket")]),
        # Item 4: Connection includes the token "Upgrade", case-insensitively.
        ({b"Connection": b"keep-alive, Upgrade"}, ()),
        ({b"Connection": b"upgrade"}, ()),
        ({b"Connection": b"Upgrade, keep-alive"}, ()),
        ({b"Connection": b"keep-alive , UPGRADE "}, ()),
        ({b"Connection": b"keep-alive"}, [(b"Connection", b"Upgrade")]),
        # Header names are case-insensitive (RFC 7230 section 3.2).
        (
            {b"Sec-WebSocket-Key": None, b"Sec-WebSocket-Version": None},
            [(b"sec-websocket-key", KEY), (b"SEC-WEBSOCKET-VERSION", b"13")],
        ),
        # Optional whitespace around a field value is not part of it (RFC 7230 section 3.2.4).
        ({b"Sec-WebSocket-Key": b"  " + KEY + b"\t"}, ()),
    ],
)
def test_server_accepts_valid_variants(replace: dict[bytes, bytes | None], add: Headers) -> None:
    ws, _request = receive_request(raw_request(replace=replace, add=add))
    response, _ = parse_response(ws.send(AcceptConnection()))
    assert response.status_code == 101
    assert header_values(response.headers, b"sec-websocket-accept") == [ACCEPT]


def test_server_request_lists_subprotocols_and_extensions_in_order() -> None:
    # Section 4.2.1 items 8 and 9: both headers are lists and may be repeated.
    _, request = receive_request(
        raw_request(
            target=b"/chat?room=1",
            add=[
                (b"Sec-WebSocket-Protocol", b"chat, superchat"),
                (b"Sec-WebSocket-Protocol", b"v2.chat"),
                (b"Sec-WebSocket-Extensions", b"permessage-deflate; client_max_window_bits, x-foo"),
                (b"Sec-WebSocket-Extensions", b'x-bar; list="a,b"'),
            ],
        )
    )
    assert request.target == "/chat?room=1"
    assert request.subprotocols == ["chat", "superchat", "v2.chat"]
    # Quoted parameter values keep their commas (RFC 7230 section 3.2.6).
    assert request.extensions == ["permessage-deflate; client_max_window_bits", "x-foo", 'x-bar; list="a,b"']


def test_request_extra_headers_leave_out_the_headers_in_fields() -> None:
    # As in wsproto: Host, Sec-WebSocket-Protocol and Sec-WebSocket-Extensions
    # are in request.host, .subprotocols and .extensions; every other header,
    # the handshake's own included, is in extra_headers, in the order received.
    _, request = receive_request(
        raw_request(
            add=[
                (b"Sec-WebSocket-Protocol", b"chat"),
                (b"Origin", b"http://example.com"),
                (b"Sec-WebSocket-Extensions", b"x-toy"),
                (b"Cookie", b"a=1"),
            ]
        )
    )
    assert (request.host, request.subprotocols, request.extensions) == ("server.example.com", ["chat"], ["x-toy"])
    assert request.extra_headers == [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-key", KEY),
        (b"sec-websocket-version", b"13"),
        (b"origin", b"http://example.com"),
        (b"cookie", b"a=1"),
    ]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (b"server.example.com:8080", "server.example.com:8080"),
        # IDNA (RFC 3490) as our client and wsproto's encode a non-ASCII host:
        # the application gets the name back, as with wsproto.
        (b"xn--7ks3rz39bh7u", "\u829d\u58eb\u6c49\u5821"),
        (b"[::1]:8000", "[::1]:8000"),
        # Not IDNA (wsproto raised UnicodeError from receive_data): kept as
        # Latin-1 text; the handshake goes on.
        (b"xn--zz", "xn--zz"),
        (b"caf\xc3\xa9.example", "caf\xc3\xa9.example"),
    ],
)
def test_server_request_host(host: bytes, expected: str) -> None:
    _, request = receive_request(raw_request(replace={b"Host": host}))
    assert request.host == expected


@given(
    st.binary(max_size=80)
    | st.lists(st.sampled_from([b"a", b"Z", b"-", b".", b"9", b"xn", b"XN", b"--", b":", b"\xc3"]), max_size=30).map(
        b"".join
    )
)
def test_host_decoding_is_the_idna_codec_or_latin_1(host: bytes) -> None:
    # The shortcut for names without an ACE label must give what the codec gives.
    try:
        expected = host.decode("idna")
    except UnicodeError:
        expected = host.decode("latin-1")
    assert _decode_host(host) == expected


def test_non_ascii_host_round_trip() -> None:
    client = WSConnection(CLIENT)
    _, request = receive_request(client.send(Request(host="\u829d\u58eb\u6c49\u5821", target="/")))
    assert request.host == "\u829d\u58eb\u6c49\u5821"


def test_upgrade_header_value_is_lowercase_websocket() -> None:
    # The RFC's examples (sections 1.2 and 1.3) and wsproto 1.3 write
    # "websocket"; the value is case-insensitive, but some peers compare it
    # exactly.
    ws, _ = receive_request(raw_request())
    response, _ = parse_response(ws.send(AcceptConnection()))
    assert header_values(response.headers, b"upgrade") == [b"websocket"]
    request_bytes = WSConnection(CLIENT).send(Request(host="h", target="/"))
    assert b"\r\nUpgrade: websocket\r\n" in request_bytes


# ======================================================================== server: invalid requests


def _upgrade_hint(headers: Sequence[tuple[bytes, bytes]]) -> None:
    # RFC 7231 section 6.5.15: "The server MUST send an Upgrade header field in a 426 response".
    assert [v.lower() for v in header_values(headers, b"upgrade")] == [b"websocket"]


def _version_hint(headers: Sequence[tuple[bytes, bytes]]) -> None:
    # Section 4.4: answer an unsupported version with the versions we support.
    _upgrade_hint(headers)
    assert header_values(headers, b"sec-websocket-version") == [WEBSOCKET_VERSION]


def _allow_get(headers: Sequence[tuple[bytes, bytes]]) -> None:
    # RFC 7231 section 6.5.5: a 405 response MUST include an Allow header.
    assert header_values(headers, b"allow") == [b"GET"]


def _nothing(headers: Sequence[tuple[bytes, bytes]]) -> None:
    pass


KEY_15 = b"AAECAwQFBgcICQoLDA0O"  # base64 of 15 bytes
KEY_17 = b"AAECAwQFBgcICQoLDA0ODxA="  # base64 of 17 bytes

INVALID_REQUESTS = [
    # Section 4.2.1 item 1: "An HTTP/1.1 or higher GET request".
    pytest.param(raw_request(method=b"POST"), 405, _allow_get, id="method-POST"),
    pytest.param(raw_request(method=b"HEAD"), 405, _allow_get, id="method-HEAD"),
    pytest.param(raw_request(version=b"1.0"), 505, _nothing, id="http-1.0"),
    pytest.param(raw_request(version=b"1.0", replace={b"Host": None}), 505, _nothing, id="http-1.0-no-host"),
    # Item 2: a Host header field (RFC 7230 section 5.4: exactly one).
    pytest.param(raw_request(replace={b"Host": None}), 400, _nothing, id="host-missing"),
    pytest.param(raw_request(add=[(b"Host", b"other.example.com")]), 400, _nothing, id="host-repeated"),
    # Item 3: Upgrade includes "websocket".
    pytest.param(raw_request(replace={b"Upgrade": None}), 426, _upgrade_hint, id="upgrade-missing"),
    pytest.param(raw_request(replace={b"Upgrade": b"h2c"}), 426, _upgrade_hint, id="upgrade-h2c"),
    pytest.param(raw_request(replace={b"Upgrade": b"websocketx"}), 426, _upgrade_hint, id="upgrade-websocketx"),
    pytest.param(raw_request(replace={b"Upgrade": b"foo, bar"}), 426, _upgrade_hint, id="upgrade-list-without"),
    pytest.param(raw_request(replace={b"Upgrade": b""}), 426, _upgrade_hint, id="upgrade-empty"),
    # Item 4: Connection includes "Upgrade".
    pytest.param(raw_request(replace={b"Connection": None}), 426, _upgrade_hint, id="connection-missing"),
    pytest.param(raw_request(replace={b"Connection": b"keep-alive"}), 426, _upgrade_hint, id="connection-keepalive"),
    pytest.param(raw_request(replace={b"Connection": b"upgraded"}), 426, _upgrade_hint, id="connection-upgraded"),
    pytest.param(raw_request(replace={b"Connection": b"close"}), 426, _upgrade_hint, id="connection-close"),
    # Item 5: one Sec-WebSocket-Key, base64 of 16 bytes.
    pytest.param(raw_request(replace={b"Sec-WebSocket-Key": None}), 400, _nothing, id="key-missing"),
    pytest.param(raw_request(replace={b"Sec-WebSocket-Key": b""}), 400, _nothing, id="key-empty"),
    pytest.param(
        raw_request(replace={b"Sec-WebSocket-Key": b"not base64 at all!!!!!=="}), 400, _nothing, id="key-not-base64"
    ),
    pytest.param(
        raw_request(replace={b"Sec-WebSocket-Key": b"dGhlIHNhbXBsZSBub25jZQ=!"}), 400, _nothing, id="key-bad-char"
    ),
    pytest.param(raw_request(replace={b"Sec-WebSocket-Key": KEY_15}), 400, _nothing, id="key-15-bytes"),
    pytest.param(raw_request(replace={b"Sec-WebSocket-Key": KEY_17}), 400, _nothing, id="key-17-bytes"),
    pytest.param(raw_request(add=[(b"Sec-WebSocket-Key", KEY)]), 400, _nothing, id="key-repeated-same"),
    pytest.param(
        raw_request(add=[(b"Sec-WebSocket-Key", b"AAECAwQFBgcICQoLDA0ODw==")]), 400, _nothing, id="key-repeated"
    ),
    # Item 6: Sec-WebSocket-Version 13; section 4.4: otherwise 426 with the
    # supported versions.
    pytest.param(raw_request(replace={b"Sec-WebSocket-Version": None}), 426, _version_hint, id="version-missing"),
    pytest.param(raw_request(replace={b"Sec-WebSocket-Version": b"8"}), 426, _version_hint, id="version-8"),
    pytest.param(raw_request(replace={b"Sec-WebSocket-Version": b"14"}), 426, _version_hint, id="version-14"),
    pytest.param(raw_request(replace={b"Sec-WebSocket-Version": b""}), 426, _version_hint, id="version-empty"),
    # Not HTTP at all (RFC 7230 section 3.1.1).
    pytest.param(b"HELLO\r\n\r\n", 400, _nothing, id="garbage"),
    pytest.param(b"GET /chat HTTP/1.1\r\nHost server.example.com\r\n\r\n", 400, _nothing, id="bad-header-line"),
]


@pytest.mark.parametrize(("data", "status", "check_headers"), INVALID_REQUESTS)
def test_server_rejects_invalid_request(data: bytes, status: int, check_headers: object) -> None:
    ws = WSConnection(SERVER)
    with pytest.raises(RemoteProtocolError) as info:
        ws.receive_data(data)
    hint = info.value.event_hint
    assert isinstance(hint, RejectConnection)
    assert hint.status_code == status
    check_headers(hint.headers)  # type: ignore[operator]
    assert list(ws.events()) == []

    # The hint is what the server sends back (section 4.2.1: "return an HTTP
    # response with an appropriate error code"); it must be a whole response.
    data_out = ws.send(hint)
    assert data_out.startswith(b"HTTP/1.1 %d " % status)
    response, body = parse_response(data_out)
    assert isinstance(response, h11.Response)
    assert response.status_code == status
    assert body == b""
    check_headers(response.headers)  # type: ignore[operator]
    assert ws.state is ConnectionState.CLOSED
    with pytest.raises(LocalProtocolError):
        ws.send(AcceptConnection())


def test_server_rejection_hint_with_body() -> None:
    # An application may prefer to explain the refusal in a body.
    ws = WSConnection(SERVER)
    with pytest.raises(RemoteProtocolError) as info:
        ws.receive_data(raw_request(replace={b"Sec-WebSocket-Version": b"8"}))
    hint = info.value.event_hint
    data = ws.send(RejectConnection(status_code=hint.status_code, headers=hint.headers, has_body=True))
    assert ws.state is ConnectionState.REJECTING
    data += ws.send(RejectData(b"version 13 only"))
    assert ws.state is ConnectionState.CLOSED
    response, body = parse_response(data)
    assert response.status_code == 426
    assert body == b"version 13 only"


def test_server_request_fed_byte_by_byte() -> None:
    ws = WSConnection(SERVER)
    data = raw_request()
    for index in range(len(data)):
        ws.receive_data(data[index : index + 1])
        events = list(ws.events())
        if index < len(data) - 1:
            assert events == []
    assert isinstance(events[0], Request)


def test_server_empty_read_is_not_end_of_stream() -> None:
    # receive_data(None) is the end of the stream; b"" is just no bytes (as for
    # Connection.receive_data). Passing b"" on to h11 would mean EOF to it.
    ws = WSConnection(SERVER)
    data = raw_request()
    ws.receive_data(data[:10])
    ws.receive_data(b"")
    ws.receive_data(data[10:])
    assert [type(event) for event in ws.events()] == [Request]


def test_server_transport_closed_during_handshake() -> None:
    ws = WSConnection(SERVER)
    ws.receive_data(raw_request()[:20])
    ws.receive_data(None)
    assert ws.state is ConnectionState.CLOSED
    assert list(ws.events()) == []


def test_server_data_after_transport_closed_is_a_local_error() -> None:
    # As Connection.receive_data: feeding bytes after None is the caller's
    # mistake and must be reported as a LocalProtocolError, not h11's RuntimeError.
    ws = WSConnection(SERVER)
    ws.receive_data(raw_request()[:20])
    ws.receive_data(None)
    with pytest.raises(LocalProtocolError):
        ws.receive_data(raw_request()[20:])


# ======================================================================== server: size limits


def test_incomplete_request_head_over_max_handshake_size() -> None:
    ws = WSConnection(SERVER, max_handshake_size=1024)
    with pytest.raises(RemoteProtocolError) as info:
        ws.receive_data(b"GET /chat HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 1100)
    assert isinstance(info.value.event_hint, RejectConnection)
    assert info.value.event_hint.status_code == 431  # RFC 6585 section 5
    response, _ = parse_response(ws.send(info.value.event_hint))
    assert response.status_code == 431


def test_incomplete_request_head_over_max_handshake_size_in_pieces() -> None:
    ws = WSConnection(SERVER, max_handshake_size=1024)
    ws.receive_data(b"GET /chat HTTP/1.1\r\nHost: x\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(20):
            ws.receive_data(b"X-Filler: " + b"a" * 90 + b"\r\n")
    assert info.value.event_hint.status_code == 431


def test_complete_request_head_over_max_handshake_size_in_one_read() -> None:
    # max_handshake_size is "the largest request head accepted": a head that
    # happens to arrive whole in one read must not slip past the limit.
    data = raw_request(add=[(b"X-Filler", b"a" * 2000)])
    ws = WSConnection(SERVER, max_handshake_size=1024)
    with pytest.raises(RemoteProtocolError) as info:
        ws.receive_data(data)
    assert info.value.event_hint.status_code == 431


def test_complete_response_head_over_max_handshake_size_in_one_read() -> None:
    client = WSConnection(CLIENT, max_handshake_size=1024)
    data = client.send(Request(host="h", target="/"))
    [key] = re.findall(rb"\r\nSec-WebSocket-Key: ([^\r]*)\r\n", data)
    headers = [*_good_101(generate_accept_token(key)), (b"X-Filler", b"a" * 2000)]
    with pytest.raises(RemoteProtocolError):
        client.receive_data(_response(b"101 Switching Protocols", headers))
    assert client.connection is None


def test_incomplete_response_head_over_max_handshake_size() -> None:
    client = WSConnection(CLIENT, max_handshake_size=1024)
    client.send(Request(host="h", target="/"))
    with pytest.raises(RemoteProtocolError):
        client.receive_data(b"HTTP/1.1 101 Switching Protocols\r\nX-Filler: " + b"a" * 2000)


@pytest.mark.parametrize("size", [0, -1, "16384", None])
def test_invalid_max_handshake_size(size: object) -> None:
    with pytest.raises(LocalProtocolError):
        WSConnection(SERVER, max_handshake_size=size)  # type: ignore[arg-type]


def test_request_head_under_max_handshake_size() -> None:
    data = raw_request(add=[(b"X-Filler", b"a" * 800)])
    assert len(data) < 1024
    receive_request(data, max_handshake_size=1024)


def test_default_max_handshake_size_allows_large_cookies() -> None:
    assert DEFAULT_MAX_HANDSHAKE_SIZE == 16 * 1024
    receive_request(raw_request(add=[(b"Cookie", b"session=" + b"c" * 10_000)]))


def test_too_many_request_headers() -> None:
    many = [(b"X-H%d" % index, b"v") for index in range(MAX_HEADER_COUNT)]
    ws = WSConnection(SERVER)
    with pytest.raises(RemoteProtocolError) as info:
        ws.receive_data(raw_request(add=many))
    assert info.value.event_hint.status_code == 431
    # Just under the limit is fine.
    receive_request(raw_request(add=many[: MAX_HEADER_COUNT - len(BASE_HEADERS)]))


# ======================================================================== server: a whole request in one read


# A server whose first read holds the whole request head parses it with h11's
# request reader alone, and makes an h11.Connection only if something else than
# the 101 follows. Everything must come out as on the h11.Connection path, which
# a head split over two reads takes.

_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=12)
_value = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=20)
_frame_bytes = st.sampled_from(
    [
        b"",
        # A masked text frame "Hi" and a masked Ping (RFC 6455 section 5.7).
        b"\x81\x82\x37\xfa\x21\x3d\x7f\x93",
        b"\x81\x82\x37\xfa\x21\x3d\x7f\x93\x89\x80\x01\x02\x03\x04",
        # Not a valid frame: RSV1 without an extension.
        b"\xc1\x80\x00\x00\x00\x00",
    ]
)


def _answer_and_follow(ws: WSConnection, answer: AcceptConnection | RejectConnection, later: bytes) -> list[object]:
    """Everything observable from the request on: the events, the answer's bytes, what follows."""
    seen: list[object] = [list(ws.events()), ws.handshake.request_head]
    if later:
        ws.receive_data(later)
    seen.append(ws.send(answer))
    if isinstance(answer, RejectConnection) and answer.has_body:
        seen.append(ws.send(RejectData(b"no", body_finished=True)))
    seen.append(ws.state)
    if ws.state is ConnectionState.OPEN:
        seen.append(list(ws.events()))
        seen.append(ws.state)
        if ws.state is ConnectionState.OPEN:
            seen.append(ws.send(TextMessage("ok")))
    return seen


@settings(max_examples=200, deadline=None)
@given(
    extra=st.lists(st.tuples(_token, _value), max_size=6),
    upper_names=st.booleans(),
    subprotocols=st.lists(st.sampled_from(["chat", "superchat", "v2.json"]), max_size=3, unique=True),
    extension_offer=st.sampled_from([None, b"permessage-deflate", b"toy, other; x=1", b'toy; q="a,b"']),
    # Weighted towards valid requests that are accepted, the path that skips h11.Connection.
    drop=st.sampled_from([None, None, None, None, b"Sec-WebSocket-Key", b"Upgrade", b"Host"]),
    method=st.sampled_from([b"GET", b"GET", b"GET", b"POST"]),
    trailing=_frame_bytes,
    later=st.one_of(st.just(b""), _frame_bytes),
    reject=st.sampled_from([None, None, 403, 404]),
    cut=st.integers(min_value=1, max_value=40),
)
def test_whole_request_read_as_by_h11_connection(
    *,
    extra: list[tuple[str, str]],
    upper_names: bool,
    subprotocols: list[str],
    extension_offer: bytes | None,
    drop: bytes | None,
    method: bytes,
    trailing: bytes,
    later: bytes,
    reject: int | None,
    cut: int,
) -> None:
    add = [(b"X-" + name.encode("ascii"), value.encode("ascii")) for name, value in extra]
    if subprotocols:
        add.append((b"Sec-WebSocket-Protocol", ", ".join(subprotocols).encode("ascii")))
    if extension_offer is not None:
        add.append((b"Sec-WebSocket-Extensions", extension_offer))
    head = raw_request(method=method, replace={drop: None} if drop else {}, add=add)
    if upper_names:
        head = head.replace(b"Upgrade:", b"UPGRADE:").replace(b"Host:", b"host:")
    data = head + trailing
    results = []
    for pieces in ([data], [data[:cut], data[cut:]]):
        ws = WSConnection(SERVER)
        try:
            for piece in pieces:
                ws.receive_data(piece)
        except RemoteProtocolError as error:
            hint = error.event_hint
            assert isinstance(hint, RejectConnection)
            results.append([str(error), hint, ws.handshake.request_head, ws.send(hint), ws.state])
            continue
        answer: AcceptConnection | RejectConnection
        if reject is None:
            answer = AcceptConnection(subprotocol=subprotocols[0] if subprotocols else None)
        else:
            answer = RejectConnection(status_code=reject, headers=[(b"x-why", b"test")], has_body=reject == 404)
        results.append(_answer_and_follow(ws, answer, later))
    whole, split = results
    assert whole == split


@settings(max_examples=150, deadline=None)
@given(
    filler=st.integers(min_value=0, max_value=400),
    extra_headers=st.integers(min_value=0, max_value=20),
    line_end=st.sampled_from([b"\r\n", b"\n"]),
    separator=st.sampled_from([b": ", b":", b":  "]),
)
def test_whole_request_near_max_handshake_size_as_by_h11_connection(
    *, filler: int, extra_headers: int, line_end: bytes, separator: bytes
) -> None:
    # A head read whole skips measuring itself when its length on the wire
    # shows it is under the limit: the outcome must be the one of the
    # h11.Connection path, which measures, for heads just under and over it,
    # however tightly the lines are written.
    headers = [*BASE_HEADERS, *((b"X-%d" % index, b"v") for index in range(extra_headers)), (b"X-Fill", b"f" * filler)]
    head = b"GET /chat HTTP/1.1" + line_end
    head += b"".join(name + separator + value + line_end for name, value in headers) + line_end
    outcomes = []
    for pieces in ([head], [head[:10], head[10:]]):
        ws = WSConnection(SERVER, max_handshake_size=400)
        try:
            for piece in pieces:
                ws.receive_data(piece)
        except RemoteProtocolError as error:
            outcomes.append(str(error))
        else:
            outcomes.append([type(event) for event in ws.events()])
    assert outcomes[0] == outcomes[1]


_head_piece = st.sampled_from(
    [
        b"Host",
        b"host",
        b"HOST",
        b"Upgrade",
        b"Content-Length",
        b"transfer-encoding",
        b"X-A",
        b":",
        b": ",
        b" ",
        b"\t",
        b"\r\n",
        b"\n",
        b"\r",
        b"websocket",
        b"1",
        b"chunked",
        b"\x80\xff",
        b"\x00",
        b"x y",
        b",",
        b"HTTP/1.1",
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    request_line=st.sampled_from(
        [
            b"GET /chat HTTP/1.1",
            b"GET /chat HTTP/1.0",
            b"POST / HTTP/1.1",
            b"GET  / HTTP/1.1",
            b"GET /\x7f HTTP/1.1",
            b"G@T / HTTP/1.1",
            b"GET / HTTP/1.1 ",
            b"",
            b" GET / HTTP/1.1",
        ]
    ),
    lines=st.lists(st.lists(_head_piece, max_size=6).map(b"".join), max_size=6),
    with_host=st.booleans(),
    rest=st.sampled_from([b"", b"\x81\x80\x00\x00\x00\x00", b"\r\n", b"GET"]),
)
@example(request_line=b"GET /chat HTTP/1.1", lines=[b"Content-Length: 1,1"], with_host=True, rest=b"")
@example(request_line=b"GET /chat HTTP/1.1", lines=[b"Transfer-Encoding: CHUNKED"], with_host=True, rest=b"")
def test_plain_request_heads_read_as_h11_reads_them(
    *, request_line: bytes, lines: list[bytes], with_host: bool, rest: bytes
) -> None:
    # The reader of plain heads must either make exactly h11's Request and
    # stop where h11 stops, or leave the head to h11 (None); never accept
    # what h11 refuses, nor read a header otherwise.
    if with_host:
        lines = [b"Host: example.com", *lines]
    data = b"\r\n".join([request_line, *lines]) + b"\r\n\r\n" + rest
    plain = handshake_module._read_plain_request_head(data)
    buffer = handshake_module._ReceiveBuffer()
    buffer += data
    try:
        expected = handshake_module._read_request_head(buffer)
    except h11.ProtocolError:
        expected = None
    if plain is None:
        return
    request, head_end = plain
    assert expected is not None
    assert (request.method, request.target, request.http_version) == (
        expected.method,
        expected.target,
        expected.http_version,
    )
    assert request.headers.raw_items() == expected.headers.raw_items()
    assert list(request.headers) == list(expected.headers)
    assert data[head_end:] == bytes(buffer)


def test_plain_request_heads_take_the_plain_reader() -> None:
    # What a browser sends is plain: it must not fall back to h11's reader.
    assert handshake_module._read_plain_request_head(raw_request()) is not None


def test_whole_request_needs_no_h11_connection_until_the_answer() -> None:
    # The point of the path: a server that accepts a request read whole never
    # builds h11's connection (with a future h11 that moved its request reader,
    # this fails and the handshake takes the slower, equivalent path).
    ws = WSConnection(SERVER)
    ws.receive_data(raw_request() + b"\x81\x82\x37\xfa\x21\x3d\x7f\x93")
    assert ws.handshake._h11 is None
    [request] = ws.events()
    assert isinstance(request, Request)
    assert ws.send(AcceptConnection()).startswith(b"HTTP/1.1 101 ")
    assert list(ws.events()) == [TextMessage("Hi")]


def test_whole_request_then_rejection_is_written_by_h11() -> None:
    ws = WSConnection(SERVER)
    ws.receive_data(raw_request())
    list(ws.events())
    response, body = parse_response(
        ws.send(RejectConnection(status_code=403, headers=[(b"content-type", b"text/plain")], has_body=True))
        + ws.send(RejectData(b"go away"))
    )
    assert response.status_code == 403
    assert body == b"go away"
    assert ws.state is ConnectionState.CLOSED


def test_whole_request_then_transport_closed() -> None:
    ws = WSConnection(SERVER)
    ws.receive_data(raw_request())
    ws.receive_data(None)
    assert [type(event) for event in ws.events()] == [Request]
    assert ws.state is ConnectionState.CLOSED


# ======================================================================== initiate_upgrade_connection


def _parsed_by_another_server(data: bytes) -> tuple[Headers, bytes]:
    """Parse a request as an HTTP server in front of us would, returning headers and target."""
    other = h11.Connection(h11.SERVER)
    other.receive_data(data)
    event = other.next_event()
    assert isinstance(event, h11.Request)
    return list(event.headers), event.target


@pytest.mark.parametrize("path_type", [bytes, str])
def test_initiate_upgrade_connection_round_trip(path_type: type) -> None:
    client = WSConnection(CLIENT)
    headers, target = _parsed_by_another_server(
        client.send(Request(host="example.com", target="/ws?x=1", subprotocols=["chat"]))
    )
    server = WSConnection(SERVER)
    server.initiate_upgrade_connection(headers, target if path_type is bytes else target.decode("ascii"))
    [request] = server.events()
    assert isinstance(request, Request)
    assert request.host == "example.com"
    assert request.target == "/ws?x=1"
    assert request.subprotocols == ["chat"]
    assert server.state is ConnectionState.CONNECTING

    # The other server wrote nothing yet: our 101 is the whole response.
    client.receive_data(server.send(AcceptConnection(subprotocol="chat")))
    [accepted] = client.events()
    assert isinstance(accepted, AcceptConnection)
    assert accepted.subprotocol == "chat"
    assert client.state is server.state is ConnectionState.OPEN

    server.receive_data(client.send(TextMessage("ping?")))
    assert list(server.events()) == [TextMessage("ping?")]
    client.receive_data(server.send(BytesMessage(b"pong!")))
    assert list(client.events()) == [BytesMessage(b"pong!")]


def test_initiate_upgrade_connection_invalid_request() -> None:
    headers, target = _parsed_by_another_server(raw_request(replace={b"Sec-WebSocket-Version": b"8"}))
    server = WSConnection(SERVER)
    with pytest.raises(RemoteProtocolError) as info:
        server.initiate_upgrade_connection(headers, target)
    assert info.value.event_hint.status_code == 426
    response, _ = parse_response(server.send(info.value.event_hint))
    assert response.status_code == 426


def test_initiate_upgrade_connection_without_host_is_a_remote_error() -> None:
    # The headers came from the peer (through another server): a request the
    # RFC forbids is the peer's fault (section 4.2.1 item 2), so it must be a
    # RemoteProtocolError with a 400 hint, not h11's LocalProtocolError.
    headers = [(name.lower(), value) for name, value in BASE_HEADERS if name != b"Host"]
    server = WSConnection(SERVER)
    with pytest.raises(RemoteProtocolError) as info:
        server.initiate_upgrade_connection(headers, "/chat")
    assert info.value.event_hint.status_code == 400


def test_initiate_upgrade_connection_is_for_servers() -> None:
    with pytest.raises(LocalProtocolError):
        WSConnection(CLIENT).initiate_upgrade_connection(BASE_HEADERS, "/")


# ======================================================================== client: validation of the response


def _client() -> tuple[WSConnection, bytes]:
    """A client that sent its Request; returns it and the accept token it expects."""
    return _client_with(Request(host="server.example.com", target="/chat", subprotocols=["chat", "superchat"]))


def _client_with(request: Request) -> tuple[WSConnection, bytes]:
    client = WSConnection(CLIENT)
    data = client.send(request)
    [key] = re.findall(rb"\r\nSec-WebSocket-Key: ([^\r]*)\r\n", data)
    return client, generate_accept_token(key)


def _response(status: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes = b"") -> bytes:
    return b"HTTP/1.1 " + status + b"\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in headers) + b"\r\n" + body


def _good_101(accept: bytes, *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"), (b"Sec-WebSocket-Accept", accept), *extra]


def test_client_request_bytes() -> None:
    # Section 4.1: the client's handshake.
    client = WSConnection(CLIENT)
    data = client.send(
        Request(
            host="server.example.com",
            target="/chat?a=b",
            subprotocols=["chat", "superchat"],
            extra_headers=[(b"Origin", b"http://example.com")],
        )
    )
    other = h11.Connection(h11.SERVER)
    other.receive_data(data)
    request = other.next_event()
    assert isinstance(request, h11.Request)
    assert request.method == b"GET"
    assert request.http_version == b"1.1"
    assert request.target == b"/chat?a=b"
    headers = list(request.headers)
    assert header_values(headers, b"host") == [b"server.example.com"]
    assert [v.lower() for v in header_values(headers, b"upgrade")] == [b"websocket"]
    assert [v.lower() for v in header_values(headers, b"connection")] == [b"upgrade"]
    assert header_values(headers, b"sec-websocket-version") == [b"13"]
    assert header_values(headers, b"sec-websocket-protocol") == [b"chat, superchat"]
    assert header_values(headers, b"origin") == [b"http://example.com"]
    [key] = header_values(headers, b"sec-websocket-key")
    assert re.fullmatch(rb"[A-Za-z0-9+/]{22}==", key)
    assert client.state is ConnectionState.CONNECTING


@pytest.mark.parametrize(
    "extra",
    [
        [],
        [(b"Upgrade", b"WEBSOCKET")],
        [(b"Connection", b"keep-alive, upgrade")],
        [(b"Sec-WebSocket-Protocol", b"superchat")],
        [(b"X-Anything", b"ok")],
    ],
)
def test_client_accepts_valid_101(extra: list[tuple[bytes, bytes]]) -> None:
    client, accept = _client()
    headers = [h for h in _good_101(accept) if h[0] not in {name for name, _ in extra}] + extra
    client.receive_data(_response(b"101 Switching Protocols", headers))
    [event] = client.events()
    assert isinstance(event, AcceptConnection)
    assert event.subprotocol == ("superchat" if (b"Sec-WebSocket-Protocol", b"superchat") in extra else None)
    assert client.state is ConnectionState.OPEN
    assert client.connection is not None


def test_client_skips_interim_responses() -> None:
    # RFC 7231 section 6.2: 1xx responses other than the final one are interim.
    client, accept = _client()
    client.receive_data(_response(b"100 Continue", []) + _response(b"101 Switching Protocols", _good_101(accept)))
    assert [type(event) for event in client.events()] == [AcceptConnection]
    assert client.state is ConnectionState.OPEN


def test_client_interim_response_is_a_rejection_with_wsproto_compat(monkeypatch: pytest.MonkeyPatch) -> None:
    # wsproto took a 1xx other than 101 for the final answer, a rejection
    # without a body, and trio-websocket reports it so (ConnectionRejected with
    # status 100); compat.install() switches this on.
    monkeypatch.setattr(H11Handshake, "wsproto_interim_responses", True)
    client, accept = _client()
    client.receive_data(_response(b"100 Continue", [(b"X-Why", b"wait")]))
    assert list(client.events()) == [RejectConnection(status_code=100, headers=[(b"x-why", b"wait")], has_body=False)]
    assert client.state is ConnectionState.CLOSED
    # The handshake is over: a 101 that follows opens nothing.
    client.receive_data(_response(b"101 Switching Protocols", _good_101(accept)))
    assert list(client.events()) == []
    assert client.connection is None


def test_accept_extra_headers_are_the_servers_other_headers() -> None:
    # As in wsproto: the headers the client checked (Upgrade, Connection,
    # Sec-WebSocket-Accept) or turned into fields (subprotocol, extensions) are
    # left out; trio-websocket hands the rest to its users as the server's headers.
    client, accept = _client()
    headers = [(b"Date", b"today"), *_good_101(accept, (b"Sec-WebSocket-Protocol", b"chat")), (b"Server", b"test")]
    client.receive_data(_response(b"101 Switching Protocols", headers))
    [event] = client.events()
    assert isinstance(event, AcceptConnection)
    assert event.subprotocol == "chat"
    assert event.extra_headers == [(b"date", b"today"), (b"server", b"test")]


@pytest.mark.parametrize(
    "make_headers",
    [
        # Section 4.1, client requirements on the response, items 2-6.
        pytest.param(lambda accept: _good_101(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), id="wrong-accept"),
        pytest.param(lambda accept: _good_101(accept)[:2], id="missing-accept"),
        pytest.param(lambda accept: [*_good_101(accept), (b"Sec-WebSocket-Accept", accept)], id="repeated-accept"),
        pytest.param(lambda accept: _good_101(accept)[1:], id="missing-upgrade"),
        pytest.param(lambda accept: [(b"Upgrade", b"h2c"), *_good_101(accept)[1:]], id="upgrade-h2c"),
        pytest.param(lambda accept: [(b"Upgrade", b"websocket, h2c"), *_good_101(accept)[1:]], id="upgrade-list"),
        pytest.param(lambda accept: [_good_101(accept)[0], _good_101(accept)[2]], id="missing-connection"),
        pytest.param(
            lambda accept: [_good_101(accept)[0], (b"Connection", b"keep-alive"), _good_101(accept)[2]],
            id="connection-keepalive",
        ),
        pytest.param(
            lambda accept: _good_101(accept, (b"Sec-WebSocket-Protocol", b"other")), id="subprotocol-not-offered"
        ),
        pytest.param(
            lambda accept: _good_101(accept, (b"Sec-WebSocket-Protocol", b"chat, superchat")), id="two-subprotocols"
        ),
        pytest.param(
            lambda accept: _good_101(accept, (b"Sec-WebSocket-Extensions", b"permessage-deflate")),
            id="extension-not-offered",
        ),
    ],
)
def test_client_rejects_invalid_101(make_headers: object) -> None:
    client, accept = _client()
    with pytest.raises(RemoteProtocolError):
        client.receive_data(_response(b"101 Switching Protocols", make_headers(accept)))  # type: ignore[operator]
    assert list(client.events()) == []
    assert client.connection is None


def test_client_rejects_subprotocol_when_none_offered() -> None:
    client, accept = _client_with(Request(host="h", target="/"))
    with pytest.raises(RemoteProtocolError):
        client.receive_data(_response(b"101 Switching Protocols", _good_101(accept, (b"Sec-WebSocket-Protocol", b"x"))))


@pytest.mark.parametrize("status", [200, 301, 400, 403, 404, 426, 500, 503])
def test_client_non_101_is_a_rejection(status: int) -> None:
    # Section 4.1: "If the status code received from the server is not 101, the
    # client handles the response per HTTP procedures."
    client, _ = _client()
    client.receive_data(_response(b"%d Whatever" % status, [(b"Content-Length", b"5"), (b"X-Why", b"because")]))
    [rejection] = client.events()
    assert rejection == RejectConnection(
        status_code=status, headers=[(b"content-length", b"5"), (b"x-why", b"because")], has_body=True
    )
    assert client.state is ConnectionState.REJECTING
    client.receive_data(b"no!\r\n")
    assert list(client.events()) == [RejectData(b"no!\r\n", body_finished=False), RejectData(b"", body_finished=True)]
    assert client.state is ConnectionState.CLOSED


def test_client_rejected_with_body_until_eof() -> None:
    # RFC 7230 section 3.3.3 item 7: without Content-Length or chunked coding,
    # the body ends when the server closes the connection. The client must
    # still be told the body finished, as wsproto does.
    client, _ = _client()
    client.receive_data(_response(b"403 Forbidden", [], b"go away"))
    assert list(client.events()) == [
        RejectConnection(status_code=403, headers=[], has_body=True),
        RejectData(b"go away", body_finished=False),
    ]
    client.receive_data(None)
    assert list(client.events()) == [RejectData(b"", body_finished=True)]
    assert client.state is ConnectionState.CLOSED


def test_client_transport_closed_before_response() -> None:
    client, _ = _client()
    client.receive_data(b"HTTP/1.1 10")
    client.receive_data(None)
    assert client.state is ConnectionState.CLOSED
    assert list(client.events()) == []


def test_client_garbage_response() -> None:
    client, _ = _client()
    with pytest.raises(RemoteProtocolError):
        client.receive_data(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")


def test_client_request_extensions_must_be_extension_objects() -> None:
    client = WSConnection(CLIENT)
    with pytest.raises(LocalProtocolError):
        client.send(Request(host="h", target="/", extensions=["permessage-deflate"]))


# ======================================================================== extension negotiation


class ToyExtension(Extension):
    """Accepts only offers carrying ``mode=<wanted>``; records what it saw."""

    name = "x-toy"

    def __init__(self, wanted: str = "yes", *, reply: bool | str | None = None) -> None:
        self.wanted = wanted
        self.reply = reply
        self.accept_calls: list[str] = []
        self.accepted_offer: str | None = None
        self.finalized: str | None = None
        self.outbound_frames = 0

    def enabled(self) -> bool:
        # The base class returns False; a negotiated extension must say True.
        return self.accepted_offer is not None or self.finalized is not None

    def offer(self) -> bool | str:
        return f"mode={self.wanted}"

    def accept(self, offer: str) -> bool | str | None:
        self.accept_calls.append(offer)
        params = [part.strip() for part in offer.split(";")[1:]]
        if f"mode={self.wanted}" not in params:
            return None
        self.accepted_offer = offer
        return self.reply if self.reply is not None else f"mode={self.wanted}"

    def finalize(self, offer: str) -> None:
        self.finalized = offer

    def frame_outbound(
        self, proto: object, opcode: Opcode, rsv: RsvBits, data: bytes, fin: bool
    ) -> tuple[RsvBits, bytes]:
        self.outbound_frames += 1
        return rsv, data


class OtherExtension(ToyExtension):
    name = "x-other"


def test_server_extensions_handshake_first_acceptable_offer_wins() -> None:
    # RFC 6455 section 9.1: offers are listed in the client's order of
    # preference; the server accepts at most one per extension.
    toy = ToyExtension("yes")
    accepted: list[Extension] = []
    offers = ["x-toy; mode=no", "x-toy; mode=yes; first", "x-toy; mode=yes; second"]
    assert server_extensions_handshake(offers, [toy], accepted) == b"x-toy; mode=yes"
    assert accepted == [toy]
    assert toy.accepted_offer == "x-toy; mode=yes; first"
    assert toy.accept_calls == offers[:2]  # later offers of an accepted extension are not considered
    assert toy.enabled()


def test_server_extensions_handshake_nothing_acceptable() -> None:
    toy = ToyExtension("yes")
    accepted: list[Extension] = []
    assert server_extensions_handshake(["x-toy; mode=no", "x-unknown", "permessage-deflate"], [toy], accepted) is None
    assert accepted == []
    assert not toy.enabled()
    assert server_extensions_handshake([], [toy]) is None


def test_server_extensions_handshake_several_extensions_in_offer_order() -> None:
    toy, other = ToyExtension("a"), OtherExtension("b")
    accepted: list[Extension] = []
    value = server_extensions_handshake(["x-other; mode=b", "x-unknown", "x-toy; mode=a"], [toy, other], accepted)
    assert value == b"x-other; mode=b, x-toy; mode=a"
    assert accepted == [other, toy]


def test_server_extensions_handshake_true_means_no_parameters() -> None:
    toy = ToyExtension("yes", reply=True)
    assert server_extensions_handshake(["x-toy; mode=yes"], [toy]) == b"x-toy"


def test_server_extensions_handshake_tries_every_supported_instance() -> None:
    # Two configurations of one extension: the one that accepts the offer wins.
    picky, easy = ToyExtension("strict"), ToyExtension("yes")
    accepted: list[Extension] = []
    assert server_extensions_handshake(["x-toy; mode=yes"], [picky, easy], accepted) == b"x-toy; mode=yes"
    assert accepted == [easy]


def test_quoted_extension_parameters_are_not_split() -> None:
    # RFC 7230 section 3.2.6 and RFC 6455 section 9.1: a quoted-string
    # parameter value may contain commas; it is still one offer.
    _, request = receive_request(
        raw_request(add=[(b"Sec-WebSocket-Extensions", b'x-toy; list="a,b,c"; mode=yes, x-toy; mode=no')])
    )
    assert request.extensions == ['x-toy; list="a,b,c"; mode=yes', "x-toy; mode=no"]
    toy = ToyExtension("yes")
    assert server_extensions_handshake(request.extensions, [toy]) == b"x-toy; mode=yes"  # type: ignore[arg-type]
    assert toy.accepted_offer == 'x-toy; list="a,b,c"; mode=yes'


def test_extension_negotiated_end_to_end() -> None:
    client_toy, server_toy = ToyExtension("yes"), ToyExtension("yes")
    client = WSConnection(CLIENT)
    server = WSConnection(SERVER)
    server.receive_data(client.send(Request(host="h", target="/", extensions=[client_toy])))
    [request] = server.events()
    assert isinstance(request, Request)
    assert request.extensions == ["x-toy; mode=yes"]

    response = server.send(AcceptConnection(extensions=[server_toy, OtherExtension("yes")]))
    parsed, _ = parse_response(response)
    assert header_values(parsed.headers, b"sec-websocket-extensions") == [b"x-toy; mode=yes"]
    client.receive_data(response)
    [accepted] = client.events()
    assert isinstance(accepted, AcceptConnection)
    assert accepted.extensions == [client_toy]
    assert client_toy.finalized == "x-toy; mode=yes"

    # Only negotiated extensions take part in the connection.
    assert client.connection is not None and server.connection is not None
    assert client.connection.extensions == [client_toy]
    assert server.connection.extensions == [server_toy]
    server.receive_data(client.send(TextMessage("hi")))
    assert list(server.events()) == [TextMessage("hi")]
    assert client_toy.outbound_frames == 1


def test_extension_declined_end_to_end() -> None:
    client = WSConnection(CLIENT)
    server = WSConnection(SERVER)
    client_toy = ToyExtension("yes")
    server.receive_data(client.send(Request(host="h", target="/", extensions=[client_toy])))
    list(server.events())
    server_toy = ToyExtension("no")
    response = server.send(AcceptConnection(extensions=[server_toy]))
    assert b"sec-websocket-extensions" not in response.lower()
    client.receive_data(response)
    [accepted] = client.events()
    assert isinstance(accepted, AcceptConnection)
    assert accepted.extensions == []
    assert client.connection is not None and client.connection.extensions == []
    assert server.connection is not None and server.connection.extensions == []


def test_extension_with_nothing_to_offer_is_not_offered() -> None:
    class Shy(ToyExtension):
        def offer(self) -> bool | str:
            return False

    class Bare(OtherExtension):
        def offer(self) -> bool | str:
            return True  # offered without parameters

    data = WSConnection(CLIENT).send(Request(host="h", target="/", extensions=[Shy(), Bare()]))
    _, request = receive_request(data)
    assert request.extensions == ["x-other"]


def test_client_extensions_handshake() -> None:
    toy = ToyExtension("yes")
    assert client_extensions_handshake(["x-toy; mode=yes"], [toy]) == [toy]
    assert toy.finalized == "x-toy; mode=yes"
    assert client_extensions_handshake([], [ToyExtension()]) == []
    # Section 9.1: the server may only accept what the client offered, once.
    with pytest.raises(RemoteProtocolError):
        client_extensions_handshake(["x-other"], [ToyExtension()])
    with pytest.raises(RemoteProtocolError):
        client_extensions_handshake(["x-toy; mode=yes", "x-toy; mode=yes"], [ToyExtension()])


# ======================================================================== origin_allowed


def _with_origin(*origins: bytes) -> Request:
    return Request(host="h", target="/", extra_headers=[(b"host", b"h"), *((b"origin", o) for o in origins)])


@pytest.mark.parametrize(
    ("request_", "allowed", "expected"),
    [
        (_with_origin(b"https://example.com"), ["https://example.com"], True),
        (_with_origin(b"https://example.com"), ["https://other.example", "https://example.com"], True),
        # Scheme and host are case-insensitive (RFC 6454 section 4).
        (_with_origin(b"HTTPS://Example.COM"), ["https://example.com"], True),
        (_with_origin(b"https://example.com"), ["https://EXAMPLE.com"], True),
        # Scheme, host and port must all match (RFC 6455 section 10.2).
        (_with_origin(b"http://example.com"), ["https://example.com"], False),
        (_with_origin(b"https://example.com:8443"), ["https://example.com"], False),
        (_with_origin(b"https://evil.example.com"), ["https://example.com"], False),
        (_with_origin(b"https://example.com.evil"), ["https://example.com"], False),
        (_with_origin(b"null"), ["https://example.com"], False),
        (_with_origin(b"https://example.com"), [], False),
        # No Origin: a non-browser client, allowed only when None is listed.
        (_with_origin(), ["https://example.com"], False),
        (_with_origin(), ["https://example.com", None], True),
        (_with_origin(b"https://example.com"), [None], False),
        # Two Origin headers are never trusted.
        (_with_origin(b"https://example.com", b"https://example.com"), ["https://example.com"], False),
    ],
)
def test_origin_allowed(request_: Request, allowed: list[str | None], expected: bool) -> None:
    assert origin_allowed(request_, allowed) is expected


def test_origin_allowed_header_name_case_insensitive() -> None:
    request = Request(host="h", target="/", extra_headers=[(b"Origin", b"https://example.com")])
    assert origin_allowed(request, ["https://example.com"])


def test_origin_allowed_on_received_request() -> None:
    _, request = receive_request(raw_request(add=[(b"Origin", b"https://example.com")]))
    assert origin_allowed(request, ["https://example.com"])
    assert not origin_allowed(request, ["https://example.org"])


# ======================================================================== H11Handshake directly


def test_h11handshake_repr_and_state() -> None:
    handshake = H11Handshake(SERVER)
    assert handshake.state is ConnectionState.CONNECTING
    assert handshake.connection is None
    assert "client=False" in repr(handshake)
    assert "CONNECTING" in repr(handshake)


def test_server_accepting_non_ascii_subprotocol_does_not_crash() -> None:
    # Section 4.1 item 10 restricts subprotocol names to tokens of U+0021-U+007E,
    # but a client may send obs-text (RFC 7230 section 3.2.6). Either the server
    # refuses the request, or accepting what was offered works: never a
    # UnicodeEncodeError out of send().
    ws = WSConnection(SERVER)
    try:
        ws.receive_data(raw_request(add=[(b"Sec-WebSocket-Protocol", b"caf\xe9")]))
    except RemoteProtocolError:
        return
    [request] = ws.events()
    assert isinstance(request, Request)
    try:
        data = ws.send(AcceptConnection(subprotocol=request.subprotocols[0]))
    except LocalProtocolError:
        return
    assert data.startswith(b"HTTP/1.1 101 ")


# ======================================================================== interoperability with wsproto's handshake


@pytest.fixture
def real_wsproto() -> types.ModuleType:
    """The real wsproto (never wsproto_core through compat), or skip."""
    module = pytest.importorskip("wsproto")
    if module.__name__ != "wsproto":
        pytest.skip("wsproto resolves to wsproto_core here (compat installed)")
    importlib.import_module("wsproto.events")
    return module


def _real_wsproto_or_skip() -> types.ModuleType:
    # The real_wsproto fixture, for hypothesis tests (which take no
    # function-scoped fixtures).
    module = pytest.importorskip("wsproto")
    if module.__name__ != "wsproto":
        pytest.skip("wsproto resolves to wsproto_core here (compat installed)")
    importlib.import_module("wsproto.events")
    return module


_HEADER_VALUES = st.text("abcXYZ019-=;, ", min_size=1, max_size=8).map(lambda text: text.strip(" ,") or "v")
_REQUEST_EXTRAS = st.lists(
    st.tuples(
        st.sampled_from(
            [b"Origin", b"cookie", b"X-Custom", b"User-Agent", b"Sec-WebSocket-Protocol", b"sec-websocket-extensions"]
        ),
        _HEADER_VALUES.map(str.encode),
    ),
    max_size=6,
)
_RESPONSE_EXTRAS = st.lists(
    st.tuples(
        st.sampled_from([b"Date", b"server", b"Set-Cookie", b"X-Custom", b"Sec-WebSocket-Version"]),
        _HEADER_VALUES.map(str.encode),
    ),
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(request_extras=_REQUEST_EXTRAS, response_extras=_RESPONSE_EXTRAS, order=st.randoms(use_true_random=False))
def test_extra_headers_match_wsproto(request_extras: Headers, response_extras: Headers, order: random.Random) -> None:
    # The same request bytes and the same 101 (but for the accept token) give
    # the same extra_headers as wsproto, on both sides: applications such as
    # hypercorn and trio-websocket compare them whole or index them.
    wsproto = _real_wsproto_or_skip()
    ours_server = WSConnection(SERVER)
    theirs_server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    data = raw_request(add=request_extras)
    ours_server.receive_data(data)
    theirs_server.receive_data(data)
    [ours_request] = ours_server.events()
    [theirs_request] = theirs_server.events()
    assert isinstance(ours_request, Request)
    assert ours_request.extra_headers == theirs_request.extra_headers

    headers_101 = [*_good_101(b"ACCEPT"), *response_extras]
    order.shuffle(headers_101)
    received = []
    clients: list[tuple[Any, bytes]] = [_client(), _wsproto_client(wsproto)]
    for client, accept in clients:
        answer = [(name, accept if value == b"ACCEPT" else value) for name, value in headers_101]
        client.receive_data(_response(b"101 Switching Protocols", answer))
        [accepted] = client.events()
        received.append(accepted.extra_headers)
    assert received[0] == received[1]
    handshake_headers = _good_101(b"ACCEPT")
    assert received[0] == [
        (name.lower(), value) for name, value in headers_101 if (name, value) not in handshake_headers
    ]


def _wsproto_client(wsproto: types.ModuleType) -> tuple[Any, bytes]:
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    data = client.send(wsproto.events.Request(host="server.example.com", target="/chat"))
    [key] = re.findall(rb"\r\nSec-WebSocket-Key: ([^\r]*)\r\n", data)
    return client, generate_accept_token(key)


def test_interim_response_with_compat_as_wsproto_sees_it(
    real_wsproto: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(H11Handshake, "wsproto_interim_responses", True)
    ours, _ = _client()
    theirs, _ = _wsproto_client(real_wsproto)
    data = _response(b"103 Early Hints", [(b"Link", b"</style.css>; rel=preload")])
    seen = []
    clients: list[Any] = [ours, theirs]
    for client in clients:
        client.receive_data(data)
        [event] = client.events()
        seen.append((event.status_code, event.headers, event.has_body, client.state.name))
    assert seen[0] == seen[1] == (103, [(b"link", b"</style.css>; rel=preload")], False, "CLOSED")


def test_wsproto_client_against_our_server(real_wsproto: types.ModuleType) -> None:
    events = real_wsproto.events
    theirs = real_wsproto.WSConnection(real_wsproto.ConnectionType.CLIENT)
    ours = WSConnection(SERVER)
    ours.receive_data(
        theirs.send(events.Request(host="example.com", target="/ws", subprotocols=["a", "b"], extra_headers=[]))
    )
    [request] = ours.events()
    assert isinstance(request, Request)
    assert (request.host, request.target, request.subprotocols) == ("example.com", "/ws", ["a", "b"])
    theirs.receive_data(ours.send(AcceptConnection(subprotocol="b")) + ours.send(TextMessage("hello")))
    accepted, message = list(theirs.events())
    assert isinstance(accepted, events.AcceptConnection)
    assert accepted.subprotocol == "b"
    assert isinstance(message, events.TextMessage) and message.data == "hello"
    ours.receive_data(theirs.send(events.BytesMessage(data=b"back")))
    assert list(ours.events()) == [BytesMessage(b"back")]


def test_our_client_against_wsproto_server(real_wsproto: types.ModuleType) -> None:
    events = real_wsproto.events
    ours = WSConnection(CLIENT)
    theirs = real_wsproto.WSConnection(real_wsproto.ConnectionType.SERVER)
    theirs.receive_data(ours.send(Request(host="example.com", target="/ws", subprotocols=["a", "b"])))
    [request] = theirs.events()
    assert isinstance(request, events.Request)
    assert (request.host, request.target, request.subprotocols) == ("example.com", "/ws", ["a", "b"])
    ours.receive_data(theirs.send(events.AcceptConnection(subprotocol="a")) + theirs.send(events.Message(data="hi")))
    accepted, message = list(ours.events())
    assert isinstance(accepted, AcceptConnection) and accepted.subprotocol == "a"
    assert message == TextMessage("hi")


def test_wsproto_server_rejection_seen_by_our_client(real_wsproto: types.ModuleType) -> None:
    events = real_wsproto.events
    ours = WSConnection(CLIENT)
    theirs = real_wsproto.WSConnection(real_wsproto.ConnectionType.SERVER)
    theirs.receive_data(ours.send(Request(host="example.com", target="/ws")))
    list(theirs.events())
    data = theirs.send(events.RejectConnection(status_code=403, headers=[(b"content-length", b"6")], has_body=True))
    data += theirs.send(events.RejectData(data=b"denied"))
    ours.receive_data(data)
    received = list(ours.events())
    assert isinstance(received[0], RejectConnection) and received[0].status_code == 403
    assert b"".join(event.data for event in received[1:]) == b"denied"  # type: ignore[attr-defined]
    assert received[-1] == RejectData(b"", body_finished=True)
    assert ours.state is ConnectionState.CLOSED


def test_our_server_rejection_seen_by_wsproto_client(real_wsproto: types.ModuleType) -> None:
    events = real_wsproto.events
    theirs = real_wsproto.WSConnection(real_wsproto.ConnectionType.CLIENT)
    ours = WSConnection(SERVER)
    ours.receive_data(theirs.send(events.Request(host="example.com", target="/ws")))
    list(ours.events())
    theirs.receive_data(ours.send(RejectConnection(status_code=401, has_body=True)) + ours.send(RejectData(b"who?")))
    received = list(theirs.events())
    assert isinstance(received[0], events.RejectConnection) and received[0].status_code == 401
    assert b"".join(bytes(event.data) for event in received[1:]) == b"who?"
    assert received[-1].body_finished


def test_permessage_deflate_negotiated_with_wsproto(real_wsproto: types.ModuleType) -> None:
    # RFC 7692 section 5 negotiation through both handshakes, each side with its own implementation.
    ours_pmd = getattr(importlib.import_module("wsproto_core.extensions"), "PerMessageDeflate", None)
    if ours_pmd is None:
        pytest.skip("wsproto_core.extensions.PerMessageDeflate does not exist yet")
    events = real_wsproto.events
    theirs_pmd = importlib.import_module("wsproto.extensions").PerMessageDeflate
    ours = WSConnection(CLIENT)
    theirs = real_wsproto.WSConnection(real_wsproto.ConnectionType.SERVER)
    theirs.receive_data(ours.send(Request(host="h", target="/", extensions=[ours_pmd()])))
    [request] = theirs.events()
    assert [offer.split(";")[0] for offer in request.extensions] == ["permessage-deflate"]
    ours.receive_data(theirs.send(events.AcceptConnection(extensions=[theirs_pmd()])))
    [accepted] = ours.events()
    assert isinstance(accepted, AcceptConnection)
    assert [extension.name for extension in accepted.extensions] == ["permessage-deflate"]
    text = "compress me " * 100
    data = ours.send(TextMessage(text))
    assert data[0] & 0x40  # RSV1: the message is compressed (RFC 7692 section 6)
    theirs.receive_data(data)
    assert [event.data for event in theirs.events()] == [text]
    ours.receive_data(theirs.send(events.TextMessage(data=text)))
    assert "".join(event.data for event in ours.events()) == text  # type: ignore[attr-defined]
