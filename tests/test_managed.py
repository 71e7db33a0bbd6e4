"""Tests for ManagedConnection: automatic replies, the "close the transport now"
signal (RFC 6455 section 7.1.1), sans-I/O timers, message assembly and the
outgoing buffer.

Time is never read from a clock: every test passes ``now`` explicitly, as a
driver would, and checks :attr:`ManagedConnection.next_deadline` against it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

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
    build_frame,
    close_payload,
    parse_frame,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from wsproto_core import WSConnection
from wsproto_core.connection import Connection, ConnectionState
from wsproto_core.errors import LocalProtocolError
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
from wsproto_core.managed import ManagedConnection

S = ConnectionState
ROLES = pytest.mark.parametrize("client", [True, False], ids=["client", "server"])

# First bytes of the frames we expect to find queued (FIN set).
FIRST_TEXT, FIRST_BINARY, FIRST_CLOSE, FIRST_PING, FIRST_PONG = 0x81, 0x82, 0x88, 0x89, 0x8A


# ====================================================================== helpers


def managed(client: bool, **options: Any) -> ManagedConnection:
    """A ManagedConnection around a fresh post-handshake Connection."""
    limits = {
        key: options.pop(key) for key in ("max_message_size", "max_frame_size", "min_partial_size") if key in options
    }
    return ManagedConnection(Connection(CLIENT if client else SERVER, **limits), client=client, **options)


def incoming(m: ManagedConnection, opcode: int, payload: bytes = b"", **options: Any) -> bytes:
    """A frame as ``m``'s peer would send it (masked towards a server only)."""
    options.setdefault("mask", None if m.client else b"\x01\x02\x03\x04")
    return build_frame(opcode, payload, **options)


def receive(m: ManagedConnection, data: bytes, now: float = 0.0, chunk: int | None = None) -> list[Event]:
    """Feed ``data`` (whole or in ``chunk``-byte reads) and collect the events after each read."""
    received: list[Event] = []
    step = chunk or max(len(data), 1)
    for start in range(0, len(data), step):
        m.receive_data(data[start : start + step], now)
        received.extend(m.events(now))
    return received


def frames(data: bytes) -> list[tuple[int, bool, bytes]]:
    """Split queued bytes into frames: (first byte, masked, unmasked payload)."""
    result = []
    while data:
        first, _, masked, _, payload, data = parse_frame(data)
        result.append((first, masked, payload))
    return result


def close_frame(payload: bytes) -> tuple[int, bytes]:
    return int.from_bytes(payload[:2], "big"), payload[2:]


class ManagedPair:
    """A client and a server ManagedConnection joined in memory."""

    def __init__(self, client: ManagedConnection, server: ManagedConnection) -> None:
        self.client = client
        self.server = server
        self.received: dict[str, list[Event]] = {"client": [], "server": []}

    def exchange(self, now: float = 0.0) -> None:
        """Carry queued bytes both ways until neither side has anything more to say."""
        while self.client.bytes_to_send or self.server.bytes_to_send:
            for sender, receiver, name in ((self.client, self.server, "server"), (self.server, self.client, "client")):
                data = sender.data_to_send()
                if data:
                    receiver.receive_data(data, now)
                    self.received[name].extend(receiver.events(now))

    def take(self, name: str) -> list[Event]:
        events, self.received[name] = self.received[name], []
        return events


def connection_pair(**options: Any) -> ManagedPair:
    return ManagedPair(managed(True, **options), managed(False, **options))


def handshake_pair(**options: Any) -> ManagedPair:
    """Managed WSConnections, before the opening handshake."""
    return ManagedPair(
        ManagedConnection(WSConnection(CLIENT), client=True, **options),
        ManagedConnection(WSConnection(SERVER), client=False, **options),
    )


# ==================================================================== assembly

TEXT = "héllo wörld €😀"
ENCODED = TEXT.encode("utf-8")
# Cuts inside "é" (2 bytes), "€" (3 bytes) and "😀" (4 bytes).
MID_CODE_POINT_CUTS = [2, ENCODED.index("€".encode()) + 1, ENCODED.index("😀".encode()) + 2, len(ENCODED) - 1]


def fragmented_frames(m: ManagedConnection, opcode: int, payload: bytes, cuts: list[int]) -> bytes:
    points = [0, *cuts, len(payload)]
    pieces = [payload[a:b] for a, b in itertools.pairwise(points)]
    data = b""
    for index, piece in enumerate(pieces):
        data += incoming(m, opcode if index == 0 else OP_CONT, piece, fin=index == len(pieces) - 1)
    return data


@ROLES
@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_fragmented_text_split_mid_code_point_is_one_event(client: bool, chunk: int | None) -> None:
    m = managed(client)
    data = fragmented_frames(m, OP_TEXT, ENCODED, MID_CODE_POINT_CUTS)
    events = receive(m, data, chunk=chunk)
    assert events == [TextMessage(TEXT)]
    [event] = events
    assert type(event) is TextMessage
    assert event.frame_finished and event.message_finished
    assert m.bytes_to_send == 0


@ROLES
@pytest.mark.parametrize("chunk", [None, 1, 5])
def test_fragmented_binary_is_one_event(client: bool, chunk: int | None) -> None:
    m = managed(client)
    payload = bytes(range(256)) * 3
    data = fragmented_frames(m, OP_BINARY, payload, [0, 1, 200, 500])  # an empty first fragment too
    events = receive(m, data, chunk=chunk)
    assert events == [BytesMessage(payload)]
    assert type(events[0]) is BytesMessage
    assert events[0].message_finished


def test_fragments_across_separate_reads_and_messages_in_a_row() -> None:
    m = managed(False)
    first = fragmented_frames(m, OP_TEXT, b"abcdef", [2, 4])
    second = fragmented_frames(m, OP_BINARY, b"\x00\x01\x02", [1])
    single = incoming(m, OP_TEXT, b"whole")
    assert receive(m, first[:9]) == []
    assert receive(m, first[9:] + second + single) == [
        TextMessage("abcdef"),
        BytesMessage(b"\x00\x01\x02"),
        TextMessage("whole"),
    ]


def test_control_frames_between_fragments_pass_through_first() -> None:
    m = managed(False)
    data = (
        incoming(m, OP_TEXT, b"ab", fin=False)
        + incoming(m, OP_PING, b"p")
        + incoming(m, OP_CONT, b"cd", fin=False)
        + incoming(m, OP_PONG, b"q")
        + incoming(m, OP_CONT, b"ef")
    )
    assert receive(m, data) == [Ping(b"p"), Pong(b"q"), TextMessage("abcdef")]
    assert frames(m.data_to_send()) == [(FIRST_PONG, False, b"p")]


