"""Tests of permessage-deflate (RFC 7692): negotiation, framing, limits, memory and interop.

Connections are joined in memory; negotiation is done by calling ``offer()``,
``accept()`` and ``finalize()`` directly, as a handshake would, except in the
one test that goes through :class:`WSConnection`. Interop partners are wsproto's
``Connection`` with its ``PerMessageDeflate`` and websockets' sans-I/O
``Protocol`` with its ``PerMessageDeflate``.
"""

from __future__ import annotations

import gc
import itertools
import os
import random
import sys
import tracemalloc
import zlib
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsproto_core import WSConnection
from wsproto_core.connection import Connection, ConnectionType
from wsproto_core.errors import LocalProtocolError, RemoteProtocolError
from wsproto_core.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    Request,
    TextMessage,
)
from wsproto_core.extensions import Extension, PerMessageDeflate
from wsproto_core.frames import Opcode, RsvBits, build_frame_header
from wsproto_core.handshake import server_extensions_handshake
from wsproto_core.masking import apply_mask
from wsproto_core.permessage_deflate import DeflateParameters

CLIENT = ConnectionType.CLIENT
SERVER = ConnectionType.SERVER
TAIL = b"\x00\x00\xff\xff"
NAME = "permessage-deflate"
OP_CONT, OP_TEXT, OP_BINARY, OP_PING = 0x0, 0x1, 0x2, 0x9
RSV1 = 0x40

# ------------------------------------------------------------------ helpers


def element(parameters: str | bool | None) -> str:
    """A Sec-WebSocket-Extensions element from the parameters an extension returned."""
    return f"{NAME}; {parameters}" if parameters else NAME


def negotiate(client_ext: PerMessageDeflate, server_ext: PerMessageDeflate) -> str | None:
    """Run the handshake's part: offer, accept, finalize. Returns the response parameters."""
    response = server_ext.accept(element(client_ext.offer()))
    if response is not None:
        client_ext.finalize(element(response))
    return response


def make_pair(
    client_ext: Extension | None = None, server_ext: Extension | None = None, **options: Any
) -> tuple[Connection, Connection]:
    client = Connection(CLIENT, [client_ext] if client_ext else [], **options)
    server = Connection(SERVER, [server_ext] if server_ext else [], **options)
    return client, server


def deflated_pair(
    client_config: dict[str, Any] | None = None, server_config: dict[str, Any] | None = None, **options: Any
) -> tuple[Connection, Connection, PerMessageDeflate, PerMessageDeflate]:
    client_ext = PerMessageDeflate(**(client_config or {}))
    server_ext = PerMessageDeflate(**(server_config or {}))
    assert negotiate(client_ext, server_ext) is not None
    client, server = make_pair(client_ext, server_ext, **options)
    return client, server, client_ext, server_ext


def feed(conn: Connection, data: bytes, sizes: Iterable[int] = ()) -> list[Event]:
    """Feed ``data`` in pieces of the given sizes (the rest at once), collecting events."""
    events: list[Event] = []
    position = 0
    for size in sizes:
        if position >= len(data):
            break
        conn.receive_data(data[position : position + size])
        position += size
        events.extend(conn.events())
    conn.receive_data(data[position:])
    events.extend(conn.events())
    return events


def assemble(events: Iterable[Event]) -> list[Any]:
    """Join message pieces into whole ``str``/``bytes`` messages; keep other events."""
    result: list[Any] = []
    parts: list[Any] = []
    for event in events:
        if isinstance(event, Message):
            parts.append(event.data)
            if event.message_finished:
                result.append("".join(parts) if isinstance(event, TextMessage) else b"".join(parts))
                parts = []
        else:
            result.append(event)
    assert not parts, "a message was left unfinished"
    return result


def send_message(conn: Connection, data: str | bytes, fragments: int = 1) -> bytes:
    """Send ``data`` as one message split into ``fragments`` frames."""
    cls = TextMessage if isinstance(data, str) else BytesMessage
    step = max(1, -(-len(data) // fragments))
    pieces = [data[i : i + step] for i in range(0, len(data), step)] or [data[:0]]
    wire = b""
    for index, piece in enumerate(pieces):
        wire += conn.send(cls(piece, message_finished=index == len(pieces) - 1))  # type: ignore[arg-type]
    return wire


def split_frames(wire: bytes) -> list[tuple[int, bytes]]:
    """Parse serialized frames into ``(first header byte, unmasked payload)``."""
    frames = []
    position = 0
    while position < len(wire):
        first, second = wire[position], wire[position + 1]
        length = second & 0x7F
        position += 2
        if length == 126:
            length = int.from_bytes(wire[position : position + 2], "big")
            position += 2
        elif length == 127:
            length = int.from_bytes(wire[position : position + 8], "big")
            position += 8
        mask = None
        if second & 0x80:
            mask = wire[position : position + 4]
            position += 4
        payload = wire[position : position + length]
        position += length
        frames.append((first, apply_mask(payload, mask) if mask else payload))
    return frames


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, masked: bool = True) -> bytes:
    """A raw frame as a client (masked) or a server (unmasked) would send it."""
    mask = os.urandom(4) if masked else None
    header = build_frame_header(opcode, len(payload), fin, rsv, mask)
    return header + (apply_mask(payload, mask) if mask else payload)


def deflate(data: bytes, wbits: int = 15) -> bytes:
    """Compress one whole message as RFC 7692 section 7.2.1 says (tail removed)."""
    compressor = zlib.compressobj(-1, zlib.DEFLATED, -wbits)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def inflate(payload: bytes, wbits: int = 15) -> bytes:
    return zlib.decompressobj(-wbits).decompress(payload + TAIL)


class HookDeflate(PerMessageDeflate):
    """The same extension without its whole-message methods: Connection then goes through its hooks."""

    __slots__ = ()
    encode_message = Extension.encode_message  # type: ignore[assignment]
    decode_message = Extension.decode_message  # type: ignore[assignment]


class FastOnlyDeflate(PerMessageDeflate):
    """A subclass, as applications write them: whole messages must not touch the per-frame hooks."""

    __slots__ = ()

    def frame_inbound_header(self, *args: object) -> NoReturn:
        raise AssertionError("per-frame hook called")

    frame_inbound_payload = frame_outbound = frame_inbound_header  # type: ignore[assignment]


def close_code(events: Sequence[Event]) -> int | None:
    closes = [event for event in events if isinstance(event, CloseConnection)]
    return int(closes[-1].code) if closes else None


# ------------------------------------------------------- construction, offer


def test_defaults_and_name() -> None:
    ext = PerMessageDeflate()
    assert ext.name == "permessage-deflate"
    assert isinstance(ext, Extension)
    assert not ext.enabled()
    assert ext.negotiated is None
    assert (ext.client_no_context_takeover, ext.client_max_window_bits) == (False, None)
    assert (ext.server_no_context_takeover, ext.server_max_window_bits) == (False, None)
    assert "negotiated=None" in repr(ext)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"client_max_window_bits": 7},
        {"client_max_window_bits": 16},
        {"server_max_window_bits": "10"},
        {"server_max_window_bits": True},
        {"compression_threshold": -1},
        {"mem_level": 0},
        {"mem_level": 10},
        {"compress_level": 10},
        {"compress_level": -2},
    ],
)
def test_constructor_rejects_invalid_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        PerMessageDeflate(**kwargs)


def test_positional_arguments_follow_wsproto() -> None:
    ext = PerMessageDeflate(True, 10, True, 11)
    assert (ext.client_no_context_takeover, ext.client_max_window_bits) == (True, 10)
    assert (ext.server_no_context_takeover, ext.server_max_window_bits) == (True, 11)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "client_max_window_bits"),
        ({"client_max_window_bits": 11}, "client_max_window_bits=11"),
        # We cannot compress with 8 bits, so we never promise to.
        ({"client_max_window_bits": 8}, "client_max_window_bits=9"),
        (
            {
                "client_no_context_takeover": True,
                "server_no_context_takeover": True,
                "server_max_window_bits": 8,
                "client_max_window_bits": 12,
            },
            "client_no_context_takeover; server_no_context_takeover; server_max_window_bits=8; "
            "client_max_window_bits=12",
        ),
    ],
)
def test_offer(kwargs: dict[str, Any], expected: str) -> None:
    ext = PerMessageDeflate(**kwargs)
    assert ext.offer() == expected
    assert ext.offer() == expected
    assert not ext.enabled()


