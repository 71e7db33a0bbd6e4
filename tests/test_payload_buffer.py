"""Large frames gathered in place, and large payloads sent apart from their header.

``PayloadBuffer`` (compiled, and its pure-Python twin) gathers a frame's
payload as it arrives, unmasking on the way in; a ``Connection`` uses one for
each piece of a frame that arrives over several reads, and lets a driver read
straight into it (``payload_buffer`` / ``payload_received``). On the way out,
``send_message_parts`` keeps a server's large payload out of its frame.
Each is held to the plain way: the same bytes, events and errors.
"""

from __future__ import annotations

import itertools
import sys
from typing import Any

import pytest
from helpers import build_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproto_core import WSConnection, masking
from wsproto_core.connection import SEPARATE_PAYLOAD_SIZE, Connection
from wsproto_core.errors import LocalProtocolError
from wsproto_core.events import BytesMessage, CloseConnection, Event, Message
from wsproto_core.managed import ManagedConnection
from wsproto_core.masking import PythonPayloadBuffer, python_apply_mask
from wsproto_core.state import ConnectionType

CLIENT, SERVER = ConnectionType.CLIENT, ConnectionType.SERVER

IMPLEMENTATIONS: list[Any] = [PythonPayloadBuffer]
if masking.SPEEDUPS:
    from wsproto_core._speedups import PayloadBuffer as CompiledPayloadBuffer
    from wsproto_core._speedups import read_whole_message as compiled_read_whole_message

    IMPLEMENTATIONS.append(CompiledPayloadBuffer)

masks = st.one_of(st.none(), st.binary(min_size=4, max_size=4))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=lambda kind: kind.__module__)
@settings(max_examples=300, deadline=None)
@given(
    payload=st.binary(min_size=1, max_size=3000),
    mask=masks,
    offset=st.integers(0, 9),
    steps=st.lists(st.tuples(st.booleans(), st.integers(0, 1200)), max_size=12),
)
def test_a_payload_buffer_gathers_what_arrives_unmasked(
    implementation: Any, payload: bytes, mask: bytes | None, offset: int, steps: list[tuple[bool, int]]
) -> None:
    """Written or read into, in any steps: take() is the payload (or what came of it), unmasked."""
    wire = payload if mask is None else python_apply_mask(payload, mask, offset)
    buffer = implementation(len(payload), mask, offset)
    position = 0
    for into_view, size in steps:
        if into_view:
            view = buffer.unfilled()
            assert len(view) == len(payload) - position
            count = min(size, len(view))
            view[:count] = wire[position : position + count]
            view.release()
            buffer.received(count)
        else:
            count = buffer.write(wire[position : position + size])
            assert count == min(size, len(payload) - position)
        position += count
        assert (buffer.filled, buffer.missing) == (position, len(payload) - position)
    taken = buffer.take()
    assert type(taken) is bytes
    assert taken == payload[:position]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=lambda kind: kind.__module__)
def test_a_payload_buffer_refuses_misuse(implementation: Any) -> None:
    with pytest.raises(ValueError, match="length"):
        implementation(0, None)
    with pytest.raises(ValueError, match="4 bytes"):
        implementation(10, b"abc")
    buffer = implementation(10, b"abcd", 1)
    assert buffer.write(b"\x00" * 4) == 4
    with pytest.raises(ValueError, match="unfilled"):
        buffer.received(7)
    assert (buffer.filled, buffer.missing) == (4, 6)  # unchanged by the refusal
    assert buffer.take() == python_apply_mask(b"\x00" * 4, b"abcd", 1)
    for use in (lambda: buffer.write(b"x"), buffer.unfilled, lambda: buffer.received(0), buffer.take):
        with pytest.raises(ValueError, match="taken"):
            use()


def _pattern(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


@st.composite
def _frames(draw: st.DrawFn, masked: bool) -> bytes:
    """Mostly large binary frames (the ones gathered), with text, control and fragmented ones between."""
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["large", "large", "fragmented", "text", "ping"]))
        if kind == "large":
            parts.append(build_frame(0x2, _pattern(draw(st.integers(60, 5000))), mask=masked))
        elif kind == "fragmented":
            parts.append(build_frame(0x2, _pattern(draw(st.integers(0, 3000))), fin=False, mask=masked))
            parts.append(build_frame(0x0, _pattern(draw(st.integers(0, 3000))), mask=masked))
        elif kind == "text":
            parts.append(build_frame(0x1, "caf\u00e9 \U0001f600".encode() * draw(st.integers(0, 300)), mask=masked))
        else:
            parts.append(build_frame(0x9, b"ping", mask=masked))
    if draw(st.integers(0, 4)) == 0:
        # A violation after the frames: the parser must fail alike on both ways.
        parts.append(build_frame(0x2, b"x" * 100, mask=not masked))
    return b"".join(parts)


