"""Tests for wsproto_core.connection.Connection: receiving, failing, streaming, closing, sending.

The table of malformed inputs and their close codes lives in test_conformance.py;
this module checks what happens around them (states, ``failure``, what may be
sent afterwards) and everything a well-behaved peer does.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

import pytest
from helpers import (
    CLIENT,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    SERVER,
    Pipe,
    assert_failed,
    build_frame,
    close_payload,
    feed,
    feed_pieces,
    frame_for,
    pair,
    parse_frame,
    reassemble,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproto_core.connection import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MIN_PARTIAL_SIZE,
    Connection,
    ConnectionState,
    ConnectionType,
)
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
from wsproto_core.extensions import PerMessageDeflate
from wsproto_core.frames import CloseReason

ROLES = [CLIENT, SERVER]
ROLE_IDS = ["client", "server"]

S = ConnectionState


@pytest.fixture(params=ROLES, ids=ROLE_IDS)
def conn(request: pytest.FixtureRequest) -> Connection:
    """A fresh connection in either role."""
    return Connection(request.param)


def close_sent_frames(data: bytes) -> list[bytes]:
    """The Close payloads contained in a byte string of serialised frames."""
    payloads = []
    while data:
        first, _length, _masked, _key, payload, data = parse_frame(data)
        if first & 0x0F == OP_CLOSE:
            payloads.append(payload)
    return payloads


class TestConstruction:
    def test_defaults(self) -> None:
        conn = Connection(SERVER)
        assert conn.state is S.OPEN
        assert conn.client is False
        assert conn.connection_type is SERVER
        assert conn.failure is None
        assert conn.extensions == []
        assert conn.max_frame_size == DEFAULT_MAX_FRAME_SIZE == 64 * 1024 * 1024
        assert conn.max_message_size == DEFAULT_MAX_MESSAGE_SIZE == 64 * 1024 * 1024
        assert Connection(CLIENT).client is True

    @pytest.mark.parametrize("connection_type", ["client", 1, None, True])
    def test_bad_connection_type(self, connection_type: Any) -> None:
        with pytest.raises(LocalProtocolError):
            Connection(connection_type)

    @pytest.mark.parametrize("option", ["max_frame_size", "max_message_size", "min_partial_size"])
    @pytest.mark.parametrize("value", [-1, "10", 1.5])
    def test_bad_limits(self, option: str, value: Any) -> None:
        with pytest.raises(LocalProtocolError):
            Connection(SERVER, **{option: value})

    def test_limits_none(self) -> None:
        conn = Connection(SERVER, max_frame_size=None, max_message_size=None)
        assert conn.max_frame_size is None
        assert conn.max_message_size is None

    def test_trailing_data_is_parsed_first(self) -> None:
        """Bytes that arrived right after the handshake response belong to the WebSocket stream."""
        trailing = build_frame(OP_TEXT, b"early")
        conn = Connection(CLIENT, trailing_data=trailing)
        assert conn.buffered_bytes == len(trailing)
        assert feed(conn, build_frame(OP_TEXT, b"late")) == [TextMessage("early"), TextMessage("late")]


class TestReceiving:
    def test_text_and_binary(self, conn: Connection) -> None:
        data = frame_for(conn, OP_TEXT, "héllo".encode()) + frame_for(conn, OP_BINARY, b"\x00\xff")
        assert feed(conn, data) == [TextMessage("héllo"), BytesMessage(b"\x00\xff")]

    def test_received_bytes_are_bytes(self, conn: Connection) -> None:
        received = feed(conn, frame_for(conn, OP_BINARY, b"abc"))
        assert type(received[0].data) is bytes  # type: ignore[attr-defined]

    def test_empty_messages(self, conn: Connection) -> None:
        data = frame_for(conn, OP_TEXT) + frame_for(conn, OP_BINARY)
        assert feed(conn, data) == [TextMessage(""), BytesMessage(b"")]

    def test_ping_and_pong(self, conn: Connection) -> None:
        """Section 5.5.2 / 5.5.3: Ping and Pong carry up to 125 bytes of application data."""
        data = frame_for(conn, OP_PING, b"p" * 125) + frame_for(conn, OP_PONG, b"q")
        assert feed(conn, data) == [Ping(b"p" * 125), Pong(b"q")]
        assert conn.state is S.OPEN

    @pytest.mark.parametrize("kind", [bytearray, memoryview])
    def test_bytes_like_input(self, conn: Connection, kind: type) -> None:
        data = frame_for(conn, OP_BINARY, b"abc")
        conn.receive_data(kind(data[:3]))
        conn.receive_data(kind(data[3:]))
        assert list(conn.events()) == [BytesMessage(b"abc")]

    def test_caller_buffer_may_be_reused(self, conn: Connection) -> None:
        """receive_data keeps a copy: a driver may refill its read buffer right away."""
        data = frame_for(conn, OP_TEXT, b"hello")
        whole = bytearray(data)
        conn.receive_data(whole)
        whole[:] = b"\xff" * len(whole)
        head = bytearray(data[:-2])
        conn.receive_data(memoryview(head))
        head[:] = b"\xff" * len(head)
        tail = bytearray(data[-2:])
        conn.receive_data(tail)
        tail[:] = b"\xff\xff"
        assert list(conn.events()) == [TextMessage("hello"), TextMessage("hello")]

    def test_empty_input_is_a_no_op(self, conn: Connection) -> None:
        conn.receive_data(b"")
        assert list(conn.events()) == []
        assert conn.buffered_bytes == 0

    def test_buffered_bytes(self, conn: Connection) -> None:
        data = frame_for(conn, OP_BINARY, b"abcdef")
        conn.receive_data(data[:1])
        assert conn.buffered_bytes == 1
        conn.receive_data(data[1:])
        assert conn.buffered_bytes == len(data)
        assert list(conn.events()) == [BytesMessage(b"abcdef")]
        assert conn.buffered_bytes == 0

    def test_partial_header_waits(self, conn: Connection) -> None:
        """A 64-bit length header (10 bytes, plus 4 of mask) is only parsed once complete."""
        data = frame_for(conn, OP_BINARY, b"x" * 70000)
        header_size = 10 if conn.client else 14
        assert feed_pieces(conn, [data[:1], data[1:2], data[2:5], data[5 : header_size - 1]]) == []
        assert conn.failure is None
        received = feed_pieces(conn, [data[header_size - 1 :]])
        assert reassemble(received) == [BytesMessage(b"x" * 70000)]

    def test_events_iterator_can_be_abandoned(self, conn: Connection) -> None:
        """Parsing is lazy: an abandoned iterator loses nothing."""
        conn.receive_data(b"".join(frame_for(conn, OP_TEXT, str(n).encode()) for n in range(3)))
        iterator = conn.events()
        assert next(iterator) == TextMessage("0")
        del iterator
        assert list(conn.events()) == [TextMessage("1"), TextMessage("2")]

    def test_many_frames_in_one_read(self, conn: Connection) -> None:
        data = b"".join(frame_for(conn, OP_BINARY, bytes([n]) * n) for n in range(200))
        assert feed(conn, data) == [BytesMessage(bytes([n]) * n) for n in range(200)]

    def test_frames_fed_across_reads_are_joined(self, conn: Connection) -> None:
        frames = [frame_for(conn, OP_TEXT, b"a" * n) for n in (5, 130, 70000)]
        data = b"".join(frames)
        # Cut through headers and payloads at odd places.
        received = feed(conn, data, chunk_size=997)
        assert reassemble(received) == [TextMessage("a" * n) for n in (5, 130, 70000)]

    def test_non_minimal_length_encoding_is_accepted(self, conn: Connection) -> None:
        """Section 5.2 asks senders for the minimal length encoding; receivers are not required to check.

        wsproto_core (like wsproto) accepts a non-minimal encoding.
        """
        data = frame_for(conn, OP_TEXT, b"hi", length_size=16) + frame_for(conn, OP_BINARY, b"yo", length_size=64)
        assert feed(conn, data) == [TextMessage("hi"), BytesMessage(b"yo")]

    @pytest.mark.parametrize("min_partial_size", [0, 100, 65536])
    def test_events_taken_before_receive_data_sees_later_bytes(self, conn: Connection, min_partial_size: int) -> None:
        """events() is a generator, as wsproto's: it reads the buffer when advanced, not when called."""
        conn = Connection(CLIENT if conn.client else SERVER, min_partial_size=min_partial_size)
        frame = frame_for(conn, OP_BINARY, b"z" * 300)
        conn.receive_data(frame[:20])  # the header and a few bytes, held back unless min_partial_size is 0
        first = list(conn.events())
        early = conn.events()
        conn.receive_data(frame[20:])
        later = list(early)
        assert later, "the iterator taken before receive_data() missed the bytes fed after it"
        received = first + later
        assert all(isinstance(event, BytesMessage) for event in received)
        assert b"".join(event.data for event in received if isinstance(event, BytesMessage)) == b"z" * 300
        assert received[-1].message_finished  # type: ignore[union-attr]

    def test_non_minimal_length_encoding_of_a_control_frame_is_accepted(self, conn: Connection) -> None:
        """The 125-byte limit of section 5.5 is on the payload, not on the length field's form."""
        data = frame_for(conn, OP_PING, b"hi", length_size=16) + frame_for(conn, OP_PONG, b"yo", length_size=64)
        assert feed(conn, data) == [Ping(b"hi"), Pong(b"yo")]

    @pytest.mark.parametrize("length_size", [16, 64])
    def test_long_control_frame_fails_before_its_payload_arrives(self, conn: Connection, length_size: int) -> None:
        frame = frame_for(conn, OP_PING, b"x" * 126, length_size=length_size)
        header_size = 2 + length_size // 8 + (0 if conn.client else 4)
        received = feed(conn, frame[:header_size])
        assert_failed(conn, received, 1002)
        assert conn.failure is not None
        assert "126 bytes" in str(conn.failure)


