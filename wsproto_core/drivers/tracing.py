"""Frame-level debug output for one connection, costing nothing when it is off.

Every driver gives each connection a logger: ``logger=`` (a ``Logger`` or a
``LoggerAdapter``, one of :class:`~wsproto_core.drivers.Settings`), by default
``wsproto_core.client`` or ``wsproto_core.server``. When that logger has
DEBUG enabled as the connection opens, the framing connection that its
:class:`~wsproto_core.managed.ManagedConnection` drives is wrapped in a
:class:`FrameLog`, which logs each event received (``<``) and sent (``>``)::

    > TEXT 'hello' [5 bytes]
    < BINARY 00 ff 10 [3 bytes, frame continues]
    < CLOSE 1000 'bye'

Otherwise the connection runs unwrapped: the level is checked once per
connection, never per frame. Raise the level before connections open to see
theirs (a connection opened while DEBUG was off stays quiet).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from ..errors import RemoteProtocolError
from ..events import BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage
from ..managed import ManagedConnection
from ..prepared import PreparedMessage
from ..state import ConnectionState

__all__ = ["FrameLog", "describe", "trace"]

#: Characters (text) or bytes (binary, shown in hex) of a payload that a line shows.
SHOWN = 32

#: What the drivers' connections log to when no ``logger`` is given.
DEFAULT_LOGGERS = {True: "wsproto_core.client", False: "wsproto_core.server"}


def _payload(data: bytes) -> str:
    shown = data[:SHOWN].hex(" ")
    return shown + (" ..." if len(data) > SHOWN else "")


def describe(event: Event) -> str:
    """One line for an event, as :class:`FrameLog` writes it."""
    if isinstance(event, TextMessage | BytesMessage):
        if isinstance(event, TextMessage):
            size = len(event.data.encode("utf-8", "surrogatepass"))
            shown = repr(event.data[:SHOWN]) + (" ..." if len(event.data) > SHOWN else "")
            kind = "TEXT"
        else:
            size = len(event.data)
            shown = _payload(event.data)
            kind = "BINARY"
        notes = [f"{size} bytes"]
        if not event.frame_finished:
            notes.append("frame continues")
        elif not event.message_finished:
            notes.append("message continues")
        return f"{kind} {shown} [{', '.join(notes)}]"
    if isinstance(event, Ping | Pong):
        return f"{type(event).__name__.upper()} {_payload(event.payload)} [{len(event.payload)} bytes]"
    if isinstance(event, CloseConnection):
        return f"CLOSE {event.code} {event.reason!r}" if event.reason else f"CLOSE {event.code}"
    return repr(event)


class FrameLog:
    """A framing connection that logs every event through it at DEBUG; the rest is delegated."""

    __slots__ = ("_engine", "_logger")

    def __init__(self, engine: Any, logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
        self._engine = engine
        self._logger = logger

    @property
    def state(self) -> ConnectionState:
        """The wrapped connection's state."""
        return self._engine.state  # type: ignore[no-any-return]

    @property
    def buffered_bytes(self) -> int:
        """Received bytes not parsed yet."""
        return self._engine.buffered_bytes  # type: ignore[no-any-return]

    @property
    def failure(self) -> RemoteProtocolError | None:
        """The peer's protocol violation, if any."""
        return self._engine.failure  # type: ignore[no-any-return]

    def receive_data(self, data: bytes | bytearray | memoryview | None) -> None:
        """Feed received bytes (``None``: the stream ended)."""
        if data is None:
            self._logger.debug("< end of stream")
        self._engine.receive_data(data)

    def receive_messages(self, data: bytes | bytearray | memoryview) -> list[str | bytes]:
        """Feed received bytes; never a message, so that their events pass :meth:`events` and are logged."""
        self._engine.receive_data(data)
        return []

    def payload_buffer(self) -> memoryview | None:
        """Where the next read may go straight into (the wrapped connection's answer)."""
        return self._engine.payload_buffer()  # type: ignore[no-any-return]

    def payload_received(self, nbytes: int) -> None:
        """``nbytes`` were read into the view :meth:`payload_buffer` returned."""
        self._engine.payload_received(nbytes)

    def events(self) -> Iterator[Event]:
        """The wrapped connection's events, each logged as it passes."""
        for event in self._engine.events():
            self._logger.debug("< %s", describe(event))
            yield event

    def send(self, event: Event) -> bytes:
        """Send an event, logging it."""
        data: bytes = self._engine.send(event)
        self._logger.debug("> %s", describe(event))
        return data

    def send_message(self, message: str | bytes | bytearray | memoryview) -> bytes:
        """Send a whole message, logging it."""
        return self.send(TextMessage(message) if isinstance(message, str) else BytesMessage(bytes(message)))

    def send_message_parts(self, message: str | bytes | bytearray | memoryview) -> tuple[bytes, ...]:
        """Send a whole message, logging it; one part."""
        return (self.send_message(message),)

    def send_prepared(self, message: PreparedMessage) -> bytes:
        """Send a prepared message, logging its size."""
        data: bytes = self._engine.send_prepared(message)
        self._logger.debug("> prepared message [%d bytes on the wire]", len(data))
        return data


def trace(
    managed: ManagedConnection, logger: logging.Logger | logging.LoggerAdapter[Any] | None, *, client: bool
) -> None:
    """Log ``managed``'s frames to ``logger`` (or the default) if it has DEBUG enabled now; else do nothing."""
    if logger is None:
        logger = logging.getLogger(DEFAULT_LOGGERS[client])
    if logger.isEnabledFor(logging.DEBUG):
        managed.connection = FrameLog(managed.connection, logger)
