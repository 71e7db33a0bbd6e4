"""wsproto_core: a sans-I/O WebSocket protocol implementation (RFC 6455).

It consumes bytes, produces events, and turns events into bytes to send; it never
touches a socket, so any I/O framework can drive it. The event vocabulary is
wsproto's, so wsproto applications can switch.

:class:`WSConnection` covers a whole connection, opening handshake included;
:class:`~wsproto_core.connection.Connection` is the post-handshake engine alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .connection import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MIN_PARTIAL_SIZE,
    Connection,
    ConnectionState,
    ConnectionType,
)
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .events import Event
from .extension_interface import Extension
from .handshake import DEFAULT_MAX_HANDSHAKE_SIZE, H11Handshake
from .prepared import PreparedMessage

__all__ = [
    "Connection",
    "ConnectionState",
    "ConnectionType",
    "LocalProtocolError",
    "PreparedMessage",
    "ProtocolError",
    "RemoteProtocolError",
    "WSConnection",
]

__version__ = "0.1.0"


class _WSConnectionSlots:
    # The storage of a WSConnection. Its slots ``send``, ``receive_data`` and
    # ``events`` are read only once the upgrade is done (by
    # _UpgradedWSConnection, which exposes them), when they hold the bound
    # methods of the Connection; during the handshake WSConnection's methods
    # of the same names shadow them.
    __slots__ = ("__weakref__", "_connection", "client", "events", "handshake", "receive_data", "send")

    client: bool
    handshake: H11Handshake
    _connection: Connection | None


# The member descriptors of those three slots (typed Any: mypy knows no slot
# that is not annotated, and annotating them would clash with the methods).
_SEND_SLOT: Any = _WSConnectionSlots.__dict__["send"]
_RECEIVE_DATA_SLOT: Any = _WSConnectionSlots.__dict__["receive_data"]
_EVENTS_SLOT: Any = _WSConnectionSlots.__dict__["events"]


class WSConnection(_WSConnectionSlots):
    """One WebSocket connection over HTTP/1.1, from the upgrade to the close.

    :param connection_type: ``ConnectionType.CLIENT`` or ``ConnectionType.SERVER``.
    :param max_handshake_size: the largest HTTP head accepted, in bytes.
    :param max_frame_size: passed to the :class:`Connection` created when the
        handshake succeeds.
    :param max_message_size: likewise.
    :param min_partial_size: likewise: a binary frame that arrives in small
        reads is handed out in pieces of at least this many bytes (0: every
        piece as it arrives).

    Once the upgrade is done and its events handed out, the handshake's HTTP
    state is released and :meth:`send`, :meth:`receive_data` and
    :meth:`events` are the :class:`Connection`'s own methods: a connection
    costs what a bare ``Connection`` costs, plus a small fixed overhead.
    """

    __slots__ = ()

    def __init__(
        self,
        connection_type: ConnectionType,
        *,
        max_handshake_size: int = DEFAULT_MAX_HANDSHAKE_SIZE,
        max_frame_size: int | None = DEFAULT_MAX_FRAME_SIZE,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        min_partial_size: int = DEFAULT_MIN_PARTIAL_SIZE,
    ) -> None:
        self.client = connection_type is ConnectionType.CLIENT
        self.handshake = H11Handshake(
            connection_type,
            max_handshake_size=max_handshake_size,
            max_frame_size=max_frame_size,
            max_message_size=max_message_size,
            min_partial_size=min_partial_size,
        )
        self._connection = None

    @classmethod
    def after_upgrade(
        cls,
        connection_type: ConnectionType,
        extensions: Sequence[Extension] = (),
        received: bytes = b"",
        *,
        max_frame_size: int | None = DEFAULT_MAX_FRAME_SIZE,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        min_partial_size: int = DEFAULT_MIN_PARTIAL_SIZE,
    ) -> WSConnection:
        """A connection whose upgrade another layer already did: it starts OPEN.

        For HTTP/2 (RFC 8441) and HTTP/3 (RFC 9220) servers and clients, which
        open the WebSocket with their own headers: instead of feeding a made-up
        HTTP/1.1 101 response to get past the handshake, create the connection
        open, with the ``extensions`` that were negotiated (see
        :mod:`wsproto_core.http2`) and any WebSocket bytes already ``received``.
        """
        websocket = cls(
            connection_type,
            max_frame_size=max_frame_size,
            max_message_size=max_message_size,
            min_partial_size=min_partial_size,
        )
        websocket.handshake.open_after_upgrade(extensions, received)
        websocket._check_upgrade()
        return websocket

    @property
    def connection(self) -> Connection | None:
        """The post-handshake :class:`Connection`, once the upgrade completed."""
        return self._connection

    @property
    def state(self) -> ConnectionState:
        """The :class:`ConnectionState` of the handshake, then of the connection."""
        connection = self._connection
        return self.handshake.state if connection is None else connection.state

    @property
    def buffered_bytes(self) -> int:
        """How many received bytes wait to be parsed by the connection (0 during the handshake)."""
        connection = self._connection
        return 0 if connection is None else connection.buffered_bytes

    @property
    def failure(self) -> RemoteProtocolError | None:
        """The peer's protocol violation that failed the connection, if any (see :class:`Connection`)."""
        connection = self._connection
        return None if connection is None else connection.failure

    def initiate_upgrade_connection(self, headers: Sequence[tuple[bytes, bytes]], path: bytes | str) -> None:
        """Server: start from a request that another HTTP server already parsed."""
        self.handshake.initiate_upgrade_connection(headers, path)

    def send(self, event: Event) -> bytes:
        """Return the bytes that send ``event`` (see :meth:`Connection.send`)."""
        connection = self._connection
        if connection is not None:
            return connection.send(event)
        data = self.handshake.send(event)
        self._check_upgrade()
        return data

    def send_prepared(self, message: PreparedMessage) -> bytes:
        """Return the bytes that send a prepared message (see :meth:`Connection.send_prepared`)."""
        connection = self.handshake.connection
        if connection is None:
            raise LocalProtocolError(
                f"A prepared message cannot be sent in state {self.state.name}: wait until the handshake completed."
            )
        return connection.send_prepared(message)

    def receive_data(self, data: bytes | bytearray | memoryview | None) -> None:
        """Feed bytes from the peer, or ``None`` when the transport closed.

        During the handshake this may raise :class:`RemoteProtocolError`, whose
        ``event_hint`` is the rejection to send back.
        """
        connection = self._connection
        if connection is None:
            self.handshake.receive_data(data)
            self._check_upgrade()
        else:
            connection.receive_data(data)

    def events(self) -> Iterator[Event]:
        """Iterate over the events received: handshake events, then frames."""
        yield from self.handshake.events()
        self._check_upgrade()
        connection = self._connection
        if connection is not None:
            yield from connection.events()

    def _check_upgrade(self) -> None:
        """Go straight to the Connection once the handshake is done and its events handed out."""
        handshake = self.handshake
        connection = handshake.connection
        if connection is None:
            return
        self._connection = connection
        if handshake.pending_events:
            # A client's AcceptConnection (or a Request never read) comes
            # first: events() switches once it has handed them out.
            return
        # Hot path from now on: the slots hold the Connection's bound methods
        # and _UpgradedWSConnection exposes them, so a call through the
        # WSConnection is the Connection's call, with no layer in between.
        _SEND_SLOT.__set__(self, connection.send)
        _RECEIVE_DATA_SLOT.__set__(self, connection.receive_data)
        _EVENTS_SLOT.__set__(self, connection.events)
        self.__class__ = _UpgradedWSConnection

    def __repr__(self) -> str:
        return f"WSConnection(client={self.client}, state={self.state.name})"


class _UpgradedWSConnection(WSConnection):
    """A WSConnection after the upgrade: its three methods are the Connection's."""

    __slots__ = ()

    # The slots' descriptors, in front of WSConnection's methods in the MRO.
    send = _SEND_SLOT
    receive_data = _RECEIVE_DATA_SLOT
    events = _EVENTS_SLOT

    @property
    def state(self) -> ConnectionState:
        """The :class:`ConnectionState` of the connection."""
        return self._connection.state  # type: ignore[union-attr]
