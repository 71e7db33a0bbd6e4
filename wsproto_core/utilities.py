"""Helpers for the opening handshake: header lists, nonces and accept tokens.

Also re-exports the error classes, because wsproto applications import them
from ``wsproto.utilities``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable

from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError

__all__ = [
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "generate_accept_token",
    "generate_nonce",
    "normed_header_dict",
    "split_comma_header",
]

#: RFC 6455 section 1.3: the GUID concatenated to the key before hashing.
ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def split_comma_header(value: bytes | str) -> list[str]:
    """Split an HTTP list header (RFC 7230 section 7) into its elements.

    Commas inside a quoted string (RFC 7230 section 3.2.6) do not separate
    elements, so ``a; p="x,y", b`` is two elements, not three. Surrounding
    whitespace is stripped and empty elements (``a,,b``) are dropped, as the
    RFC asks recipients to do.
    """
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if '"' not in text:
        # Without quoted strings every comma separates (the common case).
        return [element for element in (part.strip() for part in text.split(",")) if element]
    elements: list[str] = []
    start = 0
    in_quotes = False
    escaped = False
    for index, char in enumerate(text):
        if in_quotes:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_quotes = False
        elif char == '"':
            in_quotes = True
        elif char == ",":
            element = text[start:index].strip()
            if element:
                elements.append(element)
            start = index + 1
    element = text[start:].strip()
    if element:
        elements.append(element)
    return elements


def split_header_values(values: Iterable[bytes]) -> list[str]:
    """Split every occurrence of a repeated list header and join the elements."""
    elements: list[str] = []
    for value in values:
        elements.extend(split_comma_header(value))
    return elements


def normed_header_dict(headers: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Map lower-cased header names to values, joining repeated ones with ", "."""
    result: dict[bytes, bytes] = {}
    for raw_name, value in headers:
        name = raw_name.lower()
        result[name] = result[name] + b", " + value if name in result else value
    return result


def generate_nonce() -> bytes:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes, base64-encoded (section 4.1)."""
    return base64.b64encode(os.urandom(16))


def generate_accept_token(token: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` value that answers the key ``token`` (section 4.2.2)."""
    # binascii rather than base64.b64encode: the same encoding without a
    # Python-level wrapper, on every handshake.
    return binascii.b2a_base64(hashlib.sha1(token.strip() + ACCEPT_GUID).digest(), newline=False)
