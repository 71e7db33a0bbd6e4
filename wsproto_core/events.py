"""The events an application sends and receives: the whole public vocabulary.

The same classes travel in both directions: ``Connection.events()`` yields them
and ``Connection.send()`` takes them. Names, fields, defaults and meanings are
those of wsproto 1.3, so code written for wsproto works unchanged. Every event
is a frozen, slotted dataclass that checks its fields when it is constructed, so
an invalid event cannot exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import LocalProtocolError
from .frames import MAX_CONTROL_PAYLOAD

if TYPE_CHECKING:
    from .extension_interface import Extension

__all__ = [
    "AcceptConnection",
    "BytesMessage",
    "CloseConnection",
    "Event",
    "Headers",
    "Message",
    "Ping",
    "Pong",
    "RejectConnection",
    "RejectData",
    "Request",
    "TextMessage",
]

Headers = Sequence[tuple[bytes, bytes]]
"""HTTP headers as a sequence of ``(name, value)`` byte-string pairs."""

T = TypeVar("T")

_BYTES_LIKE = (bytes, bytearray, memoryview)


def _check_bytes(value: object, what: str) -> None:
    if not isinstance(value, _BYTES_LIKE):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")


def _check_control_payload(payload: object, what: str) -> None:
    _check_bytes(payload, f"{what} payload")
    if len(payload) > MAX_CONTROL_PAYLOAD:  # type: ignore[arg-type]
        raise LocalProtocolError(
            f"A {what} payload is limited to {MAX_CONTROL_PAYLOAD} bytes (RFC 6455 section 5.5), "
            f"got {len(payload)}: send a shorter payload."  # type: ignore[arg-type]
        )


class Event:
    """Base class of every event."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Request(Event):
    """The opening handshake request: sent by a client, received by a server.

    :param host: the value of the ``Host`` header.
    :param target: the request target (path and query).
    :param extensions: extensions the client offers: ``Extension`` objects when
        sending, the offered header values when received.
    :param extra_headers: further headers to send, or the other headers received.
    :param subprotocols: the subprotocols offered, in order of preference.
    """

    host: str
    target: str
    extensions: Sequence[Extension] | Sequence[str] = field(default_factory=list)
    extra_headers: Headers = field(default_factory=list)
    subprotocols: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not isinstance(self.target, str):
            raise TypeError("Request host and target must be str")


@dataclass(frozen=True, slots=True)
class AcceptConnection(Event):
    """Acceptance of the opening handshake: sent by a server, received by a client.

    :param subprotocol: the chosen subprotocol, one of those the client offered.
    :param extensions: the accepted extensions.
    :param extra_headers: further response headers.
    """

    subprotocol: str | None = None
    extensions: list[Extension] = field(default_factory=list)
    extra_headers: Headers = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.subprotocol is not None and not isinstance(self.subprotocol, str):
            raise TypeError("AcceptConnection subprotocol must be str or None")


@dataclass(frozen=True, slots=True)
class RejectConnection(Event):
    """Rejection of the opening handshake with an HTTP response.

    :param status_code: the HTTP status code.
    :param headers: the response headers.
    :param has_body: whether ``RejectData`` events with a body follow.
    """

    status_code: int = 400
    headers: Headers = field(default_factory=list)
    has_body: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.status_code, int) or not 100 <= self.status_code <= 999:
            raise LocalProtocolError(f"RejectConnection needs an HTTP status code, got {self.status_code!r}")


@dataclass(frozen=True, slots=True)
class RejectData(Event):
    """A piece of the body of a rejection response.

    :param data: the bytes of this piece.
    :param body_finished: whether this is the last piece.
    """

    data: bytes
    body_finished: bool = True

    def __post_init__(self) -> None:
        _check_bytes(self.data, "RejectData data")


@dataclass(frozen=True, slots=True)
class CloseConnection(Event):
    """A Close frame, or the end of the connection (RFC 6455 section 5.5.1).

    Received when the peer sends a Close frame, when the peer broke the protocol
    (the code then says how, and ``Connection.failure`` holds the details), and
    when the transport closed without a Close frame (code 1006). Send it to
    start or complete the closing handshake.

    :param code: the close code; 1005 means "no code" and sends an empty Close.
    :param reason: an optional human readable reason.
    """

    code: int
    reason: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.code, int):
            raise TypeError(f"CloseConnection code must be an int, not {type(self.code).__name__}")
        if self.reason is not None and not isinstance(self.reason, str):
            raise TypeError(f"CloseConnection reason must be str or None, not {type(self.reason).__name__}")

    def response(self) -> CloseConnection:
        """The Close to send back to acknowledge this one (same code and reason)."""
        return CloseConnection(code=self.code, reason=self.reason)


@dataclass(frozen=True, slots=True)
class Message(Event, Generic[T]):
    """A data message, or a piece of one.

    :param data: the payload of this piece.
    :param frame_finished: whether this piece ends a frame.
    :param message_finished: whether this piece ends the message. When sending,
        ``False`` starts or continues a fragmented message.
    """

    data: T
    frame_finished: bool = True
    message_finished: bool = True


# Hot path: the receive and send loops construct one of these per message, and a
# generated frozen-dataclass __init__ costs twice as much as writing through the
# slot descriptors directly, so these two classes set their own __init__ below.


@dataclass(frozen=True, slots=True, init=False)
class TextMessage(Message[str]):
    """A text message (or a piece of one); ``data`` is a ``str``."""

    data: str

    def __init__(self, data: str, frame_finished: bool = True, message_finished: bool = True) -> None:
        if data.__class__ is not str and not isinstance(data, str):
            raise TypeError(f"TextMessage data must be str, not {type(data).__name__}")
        _set_text_data(self, data)
        _set_frame_finished(self, frame_finished)
        _set_message_finished(self, message_finished)


@dataclass(frozen=True, slots=True, init=False)
class BytesMessage(Message[bytes]):
    """A binary message (or a piece of one); ``data`` is bytes-like."""

    data: bytes

    def __init__(self, data: bytes, frame_finished: bool = True, message_finished: bool = True) -> None:
        if data.__class__ is not bytes and not isinstance(data, _BYTES_LIKE):
            raise TypeError(f"BytesMessage data must be bytes, not {type(data).__name__}")
        _set_bytes_data(self, data)
        _set_frame_finished(self, frame_finished)
        _set_message_finished(self, message_finished)


def _slot_setter(name: str) -> Any:
    # The member descriptor that Message's __slots__ created for ``name``; its
    # __set__ bypasses the frozen __setattr__.
    return Message.__dict__[name].__set__


_set_text_data = _set_bytes_data = _slot_setter("data")
_set_frame_finished = _slot_setter("frame_finished")
_set_message_finished = _slot_setter("message_finished")


@dataclass(frozen=True, slots=True)
class Ping(Event):
    """A Ping frame (RFC 6455 section 5.5.2); at most 125 bytes of payload."""

    payload: bytes = b""

    def __post_init__(self) -> None:
        _check_control_payload(self.payload, "Ping")

    def response(self) -> Pong:
        """The Pong that answers this Ping (section 5.5.3: same payload)."""
        return Pong(payload=self.payload)


@dataclass(frozen=True, slots=True)
class Pong(Event):
    """A Pong frame (RFC 6455 section 5.5.3); at most 125 bytes of payload."""

    payload: bytes = b""

    def __post_init__(self) -> None:
        _check_control_payload(self.payload, "Pong")
