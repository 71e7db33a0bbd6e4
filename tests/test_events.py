"""Tests for wsproto_core.events: frozen, slotted, validating, wsproto-compatible."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import pytest

from wsproto_core import events
from wsproto_core.errors import LocalProtocolError
from wsproto_core.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

# One valid instance of every event class.
SAMPLES: list[Event] = [
    Request(host="example.com", target="/chat"),
    AcceptConnection(),
    RejectConnection(),
    RejectData(data=b"nope"),
    CloseConnection(code=1000),
    Message(data=b"x"),
    TextMessage(data="x"),
    BytesMessage(data=b"x"),
    Ping(),
    Pong(),
]
SAMPLE_IDS = [type(sample).__name__ for sample in SAMPLES]


@pytest.mark.parametrize("sample", SAMPLES, ids=SAMPLE_IDS)
def test_frozen(sample: Event) -> None:
    field = dataclasses.fields(sample)[0]  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(sample, field.name, getattr(sample, field.name))


@pytest.mark.parametrize("sample", SAMPLES, ids=SAMPLE_IDS)
def test_slotted(sample: Event) -> None:
    assert not hasattr(sample, "__dict__")
    with pytest.raises((AttributeError, TypeError)):
        sample.unknown_attribute = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("sample", SAMPLES, ids=SAMPLE_IDS)
def test_is_event(sample: Event) -> None:
    assert isinstance(sample, Event)


@pytest.mark.parametrize(
    ("factory", "kwargs"),
    [
        (Request, {"host": b"example.com", "target": "/"}),
        (Request, {"host": "example.com", "target": None}),
        (AcceptConnection, {"subprotocol": b"chat"}),
        (RejectData, {"data": "text"}),
        (CloseConnection, {"code": "1000"}),
        (CloseConnection, {"code": None}),
        (CloseConnection, {"code": 1000, "reason": b"bytes"}),
        (TextMessage, {"data": b"bytes"}),
        (TextMessage, {"data": None}),
        (BytesMessage, {"data": "text"}),
        (BytesMessage, {"data": 12}),
        (Ping, {"payload": "text"}),
        (Pong, {"payload": None}),
    ],
)
def test_type_validation(factory: Any, kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        factory(**kwargs)


@pytest.mark.parametrize("status_code", [0, 99, 1000, "200", None])
def test_reject_connection_needs_status_code(status_code: Any) -> None:
    with pytest.raises(LocalProtocolError):
        RejectConnection(status_code=status_code)


@pytest.mark.parametrize("cls", [Ping, Pong])
def test_control_payload_limit(cls: type[Ping] | type[Pong]) -> None:
    """RFC 6455 section 5.5: control frame payloads are at most 125 bytes; checked at construction."""
    assert cls(b"x" * 125).payload == b"x" * 125
    with pytest.raises(LocalProtocolError):
        cls(b"x" * 126)


@pytest.mark.parametrize("data", [bytearray(b"ab"), memoryview(b"ab")])
def test_bytes_like_accepted(data: bytearray | memoryview) -> None:
    assert bytes(BytesMessage(data).data) == b"ab"
    assert bytes(Ping(data).payload) == b"ab"


def test_str_subclass_accepted() -> None:
    class Text(str):
        pass

    assert TextMessage(Text("hi")).data == "hi"


def test_defaults() -> None:
    """The defaults of wsproto 1.3."""
    request = Request(host="h", target="/")
    assert (request.extensions, request.extra_headers, request.subprotocols) == ([], [], [])
    accept = AcceptConnection()
    assert (accept.subprotocol, accept.extensions, accept.extra_headers) == (None, [], [])
    reject = RejectConnection()
    assert (reject.status_code, reject.headers, reject.has_body) == (400, [], False)
    assert RejectData(b"").body_finished is True
    assert CloseConnection(1000).reason is None
    for message in (Message(b""), TextMessage(""), BytesMessage(b"")):
        assert message.frame_finished is True
        assert message.message_finished is True
    assert Ping().payload == b""
    assert Pong().payload == b""


def test_mutable_defaults_not_shared() -> None:
    assert Request(host="a", target="/").extra_headers is not Request(host="b", target="/").extra_headers


def test_positional_message_arguments() -> None:
    message = TextMessage("a", False, True)
    assert (message.data, message.frame_finished, message.message_finished) == ("a", False, True)
    message2 = BytesMessage(b"a", True, False)
    assert (message2.data, message2.frame_finished, message2.message_finished) == (b"a", True, False)


def test_close_response() -> None:
    """Section 5.5.1: the endpoint typically echoes the status code it received."""
    close = CloseConnection(code=1001, reason="going")
    response = close.response()
    assert response == CloseConnection(code=1001, reason="going")
    assert response is not close
    assert CloseConnection(1005).response() == CloseConnection(1005, None)


def test_ping_response() -> None:
    """Section 5.5.3: a Pong has the same application data as the Ping it answers."""
    assert Ping(b"abc").response() == Pong(b"abc")


def test_equality_and_hash() -> None:
    assert TextMessage("a") == TextMessage("a")
    assert TextMessage("a") != TextMessage("a", message_finished=False)
    assert TextMessage("a") != TextMessage("b")
    assert BytesMessage(b"a") == BytesMessage(b"a")
    assert BytesMessage(b"a") != Message(b"a")  # different classes
    assert Ping(b"a") != Pong(b"a")
    assert CloseConnection(1000, "x") == CloseConnection(1000, "x")
    assert CloseConnection(1000) != CloseConnection(1001)
    assert hash(TextMessage("a")) == hash(TextMessage("a"))
    assert hash(CloseConnection(1000, "x")) == hash(CloseConnection(1000, "x"))


def test_repr_mentions_fields() -> None:
    assert repr(TextMessage("hi")) == "TextMessage(data='hi', frame_finished=True, message_finished=True)"
    assert repr(CloseConnection(1000, "bye")) == "CloseConnection(code=1000, reason='bye')"


def test_message_subclasses() -> None:
    assert issubclass(TextMessage, Message)
    assert issubclass(BytesMessage, Message)


def test_all_exports_exist() -> None:
    for name in events.__all__:
        assert hasattr(events, name)


class TestWsprotoCompatibility:
    """Field names, order and defaults match wsproto 1.3 (when it is installed)."""

    NAMES: ClassVar[list[str]] = [
        "Request",
        "AcceptConnection",
        "RejectConnection",
        "RejectData",
        "CloseConnection",
        "Message",
        "TextMessage",
        "BytesMessage",
        "Ping",
        "Pong",
    ]

    @pytest.mark.parametrize("name", NAMES)
    def test_fields_match(self, name: str) -> None:
        wsproto_events = pytest.importorskip("wsproto.events")

        def describe(cls: Any) -> list[tuple[str, Any, Any]]:
            return [(field.name, field.default, field.default_factory) for field in dataclasses.fields(cls)]

        assert describe(getattr(events, name)) == describe(getattr(wsproto_events, name))
