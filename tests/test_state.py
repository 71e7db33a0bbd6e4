"""Tests for wsproto_core.state: the transition and sendability tables."""

from __future__ import annotations

import copy
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsproto_core import WSConnection
from wsproto_core.connection import Connection
from wsproto_core.errors import LocalProtocolError, RemoteProtocolError
from wsproto_core.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto_core.handshake import H11Handshake
from wsproto_core.state import (
    SENDABLE,
    TRANSITIONS,
    ConnectionState,
    ConnectionType,
    SendKind,
    Trigger,
    may_send,
    next_state,
)

S = ConnectionState
T = Trigger

POST_HANDSHAKE = [S.OPEN, S.LOCAL_CLOSING, S.REMOTE_CLOSING, S.CLOSED]


def test_every_state_has_entries() -> None:
    assert set(TRANSITIONS) == set(ConnectionState)
    assert set(SENDABLE) == set(ConnectionState)


def test_targets_are_states() -> None:
    for table in TRANSITIONS.values():
        for target in table.values():
            assert isinstance(target, ConnectionState)


def test_values_match_wsproto() -> None:
    assert [(state.name, state.value) for state in ConnectionState] == [
        ("CONNECTING", 0),
        ("OPEN", 1),
        ("REMOTE_CLOSING", 2),
        ("LOCAL_CLOSING", 3),
        ("CLOSED", 4),
        ("REJECTING", 5),
    ]
    assert {member.name for member in ConnectionType} == {"CLIENT", "SERVER"}


def test_next_state_refuses_what_the_table_lacks() -> None:
    # A missing pair is a bug of the caller's (it checks may_send first): it must not pass silently.
    for state, trigger in itertools.product(ConnectionState, Trigger):
        if trigger not in TRANSITIONS[state]:
            with pytest.raises(KeyError):
                next_state(state, trigger)


@pytest.mark.parametrize("state", list(ConnectionState))
def test_transport_close_always_ends_in_closed(state: ConnectionState) -> None:
    assert next_state(state, T.TRANSPORT_CLOSED) is S.CLOSED


def test_closing_handshake_paths() -> None:
    """RFC 6455 section 7: OPEN -> LOCAL_CLOSING -> CLOSED and OPEN -> REMOTE_CLOSING -> CLOSED."""
    assert next_state(S.OPEN, T.SEND_CLOSE) is S.LOCAL_CLOSING
    assert next_state(S.LOCAL_CLOSING, T.RECEIVE_CLOSE) is S.CLOSED
    assert next_state(S.OPEN, T.RECEIVE_CLOSE) is S.REMOTE_CLOSING
    assert next_state(S.REMOTE_CLOSING, T.SEND_CLOSE) is S.CLOSED


def test_violation_is_like_a_received_close() -> None:
    """Section 7.1.7: failing the connection; we still owe our Close unless already sent."""
    assert next_state(S.OPEN, T.REMOTE_VIOLATION) is S.REMOTE_CLOSING
    assert next_state(S.LOCAL_CLOSING, T.REMOTE_VIOLATION) is S.CLOSED
    assert next_state(S.CLOSED, T.REMOTE_VIOLATION) is S.CLOSED


def test_no_second_close() -> None:
    """Section 5.5.1: only one Close is sent and received per direction."""
    for state in (S.LOCAL_CLOSING, S.CLOSED):
        with pytest.raises(KeyError):
            next_state(state, T.SEND_CLOSE)
    with pytest.raises(KeyError):
        next_state(S.REMOTE_CLOSING, T.RECEIVE_CLOSE)


def test_closed_is_absorbing() -> None:
    assert set(TRANSITIONS[S.CLOSED].values()) == {S.CLOSED}


def test_post_handshake_states_never_go_back() -> None:
    for state in POST_HANDSHAKE:
        for target in TRANSITIONS[state].values():
            assert target in POST_HANDSHAKE
            assert target is not S.OPEN


def test_handshake_paths() -> None:
    assert next_state(S.CONNECTING, T.HANDSHAKE_ACCEPTED) is S.OPEN
    assert next_state(S.CONNECTING, T.HANDSHAKE_REJECTED) is S.REJECTING
    assert next_state(S.REJECTING, T.REJECTION_FINISHED) is S.CLOSED


def test_every_state_reachable_from_connecting() -> None:
    seen = {S.CONNECTING}
    frontier = [S.CONNECTING]
    while frontier:
        state = frontier.pop()
        for target in TRANSITIONS[state].values():
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(ConnectionState)


@pytest.mark.parametrize("state", list(ConnectionState))
def test_sending_close_is_possible_exactly_when_table_allows(state: ConnectionState) -> None:
    """Consistency of the two tables: CLOSE is sendable iff SEND_CLOSE has a transition."""
    assert (SendKind.CLOSE in SENDABLE[state]) == (T.SEND_CLOSE in TRANSITIONS[state])


# ------------------------------------------------- send() follows the tables
#
# A connection (or a handshake) is driven through random sequences of what can
# happen to it; the state it reaches must be the table's, and in every state
# reached, send() must accept exactly the events that may_send() allows: each
# event is tried on a copy, so a refused one must leave the state as it was and
# an accepted one does not disturb the run.

CONNECTION_PROBES: list[tuple[Event, SendKind]] = [
    (TextMessage("t"), SendKind.DATA),
    (BytesMessage(b"b"), SendKind.DATA),
    (Ping(b"p"), SendKind.DATA),
    (Pong(b"p"), SendKind.DATA),
    (CloseConnection(1000), SendKind.CLOSE),
]
CONNECTION_ACTIONS = ["send close", "receive close", "receive violation", "transport closed", "send message"]


