"""When a reconnecting client tries again, and when it gives up: one policy for every driver.

A reconnecting client (``async for websocket in connect(url)`` with asyncio,
``async with reconnect(url) as connections`` with trio, ``for websocket in
reconnect(url)`` with threads) opens a connection, hands it to the
application, and once the application is done with it (or it closed), opens
the next one. An attempt that fails is classified by :attr:`Backoff.retry`:

- transient, tried again after a delay: network errors (``OSError``, which
  includes ``ConnectionError``, ``TimeoutError`` and a proxy's refusal), and
  an HTTP answer that says "later": 408, 429, 500, 502, 503 and 504;
- permanent, raised to the application: every other HTTP answer (a 403 or a
  404 will not change by retrying), an invalid 101, an invalid URL, and a TLS
  certificate that does not verify.

The delays grow exponentially with the failures in a row: the n-th (from 0)
is ``min(max_delay, min_delay * factor ** n)``, shortened by a random
fraction of at most ``jitter`` so that clients dropped together do not come
back together (RFC 6455 section 7.2.3 asks for a random delay before the first
reconnection too). With the defaults the delays are 0.5-1 s, 1-2 s, 2-4 s, ...
up to 30-60 s. A 429 or 503 whose ``Retry-After`` asks for longer waits that
long (at most ``max_delay``). A connection that opened resets the count: after
it ends the next attempt starts at once.

This module does no I/O; each driver runs the loop with its own sleep.
"""

from __future__ import annotations

import dataclasses
import random as random_module
import ssl
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from ._common import HandshakeRejected

__all__ = ["RETRYABLE_STATUS_CODES", "Attempts", "Backoff", "is_transient"]

#: HTTP answers to an upgrade that may well be different a little later:
#: Request Timeout, Too Many Requests, and the server or gateway errors that
#: say the server (or what is in front of it) is unavailable, not that the
#: request is wrong.
RETRYABLE_STATUS_CODES = frozenset({408, 429, 500, 502, 503, 504})


def is_transient(error: Exception) -> bool:
    """The default :attr:`Backoff.retry`: whether trying again may succeed (see the module's rules)."""
    if isinstance(error, HandshakeRejected):
        return error.status_code in RETRYABLE_STATUS_CODES
    if isinstance(error, ssl.SSLCertVerificationError):
        return False
    return isinstance(error, OSError)


def retry_after(error: Exception) -> float | None:
    """The seconds a rejection's ``Retry-After`` asks for (RFC 9110 section 10.2.3), if in delta-seconds form."""
    if not isinstance(error, HandshakeRejected):
        return None
    for name, value in error.headers:
        if name.lower() == b"retry-after":
            text = value.strip()
            return float(text) if text.isdigit() else None
    return None


@dataclasses.dataclass(frozen=True)
class Backoff:
    """How a reconnecting client waits between failed attempts, and which failures end it.

    :param min_delay: seconds before the first retry (before jitter).
    :param max_delay: the longest delay, in seconds.
    :param factor: how much each failure in a row multiplies the delay by.
    :param jitter: the largest fraction of a delay taken off at random (0 to 1).
    :param retry: ``retry(error)`` says whether a failed attempt is tried
        again (true) or raised (false); :func:`is_transient` by default.
    :param random: numbers in [0, 1) for the jitter; ``random.random`` by default.
    :param sleep: waits the given seconds: a coroutine function for the
        asyncio and trio drivers, a plain function for threads. ``None``: the
        driver's own (``asyncio.sleep``, ``trio.sleep``, ``time.sleep``). Tests
        pass one that records the delays instead of waiting.
    """

    min_delay: float = 1.0
    max_delay: float = 60.0
    factor: float = 2.0
    jitter: float = 0.5
    retry: Callable[[Exception], bool] = is_transient
    random: Callable[[], float] = random_module.random
    sleep: Callable[[float], Any] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.min_delay <= self.max_delay:
            raise ValueError("Backoff needs 0 <= min_delay <= max_delay")
        if self.factor < 1:
            raise ValueError("Backoff needs factor >= 1 (delays must not shrink)")
        if not 0 <= self.jitter <= 1:
            raise ValueError("Backoff needs 0 <= jitter <= 1")

    def delay(self, failures: int) -> float:
        """The delay after ``failures`` failed attempts in a row (the first failure is 1)."""
        exponent = failures - 1
        # Past the cap the power is not computed (it would overflow a float).
        if self.min_delay == 0 or self.factor == 1:
            base = self.min_delay
        else:
            base = self.min_delay
            while exponent > 0 and base < self.max_delay:
                base *= self.factor
                exponent -= 1
        base = min(base, self.max_delay)
        return base * (1 - self.jitter * self.random())

    def attempts(self) -> Attempts:
        """A fresh count of failures for one reconnecting client."""
        return Attempts(self)


class Attempts:
    """One reconnecting client's failures in a row, and what each one means."""

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        #: Failed attempts since the last connection that opened.
        self.failures = 0

    def failed(self, error: Exception) -> float | None:
        """An attempt failed with ``error``: the seconds to wait before the next one, or ``None`` to raise it."""
        backoff = self.backoff
        if not backoff.retry(error):
            return None
        self.failures += 1
        delay = backoff.delay(self.failures)
        asked = retry_after(error)
        if asked is not None:
            delay = max(delay, min(asked, backoff.max_delay))
        return delay

    def opened(self) -> None:
        """An attempt succeeded: the next failure waits the shortest delay again."""
        self.failures = 0


class _Closable(Protocol):
    async def close(self) -> None: ...


Connection = TypeVar("Connection", bound=_Closable)


async def reconnecting(
    open_connection: Callable[[], Awaitable[Connection]],
    backoff: Backoff,
    sleep: Callable[[float], Awaitable[Any]],
) -> AsyncGenerator[Connection, None]:
    """Yield a fresh open connection each time the previous one is done with; the async drivers' loop.

    Each connection is closed when the application asks for the next one (or
    leaves the loop). A failed attempt is retried after :meth:`Attempts.failed`'s
    delay, or raised.
    """
    attempts = backoff.attempts()
    while True:
        try:
            connection = await open_connection()
        except Exception as error:
            delay = attempts.failed(error)
            if delay is None:
                raise
            await sleep(delay)
            continue
        attempts.opened()
        try:
            yield connection
        finally:
            await connection.close()
