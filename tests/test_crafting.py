"""Tests for wsproto_core.crafting: hand-built frames, checked against our own parser.

Valid frames must come out of a ``Connection`` of the receiving role as the
same opcode, payload and flags, whatever length encoding or fragmentation was
chosen; invalid ones must fail that connection with the close code RFC 6455
names for them.
"""

from __future__ import annotations

import dataclasses

import pytest
from helpers import CLIENT, SERVER, assert_failed, feed, reassemble
from hypothesis import given
from hypothesis import strategies as st

from wsproto_core.connection import Connection, ConnectionType
from wsproto_core.crafting import (
    CraftedFrame,
    LengthEncoding,
    close_frame,
    close_payload,
    describe_frames,
    fragment,
    frames_to_bytes,
    random_mask,
)
from wsproto_core.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto_core.frames import Opcode
from wsproto_core.masking import apply_mask

MASKS = st.binary(min_size=4, max_size=4)
ENCODINGS = st.sampled_from(list(LengthEncoding))
ROLES = st.sampled_from([CLIENT, SERVER])
DATA_OPCODES = st.sampled_from([Opcode.TEXT, Opcode.BINARY])


def mask_for(role: ConnectionType, key: bytes) -> bytes | None:
    """The key a peer of ``role`` must use: clients mask, servers do not (section 5.1)."""
    return key if role is SERVER else None


def fits(encoding: LengthEncoding, length: int) -> bool:
    return not (encoding is LengthEncoding.BITS_7 and length > 125)


# ------------------------------------------------------------------ encoding


def test_rfc_example_masked_hello() -> None:
    """RFC 6455 section 5.7: a masked "Hello" from a client."""
    frame = CraftedFrame(Opcode.TEXT, b"Hello", mask=b"\x37\xfa\x21\x3d")
    assert frame.to_bytes() == bytes.fromhex("818537fa213d7f9f4d5158")


@pytest.mark.parametrize(
    ("encoding", "header"),
    [
        (LengthEncoding.MINIMAL, "8203"),
        (LengthEncoding.BITS_7, "8203"),
        (LengthEncoding.BITS_16, "827e0003"),
        (LengthEncoding.BITS_64, "827f0000000000000003"),
    ],
)
def test_forced_length_encodings(encoding: LengthEncoding, header: str) -> None:
    frame = CraftedFrame(Opcode.BINARY, b"abc", length_encoding=encoding)
    assert frame.to_bytes() == bytes.fromhex(header) + b"abc"


def test_minimal_encoding_switches_at_126_and_65536() -> None:
    assert CraftedFrame(2, b"x" * 125).header() == b"\x82\x7d"
    assert CraftedFrame(2, b"x" * 126).header() == b"\x82\x7e\x00\x7e"
    assert CraftedFrame(2, b"x" * 65536).header() == b"\x82\x7f" + (65536).to_bytes(8, "big")


def test_every_header_bit() -> None:
    """FIN off, all three RSV bits, a reserved opcode, a declared length with the top bit set."""
    frame = CraftedFrame(0xF, b"", fin=False, rsv=7, declared_length=1 << 63)
    assert frame.to_bytes() == b"\x7f\x7f" + (1 << 63).to_bytes(8, "big")
    assert frame.length == 1 << 63


def test_declared_length_differs_from_payload() -> None:
    assert CraftedFrame(Opcode.TEXT, b"abcdef", declared_length=2).to_bytes() == b"\x81\x02abcdef"


def test_close_payloads_with_any_code() -> None:
    assert close_payload(None) == b""
    assert close_payload(0) == b"\x00\x00"
    assert close_payload(1005, b"\xff") == b"\x03\xed\xff"
    assert close_payload(65535) == b"\xff\xff"
    assert close_frame(1006, b"why").to_bytes() == b"\x88\x05\x03\xeewhy"
    with pytest.raises(ValueError, match="16 bits"):
        close_payload(65536)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"opcode": 16}, "opcode"),
        ({"opcode": -1}, "opcode"),
        ({"opcode": 1, "rsv": 8}, "rsv"),
        ({"opcode": 1, "mask": b"abc"}, "4 bytes"),
        ({"opcode": 1, "declared_length": 1 << 64}, "declared_length"),
        ({"opcode": 1, "declared_length": 126, "length_encoding": LengthEncoding.BITS_7}, "7-bit"),
        ({"opcode": 1, "declared_length": 65536, "length_encoding": LengthEncoding.BITS_16}, "16-bit"),
    ],
)
def test_values_without_an_encoding_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CraftedFrame(**options)  # type: ignore[arg-type]


