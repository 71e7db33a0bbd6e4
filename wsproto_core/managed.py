"""What every I/O driver needs on top of the protocol, written once, without I/O.

:class:`ManagedConnection` wraps a :class:`~wsproto_core.connection.Connection`
or a :class:`~wsproto_core.WSConnection` and adds, all opt-in:

- automatic replies: a Pong for every Ping, the Close that answers a Close (or
  that fails the connection after a protocol violation), queued for sending;
- the "close the transport now" signal of RFC 6455 section 7.1.1 (the server
  closes TCP first; a client waits for it, then gives up after a timeout);
- sans-I/O timers: keepalive pings every ``ping_interval`` seconds, failing the
  connection when the Pong is later than ``ping_timeout``, and a
  ``close_timeout`` for the peer's reply to our Close. The caller passes the
  time in (``now``) and asks when to come back (:attr:`next_deadline`); there
  is no clock and no sleep in here;
- whole messages: fragments are joined (the wrapped connection's
  ``max_message_size`` bounds them) so an application gets one ``TextMessage``
  or ``BytesMessage`` per message (``assemble_messages=False``: the pieces
  as they arrive, for a driver that streams them);
- an outgoing buffer: everything to send, replies included, accumulates in
  :meth:`data_to_send`, and :attr:`bytes_to_send` tells its size so a driver
  can apply backpressure;
- the ordering rule (``hold_after_message``): a message received before a
  Close (or before a protocol violation) can still be answered. :meth:`events`
  stops after a message that has more bytes behind it, and :attr:`held` says
  so; the driver calls :meth:`events` again once its application took that
  message and had its turn to answer it.

A driver's loop is then: feed what it reads to :meth:`receive_data`, hand the
:meth:`events` to the application, write :meth:`data_to_send`, close the
transport when :attr:`should_close_transport`, and call :meth:`handle_timers`
at :attr:`next_deadline`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Protocol

from .connection import SEPARATE_PAYLOAD_SIZE
from .errors import LocalProtocolError, RemoteProtocolError
from .events import BytesMessage, CloseConnection, Event, Message, Ping, Pong, TextMessage
from .frames import CloseReason
from .prepared import PreparedMessage
from .state import ConnectionState

__all__ = ["ManagedConnection"]

# 1006 as a plain int (events carry ints): no Close frame, the transport just ended (RFC 6455 section 7.1.5).
_ABNORMAL_CLOSURE = int(CloseReason.ABNORMAL_CLOSURE)


class _Engine(Protocol):
    """What ManagedConnection needs of the object it wraps."""

    @property
    def state(self) -> ConnectionState: ...

    def receive_data(self, data: bytes | bytearray | memoryview | None) -> None: ...

    def events(self) -> Iterator[Event]: ...

    def receive_messages(self, data: bytes | bytearray | memoryview) -> list[str | bytes]: ...

    def payload_buffer(self) -> memoryview | None: ...

    def payload_received(self, nbytes: int) -> None: ...

    def send_message(self, message: str | bytes | bytearray | memoryview) -> bytes: ...

    def send_message_parts(self, message: str | bytes | bytearray | memoryview) -> tuple[bytes, ...]: ...

    def send(self, event: Event) -> bytes: ...

    @property
    def buffered_bytes(self) -> int: ...

    @property
    def failure(self) -> RemoteProtocolError | None: ...

    def send_prepared(self, message: PreparedMessage) -> bytes: ...


class ManagedConnection:
    """A connection that replies, keeps time and assembles messages by itself.

    :param connection: a ``Connection`` or ``WSConnection`` (client or server).
    :param client: whether we are the client (decides who closes TCP first).
    :param auto_reply: answer Pings and Closes without the application.
    :param assemble_messages: yield whole messages instead of fragments.
    :param ping_interval: seconds between keepalive Pings (``None``: none).
    :param ping_timeout: seconds to wait for a keepalive Pong before failing
        the connection with 1011 (``None``: wait forever).
    :param close_timeout: seconds to wait, after our Close, for the peer's
        Close (and, as a client, for the server to close TCP).
    :param now: the current time, in the same unit and origin as later ``now``
        arguments (``time.monotonic()`` or an event loop's ``time()``).
    :param hold_after_message: apply the ordering rule: :meth:`events` stops
        after each message that has received bytes behind it (see :attr:`held`).
    """

    # One per open connection in a server: slots keep an idle one small.
    __slots__ = (
        "_acknowledged",
        "_close_deadline",
        "_next_ping_at",
        "_now",
        "_outgoing",
        "_pieces",
        "_pings",
        "assemble_messages",
        "auto_reply",
        "bytes_to_send",
        "client",
        "close_event",
        "close_timeout",
        "connection",
        "held",
        "hold_after_message",
        "latency",
        "ping_interval",
        "ping_timeout",
        "should_close_transport",
    )

    def __init__(
        self,
        connection: _Engine,
        *,
        client: bool,
        auto_reply: bool = True,
        assemble_messages: bool = True,
        ping_interval: float | None = None,
        ping_timeout: float | None = None,
        close_timeout: float | None = 10.0,
        now: float = 0.0,
        hold_after_message: bool = False,
    ) -> None:
        for name, value in (
            ("ping_interval", ping_interval),
            ("ping_timeout", ping_timeout),
            ("close_timeout", close_timeout),
        ):
            # "not value > 0" also refuses NaN, which compares false to everything.
            if value is not None and not value > 0:
                raise LocalProtocolError(f"{name} must be a positive number of seconds or None, not {value!r}")
        self.connection = connection
        self.client = client
        self.auto_reply = auto_reply
        self.assemble_messages = assemble_messages
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        # Frames to send, kept as they are and joined only when taken: a
        # single large frame then reaches the transport without being copied.
        self._outgoing: list[bytes] | None = None
        #: How many bytes :meth:`data_to_send` would return (read-only: a plain
        #: attribute, not a property, because a driver reads it after every read).
        self.bytes_to_send = 0
        #: The pieces of a fragmented message being assembled (None between messages).
        self._pieces: list[bytes | str] | None = None
        #: Whether the driver should now close the transport, after writing what
        #: is queued (read-only; a plain attribute, as :attr:`bytes_to_send`).
        self.should_close_transport = False
        self._next_ping_at = now + ping_interval if ping_interval is not None else None
        #: Pings awaiting their Pong, in the order sent: payload -> when it
        #: was sent. None while there are none.
        self._pings: dict[bytes, float] | None = None
        #: Seconds from the latest answered Ping (keepalive or the
        #: application's) to its Pong; 0.0 until one is answered.
        self.latency = 0.0
        #: Payloads of the Pings that the Pongs parsed so far acknowledged, until taken.
        self._acknowledged: list[bytes] | None = None
        self._close_deadline: float | None = None
        self._now = now
        self.hold_after_message = hold_after_message
        #: Whether :meth:`events` stopped behind a message with received bytes
        #: still to parse (read-only; a plain attribute, as :attr:`bytes_to_send`).
        #: The ordering rule (``hold_after_message``): those bytes may hold a
        #: Close or a protocol violation, after which only a Close may be sent
        #: (RFC 6455 section 5.5.1), so they wait until the application took the
        #: message and could answer it. The driver then calls :meth:`events` again.
        self.held = False
        #: The close code and reason the connection ended with, once known.
        self.close_event: CloseConnection | None = None

    @property
    def state(self) -> ConnectionState:
        """The wrapped connection's state."""
        return self.connection.state

    @property
    def buffered_bytes(self) -> int:
        """How many received bytes wait to be parsed by :meth:`events`."""
        return self.connection.buffered_bytes

    @property
    def next_deadline(self) -> float | None:
        """When :meth:`handle_timers` must next be called, or ``None`` for never."""
        if self._next_ping_at is None and self._close_deadline is None and not self._pings:
            # Hot path (a driver asks after every read): no timer at all.
            return None
        deadlines = [
            deadline
            for deadline in (self._next_ping_at, self._pong_deadline(), self._close_deadline)
            if deadline is not None
        ]
        return min(deadlines) if deadlines else None

    def data_to_send(self) -> bytes:
        """Take the bytes queued for the peer (possibly empty)."""
        outgoing = self._outgoing
        if not outgoing:
            return b""
        self._outgoing = None
        self.bytes_to_send = 0
        return outgoing[0] if len(outgoing) == 1 else b"".join(outgoing)

    def take_data_to_send(self) -> list[bytes]:
        """Take the bytes queued for the peer as parts to write in order, not joined (possibly none).

        For a transport's ``writelines`` (a scatter-gather write): a large
        payload then reaches it without being copied into one ``bytes`` with
        its header and the other frames. :meth:`data_to_send` joins them.
        """
        outgoing = self._outgoing
        if not outgoing:
            return []
        self._outgoing = None
        self.bytes_to_send = 0
        return outgoing

    def _queue(self, data: bytes) -> None:
        if data:
            if data.__class__ is not bytes:
                # Kept until taken: it must not change meanwhile.
                data = bytes(data)
            if self._outgoing is None:
                self._outgoing = [data]
            else:
                self._outgoing.append(data)
            self.bytes_to_send += len(data)

    def _clock(self, now: float | None) -> float:
        # Every method takes the time; when a caller leaves it out, the last
        # time given stands (never 0, which would put deadlines in the past).
        if now is not None:
            self._now = now
        return self._now

    def send(self, event: Event, now: float | None = None) -> None:
        """Queue ``event`` for sending (see ``Connection.send`` for what may be sent)."""
        now = self._clock(now)
        self._queue(self.connection.send(event))
        if isinstance(event, CloseConnection):
            self._after_close_sent(now)
        elif self.connection.state is ConnectionState.CLOSED:
            # A rejection (RejectConnection / RejectData) was sent in full.
            self.should_close_transport = True

    def send_message(self, message: str | bytes | bytearray | memoryview, now: float | None = None) -> None:
        """Queue one whole message, text for ``str`` (see ``Connection.send_message``).

        The same as :meth:`send` with a ``TextMessage`` or ``BytesMessage``, without the event.
        """
        if now is not None:
            self._now = now
        cls = message.__class__
        if (cls is bytes or cls is str) and len(message) >= SEPARATE_PAYLOAD_SIZE:
            # A large payload stays apart from its header: take_data_to_send() hands both over.
            for part in self.connection.send_message_parts(message):
                self._queue(part)
        else:
            data = self.connection.send_message(message)
            if data.__class__ is not bytes:
                self._queue(data)
                return
            # Hot path (once per message sent): _queue() without the call.
            outgoing = self._outgoing
            if outgoing is None:
                self._outgoing = [data]
            else:
                outgoing.append(data)
            self.bytes_to_send += len(data)

    def send_prepared(self, message: PreparedMessage, now: float | None = None) -> None:
        """Queue a prepared message (see ``Connection.send_prepared``), behind what is queued."""
        self._clock(now)
        self._queue(self.connection.send_prepared(message))

    def close(self, code: int = 1000, reason: str | None = None, now: float | None = None) -> None:
        """Start the closing handshake, if it is not already under way."""
        if self.connection.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            self.send(CloseConnection(code=code, reason=reason), now)

    def receive_data(self, data: bytes | bytearray | memoryview | None, now: float | None = None) -> None:
        """Feed bytes read from the transport, or ``None`` at end of stream.

        During an opening handshake this raises what ``WSConnection.receive_data``
        raises: a ``RemoteProtocolError`` whose ``event_hint`` a server sends back.
        """
        self._clock(now)
        self.connection.receive_data(data)
        if data is None:
            self.should_close_transport = True
            self._close_deadline = None

    def payload_buffer(self) -> memoryview | None:
        """Where the next read may go straight into, or ``None`` (see ``Connection.payload_buffer``)."""
        return self.connection.payload_buffer()

    def payload_received(self, nbytes: int, now: float | None = None) -> None:
        """``nbytes`` were read into the view :meth:`payload_buffer` returned (see ``Connection.payload_received``)."""
        self._clock(now)
        self.connection.payload_received(nbytes)

    def receive_messages(self, data: bytes | bytearray | memoryview, now: float | None = None) -> list[str | bytes]:
        """Feed bytes read from the transport; return at once the whole messages they start with.

        See ``Connection.receive_messages``. Once the messages are handled,
        iterate :meth:`events` when :attr:`buffered_bytes` is not zero, unless
        :attr:`held`: with ``hold_after_message``, the rest waits (as after a
        message from :meth:`events`) until the application took the messages.
        """
        if now is not None:
            self._now = now
        connection = self.connection
        messages = connection.receive_messages(data)
        if (
            messages
            and self.hold_after_message
            and connection.buffered_bytes
            and connection.state is ConnectionState.OPEN
        ):
            # The ordering rule, as in events().
            self.held = True
        return messages

    def events(self, now: float | None = None) -> Iterator[Event]:
        """Iterate over received events, with the automatic replies queued as they pass."""
        now = self._clock(now)
        self.held = False
        connection = self.connection
        for received in connection.events():
            event = received
            if isinstance(received, Message):
                if self.assemble_messages:
                    pieces = self._pieces
                    if not received.message_finished:
                        if pieces is None:
                            self._pieces = [received.data]
                        else:
                            pieces.append(received.data)
                        continue
                    if pieces is not None:
                        pieces.append(received.data)
                        self._pieces = None
                        if isinstance(received, TextMessage):
                            event = TextMessage("".join(pieces))  # type: ignore[arg-type]
                        else:
                            event = BytesMessage(b"".join(pieces))  # type: ignore[arg-type]
                if (
                    self.hold_after_message
                    and connection.buffered_bytes
                    and received.message_finished
                    and connection.state is ConnectionState.OPEN
                ):
                    # The ordering rule: stop here until the driver asks again.
                    self.held = True
                    yield event
                    return
                yield event
                continue
            elif isinstance(event, Ping):
                if self.auto_reply and self.connection.state is ConnectionState.OPEN:
                    self._queue(self.connection.send(event.response()))
            elif isinstance(event, Pong):
                self._pong_received(event.payload, now)
            elif isinstance(event, CloseConnection):
                self._on_close(event, now)
            elif self.connection.state is ConnectionState.CLOSED and self.close_event is None:
                # A client received a rejection, body included.
                self.should_close_transport = True
            yield event

    def _on_close(self, event: CloseConnection, now: float) -> None:
        if event.code != _ABNORMAL_CLOSURE or self.close_event is None:
            # A transport that closes after we gave up (keepalive timeout)
            # keeps the reason we recorded.
            self.close_event = event
        self._next_ping_at = self._pings = None
        if self.auto_reply and self.connection.state is ConnectionState.REMOTE_CLOSING:
            self._queue(self.connection.send(event.response()))
        if self.connection.state is ConnectionState.CLOSED:
            self._closing_handshake_done(now, event.code)

    def _after_close_sent(self, now: float) -> None:
        self._next_ping_at = self._pings = None
        if self.connection.state is ConnectionState.CLOSED:
            # We answered the peer's Close (or its violation).
            code = self.close_event.code if self.close_event is not None else 1000
            self._closing_handshake_done(now, code)
        elif self.close_timeout is not None and self._close_deadline is None:
            self._close_deadline = now + self.close_timeout

    def _closing_handshake_done(self, now: float, code: int) -> None:
        """Both Closes are exchanged: decide who closes the transport, and when.

        Section 7.1.1: "the server ... SHOULD close the underlying TCP
        connection"; the client waits for that, up to ``close_timeout`` from
        its first Close (``None``: it waits for the server). After a protocol
        violation (section 7.1.7) or a lost transport nobody waits.
        """
        if not self.client or code == _ABNORMAL_CLOSURE or self._failed():
            self.should_close_transport = True
            self._close_deadline = None
        elif self.close_timeout is not None and self._close_deadline is None:
            self._close_deadline = now + self.close_timeout

    def _failed(self) -> bool:
        return self.connection.failure is not None

    def ping(self, payload: bytes | None = None, now: float | None = None) -> bytes:
        """Send a Ping and expect its Pong within ``ping_timeout``; return its payload.

        :meth:`take_acknowledged_pings` later tells which Pings were answered.
        """
        now = self._clock(now)
        if payload is None:
            payload = os.urandom(4)
        self._queue(self.connection.send(Ping(payload)))
        if self._pings is None:
            self._pings = {}
        # A payload sent again waits for the Pong after its latest sending.
        self._pings.pop(payload, None)
        self._pings[payload] = now
        return payload

    def _pong_received(self, payload: bytes, now: float) -> None:
        """A Pong acknowledges its Ping and every earlier one; an unsolicited Pong, nothing.

        Section 5.5.3: a peer that received several Pings before it could
        answer "MAY elect to send a Pong frame for only the most recently
        processed Ping frame".
        """
        pings = self._pings
        if not pings or payload not in pings:
            return
        self.latency = now - pings[payload]
        if self._acknowledged is None:
            self._acknowledged = []
        for sent in list(pings):
            del pings[sent]
            self._acknowledged.append(sent)
            if sent == payload:
                break

    def take_acknowledged_pings(self) -> list[bytes]:
        """The payloads of the Pings acknowledged by the Pongs received since the last call, oldest first."""
        acknowledged, self._acknowledged = self._acknowledged, None
        return acknowledged or []

    def _pong_deadline(self) -> float | None:
        # Pings are kept in the order sent, so the first has the earliest deadline.
        if not self._pings or self.ping_timeout is None:
            return None
        return next(iter(self._pings.values())) + self.ping_timeout

    def handle_timers(self, now: float) -> None:
        """Do what is due at ``now``: a keepalive Ping, or give up on a late peer."""
        self._clock(now)
        pong_deadline = self._pong_deadline()
        if pong_deadline is not None and now >= pong_deadline:
            # No Pong in time: the peer or the path is dead. Fail with 1011
            # (as websockets does) and close the transport without waiting.
            self._pings = None
            self._next_ping_at = None
            if self.connection.state is ConnectionState.OPEN:
                self._queue(self.connection.send(CloseConnection(1011, "keepalive ping timeout")))
            self.close_event = CloseConnection(_ABNORMAL_CLOSURE, "keepalive ping timeout")
            self.should_close_transport = True
            self._close_deadline = None
        if self._close_deadline is not None and now >= self._close_deadline:
            self._close_deadline = None
            self.should_close_transport = True
        if self._next_ping_at is not None and now >= self._next_ping_at:
            assert self.ping_interval is not None
            state = self.connection.state
            if state is ConnectionState.OPEN or state is ConnectionState.CONNECTING:
                if state is ConnectionState.OPEN and not self._pings:
                    self.ping(now=now)
                self._next_ping_at = now + self.ping_interval
            else:
                self._next_ping_at = None
