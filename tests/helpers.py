"""Small helpers shared by the test modules.

* :func:`build_frame` writes one raw frame (RFC 6455 section 5.2) with full control
  over every header field, so tests can craft frames the library would never send.
* :func:`frame_for` builds a frame as the peer of a given connection would send it
  (masked towards a server, unmasked towards a client, section 5.1).
* :func:`pair` / :class:`Pipe` join a client and a server ``Connection`` in memory.
* :func:`feed` / :func:`reassemble` turn received bytes into comparable events.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from wsproto_core.connection import Connection, ConnectionState, ConnectionType
from wsproto_core.errors import RemoteProtocolError
from wsproto_core.events import BytesMessage, CloseConnection, Event, Message, TextMessage
from wsproto_core.masking import python_apply_mask

CLIENT = ConnectionType.CLIENT
SERVER = ConnectionType.SERVER

#: The masking key of the examples in RFC 6455 section 5.7.
RFC_MASK = b"\x37\xfa\x21\x3d"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def build_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | bool | None = None,
    length: int | None = None,
    length_size: int | None = None,
) -> bytes:
    """Build one raw WebSocket frame, valid or not.

    :param opcode: any 4-bit value, reserved ones included.
    :param rsv: the RSV bits as a 3-bit number: 4 = RSV1, 2 = RSV2, 1 = RSV3.
    :param mask: a 4-byte key (the payload is masked with it), ``True`` for
        :data:`RFC_MASK`, ``None``/``False`` for an unmasked frame.
    :param length: the payload length written in the header (default: the real
        one), so that a header can announce more than it carries.
    :param length_size: 7, 16 or 64: the length encoding to use (default: the
        minimal one). Non-minimal encodings are allowed on purpose.
    """
    assert 0 <= opcode <= 0xF
    assert 0 <= rsv <= 7
    declared = len(payload) if length is None else length
    if length_size is None:
        length_size = 7 if declared < 126 else 16 if declared < 0x10000 else 64
    key = RFC_MASK if mask is True else (mask or None)
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if key is not None else 0
    if length_size == 7:
        assert declared < 128
        header = bytes((first, mask_bit | declared))
    elif length_size == 16:
        header = bytes((first, mask_bit | 126)) + declared.to_bytes(2, "big")
    elif length_size == 64:
        header = bytes((first, mask_bit | 127)) + declared.to_bytes(8, "big")
    else:  # pragma: no cover - misuse of the helper
        raise ValueError(length_size)
    if key is not None:
        assert len(key) == 4
        return header + key + python_apply_mask(payload, key)
    return header + payload


def frame_for(conn: Connection, opcode: int, payload: bytes = b"", **options: Any) -> bytes:
    """A frame as ``conn``'s peer sends it: masked towards a server, not towards a client."""
    options.setdefault("mask", None if conn.client else RFC_MASK)
    return build_frame(opcode, payload, **options)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


def parse_frame(data: bytes) -> tuple[int, int, bool, bytes | None, bytes, bytes]:
    """Split one serialised frame into (first byte, length field, masked, key, payload, rest).

    ``payload`` is unmasked. ``rest`` is whatever follows the frame.
    """
    first, second = data[0], data[1]
    length = second & 0x7F
    position = 2
    if length == 126:
        length = int.from_bytes(data[2:4], "big")
        position = 4
    elif length == 127:
        length = int.from_bytes(data[2:10], "big")
        position = 10
    key = None
    if second & 0x80:
        key = data[position : position + 4]
        position += 4
    payload = data[position : position + length]
    assert len(payload) == length, "truncated frame"
    if key is not None:
        payload = python_apply_mask(payload, key)
    return first, second & 0x7F, key is not None, key, payload, data[position + length :]


def pair(**options: Any) -> tuple[Connection, Connection]:
    """A fresh (client, server) pair of post-handshake connections."""
    return Connection(CLIENT, **options), Connection(SERVER, **options)


def feed(conn: Connection, data: bytes, chunk_size: int | None = None) -> list[Event]:
    """Feed ``data`` (whole or in ``chunk_size`` pieces), collecting events after each piece."""
    if chunk_size is None:
        conn.receive_data(data)
        return list(conn.events())
    received: list[Event] = []
    for start in range(0, len(data), chunk_size):
        conn.receive_data(data[start : start + chunk_size])
        received.extend(conn.events())
    return received


def feed_pieces(conn: Connection, pieces: Iterable[bytes]) -> list[Event]:
    received: list[Event] = []
    for piece in pieces:
        conn.receive_data(piece)
        received.extend(conn.events())
    return received


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """Cut ``data`` at the given positions (clamped, sorted, deduplicated)."""
    points = sorted({min(max(cut, 0), len(data)) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def reassemble(events: Iterable[Event]) -> list[Event]:
    """Join the pieces of each data message into one whole message event.

    Control events are kept in place. A message is placed where its last piece
    arrived. A trailing unfinished message is returned with ``message_finished``
    False so that comparisons notice it.
    """
    result: list[Event] = []
    pieces: list[Any] = []
    kind: type[Message[Any]] | None = None
    for event in events:
        if isinstance(event, Message):
            if kind is None:
                kind = type(event)
            assert type(event) is kind, f"{type(event).__name__} inside a {kind.__name__} message"
            pieces.append(event.data)
            if event.message_finished:
                assert event.frame_finished, "a message can only finish with its frame"
                result.append(_whole(kind, pieces, True))
                pieces, kind = [], None
        else:
            result.append(event)
    if kind is not None:
        result.append(_whole(kind, pieces, False))
    return result


def _whole(kind: type[Message[Any]], pieces: Sequence[Any], finished: bool) -> Message[Any]:
    if kind is TextMessage:
        return TextMessage("".join(pieces), finished, finished)
    return BytesMessage(b"".join(bytes(piece) for piece in pieces), finished, finished)


def assert_failed(conn: Connection, received: Sequence[Event], code: int, *, was_closing: bool = False) -> None:
    """Check that ``conn`` failed the connection with ``code`` (RFC 6455 section 7.1.7).

    The failure surfaces as a final ``CloseConnection`` event, never as an
    exception; ``conn.failure`` carries the same code; the state moves to
    REMOTE_CLOSING (or CLOSED when our Close had already been sent).
    """
    assert received, "no event at all"
    last = received[-1]
    assert isinstance(last, CloseConnection), f"expected a CloseConnection, got {received!r}"
    assert last.code == code, f"expected close code {code}, got {last!r}"
    assert not any(isinstance(event, CloseConnection) for event in received[:-1])
    assert isinstance(conn.failure, RemoteProtocolError)
    assert conn.failure.code == code
    expected = ConnectionState.CLOSED if was_closing else ConnectionState.REMOTE_CLOSING
    assert conn.state is expected


class Pipe:
    """A client and a server joined in memory, with explicit delivery."""

    def __init__(self, **options: Any) -> None:
        self.client, self.server = pair(**options)

    def peer(self, conn: Connection) -> Connection:
        return self.server if conn is self.client else self.client

    def send(self, sender: Connection, event: Event, chunk_size: int | None = None) -> list[Event]:
        """Send ``event`` from ``sender`` and return what the peer makes of the bytes."""
        return feed(self.peer(sender), sender.send(event), chunk_size)