def peer_bytes(role: ConnectionType, event: Event) -> bytes:
    """What the peer of a ``role`` connection sends for ``event``."""
    peer = ConnectionType.SERVER if role is ConnectionType.CLIENT else ConnectionType.CLIENT
    return Connection(peer).send(event)


def accepts(sender: Connection | H11Handshake, event: Event) -> bool:
    """Whether ``sender`` sends ``event`` (tried on a copy); a refusal must change nothing."""
    trial = copy.deepcopy(sender)
    try:
        trial.send(event)
    except LocalProtocolError:
        assert trial.state is sender.state
        return False
    return True


@given(role=st.sampled_from(list(ConnectionType)), actions=st.lists(st.sampled_from(CONNECTION_ACTIONS), max_size=6))
def test_connection_send_accepts_exactly_what_the_table_allows(role: ConnectionType, actions: list[str]) -> None:
    connection = Connection(role)
    expected = S.OPEN
    for action in [None, *actions]:
        trigger = None
        reading = expected not in (S.CLOSED, S.REMOTE_CLOSING)
        if action == "send close" and may_send(expected, role, SendKind.CLOSE):
            connection.send(CloseConnection(1000))
            trigger = T.SEND_CLOSE
        elif action == "send message" and may_send(expected, role, SendKind.DATA):
            connection.send(TextMessage("m"))
        elif action == "receive close" and reading:
            connection.receive_data(peer_bytes(role, CloseConnection(1000)))
            list(connection.events())
            trigger = T.RECEIVE_CLOSE
        elif action == "receive violation" and reading:
            connection.receive_data(b"\x83\x00" if role is ConnectionType.CLIENT else b"\x83\x80\x00\x00\x00\x00")
            list(connection.events())
            trigger = T.REMOTE_VIOLATION
        elif action == "transport closed" and expected is not S.CLOSED:
            connection.receive_data(None)
            list(connection.events())
            trigger = T.TRANSPORT_CLOSED
        if trigger is not None:
            expected = next_state(expected, trigger)
        assert connection.state is expected
        for event, kind in CONNECTION_PROBES:
            assert accepts(connection, event) == may_send(expected, role, kind), (event, expected)


HANDSHAKE_PROBES: list[tuple[Event, SendKind]] = [
    (Request(host="h", target="/"), SendKind.REQUEST),
    (AcceptConnection(), SendKind.ACCEPT),
    (RejectConnection(status_code=400, has_body=True), SendKind.REJECT),
    (RejectData(b"body", body_finished=False), SendKind.REJECT_DATA),
]
SERVER_SENDS: dict[str, tuple[Event, SendKind]] = {
    "accept": (AcceptConnection(), SendKind.ACCEPT),
    "reject": (RejectConnection(status_code=400, has_body=True), SendKind.REJECT),
    "reject without body": (RejectConnection(status_code=400), SendKind.REJECT),
    "body": (RejectData(b"x", body_finished=False), SendKind.REJECT_DATA),
    "last body": (RejectData(b"", body_finished=True), SendKind.REJECT_DATA),
}
HANDSHAKE_ACTIONS = [
    "request",
    "invalid request",
    "101",
    "rejection",
    "rejection end",
    "transport closed",
    *SERVER_SENDS,
]


@given(role=st.sampled_from(list(ConnectionType)), actions=st.lists(st.sampled_from(HANDSHAKE_ACTIONS), max_size=6))
def test_handshake_send_accepts_exactly_what_the_table_allows(role: ConnectionType, actions: list[str]) -> None:
    handshake = H11Handshake(role)
    server_side = H11Handshake(ConnectionType.SERVER)  # answers our client
    request_exists = False
    # One HTTP request per handshake: a server that received one, valid or not, gets no other.
    request_received = False
    for action in [None, *actions]:
        state = handshake.state
        server_reads = role is ConnectionType.SERVER and state is S.CONNECTING and not request_received
        if server_reads and action == "request":
            handshake.receive_data(WSConnection(ConnectionType.CLIENT).send(Request(host="h", target="/")))
            list(handshake.events())
            request_exists = request_received = True
        elif server_reads and action == "invalid request":
            with pytest.raises(RemoteProtocolError):
                handshake.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            request_received = True
        elif role is ConnectionType.SERVER and action in SERVER_SENDS:
            event, kind = SERVER_SENDS[action]
            if may_send(state, role, kind, request_exists):
                handshake.send(event)
        elif role is ConnectionType.CLIENT and action == "request":
            if may_send(state, role, SendKind.REQUEST, request_exists):
                server_side.receive_data(handshake.send(Request(host="h", target="/")))
                list(server_side.events())
                request_exists = True
        elif role is ConnectionType.CLIENT and action in ("101", "rejection"):
            if state is S.CONNECTING and request_exists:
                answer = AcceptConnection() if action == "101" else RejectConnection(status_code=400, has_body=True)
                handshake.receive_data(server_side.send(answer))
                list(handshake.events())
        elif role is ConnectionType.CLIENT and action == "rejection end" and state is S.REJECTING:
            handshake.receive_data(server_side.send(RejectData(b"", body_finished=True)))
            list(handshake.events())
        elif action == "transport closed" and state in (S.CONNECTING, S.REJECTING):
            handshake.receive_data(None)
            list(handshake.events())
        for event, kind in HANDSHAKE_PROBES:
            assert accepts(handshake, event) == may_send(handshake.state, role, kind, request_exists), (
                event,
                handshake.state,
            )