# ------------------------------------------------------ server negotiation

F, T = False, True

# (configuration, offered parameters, response parameters, negotiated as
# (server_no_context_takeover, client_no_context_takeover, server bits, client bits))
SERVER_TABLE = [
    ({}, "", "", (F, F, 15, 15)),
    ({}, "client_max_window_bits", "", (F, F, 15, 15)),
    # server_no_context_takeover (RFC 7692 section 7.1.1.1)
    ({}, "server_no_context_takeover", "server_no_context_takeover", (T, F, 15, 15)),
    ({"server_no_context_takeover": T}, "", "server_no_context_takeover", (T, F, 15, 15)),
    ({"server_no_context_takeover": T}, "server_no_context_takeover", "server_no_context_takeover", (T, F, 15, 15)),
    # client_no_context_takeover (7.1.1.2)
    ({}, "client_no_context_takeover", "client_no_context_takeover", (F, T, 15, 15)),
    ({"client_no_context_takeover": T}, "", "client_no_context_takeover", (F, T, 15, 15)),
    # server_max_window_bits (7.1.2.1)
    ({}, "server_max_window_bits=10", "server_max_window_bits=10", (F, F, 10, 15)),
    ({"server_max_window_bits": 12}, "", "server_max_window_bits=12", (F, F, 12, 15)),
    ({"server_max_window_bits": 12}, "server_max_window_bits=10", "server_max_window_bits=10", (F, F, 10, 15)),
    ({"server_max_window_bits": 10}, "server_max_window_bits=12", "server_max_window_bits=10", (F, F, 10, 15)),
    ({"server_max_window_bits": 8}, "", "server_max_window_bits=9", (F, F, 9, 15)),
    ({"server_max_window_bits": 8}, "server_max_window_bits=11", "server_max_window_bits=9", (F, F, 9, 15)),
    ({}, "server_max_window_bits=8", None, None),
    ({"server_max_window_bits": 8}, "server_max_window_bits=8", None, None),
    # client_max_window_bits (7.1.2.2)
    ({"client_max_window_bits": 10}, "", "", (F, F, 15, 15)),
    ({"client_max_window_bits": 10}, "client_max_window_bits", "client_max_window_bits=10", (F, F, 15, 10)),
    ({}, "client_max_window_bits=11", "client_max_window_bits=11", (F, F, 15, 11)),
    ({"client_max_window_bits": 10}, "client_max_window_bits=12", "client_max_window_bits=10", (F, F, 15, 10)),
    ({"client_max_window_bits": 12}, "client_max_window_bits=10", "client_max_window_bits=10", (F, F, 15, 10)),
    ({"client_max_window_bits": 8}, "client_max_window_bits", "client_max_window_bits=8", (F, F, 15, 8)),
    ({}, "client_max_window_bits=8", "client_max_window_bits=8", (F, F, 15, 8)),
    # Syntax variants: quoted-string values (RFC 7692 section 7), spacing.
    ({}, 'server_max_window_bits="10"', "server_max_window_bits=10", (F, F, 10, 15)),
    ({}, " server_max_window_bits = 10 ;client_max_window_bits ", "server_max_window_bits=10", (F, F, 10, 15)),
    # Everything at once.
    (
        {"server_no_context_takeover": T, "server_max_window_bits": 12, "client_max_window_bits": 11},
        "client_no_context_takeover; server_max_window_bits=13; client_max_window_bits",
        "server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11",
        (T, T, 12, 11),
    ),
]


@pytest.mark.parametrize(("config", "offer", "response", "negotiated"), SERVER_TABLE)
def test_server_negotiation_table(
    config: dict[str, Any], offer: str, response: str | None, negotiated: tuple[bool, bool, int, int] | None
) -> None:
    ext = PerMessageDeflate(**config)
    assert ext.accept(element(offer)) == response
    if negotiated is None:
        assert not ext.enabled()
        assert ext.negotiated is None
        assert ext.decline_reason and "8" in ext.decline_reason
    else:
        assert ext.enabled()
        assert ext.negotiated == DeflateParameters(*negotiated)
        assert ext.decline_reason is None


@pytest.mark.parametrize(
    ("offer", "reason"),
    [
        ("x_unknown", "unknown parameter"),
        ("x_unknown=1", "unknown parameter"),
        ("server_no_context_takeover=1", "takes no value"),
        ('client_no_context_takeover="true"', "takes no value"),
        ("client_no_context_takeover=", "takes no value"),
        ("server_max_window_bits", "needs a value"),
        ("server_max_window_bits=7", "from 8 to 15"),
        ("server_max_window_bits=16", "from 8 to 15"),
        ("server_max_window_bits=010", "from 8 to 15"),
        ("server_max_window_bits=+9", "from 8 to 15"),
        ("server_max_window_bits=abc", "from 8 to 15"),
        ("server_max_window_bits=", "from 8 to 15"),
        ('server_max_window_bits="10', "from 8 to 15"),
        ("client_max_window_bits=0x0f", "from 8 to 15"),
        ("server_no_context_takeover; server_no_context_takeover", "duplicate"),
        ("client_max_window_bits; client_max_window_bits=10", "duplicate"),
        ("server_max_window_bits=10; server_max_window_bits=10", "duplicate"),
        ("client_no_context_takeover;", "empty parameter"),
    ],
)
def test_server_declines_malformed_offers(offer: str, reason: str) -> None:
    ext = PerMessageDeflate()
    assert ext.accept(element(offer)) is None
    assert not ext.enabled()
    assert ext.decline_reason is not None
    assert reason in ext.decline_reason


def test_server_declines_another_extension_name() -> None:
    ext = PerMessageDeflate()
    assert ext.accept("x-webkit-deflate-frame") is None
    assert ext.decline_reason is not None
    assert "not a permessage-deflate element" in ext.decline_reason


def test_multiple_offers_first_acceptable_wins_through_the_handshake_helper() -> None:
    ext = PerMessageDeflate()
    accepted: list[Extension] = []
    offers = [
        "permessage-deflate; server_max_window_bits=8",  # declined: we cannot compress with 8
        "permessage-deflate; server_max_window_bits=10; client_max_window_bits",
        "permessage-deflate",
    ]
    header = server_extensions_handshake(offers, [ext], accepted)
    assert header == b"permessage-deflate; server_max_window_bits=10"
    assert accepted == [ext]
    assert ext.negotiated == DeflateParameters(False, False, 10, 15)


# ------------------------------------------------------ client negotiation

# (configuration, response parameters, negotiated or an error message part)
CLIENT_TABLE: list[tuple[dict[str, Any], str, tuple[bool, bool, int, int] | str]] = [
    ({}, "", (F, F, 15, 15)),
    # server_no_context_takeover
    ({}, "server_no_context_takeover", (T, F, 15, 15)),
    ({"server_no_context_takeover": T}, "server_no_context_takeover", (T, F, 15, 15)),
    ({"server_no_context_takeover": T}, "", "server_no_context_takeover was requested"),
    # client_no_context_takeover
    ({}, "client_no_context_takeover", (F, T, 15, 15)),
    ({"client_no_context_takeover": T}, "", (F, T, 15, 15)),
    ({"client_no_context_takeover": T}, "client_no_context_takeover", (F, T, 15, 15)),
    # server_max_window_bits
    ({}, "server_max_window_bits=10", (F, F, 10, 15)),
    ({"server_max_window_bits": 10}, "server_max_window_bits=10", (F, F, 10, 15)),
    ({"server_max_window_bits": 10}, "server_max_window_bits=9", (F, F, 9, 15)),
    ({"server_max_window_bits": 8}, "server_max_window_bits=8", (F, F, 8, 15)),
    ({"server_max_window_bits": 10}, "", "server_max_window_bits=10 was requested"),
    ({"server_max_window_bits": 10}, "server_max_window_bits=11", "exceeds the 10 requested"),
    # client_max_window_bits (always offered)
    ({}, "client_max_window_bits=10", (F, F, 15, 10)),
    ({}, "client_max_window_bits=8", (F, F, 15, 8)),
    ({"client_max_window_bits": 11}, "", (F, F, 15, 11)),
    ({"client_max_window_bits": 11}, "client_max_window_bits=10", (F, F, 15, 10)),
    ({"client_max_window_bits": 8}, "", (F, F, 15, 9)),
    ({"client_max_window_bits": 11}, "client_max_window_bits=12", "exceeds the 11 offered"),
    ({}, "client_max_window_bits", "needs a value"),
    # Malformed responses.
    ({}, "x_unknown", "unknown parameter"),
    ({}, "server_no_context_takeover=1", "takes no value"),
    ({}, "server_max_window_bits=16", "from 8 to 15"),
    ({}, "server_max_window_bits=7", "from 8 to 15"),
    ({}, "client_no_context_takeover; client_no_context_takeover", "duplicate"),
    ({}, "server_max_window_bits", "needs a value"),
]


