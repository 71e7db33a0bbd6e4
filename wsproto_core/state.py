"""Every state of a WebSocket connection and every transition between them.

The transitions are data: :data:`TRANSITIONS` maps a state and a trigger to the
next state, :data:`SENDABLE` says which kinds of event may be sent in each
state, :data:`SENDERS` which side sends each kind, and :data:`ENDS_INPUT` after
which triggers nothing more the peer sends is parsed. :func:`next_state` is the
only function that computes a new state and :func:`may_send` the only one that
decides whether an event may be sent; ``Connection`` and ``H11Handshake`` call
them and store the result. A state/trigger pair missing from the table cannot
happen by construction.

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
    "ENDS_INPUT",
    "HANDSHAKE_SENDABLE",
    "SENDABLE",
    "SENDERS",
    "TRANSITIONS",
    "ConnectionState",
    "ConnectionType",
    "SendKind",
    "Trigger",
    "may_send",
    "next_state",
]


class ConnectionType(enum.Enum):
    """Which end of the connection we are."""

    # The tables below are dicts and sets keyed by these members, read on
    # every handshake and close: Enum's own __hash__ is a Python function
    # (hashing the name), the identity hash is C and as correct, since each
    # member is a singleton compared by identity. The same in each enum here.
    __hash__ = object.__hash__

    #: We opened the connection; our frames are masked.
    CLIENT = 1
    #: We accepted the connection; frames we receive must be masked.
    SERVER = 2


class ConnectionState(enum.Enum):
    """The state of a WebSocket connection (same values as wsproto)."""

    __hash__ = object.__hash__

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

    __hash__ = object.__hash__

    SEND_CLOSE = enum.auto()
    RECEIVE_CLOSE = enum.auto()
    REMOTE_VIOLATION = enum.auto()
    TRANSPORT_CLOSED = enum.auto()
    # Opening handshake (HTTP/1.1 upgrade or RFC 8441 extended CONNECT).
    HANDSHAKE_ACCEPTED = enum.auto()
    HANDSHAKE_REJECTED = enum.auto()
    REJECTION_FINISHED = enum.auto()


class SendKind(enum.Enum):
    """The kinds of event an application can send."""

    __hash__ = object.__hash__

    #: TextMessage, BytesMessage, Ping, Pong.
    DATA = enum.auto()
    #: CloseConnection.
    CLOSE = enum.auto()
    #: A client's Request, which opens the handshake.
    REQUEST = enum.auto()
    #: A server's AcceptConnection, the answer to a Request.
    ACCEPT = enum.auto()
    #: A server's RejectConnection (an answer to a Request, or to a request
    #: that failed validation).
    REJECT = enum.auto()
    #: The body of a rejection (RejectData).
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
#: still send is our Close (as in wsproto). During the handshake the client
#: sends its Request and the server answers it (section 4); a rejecting server
#: sends the body of its response.
SENDABLE: dict[ConnectionState, frozenset[SendKind]] = {
    _S.CONNECTING: frozenset({SendKind.REQUEST, SendKind.ACCEPT, SendKind.REJECT}),
    _S.REJECTING: frozenset({SendKind.REJECT_DATA}),
    _S.OPEN: frozenset({SendKind.DATA, SendKind.CLOSE}),
    _S.LOCAL_CLOSING: frozenset(),
    _S.REMOTE_CLOSING: frozenset({SendKind.CLOSE}),
    _S.CLOSED: frozenset(),
}


_CLIENT_ONLY = frozenset({ConnectionType.CLIENT})
_SERVER_ONLY = frozenset({ConnectionType.SERVER})
_BOTH = frozenset(ConnectionType)

#: Which side sends each kind of event. Section 4.1: the client sends the
#: opening handshake; section 4.2.2: the server answers it (accepting it, or
#: rejecting it with any HTTP response and its body).
SENDERS: dict[SendKind, frozenset[ConnectionType]] = {
    SendKind.DATA: _BOTH,
    SendKind.CLOSE: _BOTH,
    SendKind.REQUEST: _CLIENT_ONLY,
    SendKind.ACCEPT: _SERVER_ONLY,
    SendKind.REJECT: _SERVER_ONLY,
    SendKind.REJECT_DATA: _SERVER_ONLY,
}

#: The HTTP exchange inside CONNECTING: what each side may send before and
#: after the request exists (sent by a client, received by a server). One
#: Request per handshake; a server accepts only a request it received, and may
#: reject one that failed validation before it was ever described as a Request.
HANDSHAKE_SENDABLE: dict[tuple[ConnectionType, bool], frozenset[SendKind]] = {
    (ConnectionType.CLIENT, False): frozenset({SendKind.REQUEST}),
    (ConnectionType.CLIENT, True): frozenset(),
    (ConnectionType.SERVER, False): frozenset({SendKind.REJECT}),
    (ConnectionType.SERVER, True): frozenset({SendKind.ACCEPT, SendKind.REJECT}),
}

#: Input done. Section 5.5.1: after a Close "the endpoint [...] MUST NOT send
#: any further data frames", so nothing the peer sends after its Close is
#: processed; section 7.1.7: a connection failed for a violation reads nothing
#: more either. After these triggers the connection drops what it buffered and
#: ignores further bytes (the transport closing ends the input too, once the
#: bytes already received are parsed).
ENDS_INPUT: frozenset[Trigger] = frozenset({_T.RECEIVE_CLOSE, _T.REMOTE_VIOLATION})


def may_send(state: ConnectionState, role: ConnectionType, kind: SendKind, request_exists: bool = False) -> bool:
    """Whether ``role`` may send an event of ``kind`` in ``state``.

    ``request_exists`` matters only while CONNECTING (see :data:`HANDSHAKE_SENDABLE`).
    """
    if kind not in SENDABLE[state] or role not in SENDERS[kind]:
        return False
    return state is not _S.CONNECTING or kind in HANDSHAKE_SENDABLE[role, request_exists]


def next_state(state: ConnectionState, trigger: Trigger) -> ConnectionState:
    """The state that ``trigger`` leads to from ``state``.

    Raises ``KeyError`` for a pair the table does not allow; callers check what
    they may do (with :data:`SENDABLE`) before triggering, so that is a bug.
    """
    return TRANSITIONS[state][trigger]
