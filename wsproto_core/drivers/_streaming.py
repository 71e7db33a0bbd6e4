"""Receiving a message in pieces, without I/O: what every driver's ``recv_streaming`` shares.

A driver's queue of received messages holds whole messages (``str`` or
``bytes``, the common case, appended as they are) and, for a message that
arrives in several frames or reads, one :class:`IncomingMessage` that gathers
its pieces. ``recv()`` waits until such a message is complete and joins it;
``recv_streaming()`` (a :class:`PieceReader`) hands its pieces out as they
arrive. Either way the wrapped connection's ``max_message_size`` bounds the
message, and text pieces come decoded, their UTF-8 checked across piece
boundaries by the connection.

Backpressure: the driver stops reading while its queue holds ``max_queue``
entries, or while the message still arriving holds ``max_queue`` pieces that
nobody takes (see :func:`queue_full`). A message that ``recv()`` assembles is
not held to that: it is bounded by ``max_message_size``, as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import MutableSequence
from typing import Final, Protocol

from ..errors import LocalProtocolError

__all__ = [
    "END",
    "STREAM_IN_PROGRESS",
    "WAIT",
    "IncomingMessage",
    "MessageStream",
    "PieceReader",
    "message_ready",
    "piece_ready",
    "queue_full",
    "receive_piece",
    "take_message",
]

#: What :meth:`PieceReader.next_piece` returns when no piece is there yet.
WAIT: Final = object()
#: What :meth:`PieceReader.next_piece` returns once the message ended.
END: Final = object()

#: What ``recv()`` raises while ``recv_streaming()`` is half-way through a message.
STREAM_IN_PROGRESS = (
    "recv_streaming() is reading this message: iterate it to its end, or close it (aclose() or "
    "close(), or leave its loop with break) to skip the rest of the message, before calling recv()"
)


class IncomingMessage:
    """A message in a driver's queue whose pieces arrive one by one (a fragmented or a large one)."""

    __slots__ = ("assembling", "discarding", "finished", "pieces", "streaming", "text")

    def __init__(self, text: bool) -> None:
        #: Whether it is a text message (its pieces are ``str``).
        self.text = text
        #: The pieces received and not taken yet.
        self.pieces: list[str | bytes] = []
        #: Whether its last piece arrived.
        self.finished = False
        #: ``recv()`` waits for it whole: its pieces are not held to ``max_queue``.
        self.assembling = False
        #: A ``recv_streaming()`` took it.
        self.streaming = False
        #: Its stream was closed half-way: the rest of it is dropped as it arrives.
        self.discarding = False

    def add(self, piece: str | bytes, last: bool) -> None:
        """Add a received piece (``last``: it ends the message)."""
        if piece and not self.discarding:
            self.pieces.append(piece)
        if last:
            self.finished = True

    def whole(self) -> str | bytes:
        """The message, once :attr:`finished`: its pieces joined."""
        pieces = self.pieces
        if len(pieces) == 1:
            return pieces[0]
        if not pieces:
            return "" if self.text else b""
        return "".join(pieces) if self.text else b"".join(pieces)  # type: ignore[arg-type]


def receive_piece(
    messages: MutableSequence[str | bytes | IncomingMessage],
    incoming: IncomingMessage | None,
    piece: str | bytes,
    *,
    text: bool,
    last: bool,
) -> IncomingMessage | None:
    """Queue a piece of a message that does not come whole; return the message still arriving, if any.

    ``incoming`` is the message still arriving (``None``: ``piece`` starts a
    new one). A message whose stream was closed half-way leaves the queue
    with its last piece.
    """
    if incoming is None:
        incoming = IncomingMessage(text)
        messages.append(incoming)
    incoming.add(piece, last)
    if not last:
        return incoming
    if incoming.discarding:
        # Only the message at the head of the queue can be streamed.
        del messages[0]
    return None


def queue_full(messages: MutableSequence[str | bytes | IncomingMessage], max_queue: int) -> bool:
    """Whether a driver must stop reading until the application takes something (backpressure).

    While a message is arriving (the last entry): once ``max_queue`` of its
    pieces wait untaken, unless ``recv()`` assembles it (``max_message_size``
    bounds it then, and stopping would leave ``recv()`` waiting for ever).
    Otherwise: once ``max_queue`` messages wait.
    """
    if not messages:
        return False
    last = messages[-1]
    if last.__class__ is IncomingMessage and not last.finished:
        return not last.assembling and len(last.pieces) >= max_queue
    return len(messages) >= max_queue


def take_message(messages: MutableSequence[str | bytes | IncomingMessage]) -> str | bytes | None:
    """For ``recv()``: take the next whole message, or ``None`` when it must wait for the rest of it.

    The queue must not be empty. Raises ``LocalProtocolError`` while a
    ``recv_streaming()`` is half-way through the next message.
    """
    head = messages[0]
    if head.__class__ is not IncomingMessage:
        del messages[0]
        return head  # type: ignore[return-value]
    incoming: IncomingMessage = head
    if incoming.discarding:
        # The rest of a message whose stream was closed: wait until it is gone.
        return None
    if incoming.streaming:
        raise LocalProtocolError(STREAM_IN_PROGRESS)
    # From now on it is received whole, within max_message_size.
    incoming.assembling = True
    if not incoming.finished:
        return None
    del messages[0]
    return incoming.whole()


