"""XOR masking of frame payloads (RFC 6455 section 5.3).

Hot path: every payload a server receives and every payload a client sends goes
through :func:`apply_mask`. When the optional C extension
``wsproto_core._speedups`` was built, it does the work eight bytes at a time.
Otherwise the pure-Python routine below is used; set the environment variable
``WSPROTO_CORE_PURE_PYTHON=1`` to force it (the tests run both ways).

Python has no vectorised XOR on bytes, so the pure-Python routine picks one of
two C-speed tricks by size. Up to a few KiB: read the payload as one big
integer and XOR it with the key repeated (built by multiplying the 32-bit key
by a cached 0x00000001 "repunit", cheaper than repeating the bytes). Above:
split the payload into its four byte lanes with stride-4 slices, translate each
lane through the 256-byte XOR table of its key byte, and write the lanes back;
every step is a C loop and no step converts between bytes and digits.
"""

from __future__ import annotations

import os

__all__ = [
    "SPEEDUPS",
    "apply_mask",
    "masked_frame",
    "python_apply_mask",
    "python_masked_frame",
    "python_unmask_utf8",
    "unmask_utf8",
]

_from_bytes = int.from_bytes
_XOR_TABLES = [bytes(value ^ key for value in range(256)) for key in range(256)]
_REPUNITS: dict[int, int] = {}
# Below this size the integer trick wins; above it the lane translation does.
_LANE_THRESHOLD = 2048


def python_apply_mask(data: bytes | bytearray | memoryview, mask: bytes | bytearray, offset: int = 0) -> bytes:
    """Return ``data`` XOR-ed with the 4-byte ``mask`` repeated (pure Python).

    Masking and unmasking are the same operation. ``offset`` is the position of
    ``data[0]`` within the frame payload, so a payload that arrives in pieces can
    be unmasked piece by piece: the key is rotated by ``offset % 4``.
    """
    length = len(data)
    if not length:
        return b""
    shift = offset & 3
    if shift:
        mask = mask[shift:] + mask[:shift]
    if length <= _LANE_THRESHOLD:
        words = (length + 3) >> 2
        repunit = _REPUNITS.get(words)
        if repunit is None:
            repunit = _REPUNITS[words] = _from_bytes(b"\x01\x00\x00\x00" * words, "little")
        masked = _from_bytes(data, "little") ^ (_from_bytes(mask, "little") * repunit)
        if length & 3:
            return masked.to_bytes(words * 4, "little")[:length]
        return masked.to_bytes(length, "little")
    lanes = bytearray(data)
    tables = _XOR_TABLES
    lanes[0::4] = lanes[0::4].translate(tables[mask[0]])
    lanes[1::4] = lanes[1::4].translate(tables[mask[1]])
    lanes[2::4] = lanes[2::4].translate(tables[mask[2]])
    lanes[3::4] = lanes[3::4].translate(tables[mask[3]])
    return bytes(lanes)


def python_masked_frame(prefix: bytes, data: bytes | bytearray | memoryview, mask: bytes | bytearray) -> bytes:
    """Return ``prefix`` followed by ``data`` masked with ``mask`` (a client frame)."""
    return prefix + python_apply_mask(data, mask)


def python_unmask_utf8(data: bytes | bytearray | memoryview, start: int, end: int, mask: bytes | bytearray) -> str:
    """Return ``data[start:end]`` unmasked with ``mask`` and decoded as UTF-8 (strict).

    A whole masked text payload in one call: the compiled version skips the
    intermediate bytes objects. Raises ``UnicodeDecodeError`` as ``bytes.decode``.
    """
    if start < 0 or end < start or end > len(data):
        raise ValueError("start and end must delimit a part of data")
    return python_apply_mask(data[start:end], mask).decode("utf-8")


apply_mask = python_apply_mask
masked_frame = python_masked_frame
unmask_utf8 = python_unmask_utf8
SPEEDUPS = False
if not os.environ.get("WSPROTO_CORE_PURE_PYTHON"):
    try:
        from ._speedups import apply_mask, masked_frame, unmask_utf8
    except ImportError:
        pass
    else:
        SPEEDUPS = True