@ROLES
def test_assemble_messages_false_passes_fragments_through(client: bool) -> None:
    m = managed(client, assemble_messages=False)
    text = fragmented_frames(m, OP_TEXT, "aé".encode(), [2])  # "é" split between the frames
    binary = fragmented_frames(m, OP_BINARY, b"xyz", [1])
    events = receive(m, text + binary)
    assert events == [
        TextMessage("a", True, False),
        TextMessage("é", True, True),
        BytesMessage(b"x", True, False),
        BytesMessage(b"yz", True, True),
    ]
    # Partial frames are handed out as they arrive too.
    m = managed(client, assemble_messages=False, min_partial_size=0)
    events = receive(m, incoming(m, OP_BINARY, b"0123456789"), chunk=6)
    assert all(isinstance(event, BytesMessage) for event in events)
    assert len(events) > 1
    assert not events[0].frame_finished
    assert b"".join(event.data for event in events) == b"0123456789"  # type: ignore[attr-defined]


def test_assembly_is_bounded_by_the_wrapped_max_message_size() -> None:
    m = managed(False, max_message_size=8)
    data = fragmented_frames(m, OP_BINARY, b"0123456789AB", [4, 8])
    events = receive(m, data)
    assert not any(isinstance(event, Message) for event in events)
    assert isinstance(events[-1], CloseConnection)
    assert events[-1].code == 1009
    [(first, _, payload)] = frames(m.data_to_send())
    assert first == FIRST_CLOSE
    assert close_frame(payload)[0] == 1009
    assert m.should_close_transport


# =================================================================== auto reply


@ROLES
def test_ping_is_answered_with_a_pong(client: bool) -> None:
    m = managed(client)
    payload = b"are you there?"
    events = receive(m, incoming(m, OP_PING, payload))
    assert events == [Ping(payload)]
    assert m.bytes_to_send > 0
    [(first, masked, echoed)] = frames(m.data_to_send())
    assert first == FIRST_PONG
    assert echoed == payload
    assert masked is client  # RFC 6455 section 5.3: a client masks every frame
    assert m.state is S.OPEN
    assert not m.should_close_transport


@ROLES
def test_every_ping_gets_its_own_pong_in_order(client: bool) -> None:
    m = managed(client)
    data = b"".join(incoming(m, OP_PING, bytes([n]) * n) for n in range(4))
    receive(m, data)
    assert [(first, payload) for first, _, payload in frames(m.data_to_send())] == [
        (FIRST_PONG, bytes([n]) * n) for n in range(4)
    ]


@ROLES
def test_auto_reply_false_leaves_pings_to_the_application(client: bool) -> None:
    m = managed(client, auto_reply=False)
    assert receive(m, incoming(m, OP_PING, b"x")) == [Ping(b"x")]
    assert m.bytes_to_send == 0
    assert m.data_to_send() == b""


def test_ping_after_our_close_is_not_answered() -> None:
    m = managed(True)
    m.close()
    m.data_to_send()
    assert m.state is S.LOCAL_CLOSING
    assert receive(m, incoming(m, OP_PING, b"late")) == [Ping(b"late")]
    assert m.bytes_to_send == 0  # section 5.5.1: nothing but the Close after our Close


# ================================================================ close echo


def test_server_echoes_close_and_closes_the_transport_at_once() -> None:
    m = managed(False)
    events = receive(m, incoming(m, OP_CLOSE, close_payload(1001, b"going away")), now=7)
    assert events == [CloseConnection(1001, "going away")]
    assert m.close_event == CloseConnection(1001, "going away")
    [(first, masked, payload)] = frames(m.data_to_send())
    assert (first, masked) == (FIRST_CLOSE, False)
    assert close_frame(payload) == (1001, b"going away")
    assert m.state is S.CLOSED
    # Section 7.1.1: the server closes TCP first, right after the handshake.
    assert m.should_close_transport
    assert m.next_deadline is None


def test_client_echoes_close_then_waits_for_the_server_to_close_tcp() -> None:
    m = managed(True, close_timeout=10)
    events = receive(m, incoming(m, OP_CLOSE, close_payload(1000, b"bye")), now=5)
    assert events == [CloseConnection(1000, "bye")]
    [(first, masked, payload)] = frames(m.data_to_send())
    assert (first, masked) == (FIRST_CLOSE, True)
    assert close_frame(payload) == (1000, b"bye")
    assert m.state is S.CLOSED
    assert not m.should_close_transport
    assert m.next_deadline == 15
    m.handle_timers(14.999)
    assert not m.should_close_transport
    assert m.next_deadline == 15
    m.handle_timers(15)
    assert m.should_close_transport
    assert m.next_deadline is None


def test_client_closes_when_the_server_closes_tcp_after_the_handshake() -> None:
    m = managed(True, close_timeout=10)
    receive(m, incoming(m, OP_CLOSE, close_payload(1000)), now=5)
    assert frames(m.data_to_send())[0][0] == FIRST_CLOSE
    assert not m.should_close_transport
    m.receive_data(None, now=6)
    assert m.should_close_transport
    assert m.next_deadline is None
    assert list(m.events(now=6)) == []  # no 1006: the peer's Close was received
    assert m.close_event == CloseConnection(1000, "")
    m.handle_timers(100)
    assert m.should_close_transport
    assert m.bytes_to_send == 0


@ROLES
def test_close_without_a_code_is_echoed_without_a_code(client: bool) -> None:
    m = managed(client)
    assert receive(m, incoming(m, OP_CLOSE)) == [CloseConnection(1005, "")]
    [(first, _, payload)] = frames(m.data_to_send())
    assert (first, payload) == (FIRST_CLOSE, b"")
    assert m.state is S.CLOSED


@ROLES
def test_auto_reply_false_leaves_the_close_to_the_application(client: bool) -> None:
    m = managed(client, auto_reply=False, close_timeout=4)
    [event] = receive(m, incoming(m, OP_CLOSE, close_payload(4000, b"x")), now=1)
    assert event == CloseConnection(4000, "x")
    assert m.state is S.REMOTE_CLOSING
    assert m.bytes_to_send == 0
    assert not m.should_close_transport
    assert m.next_deadline is None
    assert isinstance(event, CloseConnection)
    m.send(event.response(), now=2)
    assert m.state is S.CLOSED
    [(first, _, payload)] = frames(m.data_to_send())
    assert first == FIRST_CLOSE
    assert close_frame(payload) == (4000, b"x")
    if client:
        assert not m.should_close_transport
        assert m.next_deadline == 6
        m.handle_timers(6)
    assert m.should_close_transport


def test_close_in_remote_closing_completes_the_handshake() -> None:
    m = managed(False, auto_reply=False)
    receive(m, incoming(m, OP_CLOSE, close_payload(1001)))
    m.close(reason="ok")
    assert m.state is S.CLOSED
    [(first, _, payload)] = frames(m.data_to_send())
    assert first == FIRST_CLOSE
    assert close_frame(payload) == (1000, b"ok")
    assert m.should_close_transport


