"""Topics for the asyncio driver: connections subscribe to topics, messages are published to a topic.

A :class:`Hub` keeps, in each server process, the map from each topic to the
local connections subscribed to it, and hands every message published on a
topic to them with :func:`~wsproto_core.drivers.broadcast.broadcast` (encoded
once, bounded buffers, the slow ones skipped or closed). A connection's
subscriptions are dropped when it closes.

Where a published message goes is the backend's job:

- :class:`LocalBackend` (the default) delivers in this process, at once.
- :class:`~wsproto_core.drivers.topics_redis.RedisBackend` goes through Redis
  pub/sub, so that several processes, on one machine or many, share topics: a
  message published in any process reaches the subscribers of every process,
  once, in the publisher's order.

A backend subscribes to a topic once per process, when the topic gets its
first local subscriber, and unsubscribes when it loses its last one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal, Protocol

from ..prepared import PreparedMessage
from .asyncio import WebSocket
from .broadcast import DEFAULT_MAX_BUFFER_SIZE, BroadcastResult, broadcast

__all__ = ["Backend", "Deliver", "Hub", "LocalBackend", "PublishError"]

logger = logging.getLogger(__name__)

#: What a backend calls with each message that reaches this process: the
#: topic and the message (``str`` for text, ``bytes`` for binary).
Deliver = Callable[[str, "str | bytes"], None]


class PublishError(Exception):
    """A message could not be published (the backend's broker is unreachable); nobody got it."""


class Backend(Protocol):
    """Where messages published on a :class:`Hub` go, and where they come from."""

    async def start(self, deliver: Deliver) -> None:
        """Start; call ``deliver(topic, message)`` for every message on a subscribed topic."""

    async def subscribe(self, topic: str) -> None:
        """Receive the messages of ``topic`` from now on (once per process)."""

    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving the messages of ``topic``."""

    async def publish(self, topic: str, message: str | bytes) -> None:
        """Send ``message`` to every process subscribed to ``topic``; raise :class:`PublishError` if it cannot."""

    async def close(self) -> None:
        """Stop; release connections."""


class LocalBackend:
    """The in-process backend: a message published here reaches this process's subscribers, at once."""

    def __init__(self) -> None:
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        """Remember where to deliver."""
        self._deliver = deliver

    async def subscribe(self, topic: str) -> None:
        """Nothing to do: every topic is local."""

    async def unsubscribe(self, topic: str) -> None:
        """Nothing to do: every topic is local."""

    async def publish(self, topic: str, message: str | bytes) -> None:
        """Deliver ``message`` to this process's subscribers of ``topic``."""
        if self._deliver is None:
            raise PublishError("The hub is not started: use `async with Hub(...)` or `await hub.start()`.")
        self._deliver(topic, message)

    async def close(self) -> None:
        """Forget where to deliver."""
        self._deliver = None


class Hub:
    """Topics shared by the connections of this process (and of others, with a shared backend).

    :param backend: :class:`LocalBackend` (default) or a shared one such as
        :class:`~wsproto_core.drivers.topics_redis.RedisBackend`.
    :param max_buffer_size: passed to :func:`~wsproto_core.drivers.broadcast.broadcast`.
    :param when_full: likewise (``"skip"`` or ``"close"``).
    :param close_code: likewise.
    :param compress_with_context: likewise.
    :param on_delivery: called as ``on_delivery(topic, result)`` with the
        :class:`~wsproto_core.drivers.broadcast.BroadcastResult` of each
        message delivered here, to log or count who missed it.

    Use it as ``async with Hub() as hub:`` (or :meth:`start` and :meth:`close`)
    from the event loop that runs the connections.

    Attributes: ``delivered`` and ``missed``, counts of connections that got
    (and did not get) a message since the start.
    """

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        max_buffer_size: int = DEFAULT_MAX_BUFFER_SIZE,
        when_full: Literal["skip", "close"] = "skip",
        close_code: int = 1013,
        compress_with_context: bool = True,
        on_delivery: Callable[[str, BroadcastResult[Any]], None] | None = None,
    ) -> None:
        self.backend: Backend = backend if backend is not None else LocalBackend()
        self._max_buffer_size = max_buffer_size
        self._when_full: Literal["skip", "close"] = when_full
        self._close_code = close_code
        self._compress_with_context = compress_with_context
        self._on_delivery = on_delivery
        # Each topic's local subscribers (a dict keeps subscription order), and
        # each subscriber's topics with the task that drops them at its close.
        self._subscribers: dict[str, dict[WebSocket, None]] = {}
        self._topics: dict[WebSocket, set[str]] = {}
        self._watchers: dict[WebSocket, asyncio.Task[None]] = {}
        self.delivered = 0
        self.missed = 0

    async def start(self) -> None:
        """Start the backend."""
        await self.backend.start(self._deliver)

    async def close(self) -> None:
        """Stop the backend and forget every subscription (connections stay open)."""
        for watcher in self._watchers.values():
            watcher.cancel()
        self._watchers.clear()
        self._topics.clear()
        self._subscribers.clear()
        await self.backend.close()

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def subscribe(self, websocket: WebSocket, topic: str) -> None:
        """Send ``websocket`` the messages published on ``topic`` from now on.

        Subscribing twice is the same as once. When it returns, the backend
        receives the topic (for Redis: the subscription is confirmed).
        """
        if websocket.closed:
            return
        subscribers = self._subscribers.get(topic)
        first = subscribers is None
        if subscribers is None:
            subscribers = self._subscribers[topic] = {}
        subscribers[websocket] = None
        self._topics.setdefault(websocket, set()).add(topic)
        if websocket not in self._watchers:
            self._watchers[websocket] = asyncio.ensure_future(self._drop_when_closed(websocket))
        if first:
            await self.backend.subscribe(topic)

    async def unsubscribe(self, websocket: WebSocket, topic: str | None = None) -> None:
        """Stop sending ``websocket`` the messages of ``topic`` (``None``: of every topic)."""
        topics = self._topics.get(websocket, set())
        for name in [topic] if topic is not None else list(topics):
            if name not in topics:
                continue
            topics.discard(name)
            subscribers = self._subscribers.get(name)
            if subscribers is not None:
                subscribers.pop(websocket, None)
                if not subscribers:
                    del self._subscribers[name]
                    await self.backend.unsubscribe(name)
        if not topics:
            self._topics.pop(websocket, None)
            watcher = self._watchers.pop(websocket, None)
            if watcher is not None and watcher is not asyncio.current_task():
                watcher.cancel()

    async def publish(self, topic: str, message: str | bytes) -> None:
        """Publish ``message`` on ``topic``: every subscriber, in every process the backend reaches, gets it.

        Raises :class:`PublishError` when the backend cannot take it.
        """
        await self.backend.publish(topic, message)

    def subscribers(self, topic: str) -> list[WebSocket]:
        """This process's connections subscribed to ``topic``."""
        return list(self._subscribers.get(topic, ()))

    def topics(self, websocket: WebSocket) -> set[str]:
        """The topics ``websocket`` is subscribed to."""
        return set(self._topics.get(websocket, ()))

    def _deliver(self, topic: str, message: str | bytes) -> None:
        subscribers = self._subscribers.get(topic)
        if not subscribers:
            return
        result = broadcast(
            subscribers,
            PreparedMessage(message, compress_with_context=self._compress_with_context),
            max_buffer_size=self._max_buffer_size,
            when_full=self._when_full,
            close_code=self._close_code,
        )
        self.delivered += result.sent
        self.missed += len(result.missed)
        if self._on_delivery is not None:
            try:
                self._on_delivery(topic, result)
            except Exception:
                logger.exception("on_delivery failed")

    async def _drop_when_closed(self, websocket: WebSocket) -> None:
        await websocket.wait_closed()
        self._watchers.pop(websocket, None)
        await self.unsubscribe(websocket)
