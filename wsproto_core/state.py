"""Every state of a WebSocket connection and every transition between them.

The transitions are data: :data:`TRANSITIONS` maps a state and a trigger to the
next state, and :data:`SENDABLE` says which kinds of event the application may
send in each state. :func:`next_state` is the only function that computes a new
state; the connection classes call it and store the result. A state/trigger pair
missing from the table cannot happen by construction, which the tests check by
walking the table.

The closing handshake (RFC 6455 section 7) reads off the table::

    OPEN --send Close--> LOCAL_CLOSING --receive Close--> CLOSED
    OPEN --receive Close--> REMOTE_CLOSING --send Close--> CLOSED

A protocol violation by the peer (section 7.1.7, "Fail the WebSocket
Connection") is treated like a received Close: the application is handed a
``CloseConnection`` carrying the failure code, and the only thing left to send
is the Close frame that answers it (``event.response()``, as wsproto
applications already do for a received Close). If we had already sent our
Close, there is nothing left to send and the connection is CLOSED at once. The
transport closing (``receive_data(None)``) ends the connection in any state.
"""

from __future__ import annotations

import enum

__all__ = [
    "SENDABLE",
    "TRANSITIONS",
    "ConnectionState",
    "ConnectionType",
    "SendKind",
    "Trigger",
    "next_state",
]


class ConnectionType(enum.Enum):
    """Which end of the connection we are."""

    #: We opened the connection; our frames are masked.
    CLIENT = 1
    #: We accepted the connection; frames we receive must be masked.
    SERVER = 2


class ConnectionState(enum.Enum):
    """The state of a WebSocket connection (same values as wsproto)."""

    #: The opening handshake is in progress.
    CONNECTING = 0
    #: The handshake completed; data flows both ways.
    OPEN = 1
    #: The peer sent a Close (or broke the protocol); we owe a Close in reply.
    REMOTE_CLOSING = 2
    #: We sent a Close and wait for the peer's.
    LOCAL_CLOSING = 3
    #: Both Close frames were exchanged, or the transport closed.
    CLOSED = 4
    #: The server is sending an HTTP response that rejects the handshake.
    REJECTING = 5


class Trigger(enum.Enum):
    """What can move a connection from one state to another."""

    SEND_CLOSE = enum.auto()
    RECEIVE_CLOSE = enum.auto()
    REMOTE_VIOLATION = enum.auto()
    TRANSPORT_CLOSED = enum.auto()
    # Opening handshake (HTTP/1.1 upgrade or RFC 8441 extended CONNECT).
    HANDSHAKE_ACCEPTED = enum.auto()
    HANDSHAKE_REJECTED = enum.auto()
    REJECTION_FINISHED = enum.auto()


class SendKind(enum.Enum):
    """The kinds of event an application can send after the handshake."""

    DATA = enum.auto()  # TextMessage, BytesMessage, Ping, Pong
    CLOSE = enum.auto()
    REJECT_DATA = enum.auto()


_S = ConnectionState
_T = Trigger

TRANSITIONS: dict[ConnectionState, dict[Trigger, ConnectionState]] = {
    _S.CONNECTING: {
        _T.HANDSHAKE_ACCEPTED: _S.OPEN,
        _T.HANDSHAKE_REJECTED: _S.REJECTING,
        # A rejection received by a client, with its body delivered in full.
        _T.REJECTION_FINISHED: _S.CLOSED,
        _T.REMOTE_VIOLATION: _S.CLOSED,
        _T.TRANSPORT_CLOSED: _S.CLOSED,
    },
    _S.REJECTING: {
        _T.REJECTION_FINISHED: _S.CLOSED,
        _T.TRANSPORT_CLOSED: _S.CLOSED,
    },
    _S.OPEN: {
        _T.SEND_CLOSE: _S.LOCAL_CLOSING,
        _T.RECEIVE_CLOSE: _S.REMOTE_CLOSING,
        _T.REMOTE_VIOLATION: _S.REMOTE_CLOSING,
        _T.TRANSPORT_CLOSED: _S.CLOSED,
    },
    _S.LOCAL_CLOSING: {
        _T.RECEIVE_CLOSE: _S.CLOSED,
        _T.REMOTE_VIOLATION: _S.CLOSED,
        _T.TRANSPORT_CLOSED: _S.CLOSED,
    },
    _S.REMOTE_CLOSING: {
        _T.SEND_CLOSE: _S.CLOSED,
        _T.TRANSPORT_CLOSED: _S.CLOSED,
    },
    _S.CLOSED: {
        # Frames already buffered when the transport closed are still delivered;
        # a Close among them changes nothing.
        _T.RECEIVE_CLOSE: _S.CLOSED,
        _T.REMOTE_VIOLATION: _S.CLOSED,
        _T.TRANSPORT_CLOSED: _S.CLOSED,
    },
}

#: RFC 6455 section 5.5.1: "After sending a Close frame, the endpoint MUST NOT
#: send any further data frames"; and after receiving one, the only thing we
#: still send is our Close (as in wsproto).
SENDABLE: dict[ConnectionState, frozenset[SendKind]] = {
    _S.CONNECTING: frozenset(),
    _S.REJECTING: frozenset({SendKind.REJECT_DATA}),
    _S.OPEN: frozenset({SendKind.DATA, SendKind.CLOSE}),
    _S.LOCAL_CLOSING: frozenset(),
    _S.REMOTE_CLOSING: frozenset({SendKind.CLOSE}),
    _S.CLOSED: frozenset(),
}


def next_state(state: ConnectionState, trigger: Trigger) -> ConnectionState:
    """The state that ``trigger`` leads to from ``state``.

    Raises ``KeyError`` for a pair the table does not allow; callers check what
    they may do (with :data:`SENDABLE`) before triggering, so that is a bug.
    """
    return TRANSITIONS[state][trigger]