@ROLES
def test_eof_without_close_ends_with_1006_and_closes_the_transport(client: bool) -> None:
    m = managed(client, ping_interval=10, ping_timeout=5)
    m.receive_data(None, now=1)
    assert m.should_close_transport
    assert list(m.events(now=1)) == [CloseConnection(1006)]
    assert m.close_event == CloseConnection(1006)
    assert m.state is S.CLOSED
    assert m.next_deadline is None
    assert m.bytes_to_send == 0
    with pytest.raises(LocalProtocolError):
        m.receive_data(b"\x81\x00")


# ================================================================ our close


@ROLES
def test_our_close_starts_the_handshake_and_the_peers_reply_completes_it(client: bool) -> None:
    m = managed(client, close_timeout=10)
    m.close(1001, "shutting down", now=2)
    assert m.state is S.LOCAL_CLOSING
    assert m.next_deadline == 12  # close_timeout after our Close
    assert not m.should_close_transport
    [(first, masked, payload)] = frames(m.data_to_send())
    assert (first, masked) == (FIRST_CLOSE, client)
    assert close_frame(payload) == (1001, b"shutting down")
    # A second close() does nothing: the handshake is under way.
    m.close(now=3)
    assert m.bytes_to_send == 0
    assert m.next_deadline == 12

    events = receive(m, incoming(m, OP_CLOSE, close_payload(1001, b"shutting down")), now=4)
    assert events == [CloseConnection(1001, "shutting down")]
    assert m.close_event == CloseConnection(1001, "shutting down")
    assert m.state is S.CLOSED
    assert m.bytes_to_send == 0  # nothing to echo: we closed first
    if client:
        # The client waits (within close_timeout) for the server to close TCP.
        assert not m.should_close_transport
        deadline = m.next_deadline
        assert deadline is not None
        assert deadline > 4
        m.handle_timers(deadline)
    assert m.should_close_transport
    assert m.next_deadline is None


@ROLES
def test_close_timeout_gives_up_on_a_silent_peer(client: bool) -> None:
    m = managed(client, close_timeout=3)
    m.close(now=10)
    m.handle_timers(12.5)
    assert not m.should_close_transport
    m.handle_timers(13)
    assert m.should_close_transport
    assert m.state is S.LOCAL_CLOSING
    assert m.next_deadline is None


@ROLES
def test_close_timeout_none_waits_for_the_peer_forever(client: bool) -> None:
    m = managed(client, close_timeout=None)
    m.close()
    assert m.next_deadline is None
    m.handle_timers(1e9)
    assert not m.should_close_transport
    receive(m, incoming(m, OP_CLOSE, close_payload(1000)))
    assert m.state is S.CLOSED
    if not client:
        assert m.should_close_transport


@ROLES
def test_sending_a_close_event_is_like_close(client: bool) -> None:
    m = managed(client, close_timeout=5)
    m.send(CloseConnection(3000, "app"), now=1)
    assert m.state is S.LOCAL_CLOSING
    assert m.next_deadline == 6
    [(first, _, payload)] = frames(m.data_to_send())
    assert first == FIRST_CLOSE
    assert close_frame(payload) == (3000, b"app")


def test_client_close_timeout_none_is_the_same_whoever_replies() -> None:
    """With close_timeout=None, a client that completed the peer-initiated closing
    handshake must behave the same whether the Close was echoed automatically or
    by the application: either both wait for the server to close TCP, or neither."""
    automatic = managed(True, close_timeout=None)
    receive(automatic, incoming(automatic, OP_CLOSE, close_payload(1000)))
    manual = managed(True, close_timeout=None, auto_reply=False)
    [event] = receive(manual, incoming(manual, OP_CLOSE, close_payload(1000)))
    assert isinstance(event, CloseConnection)
    manual.send(event.response())
    assert manual.state is automatic.state is S.CLOSED
    assert frames(manual.data_to_send())[0][2] == frames(automatic.data_to_send())[0][2]
    assert manual.next_deadline is automatic.next_deadline is None
    assert manual.should_close_transport == automatic.should_close_transport


# ================================================================= failures

INVALID_FRAMES = {
    "reserved opcode": lambda m: incoming(m, 0x3),
    "reserved bits": lambda m: incoming(m, OP_TEXT, b"x", rsv=4),
    "wrong masking": lambda m: build_frame(OP_TEXT, b"x", mask=b"\x01\x02\x03\x04" if m.client else None),
    "fragmented control": lambda m: incoming(m, OP_PING, b"", fin=False),
    "continuation first": lambda m: incoming(m, OP_CONT, b"x"),
}


@ROLES
@pytest.mark.parametrize("make", list(INVALID_FRAMES.values()), ids=list(INVALID_FRAMES))
def test_violation_queues_the_failure_close_and_closes_the_transport(client: bool, make: Any) -> None:
    m = managed(client, ping_interval=10, ping_timeout=5, close_timeout=10)
    events = receive(m, incoming(m, OP_TEXT, b"before") + make(m) + incoming(m, OP_TEXT, b"after"), now=3)
    assert events[0] == TextMessage("before")
    assert len(events) == 2
    failure = events[-1]
    assert isinstance(failure, CloseConnection)
    assert failure.code == 1002
    assert m.close_event == failure
    [(first, masked, payload)] = frames(m.data_to_send())
    assert (first, masked) == (FIRST_CLOSE, client)
    assert close_frame(payload)[0] == 1002
    assert m.state is S.CLOSED
    # Section 7.1.7: after a violation nobody waits, not even the client.
    assert m.should_close_transport
    assert m.next_deadline is None  # keepalive stopped, no close timer
    m.handle_timers(1000)
    assert m.bytes_to_send == 0


@ROLES
def test_invalid_utf8_fails_with_1007(client: bool) -> None:
    m = managed(client)
    events = receive(m, fragmented_frames(m, OP_TEXT, b"ok\xc3(", [3]))
    assert [type(event) for event in events] == [CloseConnection]
    assert m.close_event is not None
    assert m.close_event.code == 1007
    [(_, _, payload)] = frames(m.data_to_send())
    assert close_frame(payload)[0] == 1007
    assert m.should_close_transport


@ROLES
def test_violation_after_our_close_closes_at_once(client: bool) -> None:
    m = managed(client, close_timeout=10)
    m.close(now=1)
    m.data_to_send()
    events = receive(m, incoming(m, 0xB), now=2)
    assert isinstance(events[-1], CloseConnection)
    assert events[-1].code == 1002
    assert m.state is S.CLOSED
    assert m.bytes_to_send == 0  # our Close is already out
    assert m.should_close_transport
    assert m.next_deadline is None


