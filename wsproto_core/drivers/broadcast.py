"""One message to many connections of any driver, without waiting on any of them.

:func:`broadcast` encodes the message once (a :class:`~wsproto_core.PreparedMessage`,
so every server connection without compression writes the very same bytes) and
hands it to each connection's socket at once. Nothing waits for a slow
connection: each one has a bounded outgoing buffer (``max_buffer_size``), and a
connection whose buffer would go past it does not get the message. What
happens to it then is the caller's choice (``when_full``): it just misses this
message (``"skip"``), or it is closed (``"close"``, with 1013 "try again later"
or 1008 "policy violation"), as a server that cannot afford to keep a client
that does not keep up would. The returned :class:`BroadcastResult` names every
connection that missed the message, and why: nothing is lost silently.

It takes the connections of the asyncio, trio or threads driver (all of one
driver in a call). What differs is when the bytes are written. Threads: at
once. trio: once the calling task yields, everything broadcast meanwhile in
one write per connection. asyncio: a publisher that broadcasts one message
per event loop iteration has it written at once (a second pass over the
connections at the end of the iteration would cost as much again as the
Python part of the broadcast); one that broadcasts several in an iteration
has them written at its end, in one write per connection. Which of the two
an iteration gets is guessed from the last iteration that broadcast: a
wrong guess costs one more write per connection, never the order. Bytes the
kernel does not take at once wait in the transport (asyncio), in a task
(trio) or in a thread (threads) of that connection, and count towards its
limit.

Compared with sending to each connection with ``send()``: no task per
recipient and no drain to wait for; compared with websockets'
``broadcast()``: the frame is built once instead of once per connection, and
the buffer is bounded instead of growing for a client that stopped reading.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import weakref
from collections.abc import Iterable
from typing import Any, Generic, Literal, Protocol, TypeVar

from ..managed import ManagedConnection
from ..prepared import PreparedMessage
from ..state import ConnectionState
from ._common import ConnectionClosed
from .asyncio import WebSocket as AsyncioWebSocket

__all__ = ["DEFAULT_MAX_BUFFER_SIZE", "BroadcastResult", "Broadcastable", "broadcast"]

#: The default bound on a connection's outgoing buffer: 256 KiB, four times
#: asyncio's default high-water mark, so that a connection that is merely
#: busy for a moment keeps up while one that stopped reading is found out.
DEFAULT_MAX_BUFFER_SIZE = 256 * 1024

#: The most a frame header adds to a payload (RFC 6455 section 5.2: 2 bytes,
#: 8 of extended length, 4 of mask).
_MAX_HEADER = 14


class Broadcastable(Protocol):
    """What :func:`broadcast` needs of a connection; every driver's ``WebSocket`` has it."""

    _managed: ManagedConnection

    @property
    def closed(self) -> bool: ...

    @property
    def outgoing_buffer_size(self) -> int: ...

    def queue_prepared(self, message: PreparedMessage) -> None: ...

    def write_queued(self) -> None: ...


WebSocketT = TypeVar("WebSocketT", bound=Broadcastable)

# Closing tasks started by broadcast() on asyncio: referenced until done, so
# that they are not collected while they run.
_closing: set[asyncio.Task[None]] = set()


class _LoopBatch:
    """An asyncio event loop's broadcasts in its current iteration (see the module docstring)."""

    __slots__ = ("broadcasts", "previous", "unwritten")

    def __init__(self) -> None:
        #: Broadcasts in this iteration so far, and in the last iteration that had any.
        self.broadcasts = 0
        self.previous = 1
        #: Connections with messages queued but not written yet (a dict: in
        #: order, without duplicates), written at the end of the iteration.
        self.unwritten: dict[Any, None] = {}


_batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopBatch] = weakref.WeakKeyDictionary()
# asyncio connections being closed by broadcast(): later broadcasts count them as closed.
_evicting: weakref.WeakSet[AsyncioWebSocket] = weakref.WeakSet()
# trio: the connections to write once the calling task yields, for the
# current run (a trio.lowlevel.RunVar, made on first use).
_trio_unwritten: Any = None


class _WriteNow(dict[Any, None]):
    """The connections that a thread's broadcast (threads driver) writes before it returns."""

    __slots__ = ()


@dataclasses.dataclass
class BroadcastResult(Generic[WebSocketT]):
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
    skipped: list[WebSocketT] = dataclasses.field(default_factory=list)
    evicted: list[WebSocketT] = dataclasses.field(default_factory=list)
    closed: list[WebSocketT] = dataclasses.field(default_factory=list)

    @property
    def missed(self) -> list[WebSocketT]:
        """Every connection that did not get the message, for whatever reason."""
        return [*self.skipped, *self.evicted, *self.closed]


