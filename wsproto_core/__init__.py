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


class WSConnection(Connection):
    """One WebSocket connection over HTTP/1.1, from the upgrade to the close.

    :param connection_type: ``ConnectionType.CLIENT`` or ``ConnectionType.SERVER``.
    :param max_handshake_size: the largest HTTP head accepted, in bytes.
    :param max_frame_size: the largest frame payload accepted once the
        connection is open (see :class:`Connection`).
    :param max_message_size: likewise, the largest message.
    :param min_partial_size: likewise: a binary frame that arrives in small
        reads is handed out in pieces of at least this many bytes (0: every
        piece as it arrives).

    A WSConnection is the :class:`Connection` that its handshake opens. Until
    then :meth:`send`, :meth:`receive_data` and :meth:`events` speak HTTP
    through :attr:`handshake`; once the upgrade is done and its events handed
    out, the handshake is let go and the object is a Connection in all but
    name: its methods are Connection's own, so a connection costs what a bare
    ``Connection`` costs, in time and in memory.
    """

    __slots__ = ("_handshake",)

    # The handshake while it runs (and, for a client, until its
    # AcceptConnection is handed out); None once it is over.
    _handshake: H11Handshake | None

    def __init__(
        self,
        connection_type: ConnectionType,
        *,
        max_handshake_size: int = DEFAULT_MAX_HANDSHAKE_SIZE,
        max_frame_size: int | None = DEFAULT_MAX_FRAME_SIZE,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        min_partial_size: int = DEFAULT_MIN_PARTIAL_SIZE,
    ) -> None:
        # The handshake sets up the rest of Connection's slots when it opens
        # this connection; these two are read before.
        self.client = connection_type is ConnectionType.CLIENT
        self.failure = None
        self._handshake = H11Handshake(
            connection_type,
            max_handshake_size=max_handshake_size,
            max_frame_size=max_frame_size,
            max_message_size=max_message_size,
            min_partial_size=min_partial_size,
            opens=self,
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
        websocket._check_upgrade()
        return websocket

    @property
    def handshake(self) -> H11Handshake:
        """The opening handshake.

        Once it is over this is a finished one (state OPEN, received bytes go
        to this connection), made when asked: the WSConnection no longer holds
        its own, which would keep HTTP leftovers and a reference cycle.
        """
        handshake = self._handshake
        return handshake if handshake is not None else H11Handshake.finished(self)

    @property
    def connection(self) -> Connection | None:
        """The post-handshake :class:`Connection` once the upgrade completed (this object), else ``None``."""
        handshake = self._handshake
        return self if handshake is None else handshake.connection

    @property
    def _opened(self) -> bool:
        # Whether the handshake set up this object's Connection state: from
        # then on the methods below are Connection's, even while a client's
        # AcceptConnection still waits to be handed out.
        handshake = self._handshake
        return handshake is None or handshake.connection is not None

    @property
    def state(self) -> ConnectionState:
        """The :class:`ConnectionState` of the handshake, then of the connection."""
        if self._opened:
            return super().state
        return self.handshake.state

    @property
    def buffered_bytes(self) -> int:
        """How many received bytes wait to be parsed by the connection (0 during the handshake)."""
        return super().buffered_bytes if self._opened else 0

    def payload_buffer(self) -> memoryview | None:
        """Once open, as :meth:`Connection.payload_buffer`; ``None`` during the handshake."""
        return super().payload_buffer() if self._opened else None

    def payload_received(self, nbytes: int) -> None:
        """Once open, as :meth:`Connection.payload_received` (which says when to call it)."""
        if not self._opened:
            raise LocalProtocolError(
                "payload_received() was called during the handshake, where payload_buffer() returns None: "
                "feed what was read with receive_data()."
            )
        super().payload_received(nbytes)

    def initiate_upgrade_connection(self, headers: Sequence[tuple[bytes, bytes]], path: bytes | str) -> None:
        """Server: start from a request that another HTTP server already parsed."""
        self.handshake.initiate_upgrade_connection(headers, path)

    def send(self, event: Event) -> bytes:
        """Return the bytes that send ``event``: a handshake event, then as :meth:`Connection.send`."""
        if self._opened:
            return super().send(event)
        data = self.handshake.send(event)
        self._check_upgrade()
        return data

    def send_prepared(self, message: PreparedMessage) -> bytes:
        """Return the bytes that send a prepared message (see :meth:`Connection.send_prepared`)."""
        if not self._opened:
            raise LocalProtocolError(
                f"A prepared message cannot be sent in state {self.state.name}: wait until the handshake completed."
            )
        return super().send_prepared(message)

    def receive_data(self, data: bytes | bytearray | memoryview | None) -> None:
        """Feed bytes from the peer, or ``None`` when the transport closed.

        During the handshake this may raise :class:`RemoteProtocolError`, whose
        ``event_hint`` is the rejection to send back.
        """
        if self._opened:
            super().receive_data(data)
        else:
            self.handshake.receive_data(data)
            self._check_upgrade()

    def receive_messages(self, data: bytes | bytearray | memoryview) -> list[str | bytes]:
        """Feed bytes from the peer; once open, as :meth:`Connection.receive_messages`.

        During the handshake this is :meth:`receive_data` (and returns no message).
        """
        if self._opened:
            return super().receive_messages(data)
        self.receive_data(data)
        return []

    def send_message(self, message: str | bytes | bytearray | memoryview) -> bytes:
        """Return the bytes that send one whole message (see :meth:`Connection.send_message`)."""
        if not self._opened:
            raise LocalProtocolError(
                f"A message cannot be sent in state {self.state.name}: wait until the handshake completed."
            )
        return super().send_message(message)

    def send_message_parts(self, message: str | bytes | bytearray | memoryview) -> tuple[bytes, ...]:
        """Return :meth:`send_message`'s bytes as parts to write in order (:meth:`Connection.send_message_parts`)."""
        if not self._opened:
            raise LocalProtocolError(
                f"A message cannot be sent in state {self.state.name}: wait until the handshake completed."
            )
        return super().send_message_parts(message)

    def events(self) -> Iterator[Event]:
        """Iterate over the events received: handshake events, then frames."""
        handshake = self._handshake
        if handshake is not None:
            yield from handshake.events()
            if handshake.connection is None:
                return
            self._check_upgrade()
        yield from super().events()

    def _check_upgrade(self) -> None:
        """Let the handshake go once it opened this connection and its events are handed out."""
        handshake = self._handshake
        if handshake is None or handshake.connection is None or handshake.pending_events:
            # Not open yet; or a client's AcceptConnection (or a Request never
            # read) comes first: events() calls this again once it handed
            # them out.
            return
        self._handshake = None
        if type(self) is WSConnection:
            # Hot path from now on: the class becomes one whose methods are
            # Connection's own. Both classes have the same slots, so only the
            # class changes; a subclass keeps its class and the methods above.
            self.__class__ = _UpgradedWSConnection

    def __repr__(self) -> str:
        return f"WSConnection(client={self.client}, state={self.state.name})"


class _UpgradedWSConnection(WSConnection):
    """A WSConnection whose handshake is over: Connection's methods, found on the class.

    Found on the class as on a Connection, a call costs exactly what it costs
    on a Connection (a bound method kept on the instance costs more).
    :mod:`wsproto_core.compat` replaces those it wraps here as on Connection.
    """

    __slots__ = ()

    send = Connection.send
    send_prepared = Connection.send_prepared
    receive_data = Connection.receive_data
    receive_messages = Connection.receive_messages
    payload_buffer = Connection.payload_buffer
    payload_received = Connection.payload_received
    send_message = Connection.send_message
    send_message_parts = Connection.send_message_parts
    events = Connection.events
    state = Connection.state
    buffered_bytes = Connection.buffered_bytes