@pytest.mark.parametrize(("config", "response", "expected"), CLIENT_TABLE)
def test_client_negotiation_table(
    config: dict[str, Any], response: str, expected: tuple[bool, bool, int, int] | str
) -> None:
    ext = PerMessageDeflate(**config)
    ext.offer()
    if isinstance(expected, str):
        with pytest.raises(RemoteProtocolError, match=expected) as info:
            ext.finalize(element(response))
        assert info.value.event_hint is not None
        assert not ext.enabled()
    else:
        ext.finalize(element(response))
        assert ext.enabled()
        assert ext.negotiated == DeflateParameters(*expected)


def test_client_rejects_another_extension_name() -> None:
    with pytest.raises(RemoteProtocolError, match="not a permessage-deflate element"):
        PerMessageDeflate().finalize("x-other; server_no_context_takeover")


def test_negotiation_leaves_the_configuration_alone() -> None:
    config = {
        "client_no_context_takeover": False,
        "client_max_window_bits": 12,
        "server_no_context_takeover": False,
        "server_max_window_bits": 13,
    }
    ext = PerMessageDeflate(**config)
    first = ext.accept(element("server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10"))
    assert first == "server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10"
    assert {name: getattr(ext, name) for name in config} == config
    # A second connection negotiating with the same object starts from the
    # configuration, not from what the first one agreed (wsproto's flaw).
    assert ext.accept(element("client_max_window_bits")) == "server_max_window_bits=13; client_max_window_bits=12"
    assert ext.negotiated == DeflateParameters(False, False, 13, 12)
    # A declined offer leaves the object disabled, not with stale parameters.
    assert ext.accept(element("bogus")) is None
    assert not ext.enabled()
    # Client side likewise.
    ext.finalize(element("server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9"))
    assert ext.negotiated == DeflateParameters(True, False, 9, 9)
    assert {name: getattr(ext, name) for name in config} == config
    assert ext.offer() == "server_max_window_bits=13; client_max_window_bits=12"


def test_renegotiation_resets_compression_state() -> None:
    client, server, _, server_ext = deflated_pair()
    feed(server, send_message(client, b"abc" * 100))
    assert server_ext._decompressor is not None
    assert server_ext.accept(element("")) == ""
    assert server_ext._decompressor is None
    assert server_ext._compressor is None


# ---------------------------------------------------------------- round trips

window_bits = st.one_of(st.none(), st.integers(8, 15))
configs = st.fixed_dictionaries(
    {
        "client_no_context_takeover": st.booleans(),
        "client_max_window_bits": window_bits,
        "server_no_context_takeover": st.booleans(),
        "server_max_window_bits": window_bits,
    }
)
payloads = st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=800),
    st.builds(lambda unit, count: unit * count, st.binary(min_size=1, max_size=12), st.integers(1, 4000)),
    st.builds(lambda unit, count: unit * count, st.text(min_size=1, max_size=6), st.integers(1, 1000)),
)
messages = st.lists(st.tuples(payloads, st.integers(1, 4)), min_size=1, max_size=6)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    client_config=configs,
    server_config=configs,
    threshold=st.sampled_from([0, 0, 64]),
    to_server=messages,
    to_client=messages,
    chunks=st.lists(st.integers(1, 700), max_size=30),
)
def test_round_trip_any_parameters_payloads_and_chunking(
    *,
    client_config: dict[str, Any],
    server_config: dict[str, Any],
    threshold: int,
    to_server: list[tuple[str | bytes, int]],
    to_client: list[tuple[str | bytes, int]],
    chunks: list[int],
) -> None:
    client_ext = PerMessageDeflate(**client_config, compression_threshold=threshold)
    server_ext = PerMessageDeflate(**server_config)
    response = negotiate(client_ext, server_ext)
    # Only an offer demanding server_max_window_bits=8 is declined.
    assert (response is None) == (client_config["server_max_window_bits"] == 8)
    if response is None:
        client, server = make_pair()
    else:
        client, server = make_pair(client_ext, server_ext)
    for sender, receiver, sent in ((client, server, to_server), (server, client, to_client)):
        wire = b"".join(send_message(sender, data, fragments) for data, fragments in sent)
        assert assemble(feed(receiver, wire, chunks)) == [data for data, _ in sent]


@pytest.mark.parametrize(
    "server_config",
    [
        dict(zip(("client_no_context_takeover", "client_max_window_bits", "server_no_context_takeover",
                  "server_max_window_bits"), values, strict=True))
        for values in itertools.product([F, T], [None, 8, 12], [F, T], [None, 8, 12])
    ],
)  # fmt: skip
def test_round_trip_every_parameter_combination(server_config: dict[str, Any]) -> None:
    texts = ["hello " * 50, "", "héllo wörld " * 20]
    binaries = [bytes(range(256)) * 8, os.urandom(300), b"x"]
    for values in itertools.product([F, T], [None, 8, 12], [F, T], [None, 9, 12]):
        client_config = dict(zip(server_config, values, strict=True))
        client_ext, server_ext = PerMessageDeflate(**client_config), PerMessageDeflate(**server_config)
        assert negotiate(client_ext, server_ext) is not None
        client, server = make_pair(client_ext, server_ext)
        wire = b"".join(send_message(client, data, 1 + index % 3) for index, data in enumerate(texts + binaries))
        assert assemble(feed(server, wire, [7, 100, 3])) == texts + binaries
        wire = b"".join(send_message(server, data, 1 + index % 2) for index, data in enumerate(binaries + texts))
        assert assemble(feed(client, wire)) == binaries + texts


def test_messages_are_actually_compressed_with_rsv1_on_the_first_frame_only() -> None:
    client, server, _, _ = deflated_pair()
    data = b"compress me please " * 200
    wire = send_message(client, data)
    ((first, payload),) = split_frames(wire)
    assert first == 0x80 | RSV1 | OP_BINARY
    assert len(payload) < len(data) // 10
    assert inflate(payload) == data
    assert assemble(feed(server, wire)) == [data]


def test_rfc_examples_are_what_we_send() -> None:
    # RFC 7692 section 7.2.3.1 and 7.2.3.2: "Hello" twice, sharing the window.
    _, server, _, _ = deflated_pair()
    assert server.send(TextMessage("Hello")) == bytes.fromhex("c107f248cdc9c90700")
    assert server.send(TextMessage("Hello")) == bytes.fromhex("c105f200110000")
    # With server_no_context_takeover every message starts afresh.
    _, server, _, _ = deflated_pair(server_config={"server_no_context_takeover": True})
    assert server.send(TextMessage("Hello")) == bytes.fromhex("c107f248cdc9c90700")
    first, second = server.send(TextMessage("Hello " * 10)), server.send(TextMessage("Hello " * 10))
    assert first == second
    assert first[0] == 0x80 | RSV1 | OP_TEXT


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("c107f248cdc9c90700", ["Hello"]),  # 7.2.3.1, one frame
        ("4103f248cd" + "8004c9c90700", ["Hello"]),  # 7.2.3.1, fragmented
        ("c107f248cdc9c90700" + "c105f200110000", ["Hello", "Hello"]),  # 7.2.3.2, shared window
        ("c10b000500faff48656c6c6f00", ["Hello"]),  # 7.2.3.3, stored block
        ("c108f348cdc9c9070000", ["Hello"]),  # 7.2.3.4, BFINAL block
        ("c108f348cdc9c9070000" + "c107f248cdc9c90700", ["Hello", "Hello"]),  # a message after BFINAL
        ("c10df248050000" + "00ffffcac9c90700", ["Hello"]),  # 7.2.3.5, two blocks
        ("4107f348cdc9c90700" + "800100", ["Hello"]),  # a fragment ending with a BFINAL block
        ("c10100", [""]),  # empty message
        ("c100", [""]),  # empty message with nothing at all
        ("8105" + "48656c6c6f", ["Hello"]),  # an uncompressed message still passes
    ],
)
def test_rfc_examples_decode(wire: str, expected: list[str]) -> None:
    client, _, _, _ = deflated_pair()
    assert assemble(feed(client, bytes.fromhex(wire.replace(" ", "")))) == expected