class TestFailure:
    """Section 7.1.7: failing the connection yields a CloseConnection, never an exception."""

    FAILURES: ClassVar[list[tuple[str, Any, int]]] = [
        ("reserved-opcode", lambda c: frame_for(c, 0x3, b"x"), 1002),
        ("rsv1", lambda c: frame_for(c, OP_TEXT, b"x", rsv=4), 1002),
        ("bad-utf8", lambda c: frame_for(c, OP_TEXT, b"\xff"), 1007),
        ("bad-close-code", lambda c: frame_for(c, OP_CLOSE, close_payload(999)), 1002),
    ]

    @pytest.mark.parametrize(("make", "code"), [(m, c) for _, m, c in FAILURES], ids=[i for i, _, _ in FAILURES])
    def test_failure_sequence(self, conn: Connection, make: Any, code: int) -> None:
        received = feed(conn, make(conn))
        assert_failed(conn, received, code)
        # Anything after the failure is ignored.
        conn.receive_data(frame_for(conn, OP_TEXT, b"ignored"))
        assert list(conn.events()) == []
        assert conn.buffered_bytes == 0
        # Replying with event.response() sends a Close with the failure code.
        close = received[-1]
        assert isinstance(close, CloseConnection)
        data = conn.send(close.response())
        first, _, masked, _, payload, rest = parse_frame(data)
        assert first == 0x88
        assert masked is conn.client
        assert rest == b""
        assert int.from_bytes(payload[:2], "big") == code
        payload[2:].decode("utf-8")  # the reason is valid UTF-8
        assert len(payload) <= 125
        assert conn.state is S.CLOSED
        # Nothing is sent twice.
        with pytest.raises(LocalProtocolError):
            conn.send(close.response())
        with pytest.raises(LocalProtocolError):
            conn.send(TextMessage("late"))
        assert conn.state is S.CLOSED

    def test_no_exception_escapes_events(self, conn: Connection) -> None:
        conn.receive_data(frame_for(conn, 0xF))
        received = list(conn.events())  # must not raise
        assert_failed(conn, received, 1002)

    def test_data_cannot_be_sent_after_failure(self, conn: Connection) -> None:
        """After failing, only the Close that answers it may be sent (section 7.1.7)."""
        feed(conn, frame_for(conn, 0x4))
        with pytest.raises(LocalProtocolError):
            conn.send(TextMessage("nope"))
        with pytest.raises(LocalProtocolError):
            conn.send(Ping())
        assert conn.state is S.REMOTE_CLOSING

    def test_failure_after_our_close_goes_to_closed(self, conn: Connection) -> None:
        """We had already sent Close: there is nothing left to send, the connection is CLOSED."""
        conn.send(CloseConnection(1000))
        assert conn.state is S.LOCAL_CLOSING
        received = feed(conn, frame_for(conn, 0xB))
        assert_failed(conn, received, 1002, was_closing=True)
        with pytest.raises(LocalProtocolError):
            conn.send(received[-1].response())  # type: ignore[attr-defined]

    def test_valid_message_before_invalid_frame_is_delivered(self, conn: Connection) -> None:
        data = (
            frame_for(conn, OP_TEXT, b"first")
            + frame_for(conn, OP_PING, b"p")
            + frame_for(conn, OP_BINARY, b"x" * 300)
            + frame_for(conn, OP_TEXT, b"\xc0\xaf")
        )
        received = feed(conn, data)
        assert received[:3] == [TextMessage("first"), Ping(b"p"), BytesMessage(b"x" * 300)]
        assert_failed(conn, received, 1007)

    def test_state_is_open_until_failure_event_is_yielded(self, conn: Connection) -> None:
        conn.receive_data(frame_for(conn, OP_TEXT, b"ok") + frame_for(conn, 0x5))
        iterator = conn.events()
        assert next(iterator) == TextMessage("ok")
        assert conn.state is S.OPEN
        assert conn.failure is None
        # An echo of the message can still be sent.
        conn.send(TextMessage("ok"))
        assert isinstance(next(iterator), CloseConnection)
        assert conn.state is S.REMOTE_CLOSING

    def test_failure_reason_is_human_readable(self, conn: Connection) -> None:
        received = feed(conn, frame_for(conn, 0x3))
        close = received[-1]
        assert isinstance(close, CloseConnection)
        assert close.reason
        assert close.reason == str(conn.failure)[:123]

    def test_receive_none_after_failure(self, conn: Connection) -> None:
        """No 1006 after a failure: the failure already reported the end."""
        feed(conn, frame_for(conn, 0x3))
        conn.receive_data(None)
        assert list(conn.events()) == []
        assert conn.state is S.CLOSED