@ROLES
def test_violation_answered_by_the_application_still_closes_at_once(client: bool) -> None:
    """With auto_reply=False the application sends the failure Close itself
    (event.response()); section 7.1.7 still says to close the transport without
    waiting for the server, whichever role we play."""
    m = managed(client, auto_reply=False, close_timeout=10)
    [failure] = receive(m, incoming(m, 0x3), now=1)
    assert isinstance(failure, CloseConnection)
    assert failure.code == 1002
    assert m.state is S.REMOTE_CLOSING
    assert m.bytes_to_send == 0
    m.send(failure.response(), now=1)
    assert m.state is S.CLOSED
    assert m.should_close_transport


# ================================================================== keepalive


def keepalive(client: bool = True, **options: Any) -> ManagedConnection:
    options = {"ping_interval": 10, "ping_timeout": 5, "now": 0, **options}
    return managed(client, **options)


def queued_ping(m: ManagedConnection) -> bytes:
    [(first, masked, payload)] = frames(m.data_to_send())
    assert first == FIRST_PING
    assert masked is m.client
    return payload


@ROLES
def test_keepalive_pings_and_a_matching_pong_clears_the_deadline(client: bool) -> None:
    m = keepalive(client)
    assert m.next_deadline == 10
    m.handle_timers(9.999)
    assert m.bytes_to_send == 0
    m.handle_timers(10)
    payload = queued_ping(m)
    assert len(payload) == 4
    assert m.next_deadline == 15  # the Pong deadline comes before the next Ping
    assert receive(m, incoming(m, OP_PONG, payload), now=12) == [Pong(payload)]
    assert m.next_deadline == 20
    m.handle_timers(15)
    assert not m.should_close_transport
    assert m.bytes_to_send == 0
    m.handle_timers(20)
    queued_ping(m)  # a fresh Ping
    assert m.next_deadline == 25
    assert m.state is S.OPEN


@ROLES
def test_missing_pong_fails_with_1011(client: bool) -> None:
    m = keepalive(client)
    m.handle_timers(10)
    m.data_to_send()
    m.handle_timers(14.999)
    assert not m.should_close_transport
    m.handle_timers(15)
    [(first, masked, payload)] = frames(m.data_to_send())
    assert (first, masked) == (FIRST_CLOSE, client)
    assert close_frame(payload) == (1011, b"keepalive ping timeout")
    assert m.should_close_transport
    assert m.state is S.LOCAL_CLOSING
    assert m.close_event is not None
    assert m.close_event.code == 1006
    assert m.next_deadline is None
    m.handle_timers(100)
    assert m.bytes_to_send == 0


@ROLES
def test_non_matching_pong_does_not_clear_the_deadline(client: bool) -> None:
    m = keepalive(client)
    m.handle_timers(10)
    payload = queued_ping(m)
    other = bytes(byte ^ 0xFF for byte in payload)
    assert receive(m, incoming(m, OP_PONG, other) + incoming(m, OP_PONG), now=11) == [Pong(other), Pong(b"")]
    assert m.next_deadline == 15
    m.handle_timers(15)
    assert m.should_close_transport


def test_unsolicited_pong_changes_nothing() -> None:
    m = keepalive()
    assert receive(m, incoming(m, OP_PONG, b"hi"), now=1) == [Pong(b"hi")]
    assert m.next_deadline == 10
    assert m.bytes_to_send == 0


def test_no_new_keepalive_ping_while_one_is_outstanding() -> None:
    m = keepalive(ping_interval=5, ping_timeout=20)
    m.handle_timers(5)
    payload = queued_ping(m)
    assert m.next_deadline == 10
    m.handle_timers(10)
    assert m.bytes_to_send == 0
    assert m.next_deadline == 15
    receive(m, incoming(m, OP_PONG, payload), now=12)
    m.handle_timers(15)
    queued_ping(m)
    assert m.next_deadline == 20


def test_keepalive_without_ping_timeout_never_fails() -> None:
    m = keepalive(ping_timeout=None)
    m.handle_timers(10)
    queued_ping(m)
    assert m.next_deadline == 20
    for now in range(20, 200, 10):
        m.handle_timers(now)
    assert m.bytes_to_send == 0  # the Ping is still outstanding: no second one
    assert not m.should_close_transport
    assert m.state is S.OPEN


def test_late_handle_timers_schedules_from_now() -> None:
    m = keepalive()
    m.handle_timers(100)
    queued_ping(m)
    assert m.next_deadline == 105
    m.handle_timers(105)
    assert m.should_close_transport


def test_keepalive_starts_from_the_construction_time() -> None:
    m = keepalive(now=1000)
    assert m.next_deadline == 1010
    m.handle_timers(1005)
    assert m.bytes_to_send == 0


def test_keepalive_continues_while_connecting_without_sending() -> None:
    pair = handshake_pair(ping_interval=10, ping_timeout=5)
    client, server = pair.client, pair.server
    assert client.state is server.state is S.CONNECTING
    assert client.next_deadline == server.next_deadline == 10
    for m in (client, server):
        m.handle_timers(10)
        assert m.bytes_to_send == 0
        assert m.next_deadline == 20
        assert m.state is S.CONNECTING
    client.send(Request(host="example.com", target="/"))
    pair.exchange(now=11)
    [request] = pair.take("server")
    assert isinstance(request, Request)
    server.handle_timers(15)
    assert server.bytes_to_send == 0
    server.send(AcceptConnection(), now=16)
    pair.exchange(now=16)
    assert client.state is server.state is S.OPEN
    # Now OPEN: at 20 both send their keepalive Ping, and each answers the other's.
    client.handle_timers(20)
    server.handle_timers(20)
    assert client.bytes_to_send and server.bytes_to_send
    assert client.next_deadline == server.next_deadline == 25
    pair.exchange(now=21)
    assert client.next_deadline == server.next_deadline == 30
    assert [type(event) for event in pair.take("client")] == [AcceptConnection, Ping, Pong]
    assert [type(event) for event in pair.take("server")] == [Ping, Pong]


@ROLES
def test_keepalive_stops_after_our_close(client: bool) -> None:
    m = keepalive(client, close_timeout=None)
    m.handle_timers(10)
    m.data_to_send()
    m.close(now=11)
    m.data_to_send()
    assert m.next_deadline is None  # no Ping, no Pong deadline, no close timer
    m.handle_timers(100)
    assert m.bytes_to_send == 0
    assert not m.should_close_transport


@ROLES
def test_keepalive_stops_after_the_peers_close(client: bool) -> None:
    m = keepalive(client, close_timeout=3)
    m.handle_timers(10)
    m.data_to_send()
    receive(m, incoming(m, OP_CLOSE, close_payload(1000)), now=11)
    m.data_to_send()
    assert m.next_deadline == (14 if client else None)
    m.handle_timers(100)
    assert m.bytes_to_send == 0
    assert m.should_close_transport