# ----------------------------------------------------------------- fragments


def test_fragmented_compressed_message_flushes_each_fragment_and_strips_the_tail_once() -> None:
    client, server, _, _ = deflated_pair()
    pieces = [b"alpha " * 100, b"beta " * 100, b"", b"gamma " * 100]
    frames = []
    for index, piece in enumerate(pieces):
        wire = client.send(BytesMessage(piece, message_finished=index == len(pieces) - 1))
        frames.extend(split_frames(wire))
        # Each fragment is usable on arrival: the receiver gets its data at once.
        received = assemble_pieces(feed(server, wire))
        assert received == piece
    assert [first for first, _ in frames] == [RSV1 | OP_BINARY, OP_CONT, OP_CONT, 0x80 | OP_CONT]
    # Sync-flushed fragments end with the empty stored block; the last one
    # has it removed (RFC 7692 section 7.2.1).
    assert all(payload.endswith(TAIL) for _, payload in frames[:-1])
    assert not frames[-1][1].endswith(TAIL)
    assert inflate(b"".join(payload for _, payload in frames)) == b"".join(pieces)


def assemble_pieces(events: Iterable[Event]) -> bytes:
    return b"".join(event.data for event in events if isinstance(event, BytesMessage))


def test_control_frames_between_fragments_of_a_compressed_message() -> None:
    _, server, _, _ = deflated_pair()
    text = "interleaved " * 50
    compressed = deflate(text.encode())
    wire = (
        frame(OP_TEXT, compressed[:10], fin=False, rsv=RSV1)
        + frame(OP_PING, b"ping")
        + frame(OP_CONT, compressed[10:20], fin=False)
        + frame(0xA, b"pong")
        + frame(OP_CONT, compressed[20:])
    )
    events = feed(server, wire, [1] * 40)
    assert [type(event) for event in events if not isinstance(event, TextMessage)] == [Ping, Pong]
    assert assemble([event for event in events if isinstance(event, TextMessage)]) == [text]


def test_large_fragmented_text_message_round_trip() -> None:
    client, server, _, _ = deflated_pair(client_config={"client_no_context_takeover": True})
    text = "".join(random.Random(5).choice("abcdéfgh€😀 ") for _ in range(200_000))
    wire = send_message(client, text, fragments=7)
    assert assemble(feed(server, wire, [1000] * 50)) == [text]
    assert assemble(feed(server, send_message(client, text))) == [text]


# ------------------------------------------------------------------- RSV1 rules


@pytest.mark.parametrize(("opcode", "rsv"), [(0x9, RSV1), (0xA, RSV1), (0x8, RSV1), (0x1, 0x20), (0x2, 0x10)])
def test_rsv_bits_on_control_frames_or_unowned_bits_fail_with_1002(opcode: int, rsv: int) -> None:
    _, server, _, _ = deflated_pair()
    payload = b"\x03\xe8" if opcode == 0x8 else b"x"
    events = feed(server, frame(opcode, payload, rsv=rsv))
    assert close_code(events) == 1002
    assert server.failure is not None


def test_rsv1_on_a_continuation_frame_fails_with_1002() -> None:
    _, server, _, server_ext = deflated_pair()
    compressed = deflate(b"hello world" * 10)
    wire = frame(OP_BINARY, compressed[:5], fin=False, rsv=RSV1) + frame(OP_CONT, compressed[5:], rsv=RSV1)
    events = feed(server, wire)
    assert close_code(events) == 1002
    assert server_ext._decompressor is None  # released on failure


def test_rsv1_on_a_continuation_of_an_uncompressed_message_fails_with_1002() -> None:
    _, server, _, _ = deflated_pair()
    events = feed(server, frame(OP_BINARY, b"abc", fin=False) + frame(OP_CONT, b"def", rsv=RSV1))
    assert close_code(events) == 1002


def test_rsv1_without_negotiation_fails_with_1002() -> None:
    ext = PerMessageDeflate()
    assert ext.accept(element("server_max_window_bits=8")) is None
    server = Connection(SERVER, [ext])  # not enabled: filtered out
    assert server.extensions == []
    assert close_code(feed(server, frame(OP_TEXT, deflate(b"hi"), rsv=RSV1))) == 1002


def test_invalid_deflate_data_fails_with_1007() -> None:
    _, server, _, server_ext = deflated_pair()
    events = feed(server, frame(OP_BINARY, b"\xff\xff\xff\xff\xff", rsv=RSV1))
    assert close_code(events) == 1007
    assert server_ext._decompressor is None


def test_compressed_text_with_invalid_utf8_fails_with_1007() -> None:
    _, server, _, _ = deflated_pair()
    assert close_code(feed(server, frame(OP_TEXT, deflate(b"ok \xff"), rsv=RSV1))) == 1007


