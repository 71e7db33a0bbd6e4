"""Tests for wsproto_core.frames: opcodes, close codes, close payloads, frame headers."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest
from helpers import parse_frame
from hypothesis import given
from hypothesis import strategies as st

from wsproto_core.errors import LocalProtocolError, RemoteProtocolError
from wsproto_core.frames import (
    LOCAL_ONLY_CLOSE_REASONS,
    MAX_CONTROL_PAYLOAD,
    CloseReason,
    Opcode,
    RsvBits,
    build_close_payload,
    build_frame_header,
    frame_header,
    is_sendable_close_code,
    is_valid_close_code,
    parse_close_payload,
    python_read_frame_header,
    python_read_whole_message,
    python_read_whole_messages,
    python_write_frame,
    read_frame_header,
    read_whole_message,
    read_whole_messages,
    write_frame,
)
from wsproto_core.masking import python_apply_mask


def spec_close_code_is_valid(code: int) -> bool:
    """RFC 6455 section 7.4 as Autobahn reads it, written independently of the library.

    7.4.1 defines 1000-1003 and 1007-1011 (1004 is reserved, 1005/1006/1015 are
    local-only); the IANA registry adds 1012-1014. 7.4.2: 0-999 unused, the rest
    of 1000-2999 reserved, 3000-4999 for libraries and private use.
    """
    return code in {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014} or 3000 <= code <= 4999


class TestOpcode:
    def test_values(self) -> None:
        """RFC 6455 section 5.2: %x0 continuation, %x1 text, %x2 binary, %x8 close, %x9 ping, %xA pong."""
        assert [int(op) for op in Opcode] == [0, 1, 2, 8, 9, 10]

    @pytest.mark.parametrize("opcode", list(Opcode))
    def test_iscontrol(self, opcode: Opcode) -> None:
        """Section 5.5: control frames are those whose opcode has the most significant bit set."""
        assert opcode.iscontrol() is (opcode in (Opcode.CLOSE, Opcode.PING, Opcode.PONG))

    @pytest.mark.parametrize("value", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
    def test_reserved_opcodes_are_not_members(self, value: int) -> None:
        with pytest.raises(ValueError):
            Opcode(value)


class TestCloseCodes:
    def test_registered_codes(self) -> None:
        assert CloseReason.NORMAL_CLOSURE == 1000
        assert CloseReason.PROTOCOL_ERROR == 1002
        assert CloseReason.NO_STATUS_RCVD == 1005
        assert CloseReason.ABNORMAL_CLOSURE == 1006
        assert CloseReason.INVALID_FRAME_PAYLOAD_DATA == 1007
        assert CloseReason.MESSAGE_TOO_BIG == 1009
        assert CloseReason.TLS_HANDSHAKE_FAILED == 1015
        assert 1004 not in {int(code) for code in CloseReason}

    def test_local_only(self) -> None:
        """Section 7.4.1: 1005, 1006 and 1015 MUST NOT be set in a Close frame."""
        assert set(LOCAL_ONLY_CLOSE_REASONS) == {1005, 1006, 1015}

    def test_is_valid_close_code_matches_spec_over_whole_range(self) -> None:
        """Sections 7.4.1 and 7.4.2, every 16-bit value."""
        mismatches = [code for code in range(0x10000) if is_valid_close_code(code) != spec_close_code_is_valid(code)]
        assert mismatches == []

    @pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
    def test_invalid_codes(self, code: int) -> None:
        assert not is_valid_close_code(code)

    @pytest.mark.parametrize(
        "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
    )
    def test_valid_codes(self, code: int) -> None:
        assert is_valid_close_code(code)
        assert is_sendable_close_code(code)

    def test_sendable_adds_only_1005(self) -> None:
        extra = [code for code in range(0x10000) if is_sendable_close_code(code) and not is_valid_close_code(code)]
        assert extra == [1005]


class TestBuildClosePayload:
    def test_no_code(self) -> None:
        assert build_close_payload(None, None) == b""
        assert build_close_payload(None, "") == b""

    def test_1005_means_empty(self) -> None:
        """Section 7.1.5: 1005 stands for "no status code", so nothing is sent."""
        assert build_close_payload(1005, None) == b""

    @pytest.mark.parametrize("code", [None, 1005])
    def test_reason_without_code(self, code: int | None) -> None:
        """Section 5.5.1: a reason may only follow a status code."""
        with pytest.raises(LocalProtocolError):
            build_close_payload(code, "bye")

    def test_code_and_reason(self) -> None:
        """Section 5.5.1: two-byte big-endian code, then the UTF-8 reason."""
        assert build_close_payload(1000, None) == b"\x03\xe8"
        assert build_close_payload(4001, "héllo") == b"\x0f\xa1" + "héllo".encode()

    @pytest.mark.parametrize("code", [0, 999, 1004, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
    def test_unsendable_codes(self, code: int) -> None:
        """Section 7.4: these codes must never appear on the wire."""
        with pytest.raises(LocalProtocolError):
            build_close_payload(code, None)

    def test_long_ascii_reason_truncated_to_123_bytes(self) -> None:
        """Section 5.5: a control payload is at most 125 bytes, 2 of which hold the code."""
        payload = build_close_payload(1000, "x" * 500)
        assert len(payload) == MAX_CONTROL_PAYLOAD
        assert payload[2:] == b"x" * 123

    @pytest.mark.parametrize("char", ["é", "€", "😀"])
    def test_long_reason_cut_on_utf8_boundary(self, char: str) -> None:
        """Section 5.5.1: the reason MUST be valid UTF-8, so a character is not cut in half."""
        payload = build_close_payload(1000, "a" + char * 100)
        reason = payload[2:]
        assert len(reason) <= 123
        text = reason.decode("utf-8")  # must not raise
        assert text == "a" + char * ((123 - 1) // len(char.encode()))

    def test_reason_of_exactly_123_bytes_is_kept(self) -> None:
        reason = "é" * 61 + "a"  # 123 bytes
        assert build_close_payload(1000, reason)[2:].decode() == reason

    def test_lone_surrogate_reason(self) -> None:
        with pytest.raises(LocalProtocolError):
            build_close_payload(1000, "bad \ud800")


class TestParseClosePayload:
    def test_empty_is_1005(self) -> None:
        """Section 7.1.5: no status code means the close code is considered 1005."""
        assert parse_close_payload(b"") == (1005, "")

    def test_one_byte(self) -> None:
        """Section 5.5.1: a body, if present, MUST start with a two-byte code."""
        with pytest.raises(RemoteProtocolError) as info:
            parse_close_payload(b"\x03")
        assert info.value.code == 1002

    @pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
    def test_invalid_code(self, code: int) -> None:
        with pytest.raises(RemoteProtocolError) as info:
            parse_close_payload(code.to_bytes(2, "big"))
        assert info.value.code == 1002

    def test_invalid_utf8_reason(self) -> None:
        """Section 5.5.1 / 8.1: the reason must be UTF-8; otherwise fail with 1007."""
        with pytest.raises(RemoteProtocolError) as info:
            parse_close_payload(b"\x03\xe8\xff")
        assert info.value.code == 1007

    def test_registered_code_becomes_enum(self) -> None:
        code, reason = parse_close_payload(b"\x03\xe9going")
        assert code is CloseReason.GOING_AWAY
        assert reason == "going"

    def test_private_code_stays_int(self) -> None:
        code, reason = parse_close_payload(b"\x0f\xa0" + "ü".encode())
        assert code == 4000
        assert type(code) is int
        assert reason == "ü"

    @pytest.mark.parametrize("code", [1000, 1003, 1007, 1011, 1014, 3000, 4999])
    def test_round_trip(self, code: int) -> None:
        assert parse_close_payload(build_close_payload(code, "why")) == (code, "why")


class TestBuildFrameHeader:
    @pytest.mark.parametrize(
        ("length", "expected_field", "header_size"),
        [(0, 0, 2), (125, 125, 2), (126, 126, 4), (65535, 126, 4), (65536, 127, 10), (2**40, 127, 10)],
    )
    def test_minimal_length_encoding(self, length: int, expected_field: int, header_size: int) -> None:
        """Section 5.2: 7-bit length up to 125, 126 + 16 bits up to 65535, else 127 + 64 bits."""
        header = build_frame_header(Opcode.BINARY, length)
        assert len(header) == header_size
        assert header[0] == 0x82
        assert header[1] == expected_field
        if expected_field == 126:
            assert int.from_bytes(header[2:4], "big") == length
        elif expected_field == 127:
            assert int.from_bytes(header[2:10], "big") == length

    def test_fin_rsv_and_mask(self) -> None:
        header = build_frame_header(Opcode.TEXT, 3, fin=False, rsv=0x40, mask=b"abcd")
        assert header == bytes((0x41, 0x83)) + b"abcd"
        first, length, masked, key, payload, rest = parse_frame(header + b"xyz")
        assert (first, length, masked, key, rest) == (0x41, 3, True, b"abcd", b"")
        assert len(payload) == 3

    def test_mask_after_extended_length(self) -> None:
        header = build_frame_header(Opcode.PING, 300, mask=b"\x01\x02\x03\x04")
        assert header == b"\x89\xfe\x01\x2c\x01\x02\x03\x04"


def test_rsvbits_is_a_named_tuple() -> None:
    bits = RsvBits(True, False, True)
    assert bits == (True, False, True)
    assert (bits.rsv1, bits.rsv2, bits.rsv3) == (True, False, True)


# ------------------------------------------------------------------ the codec

MASKS = st.none() | st.binary(min_size=4, max_size=4)
FORMS = {7: 125, 16: 0xFFFF, 64: (1 << 64) - 1}


@st.composite
def headers(draw: st.DrawFn) -> tuple[int, int, bytes | None, int | None]:
    """A first byte, a declared length, a key and a length form that holds the length."""
    form = draw(st.sampled_from([None, 7, 16, 64]))
    length = draw(st.integers(0, FORMS[form or 64]))
    if form is None:
        length = draw(st.sampled_from([length, length % 126, length % 0x10000]))
    return draw(st.integers(0, 255)), length, draw(MASKS), form


# The compiled codec (when built) and the Python one must give the same answers.
READERS = [python_read_frame_header, read_frame_header]
WRITERS = [python_write_frame, write_frame]


class TestCodec:
    @pytest.mark.parametrize("read", READERS)
    @given(header=headers(), rest=st.binary(max_size=8))
    def test_read_returns_what_was_written(
        self, read: Callable[..., object], header: tuple[int, int, bytes | None, int | None], rest: bytes
    ) -> None:
        first, length, mask, form = header
        data = frame_header(first, length, mask, form)
        size = {7: 2, 16: 4, 64: 10}[form or (7 if length < 126 else 16 if length < 0x10000 else 64)]
        assert len(data) == size + (4 if mask else 0)
        assert read(data + rest) == (first, length, mask, len(data))
        # Any cut before the header's end is "need more bytes"; an offset reads in place.
        for cut in range(len(data)):
            assert read(data[:cut]) is None
        assert read(bytearray(b"xyz" + data), 3) == (first, length, mask, len(data))

    @pytest.mark.parametrize("read", READERS)
    def test_fields_match_section_5_2(self, read: Callable[..., object]) -> None:
        # FIN + TEXT, masked, 16-bit length 300: the layout drawn in RFC 6455 section 5.2.
        data = frame_header(0x81, 300, b"abcd")
        assert data == b"\x81\xfe\x01\x2cabcd"
        assert read(data) == (0x81, 300, b"abcd", 8)
        assert read(b"\x82\x7f" + (1 << 63).to_bytes(8, "big")) == (0x82, 1 << 63, None, 10)
        assert read(b"\x82\x7f" + bytes([255] * 8)) == (0x82, (1 << 64) - 1, None, 10)

    @pytest.mark.parametrize("write", WRITERS)
    @given(first=st.integers(0, 255), payload=st.binary(max_size=70000), mask=MASKS)
    def test_write_frame_is_header_and_masked_payload(
        self, write: Callable[..., bytes], first: int, payload: bytes, mask: bytes | None
    ) -> None:
        wire = write(first, payload, mask)
        header = read_frame_header(wire)
        assert header is not None
        assert header[:3] == (first, len(payload), mask)
        body = wire[header[3] :]
        assert (python_apply_mask(body, mask) if mask else body) == payload
        # The minimal length form (section 5.2: "the minimal number of bytes MUST be used").
        assert wire[: header[3]] == frame_header(first, len(payload), mask)


WHOLE_MESSAGE_READERS = [python_read_whole_message, read_whole_message]


@st.composite
def candidate_messages(draw: st.DrawFn) -> tuple[bytes, bool, int]:
    """Bytes that are often exactly one whole message, and often nearly so."""
    first = draw(st.sampled_from([0x81, 0x82, 0x81, 0x82, 0x01, 0x02, 0x80, 0x88, 0x89, 0xC1, 0xA2, 0x92]))
    payload = draw(
        st.one_of(
            st.binary(max_size=300),
            st.text(max_size=100).map(str.encode),
            st.sampled_from([b"\xff", b"caf\xc3", b"\xed\xa0\x80", b"a" * 70_000]),
        )
    )
    mask = draw(st.one_of(st.none(), st.binary(min_size=4, max_size=4)))
    form = draw(st.sampled_from([None, None, 16, 64]))
    if form == 16 and len(payload) > 0xFFFF:
        form = None
    data = frame_header(first, len(payload), mask, form) + (python_apply_mask(payload, mask) if mask else payload)
    data = draw(st.sampled_from([data, data, data[:-1], data + b"\x00", data[: draw(st.integers(0, len(data)))]]))
    return data, draw(st.booleans()), draw(st.sampled_from([0, 10, 125, 0xFFFF, sys.maxsize]))


def whole_message_by_the_rules(data: bytes, masked: bool, limit: int) -> bytes | str | None:
    """What read_whole_message must return, from read_frame_header and plain Python."""
    header = python_read_frame_header(data)
    if header is None:
        return None
    first, length, mask, start = header
    if first not in (0x81, 0x82) or (mask is not None) != masked or start + length != len(data) or length > limit:
        return None
    payload = bytes(data[start:]) if mask is None else python_apply_mask(data[start:], mask)
    if first == 0x82:
        return payload
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


@pytest.mark.parametrize("read", WHOLE_MESSAGE_READERS)
@given(case=candidate_messages())
def test_read_whole_message_takes_exactly_one_whole_message(
    read: Callable[..., object], case: tuple[bytes, bool, int]
) -> None:
    data, masked, limit = case
    expected = whole_message_by_the_rules(data, masked, limit)
    for container in (bytes, bytearray, memoryview):
        result = read(container(data), masked, limit)
        assert result == expected
        assert type(result) is type(expected)


@pytest.mark.parametrize("read", WHOLE_MESSAGE_READERS)
def test_read_whole_message_of_a_masked_text_frame(read: Callable[..., object]) -> None:
    # The masked "Hello" of RFC 6455 section 5.7.
    assert read(b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", True, 125) == "Hello"
    assert read(b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", False, 125) is None
    assert read(b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", True, 4) is None
    assert read(b"\x82\x05Hello", False, 125) == b"Hello"


WHOLE_MESSAGES_READERS = [python_read_whole_messages, read_whole_messages]


@pytest.mark.parametrize("read", WHOLE_MESSAGES_READERS)
@given(cases=st.lists(candidate_messages(), max_size=4), masked=st.booleans(), limit=st.sampled_from([10, sys.maxsize]))
def test_read_whole_messages_takes_the_run_of_whole_messages(
    read: Callable[..., object], cases: list[tuple[bytes, bool, int]], masked: bool, limit: int
) -> None:
    """Message after message while each is one (by read_whole_message's rules), then where that stopped."""
    data = b"".join(case[0] for case in cases)
    expected: list[bytes | str] = []
    position = 0
    while position < len(data):
        header = python_read_frame_header(data, position)
        if header is None:
            break
        end = position + header[3] + header[1]
        message = whole_message_by_the_rules(data[position:end], masked, limit) if end <= len(data) else None
        if message is None:
            break
        expected.append(message)
        position = end
    for container in (bytes, bytearray, memoryview):
        messages, stop = read(container(data), masked, limit)  # type: ignore[misc]
        assert messages == expected and stop == position
        assert [type(message) for message in messages] == [type(message) for message in expected]