class TestUtf8:
    """Section 8.1: text must be valid UTF-8; invalid data fails the connection with 1007."""

    KOSME_BAD = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited"

    def test_fail_fast_inside_a_frame(self, conn: Connection) -> None:
        """Autobahn 6.4.x: the first invalid byte fails, before the rest of the frame arrives."""
        frame = frame_for(conn, OP_TEXT, self.KOSME_BAD)
        header_size = len(frame) - len(self.KOSME_BAD)
        bad = self.KOSME_BAD.index(b"\xf4\x90") + 1  # index of \x90, the first byte that cannot be valid
        # Everything up to \xf4 could still be valid.
        received = feed(conn, frame[: header_size + bad])
        assert not any(isinstance(event, CloseConnection) for event in received)
        assert "".join(event.data for event in received) == self.KOSME_BAD[:11].decode()  # type: ignore[attr-defined]
        # \x90 after \xf4 is beyond U+10FFFF: fail now, without the rest of the frame.
        received = feed(conn, frame[header_size + bad : header_size + bad + 1])
        assert_failed(conn, received, 1007)

    def test_fail_fast_bad_bytes_arrive_together(self, conn: Connection) -> None:
        frame = frame_for(conn, OP_TEXT, self.KOSME_BAD)
        header_size = len(frame) - len(self.KOSME_BAD)
        received = feed(conn, frame[: header_size + 14])  # through \xf4\x90\x80
        assert_failed(conn, received, 1007)

    def test_surrogate_start_fails_before_third_byte(self, conn: Connection) -> None:
        """ED A0..BF can only start a UTF-16 surrogate (U+D800..U+DFFF), which UTF-8 excludes."""
        frame = frame_for(conn, OP_TEXT, b"ok\xed\xa0\x80rest")
        header_size = len(frame) - 9
        assert not any(isinstance(e, CloseConnection) for e in feed(conn, frame[: header_size + 3]))
        received = feed(conn, frame[header_size + 3 : header_size + 4])  # the \xa0
        assert_failed(conn, received, 1007)

    def test_surrogate_start_across_fragments(self, conn: Connection) -> None:
        data = frame_for(conn, OP_TEXT, b"\xed", fin=False) + frame_for(conn, OP_CONT, b"\xa0", fin=False)
        assert_failed(conn, feed(conn, data), 1007)

    def test_ed_9f_is_a_valid_prefix(self, conn: Connection) -> None:
        """ED 9F BF is U+D7FF, the last code point before the surrogates."""
        frame = frame_for(conn, OP_TEXT, b"\xed\x9f\xbf")
        received = feed(conn, frame[:-1])
        assert received == []
        assert feed(conn, frame[-1:]) == [TextMessage("\ud7ff")]

    def test_code_point_split_across_frames(self, conn: Connection) -> None:
        data = (
            frame_for(conn, OP_TEXT, b"a\xce", fin=False)
            + frame_for(conn, OP_CONT, b"\xba\xe1", fin=False)
            + frame_for(conn, OP_CONT, b"\xbd\xb9")
        )
        received = feed(conn, data)
        assert all(isinstance(event, TextMessage) for event in received)
        assert [event.frame_finished for event in received] == [True, True, True]  # type: ignore[attr-defined]
        assert [event.message_finished for event in received] == [False, False, True]  # type: ignore[attr-defined]
        assert "".join(event.data for event in received) == "a" + b"\xce\xba\xe1\xbd\xb9".decode()  # type: ignore[attr-defined]
        assert conn.failure is None

    def test_code_point_split_across_reads(self, conn: Connection) -> None:
        payload = "😀€é".encode()
        frame = frame_for(conn, OP_TEXT, payload)
        received = feed(conn, frame, chunk_size=1)
        assert "".join(event.data for event in received) == "😀€é"  # type: ignore[attr-defined]
        assert received[-1].message_finished  # type: ignore[attr-defined]
        # No empty piece is delivered in the middle of a frame.
        assert all(event.data for event in received[:-1])  # type: ignore[attr-defined]

    @pytest.mark.parametrize("payload", [b"\xce", b"abc\xe2\x82", b"\xf0\x9f\x98"])
    def test_truncated_at_message_end(self, conn: Connection, payload: bytes) -> None:
        assert_failed(conn, feed(conn, frame_for(conn, OP_TEXT, payload)), 1007)

    def test_truncated_at_end_of_fragmented_message(self, conn: Connection) -> None:
        data = frame_for(conn, OP_TEXT, b"ab", fin=False) + frame_for(conn, OP_CONT, b"\xe2\x82")
        received = feed(conn, data)
        assert received[0] == TextMessage("ab", True, False)
        assert_failed(conn, received, 1007)

    def test_truncated_at_end_of_streamed_frame(self, conn: Connection) -> None:
        frame = frame_for(conn, OP_TEXT, b"abc\xe2\x82")
        assert_failed(conn, feed(conn, frame, chunk_size=2), 1007)

    def test_invalid_in_continuation(self, conn: Connection) -> None:
        data = frame_for(conn, OP_TEXT, b"ok", fin=False) + frame_for(conn, OP_CONT, b"\xff")
        assert_failed(conn, feed(conn, data), 1007)

    def test_binary_is_not_checked(self, conn: Connection) -> None:
        assert feed(conn, frame_for(conn, OP_BINARY, b"\xff\xed\xa0")) == [BytesMessage(b"\xff\xed\xa0")]

    def test_invalid_close_reason(self, conn: Connection) -> None:
        """Section 5.5.1: the Close reason is UTF-8 too."""
        assert_failed(conn, feed(conn, frame_for(conn, OP_CLOSE, close_payload(1000, b"\xff"))), 1007)


class TestSizeLimits:
    """Frames or messages over the configured limits fail with 1009 (section 7.4.1)."""

    @pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
    def test_frame_limit(self, role: ConnectionType) -> None:
        conn = Connection(role, max_frame_size=10)
        assert feed(conn, frame_for(conn, OP_BINARY, b"x" * 10)) == [BytesMessage(b"x" * 10)]
        assert_failed(conn, feed(conn, frame_for(conn, OP_BINARY, b"x" * 11)), 1009)

    @pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
    def test_frame_limit_fails_on_header(self, role: ConnectionType) -> None:
        """The limit is enforced on the announced length, before any payload arrives."""
        conn = Connection(role, max_frame_size=1000)
        header = frame_for(conn, OP_BINARY, b"", length=1001, length_size=16)
        assert_failed(conn, feed(conn, header), 1009)

    @pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
    def test_frame_limit_applies_to_continuations(self, role: ConnectionType) -> None:
        conn = Connection(role, max_frame_size=10, max_message_size=None)
        data = frame_for(conn, OP_TEXT, b"a" * 10, fin=False) + frame_for(conn, OP_CONT, b"a" * 11)
        received = feed(conn, data)
        assert received[0] == TextMessage("a" * 10, True, False)
        assert_failed(conn, received, 1009)

    @pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
    def test_message_limit(self, role: ConnectionType) -> None:
        conn = Connection(role, max_message_size=10)
        assert feed(conn, frame_for(conn, OP_TEXT, b"x" * 10)) == [TextMessage("x" * 10)]
        assert_failed(conn, feed(conn, frame_for(conn, OP_TEXT, b"x" * 11)), 1009)

    @pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
    def test_message_limit_counts_across_fragments(self, role: ConnectionType) -> None:
        conn = Connection(role, max_message_size=10)
        ok = frame_for(conn, OP_BINARY, b"x" * 6, fin=False) + frame_for(conn, OP_CONT, b"x" * 4)
        assert reassemble(feed(conn, ok)) == [BytesMessage(b"x" * 10)]
        # The count restarts with each message.
        too_big = frame_for(conn, OP_BINARY, b"x" * 6, fin=False) + frame_for(conn, OP_CONT, b"x" * 5)
        received = feed(conn, too_big)
        assert received[0] == BytesMessage(b"x" * 6, True, False)
        assert_failed(conn, received, 1009)

    @pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
    def test_control_frames_do_not_count(self, role: ConnectionType) -> None:
        conn = Connection(role, max_message_size=10, max_frame_size=10)
        data = (
            frame_for(conn, OP_TEXT, b"x" * 5, fin=False)
            + frame_for(conn, OP_PING, b"p" * 100)
            + frame_for(conn, OP_CONT, b"x" * 5)
        )
        assert reassemble(feed(conn, data)) == [Ping(b"p" * 100), TextMessage("x" * 10)]

    @pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
    def test_zero_limit(self, role: ConnectionType) -> None:
        conn = Connection(role, max_frame_size=0, max_message_size=0)
        assert feed(conn, frame_for(conn, OP_TEXT)) == [TextMessage("")]
        assert_failed(conn, feed(conn, frame_for(conn, OP_TEXT, b"x")), 1009)

    @pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
    def test_default_frame_limit(self, role: ConnectionType) -> None:
        conn = Connection(role)
        header = frame_for(conn, OP_BINARY, b"", length=DEFAULT_MAX_FRAME_SIZE + 1, length_size=64)
        assert_failed(conn, feed(conn, header), 1009)

    @pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
    def test_default_frame_limit_is_inclusive(self, role: ConnectionType) -> None:
        conn = Connection(role)
        header = frame_for(conn, OP_BINARY, b"", length=DEFAULT_MAX_FRAME_SIZE, length_size=64)
        assert feed(conn, header) == []
        assert conn.failure is None

    def test_default_message_limit_across_fragments(self) -> None:
        """64 MiB in total: two 32 MiB fragments pass, one more byte fails (client role: no unmasking)."""
        conn = Connection(CLIENT)
        half = DEFAULT_MAX_MESSAGE_SIZE // 2
        received = feed(conn, build_frame(OP_BINARY, bytes(half), fin=False))
        assert sum(len(event.data) for event in received) == half  # type: ignore[attr-defined]
        received = feed(conn, build_frame(OP_CONT, b"", length=half + 1, fin=True))
        assert_failed(conn, received, 1009)

    @pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
    def test_no_limits(self, role: ConnectionType) -> None:
        """None means unlimited: a header announcing 2**62 bytes is accepted and streamed."""
        conn = Connection(role, max_frame_size=None, max_message_size=None, min_partial_size=0)
        frame = frame_for(conn, OP_BINARY, b"", length=2**62, length_size=64)
        assert feed(conn, frame) == []
        # Stream a little of it; pieces arrive unfinished.
        key = frame[-4:] if not conn.client else None
        chunk = b"abcd" if key is None else bytes(b ^ k for b, k in zip(b"abcd", key, strict=True))
        assert feed(conn, chunk) == [BytesMessage(b"abcd", False, False)]
        assert conn.failure is None

    def test_16_mib_message_by_default(self) -> None:
        """uvicorn's default and Autobahn's largest case: a 16 MiB message works out of the box."""
        client, server = pair()
        data = random.Random(16).randbytes(1024) * (16 * 1024)
        received = reassemble(feed(server, client.send(BytesMessage(data))))
        assert received == [BytesMessage(data)]
        text = "é" * (8 * 1024 * 1024)  # 16 MiB of UTF-8
        received = reassemble(feed(client, server.send(TextMessage(text))))
        assert received == [TextMessage(text)]


