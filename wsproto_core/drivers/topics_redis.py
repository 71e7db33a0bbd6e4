"""A :class:`~wsproto_core.drivers.topics.Hub` backend on Redis pub/sub, so that processes share topics.

Needs the ``redis`` package (``pip install 'wsproto_core[redis]'``) and a Redis
server. Each process holds two Redis connections: one that publishes, one that
listens; it subscribes to a Redis channel per topic that has local
subscribers (``channel_prefix`` + topic), not per connection.

Guarantees
    A message published in any process reaches every process subscribed to
    its topic once (Redis pub/sub delivers each PUBLISH once to each
    subscribed connection, and each process has one), and in the order that
    process published them: the publishes of one process go through one
    connection, one at a time in call order, and Redis delivers on each
    subscriber connection in the order it processed them. Messages published
    by different processes are interleaved in the order Redis received them,
    the same for every subscriber.

When Redis goes away
    - Publishing fails at once with :class:`~wsproto_core.drivers.topics.PublishError`
      (no retry, no queue: the caller decides), and succeeds again as soon as
      Redis is back (the next publish reconnects).
    - The listener notices the lost connection, then reconnects every
      ``reconnect_delay`` seconds (doubling up to ``max_reconnect_delay``) and
      subscribes again to every topic that has local subscribers;
      :meth:`RedisBackend.wait_connected` returns once that is done.
    - The loss window: Redis pub/sub keeps nothing for a subscriber that is
      not connected. A message published while this process's listener is
      disconnected (from the moment the connection broke until the new
      subscription is confirmed; at least the reconnect delay) never reaches
      this process's subscribers; publishers elsewhere are not told.
      Messages are never duplicated. An application that cannot lose messages
      needs sequence numbers and a store to catch up from (Redis streams, a
      database), beyond pub/sub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .topics import Deliver, PublishError

__all__ = ["RedisBackend"]

logger = logging.getLogger(__name__)

# The first byte of a published payload says what follows (the rest is the
# message's bytes): text, as UTF-8, or binary.
_TEXT = b"t"
_BINARY = b"b"


class RedisBackend:
    """Topics shared through Redis pub/sub.

    :param url: the Redis URL, such as ``redis://127.0.0.1:6379/0``.
    :param channel_prefix: prepended to topic names to make Redis channel
        names, to keep several applications apart on one Redis.
    :param reconnect_delay: seconds before the listener's first reconnection
        attempt after losing Redis; doubled after each failure.
    :param max_reconnect_delay: the longest delay between attempts.
    :param connect_timeout: seconds for a connection to Redis to be made;
        :meth:`start` waits that long for the first one.
    :param on_connection_change: called with ``False`` when the listener
        loses Redis and with ``True`` once it is back and subscribed again.

    Attributes: ``reconnections``, how many times the listener reconnected.
    """

    def __init__(
        self,
        url: str,
        *,
        channel_prefix: str = "wsproto_core:",
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 2.0,
        connect_timeout: float = 5.0,
        on_connection_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.url = url
        self._on_connection_change = on_connection_change
        self._prefix = channel_prefix
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._connect_timeout = connect_timeout
        # A channel of our own, subscribed last on each connection: its
        # confirmation means every subscription sent before it is in place
        # (Redis answers commands in order), and it keeps the listener
        # subscribed to something while no topic has subscribers.
        self._control = f"{channel_prefix}\x00listener"
        self._topics: set[str] = set()
        self._deliver: Deliver | None = None
        self._publisher: aioredis.Redis | None = None
        self._publish_lock = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._pubsub: PubSub | None = None
        self._ready = asyncio.Event()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.reconnections = 0
        self._connected_before = False

    def _client(self) -> aioredis.Redis:
        # No retries inside redis-py: a lost Redis must show at once (the
        # publisher fails, the listener reconnects by itself).
        return aioredis.Redis.from_url(
            self.url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=self._connect_timeout,
            single_connection_client=True,
        )

    async def start(self, deliver: Deliver) -> None:
        """Connect and start listening; raise ``ConnectionError`` if Redis cannot be reached."""
        self._deliver = deliver
        self._publisher = self._client()
        self._listener = asyncio.ensure_future(self._listen())
        try:
            async with asyncio.timeout(self._connect_timeout):
                await self._ready.wait()
        except TimeoutError:
            await self.close()
            raise ConnectionError(f"Redis at {self.url} cannot be reached") from None

    async def wait_connected(self) -> None:
        """Wait until the listener is connected and subscribed to every topic with local subscribers."""
        await self._ready.wait()

    @property
    def connected(self) -> bool:
        """Whether the listener is connected and its subscriptions are in place."""
        return self._ready.is_set()

    async def subscribe(self, topic: str) -> None:
        """Subscribe to ``topic``; return once Redis confirmed it, or at once while Redis is away.

        While Redis is away the topic is subscribed on reconnection.
        """
        self._topics.add(topic)
        pubsub = self._pubsub
        if pubsub is None or not self._ready.is_set():
            return
        channel = self._prefix + topic
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, []).append(waiter)
        try:
            await pubsub.subscribe(channel)
        except (RedisError, OSError):
            # The listener sees the same failure and resubscribes on reconnection.
            waiter.cancel()
            return
        await waiter

    async def unsubscribe(self, topic: str) -> None:
        """Unsubscribe from ``topic`` (at once; a failure is left to the reconnection, which skips it)."""
        self._topics.discard(topic)
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.unsubscribe(self._prefix + topic)

    async def publish(self, topic: str, message: str | bytes) -> None:
        """Publish ``message`` on ``topic``; raise :class:`~.topics.PublishError` if Redis is away."""
        if self._publisher is None:
            raise PublishError("The backend is not started: start the Hub first.")
        payload = _TEXT + message.encode() if isinstance(message, str) else _BINARY + bytes(message)
        async with self._publish_lock:
            try:
                await self._publisher.publish(self._prefix + topic, payload)
            except (RedisError, OSError) as exc:
                raise PublishError(
                    f"Could not publish on {topic!r}: Redis at {self.url} is unavailable ({exc})"
                ) from exc

    async def close(self) -> None:
        """Stop listening and close both connections."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await publisher.aclose()

    async def _listen(self) -> None:
        delay = self._reconnect_delay
        first = True
        while True:
            client = self._client()
            pubsub = client.pubsub()
            try:
                channels = [self._prefix + topic for topic in self._topics]
                if channels:
                    await pubsub.subscribe(*channels)
                await pubsub.subscribe(self._control)
                self._pubsub = pubsub
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None:
                        self._handle(message)
                        if self._ready.is_set():
                            delay = self._reconnect_delay
            except (RedisError, OSError) as exc:
                if self._ready.is_set() or first:
                    logger.warning("Lost Redis at %s (%s); reconnecting", self.url, exc)
            finally:
                self._pubsub = None
                if self._ready.is_set():
                    self._ready.clear()
                    self._notify(False)
                # Subscriptions in flight will be made again on reconnection.
                for waiters in self._waiters.values():
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(None)
                self._waiters.clear()
                try:
                    await pubsub.aclose()
                    await client.aclose()
                except (RedisError, OSError):
                    pass
            first = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_reconnect_delay)

    def _notify(self, connected: bool) -> None:
        if self._on_connection_change is not None:
            try:
                self._on_connection_change(connected)
            except Exception:
                logger.exception("on_connection_change failed")

    def _handle(self, message: dict[str, object]) -> None:
        kind = message["type"]
        channel = message["channel"]
        assert isinstance(channel, bytes)
        name = channel.decode()
        if kind == "subscribe":
            for waiter in self._waiters.pop(name, ()):
                if not waiter.done():
                    waiter.set_result(None)
            if name == self._control:
                if self._connected_before:
                    self.reconnections += 1
                self._connected_before = True
                self._ready.set()
                self._notify(True)
            return
        if kind != "message" or self._deliver is None or not name.startswith(self._prefix):
            return
        data = message["data"]
        assert isinstance(data, bytes)
        topic = name[len(self._prefix) :]
        if topic not in self._topics:
            # Published just before our unsubscription took effect.
            return
        try:
            self._deliver(topic, data[1:].decode() if data[:1] == _TEXT else data[1:])
        except Exception:
            logger.exception("Delivering a message from Redis failed")