@ROLES
def test_timers_after_eof_before_the_events_are_read(client: bool) -> None:
    m = keepalive(client)
    m.handle_timers(10)
    m.data_to_send()
    m.receive_data(None, now=12)
    m.handle_timers(20)  # the Pong deadline and the next Ping are both due; the transport is gone
    assert m.bytes_to_send == 0
    assert m.should_close_transport
    assert m.next_deadline is None
    assert list(m.events(now=20)) == [CloseConnection(1006)]


def test_keepalive_stops_once_the_connection_is_closed() -> None:
    m = keepalive(ping_timeout=None)
    m.receive_data(None, now=3)
    m.handle_timers(10)
    assert m.next_deadline is None
    assert m.bytes_to_send == 0


# ================================================================ manual ping


@ROLES
def test_manual_ping_with_payload(client: bool) -> None:
    m = managed(client, ping_timeout=5)
    assert m.next_deadline is None
    assert m.ping(b"abc", now=3) == b"abc"
    [(first, masked, payload)] = frames(m.data_to_send())
    assert (first, masked, payload) == (FIRST_PING, client, b"abc")
    assert m.next_deadline == 8
    receive(m, incoming(m, OP_PONG, b"abc"), now=4)
    assert m.next_deadline is None
    m.handle_timers(100)
    assert not m.should_close_transport


def test_manual_ping_default_payload_and_timeout() -> None:
    m = managed(True, ping_timeout=2)
    payload = m.ping(now=1)
    assert len(payload) == 4
    assert queued_ping(m) == payload
    assert m.next_deadline == 3
    m.handle_timers(3)
    assert m.should_close_transport
    assert close_frame(frames(m.data_to_send())[0][2]) == (1011, b"keepalive ping timeout")


def test_manual_ping_without_ping_timeout_sets_no_deadline() -> None:
    m = managed(False)
    assert m.ping(b"") == b""
    assert queued_ping(m) == b""
    assert m.next_deadline is None
    receive(m, incoming(m, OP_PONG, b""))
    assert m.next_deadline is None


def test_manual_ping_holds_back_the_keepalive_ping() -> None:
    m = keepalive()
    m.ping(b"mine", now=8)
    m.data_to_send()
    m.handle_timers(10)
    assert m.bytes_to_send == 0
    assert m.next_deadline == 13


def test_ping_when_not_open_raises_and_changes_nothing() -> None:
    m = managed(True, ping_timeout=5)
    m.close()
    before = m.data_to_send()
    assert before
    with pytest.raises(LocalProtocolError):
        m.ping(b"x", now=1)
    assert m.bytes_to_send == 0
    assert m.next_deadline == 10  # only the close timer
    connecting = ManagedConnection(WSConnection(CLIENT), client=True, ping_timeout=5)
    with pytest.raises(LocalProtocolError):
        connecting.ping()
    assert connecting.next_deadline is None


# ========================================================== arguments, misuse


@pytest.mark.parametrize("name", ["ping_interval", "ping_timeout", "close_timeout"])
@pytest.mark.parametrize("value", [0, 0.0, -0.0, -1, -1e-9, math.nan], ids=repr)
def test_invalid_timer_arguments_raise(name: str, value: float) -> None:
    with pytest.raises(LocalProtocolError, match=name):
        managed(True, **{name: value})


@pytest.mark.parametrize("name", ["ping_interval", "ping_timeout", "close_timeout"])
@pytest.mark.parametrize("value", [None, 1e-9, 1, 2.5, math.inf])
def test_valid_timer_arguments_are_accepted(name: str, value: float | None) -> None:
    m = managed(False, **{name: value})
    assert getattr(m, name) == value


def test_defaults() -> None:
    m = managed(True)
    assert m.client and m.auto_reply and m.assemble_messages
    assert (m.ping_interval, m.ping_timeout, m.close_timeout) == (None, None, 10.0)
    assert m.next_deadline is None
    assert m.state is S.OPEN is m.connection.state
    assert m.close_event is None
    assert not m.should_close_transport
    assert m.bytes_to_send == 0
    assert m.data_to_send() == b""


@ROLES
def test_forbidden_sends_raise_and_queue_nothing(client: bool) -> None:
    m = managed(client)
    m.close()
    m.data_to_send()
    for event in (TextMessage("x"), BytesMessage(b"x"), Ping(), Pong(), CloseConnection(1000)):
        with pytest.raises(LocalProtocolError):
            m.send(event)
        assert m.bytes_to_send == 0
        assert m.state is S.LOCAL_CLOSING
    with pytest.raises(LocalProtocolError):
        m.send(Request(host="h", target="/"))


# ============================================================= outgoing buffer


@ROLES
def test_bytes_to_send_reflects_the_queue(client: bool) -> None:
    m = managed(client)
    assert m.bytes_to_send == 0
    m.send(TextMessage("hello"))
    assert m.bytes_to_send == 2 + (4 if client else 0) + 5
    m.send(BytesMessage(b"\x00" * 200))
    expected = 2 + 2 + 200 + (8 if client else 0) + 2 + 5
    assert m.bytes_to_send == expected
    receive(m, incoming(m, OP_PING, b"pp"))  # the auto Pong joins the queue
    expected += 2 + 2 + (4 if client else 0)
    assert m.bytes_to_send == expected
    data = m.data_to_send()
    assert len(data) == expected
    assert [(first, payload) for first, _, payload in frames(data)] == [
        (FIRST_TEXT, b"hello"),
        (FIRST_BINARY, b"\x00" * 200),
        (FIRST_PONG, b"pp"),
    ]
    assert m.bytes_to_send == 0
    assert m.data_to_send() == b""


def test_fragmented_send_round_trips_through_assembly() -> None:
    pair = connection_pair()
    pair.client.send(TextMessage("ab€", message_finished=False))
    pair.client.send(TextMessage("", message_finished=False))
    pair.client.send(TextMessage("cd"))
    pair.server.send(BytesMessage(b"\x01", message_finished=False))
    pair.server.send(BytesMessage(b"\x02"))
    pair.exchange()
    assert pair.take("server") == [TextMessage("ab€cd")]
    assert pair.take("client") == [BytesMessage(b"\x01\x02")]


# ============================================================== end to end