def test_fragment_sizes_and_interleaving() -> None:
    ping = CraftedFrame(Opcode.PING, b"p")
    frames = fragment(Opcode.TEXT, b"abcdef", [1, 2], rsv=4, interleave={0: [ping], 2: [ping]})
    assert [(f.opcode, f.payload, f.fin, f.rsv) for f in frames] == [
        (1, b"a", False, 4),
        (9, b"p", True, 0),
        (0, b"bc", False, 0),
        (0, b"def", True, 0),
        (9, b"p", True, 0),
    ]
    assert [f.payload for f in fragment(Opcode.BINARY, b"ab", [5, 5])] == [b"ab", b"", b""]
    with pytest.raises(ValueError, match="negative"):
        fragment(Opcode.TEXT, b"", [-1])


def test_describe() -> None:
    lines = describe_frames(
        [
            CraftedFrame(Opcode.TEXT, b"Hello", mask=b"\x37\xfa\x21\x3d"),
            CraftedFrame(3, b"", fin=False, rsv=4, length_encoding=LengthEncoding.BITS_16, declared_length=9),
        ]
    )
    assert lines == [
        "TEXT fin mask=37fa213d len=5 b'Hello'",
        "RESERVED-0x3 no-fin rsv=100 unmasked len=0 declared=9 (16-bit) b''",
    ]
    assert CraftedFrame(2, b"x" * 50).describe().endswith("b'" + "x" * 40 + "...'")


def test_random_mask() -> None:
    keys = {random_mask() for _ in range(8)}
    assert all(len(key) == 4 for key in keys)
    assert len(keys) > 1


@given(payload=st.binary(max_size=300), key=MASKS)
def test_masking_is_the_libraries(payload: bytes, key: bytes) -> None:
    frame = CraftedFrame(Opcode.BINARY, payload, mask=key)
    assert frame.to_bytes() == frame.header() + apply_mask(payload, key)
    assert frame.header().endswith(key)


# ------------------------------------------------------- valid frames re-parse


@given(
    role=ROLES,
    binary=st.booleans(),
    text=st.text(max_size=200),
    data=st.binary(max_size=200),
    key=MASKS,
    encoding=ENCODINGS,
)
def test_valid_data_frame_reparses(  # noqa: PLR0917 - one parameter per strategy
    role: ConnectionType, binary: bool, text: str, data: bytes, key: bytes, encoding: LengthEncoding
) -> None:
    payload = data if binary else text.encode()
    if not fits(encoding, len(payload)):
        encoding = LengthEncoding.BITS_64
    frame = CraftedFrame(
        Opcode.BINARY if binary else Opcode.TEXT, payload, mask=mask_for(role, key), length_encoding=encoding
    )
    received = reassemble(feed(Connection(role), frame.to_bytes()))
    assert received == [BytesMessage(data) if binary else TextMessage(text)]


@given(
    role=ROLES,
    opcode=st.sampled_from([Opcode.PING, Opcode.PONG]),
    payload=st.binary(max_size=125),
    key=MASKS,
    encoding=st.sampled_from([LengthEncoding.MINIMAL, LengthEncoding.BITS_7]),
)
def test_valid_ping_and_pong_reparse(
    role: ConnectionType, opcode: Opcode, payload: bytes, key: bytes, encoding: LengthEncoding
) -> None:
    # Only the 7-bit form: we refuse a control frame whose length field says
    # 126 or 127 (section 5.5 bounds it to 125) even when the payload is short.
    # Only the 7-bit form: we refuse a control frame whose length field says
    # 126 or 127 (section 5.5 bounds it to 125) even when the payload is short.
    frame = CraftedFrame(opcode, payload, mask=mask_for(role, key), length_encoding=encoding)
    kind = Ping if opcode is Opcode.PING else Pong
    assert feed(Connection(role), frame.to_bytes()) == [kind(payload)]


@given(
    role=ROLES,
    code=st.sampled_from([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014])
    | st.integers(3000, 4999),
    reason=st.text(max_size=40),
    key=MASKS,
)
def test_valid_close_reparses(role: ConnectionType, code: int, reason: str, key: bytes) -> None:
    connection = Connection(role)
    received = feed(connection, close_frame(code, reason.encode(), mask=mask_for(role, key)).to_bytes())
    assert received == [CloseConnection(code, reason)]
    assert connection.failure is None


@given(
    role=ROLES,
    binary=st.booleans(),
    text=st.text(min_size=1, max_size=100),
    sizes=st.lists(st.integers(0, 30), max_size=5),
    pings=st.dictionaries(st.integers(0, 5), st.binary(max_size=10), max_size=3),
    key=MASKS,
)
def test_fragmented_message_with_interleaved_pings_reparses(  # noqa: PLR0917
    role: ConnectionType, binary: bool, text: str, sizes: list[int], pings: dict[int, bytes], key: bytes
) -> None:
    mask = mask_for(role, key)
    payload = text.encode()
    interleave = {index: [CraftedFrame(Opcode.PING, body, mask=mask)] for index, body in pings.items()}
    frames = fragment(Opcode.BINARY if binary else Opcode.TEXT, payload, sizes, mask=mask, interleave=interleave)
    connection = Connection(role)
    # Fed frame by frame: a fragment that ends inside a character must not fail the message.
    received = reassemble([event for frame in frames for event in feed(connection, frame.to_bytes())])
    assert connection.failure is None
    messages = [event for event in received if not isinstance(event, Ping)]
    assert messages == [BytesMessage(payload) if binary else TextMessage(text)]
    fragments = len(sizes) + 1
    expected_pings = [Ping(pings[index]) for index in sorted(pings) if index < fragments]
    assert [event for event in received if isinstance(event, Ping)] == expected_pings