def _cuts(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=10))))
    bounds = [0, *cuts, len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds) if end > start]


def _summary(events: list[Event]) -> list[Any]:
    summary: list[Any] = []
    for event in events:
        if isinstance(event, Message):
            summary.append((type(event).__name__, event.data, event.frame_finished, event.message_finished))
        elif isinstance(event, CloseConnection):
            summary.append(("close", event.code))
        else:
            summary.append(type(event).__name__)
    return summary


@settings(max_examples=300, deadline=None)
@given(data=st.data(), client=st.booleans(), min_partial_size=st.sampled_from([0, 100, 1000, 65536, 1 << 20]))
def test_reading_into_the_payload_buffer_is_receive_data(
    data: st.DataObject, client: bool, min_partial_size: int
) -> None:
    """Bytes read into payload_buffer() make exactly the events that receive_data() of them makes."""
    wire = data.draw(_frames(masked=not client))
    reads = _cuts(data.draw, wire)
    role = CLIENT if client else SERVER
    plain = Connection(role, min_partial_size=min_partial_size, max_message_size=None)
    direct = Connection(role, min_partial_size=min_partial_size, max_message_size=None)
    plain_events: list[Event] = []
    direct_events: list[Event] = []
    for read in reads:
        plain.receive_data(read)
        plain_events += plain.events()
        view = direct.payload_buffer()
        if view is not None and data.draw(st.booleans()):
            count = min(len(view), len(read))
            view[:count] = read[:count]
            view.release()
            direct.payload_received(count)
            if count < len(read):
                direct.receive_data(read[count:])
        else:
            direct.receive_data(read)
        direct_events += direct.events()
        assert direct.buffered_bytes == plain.buffered_bytes
    plain.receive_data(None)
    direct.receive_data(None)
    plain_events += plain.events()
    direct_events += direct.events()
    assert _summary(direct_events) == _summary(plain_events)
    # And the pieces are the frames' payloads, whole where they came whole.
    payload = b"".join(event.data for event in plain_events if isinstance(event, BytesMessage))
    assert len(payload) == sum(len(event.data) for event in direct_events if isinstance(event, BytesMessage))


def test_a_large_frame_that_arrives_in_reads_is_one_piece_gathered_in_place() -> None:
    """Two reads of a 100 KB masked frame: one message, and the second read went straight into it."""
    payload = _pattern(100_000)
    frame = build_frame(0x2, payload, mask=True)
    connection = Connection(SERVER, min_partial_size=1 << 20)
    connection.receive_data(frame[:65536])
    assert list(connection.events()) == []
    view = connection.payload_buffer()
    assert view is not None and len(view) == len(frame) - 65536
    assert connection.buffered_bytes == 65536 - (len(frame) - len(payload))  # the payload bytes gathered so far
    view[:] = frame[65536:]
    view.release()
    connection.payload_received(len(frame) - 65536)
    assert connection.payload_buffer() is None
    (event,) = connection.events()
    assert isinstance(event, BytesMessage) and event.message_finished
    assert event.data == payload
    assert connection.buffered_bytes == 0


