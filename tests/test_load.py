"""benchmarks/bench_load.py at a tiny scale against our asyncio server: the correctness facts only.

Each scenario runs the harness's own code (a server subprocess on 127.0.0.1, this process as the
clients) and asserts what must hold at any scale: nothing lost or corrupted, every descriptor and
task released, the server still serving. Speed and the size of figures are the benchmark's business.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_load.py"


def load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_load", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_load"] = module
    spec.loader.exec_module(module)
    return module


harness = load_harness()
pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="the harness reads /proc")

TINY = harness.Scale(
    idle=60,
    slowloris=30,
    slowloris_duration=2.0,
    flood_duration=60.0,
    soak_connections=6,
    soak_messages=15,
    deflate_connections=3,
    deflate_messages=10,
    reset_rounds=3,
    reset_clients=20,
)
#: Trickling sockets are closed by the handshake timeout: shorter than the default (10 s), so
#: that the test is short, and long enough for the normal client's handshakes on a busy machine.
SLOWLORIS = dataclasses.replace(TINY, open_timeout=3.0)


def run(scenario: str) -> Any:
    scale = SLOWLORIS if scenario == "slowloris" else TINY
    return asyncio.run(harness.run_scenario(scenario, harness.CORE, scale, seed=7))


@pytest.mark.parametrize("scenario", ["idle", "idle-deflate"])
def test_idle_connections_all_echo_and_release_everything(scenario: str) -> None:
    outcome = run(scenario)
    assert outcome.failures == []
    assert outcome.figures["connections"] == outcome.figures["echoed"] == TINY.idle


def test_slowloris_sockets_are_closed_by_the_handshake_timeout_while_a_client_is_served() -> None:
    outcome = run("slowloris")
    assert outcome.failures == []
    assert outcome.figures["trickling_closed"] == TINY.slowloris
    assert outcome.figures["failures"] == outcome.figures["fresh_connection_failures"] == 0
    assert outcome.figures["round_trips"] > 0


def test_a_client_that_never_reads_is_paused_and_costs_bounded_memory() -> None:
    outcome = run("flood")
    assert outcome.failures == []
    figures = outcome.figures
    # The server stopped reading (our writes blocked) instead of buffering what it cannot send.
    assert figures["writes_blocked"]
    assert figures["closed_at_s"] is None
    assert figures["corrupted"] == 0
    assert figures["echoes_read_after"] == figures["messages_sent"]
    assert figures["server_rss_growth"] < 32 * 1024 * 1024


@pytest.mark.parametrize("scenario", ["soak", "soak-deflate"])
def test_soak_loses_and_corrupts_nothing(scenario: str) -> None:
    outcome = run(scenario)
    assert outcome.failures == []
    assert outcome.figures["lost"] == outcome.figures["corrupted"] == 0


def test_resets_mid_handshake_and_mid_frame_leak_nothing_and_the_server_still_serves() -> None:
    outcome = run("reset")
    assert outcome.failures == []
    assert len(outcome.figures["rss_per_round"]) == TINY.reset_rounds


def test_the_harness_notices_a_lost_descriptor() -> None:
    # The facts above are only worth something if a leak would fail them.
    outcome = harness.Outcome("soak", harness.CORE)

    class LeakyServer:
        calls = 0

        async def stats(self) -> dict[str, Any]:
            self.calls += 1
            return {"rss": 0, "fds": 10 + self.calls, "tasks": 2, "cpu": 0.0, "minflt": 0}

        async def settle(self, baseline: dict[str, Any], deadline: float) -> dict[str, Any]:
            return {"rss": 0, "fds": baseline["fds"] + 1, "tasks": 2, "cpu": 0.0, "minflt": 0}

    async def no_clients() -> None:
        await harness.scenario_soak(LeakyServer(), outcome, 0, 0, compression=False, seed=1)

    asyncio.run(no_clients())
    assert any("descriptors" in failure for failure in outcome.failures)
