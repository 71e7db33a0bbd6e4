"""A table of malformed inputs and the close code each must fail the connection with.

Every row is run in both roles (with the masking the role expects, unless the
row is about masking), fed whole and fed one byte at a time, since the parser
has a fast path for whole frames and a streaming path for pieces. The failure
must always surface as a final ``CloseConnection`` event from ``events()``
(RFC 6455 section 7.1.7), with ``conn.failure`` holding the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from helpers import (
    CLIENT,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RFC_MASK,
    SERVER,
    assert_failed,
    build_frame,
    close_payload,
    feed,
    frame_for,
    parse_frame,
)

from wsproto_core.connection import Connection, ConnectionState, ConnectionType
from wsproto_core.events import CloseConnection

Builder = Callable[[Connection], bytes]


@dataclass(frozen=True)
class Case:
    id: str
    build: Builder
    code: int
    rule: str  # the RFC 6455 section that the input violates
    roles: tuple[ConnectionType, ...] = (CLIENT, SERVER)


def f(opcode: int, payload: bytes = b"", **options: object) -> Builder:
    """A frame as the peer of the connection would send it (masked towards a server)."""
    return lambda conn: frame_for(conn, opcode, payload, **options)


def seq(*builders: Builder) -> Builder:
    return lambda conn: b"".join(build(conn) for build in builders)


INVALID_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]

INVALID_UTF8 = {
    "lone-continuation": b"\x80",
    "invalid-start-ff": b"\xff",
    "invalid-start-c0": b"\xc0",
    "overlong-slash": b"\xc0\xaf",
    "overlong-3-byte": b"\xe0\x80\xaf",
    "overlong-4-byte": b"\xf0\x80\x80\xaf",
    "surrogate-d800": b"\xed\xa0\x80",
    "surrogate-dfff": b"\xed\xbf\xbf",
    "surrogate-pair": b"\xed\xa0\x80\xed\xb0\x80",
    "above-10ffff": b"\xf4\x90\x80\x80",
    "five-byte": b"\xf8\x88\x80\x80\x80",
    "missing-continuation": b"\xe2\x28\xa1",
    "truncated-2": b"\xce",
    "truncated-3": b"ok\xe2\x82",
    "truncated-4": b"\xf0\x9f\x98",
    "kosme-edited": b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited",
}

CASES: list[Case] = [
    # Section 5.2: RSV1-3 "MUST be 0 unless an extension is negotiated".
    Case("rsv1-text", f(OP_TEXT, b"x", rsv=4), 1002, "5.2"),
    Case("rsv2-text", f(OP_TEXT, b"x", rsv=2), 1002, "5.2"),
    Case("rsv3-binary", f(OP_BINARY, b"x", rsv=1), 1002, "5.2"),
    Case("rsv-all-binary-large", f(OP_BINARY, b"x" * 300, rsv=7), 1002, "5.2"),
    Case("rsv1-ping", f(OP_PING, b"x", rsv=4), 1002, "5.2"),
    Case("rsv2-close", f(OP_CLOSE, close_payload(1000), rsv=2), 1002, "5.2"),
    Case("rsv3-continuation", seq(f(OP_TEXT, b"a", fin=False), f(OP_CONT, b"b", rsv=1)), 1002, "5.2"),
    # Section 5.2: opcodes %x3-7 and %xB-F are reserved.
    *[Case(f"reserved-opcode-{op:#x}", f(op, b"x"), 1002, "5.2") for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15)],
    *[Case(f"reserved-opcode-{op:#x}-empty-nofin", f(op, fin=False), 1002, "5.2") for op in (3, 11)],
    # Section 5.5: control frames have at most 125 bytes of payload...
    Case("ping-126", f(OP_PING, b"x" * 126), 1002, "5.5"),
    Case("pong-126", f(OP_PONG, b"x" * 126), 1002, "5.5"),
    Case("close-126", f(OP_CLOSE, close_payload(1000, b"x" * 124)), 1002, "5.5"),
    Case("ping-64bit-200", f(OP_PING, b"x" * 200, length_size=64), 1002, "5.5"),
    Case("ping-header-only-65536", f(OP_PING, length=65536), 1002, "5.5"),
    # ... and MUST NOT be fragmented.
    Case("fragmented-ping", f(OP_PING, b"x", fin=False), 1002, "5.5"),
    Case("fragmented-pong", f(OP_PONG, b"x", fin=False), 1002, "5.5"),
    Case("fragmented-close", f(OP_CLOSE, close_payload(1000), fin=False), 1002, "5.5"),
    Case("fragmented-empty-ping", f(OP_PING, fin=False), 1002, "5.5"),
    # Section 5.1: masking direction.
    Case("unmasked-at-server", lambda c: build_frame(OP_TEXT, b"x"), 1002, "5.1", (SERVER,)),
    Case("unmasked-ping-at-server", lambda c: build_frame(OP_PING), 1002, "5.1", (SERVER,)),
    Case("unmasked-large-at-server", lambda c: build_frame(OP_BINARY, b"x" * 70000), 1002, "5.1", (SERVER,)),
    Case("masked-at-client", lambda c: build_frame(OP_TEXT, b"x", mask=True), 1002, "5.1", (CLIENT,)),
    Case("masked-close-at-client", lambda c: build_frame(OP_CLOSE, b"", mask=True), 1002, "5.1", (CLIENT,)),
    Case("masked-large-at-client", lambda c: build_frame(OP_BINARY, b"x" * 300, mask=True), 1002, "5.1", (CLIENT,)),
    Case(
        "masked-then-unmasked-at-server",
        lambda c: build_frame(OP_TEXT, b"ok", mask=True) + build_frame(OP_TEXT, b"x"),
        1002,
        "5.1",
        (SERVER,),
    ),
    # Section 5.2: "the most significant bit MUST be 0" in a 64-bit length.
    Case("length-msb-set", f(OP_BINARY, length=2**63, length_size=64), 1002, "5.2"),
    Case("length-all-ones", f(OP_BINARY, length=2**64 - 1, length_size=64), 1002, "5.2"),
    Case("length-msb-text-nofin", f(OP_TEXT, length=2**63 + 5, length_size=64, fin=False), 1002, "5.2"),
    # Section 5.4: continuation frames only continue a fragmented message...
    Case("continuation-first", f(OP_CONT, b"x"), 1002, "5.4"),
    Case("continuation-first-nofin", f(OP_CONT, b"x", fin=False), 1002, "5.4"),
    Case("continuation-after-message", seq(f(OP_TEXT, b"a"), f(OP_CONT, b"b")), 1002, "5.4"),
    Case(
        "continuation-after-finished-fragments",
        seq(f(OP_BINARY, b"a", fin=False), f(OP_CONT, b"b"), f(OP_CONT, b"c")),
        1002,
        "5.4",
    ),
    Case("continuation-after-ping", seq(f(OP_PING), f(OP_CONT, b"c")), 1002, "5.4"),
    # ... and fragments of different messages MUST NOT be interleaved.
    Case("text-inside-text", seq(f(OP_TEXT, b"a", fin=False), f(OP_TEXT, b"b")), 1002, "5.4"),
    Case("binary-inside-text", seq(f(OP_TEXT, b"a", fin=False), f(OP_BINARY, b"b")), 1002, "5.4"),
    Case("text-inside-binary", seq(f(OP_BINARY, b"a", fin=False), f(OP_TEXT, b"b")), 1002, "5.4"),
    Case(
        "binary-inside-binary-after-ping",
        seq(f(OP_BINARY, b"a", fin=False), f(OP_PING), f(OP_BINARY, b"b", fin=False)),
        1002,
        "5.4",
    ),
    # Section 5.5.1: a Close body starts with a 2-byte status code.
    Case("close-1-byte", f(OP_CLOSE, b"\x03"), 1002, "5.5.1"),
    *[Case(f"close-code-{code}", f(OP_CLOSE, close_payload(code)), 1002, "7.4") for code in INVALID_CLOSE_CODES],
    Case("close-code-1005-with-reason", f(OP_CLOSE, close_payload(1005, b"x")), 1002, "7.4"),
    # Section 5.5.1: the Close reason is UTF-8.
    *[
        Case(f"close-reason-{name}", f(OP_CLOSE, close_payload(1000, payload)), 1007, "5.5.1")
        for name, payload in INVALID_UTF8.items()
        if len(payload) <= 123
    ],
    # Section 8.1: text messages are UTF-8; 5.6: "text data encoded as UTF-8".
    *[Case(f"text-{name}", f(OP_TEXT, payload), 1007, "8.1") for name, payload in INVALID_UTF8.items()],
    *[
        Case(f"text-16bit-{name}", f(OP_TEXT, b"a" * 200 + payload), 1007, "8.1")
        for name, payload in INVALID_UTF8.items()
    ],
    Case("text-64bit-encoding", f(OP_TEXT, b"\xff", length_size=64), 1007, "8.1"),
    Case("text-64bit-large", f(OP_TEXT, b"a" * 70000 + b"\xff"), 1007, "8.1"),
    Case("text-fragment-first", seq(f(OP_TEXT, b"\xff", fin=False), f(OP_CONT, b"a")), 1007, "8.1"),
    Case("text-fragment-continuation", seq(f(OP_TEXT, b"a", fin=False), f(OP_CONT, b"\xc0\xaf")), 1007, "8.1"),
    Case("text-split-surrogate", seq(f(OP_TEXT, b"a\xed", fin=False), f(OP_CONT, b"\xa0\x80")), 1007, "8.1"),
    Case("text-truncated-by-empty-final", seq(f(OP_TEXT, b"a\xce", fin=False), f(OP_CONT)), 1007, "8.1"),
    Case(
        "text-truncated-after-ping",
        seq(f(OP_TEXT, b"\xe2\x82", fin=False), f(OP_PING), f(OP_CONT, b"a")),
        1007,
        "8.1",
    ),
]

PARAMS = [
    pytest.param(case, role, chunk, id=f"{case.id}-{'client' if role is CLIENT else 'server'}-{label}")
    for case in CASES
    for role in case.roles
    for chunk, label in ((None, "whole"), (1, "bytewise"))
]


@pytest.mark.parametrize(("case", "role", "chunk"), PARAMS)
def test_malformed_input_fails_connection(case: Case, role: ConnectionType, chunk: int | None) -> None:
    conn = Connection(role)
    data = case.build(conn)
    received = feed(conn, data, chunk)  # never raises
    assert_failed(conn, received, case.code)
    closes = [event for event in received if isinstance(event, CloseConnection)]
    assert len(closes) == 1
    # The failure can be acknowledged with the close code the rule names (section 7.4.1).
    first, _length, masked, _key, payload, rest = parse_frame(conn.send(closes[0].response()))
    assert (first, masked, rest) == (0x88, conn.client, b"")
    assert int.from_bytes(payload[:2], "big") == case.code
    assert conn.state is ConnectionState.CLOSED


def test_table_frames_towards_a_server_are_masked() -> None:
    """Sanity check of the table itself: frames towards a server carry the RFC example key."""
    data = CASES[0].build(Connection(SERVER))
    assert data[1] & 0x80
    assert data[2:6] == RFC_MASK


VALID_INPUTS = {
    "close-empty": (f(OP_CLOSE), 1005),
    "close-125": (f(OP_CLOSE, close_payload(1000, b"x" * 123)), 1000),
    **{
        f"close-code-{code}": (f(OP_CLOSE, close_payload(code)), code)
        for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999)
    },
}


@pytest.mark.parametrize("role", [CLIENT, SERVER], ids=["client", "server"])
@pytest.mark.parametrize(("build", "code"), list(VALID_INPUTS.values()), ids=list(VALID_INPUTS))
def test_valid_close_frames_accepted(role: ConnectionType, build: Builder, code: int) -> None:
    """The counterpart of the table: these Close frames are valid (sections 5.5.1, 7.4)."""
    conn = Connection(role)
    received = feed(conn, build(conn), 1)
    assert len(received) == 1
    assert isinstance(received[0], CloseConnection)
    assert received[0].code == code
    assert conn.failure is None
    assert conn.state is ConnectionState.REMOTE_CLOSING


VALID_TEXT = {
    "ascii": b"hello",
    "two-byte": "é".encode(),
    "three-byte": "€".encode(),
    "four-byte": "😀".encode(),
    "max-code-point": b"\xf4\x8f\xbf\xbf",
    "before-surrogates": b"\xed\x9f\xbf",
    "after-surrogates": b"\xee\x80\x80",
    "bom": b"\xef\xbb\xbf",
    "nul": b"\x00",
    "noncharacter-fffe": b"\xef\xbf\xbe",
}


@pytest.mark.parametrize("role", [CLIENT, SERVER], ids=["client", "server"])
@pytest.mark.parametrize("payload", list(VALID_TEXT.values()), ids=list(VALID_TEXT))
@pytest.mark.parametrize("chunk", [None, 1], ids=["whole", "bytewise"])
def test_valid_utf8_edge_cases_accepted(role: ConnectionType, payload: bytes, chunk: int | None) -> None:
    """Section 8.1 / RFC 3629: the boundaries of valid UTF-8 are accepted."""
    conn = Connection(role)
    received = feed(conn, frame_for(conn, OP_TEXT, payload), chunk)
    assert "".join(event.data for event in received) == payload.decode("utf-8")  # type: ignore[attr-defined]
    assert conn.failure is None