def test_full_handshake_and_conversation_through_managed_wsconnections() -> None:
    pair = handshake_pair(ping_interval=30, ping_timeout=10, close_timeout=5)
    client, server = pair.client, pair.server
    client.send(Request(host="example.com", target="/chat", subprotocols=["chat"]))
    assert client.bytes_to_send > 0
    pair.exchange(now=1)
    [request] = pair.take("server")
    assert isinstance(request, Request)
    assert request.subprotocols == ["chat"]
    server.send(AcceptConnection(subprotocol="chat"), now=1)
    server.send(TextMessage("welcome"), now=1)  # in the same write as the 101 response
    pair.exchange(now=1)
    assert client.state is server.state is S.OPEN
    [accept, welcome] = pair.take("client")
    assert isinstance(accept, AcceptConnection)
    assert accept.subprotocol == "chat"
    assert welcome == TextMessage("welcome")

    client.send(TextMessage("part one, ", message_finished=False), now=2)
    client.send(TextMessage("part two"), now=2)
    client.send(BytesMessage(b"\x00\xff"), now=2)
    client.ping(b"rtt", now=2)
    pair.exchange(now=2)
    assert pair.take("server") == [TextMessage("part one, part two"), BytesMessage(b"\x00\xff"), Ping(b"rtt")]
    assert pair.take("client") == [Pong(b"rtt")]
    assert client.next_deadline == 30  # the Pong cleared the manual ping's deadline

    # Keepalive on both sides at 30; each answers the other's Ping.
    client.handle_timers(30)
    server.handle_timers(30)
    pair.exchange(now=30.5)
    assert [type(event) for event in pair.take("server")] == [Ping, Pong]
    assert [type(event) for event in pair.take("client")] == [Ping, Pong]
    assert client.next_deadline == server.next_deadline == 60

    client.close(1000, "done", now=40)
    pair.exchange(now=40)
    assert pair.take("server") == [CloseConnection(1000, "done")]
    assert pair.take("client") == [CloseConnection(1000, "done")]
    assert client.state is server.state is S.CLOSED
    assert server.should_close_transport
    assert server.next_deadline is None
    assert not client.should_close_transport
    assert client.next_deadline is not None
    # The server closes TCP first; the client sees the end of the stream.
    client.receive_data(None, now=41)
    assert list(client.events(now=41)) == []
    assert client.should_close_transport
    assert client.next_deadline is None


@pytest.mark.parametrize("has_body", [False, True])
def test_rejected_handshake_closes_the_transport(has_body: bool) -> None:
    """After a rejection the WebSocket connection never opened and both wrapped
    WSConnections are CLOSED for good: nothing more can be sent or received on
    them, so a driver whose loop waits for should_close_transport must be told
    to close the transport (otherwise it idles until the peer hangs up)."""
    pair = handshake_pair(ping_interval=10)
    pair.client.send(Request(host="example.com", target="/"))
    pair.exchange()
    pair.server.send(RejectConnection(status_code=403, has_body=has_body))
    if has_body:
        pair.server.send(RejectData(b"forbidden"))
    pair.exchange()
    assert pair.server.state is pair.client.state is S.CLOSED
    assert any(isinstance(event, RejectConnection) for event in pair.take("client"))
    assert pair.server.should_close_transport
    assert pair.client.should_close_transport


def test_eof_during_the_handshake_closes_the_transport() -> None:
    m = ManagedConnection(WSConnection(CLIENT), client=True, ping_interval=10)
    m.receive_data(None, now=1)
    list(m.events(now=1))
    assert m.state is S.CLOSED
    assert m.should_close_transport
    m.handle_timers(10)
    assert m.next_deadline is None


# ========================================================= state machine

CLOSE_CODES = [1000, 1001, 1005, 3000, 4999]


@dataclass
class Side:
    name: str
    m: ManagedConnection
    inbox: bytearray = field(default_factory=bytearray)  # bytes from the peer, not yet delivered
    eof_pending: bool = False  # the peer's transport closed: EOF follows the inbox
    transport_closed: bool = False  # our driver called receive_data(None)
    lost: bool = False  # bytes for us were dropped
    sent: list[Event] = field(default_factory=list)  # whole messages we sent
    received: list[Event] = field(default_factory=list)  # whole messages we received
    events: list[Event] = field(default_factory=list)  # every event, in order
    was_told_to_close: bool = False


TIMER_OPTIONS = st.fixed_dictionaries(
    {
        "auto_reply": st.booleans(),
        "ping_interval": st.sampled_from([None, 5.0, 10.0]),
        "ping_timeout": st.sampled_from([None, 2.0, 20.0]),
        "close_timeout": st.sampled_from([None, 3.0, 10.0]),
    }
)
NAMES = st.sampled_from(["client", "server"])


