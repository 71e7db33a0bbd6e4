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
    "PayloadBuffer",
    "PythonPayloadBuffer",
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


class PythonPayloadBuffer:
    """One frame's payload of ``length`` bytes, gathered as it arrives and unmasked on the way in.

    ``mask`` is the frame's masking key (``None`` for an unmasked frame) and
    ``offset`` the position in the payload of its first byte, so that the
    key is rotated as :func:`python_apply_mask` rotates it. A receiver
    gathers a large frame in one of these instead of joining its reads and
    then unmasking the whole: each byte is copied once, or not at all when
    the reads go straight into :meth:`unfilled`. The compiled twin builds
    the final ``bytes`` in place, so that :meth:`take` does not copy it; this
    one keeps a ``bytearray`` and copies once at the end.
    """

    __slots__ = ("_data", "_filled", "_mask", "_offset", "_taken")

    def __init__(self, length: int, mask: bytes | bytearray | None, offset: int = 0) -> None:
        if length < 1 or offset < 0:
            raise ValueError("PayloadBuffer needs a length of at least 1 and an offset of at least 0")
        if mask is not None and len(mask) != 4:
            raise ValueError("mask must be 4 bytes")
        self._data = bytearray(length)
        self._filled = 0
        self._mask = None if mask is None else bytes(mask)
        self._offset = offset
        self._taken = False

    @property
    def missing(self) -> int:
        """How many bytes of the payload have not been received."""
        return len(self._data) - self._filled

    @property
    def filled(self) -> int:
        """How many bytes of the payload have been received."""
        return self._filled

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Copy (unmasking) as much of ``data`` as the payload still misses; return how much."""
        self._check()
        count = min(len(data), len(self._data) - self._filled)
        end = self._filled + count
        piece = memoryview(data)[:count]
        if self._mask is not None:
            piece = memoryview(python_apply_mask(piece, self._mask, self._offset + self._filled))
        self._data[self._filled : end] = piece
        self._filled = end
        return count

    def unfilled(self) -> memoryview:
        """A writable view of the part of the payload not yet received, to read into directly.

        Call :meth:`received` with how many bytes were read into it, once
        done with the view.
        """
        self._check()
        return memoryview(self._data)[self._filled :]

    def received(self, nbytes: int) -> None:
        """``nbytes`` were read into the start of the view :meth:`unfilled` returned: unmask them in place."""
        self._check()
        if not 0 <= nbytes <= len(self._data) - self._filled:
            raise ValueError("received() takes at most the size of the unfilled view")
        end = self._filled + nbytes
        if self._mask is not None:
            self._data[self._filled : end] = python_apply_mask(
                memoryview(self._data)[self._filled : end], self._mask, self._offset + self._filled
            )
        self._filled = end

    def take(self) -> bytes:
        """The payload, or what was received of it; the buffer cannot be used afterwards."""
        self._check()
        self._taken = True
        return bytes(memoryview(self._data)[: self._filled])

    def _check(self) -> None:
        if self._taken:
            raise ValueError("the payload was taken")


apply_mask = python_apply_mask
PayloadBuffer: type[PythonPayloadBuffer] = PythonPayloadBuffer
masked_frame = python_masked_frame
unmask_utf8 = python_unmask_utf8
SPEEDUPS = False
if not os.environ.get("WSPROTO_CORE_PURE_PYTHON"):
    try:
        from ._speedups import PayloadBuffer, apply_mask, masked_frame, unmask_utf8  # type: ignore[assignment]
    except ImportError:
        pass
    else:
        SPEEDUPS = True
