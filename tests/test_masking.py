"""Tests for wsproto_core.masking (RFC 6455 section 5.3).

Both implementations are checked against a byte-by-byte reference: the pure
Python one always, the C one when it was built.
"""

from __future__ import annotations

import importlib
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproto_core import masking
from wsproto_core.masking import python_apply_mask

MaskFunction = Callable[..., bytes]

IMPLEMENTATIONS: list[tuple[str, MaskFunction]] = [("python", python_apply_mask)]
if masking.SPEEDUPS:
    IMPLEMENTATIONS.append(("speedups", masking.apply_mask))


def reference_mask(data: bytes, key: bytes, offset: int = 0) -> bytes:
    """Section 5.3: octet i of the result is octet i XOR octet (i MOD 4) of the key."""
    return bytes(byte ^ key[(offset + index) % 4] for index, byte in enumerate(data))


@pytest.fixture(params=IMPLEMENTATIONS, ids=[name for name, _ in IMPLEMENTATIONS])
def apply_mask(request: pytest.FixtureRequest) -> MaskFunction:
    return request.param[1]


# Lengths around the word size, and around the pure-Python threshold between
# its two strategies (integer XOR up to 2048 bytes, lane translation above).
LENGTHS = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 125, 126, 2047, 2048, 2049, 2051, 4096, 4099, 70001]


@pytest.mark.parametrize("length", LENGTHS)
def test_matches_reference(apply_mask: MaskFunction, length: int) -> None:
    rng = random.Random(length)
    data = rng.randbytes(length)
    key = rng.randbytes(4)
    assert apply_mask(data, key) == reference_mask(data, key)


@pytest.mark.parametrize("length", [1, 3, 5, 2049, 5000])
@pytest.mark.parametrize("offset", range(8))
def test_offset_rotates_key(apply_mask: MaskFunction, length: int, offset: int) -> None:
    """Unmasking a payload piece by piece needs the key rotated by the piece's position."""
    rng = random.Random(offset * 1000 + length)
    data = rng.randbytes(length)
    key = rng.randbytes(4)
    assert apply_mask(data, key, offset) == reference_mask(data, key, offset)


def test_rfc_example(apply_mask: MaskFunction) -> None:
    """Section 5.7: "Hello" masked with 37 fa 21 3d is 7f 9f 4d 51 58."""
    assert apply_mask(b"Hello", b"\x37\xfa\x21\x3d") == bytes.fromhex("7f9f4d5158")


def test_involution(apply_mask: MaskFunction) -> None:
    data = bytes(range(256)) * 20
    key = b"\xde\xad\xbe\xef"
    assert apply_mask(apply_mask(data, key), key) == data


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
@pytest.mark.parametrize("length", [10, 3000])
def test_accepts_bytes_like_and_returns_bytes(apply_mask: MaskFunction, kind: type, length: int) -> None:
    data = bytes(range(256)) * (length // 256 + 1)
    data = data[:length]
    result = apply_mask(kind(data), bytearray(b"\x01\x02\x03\x04"))
    assert type(result) is bytes
    assert result == reference_mask(data, b"\x01\x02\x03\x04")


def test_empty_returns_empty_bytes(apply_mask: MaskFunction) -> None:
    result = apply_mask(b"", b"abcd", 3)
    assert result == b""
    assert type(result) is bytes


def test_does_not_modify_input(apply_mask: MaskFunction) -> None:
    data = bytearray(b"x" * 3000)
    apply_mask(data, b"abcd")
    assert data == bytearray(b"x" * 3000)


@pytest.mark.skipif(not masking.SPEEDUPS, reason="C speedups not built")
def test_speedups_reject_bad_arguments() -> None:
    with pytest.raises(ValueError):
        masking.apply_mask(b"data", b"abc")
    with pytest.raises(TypeError):
        masking.apply_mask(b"data")


@pytest.fixture
def patched_env() -> Iterator[pytest.MonkeyPatch]:
    """A MonkeyPatch for reloading wsproto_core.masking; undone, then the module reloaded, afterwards."""
    patcher = pytest.MonkeyPatch()
    yield patcher
    patcher.undo()
    importlib.reload(masking)
    assert (len(IMPLEMENTATIONS) == 2) == masking.SPEEDUPS


def test_pure_python_switch(patched_env: pytest.MonkeyPatch) -> None:
    """WSPROTO_CORE_PURE_PYTHON=1 forces the pure-Python routine."""
    patched_env.setenv("WSPROTO_CORE_PURE_PYTHON", "1")
    module = importlib.reload(masking)
    assert module.SPEEDUPS is False
    assert module.apply_mask is module.python_apply_mask


def test_fallback_without_extension(patched_env: pytest.MonkeyPatch) -> None:
    """Without the compiled module the pure-Python routine is used, silently."""
    patched_env.delenv("WSPROTO_CORE_PURE_PYTHON", raising=False)
    patched_env.setitem(sys.modules, "wsproto_core._speedups", None)  # makes the import fail
    module = importlib.reload(masking)
    assert module.SPEEDUPS is False
    assert module.apply_mask(b"Hello", b"\x37\xfa\x21\x3d") == bytes.fromhex("7f9f4d5158")


def test_pure_python_connection_round_trip() -> None:
    """The whole connection works with the pure-Python routine (fresh interpreter)."""
    script = (
        "from wsproto_core.connection import Connection, ConnectionType\n"
        "from wsproto_core.events import BytesMessage\n"
        "import wsproto_core.masking as m\n"
        "assert not m.SPEEDUPS\n"
        "c, s = Connection(ConnectionType.CLIENT), Connection(ConnectionType.SERVER)\n"
        "data = bytes(range(256)) * 300\n"
        "s.receive_data(c.send(BytesMessage(data)))\n"
        "(event,) = s.events()\n"
        "assert event.data == data\n"
    )
    env = dict(os.environ, WSPROTO_CORE_PURE_PYTHON="1")
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=60)


