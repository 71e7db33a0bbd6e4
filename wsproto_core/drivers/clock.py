"""The clock the threads driver reads its timers from, and a manual one for tests.

The asyncio and trio drivers read their event loop's clock, which a test
replaces with the loop's own means (an event loop whose ``time()`` it moves,
``trio.testing.MockClock``). The threads driver has no loop: it takes a
:class:`Clock` instead (``clock=`` on :func:`~wsproto_core.drivers.sync.connect`
and :func:`~wsproto_core.drivers.sync.serve`). Its keepalive, ping and close
timeouts, and the ``timeout`` arguments of ``recv``, ``wait_closed`` and
``PongWaiter.wait``, are read from it; the opening handshake's
``open_timeout`` is the socket's own and stays in real time.

With a :class:`ManualClock`, time moves only when the test says so::

    clock = ManualClock()
    with connect(url, clock=clock) as websocket:
        clock.advance(20.0)  # the keepalive Ping goes out now
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "ManualClock"]


class Clock:
    """The monotonic clock (the default): seconds from :func:`time.monotonic`.

    A connection calls :meth:`subscribe` with a function that makes it look at
    its timers again; real time moves by itself, so this clock never calls it.
    """

    __slots__ = ()

    def now(self) -> float:
        """The time, in seconds."""
        return time.monotonic()

    def subscribe(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever the time moves other than by itself (never, here)."""

    def unsubscribe(self, wake: Callable[[], None]) -> None:
        """Stop calling ``wake``."""


#: The clock connections read unless given another.
MONOTONIC = Clock()


class ManualClock(Clock):
    """A clock that moves only when :meth:`advance` is called: timers fire without waiting, in tests.

    Each :meth:`advance` wakes every connection that reads this clock, which
    then does what is due (a keepalive Ping, giving up on a late peer) in its
    own thread; the test then waits for the outcome (a frame on the wire, a
    closed connection), never for time.
    """

    __slots__ = ("_now", "_wakes")

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._wakes: set[Callable[[], None]] = set()

    def now(self) -> float:
        """The time, in seconds: ``start`` plus every :meth:`advance` so far."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the time forward by ``seconds``, and wake the connections that read it."""
        if seconds < 0:
            raise ValueError("A clock does not go backwards: advance() takes seconds >= 0")
        self._now += seconds
        for wake in list(self._wakes):
            wake()

    def subscribe(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` on every :meth:`advance`."""
        self._wakes.add(wake)

    def unsubscribe(self, wake: Callable[[], None]) -> None:
        """Stop calling ``wake``."""
        self._wakes.discard(wake)