class ManagedConversation(RuleBasedStateMachine):
    """A client and a server ManagedConnection driven as an I/O driver would."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.sides: dict[str, Side] = {}

    @initialize(client_options=TIMER_OPTIONS, server_options=TIMER_OPTIONS)
    def start(self, client_options: dict[str, Any], server_options: dict[str, Any]) -> None:
        self.sides = {
            "client": Side("client", managed(True, **client_options)),
            "server": Side("server", managed(False, **server_options)),
        }

    def peer(self, side: Side) -> Side:
        return self.sides["server" if side.name == "client" else "client"]

    # ----------------------------------------------------------- the driver

    def pump(self) -> None:
        """Write what is queued, close transports that should be closed."""
        changed = True
        while changed:
            changed = False
            for side in self.sides.values():
                data = side.m.data_to_send()
                assert side.m.bytes_to_send == 0
                peer = self.peer(side)
                if data:
                    if side.transport_closed or peer.transport_closed or peer.eof_pending:
                        peer.lost = True
                    else:
                        peer.inbox += data
                if side.m.should_close_transport and not side.transport_closed:
                    self.tear_down(side)
                    changed = True

    def tear_down(self, side: Side) -> None:
        """Our transport is gone: unread bytes are lost, the peer will see EOF."""
        if side.inbox:
            side.lost = True
        side.inbox.clear()
        side.m.receive_data(None, self.now)
        side.transport_closed = True
        self.take_events(side)
        peer = self.peer(side)
        if not peer.transport_closed:
            peer.eof_pending = True

    def take_events(self, side: Side) -> None:
        told_before = side.m.should_close_transport
        for event in side.m.events(self.now):
            assert not any(isinstance(seen, CloseConnection) for seen in side.events), f"{event!r} after a close"
            side.events.append(event)
            if isinstance(event, Message):
                assert event.message_finished and event.frame_finished  # assembled
                side.received.append(event)
            if isinstance(event, CloseConnection) and side.m.state is S.CLOSED and not told_before:
                self.check_client_waits(side)

    def check_client_waits(self, side: Side) -> None:
        """Section 7.1.1: after a clean closing handshake the client waits for the server to close TCP."""
        m = side.m
        if m.client and m.close_timeout is not None:
            assert not m.should_close_transport
            deadline = m.next_deadline
            assert deadline is not None
            assert deadline <= self.now + m.close_timeout

    # -------------------------------------------------------------- rules

    @rule(
        name=NAMES,
        data=st.one_of(st.text(max_size=30), st.binary(max_size=300)),
        pieces=st.integers(1, 3),
    )
    def send_message(self, name: str, data: str | bytes, pieces: int) -> None:
        side = self.sides[name]
        cls: type[Message[Any]] = TextMessage if isinstance(data, str) else BytesMessage
        step = max(1, -(-len(data) // pieces))
        parts = [data[start : start + step] for start in range(0, len(data), step)] or [data]
        if side.m.state is not S.OPEN:
            state, queued = side.m.state, side.m.bytes_to_send
            with pytest.raises(LocalProtocolError):
                side.m.send(cls(parts[0], message_finished=len(parts) == 1), self.now)
            assert (side.m.state, side.m.bytes_to_send) == (state, queued)
            return
        for index, part in enumerate(parts):
            side.m.send(cls(part, message_finished=index == len(parts) - 1), self.now)
        side.sent.append(cls(data))
        self.pump()

    @rule(name=NAMES, payload=st.one_of(st.none(), st.binary(max_size=8)))
    def ping(self, name: str, payload: bytes | None) -> None:
        side = self.sides[name]
        if side.m.state is not S.OPEN:
            with pytest.raises(LocalProtocolError):
                side.m.ping(payload, now=self.now)
            return
        sent = side.m.ping(payload, now=self.now)
        assert payload is None or sent == payload
        self.pump()

    @rule(name=NAMES, code=st.sampled_from(CLOSE_CODES), reason=st.text(max_size=10), roll=st.integers(0, 2))
    def close(self, name: str, code: int, reason: str, roll: int) -> None:
        side = self.sides[name]
        if roll and side.m.state is S.OPEN:
            return  # start the closing handshake less often, so that conversations last
        before = side.m.state
        side.m.close(code, None if code == 1005 else reason, now=self.now)  # 1005 sends no code, so no reason
        if before is S.OPEN:
            assert side.m.state is S.LOCAL_CLOSING
        elif before is S.REMOTE_CLOSING:
            assert side.m.state is S.CLOSED
            self.check_client_waits(side)
        else:
            assert side.m.state is before
            assert side.m.bytes_to_send == 0
        self.pump()

    @rule(name=NAMES, code=st.sampled_from(CLOSE_CODES))
    def send_close_event(self, name: str, code: int) -> None:
        side = self.sides[name]
        if side.m.state not in (S.OPEN, S.REMOTE_CLOSING):
            with pytest.raises(LocalProtocolError):
                side.m.send(CloseConnection(code), self.now)
            return
        before = side.m.state
        side.m.send(CloseConnection(code), self.now)
        if before is S.REMOTE_CLOSING:
            assert side.m.state is S.CLOSED
            self.check_client_waits(side)
        self.pump()

    @rule(name=NAMES, ping=st.booleans(), payload=st.binary(max_size=6))
    def send_control(self, name: str, ping: bool, payload: bytes) -> None:
        """Pings and Pongs sent by the application itself, outside ManagedConnection's bookkeeping."""
        side = self.sides[name]
        event = Ping(payload) if ping else Pong(payload)
        if side.m.state is not S.OPEN:
            with pytest.raises(LocalProtocolError):
                side.m.send(event, self.now)
            return
        side.m.send(event, self.now)
        self.pump()

    @precondition(lambda self: any(side.inbox or side.eof_pending for side in self.sides.values()))
    @rule(name=NAMES, size=st.one_of(st.integers(1, 40), st.just(1 << 20)))
    def deliver(self, name: str, size: int) -> None:
        side = self.sides[name]
        if side.transport_closed:
            return
        if side.inbox:
            chunk = bytes(side.inbox[:size])
            del side.inbox[:size]
            side.m.receive_data(chunk, self.now)
            self.take_events(side)
        elif side.eof_pending:
            self.tear_down(side)
        self.pump()

    @precondition(lambda self: any(side.inbox or side.eof_pending for side in self.sides.values()))
    @rule()
    def deliver_everything(self) -> None:
        """A fast network: everything in flight arrives, replies included, EOFs last."""
        while True:
            pending = [side for side in self.sides.values() if not side.transport_closed and side.inbox]
            if not pending:
                pending = [side for side in self.sides.values() if not side.transport_closed and side.eof_pending]
            if not pending:
                return
            self.deliver(pending[0].name, 1 << 20)

    @rule(name=NAMES, roll=st.integers(0, 5))
    def lose_transport(self, name: str, roll: int) -> None:
        side = self.sides[name]
        if roll or side.transport_closed:
            return
        self.tear_down(side)
        self.pump()

    @rule(delay=st.one_of(st.floats(0, 25, allow_nan=False), st.sampled_from([0.0, 1.0, 2.0, 5.0])))
    def advance(self, delay: float) -> None:
        self.now += delay
        for side in self.sides.values():
            side.m.handle_timers(self.now)
        self.check_deadlines()
        self.pump()

    @precondition(lambda self: any(side.m.next_deadline is not None for side in self.sides.values()))
    @rule()
    def advance_to_next_deadline(self) -> None:
        deadlines = [side.m.next_deadline for side in self.sides.values() if side.m.next_deadline is not None]
        self.now = max(self.now, min(deadlines))
        for side in self.sides.values():
            side.m.handle_timers(self.now)
        self.check_deadlines()
        self.pump()

    def check_deadlines(self) -> None:
        for side in self.sides.values():
            deadline = side.m.next_deadline
            assert deadline is None or deadline > self.now, (side.name, deadline, self.now)

    # ---------------------------------------------------------- invariants

    @invariant()
    def deadlines_are_in_the_future(self) -> None:
        self.check_deadlines()

    @invariant()
    def should_close_transport_stays_true(self) -> None:
        for side in self.sides.values():
            if side.was_told_to_close:
                assert side.m.should_close_transport, side.name
            side.was_told_to_close = side.m.should_close_transport

    @invariant()
    def closing_signals_are_consistent(self) -> None:
        for side in self.sides.values():
            m = side.m
            engine = m.connection
            assert isinstance(engine, Connection)
            assert engine.failure is None, (side.name, engine.failure)  # both peers behave
            if side.transport_closed:
                assert m.state is S.CLOSED
                assert m.should_close_transport
                assert m.next_deadline is None  # nothing left to wake the driver for
            if m.state is S.CLOSED:
                assert m.close_event is not None
                if not m.client:
                    assert m.should_close_transport  # section 7.1.1: the server closes first
                    assert m.next_deadline is None
                else:
                    assert m.should_close_transport or m.next_deadline is not None or m.close_timeout is None
            if m.state is S.OPEN and m.ping_interval is not None:
                assert m.next_deadline is not None  # the keepalive is alive
            if m.state is S.OPEN:
                assert not m.should_close_transport

    @invariant()
    def messages_arrive_whole_and_in_order(self) -> None:
        for side in self.sides.values():
            sent = self.peer(side).sent
            assert side.received == sent[: len(side.received)], side.name
            peer_closed = any(isinstance(event, CloseConnection) and event.code != 1006 for event in side.events)
            if peer_closed or (not side.inbox and not side.lost and not side.transport_closed):
                assert side.received == sent, side.name