# ------------------------------------------------------------ size limits


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """64 KiB of DEFLATE that inflates to 64 MiB of zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    zeros = bytes(1 << 20)
    data = b"".join(compressor.compress(zeros) for _ in range(64)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4]


@pytest.mark.parametrize("chunk", [None, 4096])
def test_decompression_bomb_fails_with_1009_within_bounded_memory(bomb: bytes, chunk: int | None) -> None:
    assert len(bomb) < 70_000
    limit = 1 << 20
    _, server, _, server_ext = deflated_pair(max_message_size=limit)
    wire = frame(OP_BINARY, bomb, rsv=RSV1)
    gc.collect()
    tracemalloc.start()
    try:
        events = feed(server, wire, [chunk] * (len(wire) // chunk + 1) if chunk else ())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert close_code(events) == 1009
    assert server.failure is not None
    assert server.failure.code == 1009
    delivered = sum(len(event.data) for event in events if isinstance(event, BytesMessage))
    assert delivered <= limit
    # The limit, one inflate step and the input: far from the 64 MiB the
    # frame would inflate to (about 1.3 MiB when measured).
    assert peak < limit * 3 // 2, peak
    assert server_ext._decompressor is None


def test_bomb_spread_over_fragments_counts_the_whole_message(bomb: bytes) -> None:
    limit = 1 << 20
    _, server, _, _ = deflated_pair(max_message_size=limit)
    step = 1000
    wire = frame(OP_BINARY, bomb[:step], fin=False, rsv=RSV1)
    for start in range(step, len(bomb), step):
        wire += frame(OP_CONT, bomb[start : start + step], fin=start + step >= len(bomb))
    events = feed(server, wire, [8192] * 20)
    assert close_code(events) == 1009
    assert sum(len(event.data) for event in events if isinstance(event, BytesMessage)) <= limit


@pytest.mark.parametrize(("size", "ok"), [(10_000, True), (10_001, False)])
def test_limit_is_exact(size: int, ok: bool) -> None:
    client, server, _, _ = deflated_pair(max_message_size=10_000)
    data = b"a" * size
    # Fragmented, so the limit has to add up the pieces of the message.
    events = feed(server, send_message(client, data, fragments=3))
    if ok:
        assert assemble(events) == [data]
        # The budget is per message.
        assert assemble(feed(server, send_message(client, data))) == [data]
    else:
        assert close_code(events) == 1009


def test_no_limit_means_no_limit() -> None:
    client, server, _, _ = deflated_pair(max_message_size=None)
    data = b"z" * (3 << 20)
    assert assemble(feed(server, send_message(client, data))) == [data]


# --------------------------------------------------------- context takeover


def payloads_of(wire: bytes) -> list[bytes]:
    return [payload for _, payload in split_frames(wire)]


@pytest.mark.parametrize("reset", [False, True])
def test_context_takeover_per_direction(reset: bool) -> None:
    client, server, client_ext, server_ext = deflated_pair(server_config={"server_no_context_takeover": reset})
    data = b"The quick brown fox jumps over the lazy dog. " * 4
    first, second = payloads_of(server.send(BytesMessage(data))), payloads_of(server.send(BytesMessage(data)))
    if reset:
        # Every message stands alone: a fresh decompressor inflates it.
        assert first == second
        assert inflate(second[0]) == data
        assert server_ext._compressor is None
    else:
        assert len(second[0]) < len(first[0]) // 4
        assert server_ext._compressor is not None
    # The other direction keeps its context either way.
    client.send(BytesMessage(data))
    assert len(payloads_of(client.send(BytesMessage(data)))[0]) < len(first[0]) // 4
    assert client_ext._compressor is not None


def test_client_no_context_takeover_lets_the_server_drop_its_decompressor() -> None:
    client, server, client_ext, server_ext = deflated_pair(client_config={"client_no_context_takeover": True})
    assert server_ext.negotiated is not None
    assert server_ext.negotiated.client_no_context_takeover
    data = b"repeat after me " * 30
    for _ in range(3):
        assert assemble(feed(server, send_message(client, data))) == [data]
        assert server_ext._decompressor is None
        assert client_ext._compressor is None


def test_incompressible_message_is_still_sent_compressed() -> None:
    # Some peers (the Autobahn testsuite's runner) mishandle an uncompressed
    # message on a deflate connection, so every message is compressed unless
    # the application opts out; an uncompressed one from the peer is accepted.
    client, server, _, _ = deflated_pair(server_config={"server_no_context_takeover": True})
    noise = os.urandom(200)
    wire = server.send(BytesMessage(noise))
    ((first, _payload),) = split_frames(wire)
    assert first == 0x80 | RSV1 | OP_BINARY
    assert assemble(feed(client, wire)) == [noise]
    assert assemble(feed(client, frame(OP_BINARY, noise, masked=False))) == [noise]


# ------------------------------------------------------- per-message choices


def test_send_next_uncompressed_is_one_shot() -> None:
    client, server, _, server_ext = deflated_pair()
    data = b"already compressed, pretend " * 20
    server_ext.send_next_uncompressed()
    wire = server.send(BytesMessage(data)) + server.send(BytesMessage(data))
    (first, payload), (second, _) = split_frames(wire)
    assert (first, payload) == (0x80 | OP_BINARY, data)
    assert second == 0x80 | RSV1 | OP_BINARY
    assert assemble(feed(client, wire)) == [data, data]


def test_send_next_uncompressed_waits_for_the_next_message() -> None:
    client, server, _, server_ext = deflated_pair()
    wire = server.send(TextMessage("part one " * 10, message_finished=False))
    server_ext.send_next_uncompressed()
    wire += server.send(TextMessage("part two " * 10))
    wire += server.send(TextMessage("separate " * 10))
    firsts = [first for first, _ in split_frames(wire)]
    assert firsts == [RSV1 | OP_TEXT, 0x80 | OP_CONT, 0x80 | OP_TEXT]
    assert assemble(feed(client, wire)) == ["part one " * 10 + "part two " * 10, "separate " * 10]


def test_compression_threshold() -> None:
    client_ext = PerMessageDeflate(compression_threshold=100)
    server_ext = PerMessageDeflate()
    negotiate(client_ext, server_ext)
    client, server = make_pair(client_ext, server_ext)
    small, large = b"s" * 99, b"L" * 100
    wire = client.send(BytesMessage(small)) + client.send(BytesMessage(large))
    # A fragmented message is compressed even if its first piece is small.
    wire += client.send(BytesMessage(b"f", message_finished=False)) + client.send(BytesMessage(b"g" * 500))
    firsts = [first for first, _ in split_frames(wire)]
    assert firsts == [0x80 | OP_BINARY, 0x80 | RSV1 | OP_BINARY, RSV1 | OP_BINARY, 0x80 | OP_CONT]
    assert assemble(feed(server, wire)) == [small, large, b"f" + b"g" * 500]


def test_compression_threshold_can_change_on_a_live_connection() -> None:
    client, _, client_ext, _ = deflated_pair()
    assert client.send(BytesMessage(b"x" * 50))[0] & RSV1
    client_ext.compression_threshold = 51
    assert client_ext.compression_threshold == 51
    assert not client.send(BytesMessage(b"x" * 50))[0] & RSV1
    assert client.send(BytesMessage(b"x" * 51))[0] & RSV1
    with pytest.raises(ValueError, match="compression_threshold"):
        client_ext.compression_threshold = -1
    # send_next_uncompressed() still wins over the threshold, for one message.
    client_ext.compression_threshold = 0
    client_ext.send_next_uncompressed()
    assert not client.send(BytesMessage(b"x" * 500))[0] & RSV1
    assert client.send(BytesMessage(b"x" * 500))[0] & RSV1


@pytest.mark.parametrize("mem_level", [1, 9])
@pytest.mark.parametrize("compress_level", [0, 1, 9])
def test_mem_level_and_compress_level(mem_level: int, compress_level: int) -> None:
    config = {"mem_level": mem_level, "compress_level": compress_level}
    client, server, _, _ = deflated_pair(config, config)
    data = b"level test " * 300
    wire = send_message(client, data)
    assert assemble(feed(server, wire)) == [data]
    if compress_level:
        assert len(wire) < len(data) // 5


# --------------------------------------------------------------- window bits


def test_client_told_to_use_8_bits_sends_uncompressed_and_still_inflates() -> None:
    client_ext = PerMessageDeflate()
    server_ext = PerMessageDeflate(client_max_window_bits=8)
    assert negotiate(client_ext, server_ext) == "client_max_window_bits=8"
    assert client_ext.negotiated == DeflateParameters(False, False, 15, 8)
    client, server = make_pair(client_ext, server_ext)
    data = b"eight bits " * 100
    ((first, payload),) = split_frames(client.send(BytesMessage(data)))
    assert first == 0x80 | OP_BINARY
    assert payload == data
    assert client_ext._compressor is None
    # The server compresses as usual towards the client.
    wire = server.send(BytesMessage(data))
    assert split_frames(wire)[0][0] & RSV1
    assert assemble(feed(client, wire)) == [data]


def test_server_inflates_8_bit_windows_compressed_by_an_old_zlib_with_9() -> None:
    # Before zlib 1.2.9 a peer asking deflate for 8 bits got 9: inflating with
    # at least 9 bits accepts what such a peer sends.
    server_ext = PerMessageDeflate()
    assert server_ext.accept(element("client_max_window_bits=8")) == "client_max_window_bits=8"
    assert server_ext.negotiated is not None
    assert server_ext.negotiated.client_max_window_bits == 8
    server = Connection(SERVER, [server_ext])
    data = bytes(range(256)) * 2 + b"0123456789" * 60 + bytes(range(256)) * 2
    assert assemble(feed(server, frame(OP_BINARY, deflate(data, wbits=9), rsv=RSV1))) == [data]


@pytest.mark.parametrize("bits", [9, 10, 12, 15])
def test_our_compressor_respects_the_negotiated_window(bits: int) -> None:
    # A window of 2**bits means back-references reach at most that far: a
    # decompressor with exactly that window inflates what we send.
    _, server, _, _ = deflated_pair(server_config={"server_max_window_bits": bits})
    block = os.urandom(1 << (bits - 1))
    data = block + os.urandom(1 << bits) + block
    ((_, payload),) = split_frames(server.send(BytesMessage(data)))
    assert inflate(payload, wbits=bits) == data


# ------------------------------------------------------- laziness and memory


def test_zlib_objects_are_created_lazily_and_released_on_close() -> None:
    client, server, client_ext, server_ext = deflated_pair()
    for ext in (client_ext, server_ext):
        assert ext._compressor is None
        assert ext._decompressor is None
    wire = send_message(client, "hi " * 100)
    assert client_ext._compressor is not None
    assert client_ext._decompressor is None
    feed(server, wire)
    assert server_ext._decompressor is not None
    assert server_ext._compressor is None
    feed(client, server.send(TextMessage("back " * 100)))
    assert client_ext._decompressor is not None
    # The client closes; the server sees the Close and drops everything.
    events = feed(server, client.send(CloseConnection(code=1000)))
    assert close_code(events) == 1000
    assert server_ext._compressor is None
    assert server_ext._decompressor is None
    # The client sees the server's answering Close and does the same.
    feed(client, server.send(CloseConnection(code=1000)))
    assert client_ext._compressor is None
    assert client_ext._decompressor is None


def test_release_keeps_outbound_messages_decodable() -> None:
    client, server, _, server_ext = deflated_pair()
    data = b"before and after release " * 20
    wire = server.send(BytesMessage(data))
    server_ext.release()
    wire += server.send(BytesMessage(data, message_finished=False))
    server_ext.release()  # even in the middle of a message
    wire += server.send(BytesMessage(data))
    assert assemble(feed(client, wire)) == [data, data + data]


def test_release_during_a_received_message_starts_a_new_decompressor() -> None:
    client, server, _, server_ext = deflated_pair()
    # Increasing bytes share no 3-byte sequence, so the second fragment has
    # no back-reference into the first and a new decompressor can take it.
    first, second = bytes(range(100)), bytes(range(100, 200))
    events = feed(server, client.send(BytesMessage(first, message_finished=False)))
    server_ext.release()
    events += feed(server, client.send(BytesMessage(second)))
    assert assemble(events) == [first + second]


def test_release_then_a_message_referring_to_earlier_data_fails_with_1007() -> None:
    client, server, _, server_ext = deflated_pair()
    data = b"context takeover needs the window " * 3
    feed(server, client.send(BytesMessage(data)))
    server_ext.release()
    assert close_code(feed(server, client.send(BytesMessage(data)))) == 1007


@pytest.mark.parametrize("cls", [PerMessageDeflate, HookDeflate], ids=["fast path", "hooks"])
def test_hooks_are_inert_when_not_negotiated(cls: type[PerMessageDeflate]) -> None:
    client_ext, server_ext = cls(), cls()
    assert negotiate(client_ext, server_ext) is not None
    client, server = make_pair(client_ext, server_ext)
    # A connection still holding the object after it declined a new offer
    # (sharing one object between connections is not supported) neither
    # compresses nor accepts compressed frames.
    assert server_ext.accept(element("bogus")) is None
    ((first, _),) = split_frames(server.send(BytesMessage(b"x" * 500)))
    assert first == 0x80 | OP_BINARY
    assert close_code(feed(server, client.send(BytesMessage(b"y" * 500)))) == 1002


def test_control_frames_are_never_compressed() -> None:
    _, server, _, server_ext = deflated_pair()
    rsv = RsvBits(False, False, False)
    assert server_ext.frame_outbound(server, Opcode.PING, rsv, b"ping", True) == (rsv, b"ping")
    assert server.send(Ping(b"p" * 100)) == b"\x89\x64" + b"p" * 100


def measure(build: Any) -> tuple[int, Any]:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = build()
        return tracemalloc.get_traced_memory()[0] - before, result
    finally:
        tracemalloc.stop()


def negotiated_extension() -> PerMessageDeflate:
    ext = PerMessageDeflate()
    ext.accept(element("client_max_window_bits"))
    return ext


def test_idle_negotiated_extension_is_small() -> None:
    size, extensions = measure(lambda: [negotiated_extension() for _ in range(100)])
    assert all(ext.enabled() for ext in extensions)
    assert size / 100 < 600, size / 100
    assert sys.getsizeof(extensions[0]) < 300


def test_memory_while_active_and_after_close() -> None:
    data = b"memory " * 5000
    gc.collect()
    tracemalloc.start()
    try:
        client, server, client_ext, server_ext = deflated_pair()
        idle = tracemalloc.get_traced_memory()[0]
        feed(server, send_message(client, data))
        feed(client, server.send(BytesMessage(data)))
        gc.collect()
        active = tracemalloc.get_traced_memory()[0]
        feed(server, client.send(CloseConnection(code=1000)))
        feed(client, server.send(CloseConnection(code=1000)))
        gc.collect()
        closed = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # A compressor (window 15, mem_level 5: about 150 KiB) and a decompressor
    # (window 15: about 40 KiB) on each side.
    assert 300_000 < active - idle < 500_000, active - idle
    assert closed - idle < 20_000, closed - idle
    for ext in (client_ext, server_ext):
        assert ext._compressor is None
        assert ext._decompressor is None


# ------------------------------------------------------- the real handshake


def test_through_the_http_handshake() -> None:
    client = WSConnection(CLIENT)
    server = WSConnection(SERVER)
    client_ext, server_ext = PerMessageDeflate(), PerMessageDeflate()
    server.receive_data(client.send(Request(host="example.com", target="/", extensions=[client_ext])))
    (request,) = list(server.events())
    assert isinstance(request, Request)
    assert request.extensions == ["permessage-deflate; client_max_window_bits"]
    client.receive_data(server.send(AcceptConnection(extensions=[server_ext])))
    (accepted,) = list(client.events())
    assert isinstance(accepted, AcceptConnection)
    assert accepted.extensions == [client_ext]
    assert client_ext.enabled()
    assert server_ext.enabled()
    data = "through the handshake " * 50
    wire = client.send(TextMessage(data))
    assert len(wire) < len(data) // 5
    server.receive_data(wire)
    assert assemble(server.events()) == [data]
    client.receive_data(server.send(BytesMessage(data.encode())))
    assert assemble(client.events()) == [data.encode()]


# ----------------------------------------------------------------- interop

wsproto_connection = pytest.importorskip("wsproto.connection")
wsproto_events = pytest.importorskip("wsproto.events")
wsproto_extensions = pytest.importorskip("wsproto.extensions")
ws_protocol = pytest.importorskip("websockets.protocol")
ws_frames = pytest.importorskip("websockets.frames")
ws_deflate = pytest.importorskip("websockets.extensions.permessage_deflate")

INTEROP_MESSAGES: list[str | bytes] = [
    "Hello",
    "Hello",
    b"\x00\x01\x02" * 1000,
    "ünïcödé " * 400,
    "",
    os.urandom(2000),
    b"tail" * 5,
]


def real_wsproto() -> None:
    if wsproto_connection.Connection is Connection:
        pytest.skip("wsproto is aliased to wsproto_core (compat.install() is active)")


def wsproto_send(conn: Any, data: str | bytes, fragments: int) -> bytes:
    cls = wsproto_events.TextMessage if isinstance(data, str) else wsproto_events.BytesMessage
    step = max(1, -(-len(data) // fragments))
    pieces = [data[i : i + step] for i in range(0, len(data), step)] or [data[:0]]
    return b"".join(
        conn.send(cls(data=piece, message_finished=index == len(pieces) - 1)) for index, piece in enumerate(pieces)
    )


def wsproto_receive(conn: Any, wire: bytes) -> list[str | bytes]:
    conn.receive_data(wire)
    result: list[str | bytes] = []
    parts: list[Any] = []
    for event in conn.events():
        assert isinstance(event, wsproto_events.Message), event
        parts.append(event.data)
        if event.message_finished:
            result.append("".join(parts) if isinstance(event, wsproto_events.TextMessage) else b"".join(parts))
            parts = []
    return result


@pytest.mark.parametrize(
    "theirs_config",
    [
        {},
        {"client_no_context_takeover": True, "server_no_context_takeover": True},
        {"client_max_window_bits": 10, "server_max_window_bits": 11},
    ],
)
def test_interop_wsproto_client_with_our_server(theirs_config: dict[str, Any]) -> None:
    real_wsproto()
    theirs = wsproto_extensions.PerMessageDeflate(**theirs_config)
    ours = PerMessageDeflate(server_max_window_bits=12)
    response = ours.accept(element(theirs.offer()))
    assert response is not None
    theirs.finalize(element(response))
    their_client = wsproto_connection.Connection(wsproto_connection.ConnectionType.CLIENT, extensions=[theirs])
    our_server = Connection(SERVER, [ours])
    for fragments in (1, 3):
        wire = b"".join(wsproto_send(their_client, data, fragments) for data in INTEROP_MESSAGES)
        assert assemble(feed(our_server, wire, [5, 50, 500])) == INTEROP_MESSAGES
        wire = b"".join(send_message(our_server, data, fragments) for data in INTEROP_MESSAGES)
        assert wsproto_receive(their_client, wire) == INTEROP_MESSAGES


@pytest.mark.parametrize(
    "our_config",
    [
        {},
        {"client_no_context_takeover": True, "server_no_context_takeover": True},
        {"client_max_window_bits": 9, "server_max_window_bits": 10},
    ],
)
def test_interop_our_client_with_wsproto_server(our_config: dict[str, Any]) -> None:
    real_wsproto()
    ours = PerMessageDeflate(**our_config)
    theirs = wsproto_extensions.PerMessageDeflate()
    response = theirs.accept(element(ours.offer()))
    assert response is not None
    ours.finalize(element(response))
    their_server = wsproto_connection.Connection(wsproto_connection.ConnectionType.SERVER, extensions=[theirs])
    our_client = Connection(CLIENT, [ours])
    for fragments in (1, 4):
        wire = b"".join(send_message(our_client, data, fragments) for data in INTEROP_MESSAGES)
        assert wsproto_receive(their_server, wire) == INTEROP_MESSAGES
        wire = b"".join(wsproto_send(their_server, data, fragments) for data in INTEROP_MESSAGES)
        assert assemble(feed(our_client, wire, [3, 30, 300])) == INTEROP_MESSAGES


def websockets_peer(side: Any, negotiated: DeflateParameters, *, we_are_client: bool) -> Any:
    """A websockets Protocol whose PerMessageDeflate matches what we negotiated."""
    if we_are_client:  # they are the server: local = server, remote = client
        local_reset, local_bits = negotiated.server_no_context_takeover, negotiated.server_max_window_bits
        remote_reset, remote_bits = negotiated.client_no_context_takeover, negotiated.client_max_window_bits
    else:
        local_reset, local_bits = negotiated.client_no_context_takeover, negotiated.client_max_window_bits
        remote_reset, remote_bits = negotiated.server_no_context_takeover, negotiated.server_max_window_bits
    protocol = ws_protocol.Protocol(side, max_size=None)
    protocol.extensions = [ws_deflate.PerMessageDeflate(remote_reset, local_reset, remote_bits, local_bits)]
    return protocol


def websockets_send(protocol: Any, data: str | bytes, fragments: int) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    step = max(1, -(-len(raw) // fragments))
    pieces = [raw[i : i + step] for i in range(0, len(raw), step)] or [b""]
    for index, piece in enumerate(pieces):
        fin = index == len(pieces) - 1
        if index:
            protocol.send_continuation(piece, fin=fin)
        elif isinstance(data, str):
            protocol.send_text(piece, fin=fin)
        else:
            protocol.send_binary(piece, fin=fin)
    return b"".join(protocol.data_to_send())


def websockets_receive(protocol: Any, wire: bytes) -> list[str | bytes]:
    protocol.receive_data(wire)
    result: list[str | bytes] = []
    parts: list[bytes] = []
    text = False
    for received in protocol.events_received():
        if received.opcode is not ws_frames.Opcode.CONT:
            text = received.opcode is ws_frames.Opcode.TEXT
        parts.append(bytes(received.data))
        if received.fin:
            joined = b"".join(parts)
            result.append(joined.decode() if text else joined)
            parts = []
    return result


@pytest.mark.parametrize(
    "offer",
    [
        "client_max_window_bits",
        "server_no_context_takeover; client_no_context_takeover",
        "server_max_window_bits=10; client_max_window_bits=9",
    ],
)
def test_interop_websockets_client_with_our_server(offer: str) -> None:
    ours = PerMessageDeflate(server_max_window_bits=12)
    assert ours.accept(element(offer)) is not None
    assert ours.negotiated is not None
    their_client = websockets_peer(ws_protocol.Side.CLIENT, ours.negotiated, we_are_client=False)
    our_server = Connection(SERVER, [ours])
    for fragments in (1, 3):
        wire = b"".join(websockets_send(their_client, data, fragments) for data in INTEROP_MESSAGES)
        assert assemble(feed(our_server, wire, [11, 111])) == INTEROP_MESSAGES
        wire = b"".join(send_message(our_server, data, fragments) for data in INTEROP_MESSAGES)
        assert websockets_receive(their_client, wire) == INTEROP_MESSAGES


@pytest.mark.parametrize(
    "response",
    [
        "",
        "server_no_context_takeover; client_no_context_takeover",
        "server_max_window_bits=9; client_max_window_bits=10",
    ],
)
def test_interop_our_client_with_websockets_server(response: str) -> None:
    ours = PerMessageDeflate()
    ours.finalize(element(response))
    assert ours.negotiated is not None
    their_server = websockets_peer(ws_protocol.Side.SERVER, ours.negotiated, we_are_client=True)
    our_client = Connection(CLIENT, [ours])
    for fragments in (1, 5):
        wire = b"".join(send_message(our_client, data, fragments) for data in INTEROP_MESSAGES)
        assert websockets_receive(their_server, wire) == INTEROP_MESSAGES
        wire = b"".join(websockets_send(their_server, data, fragments) for data in INTEROP_MESSAGES)
        assert assemble(feed(our_client, wire, [2, 20, 200])) == INTEROP_MESSAGES


def websockets_params(parameters: str) -> list[tuple[str, str | None]]:
    pairs = (part.strip().partition("=") for part in parameters.split(";") if part.strip())
    return [(name, value or None) for name, _, value in pairs]


def test_negotiation_interop_with_websockets_factories() -> None:
    # Their client factory's offer against our accept(), then our offer
    # against their server factory, with their own parameter parsing.
    factory = ws_deflate.ClientPerMessageDeflateFactory(server_max_window_bits=11, client_no_context_takeover=True)
    offer = "; ".join(name if value is None else f"{name}={value}" for name, value in factory.get_request_params())
    ours = PerMessageDeflate()
    response = ours.accept(element(offer))
    assert response is not None
    theirs = factory.process_response_params(websockets_params(response), [])
    assert (theirs.local_no_context_takeover, theirs.remote_max_window_bits) == (True, 11)

    server_factory = ws_deflate.ServerPerMessageDeflateFactory(server_max_window_bits=10, client_max_window_bits=12)
    ours = PerMessageDeflate(server_no_context_takeover=True)
    response_params, _ = server_factory.process_request_params(websockets_params(ours.offer()), [])
    ours.finalize(element("; ".join(n if v is None else f"{n}={v}" for n, v in response_params)))
    assert ours.negotiated == DeflateParameters(True, False, 10, 12)


def test_wsproto_style_hooks_inflate_like_the_combined_one() -> None:
    # wsproto's frame layer calls frame_inbound_payload_data per piece and
    # frame_inbound_complete at the end of each frame; the connection here uses
    # frame_inbound_payload. Both ways must give the same message.
    client_ext, server_ext = PerMessageDeflate(), PerMessageDeflate()
    assert negotiate(client_ext, server_ext) is not None
    sender = Connection(ConnectionType.SERVER, [server_ext])
    text = "wsproto-style hooks " * 40
    wire = sender.send(TextMessage(text))
    ((first, payload),) = split_frames(wire)
    proto = Connection(ConnectionType.CLIENT)
    rsv = RsvBits(bool(first & 0x40), False, False)
    assert client_ext.frame_inbound_header(proto, Opcode.TEXT, rsv, len(payload)) == RsvBits(True, False, False)
    pieces = [
        client_ext.frame_inbound_payload_data(proto, payload[:10]),
        client_ext.frame_inbound_payload_data(proto, payload[10:]),
    ]
    tail = client_ext.frame_inbound_complete(proto, fin=True)
    assert all(isinstance(piece, bytes) for piece in pieces) and isinstance(tail, bytes)
    assert b"".join([*pieces, tail]).decode() == text  # type: ignore[list-item]
    # Not compressed (RSV1 clear): the data passes through and nothing is added.
    assert client_ext.frame_inbound_header(proto, Opcode.TEXT, RsvBits(False, False, False), 3) is not None
    assert client_ext.frame_inbound_payload_data(proto, b"abc") == b"abc"
    assert client_ext.frame_inbound_complete(proto, fin=True) is None


# ------------------------------------------- whole-message fast paths vs the hooks


def test_compressed_frame_with_a_split_extended_length_waits() -> None:
    client, server, _, _ = deflated_pair()
    wire = client.send(BytesMessage(os.urandom(300)))
    assert wire[:2] == b"\xc2\xfe"
    assert feed(server, wire[:3]) == []
    received = feed(server, wire[3:])
    assert len(received) == 1
    assert received[0].message_finished  # type: ignore[attr-defined]


def test_whole_messages_skip_the_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """With PerMessageDeflate alone, whole messages never reach the frame hooks (both roles)."""
    client, server, _, _ = deflated_pair()

    def hook_called(*args: Any) -> Any:
        raise AssertionError("the hook path was taken")

    for hook in ("frame_outbound", "frame_inbound_header", "frame_inbound_payload"):
        monkeypatch.setattr(PerMessageDeflate, hook, hook_called)
    for data in ("hello " * 100, b"\x00" * 1000, "", b"x"):
        message = TextMessage(data) if isinstance(data, str) else BytesMessage(data)
        wire = client.send(message)
        assert wire[0] & RSV1
        assert feed(server, wire) == [message]
        assert feed(client, server.send(message)) == [message]
    assert server.failure is None
    assert client.failure is None


def test_other_extensions_keep_the_hook_path() -> None:
    """A subclass may override hooks, so it gets them called (and produces the same bytes)."""
    client_ext, server_ext = HookDeflate(), HookDeflate()
    assert negotiate(client_ext, server_ext) is not None
    client, server = make_pair(client_ext, server_ext)
    assert client._message_extension is None
    wire = server.send(TextMessage("same bytes " * 20))
    _, fast_server, _, _ = deflated_pair()
    assert wire == fast_server.send(TextMessage("same bytes " * 20))
    assert feed(client, wire) == [TextMessage("same bytes " * 20)]


def test_subclasses_keep_the_whole_message_path() -> None:
    client_ext, server_ext = FastOnlyDeflate(), FastOnlyDeflate()
    assert negotiate(client_ext, server_ext) is not None
    client, server = make_pair(client_ext, server_ext)
    for message in (TextMessage("subclass " * 30), BytesMessage(bytes(500)), TextMessage("")):
        wire = client.send(message)
        assert wire[0] & 0x40 or not message.data  # compressed (RSV1), through encode_message
        assert feed(server, wire) == [message]
        assert feed(client, server.send(message)) == [message]
    assert server.failure is None and client.failure is None


actions = st.lists(
    st.tuples(payloads, st.integers(1, 3), st.booleans()),  # data, fragments, send_next_uncompressed()
    min_size=1,
    max_size=6,
)
#: Frames a client may append after its messages: a compressed frame that is no
#: DEFLATE data, a bomb (100 kB of zeros in about 100 bytes), an RSV1 Ping.
violations = st.sampled_from([b"", b"garbage", b"bomb", b"rsv1 ping"])


def violation_frame(kind: bytes) -> bytes:
    if kind == b"garbage":
        return frame(OP_BINARY, b"\xff\xfe\xfd", rsv=4)
    if kind == b"bomb":
        return frame(OP_BINARY, deflate(bytes(100_000)), rsv=4)
    if kind == b"rsv1 ping":
        return frame(OP_PING, b"", rsv=4)
    return b""


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    client_config=configs,
    server_config=configs,
    threshold=st.sampled_from([0, 0, 64]),
    sent=actions,
    violation=violations,
    chunks=st.lists(st.integers(1, 700), max_size=30),
    limit=st.sampled_from([None, 10, 700, 5000]),
)
def test_fast_paths_match_the_hook_paths(
    *,
    client_config: dict[str, Any],
    server_config: dict[str, Any],
    threshold: int,
    sent: list[tuple[str | bytes, int, bool]],
    violation: bytes,
    chunks: list[int],
    limit: int | None,
) -> None:
    """Same frames sent, same events received (limits, 1007 and 1009 included), same zlib state."""
    outcomes = []
    for cls in (PerMessageDeflate, HookDeflate):
        client_ext = cls(**client_config, compression_threshold=threshold)
        server_ext = cls(**server_config, compression_threshold=threshold)
        if negotiate(client_ext, server_ext) is None:
            return  # declined: no extension, nothing to compare
        client, server = make_pair(client_ext, server_ext, max_message_size=limit)
        assert (client._message_extension is not None) == (cls is PerMessageDeflate)
        to_server = to_client = b""
        for data, fragments, uncompressed in sent:
            if uncompressed:
                client_ext.send_next_uncompressed()
                server_ext.send_next_uncompressed()
            to_server += send_message(client, data, fragments)
            to_client += send_message(server, data, fragments)
        to_server += violation_frame(violation)
        received_by_server = feed(server, to_server, chunks)
        received_by_client = feed(client, to_client, chunks)
        outcomes.append(
            (
                split_frames(to_server),  # client frames are masked with random keys
                to_client,
                received_by_server,
                received_by_client,
                server.state,
                [ext._compressor is None for ext in (client_ext, server_ext)],
                [ext._decompressor is None for ext in (client_ext, server_ext)],
            )
        )
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("size", [10, 1000, 70_000])
def test_whole_messages_of_every_length_encoding(size: int) -> None:
    """7-, 16- and 64-bit lengths, both roles; incompressible data keeps the size class."""
    client, server, _, _ = deflated_pair()
    payload = random.Random(size).randbytes(size)
    for sender, receiver in ((client, server), (server, client)):
        wire = sender.send(BytesMessage(payload))
        ((first, _),) = split_frames(wire)
        assert first == 0x80 | RSV1 | OP_BINARY
        assert assemble(feed(receiver, wire)) == [payload]


def test_send_fast_path_takes_every_kind_of_data() -> None:
    """str subclasses, bytearray and memoryview are sent like str and bytes; lone surrogates are refused."""

    class Text(str):
        __slots__ = ()

    client, server, _, _ = deflated_pair()
    for message, expected in (
        (TextMessage(Text("subclass " * 20)), "subclass " * 20),
        (BytesMessage(bytearray(b"array " * 20)), b"array " * 20),
        (BytesMessage(memoryview(b"view " * 20)), b"view " * 20),
    ):
        wire = client.send(message)
        assert wire[0] & RSV1
        assert assemble(feed(server, wire)) == [expected]
    with pytest.raises(LocalProtocolError, match="surrogates"):
        client.send(TextMessage("\ud800"))
    assert assemble(feed(server, client.send(TextMessage("still open")))) == ["still open"]


@given(
    server_no_context_takeover=st.booleans(),
    client_no_context_takeover=st.booleans(),
    server_max_window_bits=st.integers(9, 15),
    client_max_window_bits=st.integers(8, 15),
)
def test_negotiated_parameters_response_sets_up_an_agreeing_peer(
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: int,
    client_max_window_bits: int,
) -> None:
    """DeflateParameters.response() states every parameter: a fresh server or client ends up with the same ones."""
    parameters = DeflateParameters(
        server_no_context_takeover, client_no_context_takeover, server_max_window_bits, client_max_window_bits
    )
    element = parameters.response()
    assert element.startswith("permessage-deflate; ")
    server = PerMessageDeflate()
    assert server.accept(element) is not None
    assert server.negotiated == parameters
    client = PerMessageDeflate(
        client_no_context_takeover=client_no_context_takeover,
        client_max_window_bits=client_max_window_bits,
        server_no_context_takeover=server_no_context_takeover,
        server_max_window_bits=server_max_window_bits,
    )
    client.finalize(element)
    assert client.negotiated == parameters
