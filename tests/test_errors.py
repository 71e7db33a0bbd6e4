"""Tests for wsproto_core.errors."""

from __future__ import annotations

import pytest

from wsproto_core.errors import LocalProtocolError, ProtocolError, RemoteProtocolError


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