@settings(max_examples=200, deadline=None)
@given(
    length=st.integers(64, 3 << 20),
    read_size=st.integers(1, 1 << 17),
    min_partial_size=st.sampled_from([1 << 16, 1 << 20]),
    client=st.booleans(),
)
def test_a_frame_in_small_reads_is_gathered_once_an_eighth_of_its_piece_came(
    length: int, read_size: int, min_partial_size: int, client: bool
) -> None:
    """However small the reads, gathering starts with the read that brings an eighth of the piece.

    The reads before it are joined; none after it is (the rest goes to the
    piece's buffer, or is read into it).
    """
    payload = _pattern(length)
    frame = build_frame(0x2, payload, mask=not client)
    connection = Connection(CLIENT if client else SERVER, min_partial_size=min_partial_size, max_message_size=None)
    header = len(frame) - length
    want = min(length, min_partial_size)
    fed = 0
    while fed - header < -(-want // 8):
        connection.receive_data(frame[fed : fed + read_size])
        fed = min(len(frame), fed + read_size)
        assert list(connection.events()) == [] or fed - header >= want
    if fed - header < want:
        view = connection.payload_buffer()
        assert view is not None and len(view) == want - (fed - header)


@settings(max_examples=200, deadline=None)
@given(length=st.integers(1000, 64 << 20), sent=st.integers(1, 999), reads=st.integers(1, 4))
def test_a_peer_gets_at_most_eight_times_what_it_sent_allocated(length: int, sent: int, reads: int) -> None:
    """A frame announced large and sent in part: the gathering buffer is at most 8x the part (or nothing)."""
    announced = (
        bytes((0x82, 0x80 | 126)) + length.to_bytes(2, "big")
        if length < 0x10000
        else bytes((0x82, 0x80 | 127)) + length.to_bytes(8, "big")
    )
    connection = Connection(SERVER, min_partial_size=1 << 30, max_message_size=None, max_frame_size=None)
    data = announced + b"mask" + b"\x00" * sent
    step = max(1, len(data) // reads)
    for start in range(0, len(data), step):
        connection.receive_data(data[start : start + step])
        assert list(connection.events()) == []
    view = connection.payload_buffer()
    held = connection.buffered_bytes + (len(view) if view is not None else 0)
    assert held <= 8 * sent


def test_payload_received_refuses_misuse() -> None:
    connection = Connection(SERVER)
    with pytest.raises(LocalProtocolError, match="receive_data"):
        connection.payload_received(1)
    connection.receive_data(build_frame(0x2, b"x" * 10_000, mask=True)[:5000])
    list(connection.events())
    view = connection.payload_buffer()
    assert view is not None
    with pytest.raises(LocalProtocolError, match=f"holds {len(view)} bytes"):
        connection.payload_received(len(view) + 1)
    assert connection.payload_buffer() is not None  # nothing changed
    handshaking = WSConnection(SERVER)
    assert handshaking.payload_buffer() is None
    with pytest.raises(LocalProtocolError, match="handshake"):
        handshaking.payload_received(1)


@settings(max_examples=200, deadline=None)
@given(
    client=st.booleans(),
    message=st.one_of(
        st.binary(max_size=10).map(lambda tail: b"\x01" * SEPARATE_PAYLOAD_SIZE + tail),
        st.text(max_size=4).map(lambda tail: "\u00e9" * (SEPARATE_PAYLOAD_SIZE - 2) + tail),
        st.binary(max_size=200),
        st.binary(max_size=10).map(lambda tail: bytearray(b"\x02" * SEPARATE_PAYLOAD_SIZE + tail)),
    ),
)
def test_send_message_parts_are_send_message_in_parts(client: bool, message: str | bytes | bytearray) -> None:
    """Joined, the parts are send_message's bytes; a server's large bytes payload is the caller's object."""
    role = CLIENT if client else SERVER
    connection = Connection(role)
    parts = connection.send_message_parts(message)
    receiver = Connection(SERVER if client else CLIENT, max_message_size=None)
    receiver.receive_data(b"".join(parts))
    (event,) = receiver.events()
    assert event.data == message
    if client:
        assert len(parts) == 1
    else:
        assert b"".join(parts) == Connection(role).send_message(message)
        large = len(message) >= SEPARATE_PAYLOAD_SIZE and type(message) in (bytes, str)
        assert len(parts) == (2 if large else 1)
        if large and isinstance(message, bytes):
            assert parts[1] is message


def test_send_message_parts_refuses_what_send_message_refuses() -> None:
    connection = Connection(SERVER)
    connection.send(CloseConnection(code=1000))
    with pytest.raises(LocalProtocolError):
        connection.send_message_parts(b"x" * SEPARATE_PAYLOAD_SIZE)
    with pytest.raises(TypeError, match="bytes-like"):
        Connection(SERVER).send_message_parts(12345)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="handshake"):
        WSConnection(SERVER).send_message_parts(b"x")


def test_a_managed_connection_queues_a_large_payload_apart() -> None:
    """take_data_to_send() gives the frames unjoined, the large payload as it was sent; data_to_send() joins."""
    large = b"\x07" * (SEPARATE_PAYLOAD_SIZE + 5)
    managed = ManagedConnection(Connection(SERVER), client=False)
    managed.send_message("hi")
    managed.send_message(large)
    managed.send_message(b"bye")
    assert managed.bytes_to_send == sum(len(part) for part in Connection(SERVER).send_message_parts(large)) + 4 + 5
    parts = managed.take_data_to_send()
    assert parts[2] is large
    assert b"".join(parts) == b"".join(Connection(SERVER).send_message(message) for message in ("hi", large, b"bye"))
    assert managed.take_data_to_send() == [] and managed.bytes_to_send == 0
    managed.send_message(large)
    joined = managed.data_to_send()
    assert joined == Connection(SERVER).send_message(large)


@pytest.mark.skipif(not masking.SPEEDUPS, reason="C speedups not built")
def test_compiled_functions_that_return_none_keep_its_reference_count() -> None:
    """None is returned as a new reference, whichever CPython's headers built the stable-ABI module.

    (CPython 3.13.0's ``Py_RETURN_NONE`` does not take one: a module it built
    lost a reference to None per call when run on 3.11, and Python aborted.)
    """
    payload = CompiledPayloadBuffer(10, None)
    assert compiled_read_whole_message(b"", True, 10) is None
    assert payload.received(0) is None
    before = sys.getrefcount(None)
    for _ in range(1000):
        compiled_read_whole_message(b"", True, 10)
        payload.received(0)
    after = sys.getrefcount(None)
    assert after == before
