"""The exceptions wsproto_core raises: one base class, split by whose fault it is.

``LocalProtocolError`` means the caller asked for something the protocol forbids
(sending data after a close, a 126-byte ping, ...); its message says what to do
instead. ``RemoteProtocolError`` means the peer broke the protocol; it carries the
close code that RFC 6455 names for the violation and, during the opening
handshake, an ``event_hint`` (the rejection to send back).
"""

from __future__ import annotations

from typing import Any

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base class of every protocol error raised by wsproto_core."""


class LocalProtocolError(ProtocolError):
    """The local application misused the connection.

    Nothing was sent and the connection state did not change, so the caller may
    correct the call and carry on.
    """


class RemoteProtocolError(ProtocolError):
    """The peer violated the protocol.

    :param message: a human readable description of the violation.
    :param event_hint: during the opening handshake, the event to send in reply
        (usually a ``RejectConnection``); ``None`` after the handshake. Second
        and positional, as in wsproto.
    :param code: the WebSocket close code to fail the connection with (RFC 6455
        section 7.4.1): 1002 for framing errors, 1007 for invalid UTF-8, 1009
        for a frame or message over a configured limit, ...
    """

    def __init__(self, message: str, event_hint: Any = None, *, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code
        self.event_hint = event_hint

    def __repr__(self) -> str:
        return f"RemoteProtocolError({str(self)!r}, code={self.code})"
