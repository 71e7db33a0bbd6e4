"""Tests for wsproto_core.state: the transition and sendability tables."""

from __future__ import annotations

import itertools

import pytest

from wsproto_core.state import (
    SENDABLE,
    TRANSITIONS,
    ConnectionState,
    ConnectionType,
    SendKind,
    Trigger,
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


@pytest.mark.parametrize(("state", "trigger"), list(itertools.product(ConnectionState, Trigger)))
def test_next_state_follows_table_or_raises(state: ConnectionState, trigger: Trigger) -> None:
    if trigger in TRANSITIONS[state]:
        assert next_state(state, trigger) is TRANSITIONS[state][trigger]
    else:
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


def test_sendable() -> None:
    """Section 5.5.1: no data after sending a Close; after receiving one only our Close."""
    assert SENDABLE[S.OPEN] == {SendKind.DATA, SendKind.CLOSE}
    assert SENDABLE[S.REMOTE_CLOSING] == {SendKind.CLOSE}
    assert SENDABLE[S.LOCAL_CLOSING] == frozenset()
    assert SENDABLE[S.CLOSED] == frozenset()
    assert SENDABLE[S.CONNECTING] == frozenset()
    assert SENDABLE[S.REJECTING] == {SendKind.REJECT_DATA}


@pytest.mark.parametrize("state", list(ConnectionState))
def test_sending_close_is_possible_exactly_when_table_allows(state: ConnectionState) -> None:
    """Consistency of the two tables: CLOSE is sendable iff SEND_CLOSE has a transition."""
    assert (SendKind.CLOSE in SENDABLE[state]) == (T.SEND_CLOSE in TRANSITIONS[state])
