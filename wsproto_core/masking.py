"""XOR masking of frame payloads (RFC 6455 section 5.3).

Hot path: every payload a server receives goes through :func:`apply_mask`, so it
is written for speed. Python has no vectorised XOR on bytes, but it does have
arbitrary-precision integers whose XOR runs in C over machine words: converting
the payload and a repeated key to integers, XOR-ing them and converting back is
several times faster than any per-byte loop and linear in the payload size.
"""

from __future__ import annotations

__all__ = ["apply_mask"]

_from_bytes = int.from_bytes


def apply_mask(data: bytes | bytearray | memoryview, mask: bytes, offset: int = 0) -> bytes:
    """Return ``data`` XOR-ed with the 4-byte ``mask`` repeated.

    Masking and unmasking are the same operation. ``offset`` is the position of
    ``data[0]`` within the frame payload, so a payload that arrives in pieces can
    be unmasked piece by piece: the key is rotated by ``offset % 4``.
    """
    length = len(data)
    if not length:
        return b""
    if offset & 3:
        shift = offset & 3
        mask = mask[shift:] + mask[:shift]
    key = mask * ((length >> 2) + 1)
    if len(key) != length:
        key = key[:length]
    return (_from_bytes(data, "little") ^ _from_bytes(key, "little")).to_bytes(length, "little")
