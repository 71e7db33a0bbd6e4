"""The threads driver's clocks: the monotonic default and the manual one tests move."""

from __future__ import annotations

import time

import pytest

from wsproto_core.drivers.clock import MONOTONIC, Clock, ManualClock


def test_the_default_clock_is_monotonic_and_never_wakes_anyone() -> None:
    woken: list[str] = []
    before = time.monotonic()
    reading = MONOTONIC.now()
    assert before <= reading <= time.monotonic()
    MONOTONIC.subscribe(lambda: woken.append("woken"))
    MONOTONIC.unsubscribe(lambda: woken.append("woken"))
    assert woken == []
    assert isinstance(MONOTONIC, Clock)


def test_a_manual_clock_moves_only_when_advanced_and_wakes_its_subscribers() -> None:
    clock = ManualClock(start=100.0)
    woken: list[tuple[str, float]] = []

    def first() -> None:
        woken.append(("first", clock.now()))

    def second() -> None:
        woken.append(("second", clock.now()))

    clock.subscribe(first)
    clock.subscribe(second)
    assert clock.now() == 100.0
    clock.advance(20.0)
    assert clock.now() == 120.0
    assert sorted(woken) == [("first", 120.0), ("second", 120.0)]
    clock.unsubscribe(first)
    clock.unsubscribe(first)  # Twice is harmless.
    woken.clear()
    clock.advance(0.5)
    assert woken == [("second", 120.5)]


def test_a_manual_clock_does_not_go_backwards() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1.0)
    assert clock.now() == 0.0


def test_a_subscriber_may_unsubscribe_while_woken() -> None:
    clock = ManualClock()
    calls: list[int] = []

    def once() -> None:
        calls.append(1)
        clock.unsubscribe(once)

    clock.subscribe(once)
    clock.advance(1.0)
    clock.advance(1.0)
    assert calls == [1]
