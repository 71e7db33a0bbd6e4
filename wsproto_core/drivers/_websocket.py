"""The part of every driver's ``WebSocket`` (asyncio, trio, threads) that is not I/O.

Its public attributes, what ``send`` and ``ping`` queue, how received events
reach the application (messages into the queue, Pongs to their waiters), and
the record of how the connection closed. Each driver adds its own reading,
writing and waiting.
"""

from __future__ import annotations

from collections.abc import MutableSequence
from typing import Any, Protocol

from ..errors import LocalProtocolError
from ..events import Message, Pong, Request, TextMessage
from ..managed import ManagedConnection
from ..state import ConnectionState
from ._common import READ_INTO_MIN, ConnectionClosed, Settings
from ._streaming import IncomingMessage, queue_full, receive_piece


class PongWaiterLike(Protocol):
    """What a driver's ``ping()`` hands out: resolved once its Pong came, or with the closing error."""

    def _resolve(self, error: ConnectionClosed | None = None) -> None: ...


class WebSocketState:
    """A driver's WebSocket without its I/O (see the module docstring).

    Attributes: ``subprotocol`` (the negotiated one or ``None``), ``request``
    (server side: the client's ``Request``, with ``target`` and headers),
    ``close_code`` and ``close_reason`` (once closed).
    """

    # One per open connection in a server: slots keep an idle one small.
    __slots__ = (
        "_incoming",
        "_managed",
        "_messages",
        "_pong_waiters",
        "_settings",
        "close_code",
        "close_reason",
        "request",
        "subprotocol",
    )

    def __init__(
        self,
        managed: ManagedConnection,
        settings: Settings,
        messages: MutableSequence[str | bytes | IncomingMessage],
        subprotocol: str | None,
        request: Request | None,
    ) -> None:
        self._managed = managed
        self._settings = settings
        #: Received messages, until the application takes them: whole ones
        #: (str or bytes), and, when ``managed`` does not assemble messages,
        #: those that arrive in pieces (see drivers/_streaming.py).
        self._messages = messages
        #: The message whose pieces are arriving, if any (the queue's last).
        self._incoming: IncomingMessage | None = None
        self.subprotocol = subprotocol
        self.request = request
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._pong_waiters: dict[bytes, PongWaiterLike] | None = None

    @property
    def closed(self) -> bool:
        """Whether the connection is closed."""
        return self.close_code is not None

    def _queue_message(self, message: str | bytes | bytearray | memoryview, now: float | None = None) -> None:
        """Queue a text (``str``) or binary message; raise :class:`ConnectionClosed` once closing.

        ``now`` may be left out: only a Close starts a timer.
        """
        # Hot path (once per message sent): the connection's own state check
        # refuses after a Close, instead of asking its state here first.
        if self.close_code is not None:
            raise self._closed_error()
        try:
            self._managed.send_message(message, now)
        except LocalProtocolError:
            # Closing: ConnectionClosed. Otherwise (a lone surrogate) the
            # connection is still usable and the error says why.
            self._raise_if_closed()
            raise

    def _queue_ping(self, payload: bytes | None, waiter: PongWaiterLike, now: float) -> None:
        """Queue a Ping; ``waiter`` is resolved when its Pong (or a later one) arrives."""
        self._raise_if_closed()
        payload = self._managed.ping(payload, now)
        if self._pong_waiters is None:
            self._pong_waiters = {}
        self._pong_waiters[payload] = waiter

    def _receive(self, data: bytes | bytearray | None, now: float) -> bool:
        """Feed a read (``b""`` or ``None``: the stream ended) and deliver what it holds; return whether a message came.

        Hot path: the whole messages that the read starts with join the queue
        without going through the parser; the parser takes the rest (unless
        the ordering rule holds it).
        """
        managed = self._managed
        if not data:
            managed.receive_data(None, now)
            return self._handle_events(now)
        messages = managed.receive_messages(data, now)
        if messages:
            self._messages += messages
            if managed.buffered_bytes and not managed.held:
                self._handle_events(now)
            return True
        return self._handle_events(now) if managed.buffered_bytes else False

    def _payload_view(self) -> memoryview | None:
        """Where the next read goes when a large frame's payload is being gathered, else ``None``.

        Reading into it (``recv_into``) and then :meth:`_received_into_payload`
        leaves the payload to the kernel's copy (and, on a server, the unmasking
        in place): no copy from a read buffer.
        """
        view = self._managed.payload_buffer()
        return view if view is not None and len(view) >= READ_INTO_MIN else None

    def _received_into_payload(self, nbytes: int, now: float) -> bool:
        """``nbytes`` were read into :meth:`_payload_view`'s view; deliver what that completed.

        Return whether a message came.
        """
        self._managed.payload_received(nbytes, now)
        return self._handle_events(now)

    def _queue_received(self, event: Message[Any]) -> None:
        """Queue a received message, or a piece of one (``recv()`` joins them; ``recv_streaming()`` takes them)."""
        if event.message_finished and self._incoming is None:
            # Hot path: a message that came whole.
            self._messages.append(event.data)
        else:
            self._incoming = receive_piece(
                self._messages,
                self._incoming,
                event.data,
                text=isinstance(event, TextMessage),
                last=event.message_finished,
            )

    def _handle_events(self, now: float) -> bool:
        """Parse what was received: messages join the queue, Pongs resolve their waiters.

        Return whether a message came.
        """
        received = False
        for event in self._managed.events(now):
            if isinstance(event, Message):
                self._queue_received(event)
                received = True
            elif isinstance(event, Pong):
                self._pong_received()
        return received

    def _pong_received(self) -> None:
        """Resolve the waiters of the Pings that the Pongs parsed so far acknowledged."""
        # Taken even without waiters: keepalive Pings are acknowledged too.
        for payload in self._managed.take_acknowledged_pings():
            waiter = self._pong_waiters.pop(payload, None) if self._pong_waiters else None
            if waiter is not None:
                waiter._resolve()

    def _queue_full(self) -> bool:
        """Whether reading must pause until the application takes a message or a piece (backpressure)."""
        return queue_full(self._messages, self._settings.max_queue)

    def _raise_if_closed(self) -> None:
        if self.close_code is not None:
            raise self._closed_error()
        if self._managed.state is not ConnectionState.OPEN:
            close = self._managed.close_event
            raise ConnectionClosed(close.code if close else 1000, close.reason if close else None)

    def _closed_error(self) -> ConnectionClosed:
        return ConnectionClosed(self.close_code or 1006, self.close_reason)

    def _record_close(self) -> list[PongWaiterLike]:
        """Record how the connection closed (1006 without a Close); return the Pong waiters left waiting."""
        close = self._managed.close_event
        self.close_code = close.code if close is not None else 1006
        self.close_reason = close.reason if close is not None else None
        waiters = list(self._pong_waiters.values()) if self._pong_waiters else []
        self._pong_waiters = None
        return waiters
