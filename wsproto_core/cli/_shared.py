"""What ``serve`` and ``connect`` share: driver settings, signals, messages."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any


def settings_from(args: argparse.Namespace, *, ping_interval: float | None) -> dict[str, Any]:
    """The driver options (:class:`~wsproto_core.drivers.Settings`) the command line asks for.

    ``ping_interval`` is the default when the option was not given. Durations of
    0 mean "off" (``None``), as the options' help says.
    """
    options = {
        "compression": not args.no_deflate,
        "max_message_size": args.max_message_size,
        "max_frame_size": args.max_frame_size,
        "ping_interval": _duration(ping_interval if args.ping_interval is None else args.ping_interval),
        "ping_timeout": _duration(args.ping_timeout),
        "close_timeout": _duration(args.close_timeout),
    }
    return options


def _duration(value: float | None) -> float | None:
    return None if not value else float(value)


def error(message: str) -> None:
    """Print a one-line error for the user (no traceback)."""
    print(f"error: {message}", file=sys.stderr, flush=True)


def format_address(address: Any) -> str:
    """``host:port`` (``[host]:port`` for IPv6) of a socket address."""
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)


def describe_close(code: int | None, reason: str | None) -> str:
    """``1000 (normal closure) "reason"``: a close code for people."""
    names = {
        1000: "normal closure",
        1001: "going away",
        1002: "protocol error",
        1003: "unsupported data",
        1005: "no status code",
        1006: "connection lost without a Close frame",
        1007: "invalid data",
        1008: "policy violation",
        1009: "message too big",
        1010: "missing extension",
        1011: "internal error",
    }
    text = f"{code} ({names[code]})" if code in names else str(code)
    return f"{text} {reason!r}" if reason else text


@contextlib.contextmanager
def on_signals(callback: Callable[[int], None]) -> Iterator[None]:
    """Call ``callback(count)`` in the running loop on SIGINT and SIGTERM (count: 1, 2, ...).

    The handlers run in the event loop, so the callback may touch asyncio
    objects. Python's own handlers come back on exit.
    """
    loop = asyncio.get_running_loop()
    count = 0

    def handle() -> None:
        nonlocal count
        count += 1
        callback(count)

    installed: list[signal.Signals] = []
    previous: dict[signal.Signals, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, handle)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):  # pragma: no cover (Windows, or not the main thread)
            with contextlib.suppress(ValueError, OSError):
                previous[signum] = signal.signal(signum, lambda *_: loop.call_soon_threadsafe(handle))
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        for number, handler in previous.items():  # pragma: no cover
            signal.signal(number, handler)


def run_logging(main: Coroutine[Any, Any, int]) -> int:
    """Run a server command's ``main`` with the CLI's log lines on stderr; return its exit code.

    The handler is ours only while the command runs, and the records do not also reach the root
    logger (an embedding application's own logging set-up stays as it was).
    """
    logger = logging.getLogger("wsproto_core.cli")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    propagate, logger.propagate = logger.propagate, False
    try:
        return asyncio.run(main)
    except KeyboardInterrupt:  # Ctrl-C before the loop's own handlers were in place: nothing to close
        return 0
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