TestManagedConversation = ManagedConversation.TestCase
TestManagedConversation.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_outgoing_frames_are_joined_in_order_and_a_lone_frame_is_not_copied() -> None:
    class Engine:
        """Returns the frames it is given to send, so that the test knows their identity."""

        state = S.OPEN
        buffered_bytes = 0
        failure = None

        def __init__(self) -> None:
            self.frames: list[bytes] = []

        def receive_data(self, data: Any) -> None:
            pass

        def events(self) -> Any:
            return iter(())

        def send(self, event: Event) -> bytes:
            assert isinstance(event, BytesMessage)
            frame = bytes(event.data)
            self.frames.append(frame)
            return frame

    engine = Engine()
    m = ManagedConnection(engine, client=False)
    big = b"x" * 100_000
    m.send(BytesMessage(big))
    assert m.bytes_to_send == len(big)
    assert m.data_to_send() is engine.frames[0]
    assert (m.bytes_to_send, m.data_to_send()) == (0, b"")
    for data in (b"one", b"", b"two", bytearray(b"three")):
        m.send(BytesMessage(data))
    assert m.bytes_to_send == 11
    assert m.data_to_send() == b"onetwothree"


# ============================================================ Pong matching


@ROLES
def test_a_pong_acknowledges_its_ping_and_every_earlier_one(client: bool) -> None:
    m = managed(client, ping_timeout=5)
    for payload, now in ((b"A", 1), (b"B", 2), (b"C", 3)):
        m.ping(payload, now=now)
    m.data_to_send()
    assert m.next_deadline == 6  # the oldest waiting Ping's
    # An unsolicited Pong, then one for B only (section 5.5.3 allows answering the latest).
    assert receive(m, incoming(m, OP_PONG, b"Z") + incoming(m, OP_PONG, b"B"), now=4) == [Pong(b"Z"), Pong(b"B")]
    assert m.take_acknowledged_pings() == [b"A", b"B"]
    assert m.take_acknowledged_pings() == []
    assert m.next_deadline == 8  # C's
    m.handle_timers(7.999)
    assert not m.should_close_transport
    m.handle_timers(8)
    assert m.should_close_transport
    assert m.close_event is not None and m.close_event.reason == "keepalive ping timeout"


def test_a_pong_for_a_later_ping_clears_the_keepalive_deadline() -> None:
    m = keepalive()
    m.handle_timers(10)
    keepalive_payload = queued_ping(m)
    m.ping(b"mine", now=11)
    m.data_to_send()
    receive(m, incoming(m, OP_PONG, b"mine"), now=12)
    assert m.take_acknowledged_pings() == [keepalive_payload, b"mine"]
    assert m.next_deadline == 20  # the next keepalive Ping; no Pong deadline left
    m.handle_timers(15)
    assert not m.should_close_transport


def test_a_payload_sent_again_waits_for_the_pong_after_its_latest_sending() -> None:
    m = managed(True, ping_timeout=5)
    m.ping(b"A", now=1)
    m.ping(b"B", now=2)
    m.ping(b"A", now=3)
    m.data_to_send()
    receive(m, incoming(m, OP_PONG, b"B"), now=4)
    assert m.take_acknowledged_pings() == [b"B"]
    assert m.next_deadline == 8
    receive(m, incoming(m, OP_PONG, b"A"), now=5)
    assert m.take_acknowledged_pings() == [b"A"]
    assert m.next_deadline is None


# ============================================================== ordering rule


@ROLES
def test_hold_after_message_stops_before_a_close_in_the_same_read(client: bool) -> None:
    m = managed(client, hold_after_message=True)
    m.receive_data(incoming(m, OP_TEXT, b"hello") + incoming(m, OP_CLOSE, close_payload(1000, b"")), 1)
    assert list(m.events(1)) == [TextMessage("hello")]
    assert m.held
    # The Close behind the message is not parsed yet: the reply may still be sent.
    assert m.state is S.OPEN
    m.send(TextMessage("hello back"))
    assert list(m.events(2)) == [CloseConnection(1000, "")]
    assert not m.held
    queued = frames(m.data_to_send())
    assert [first for first, _, _ in queued] == [FIRST_TEXT, FIRST_CLOSE]
    assert queued[0][2] == b"hello back"


def test_hold_after_message_does_not_hold_without_bytes_behind_or_without_the_option() -> None:
    held = managed(False, hold_after_message=True)
    assert receive(held, incoming(held, OP_BINARY, b"one")) == [BytesMessage(b"one")]
    assert not held.held
    plain = managed(False)
    data = incoming(plain, OP_TEXT, b"a") + incoming(plain, OP_CLOSE, close_payload(1000, b""))
    assert receive(plain, data) == [TextMessage("a"), CloseConnection(1000, "")]
    assert not plain.held


def test_hold_after_message_holds_behind_an_incomplete_frame_too() -> None:
    m = managed(False, hold_after_message=True)
    second = incoming(m, OP_TEXT, b"second")
    m.receive_data(incoming(m, OP_TEXT, b"first") + second[:3])
    assert list(m.events()) == [TextMessage("first")]
    assert m.held
    assert list(m.events()) == []
    assert not m.held
    m.receive_data(second[3:])
    assert list(m.events()) == [TextMessage("second")]


def test_hold_after_message_ends_once_we_sent_our_close() -> None:
    """After our Close no reply can be sent any more: nothing to hold for."""
    m = managed(False, hold_after_message=True)
    m.close(1001)
    data = incoming(m, OP_TEXT, b"late") + incoming(m, OP_CLOSE, close_payload(1001, b""))
    assert receive(m, data) == [TextMessage("late"), CloseConnection(1001, "")]
    assert not m.held


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(st.binary(max_size=40), min_size=1, max_size=6),
    ending=st.sampled_from(["close", "violation"]),
    chunk=st.integers(min_value=1, max_value=64),
)
def test_every_message_before_a_close_or_violation_can_be_answered(
    messages: list[bytes], ending: str, chunk: int
) -> None:
    """A driver that answers each message once taken: every answer precedes the closing frame.

    The reads split the peer's bytes anywhere; with the ordering rule, no
    Close or failure Close of ours overtakes an answer, and every message is
    delivered.
    """
    m = managed(False, hold_after_message=True)
    data = b"".join(incoming(m, OP_BINARY, message) for message in messages)
    data += incoming(m, OP_CLOSE, close_payload(1000, b"")) if ending == "close" else incoming(m, 0x3)
    delivered = []
    for start in range(0, len(data), chunk):
        m.receive_data(data[start : start + chunk])
        while True:
            for event in m.events():
                if isinstance(event, BytesMessage):
                    delivered.append(event.data)
                    m.send(BytesMessage(b"re:" + event.data))
            if not m.held:
                break
    assert delivered == messages
    sent = frames(m.data_to_send())
    assert [payload for first, _, payload in sent[:-1]] == [b"re:" + message for message in messages]
    assert sent[-1][0] == FIRST_CLOSE
    assert close_frame(sent[-1][2])[0] == (1000 if ending == "close" else 1002)