def broadcast(
    websockets: Iterable[WebSocketT],
    message: str | bytes | PreparedMessage,
    *,
    max_buffer_size: int = DEFAULT_MAX_BUFFER_SIZE,
    when_full: Literal["skip", "close"] = "skip",
    close_code: int = 1013,
    close_reason: str = "too slow",
    compress_with_context: bool = True,
) -> BroadcastResult[WebSocketT]:
    """Send ``message`` to every connection in ``websockets`` now; return who got it.

    :param websockets: connections of one driver (asyncio, trio or threads).
    :param message: ``str`` (text), bytes (binary) or a prepared message.
    :param max_buffer_size: a connection whose outgoing bytes (not yet taken
        by the OS) would go past this many with the message does not get it.
    :param when_full: ``"skip"``: such a connection misses this message and
        stays open; ``"close"``: it is also closed with ``close_code`` (1013
        or 1008 are the usual ones) and ``close_reason``, the Close frame
        going after what its buffer holds.
    :param compress_with_context: for a str or bytes ``message``, see
        :class:`~wsproto_core.PreparedMessage`.

    It never waits. asyncio: call it from the event loop's thread; the
    message is written at once when the last iteration that broadcast
    anything broadcast one message, or else at the end of the iteration,
    everything broadcast in it in one write per connection. trio: call it
    from a task; it is written once that task yields, in the same way.
    Threads: call it from any thread; it is written at once. The kernel
    takes what it can and the rest is sent as the peer reads. Connections
    that sent or received a Close are listed in ``closed``.
    """
    if when_full not in ("skip", "close"):
        raise ValueError(f'when_full must be "skip" or "close", not {when_full!r}')
    if not isinstance(max_buffer_size, int) or max_buffer_size < 0:
        raise ValueError(f"max_buffer_size must be a non-negative int, not {max_buffer_size!r}")
    if not isinstance(message, PreparedMessage):
        message = PreparedMessage(message, compress_with_context=compress_with_context)
    room = max_buffer_size - len(message.payload) - _MAX_HEADER
    result: BroadcastResult[WebSocketT] = BroadcastResult()
    unwritten: dict[Any, None] | None = None
    at_once = False
    for websocket in websockets:
        waiting = websocket.outgoing_buffer_size
        if waiting > room:
            if websocket.closed or _closing_already(websocket):
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
            if unwritten is None:
                unwritten, at_once = _writes_for(websocket)
            if at_once and not waiting:
                websocket.write_queued()
            else:
                unwritten[websocket] = None
    if unwritten.__class__ is _WriteNow:
        for websocket in unwritten:
            websocket.write_queued()
    return result


def _writes_for(websocket: Broadcastable) -> tuple[dict[Any, None], bool]:
    """For this broadcast on ``websocket``'s driver: where connections wait to be written, and whether
    a connection with an empty buffer is written at once instead.
    """
    if isinstance(websocket, AsyncioWebSocket):
        loop = asyncio.get_running_loop()
        batch = _batches.get(loop)
        if batch is None:
            batch = _batches[loop] = _LoopBatch()
        if not batch.broadcasts:
            loop.call_soon(_end_of_iteration, batch)
        batch.broadcasts += 1
        return batch.unwritten, batch.broadcasts == 1 and batch.previous == 1
    # Only looked up: the trio driver (and trio) are imported once a trio connection exists.
    trio_driver = sys.modules.get("wsproto_core.drivers._trio_connection")
    if trio_driver is not None and isinstance(websocket, trio_driver.WebSocket):
        return _trio_unwritten_now(sys.modules["trio"]), False
    return _WriteNow(), True


def _end_of_iteration(batch: _LoopBatch) -> None:
    unwritten, batch.unwritten = batch.unwritten, {}
    batch.previous, batch.broadcasts = batch.broadcasts, 0
    for websocket in unwritten:
        websocket.write_queued()


def _trio_unwritten_now(trio: Any) -> dict[Any, None]:
    """The trio run's connections to write once the calling task yields (``trio``: the module, imported by then)."""
    global _trio_unwritten
    if _trio_unwritten is None:
        _trio_unwritten = trio.lowlevel.RunVar("wsproto_core broadcast: connections to write")
    unwritten: dict[Any, None] | None = _trio_unwritten.get(None)
    if unwritten is None:
        unwritten = {}
        _trio_unwritten.set(unwritten)
        # A system task runs once the calling task yields: everything
        # broadcast until then goes out in one write per connection.
        trio.lowlevel.spawn_system_task(_trio_write_all, name="wsproto_core broadcast writes")
    return unwritten


async def _trio_write_all() -> None:
    unwritten = _trio_unwritten.get()
    _trio_unwritten.set(None)
    for websocket in unwritten:
        websocket.write_queued()


def _closing_already(websocket: Broadcastable) -> bool:
    return websocket in _evicting or websocket._managed.state is not ConnectionState.OPEN


def _evict(websocket: Broadcastable, code: int, reason: str) -> None:
    if not isinstance(websocket, AsyncioWebSocket):
        # trio and threads: the Close is queued behind what the buffer holds
        # and written without waiting; the connection's close timeout ends it
        # if the peer never reads that far.
        websocket._close_soon(code, reason)  # type: ignore[attr-defined]
        return
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