# ----------------------------------------------- invalid frames are refused


INVALID_UTF8 = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"a\xe2\x82", b"\xf4\x90\x80\x80"]
INVALID_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]


@given(
    role=ROLES,
    opcode=st.sampled_from([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]),
    payload=st.binary(max_size=20),
    key=MASKS,
)
def test_reserved_opcodes_fail_with_1002(role: ConnectionType, opcode: int, payload: bytes, key: bytes) -> None:
    connection = Connection(role)
    frame = CraftedFrame(opcode, payload, mask=mask_for(role, key))
    assert_failed(connection, feed(connection, frame.to_bytes()), 1002)


@given(role=ROLES, rsv=st.integers(1, 7), opcode=st.sampled_from([1, 2, 9, 10]), key=MASKS)
def test_rsv_bits_without_extension_fail_with_1002(role: ConnectionType, rsv: int, opcode: int, key: bytes) -> None:
    connection = Connection(role)
    frame = CraftedFrame(opcode, b"", rsv=rsv, mask=mask_for(role, key))
    assert_failed(connection, feed(connection, frame.to_bytes()), 1002)


@given(role=ROLES, key=MASKS)
def test_wrong_masking_fails_with_1002(role: ConnectionType, key: bytes) -> None:
    """Section 5.1: clients mask every frame, servers none."""
    connection = Connection(role)
    wrong = key if role is CLIENT else None
    assert_failed(connection, feed(connection, CraftedFrame(Opcode.TEXT, b"hi", mask=wrong).to_bytes()), 1002)


@pytest.mark.parametrize("role", [CLIENT, SERVER])
@pytest.mark.parametrize(
    "frame",
    [
        CraftedFrame(Opcode.PING, b"x" * 126),
        CraftedFrame(Opcode.PONG, b"", fin=False),
        CraftedFrame(Opcode.CLOSE, b"\x03"),
        CraftedFrame(Opcode.CONTINUATION, b"x"),
        CraftedFrame(Opcode.BINARY, b"", declared_length=1 << 63, length_encoding=LengthEncoding.BITS_64),
    ],
    ids=["long-ping", "fragmented-pong", "one-byte-close", "lone-continuation", "length-top-bit"],
)
def test_invalid_frames_fail_with_1002(role: ConnectionType, frame: CraftedFrame) -> None:
    connection = Connection(role)
    framed = dataclasses.replace(frame, mask=mask_for(role, b"\x01\x02\x03\x04"))
    assert_failed(connection, feed(connection, framed.to_bytes()), 1002)


@given(role=ROLES, code=st.sampled_from(INVALID_CLOSE_CODES), reason=st.binary(max_size=10), key=MASKS)
def test_invalid_close_codes_fail_with_1002(role: ConnectionType, code: int, reason: bytes, key: bytes) -> None:
    connection = Connection(role)
    assert_failed(connection, feed(connection, close_frame(code, reason, mask=mask_for(role, key)).to_bytes()), 1002)


@given(role=ROLES, bad=st.sampled_from(INVALID_UTF8), key=MASKS, sizes=st.lists(st.integers(0, 4), max_size=3))
def test_invalid_utf8_fails_with_1007(role: ConnectionType, bad: bytes, key: bytes, sizes: list[int]) -> None:
    """Section 8.1, in a whole frame, split across fragments, and as a close reason (section 5.5.1)."""
    mask = mask_for(role, key)
    connection = Connection(role)
    frames = fragment(Opcode.TEXT, b"ok" + bad, sizes, mask=mask)
    assert_failed(connection, feed(connection, frames_to_bytes(frames)), 1007)
    connection = Connection(role)
    assert_failed(connection, feed(connection, close_frame(1000, bad, mask=mask).to_bytes()), 1007)


@given(
    key=MASKS, first=st.sampled_from([Opcode.TEXT, Opcode.BINARY]), second=st.sampled_from([Opcode.TEXT, Opcode.BINARY])
)
def test_new_message_inside_a_fragmented_one_fails_with_1002(key: bytes, first: int, second: int) -> None:
    connection = Connection(SERVER)
    frames = [CraftedFrame(first, b"a", fin=False, mask=key), CraftedFrame(second, b"b", mask=key)]
    assert_failed(connection, feed(connection, frames_to_bytes(frames)), 1002)
