"""wsproto_core: a sans-I/O WebSocket protocol implementation (RFC 6455).

It consumes bytes, produces events, and turns events into bytes to send; it never
touches a socket, so any I/O framework can drive it. The event vocabulary is
wsproto's, so wsproto applications can switch.

:class:`WSConnection` covers a whole connection, opening handshake included;
:class:`~wsproto_core.connection.Connection` is the post-handshake engine alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

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
from .extensions import Extension
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


class WSConnection:
    """One WebSocket connection over HTTP/1.1, from the upgrade to the close.

    :param connection_type: ``ConnectionType.CLIENT`` or ``ConnectionType.SERVER``.
    :param max_handshake_size: the largest HTTP head accepted, in bytes.
    :param max_frame_size: passed to the :class:`Connection` created when the
        handshake succeeds.
    :param max_message_size: likewise.
    :param min_partial_size: likewise: a binary frame that arrives in small
        reads is handed out in pieces of at least this many bytes (0: every
        piece as it arrives).
    """

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
        return websocket

    @property
    def connection(self) -> Connection | None:
        """The post-handshake :class:`Connection`, once the upgrade completed."""
        return self.handshake.connection

    @property
    def state(self) -> ConnectionState:
        """The :class:`ConnectionState` of the handshake, then of the connection."""
        connection = self.handshake.connection
        return self.handshake.state if connection is None else connection.state

    def initiate_upgrade_connection(self, headers: Sequence[tuple[bytes, bytes]], path: bytes | str) -> None:
        """Server: start from a request that another HTTP server already parsed."""
        self.handshake.initiate_upgrade_connection(headers, path)

    def send(self, event: Event) -> bytes:
        """Return the bytes that send ``event`` (see :meth:`Connection.send`)."""
        connection = self.handshake.connection
        if connection is None:
            return self.handshake.send(event)
        return connection.send(event)

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
        connection = self.handshake.connection
        if connection is None:
            self.handshake.receive_data(data)
        else:
            connection.receive_data(data)

    def events(self) -> Iterator[Event]:
        """Iterate over the events received: handshake events, then frames."""
        yield from self.handshake.events()
        connection = self.handshake.connection
        if connection is not None:
            yield from connection.events()

    def __repr__(self) -> str:
        return f"WSConnection(client={self.client}, state={self.state.name})"