def message_ready(messages: MutableSequence[str | bytes | IncomingMessage]) -> bool:
    """Whether ``recv()`` has something to do before it waits: take a message, raise, or start assembling one."""
    if not messages:
        return False
    head = messages[0]
    if head.__class__ is not IncomingMessage:
        return True
    incoming: IncomingMessage = head
    # Not assembled yet: recv() must take it first, which lifts the piece limit.
    return not incoming.discarding and (incoming.finished or incoming.streaming or not incoming.assembling)


def piece_ready(messages: MutableSequence[str | bytes | IncomingMessage]) -> bool:
    """Whether the ``recv_streaming()`` reading the next message has something to take."""
    if not messages:
        return False
    head = messages[0]
    if head.__class__ is not IncomingMessage:
        return True
    incoming: IncomingMessage = head
    return bool(incoming.pieces or incoming.finished)


class PieceReader:
    """One ``recv_streaming()``: the pieces of the next message in the queue, as they arrive.

    A driver calls :meth:`next_piece` until it returns :data:`END`, waiting
    (for the connection to receive more, or to close) whenever it returns
    :data:`WAIT`. :meth:`abandon` ends it early: the rest of the message is
    skipped as it arrives, so that the next ``recv()`` gets the next message.
    Pieces are never empty, except the one piece of an empty message.
    """

    __slots__ = ("_done", "_message", "_messages", "_yielded")

    def __init__(self, messages: MutableSequence[str | bytes | IncomingMessage]) -> None:
        self._messages = messages
        self._message: IncomingMessage | None = None
        self._done = False
        self._yielded = False

    @property
    def started(self) -> bool:
        """Whether this reader took the message at the head of the queue."""
        return self._message is not None

    def next_piece(self) -> str | bytes | object:
        """The next piece (``str`` or ``bytes``), :data:`WAIT`, or :data:`END`.

        Raises ``LocalProtocolError`` if another ``recv_streaming()`` is
        reading the next message.
        """
        if self._done:
            return END
        messages = self._messages
        message = self._message
        if message is None:
            if not messages:
                return WAIT
            head = messages[0]
            if head.__class__ is not IncomingMessage:
                # A message that came whole: one piece.
                del messages[0]
                self._done = True
                return head
            message = head
            assert message is not None
            if message.discarding:
                # The rest of a message whose stream was closed: wait until it is gone.
                return WAIT
            if message.streaming:
                raise LocalProtocolError("Another recv_streaming() is reading this message: finish or close it first")
            message.streaming = True
            self._message = message
        pieces = message.pieces
        if pieces:
            piece = pieces.pop(0)
            self._yielded = True
            if not pieces and message.finished:
                del messages[0]
                self._done = True
            return piece
        if message.finished:
            del messages[0]
            self._done = True
            if not self._yielded:
                # An empty message still says whether it was text.
                return "" if message.text else b""
            return END
        return WAIT

    def abandon(self) -> bool:
        """Stop half-way: skip the rest of the message. Return whether the queue changed."""
        message = self._message
        if self._done or message is None:
            self._done = True
            return False
        self._done = True
        if message.finished:
            del self._messages[0]
        else:
            message.pieces.clear()
            message.discarding = True
        return True


class StreamingWebSocket(Protocol):
    """What :class:`MessageStream` needs of an async driver's WebSocket."""

    _messages: MutableSequence[str | bytes | IncomingMessage]

    def _piece_taken(self) -> None:
        """A piece (or the rest of a message) left the queue: reading may go on."""

    async def _wait_for_piece(self) -> None:
        """Wait until something is received; raise ``ConnectionClosed`` once closed."""


class MessageStream:
    """What an async driver's ``recv_streaming()`` returns: ``async for piece in`` it.

    It raises ``ConnectionClosed`` if the connection closes before the message
    ended. :meth:`aclose`, or leaving its ``async for`` early (which drops it),
    skips the rest of the message.
    """

    __slots__ = ("_reader", "_websocket")

    def __init__(self, websocket: StreamingWebSocket) -> None:
        self._websocket = websocket
        self._reader = PieceReader(websocket._messages)

    def __aiter__(self) -> MessageStream:
        return self

    async def __anext__(self) -> str | bytes:
        websocket = self._websocket
        while True:
            piece = self._reader.next_piece()
            if piece is END:
                raise StopAsyncIteration
            if piece is not WAIT:
                websocket._piece_taken()
                return piece  # type: ignore[return-value]
            await websocket._wait_for_piece()

    async def aclose(self) -> None:
        """Stop reading this message: the rest of it is skipped as it arrives."""
        self._abandon()

    def _abandon(self) -> None:
        if self._reader.abandon():
            self._websocket._piece_taken()

    def __del__(self) -> None:
        # A loop left early drops its stream here. Outside the event loop's
        # thread (or once it ended) there is nobody to wake.
        with contextlib.suppress(RuntimeError):
            self._abandon()