class TestStreaming:
    @pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
    def test_frame_in_pieces(self, conn: Connection, opcode: int) -> None:
        conn = Connection(conn.connection_type, min_partial_size=0)
        payload = b"0123456789" * 30
        frame = frame_for(conn, opcode, payload)
        received = feed(conn, frame, chunk_size=7)
        assert len(received) > 1
        assert all(type(event) is (TextMessage if opcode == OP_TEXT else BytesMessage) for event in received)
        for event in received[:-1]:
            assert event.frame_finished is False  # type: ignore[attr-defined]
            assert event.message_finished is False  # type: ignore[attr-defined]
        assert received[-1].frame_finished is True  # type: ignore[attr-defined]
        assert received[-1].message_finished is True  # type: ignore[attr-defined]
        joined = "".join if opcode == OP_TEXT else b"".join
        assert joined(event.data for event in received) == (  # type: ignore[attr-defined]
            payload.decode() if opcode == OP_TEXT else payload
        )

    @pytest.mark.parametrize("min_partial_size", [0, 1000, DEFAULT_MIN_PARTIAL_SIZE])
    def test_64k_masked_frame_one_byte_at_a_time(self, min_partial_size: int) -> None:
        """Section 5.3: unmasking must follow the key position across arbitrary pieces."""
        client, _ = pair()
        server = Connection(SERVER, min_partial_size=min_partial_size)
        payload = random.Random(64).randbytes(64 * 1024)
        frame = client.send(BytesMessage(payload))
        assert frame[1] & 0x80
        received = feed(server, frame, chunk_size=1)
        assert b"".join(event.data for event in received) == payload  # type: ignore[attr-defined]
        assert received[-1].message_finished  # type: ignore[attr-defined]
        assert not any(event.frame_finished for event in received[:-1])  # type: ignore[attr-defined]
        assert len(received) == (len(payload) if not min_partial_size else -(-len(payload) // min_partial_size))

    def test_1mib_masked_frame_in_4k_pieces(self) -> None:
        client, server = pair()
        payload = random.Random(1).randbytes(1024 * 1024)
        received = feed(server, client.send(BytesMessage(payload)), chunk_size=4096)
        assert reassemble(received) == [BytesMessage(payload)]

    def test_text_frame_one_byte_at_a_time(self) -> None:
        client, server = pair()
        text = "Grüße, κόσμε, 😀! " * 500
        received = feed(server, client.send(TextMessage(text)), chunk_size=1)
        assert reassemble(received) == [TextMessage(text)]

    @pytest.mark.parametrize("min_partial_size", [0, 5, DEFAULT_MIN_PARTIAL_SIZE])
    def test_odd_chunking_with_unaligned_key_offsets(self, min_partial_size: int) -> None:
        client, _ = pair()
        server = Connection(SERVER, min_partial_size=min_partial_size)
        payload = bytes(range(256)) * 40
        frame = client.send(BytesMessage(payload))
        rng = random.Random(5)
        pieces = []
        position = 0
        while position < len(frame):
            size = rng.randint(1, 11)
            pieces.append(frame[position : position + size])
            position += size
        assert reassemble(feed_pieces(server, pieces)) == [BytesMessage(payload)]

    def test_fragmented_message_flags(self, conn: Connection) -> None:
        """Section 5.4: a message is a first frame with FIN clear, continuations, and a final frame."""
        data = (
            frame_for(conn, OP_TEXT, b"ab", fin=False)
            + frame_for(conn, OP_PING, b"in between")
            + frame_for(conn, OP_CONT, b"cd", fin=False)
            + frame_for(conn, OP_CONT, b"", fin=False)
            + frame_for(conn, OP_CONT, b"ef")
        )
        assert feed(conn, data) == [
            TextMessage("ab", True, False),
            Ping(b"in between"),
            TextMessage("cd", True, False),
            TextMessage("", True, False),
            TextMessage("ef", True, True),
        ]

    def test_fragmented_binary_streamed(self, conn: Connection) -> None:
        data = frame_for(conn, OP_BINARY, b"abcdef", fin=False) + frame_for(conn, OP_CONT, b"ghij")
        received = feed(conn, data, chunk_size=3)
        assert all(isinstance(event, BytesMessage) for event in received)
        assert b"".join(event.data for event in received) == b"abcdefghij"  # type: ignore[attr-defined]
        flags = [(event.frame_finished, event.message_finished) for event in received]  # type: ignore[attr-defined]
        assert (True, False) in flags  # end of the first frame
        assert flags[-1] == (True, True)
        assert flags.count((True, True)) == 1

    def test_control_frame_waits_until_complete(self, conn: Connection) -> None:
        frame = frame_for(conn, OP_PING, b"ping-data")
        assert feed(conn, frame[:-1]) == []
        assert feed(conn, frame[-1:]) == [Ping(b"ping-data")]

    def test_new_message_after_fragmented_one(self, conn: Connection) -> None:
        data = (
            frame_for(conn, OP_BINARY, b"a", fin=False)
            + frame_for(conn, OP_CONT, b"b")
            + frame_for(conn, OP_TEXT, b"c", fin=False)
            + frame_for(conn, OP_CONT, b"d")
        )
        assert reassemble(feed(conn, data)) == [BytesMessage(b"ab"), TextMessage("cd")]


class TestPartialDelivery:
    """min_partial_size: binary frames streamed in pieces of a minimum size, text as it arrives."""

    def test_default(self) -> None:
        assert DEFAULT_MIN_PARTIAL_SIZE == 64 * 1024

    def test_1mib_frame_in_4k_reads_makes_16_events(self, conn: Connection) -> None:
        payload = random.Random(7).randbytes(1024 * 1024)
        received = feed(conn, frame_for(conn, OP_BINARY, payload), chunk_size=4096)
        assert len(received) == 16
        assert all(len(event.data) >= DEFAULT_MIN_PARTIAL_SIZE for event in received[:-1])  # type: ignore[attr-defined]
        assert reassemble(received) == [BytesMessage(payload)]

    def test_held_back_bytes_are_bounded(self, conn: Connection) -> None:
        """The bytes waiting to be handed out never exceed min_partial_size plus one read."""
        conn = Connection(conn.connection_type, min_partial_size=1000)
        frame = frame_for(conn, OP_BINARY, bytes(100_000))
        largest = 0
        for start in range(0, len(frame), 300):
            conn.receive_data(frame[start : start + 300])
            largest = max(largest, conn.buffered_bytes)
            for event in conn.events():
                assert len(event.data) >= 1000 or event.frame_finished  # type: ignore[attr-defined]
        assert 1000 <= largest < 1000 + 300
        assert conn.buffered_bytes == 0

    def test_a_frame_that_ends_is_handed_out_at_once(self, conn: Connection) -> None:
        frame = frame_for(conn, OP_BINARY, b"abcdef")
        assert feed(conn, frame[:-3]) == []
        assert conn.buffered_bytes > 0
        assert feed(conn, frame[-3:]) == [BytesMessage(b"abcdef")]

    def test_text_is_handed_out_as_it_arrives(self, conn: Connection) -> None:
        """Section 8.1: invalid UTF-8 must fail the connection promptly, so text is never held back."""
        frame = frame_for(conn, OP_TEXT, b"hello world, " * 10)
        received = feed(conn, frame, chunk_size=20)
        assert len(received) > 5
        assert reassemble(received) == [TextMessage("hello world, " * 10)]
        conn = Connection(conn.connection_type)
        frame = frame_for(conn, OP_TEXT, b"ok" + b"\xff" + b"x" * 1000)
        assert_failed(conn, feed(conn, frame[:20]), 1007)

    def test_transport_close_hands_out_what_was_held_back(self, conn: Connection) -> None:
        frame = frame_for(conn, OP_BINARY, bytes(10_000))
        assert feed(conn, frame[:5000]) == []
        conn.receive_data(None)
        received = list(conn.events())
        assert len(received) == 2
        assert isinstance(received[0], BytesMessage)
        assert not received[0].frame_finished
        assert received[0].data == bytes(len(received[0].data))
        assert received[1] == CloseConnection(code=CloseReason.ABNORMAL_CLOSURE)

    def test_compressed_binary_is_held_back_too(self) -> None:
        """Pieces of a compressed binary message are gathered before inflating."""
        client_ext, server_ext = PerMessageDeflate(), PerMessageDeflate()
        response = server_ext.accept("permessage-deflate; " + client_ext.offer())
        client_ext.finalize("permessage-deflate" + (f"; {response}" if response else ""))
        client = Connection(CLIENT, [client_ext])
        server = Connection(SERVER, [server_ext], min_partial_size=2000)
        payload = random.Random(3).randbytes(20_000)
        wire = client.send(BytesMessage(payload))
        received = feed(server, wire, chunk_size=100)
        # The size counts received (compressed) bytes: one event per 2000 of them.
        assert len(received) <= len(wire) // 2000 + 1
        assert reassemble(received) == [BytesMessage(payload)]


class TestCloseHandshake:
    """Section 7: the closing handshake, in both directions."""

    def test_client_initiates(self) -> None:
        pipe = Pipe()
        data = pipe.client.send(CloseConnection(1000, "bye"))
        assert pipe.client.state is S.LOCAL_CLOSING
        received = feed(pipe.server, data)
        assert received == [CloseConnection(1000, "bye")]
        assert pipe.server.state is S.REMOTE_CLOSING
        reply = pipe.server.send(received[0].response())  # type: ignore[attr-defined]
        assert pipe.server.state is S.CLOSED
        assert feed(pipe.client, reply) == [CloseConnection(1000, "bye")]
        assert pipe.client.state is S.CLOSED

    def test_server_initiates(self) -> None:
        pipe = Pipe()
        received = pipe.send(pipe.server, CloseConnection(4000, "é"))
        assert pipe.server.state is S.LOCAL_CLOSING
        assert received == [CloseConnection(4000, "é")]
        assert pipe.client.state is S.REMOTE_CLOSING
        assert pipe.send(pipe.client, received[0].response()) == [CloseConnection(4000, "é")]  # type: ignore[attr-defined]
        assert pipe.client.state is pipe.server.state is S.CLOSED

    def test_received_code_is_enum_when_registered(self, conn: Connection) -> None:
        (close,) = feed(conn, frame_for(conn, OP_CLOSE, close_payload(1001)))
        assert close.code is CloseReason.GOING_AWAY  # type: ignore[attr-defined]
        assert close.reason == ""  # type: ignore[attr-defined]

    def test_empty_close_is_1005(self, conn: Connection) -> None:
        """Section 7.1.5: a Close without status code is reported as 1005."""
        received = feed(conn, frame_for(conn, OP_CLOSE))
        assert received == [CloseConnection(1005, "")]
        assert conn.state is S.REMOTE_CLOSING
        reply = conn.send(received[0].response())  # type: ignore[attr-defined]
        # Section 7.4.1: 1005 must not be sent; the response is an empty Close.
        first, length, masked, _, payload, rest = parse_frame(reply)
        assert (first, length, payload, rest) == (0x88, 0, b"", b"")
        assert masked is conn.client
        assert conn.state is S.CLOSED

    @pytest.mark.parametrize(
        "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
    )
    def test_valid_received_codes(self, conn: Connection, code: int) -> None:
        """Section 7.4: defined, registered and application codes are accepted."""
        received = feed(conn, frame_for(conn, OP_CLOSE, close_payload(code, b"why")))
        assert received == [CloseConnection(code, "why")]
        assert conn.failure is None
        assert conn.state is S.REMOTE_CLOSING
        # And echoing them back works.
        assert close_sent_frames(conn.send(received[0].response())) == [close_payload(code, b"why")]  # type: ignore[attr-defined]

    def test_close_in_the_middle_of_a_fragmented_message(self, conn: Connection) -> None:
        """Control frames may be injected between fragments (section 5.4), Close included."""
        data = frame_for(conn, OP_TEXT, b"part", fin=False) + frame_for(conn, OP_CLOSE, close_payload(1000))
        assert feed(conn, data) == [TextMessage("part", True, False), CloseConnection(1000, "")]
        assert conn.failure is None
        assert conn.state is S.REMOTE_CLOSING

    def test_data_after_close_is_ignored(self, conn: Connection) -> None:
        """Section 5.5.1: nothing after the Close frame is processed."""
        data = frame_for(conn, OP_CLOSE, close_payload(1000)) + frame_for(conn, OP_TEXT, b"late")
        assert feed(conn, data) == [CloseConnection(1000, "")]
        assert feed(conn, frame_for(conn, OP_TEXT, b"later") + b"\xff\xff\xff") == []
        assert conn.failure is None
        assert conn.state is S.REMOTE_CLOSING

    def test_garbage_after_close_is_ignored(self, conn: Connection) -> None:
        data = frame_for(conn, OP_CLOSE, close_payload(1000)) + frame_for(conn, 0x3)
        assert feed(conn, data) == [CloseConnection(1000, "")]
        assert conn.failure is None

    def test_events_before_close_come_first(self, conn: Connection) -> None:
        data = (
            frame_for(conn, OP_TEXT, b"one")
            + frame_for(conn, OP_PING)
            + frame_for(conn, OP_BINARY, b"two")
            + frame_for(conn, OP_CLOSE, close_payload(1001))
        )
        assert feed(conn, data) == [TextMessage("one"), Ping(b""), BytesMessage(b"two"), CloseConnection(1001, "")]

    def test_state_changes_when_close_is_yielded(self, conn: Connection) -> None:
        """An echo server can still answer a message that arrived in the same read as the Close."""
        conn.receive_data(frame_for(conn, OP_TEXT, b"echo me") + frame_for(conn, OP_CLOSE, close_payload(1000)))
        iterator = conn.events()
        message = next(iterator)
        assert message == TextMessage("echo me")
        assert conn.state is S.OPEN
        echo = conn.send(TextMessage(message.data))  # type: ignore[attr-defined]
        assert parse_frame(echo)[4] == b"echo me"
        close = next(iterator)
        assert close == CloseConnection(1000, "")
        assert conn.state is S.REMOTE_CLOSING
        assert list(iterator) == []

    def test_peer_data_still_delivered_while_local_closing(self) -> None:
        """Section 7.1.2/5.5.1: after our Close the peer may still send data until its Close."""
        pipe = Pipe()
        assert pipe.send(pipe.client, CloseConnection(1000)) == [CloseConnection(1000, "")]
        data = pipe.server.send(CloseConnection(1000))  # server replies
        # A message the server sent before seeing our Close, then its Close.
        early = build_frame(OP_TEXT, b"in flight")
        assert feed(pipe.client, early + data) == [TextMessage("in flight"), CloseConnection(1000, "")]
        assert pipe.client.state is S.CLOSED

    def test_no_data_after_receiving_close(self, conn: Connection) -> None:
        feed(conn, frame_for(conn, OP_CLOSE, close_payload(1000)))
        for event in (TextMessage("x"), BytesMessage(b"x"), Ping(), Pong()):
            with pytest.raises(LocalProtocolError):
                conn.send(event)
        assert conn.state is S.REMOTE_CLOSING

    def test_both_sides_close_simultaneously(self) -> None:
        pipe = Pipe()
        from_client = pipe.client.send(CloseConnection(1000, "c"))
        from_server = pipe.server.send(CloseConnection(1001, "s"))
        assert feed(pipe.server, from_client) == [CloseConnection(1000, "c")]
        assert feed(pipe.client, from_server) == [CloseConnection(1001, "s")]
        assert pipe.client.state is pipe.server.state is S.CLOSED


class TestTransportClose:
    def test_abrupt_close_reports_1006(self, conn: Connection) -> None:
        """Section 7.1.5: a connection closed without a Close frame has code 1006."""
        conn.receive_data(None)
        assert conn.state is S.CLOSED
        assert list(conn.events()) == [CloseConnection(1006)]
        assert list(conn.events()) == []

    def test_buffered_frames_delivered_before_1006(self, conn: Connection) -> None:
        data = frame_for(conn, OP_TEXT, b"a") + frame_for(conn, OP_BINARY, b"b") + frame_for(conn, OP_BINARY, b"cut")
        conn.receive_data(data[:-1])  # the last frame is incomplete
        conn.receive_data(None)
        received = list(conn.events())
        assert received[:2] == [TextMessage("a"), BytesMessage(b"b")]
        assert received[-1] == CloseConnection(1006)
        # Whatever arrived of the incomplete frame may be delivered unfinished, never finished.
        for event in received[2:-1]:
            assert isinstance(event, BytesMessage)
            assert not event.frame_finished

    def test_close_then_eof_has_no_1006(self, conn: Connection) -> None:
        conn.receive_data(frame_for(conn, OP_CLOSE, close_payload(1000)))
        assert list(conn.events()) == [CloseConnection(1000, "")]
        conn.receive_data(None)
        assert list(conn.events()) == []
        assert conn.state is S.CLOSED

    def test_close_buffered_before_eof_has_no_1006(self, conn: Connection) -> None:
        conn.receive_data(frame_for(conn, OP_TEXT, b"x") + frame_for(conn, OP_CLOSE, close_payload(1000)))
        conn.receive_data(None)
        assert list(conn.events()) == [TextMessage("x"), CloseConnection(1000, "")]
        assert conn.state is S.CLOSED

    def test_eof_during_local_closing(self, conn: Connection) -> None:
        conn.send(CloseConnection(1000))
        conn.receive_data(None)
        assert conn.state is S.CLOSED
        assert list(conn.events()) == [CloseConnection(1006)]

    def test_eof_mid_fragmented_message(self, conn: Connection) -> None:
        conn.receive_data(frame_for(conn, OP_TEXT, b"half", fin=False))
        conn.receive_data(None)
        assert list(conn.events()) == [TextMessage("half", True, False), CloseConnection(1006)]

    def test_violation_in_buffered_data_after_eof(self, conn: Connection) -> None:
        conn.receive_data(frame_for(conn, OP_TEXT, b"ok") + frame_for(conn, 0x3))
        conn.receive_data(None)
        received = list(conn.events())
        assert received[0] == TextMessage("ok")
        assert isinstance(received[-1], CloseConnection)
        assert received[-1].code == 1002
        assert len(received) == 2  # no 1006 on top of the failure
        assert conn.state is S.CLOSED

    def test_receive_after_eof_raises(self, conn: Connection) -> None:
        conn.receive_data(None)
        with pytest.raises(LocalProtocolError):
            conn.receive_data(b"\x81\x00")

    def test_nothing_can_be_sent_after_eof(self, conn: Connection) -> None:
        conn.receive_data(None)
        for event in (TextMessage("x"), Ping(), CloseConnection(1000)):
            with pytest.raises(LocalProtocolError):
                conn.send(event)


class TestSending:
    def test_server_frames_exact_bytes(self) -> None:
        """Section 5.1: a server MUST NOT mask; section 5.2 layout."""
        server = Connection(SERVER)
        assert server.send(TextMessage("hi")) == b"\x81\x02hi"
        assert server.send(BytesMessage(b"\x00\x01")) == b"\x82\x02\x00\x01"
        assert server.send(Ping(b"p")) == b"\x89\x01p"
        assert server.send(Pong(b"q")) == b"\x8a\x01q"
        assert server.send(CloseConnection(1000, "ok")) == b"\x88\x04\x03\xe8ok"

    def test_fragmented_send(self, conn: Connection) -> None:
        """Section 5.4: first frame has the opcode and FIN clear; continuations use opcode 0."""
        frames = [
            conn.send(TextMessage("ab", message_finished=False)),
            conn.send(Ping(b"x")),  # control frames may be interleaved
            conn.send(TextMessage("cd", message_finished=False)),
            conn.send(TextMessage("ef")),
            conn.send(BytesMessage(b"gh", message_finished=False)),
            conn.send(BytesMessage(b"ij")),
        ]
        parsed = [parse_frame(frame) for frame in frames]
        assert [first for first, *_ in parsed] == [0x01, 0x89, 0x00, 0x80, 0x02, 0x80]
        assert [payload for *_, payload, _rest in parsed] == [b"ab", b"x", b"cd", b"ef", b"gh", b"ij"]

    def test_client_frames_are_masked(self) -> None:
        """Section 5.3: a client MUST mask every frame, with a fresh key for each."""
        client = Connection(CLIENT)
        keys = []
        events: list[Event] = [TextMessage("hello"), BytesMessage(b"x" * 200), Ping(b"p"), Pong(b"q")]
        events += [BytesMessage(bytes([n]) * n) for n in range(20)]
        for event in events:
            data = client.send(event)
            _first, _length, masked, key, payload, rest = parse_frame(data)
            assert masked
            assert rest == b""
            keys.append(key)
            expected = event.data if isinstance(event, Message) else event.payload  # type: ignore[attr-defined]
            assert payload == (expected.encode() if isinstance(expected, str) else expected)
        assert len(set(keys)) == len(keys)

    def test_client_masks_beyond_one_batch(self) -> None:
        """Keys are drawn in batches; frames past the first batch are still masked correctly."""
        client, server = pair()
        data = b"".join(client.send(BytesMessage(n.to_bytes(2, "big") * 70)) for n in range(600))
        assert feed(server, data) == [BytesMessage(n.to_bytes(2, "big") * 70) for n in range(600)]

    def test_client_close_is_masked(self) -> None:
        client = Connection(CLIENT)
        _, _, masked, _, payload, _ = parse_frame(client.send(CloseConnection(1000)))
        assert masked
        assert payload == b"\x03\xe8"

    def test_server_frames_are_not_masked(self) -> None:
        server = Connection(SERVER)
        for event in (TextMessage("x" * 300), BytesMessage(b"y" * 70000), Ping(b"z"), CloseConnection(1000)):
            assert not parse_frame(server.send(event))[2]

    @pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536])
    @pytest.mark.parametrize("sender_role", ROLES, ids=ROLE_IDS)
    def test_length_encoding_boundaries(self, length: int, sender_role: ConnectionType) -> None:
        """Section 5.2: 7-bit up to 125, 16-bit up to 65535, 64-bit beyond; each round trips."""
        pipe = Pipe()
        sender = pipe.client if sender_role is CLIENT else pipe.server
        payload = bytes(range(256)) * (length // 256 + 1)
        payload = payload[:length]
        data = sender.send(BytesMessage(payload))
        length_field = data[1] & 0x7F
        assert length_field == (length if length < 126 else 126 if length < 65536 else 127)
        header = 2 + {126: 2, 127: 8}.get(length_field, 0) + (4 if sender.client else 0)
        assert len(data) == header + length
        receiver = pipe.peer(sender)
        assert feed(receiver, data) == [BytesMessage(payload)]
        text = ("é" * length)[: length // 2] + "a" * (length % 2)
        assert feed(receiver, sender.send(TextMessage(text))) == [TextMessage(text)]

    @pytest.mark.parametrize("kind", [bytearray, memoryview])
    def test_bytes_like_data(self, conn: Connection, kind: type) -> None:
        data = conn.send(BytesMessage(kind(b"abc")))
        assert parse_frame(data)[4] == b"abc"

    def test_plain_message_by_data_type(self, conn: Connection) -> None:
        """As in wsproto, Message(data=str) is text and Message(data=bytes) binary."""
        assert parse_frame(conn.send(Message(data="t")))[0] == 0x81
        assert parse_frame(conn.send(Message(data=b"b")))[0] == 0x82

    def test_plain_message_with_other_data(self, conn: Connection) -> None:
        with pytest.raises(LocalProtocolError):
            conn.send(Message(data=12))
        assert conn.state is S.OPEN

    @pytest.mark.parametrize("event", [Ping(b"x" * 125), Pong(b"y" * 125)], ids=["ping", "pong"])
    def test_control_payload_up_to_125(self, conn: Connection, event: Event) -> None:
        first, length, *_ = parse_frame(conn.send(event))
        assert first == (0x89 if isinstance(event, Ping) else 0x8A)
        assert length == 125

    def test_oversized_control_payload_refused_at_construction(self) -> None:
        """Section 5.5: the error is raised by the event itself, before any send."""
        with pytest.raises(LocalProtocolError):
            Ping(b"x" * 126)
        with pytest.raises(LocalProtocolError):
            Pong(b"x" * 126)

    def test_lone_surrogate_text(self, conn: Connection) -> None:
        """Section 5.6: text frames carry UTF-8, which cannot encode a lone surrogate."""
        with pytest.raises(LocalProtocolError):
            conn.send(TextMessage("bad \udc80"))
        assert conn.state is S.OPEN
        assert parse_frame(conn.send(TextMessage("good")))[0] == 0x81

    def test_lone_surrogate_mid_fragmented_message_changes_nothing(self, conn: Connection) -> None:
        conn.send(TextMessage("a", message_finished=False))
        with pytest.raises(LocalProtocolError):
            conn.send(TextMessage("\ud800"))
        # Still in the fragmented message: the next piece is a continuation.
        assert parse_frame(conn.send(TextMessage("b")))[0] == 0x80

    @pytest.mark.parametrize(
        ("first", "second"),
        [
            (TextMessage("a", message_finished=False), BytesMessage(b"b")),
            (BytesMessage(b"a", message_finished=False), TextMessage("b")),
            (BytesMessage(b"a", message_finished=False), Message(data="b")),
        ],
    )
    def test_switching_type_mid_message(self, conn: Connection, first: Message[Any], second: Message[Any]) -> None:
        """Section 5.4: fragments of one message MUST NOT be interleaved."""
        conn.send(first)
        with pytest.raises(LocalProtocolError):
            conn.send(second)
        assert conn.state is S.OPEN
        # The message in progress can still be finished.
        same_kind = type(first)(first.data)
        assert parse_frame(conn.send(same_kind))[0] == 0x80

    def test_server_binary_while_text_fragment_in_progress(self) -> None:
        """The small-binary shortcut must not bypass the interleaving rule."""
        server = Connection(SERVER)
        server.send(TextMessage("a", message_finished=False))
        with pytest.raises(LocalProtocolError):
            server.send(BytesMessage(b"x"))

    @pytest.mark.parametrize("code", [1006, 1015, 1004, 999, 5000, 2000, 0, 1016, 2999, 65535])
    def test_unsendable_close_codes(self, conn: Connection, code: int) -> None:
        """Section 7.4: these codes must not be sent in a Close frame."""
        with pytest.raises(LocalProtocolError):
            conn.send(CloseConnection(code))
        assert conn.state is S.OPEN
        conn.send(TextMessage("still open"))

    def test_reason_without_code(self, conn: Connection) -> None:
        """Section 5.5.1: a reason can only follow a status code."""
        with pytest.raises(LocalProtocolError):
            conn.send(CloseConnection(1005, "reason"))
        assert conn.state is S.OPEN

    def test_1005_sends_empty_close(self, conn: Connection) -> None:
        first, length, *_ = parse_frame(conn.send(CloseConnection(1005)))
        assert (first, length) == (0x88, 0)
        assert conn.state is S.LOCAL_CLOSING

    def test_empty_close_received_as_1005(self) -> None:
        pipe = Pipe()
        assert pipe.send(pipe.server, CloseConnection(CloseReason.NO_STATUS_RCVD)) == [CloseConnection(1005, "")]

    @pytest.mark.parametrize(("char", "kept"), [("a", 123), ("é", 61), ("€", 41), ("😀", 30)])
    def test_long_reason_truncated(self, char: str, kept: int) -> None:
        """Section 5.5: at most 125 bytes: 2 for the code, 123 for the reason, cut on a character boundary."""
        pipe = Pipe()
        data = pipe.server.send(CloseConnection(1000, char * 200))
        assert len(data) <= 2 + 125
        assert pipe.send(pipe.client, CloseConnection(1000)) == [CloseConnection(1000, "")]
        received = feed(pipe.client, data)
        assert received == [CloseConnection(1000, char * kept)]

    def test_close_reason_lone_surrogate(self, conn: Connection) -> None:
        with pytest.raises(LocalProtocolError):
            conn.send(CloseConnection(1000, "\udfff"))
        assert conn.state is S.OPEN

    @pytest.mark.parametrize(
        "event",
        [
            Request(host="example.com", target="/"),
            AcceptConnection(),
            RejectConnection(),
            RejectData(b""),
        ],
        ids=["Request", "AcceptConnection", "RejectConnection", "RejectData"],
    )
    def test_handshake_events_refused(self, conn: Connection, event: Event) -> None:
        with pytest.raises(LocalProtocolError):
            conn.send(event)
        assert conn.state is S.OPEN

    @pytest.mark.parametrize(
        "event", [TextMessage("x"), BytesMessage(b"x"), Ping(), Pong(), CloseConnection(1000)], ids=repr
    )
    def test_nothing_after_close_sent(self, conn: Connection, event: Event) -> None:
        """Section 5.5.1: after sending a Close, no more frames (and not a second Close)."""
        conn.send(CloseConnection(1000))
        with pytest.raises(LocalProtocolError):
            conn.send(event)
        assert conn.state is S.LOCAL_CLOSING

    def test_close_ends_fragmented_send(self, conn: Connection) -> None:
        conn.send(TextMessage("a", message_finished=False))
        conn.send(CloseConnection(1000))
        assert conn.state is S.LOCAL_CLOSING

    def test_wsproto_close_code_compatibility(self, conn: Connection, monkeypatch: pytest.MonkeyPatch) -> None:
        """With the wsproto compatibility switch, codes that must not be sent go out as 1000.

        wsproto sent 1006/1015 as 1000 and any other code as given; sending 1000
        instead keeps the closing handshake without a code that must not be on
        the wire (RFC 6455 section 7.4).
        """
        monkeypatch.setattr(Connection, "wsproto_close_codes", True)
        assert parse_frame(conn.send(CloseConnection(1006)))[4] == b"\x03\xe8"
        other = Connection(conn.connection_type)
        # 1005 still means "no code".
        assert parse_frame(other.send(CloseConnection(1005)))[4] == b""
        for code in (0, 999, 1004, 2999, 5000):
            unsendable = Connection(conn.connection_type)
            assert parse_frame(unsendable.send(CloseConnection(code, "bye")))[4] == b"\x03\xe8bye"
            assert unsendable.state is ConnectionState.LOCAL_CLOSING

    def test_ping_pong_round_trip(self) -> None:
        """Section 5.5.3: the Pong echoes the Ping's application data."""
        pipe = Pipe()
        (ping,) = pipe.send(pipe.client, Ping(b"are you there"))
        assert pipe.send(pipe.server, ping.response()) == [Pong(b"are you there")]  # type: ignore[attr-defined]


class TestInternalError:
    def test_unexpected_exception_becomes_1011(self, conn: Connection, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bug while parsing never leaks: it fails the connection with 1011 (section 7.4.1)."""

        def broken(*args: object) -> None:
            raise ZeroDivisionError("boom")

        monkeypatch.setattr(Connection, "_control_event", broken)
        received = feed(conn, frame_for(conn, OP_PING))
        assert_failed(conn, received, 1011)
        assert isinstance(conn.failure, RemoteProtocolError)
        assert isinstance(conn.failure.__cause__, ZeroDivisionError)


class TestWsprotoInterop:
    """Frames produced by wsproto are understood, and the other way round."""

    @pytest.mark.parametrize("core_role", ROLES, ids=ROLE_IDS)
    def test_exchange(self, core_role: ConnectionType) -> None:
        wsproto_connection = pytest.importorskip("wsproto.connection")
        wsproto_events = pytest.importorskip("wsproto.events")
        other_role = (
            wsproto_connection.ConnectionType.SERVER
            if core_role is CLIENT
            else wsproto_connection.ConnectionType.CLIENT
        )
        theirs = wsproto_connection.Connection(other_role)
        ours = Connection(core_role)
        text = "κόσμε " * 30000
        data = theirs.send(wsproto_events.TextMessage(text)) + theirs.send(wsproto_events.Ping(b"p"))
        assert reassemble(feed(ours, data)) == [TextMessage(text), Ping(b"p")]
        theirs.receive_data(ours.send(BytesMessage(b"z" * 70000)) + ours.send(CloseConnection(1000, "done")))
        received = list(theirs.events())
        assert b"".join(e.data for e in received if isinstance(e, wsproto_events.BytesMessage)) == b"z" * 70000
        assert isinstance(received[-1], wsproto_events.CloseConnection)
        assert (received[-1].code, received[-1].reason) == (1000, "done")


# -------------------------------------------------------- partial delivery, property

_message_data = st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=800),
)


@settings(max_examples=150, deadline=None)
@given(
    role=st.sampled_from(ROLES),
    messages=st.lists(st.tuples(_message_data, st.integers(1, 4)), max_size=5),
    violation=st.sampled_from([b"", b"\x83\x00", b"\x81\x02\xc3\x28", b"\x01\x03ab\xff"]),
    chunks=st.lists(st.integers(1, 700), min_size=1, max_size=40),
    min_partial_size=st.sampled_from([1, 7, 100, 1000, DEFAULT_MIN_PARTIAL_SIZE]),
    limits=st.sampled_from([(None, None), (500, None), (None, 1500), (2000, 2000)]),
)
def test_partial_delivery_changes_only_how_binary_frames_are_cut(
    *,
    role: ConnectionType,
    messages: list[tuple[str | bytes, int]],
    violation: bytes,
    chunks: list[int],
    min_partial_size: int,
    limits: tuple[int | None, int | None],
) -> None:
    """Against min_partial_size=0 (every piece as it arrives): the same messages, text
    events, close codes and states; binary pieces that do not end their frame carry at
    least min_partial_size bytes."""
    sender = Connection(SERVER if role is CLIENT else CLIENT)
    wire = b""
    for data, fragments in messages:
        cls = TextMessage if isinstance(data, str) else BytesMessage
        step = max(1, -(-len(data) // fragments))
        pieces = [data[i : i + step] for i in range(0, len(data), step)] or [data[:0]]
        for index, piece in enumerate(pieces):
            wire += sender.send(cls(piece, message_finished=index == len(pieces) - 1))  # type: ignore[arg-type]
    if violation:
        # Raw frames as the peer would send them (masked towards a server).
        wire += build_frame(violation[0] & 0x0F, violation[2:], fin=bool(violation[0] & 0x80),
                            mask=None if role is CLIENT else b"\x01\x02\x03\x04")  # fmt: skip
    results = []
    for size in (0, min_partial_size):
        conn = Connection(role, min_partial_size=size, max_frame_size=limits[0], max_message_size=limits[1])
        received: list[Event] = []
        position = 0
        index = 0
        while position < len(wire):
            step = chunks[index % len(chunks)]
            conn.receive_data(wire[position : position + step])
            received.extend(conn.events())
            position += step
            index += 1
        conn.receive_data(None)
        received.extend(conn.events())
        results.append((conn, received))
    (plain, every), (coalescing, fewer) = results
    assert reassemble(fewer) == reassemble(every)
    assert [e for e in fewer if isinstance(e, TextMessage)] == [e for e in every if isinstance(e, TextMessage)]
    assert coalescing.state is plain.state
    assert [e for e in fewer if isinstance(e, CloseConnection)] == [e for e in every if isinstance(e, CloseConnection)]
    for event in fewer:
        if isinstance(event, BytesMessage) and not event.frame_finished:
            # Only the transport closing hands out a shorter piece.
            assert len(event.data) >= min_partial_size or event is fewer[-2]
