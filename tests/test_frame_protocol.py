"""Tests for wsproto_core.frame_protocol: wsproto's frame-level API, compared with wsproto's own.

Every case runs on both implementations: the bytes sent, the frames received and
the ParseFailed raised must be the same (the real wsproto is a test dependency).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from wsproto_core import frame_protocol as fp
from wsproto_core.extensions import Extension
from wsproto_core.masking import apply_mask

_SPEC = importlib.util.find_spec("wsproto")
REAL: Any = importlib.import_module("wsproto.frame_protocol") if _SPEC is not None and _SPEC.name == "wsproto" else None
needs_real_wsproto = pytest.mark.skipif(
    REAL is None or REAL.__name__ != "wsproto.frame_protocol", reason="the real wsproto is not installed"
)


def _unmasked(data: bytes) -> bytes:
    """A client frame with its mask removed, so that two random masks compare equal."""
    length = data[1] & 0x7F
    start = 2 + {126: 2, 127: 8}.get(length, 0)
    return bytes((data[0], data[1] & 0x7F)) + data[2:start] + apply_mask(data[start + 4 :], data[start : start + 4])


SENDS = [
    ("send_data", (b"bytes",), {}),
    ("send_data", ("text \N{SNOWMAN}",), {}),
    ("send_data", ("first",), {"fin": False}),
    ("send_data", (b"x" * 126,), {}),
    ("send_data", (b"x" * 65536,), {}),
    ("ping", (), {}),
    ("ping", (b"payload",), {}),
    ("pong", (b"payload",), {}),
    ("close", (), {}),
    ("close", (1000,), {}),
    ("close", (1001, "going \N{SNOWMAN}"), {}),
    ("close", (1000, "x" * 200), {}),
    ("close", (1005,), {}),
    # Each library's own enum member for "no code" (wsproto compares it by identity).
    ("close", ("NO_STATUS_RCVD",), {}),
    ("close", (1006, "dead"), {}),
]


@needs_real_wsproto
@pytest.mark.parametrize("client", [False, True], ids=["server", "client"])
@pytest.mark.parametrize(("method", "args", "kwargs"), SENDS, ids=[f"{m}{a!r:.20}{k}" for m, a, k in SENDS])
def test_sent_frames_are_wsprotos(client: bool, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    def call(module: Any) -> bytearray:
        resolved = [module.CloseReason[arg] if arg == "NO_STATUS_RCVD" else arg for arg in args]
        result: bytearray = getattr(module.FrameProtocol(client, []), method)(*resolved, **kwargs)
        return result

    ours, theirs = call(fp), call(REAL)
    assert isinstance(ours, bytearray)
    if client:
        assert ours[1] & 0x80
        ours, theirs = _unmasked(bytes(ours)), _unmasked(bytes(theirs))
    assert ours == theirs


@pytest.mark.parametrize(
    ("first", "second"), [("text", b"bytes"), (b"bytes", "text")], ids=["text-then-bytes", "bytes-then-text"]
)
def test_mixing_text_and_bytes_in_one_message_is_a_type_error(first: str | bytes, second: str | bytes) -> None:
    proto = fp.FrameProtocol(False, [])
    assert proto.send_data(first, fin=False)[0] & 0x0F in (1, 2)
    with pytest.raises(TypeError):
        proto.send_data(second)
    # The message can still be finished with the right type: a continuation frame.
    assert proto.send_data(first)[0] == 0x80


def test_refusals() -> None:
    proto = fp.FrameProtocol(False, [])
    with pytest.raises(TypeError):
        proto.close(reason="no code")
    with pytest.raises(ValueError, match="control frame"):
        proto.ping(bytes(126))
    with pytest.raises(TypeError):
        proto.send_data(1234)  # type: ignore[arg-type]


RECEIVES = {
    "text": b"\x81\x05hello",
    "fragmented text": b"\x01\x03hel\x80\x02lo",
    "binary": b"\x82\x03abc",
    "ping": b"\x89\x02hi",
    "pong": b"\x8a\x00",
    "close": b"\x88\x05\x03\xe8bye",
    "close without code": b"\x88\x00",
    "close with unregistered code": b"\x88\x02\x0f\xa0",
    "two messages": b"\x81\x01a\x82\x01b",
    "part of a text frame": b"\x81\x05hel",
    "part of a binary frame": b"\x82\x05hel",
}
FAILURES = {
    "masked": b"\x81\x80\x00\x00\x00\x00",
    "reserved opcode": b"\x83\x00",
    "reserved bit": b"\xc1\x00",
    "fragmented ping": b"\x09\x00",
    "continuation first": b"\x80\x00",
    "interleaved": b"\x01\x01a\x82\x00",
    "invalid UTF-8": b"\x81\x02\xff\xfe",
    "one-byte close": b"\x88\x01\x03",
    "close code 999": b"\x88\x02\x03\xe7",
    "close code 1006": b"\x88\x02\x03\xee",
    "close code 2000": b"\x88\x02\x07\xd0",
    "close reason not UTF-8": b"\x88\x04\x03\xe8\xff\xfe",
    "long ping": b"\x89\x7e\x00\x7e" + bytes(126),
}


def _received(module: Any, data: bytes) -> list[tuple[Any, ...]]:
    proto = module.FrameProtocol(True, [])
    proto.receive_bytes(data)
    return [
        (int(frame.opcode), frame.payload, frame.frame_finished, frame.message_finished)
        for frame in proto.received_frames()
    ]


@needs_real_wsproto
@pytest.mark.parametrize("name", sorted(RECEIVES))
def test_received_frames_are_wsprotos(name: str) -> None:
    assert _received(fp, RECEIVES[name]) == _received(REAL, RECEIVES[name])


@needs_real_wsproto
@pytest.mark.parametrize("name", sorted(FAILURES))
def test_parse_failures_are_wsprotos(name: str) -> None:
    with pytest.raises(REAL.ParseFailed) as theirs:
        _received(REAL, FAILURES[name])
    with pytest.raises(fp.ParseFailed) as ours:
        _received(fp, FAILURES[name])
    assert (str(ours.value), int(ours.value.code)) == (str(theirs.value), int(theirs.value.code))


def test_received_frames_stop_at_need_more() -> None:
    proto = fp.FrameProtocol(True, [])
    proto.receive_bytes(b"\x81\x05hel")
    assert list(proto.received_frames()) == [fp.Frame(fp.Opcode.TEXT, "hel", False, False)]
    proto.receive_bytes(b"lo")
    assert list(proto.received_frames()) == [fp.Frame(fp.Opcode.TEXT, "lo", True, True)]


class Tagging(Extension):
    """Marks text frames with RSV3 and appends a byte to each message's last frame."""

    name = "tag"

    def enabled(self) -> bool:
        return True

    def frame_outbound(self, proto: Any, opcode: fp.Opcode, rsv: fp.RsvBits, data: bytes, fin: bool) -> Any:
        if opcode is fp.Opcode.TEXT:
            rsv = fp.RsvBits(rsv.rsv1, rsv.rsv2, True)
        return rsv, data + b"!" if fin else data


def test_outbound_hook_gets_wsprotos_arguments() -> None:
    proto = fp.FrameProtocol(False, [Tagging()])
    assert proto.send_data("ab", fin=False) == bytearray(b"\x11\x02ab")
    assert proto.send_data("cd") == bytearray(b"\x80\x03cd!")
    assert proto.ping(b"p") == bytearray(b"\x89\x02p!")


def test_xor_maskers() -> None:
    masker = fp.XorMaskerSimple(b"\x01\x02\x03\x04")
    # Consecutive pieces continue the key where the previous piece stopped.
    assert masker.process(b"\x00\x00\x00") + masker.process(b"\x00\x00") == bytearray(b"\x01\x02\x03\x04\x01")
    assert fp.XorMaskerNull().process(b"abc") == b"abc"
