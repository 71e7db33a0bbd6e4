"""Tests for wsproto_core.utilities: list headers, nonces, accept tokens; and a
property test that no header value can crash the server's handshake parser."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsproto_core import ConnectionType, WSConnection
from wsproto_core import errors as errors_module
from wsproto_core.errors import RemoteProtocolError
from wsproto_core.events import AcceptConnection, CloseConnection, RejectConnection, RejectData, Request
from wsproto_core.utilities import (
    ACCEPT_GUID,
    LocalProtocolError,
    ProtocolError,
    generate_accept_token,
    generate_nonce,
    normed_header_dict,
    split_comma_header,
    split_header_values,
)
from wsproto_core.utilities import RemoteProtocolError as ReexportedRemoteProtocolError

# --------------------------------------------------------------------------- split_comma_header
# RFC 7230 section 7 (the #rule): elements are separated by commas, optional
# whitespace around them is not part of the element, and "a recipient MUST
# parse and ignore a reasonable number of empty list elements". Section 3.2.6:
# a quoted-string may contain commas and backslash-escaped quotes.


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"", []),
        (b"   ", []),
        (b"websocket", ["websocket"]),
        (b"keep-alive, Upgrade", ["keep-alive", "Upgrade"]),
        (b"a,b,c", ["a", "b", "c"]),
        # Whitespace (SP and HTAB) around elements is stripped.
        (b"  a ,\tb\t,   c  ", ["a", "b", "c"]),
        # Empty elements are dropped (RFC 7230 section 7).
        (b"a,,b", ["a", "b"]),
        (b",a,", ["a"]),
        (b", ,  ,", []),
        (b"a, , b", ["a", "b"]),
        # A comma inside a quoted string does not split the element.
        (b'a; p="x,y", b', ['a; p="x,y"', "b"]),
        (b'"a,b", c', ['"a,b"', "c"]),
        (b'ext; p="1,2,3"; q="4,5"', ['ext; p="1,2,3"; q="4,5"']),
        # An escaped quote does not end the quoted string (section 3.2.6 quoted-pair).
        (b'a; p="x\\",y", b', ['a; p="x\\",y"', "b"]),
        # An escaped backslash before the closing quote does end it.
        (b'a; p="x\\\\", b', ['a; p="x\\\\"', "b"]),
        # Whitespace inside an element is kept.
        (b"permessage-deflate; client_max_window_bits", ["permessage-deflate; client_max_window_bits"]),
        # Empty elements are dropped when quoted strings are present too.
        (b'a; p="x", ,b,', ['a; p="x"', "b"]),
        (b',"q",,', ['"q"']),
        # An unterminated quoted string swallows the rest of the value: never crash.
        (b'a, "b, c', ["a", '"b, c']),
    ],
)
def test_split_comma_header(value: bytes, expected: list[str]) -> None:
    assert split_comma_header(value) == expected


def test_split_comma_header_accepts_str() -> None:
    assert split_comma_header("chat, superchat") == ["chat", "superchat"]


def test_split_comma_header_decodes_bytes_as_latin1() -> None:
    # Header values are octets; obs-text (0x80-0xFF) must not make decoding fail.
    assert split_comma_header(b"caf\xe9, b\xff") == ["caf\xe9", "b\xff"]


def test_split_header_values_joins_repeated_headers() -> None:
    # RFC 7230 section 3.2.2: repeated list headers are equivalent to one header
    # whose value is the comma-joined values, in order.
    assert split_header_values([b"a, b", b"c", b"", b'd; p="1,2"']) == ["a", "b", "c", 'd; p="1,2"']


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~", min_size=1)


@given(st.lists(_token, max_size=8), st.sampled_from([",", ", ", " ,", " , ", ",\t"]))
def test_split_comma_header_round_trips_token_lists(tokens: list[str], separator: str) -> None:
    assert split_comma_header(separator.join(tokens)) == tokens


@given(_token, st.text(alphabet=st.characters(codec="latin-1", exclude_characters='"\\\r\n'), max_size=20))
def test_split_comma_header_keeps_quoted_commas(name: str, inner: str) -> None:
    element = f'{name}; p="{inner},{inner}"'
    assert split_comma_header(f"{element}, other") == [element, "other"]


# --------------------------------------------------------------------------- other helpers


def test_normed_header_dict_lowercases_and_joins_repeats() -> None:
    headers = [(b"Host", b"example.com"), (b"X-A", b"1"), (b"x-a", b"2")]
    assert normed_header_dict(headers) == {b"host": b"example.com", b"x-a": b"1, 2"}


def test_generate_accept_token_rfc6455_example() -> None:
    # RFC 6455 section 1.3: for the key "dGhlIHNhbXBsZSBub25jZQ==" the server
    # answers "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
    assert ACCEPT_GUID == b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert generate_accept_token(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_generate_accept_token_shape() -> None:
    # Section 4.2.2 item 5.4: base64 of a 20-byte SHA-1 digest.
    token = generate_accept_token(generate_nonce())
    assert len(base64.b64decode(token, validate=True)) == 20


def test_generate_nonce_shape() -> None:
    # Section 4.1 item 7: "a randomly selected 16-byte value that has been
    # base64-encoded", i.e. 24 characters ending in "==".
    nonces = {generate_nonce() for _ in range(64)}
    assert len(nonces) == 64  # fresh every time
    for nonce in nonces:
        assert isinstance(nonce, bytes)
        assert re.fullmatch(rb"[A-Za-z0-9+/]{22}==", nonce)
        assert len(base64.b64decode(nonce, validate=True)) == 16


def test_utilities_reexport_the_error_classes() -> None:
    # wsproto applications catch ``wsproto.utilities.RemoteProtocolError``.
    assert ReexportedRemoteProtocolError is errors_module.RemoteProtocolError
    assert LocalProtocolError is errors_module.LocalProtocolError
    assert ProtocolError is errors_module.ProtocolError


# --------------------------------------------------------------------------- property: no header crashes the parser

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
VALID_HEADERS: dict[bytes, bytes] = {
    b"Host": b"example.com",
    b"Upgrade": b"websocket",
    b"Connection": b"Upgrade",
    b"Sec-WebSocket-Key": KEY,
    b"Sec-WebSocket-Version": b"13",
    b"Sec-WebSocket-Protocol": b"chat, superchat",
    b"Sec-WebSocket-Extensions": b"permessage-deflate; client_max_window_bits",
    b"Origin": b"https://example.com",
}

_header_value = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64).map(lambda text: text.encode("utf-8")),
    st.text(alphabet=st.characters(codec="latin-1"), max_size=64).map(lambda text: text.encode("latin-1")),
    # Near-misses of the valid values are the interesting ones.
    st.sampled_from(
        [b"", b" ", b",", b"websocket,", b"WebSocket", b"upgrade, upgrade", b"13, 13", b"013", b"8", KEY + b"=", b'"']
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    replaced=st.dictionaries(st.sampled_from(sorted(VALID_HEADERS)), _header_value, max_size=len(VALID_HEADERS)),
    duplicated=st.lists(st.tuples(st.sampled_from(sorted(VALID_HEADERS)), _header_value), max_size=3),
    dropped=st.sets(st.sampled_from(sorted(VALID_HEADERS))),
    target=st.one_of(st.just(b"/"), st.binary(max_size=20)),
    split=st.integers(min_value=0, max_value=4096),
)
def test_random_handshake_header_values_never_crash_the_server(
    replaced: dict[bytes, bytes],
    duplicated: list[tuple[bytes, bytes]],
    dropped: set[bytes],
    target: bytes,
    split: int,
) -> None:
    # RFC 6455 section 4.2.1: a server that finds the request malformed "MUST
    # stop processing the client's handshake and return an HTTP response with an
    # appropriate error code". For the library that means: any input yields a
    # Request event or a RemoteProtocolError whose event_hint is a rejection
    # that can be sent; never another exception.
    headers = [(name, replaced.get(name, value)) for name, value in VALID_HEADERS.items() if name not in dropped]
    headers += duplicated
    data = b"GET " + target + b" HTTP/1.1\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in headers) + b"\r\n"
    # Two non-empty reads, cut anywhere (an empty read is tested in test_handshake.py).
    cut = 1 + split % (len(data) - 1)
    ws = WSConnection(ConnectionType.SERVER)
    try:
        ws.receive_data(data[:cut])
        ws.receive_data(data[cut:])
    except RemoteProtocolError as exc:
        assert isinstance(exc.event_hint, RejectConnection)
        response = ws.send(exc.event_hint)
        assert re.match(rb"HTTP/1\.1 [45]\d\d ", response)
        return
    events = list(ws.events())
    assert len(events) <= 1
    assert all(isinstance(event, Request) for event in events)


RESPONSE_HEADERS = [
    b"Upgrade",
    b"Connection",
    b"Sec-WebSocket-Accept",
    b"Sec-WebSocket-Protocol",
    b"Sec-WebSocket-Extensions",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=st.sampled_from([b"101 Switching Protocols", b"200 OK", b"400 Bad Request", b"101", b"1O1 x"]),
    replaced=st.dictionaries(st.sampled_from(RESPONSE_HEADERS), _header_value, max_size=len(RESPONSE_HEADERS)),
    duplicated=st.lists(st.tuples(st.sampled_from(RESPONSE_HEADERS), _header_value), max_size=3),
    dropped=st.sets(st.sampled_from(RESPONSE_HEADERS)),
)
def test_random_response_header_values_never_crash_the_client(
    status: bytes,
    replaced: dict[bytes, bytes],
    duplicated: list[tuple[bytes, bytes]],
    dropped: set[bytes],
) -> None:
    # Section 4.1: a client that finds the response invalid "MUST _Fail the
    # WebSocket Connection_": a RemoteProtocolError, never another exception.
    client = WSConnection(ConnectionType.CLIENT)
    request = client.send(Request(host="example.com", target="/", subprotocols=["chat"]))
    [key] = re.findall(rb"Sec-WebSocket-Key: ([^\r]*)\r\n", request)
    valid = {
        b"Upgrade": b"websocket",
        b"Connection": b"Upgrade",
        b"Sec-WebSocket-Accept": generate_accept_token(key),
        b"Sec-WebSocket-Protocol": b"chat",
        b"Sec-WebSocket-Extensions": b"",
    }
    headers = [(name, replaced.get(name, value)) for name, value in valid.items() if name not in dropped]
    headers += duplicated
    data = b"HTTP/1.1 " + status + b"\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in headers) + b"\r\n"
    try:
        client.receive_data(data)
        events = list(client.events())
        client.receive_data(None)
        events += list(client.events())
    except RemoteProtocolError:
        return
    assert all(
        isinstance(event, AcceptConnection | RejectConnection | RejectData | CloseConnection) for event in events
    )
