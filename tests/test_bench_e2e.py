"""benchmarks/bench_e2e.py in its tiny mode: the report's structure, and that echoes are checked.

No speed is asserted here; the figures are the benchmark's business.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_e2e.py"
TINY = ["--rounds", "1", "--duration", "0.05", "-q"]


def run_bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path / "e2e.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY, "--json", str(out), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done, json.loads(out.read_text())


def test_tiny_run_reports_every_case_for_both_servers_with_every_echo_verified(tmp_path: Path) -> None:
    done, report = run_bench(tmp_path, "--servers", "wsproto_core,websockets")
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["errors"] == []
    assert report["servers"] == ["wsproto_core", "websockets"]
    assert report["metadata"]["rounds"] == 1
    names = [case["name"] for case in report["cases"]]
    kinds = {case["kind"] for case in report["cases"]}
    assert kinds == {"throughput", "latency", "concurrency"}
    for size in ("16 B", "1 KiB", "64 KiB"):
        for kind in ("binary", "text"):
            assert f"throughput {size} {kind}" in names
    (round_,) = report["rounds"]
    for server in ("wsproto_core", "websockets"):
        for name in names:
            result = round_[server][name]
            # Every echo that was counted was compared with what was sent.
            assert result["messages"] > 0
            assert result["verified"] == result["messages"]
            assert result["msgs_per_s"] == pytest.approx(result["messages"] / result["seconds"])
    for name in names:
        row = report["summary"][name]
        assert set(row["msgs_per_s"]) == {"wsproto_core", "websockets"}
        assert row["ratio_msgs_per_s"]["websockets"] == pytest.approx(
            row["msgs_per_s"]["wsproto_core"] / row["msgs_per_s"]["websockets"]
        )
        assert row["ratio_spread"] == {"websockets": None}  # one round: no spread to tell
        if name.startswith("latency"):
            percentiles = [row["latency_us"][p]["wsproto_core"] for p in ("50.0", "90.0", "99.0", "99.9")]
            assert percentiles == sorted(percentiles)
            assert percentiles[0] > 0
    # The printed tables name both servers and every case.
    assert "core/websockets" in done.stdout
    assert all(name in done.stdout for name in names)


def test_a_server_that_corrupts_echoes_fails_the_run(tmp_path: Path) -> None:
    # The "broken" server changes the last byte of one message in 50.
    done, report = run_bench(tmp_path, "--servers", "broken", "--filter", "throughput 16 B")
    assert done.returncode == 1
    assert report["errors"]
    assert all("EchoMismatch" in error for error in report["errors"])
    for name, row in report["summary"].items():
        assert row["msgs_per_s"]["broken"] is None, name
    assert "FAILED" in done.stdout