MASKED_FRAME_IMPLEMENTATIONS = [("python", masking.python_masked_frame)]
if masking.SPEEDUPS:
    MASKED_FRAME_IMPLEMENTATIONS.append(("speedups", masking.masked_frame))


@pytest.mark.parametrize(
    "masked_frame",
    [fn for _, fn in MASKED_FRAME_IMPLEMENTATIONS],
    ids=[name for name, _ in MASKED_FRAME_IMPLEMENTATIONS],
)
@pytest.mark.parametrize("length", [0, 1, 5, 125, 126, 2049, 70000])
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_masked_frame(masked_frame: MaskFunction, length: int, kind: type) -> None:
    """A client frame: the header prefix, then the payload masked with the key (section 5.3)."""
    rng = random.Random(length)
    data = rng.randbytes(length)
    key = rng.randbytes(4)
    prefix = b"\x82\xfe" + rng.randbytes(2) + key
    result = masked_frame(prefix, kind(data), key)
    assert type(result) is bytes
    assert result == prefix + reference_mask(data, key)


# ======================================================================== unmask_utf8

UNMASK_UTF8: list[tuple[str, Callable[..., str]]] = [("python", masking.python_unmask_utf8)]
if masking.SPEEDUPS:
    UNMASK_UTF8.append(("speedups", masking.unmask_utf8))
UNMASK_UTF8_FUNCTIONS = [function for _, function in UNMASK_UTF8]
UNMASK_UTF8_NAMES = [name for name, _ in UNMASK_UTF8]

_utf8_payloads = st.one_of(
    st.text(max_size=300).map(lambda text: text.encode("utf-8")),
    st.binary(max_size=300),
    # Past the compiled version's 4 KiB stack buffer.
    st.text(min_size=1100, max_size=1500).map(lambda text: text.encode("utf-8")),
)


@pytest.mark.parametrize(
    "unmask_utf8", [function for _, function in UNMASK_UTF8], ids=[name for name, _ in UNMASK_UTF8]
)
@settings(max_examples=200, deadline=None)
@given(
    payload=_utf8_payloads,
    key=st.binary(min_size=4, max_size=4),
    before=st.binary(max_size=9),
    after=st.binary(max_size=9),
    kind=st.sampled_from([bytes, bytearray]),
)
def test_unmask_utf8_is_unmask_then_decode(
    unmask_utf8: Callable[..., str], *, payload: bytes, key: bytes, before: bytes, after: bytes, kind: type
) -> None:
    # The masked payload sits inside a larger buffer, as in a connection's.
    data = kind(before + reference_mask(payload, key) + after)
    try:
        expected: str | UnicodeDecodeError = payload.decode("utf-8")
    except UnicodeDecodeError as error:
        expected = error
    try:
        result: str | UnicodeDecodeError = unmask_utf8(data, len(before), len(before) + len(payload), key)
    except UnicodeDecodeError as error:
        result = error
    if isinstance(expected, UnicodeDecodeError):
        # The same error, at the same position of the payload.
        assert isinstance(result, UnicodeDecodeError)
        assert str(result) == str(expected)
    else:
        assert result == expected


@pytest.mark.parametrize(
    "unmask_utf8", [function for _, function in UNMASK_UTF8], ids=[name for name, _ in UNMASK_UTF8]
)
@pytest.mark.parametrize(("start", "end"), [(-1, 2), (3, 2), (0, 9)])
def test_unmask_utf8_refuses_bounds_outside_the_data(unmask_utf8: Callable[..., str], start: int, end: int) -> None:
    with pytest.raises(ValueError, match="delimit"):
        unmask_utf8(b"12345678", start, end, b"\x00\x00\x00\x00")
