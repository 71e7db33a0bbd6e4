"""Tests for wsproto_core.errors."""

from __future__ import annotations

import pytest

from wsproto_core.connection import Connection, ConnectionType
from wsproto_core.errors import LocalProtocolError, ProtocolError, RemoteProtocolError, Violation
from wsproto_core.events import CloseConnection
from wsproto_core.extensions import Extension
from wsproto_core.frames import CloseReason


def test_hierarchy() -> None:
    assert issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(RemoteProtocolError, ProtocolError)
    assert issubclass(ProtocolError, Exception)
    assert not issubclass(LocalProtocolError, RemoteProtocolError)


def test_remote_defaults_to_protocol_error_code() -> None:
    """RFC 6455 section 7.4.1: 1002 is the generic protocol error."""
    error = RemoteProtocolError("bad frame")
    assert error.code == 1002
    assert error.event_hint is None
    assert str(error) == "bad frame"


def test_remote_event_hint_is_second_positional_as_in_wsproto() -> None:
    hint = object()
    error = RemoteProtocolError("bad handshake", hint, code=1009)
    assert error.event_hint is hint
    assert error.code == 1009


def test_code_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        RemoteProtocolError("x", None, 1007)  # type: ignore[misc]


def test_repr_shows_code() -> None:
    assert repr(RemoteProtocolError("not utf-8", code=1007)) == "RemoteProtocolError('not utf-8', code=1007)"


# A peer's violations, each as a server receives it (masked frames unless the
# case is about masking) and the kind it must be reported as.
MASK = b"\x00\x00\x00\x00"
VIOLATIONS = [
    (b"\xc2\x80" + MASK, Violation.RESERVED_BITS),
    (b"\x82\x00", Violation.UNMASKED_FROM_CLIENT),
    (b"\x83\x80" + MASK, Violation.RESERVED_OPCODE),
    (b"\x8b\x80" + MASK, Violation.RESERVED_OPCODE),
    (b"\x09\x80" + MASK, Violation.FRAGMENTED_CONTROL),
    (b"\x89\xfe\x00\x7e" + MASK + b"x" * 126, Violation.CONTROL_TOO_LONG),
    (b"\x82\xff\x80" + bytes(7) + MASK, Violation.LENGTH_TOP_BIT),
    (b"\x80\x80" + MASK, Violation.ORPHAN_CONTINUATION),
    (b"\x01\x80" + MASK + b"\x82\x80" + MASK, Violation.INTERLEAVED_MESSAGE),
    (b"\x81\x81" + MASK + b"\xff", Violation.INVALID_UTF8),
    (b"\x01\x81" + MASK + b"\xff", Violation.INVALID_UTF8),
    (b"\x88\x81" + MASK + b"\x03", Violation.CLOSE_ONE_BYTE),
    (b"\x88\x82" + MASK + b"\x03\xed", Violation.CLOSE_INVALID_CODE),
    (b"\x88\x83" + MASK + b"\x03\xe8\xff", Violation.CLOSE_REASON_UTF8),
    (b"\x82\xfe\x01\x00" + MASK + bytes(256), Violation.FRAME_TOO_BIG),
]


@pytest.mark.parametrize(("data", "kind"), VIOLATIONS)
def test_each_violation_is_reported_with_its_kind_and_code(data: bytes, kind: Violation) -> None:
    connection = Connection(ConnectionType.SERVER, max_frame_size=200)
    connection.receive_data(data)
    *_, event = connection.events()
    assert isinstance(event, CloseConnection)
    assert connection.failure is not None
    assert connection.failure.kind is kind
    assert event.code == connection.failure.code == kind.code


def test_masked_frame_from_the_server() -> None:
    connection = Connection(ConnectionType.CLIENT)
    connection.receive_data(b"\x82\x80" + MASK)
    [event] = connection.events()
    assert connection.failure is not None and connection.failure.kind is Violation.MASKED_FROM_SERVER
    assert event.code == 1002  # type: ignore[attr-defined]


def test_message_too_big_kind() -> None:
    connection = Connection(ConnectionType.SERVER, max_message_size=3)
    connection.receive_data(b"\x02\x82" + MASK + b"ab" + b"\x80\x82" + MASK + b"cd")
    *_, event = connection.events()
    assert connection.failure is not None and connection.failure.kind is Violation.MESSAGE_TOO_BIG
    assert event.code == 1009  # type: ignore[attr-defined]


class _Refuses(Extension):
    name = "x-refuses"

    def enabled(self) -> bool:
        return True

    def frame_inbound_header(self, *args: object) -> CloseReason:
        return CloseReason.POLICY_VIOLATION


def test_extension_refusal_keeps_the_extension_code() -> None:
    connection = Connection(ConnectionType.SERVER, [_Refuses()])
    connection.receive_data(b"\x82\x80" + MASK)
    [event] = connection.events()
    assert connection.failure is not None and connection.failure.kind is Violation.EXTENSION_REFUSED_FRAME
    assert event.code == 1008  # type: ignore[attr-defined]
    assert "x-refuses" in str(connection.failure)


@pytest.mark.parametrize("kind", list(Violation))
def test_violation_error_carries_kind_and_code(kind: Violation) -> None:
    error = kind.error(
        kind="data", opcode=3, name="Ping", length=1, limit=2, size=3, code_value=4, cause=None, unclaimed=""
    )
    assert error.kind is kind
    assert error.code == kind.code
    assert (
        kind.error(
            code=1008, kind="x", opcode=3, name="n", length=1, limit=2, size=3, code_value=4, cause=0, unclaimed=""
        ).code
        == 1008
    )
