"""One message to many connections of the asyncio driver, without waiting on any of them.

:func:`broadcast` encodes the message once (a :class:`~wsproto_core.PreparedMessage`,
so every server connection without compression writes the very same bytes) and
writes it to each connection's transport at once. Nothing waits for a slow
connection: each one has a bounded outgoing buffer (``max_buffer_size``), and a
connection whose buffer would go past it does not get the message. What
happens to it then is the caller's choice (``when_full``): it just misses this
message (``"skip"``), or it is closed (``"close"``, with 1013 "try again later"
or 1008 "policy violation"), as a server that cannot afford to keep a client
that does not keep up would. The returned :class:`BroadcastResult` names every
connection that missed the message, and why: nothing is lost silently.

Compared with sending to each connection with ``await websocket.send()``:
no task per recipient and no drain to wait for; compared with websockets'
``broadcast()``: the frame is built once instead of once per connection, and
the buffer is bounded instead of growing for a client that stopped reading.
"""

from __future__ import annotations

import asyncio
import dataclasses
import weakref
from collections.abc import Iterable
from typing import Literal

from ..prepared import PreparedMessage
from ._common import ConnectionClosed
from .asyncio import WebSocket

__all__ = ["DEFAULT_MAX_BUFFER_SIZE", "BroadcastResult", "broadcast"]

#: The default bound on a connection's outgoing buffer: 256 KiB, four times
#: asyncio's default high-water mark, so that a connection that is merely
#: busy for a moment keeps up while one that stopped reading is found out.
DEFAULT_MAX_BUFFER_SIZE = 256 * 1024

#: The most a frame header adds to a payload (RFC 6455 section 5.2: 2 bytes,
#: 8 of extended length, 4 of mask).
_MAX_HEADER = 14

# Closing tasks started by broadcast(): referenced until done, so that they
# are not collected while they run.
_closing: set[asyncio.Task[None]] = set()
# For each event loop, the connections with broadcast messages queued but not
# written yet (a dict: in order, without duplicates), all written at the
# loop's next iteration: one write per connection for any number of messages.
_unwritten: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[WebSocket, None]] = weakref.WeakKeyDictionary()
# Connections being closed by broadcast(): later broadcasts count them as closed.
_evicting: weakref.WeakSet[WebSocket] = weakref.WeakSet()


@dataclasses.dataclass
class BroadcastResult:
    """What :func:`broadcast` did with one message.

    Attributes:
        ``sent``: how many connections were handed the message.
        ``skipped``: connections whose buffer was full; they did not get it
        (``when_full="skip"``).
        ``evicted``: connections whose buffer was full and that are being
        closed for it (``when_full="close"``).
        ``closed``: connections that were already closed or closing.
    """

    sent: int = 0
    skipped: list[WebSocket] = dataclasses.field(default_factory=list)
    evicted: list[WebSocket] = dataclasses.field(default_factory=list)
    closed: list[WebSocket] = dataclasses.field(default_factory=list)

    @property
    def missed(self) -> list[WebSocket]:
        """Every connection that did not get the message, for whatever reason."""
        return [*self.skipped, *self.evicted, *self.closed]


def broadcast(
    websockets: Iterable[WebSocket],
    message: str | bytes | PreparedMessage,
    *,
    max_buffer_size: int = DEFAULT_MAX_BUFFER_SIZE,
    when_full: Literal["skip", "close"] = "skip",
    close_code: int = 1013,
    close_reason: str = "too slow",
    compress_with_context: bool = True,
) -> BroadcastResult:
    """Send ``message`` to every connection in ``websockets`` now; return who got it.

    :param message: ``str`` (text), bytes (binary) or a prepared message.
    :param max_buffer_size: a connection whose outgoing bytes (not yet taken
        by the OS) would go past this many with the message does not get it.
    :param when_full: ``"skip"``: such a connection misses this message and
        stays open; ``"close"``: it is also closed with ``close_code`` (1013
        or 1008 are the usual ones) and ``close_reason``, the Close frame
        going after what its buffer holds.
    :param compress_with_context: for a str or bytes ``message``, see
        :class:`~wsproto_core.PreparedMessage`.

    It does not wait. The message is queued on each connection and written
    to the transports at the event loop's next iteration, everything
    broadcast meanwhile in one write per connection; the transports send it
    as the peers read. Connections that sent or received a Close are listed
    in ``closed``. Call it from the event loop's thread.
    """
    if when_full not in ("skip", "close"):
        raise ValueError(f'when_full must be "skip" or "close", not {when_full!r}')
    if not isinstance(max_buffer_size, int) or max_buffer_size < 0:
        raise ValueError(f"max_buffer_size must be a non-negative int, not {max_buffer_size!r}")
    if not isinstance(message, PreparedMessage):
        message = PreparedMessage(message, compress_with_context=compress_with_context)
    room = max_buffer_size - len(message.payload) - _MAX_HEADER
    result = BroadcastResult()
    unwritten = _unwritten_for(asyncio.get_running_loop())
    for websocket in websockets:
        if websocket.outgoing_buffer_size > room:
            if websocket.closed or websocket in _evicting:
                result.closed.append(websocket)
            elif when_full == "skip":
                result.skipped.append(websocket)
            else:
                result.evicted.append(websocket)
                _evict(websocket, close_code, close_reason)
            continue
        try:
            websocket.queue_prepared(message)
        except ConnectionClosed:
            result.closed.append(websocket)
        else:
            result.sent += 1
            unwritten[websocket] = None
    return result


def _unwritten_for(loop: asyncio.AbstractEventLoop) -> dict[WebSocket, None]:
    """The connections of ``loop`` with broadcast messages queued but not written yet."""
    unwritten = _unwritten.get(loop)
    if unwritten is None:
        unwritten = _unwritten[loop] = {}
        loop.call_soon(_write_all, loop)
    return unwritten


def _write_all(loop: asyncio.AbstractEventLoop) -> None:
    for websocket in _unwritten.pop(loop, {}):
        websocket.write_queued()


def _evict(websocket: WebSocket, code: int, reason: str) -> None:
    _evicting.add(websocket)
    task = asyncio.ensure_future(websocket.close(code, reason))
    _closing.add(task)

    def closed(task: asyncio.Task[None]) -> None:
        _closing.discard(task)
        _evicting.discard(websocket)
        if not task.cancelled():
            # Closing is best effort: a connection that fails meanwhile is gone anyway.
            task.exception()

    task.add_done_callback(closed)
