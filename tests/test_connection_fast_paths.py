"""Connection.receive_messages and send_message: the drivers' per-message shortcuts.

Each must be exactly the long way (receive_data then events, send of a message
event) minus the event object: the properties below hold them to it for any
bytes, cut anywhere, valid or not, under any limits.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import build_frame, parse_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproto_core.connection import Connection
from wsproto_core.errors import LocalProtocolError, RemoteProtocolError
from wsproto_core.events import BytesMessage, CloseConnection, TextMessage
from wsproto_core.managed import ManagedConnection
from wsproto_core.state import ConnectionType

CLIENT, SERVER = ConnectionType.CLIENT, ConnectionType.SERVER


def _pair(client: bool, **limits: Any) -> tuple[Connection, Connection]:
    role = CLIENT if client else SERVER
    return Connection(role, **limits), Connection(role, **limits)


@st.composite
def _reads(draw: st.DrawFn, masked: bool) -> bytes:
    """Frames as a peer would send them (mostly right, sometimes not), cut at a random point or whole."""
    frames = draw(
        st.lists(
            st.builds(
                build_frame,
                st.sampled_from([0x0, 0x1, 0x1, 0x2, 0x2, 0x3, 0x8, 0x9, 0xA]),
                st.one_of(
                    st.binary(max_size=40),
                    st.text(max_size=20).map(str.encode),
                    st.sampled_from([b"\xff", b"\xe2\x82", b"\xed\xa0\x80", b"caf\xc3\xa9"]),
                ),
                fin=st.booleans() if draw(st.integers(0, 3)) == 0 else st.just(True),
                rsv=st.sampled_from([0, 0, 0, 0, 4]),
                mask=st.just(masked) if draw(st.integers(0, 9)) else st.booleans(),
            ),
            min_size=1,
            max_size=3,
        )
    )
    data = b"".join(frames)
    if draw(st.booleans()):
        return data
    return data[: draw(st.integers(0, len(data)))]


def _event_for(message: str | bytes) -> TextMessage | BytesMessage:
    return TextMessage(message) if isinstance(message, str) else BytesMessage(message)


def _errors(call: Any) -> Any:
    try:
        return call()
    except (LocalProtocolError, RemoteProtocolError) as error:
        return type(error), str(error)


@pytest.mark.parametrize("client", [False, True])
@pytest.mark.parametrize("message", [b"", b"\x00binary\xff" * 20, "", "caf\u00e9 \U0001f600", b"x" * 70_000])
def test_a_read_that_is_one_whole_message_is_returned(client: bool, message: str | bytes) -> None:
    """The shortcut is taken, for both roles, at every length form; nothing is left buffered."""
    connection = Connection(CLIENT if client else SERVER)
    payload = message.encode() if isinstance(message, str) else message
    frame = build_frame(0x1 if isinstance(message, str) else 0x2, payload, mask=not client)
    assert connection.receive_messages(bytearray(frame)) == [message]
    assert connection.buffered_bytes == 0
    assert list(connection.events()) == []


@pytest.mark.parametrize(
    ("frame", "taken", "reason"),
    [
        (build_frame(0x1, b"\xff", mask=True), 0, "bad UTF-8"),
        (build_frame(0x2, b"abc", mask=False), 0, "an unmasked client frame"),
        (build_frame(0x2, b"abc", mask=True, rsv=4), 0, "RSV1 without an extension"),
        (build_frame(0x2, b"a" * 11, mask=True), 0, "over max_message_size"),
        (build_frame(0x2, b"abc", mask=True, fin=False), 0, "a fragment"),
        (build_frame(0x9, b"abc", mask=True), 0, "a Ping"),
        (build_frame(0x2, b"abc", mask=True) * 2, 2, "two messages"),
        (build_frame(0x2, b"abc", mask=True) + build_frame(0x1, b"\xff", mask=True), 1, "a message, then bad UTF-8"),
        (build_frame(0x2, b"abc", mask=True)[:-1], 0, "part of a frame"),
    ],
)
def test_what_is_not_a_whole_message_goes_to_the_parser(frame: bytes, taken: int, reason: str) -> None:
    """Violations fail the connection as the parser says; the rest is parsed as usual."""
    shortcut, parser = _pair(False, max_message_size=10)
    messages = shortcut.receive_messages(frame)
    assert len(messages) == taken, reason
    parser.receive_data(frame)
    assert [_event_for(message) for message in messages] + list(shortcut.events()) == list(parser.events())
    assert str(shortcut.failure) == str(parser.failure)


def test_a_message_behind_buffered_bytes_waits_its_turn() -> None:
    connection = Connection(SERVER)
    first = build_frame(0x2, b"first", mask=True)
    connection.receive_data(first[:3])
    assert connection.receive_messages(first[3:]) == []
    assert connection.receive_messages(build_frame(0x2, b"second", mask=True)) == []
    assert [event.data for event in connection.events()] == [b"first", b"second"]  # type: ignore[attr-defined]


def test_after_the_peer_closed_nothing_is_returned() -> None:
    connection = Connection(SERVER)
    connection.receive_data(build_frame(0x8, b"\x03\xe8", mask=True))
    assert [type(event) for event in connection.events()] == [CloseConnection]
    assert connection.receive_messages(build_frame(0x2, b"late", mask=True)) == []
    assert list(connection.events()) == []
    connection.receive_data(None)
    with pytest.raises(LocalProtocolError):
        connection.receive_messages(build_frame(0x2, b"later", mask=True))


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    frames = []
    while data:
        first, _length, _masked, _key, payload, data = parse_frame(data)
        frames.append((first, payload))
    return frames


@settings(max_examples=200, deadline=None)
@given(
    client=st.booleans(),
    messages=st.lists(
        st.one_of(st.text(max_size=30), st.binary(max_size=30), st.just("\ud800"), st.binary().map(bytearray)),
        max_size=5,
    ),
    close_after=st.integers(0, 5),
)
def test_send_message_is_send_of_the_message_event(
    client: bool, messages: list[str | bytes | bytearray], close_after: int
) -> None:
    """The same frames (masks aside), the same errors with the same words, before and after a Close."""
    long_way, short_way = _pair(client)
    for index, message in enumerate(messages):
        if index == close_after:
            close = CloseConnection(1000)
            assert _frames(short_way.send(close)) == _frames(long_way.send(close))
        event = _event_for(bytes(message) if isinstance(message, bytearray) else message)
        expected = _errors(lambda event=event: _frames(long_way.send(event)))
        assert _errors(lambda message=message: _frames(short_way.send_message(message))) == expected
        assert short_way.state is long_way.state


def test_send_message_refuses_what_is_not_a_message() -> None:
    with pytest.raises(TypeError, match=r"str \(text\) or bytes-like"):
        Connection(SERVER).send_message(12)  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(
    client=st.booleans(),
    limit=st.sampled_from([None, 0, 5, 30]),
    operations=st.data(),
)
def test_receive_messages_is_receive_data_then_events(
    client: bool, limit: int | None, operations: st.DataObject
) -> None:
    """The whole messages a read starts with come back at once; events() then gives exactly the rest.

    As a driver uses it: events() only when bytes wait to be parsed. Together
    they give what receive_data and events() give, whatever arrives.
    """
    long_way, short_way = _pair(client, max_message_size=limit)
    for _ in range(operations.draw(st.integers(1, 6))):
        data = b"".join(operations.draw(st.lists(_reads(masked=not client), min_size=1, max_size=3)))
        buffer = bytearray(data)
        long_way.receive_data(data)
        messages = short_way.receive_messages(memoryview(buffer))
        buffer[:] = b"\x00" * len(buffer)
        received = [_event_for(message) for message in messages]
        if short_way.buffered_bytes:
            received += list(short_way.events())
        assert received == list(long_way.events())
        assert short_way.state is long_way.state
        assert short_way.buffered_bytes == long_way.buffered_bytes
        assert str(short_way.failure) == str(long_way.failure)


def test_a_pipelined_read_is_taken_whole_up_to_what_is_not_a_message() -> None:
    connection = Connection(SERVER)
    whole = [build_frame(0x2, b"one", mask=True), build_frame(0x1, b"two", mask=True)]
    ping = build_frame(0x9, b"p", mask=True)
    after = build_frame(0x2, b"three", mask=True)
    assert connection.receive_messages(b"".join([*whole, ping, after[:4]])) == [b"one", "two"]
    assert connection.buffered_bytes == len(ping) + 4
    assert [type(event).__name__ for event in connection.events()] == ["Ping"]
    assert connection.receive_messages(after[4:]) == []
    assert [event.data for event in connection.events()] == [b"three"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("closing", [False, True])
def test_the_ordering_rule_holds_what_follows_the_messages_while_open(closing: bool) -> None:
    """As events() does: what follows holds until the messages are taken, unless we already sent our Close."""
    managed = ManagedConnection(Connection(SERVER), client=False, hold_after_message=True)
    if closing:
        managed.close(1000)
    messages = managed.receive_messages(build_frame(0x2, b"m", mask=True) + build_frame(0x8, b"\x03\xe8", mask=True))
    assert messages == [b"m"]
    assert managed.buffered_bytes > 0
    assert managed.held is not closing
    assert [type(event) for event in managed.events()] == [CloseConnection]
