"""Property-based tests (hypothesis).

(a) Whatever one side sends reaches the other intact, however the bytes are cut.
(b) Arbitrary bytes never make the parser raise; a failure is always a final CloseConnection.
(c) Masking is an involution and can be applied piecewise.
(d) A state machine drives a client/server pair through random sends, deliveries and EOFs.
(e) Invalid UTF-8 fails exactly at the first byte that cannot start valid text (section 8.1).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from helpers import (
    CLIENT,
    OP_CLOSE,
    OP_CONT,
    OP_TEXT,
    SERVER,
    build_frame,
    feed,
    feed_pieces,
    frame_for,
    reassemble,
    split_at,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from wsproto_core.connection import Connection, ConnectionState, ConnectionType
from wsproto_core.errors import LocalProtocolError
from wsproto_core.events import BytesMessage, CloseConnection, Event, Message, Ping, Pong, TextMessage
from wsproto_core.masking import SPEEDUPS, apply_mask, python_apply_mask
from wsproto_core.state import SENDABLE, SendKind

S = ConnectionState
ROLES = st.sampled_from([CLIENT, SERVER])
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SENDABLE_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]


# ----------------------------------------------------------------- strategies

ALPHABET = "aZ0 ~é€😀κόσμε\u0000\uffff\U0010ffff"


def large_text(size: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(ALPHABET) for _ in range(size))


small_bytes = st.binary(max_size=300)
large_bytes = st.builds(lambda size, seed: random.Random(seed).randbytes(size), st.integers(0, 70000), st.integers())
message_bytes = st.one_of(small_bytes, small_bytes, small_bytes, large_bytes)
small_text = st.text(max_size=200)  # hypothesis text: any code point except surrogates
large_text_strategy = st.builds(large_text, st.integers(0, 25000), st.integers())
message_text = st.one_of(small_text, small_text, small_text, large_text_strategy)
control_payload = st.binary(max_size=125)
cuts = st.lists(st.integers(0, 200000), max_size=20)


@st.composite
def fragmented(draw: st.DrawFn, data_strategy: st.SearchStrategy[Any]) -> tuple[Any, list[Any], list[Event]]:
    """A message, how it is cut into fragments, and the control frames injected between them."""
    data = draw(data_strategy)
    points = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    injected: list[Event] = [
        draw(st.one_of(st.builds(Ping, control_payload), st.builds(Pong, control_payload))) for _ in pieces[:-1]
    ]
    return data, pieces, injected


item = st.one_of(
    st.tuples(st.just("text"), fragmented(message_text)),
    st.tuples(st.just("bytes"), fragmented(message_bytes)),
    st.tuples(st.just("ping"), control_payload),
    st.tuples(st.just("pong"), control_payload),
)
closing = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(SENDABLE_CLOSE_CODES), st.text(max_size=30)),
    st.just((1005, None)),
)


def serialise(sender: Connection, items: list[tuple[str, Any]], close: Any) -> tuple[bytes, list[Event]]:
    """Send ``items`` (and an optional Close) and return the bytes and the logical events expected."""
    out: list[bytes] = []
    expected: list[Event] = []
    for kind, value in items:
        if kind in ("ping", "pong"):
            event: Event = Ping(value) if kind == "ping" else Pong(value)
            out.append(sender.send(event))
            expected.append(event)
            continue
        data, pieces, injected = value
        cls = TextMessage if kind == "text" else BytesMessage
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            out.append(sender.send(cls(piece, message_finished=last)))
            if not last:
                out.append(sender.send(injected[index]))
                expected.append(injected[index])
        expected.append(cls(data))
    if close is not None:
        code, reason = close
        out.append(sender.send(CloseConnection(code, reason)))
        expected.append(CloseConnection(code, reason or ""))
    return b"".join(out), expected


# ------------------------------------------------------------------ (a) round trip


@SETTINGS
@given(sender_role=ROLES, items=st.lists(item, max_size=6), close=closing, cut_points=cuts)
def test_round_trip_any_chunking(
    sender_role: ConnectionType, items: list[Any], close: Any, cut_points: list[int]
) -> None:
    """Sections 5.2-5.5: framing, masking and fragmentation preserve every message, in order."""
    sender = Connection(sender_role)
    receiver = Connection(SERVER if sender_role is CLIENT else CLIENT)
    data, expected = serialise(sender, items, close)
    received = feed_pieces(receiver, split_at(data, cut_points))
    assert receiver.failure is None
    assert reassemble(received) == expected
    if close is None:
        assert receiver.state is S.OPEN
    else:
        assert receiver.state is S.REMOTE_CLOSING
        assert sender.state is S.LOCAL_CLOSING


# --------------------------------------------------------------------- (b) fuzzing

frame_fields = st.fixed_dictionaries(
    {
        "opcode": st.integers(0, 15),
        "payload": st.one_of(st.binary(max_size=140), st.text(max_size=40).map(str.encode)),
        "fin": st.booleans(),
        "rsv": st.sampled_from([0, 0, 0, 0, 1, 2, 4, 7]),
        "mask": st.sampled_from([None, True, b"\x00\x00\x00\x00"]),
        "length_size": st.sampled_from([None, None, None, 16, 64]),
    }
)


def fuzz_frame(fields: dict[str, Any]) -> bytes:
    options = dict(fields)
    payload = options.pop("payload")
    if options["length_size"] is None and len(payload) > 125:
        options["length_size"] = 16
    if options["opcode"] == OP_CLOSE and len(payload) >= 2 and payload[:2] == b"\xff\xff":
        payload = b"\x03\xe8" + payload[2:]  # sometimes a valid code
    return build_frame(options.pop("opcode"), payload, **options)


fuzz_input = st.one_of(
    st.binary(max_size=400),
    st.lists(st.one_of(frame_fields.map(fuzz_frame), st.binary(max_size=8)), max_size=10).map(b"".join),
)
limits = st.one_of(st.none(), st.just(64 * 1024 * 1024), st.integers(0, 200))


def complete_events(events: list[Event]) -> list[Event]:
    """Whole messages and control events: what must not depend on how the input was cut."""
    return [event for event in reassemble(events) if not (isinstance(event, Message) and not event.message_finished)]


def check_fuzz_outcome(conn: Connection, received: list[Event]) -> None:
    assert all(isinstance(event, Event) for event in received)
    closes = [index for index, event in enumerate(received) if isinstance(event, CloseConnection)]
    assert len(closes) <= 1
    if closes:
        assert closes[0] == len(received) - 1, "nothing follows a CloseConnection"
        assert conn.state is not S.OPEN
    if conn.failure is not None:
        close = received[-1]
        assert isinstance(close, CloseConnection)
        assert close.code == conn.failure.code
        # Internal errors (1011) would mean a parser bug: only RFC close codes are expected.
        assert close.code in (1002, 1007, 1009), conn.failure
    else:
        assert conn.state in (S.OPEN, S.REMOTE_CLOSING)


@SETTINGS
@given(
    role=ROLES,
    data=fuzz_input,
    cut_points=st.lists(st.integers(0, 500), max_size=30),
    max_frame_size=limits,
    max_message_size=limits,
)
def test_random_input_never_raises(
    role: ConnectionType, data: bytes, cut_points: list[int], max_frame_size: Any, max_message_size: Any
) -> None:
    """Section 7.1.7: a misbehaving peer fails the connection; it never crashes the parser."""
    whole = Connection(role, max_frame_size=max_frame_size, max_message_size=max_message_size)
    received_whole = feed(whole, data)
    check_fuzz_outcome(whole, received_whole)

    pieces = Connection(role, max_frame_size=max_frame_size, max_message_size=max_message_size)
    received_pieces = feed_pieces(pieces, split_at(data, cut_points))
    check_fuzz_outcome(pieces, received_pieces)

    # The chunking changes neither the complete events nor the outcome.
    assert complete_events(received_whole) == complete_events(received_pieces)
    assert (whole.failure and whole.failure.code) == (pieces.failure and pieces.failure.code)
    assert whole.state is pieces.state

    # And the end of the transport always ends in CLOSED with exactly one final CloseConnection.
    for conn, received in ((whole, received_whole), (pieces, received_pieces)):
        conn.receive_data(None)
        tail = list(conn.events())
        assert conn.state is S.CLOSED
        everything = received + tail
        assert sum(isinstance(event, CloseConnection) for event in everything) == 1
        assert isinstance(everything[-1], CloseConnection)


# ---------------------------------------------------------------------- (c) masking

mask_functions = st.sampled_from([python_apply_mask, apply_mask] if SPEEDUPS else [python_apply_mask])


@SETTINGS
@given(fn=mask_functions, data=st.binary(max_size=5000), key=st.binary(min_size=4, max_size=4))
def test_mask_is_an_involution(fn: Any, data: bytes, key: bytes) -> None:
    """Section 5.3: the same algorithm masks and unmasks."""
    masked = fn(data, key)
    assert len(masked) == len(data)
    assert fn(masked, key) == data


@SETTINGS
@given(
    fn=mask_functions,
    data=st.binary(max_size=5000),
    key=st.binary(min_size=4, max_size=4),
    k=st.integers(0, 5000),
)
def test_mask_with_offset_equals_slice(fn: Any, data: bytes, key: bytes, k: int) -> None:
    """Section 5.3: octet i uses key octet i MOD 4, so a piece at offset k is masked with the rotated key."""
    k = min(k, len(data))
    assert fn(data[k:], key, k) == fn(data, key)[k:]
    assert fn(data, key) == python_apply_mask(data, key)


# ---------------------------------------------------------------- (d) state machine


@dataclass
class Side:
    conn: Connection
    inbox: bytearray = field(default_factory=bytearray)  # bytes sent by the peer, not yet delivered
    received: list[Event] = field(default_factory=list)
    sent: list[Event] = field(default_factory=list)  # logical events sent, messages once finished
    fragment: tuple[type, list[Any]] | None = None  # the message being sent in pieces
    close_sent: bool = False
    close_received: bool = False
    eof: bool = False

    def expected_state(self) -> ConnectionState:
        """Section 7: the closing handshake, plus the transport closing."""
        if self.eof or (self.close_sent and self.close_received):
            return S.CLOSED
        if self.close_sent:
            return S.LOCAL_CLOSING
        if self.close_received:
            return S.REMOTE_CLOSING
        return S.OPEN


SIDE_NAMES = st.sampled_from(["client", "server"])


class Conversation(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sides = {"client": Side(Connection(CLIENT)), "server": Side(Connection(SERVER))}

    def peer(self, name: str) -> Side:
        return self.sides["server" if name == "client" else "client"]

    def attempt(self, name: str, event: Event, kind: SendKind, allowed: bool) -> bool:
        """Send ``event``; a forbidden send must raise LocalProtocolError and change nothing."""
        side = self.sides[name]
        before = (side.conn.state, side.conn.failure, side.conn.buffered_bytes)
        if not allowed:
            try:
                side.conn.send(event)
            except LocalProtocolError:
                pass
            else:
                raise AssertionError(f"{name} could send {event!r} in state {side.expected_state().name}")
            assert (side.conn.state, side.conn.failure, side.conn.buffered_bytes) == before
            return False
        assert kind in SENDABLE[side.expected_state()]
        data = side.conn.send(event)
        assert data
        self.peer(name).inbox += data
        return True

    @rule(name=SIDE_NAMES, text=st.text(max_size=40), finished=st.booleans())
    def send_text(self, name: str, text: str, finished: bool) -> None:
        self.send_message(name, TextMessage, text, finished)

    @rule(
        name=SIDE_NAMES,
        data=st.one_of(st.binary(max_size=300), st.just(b"\x01" * 70000)),
        finished=st.booleans(),
    )
    def send_bytes(self, name: str, data: bytes, finished: bool) -> None:
        self.send_message(name, BytesMessage, data, finished)

    def send_message(self, name: str, cls: type, data: Any, finished: bool) -> None:
        side = self.sides[name]
        allowed = SendKind.DATA in SENDABLE[side.expected_state()] and (
            side.fragment is None or side.fragment[0] is cls
        )
        if self.attempt(name, cls(data, message_finished=finished), SendKind.DATA, allowed):
            pieces = [*side.fragment[1], data] if side.fragment else [data]
            if finished:
                side.sent.append(cls("".join(pieces)) if cls is TextMessage else cls(b"".join(pieces)))
                side.fragment = None
            else:
                side.fragment = (cls, pieces)

    @rule(name=SIDE_NAMES, ping=st.booleans(), payload=control_payload)
    def send_control(self, name: str, ping: bool, payload: bytes) -> None:
        side = self.sides[name]
        event = Ping(payload) if ping else Pong(payload)
        if self.attempt(name, event, SendKind.DATA, SendKind.DATA in SENDABLE[side.expected_state()]):
            side.sent.append(event)

    @rule(
        name=SIDE_NAMES,
        close=st.tuples(st.sampled_from(SENDABLE_CLOSE_CODES), st.text(max_size=20)),
        roll=st.integers(0, 2),
    )
    def send_close(self, name: str, close: tuple[int, str], roll: int) -> None:
        side = self.sides[name]
        if roll and side.expected_state() is S.OPEN:
            return  # initiate the closing handshake less often, so that conversations last
        code, reason = close
        allowed = SendKind.CLOSE in SENDABLE[side.expected_state()]
        if self.attempt(name, CloseConnection(code, reason), SendKind.CLOSE, allowed):
            side.sent.append(CloseConnection(code, reason))
            side.close_sent = True
            side.fragment = None

    @precondition(lambda self: any(side.inbox and not side.eof for side in self.sides.values()))
    @rule(name=SIDE_NAMES, size=st.one_of(st.integers(1, 300), st.just(1 << 30)))
    def deliver(self, name: str, size: int) -> None:
        side = self.sides[name]
        if side.eof or not side.inbox:
            return
        chunk = bytes(side.inbox[:size])
        del side.inbox[:size]
        self.take_events(side, feed(side.conn, chunk))

    @rule(name=SIDE_NAMES, roll=st.integers(0, 5))
    def transport_closes(self, name: str, roll: int) -> None:
        side = self.sides[name]
        if side.eof or roll:  # rarer than the other steps, so that the closing handshake gets explored
            return
        side.conn.receive_data(None)
        side.eof = True
        side.inbox.clear()  # whatever was still in flight is lost
        events = list(side.conn.events())
        self.take_events(side, events)
        # Section 7.1.5: without a Close frame the close code is 1006; after one, nothing more.
        if side.close_received:
            assert CloseConnection(1006) not in events
        else:
            assert events
            assert events[-1] == CloseConnection(1006)
        try:
            side.conn.receive_data(b"\x81\x00")
        except LocalProtocolError:
            pass
        else:
            raise AssertionError("receive_data after receive_data(None) must raise")

    def take_events(self, side: Side, events: list[Event]) -> None:
        for event in events:
            assert not side.close_received, f"event {event!r} after the peer's Close"
            if isinstance(event, CloseConnection) and event.code != 1006:
                side.close_received = True
        side.received.extend(events)

    @invariant()
    def states_follow_the_closing_handshake(self) -> None:
        for name, side in self.sides.items():
            assert side.conn.state is side.expected_state(), name
            assert side.conn.failure is None
            # A Close can only have been received if the peer sent one.
            if side.close_received:
                assert self.peer(name).close_sent
            if side.conn.state is S.REMOTE_CLOSING:
                assert self.peer(name).conn.state in (S.LOCAL_CLOSING, S.CLOSED)

    @invariant()
    def receivers_see_what_was_sent(self) -> None:
        for name, side in self.sides.items():
            got = [event for event in complete_events(side.received) if event != CloseConnection(1006)]
            sent = self.peer(name).sent
            assert got == sent[: len(got)], name
            if not side.inbox and not side.eof:
                assert got == sent, name


TestConversation = Conversation.TestCase
TestConversation.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# ------------------------------------------------------------------ (e) UTF-8 fail-fast

_TAILS = [b""] + [bytes([second]) + b"\x80" * more for second in range(0x80, 0xC0) for more in range(3)]


def is_utf8_prefix(data: bytes) -> bool:
    """Whether some continuation makes ``data`` valid UTF-8 (independent of the library's decoder use)."""
    for tail in _TAILS:
        try:
            (data + tail).decode("utf-8")
        except UnicodeDecodeError:
            continue
        return True
    return False


#: Sequences around the edges of UTF-8 (RFC 3629 section 4): surrogates, above U+10FFFF, overlongs.
TRICKY_UTF8 = [
    b"\xed\xa0",
    b"\xed\x9f\xbf",
    b"\xf4\x90",
    b"\xf4\x8f\xbf\xbf",
    b"\xe0\x80",
    b"\xe0\xa0\x80",
    b"\xf0\x80",
    b"\xf0\x90\x80",
    b"\xc0",
    b"\xc2",
    b"\xed",
    b"\xf5",
    b"\x80",
]
utf8_pieces = st.one_of(
    st.text(max_size=3).map(str.encode),
    st.binary(max_size=2),
    st.sampled_from(TRICKY_UTF8),
)
utf8_candidates = st.lists(utf8_pieces, max_size=12).map(b"".join)


@SETTINGS
@given(role=ROLES, payload=utf8_candidates)
def test_utf8_fails_at_first_impossible_byte(role: ConnectionType, payload: bytes) -> None:
    """Section 8.1 (and Autobahn 6.x "fail fast"): stream a text frame byte by byte."""
    conn = Connection(role)
    frame = frame_for(conn, OP_TEXT, payload)
    header_size = len(frame) - len(payload)
    first_bad = next((i for i in range(len(payload)) if not is_utf8_prefix(payload[: i + 1])), None)
    assert feed(conn, frame[:header_size]) == [] or not payload
    text = []
    for index in range(len(payload)):
        received = feed(conn, frame[header_size + index : header_size + index + 1])
        should_fail = index == first_bad or (first_bad is None and index == len(payload) - 1 and not _valid(payload))
        if should_fail:
            assert isinstance(received[-1], CloseConnection)
            assert received[-1].code == 1007
            assert conn.failure is not None
            return
        assert not any(isinstance(event, CloseConnection) for event in received), (index, payload)
        text.extend(event.data for event in received)  # type: ignore[attr-defined]
    assert _valid(payload)
    assert "".join(text) == payload.decode("utf-8")


def _valid(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@SETTINGS
@given(role=ROLES, payload=utf8_candidates, cut_points=st.lists(st.integers(0, 40), max_size=5))
def test_utf8_fails_at_frame_containing_first_impossible_byte(
    role: ConnectionType, payload: bytes, cut_points: list[int]
) -> None:
    """A fragmented text message (section 5.4) fed frame by frame fails at the frame where it becomes invalid."""
    conn = Connection(role)
    pieces = split_at(payload, cut_points) or [b""]
    frames = [
        frame_for(conn, OP_TEXT if index == 0 else OP_CONT, piece, fin=index == len(pieces) - 1)
        for index, piece in enumerate(pieces)
    ]
    first_bad = next((i for i in range(len(payload)) if not is_utf8_prefix(payload[: i + 1])), None)
    position = 0
    for index, frame in enumerate(frames):
        end = position + len(pieces[index])
        received = feed(conn, frame)
        last = index == len(frames) - 1
        should_fail = (first_bad is not None and position <= first_bad < end) or (last and not _valid(payload))
        if should_fail:
            assert isinstance(received[-1], CloseConnection)
            assert received[-1].code == 1007
            return
        assert not any(isinstance(event, CloseConnection) for event in received), (index, pieces)
        position = end
    assert _valid(payload)
