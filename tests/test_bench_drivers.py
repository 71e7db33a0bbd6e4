"""benchmarks/bench_drivers.py in a tiny run: the report's structure, and that echoes are checked.

No speed is asserted here; the figures are the benchmark's business.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_drivers.py"
TINY = ["--rounds", "1", "--duration", "0.05", "-q", "--loops", "asyncio"]


def run_bench(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path / "drivers.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY, "--json", str(out), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert out.exists(), f"the run wrote no report:\n{done.stdout}\n{done.stderr}"
    return done, json.loads(out.read_text())


def test_tiny_run_reports_each_library_in_both_roles_with_every_echo_verified(tmp_path: Path) -> None:
    libraries = ["picows", "websockets", "wsproto_core", "wsproto_core-callbacks"]
    done, report = run_bench(tmp_path, "--libraries", ",".join(libraries), "--filter", "256 B")
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["errors"] == []
    (round_,) = report["rounds"]
    keys = list(report["summary"])
    assert keys == [
        f"{role}, asyncio, 256 B{extra}"
        for role in ("server", "client")
        for extra in ("", ", 100 in flight", ", 100 connections")
    ]
    for key in keys:
        for library in libraries:
            result = round_[key][library]
            assert result["messages"] > 0
            assert result["verified"] == result["messages"]
            assert result["msgs_per_s"] == pytest.approx(result["messages"] / result["seconds"])
            assert 0 < result["p50_us"] <= result["p99_us"]
        row = report["summary"][key]
        for library in libraries:
            assert row["ratio_picows"][library] == pytest.approx(
                row["msgs_per_s"][library] / row["msgs_per_s"]["picows"]
            )
            assert row["ratio_websockets"][library] == pytest.approx(
                row["msgs_per_s"][library] / row["msgs_per_s"]["websockets"]
            )
        assert key in done.stdout


@pytest.mark.parametrize(
    ("model", "libraries"),
    [
        ("threads", ["picows", "websockets", "wsproto_core"]),
        ("trio", ["picows", "websockets", "trio-websocket", "wsproto_core"]),
    ],
)
def test_tiny_run_of_the_threads_and_trio_rows_checks_every_echo(
    tmp_path: Path, model: str, libraries: list[str]
) -> None:
    # aiohttp has no server or client for these models: it is left out of their rows.
    done, report = run_bench(
        tmp_path, "--loops", model, "--libraries", ",".join([*libraries, "aiohttp"]), "--filter", "256 B"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["errors"] == []
    (round_,) = report["rounds"]
    # One connection, one message in flight: the pipelined and many-connection cases are asyncio's.
    keys = [f"{role}, {model}, 256 B" for role in ("server", "client")]
    assert list(report["summary"]) == keys
    references = ["picows", "websockets", "trio-websocket"] if model == "trio" else ["picows", "websockets"]
    for key in keys:
        assert sorted(round_[key]) == sorted(libraries)
        for library in libraries:
            result = round_[key][library]
            assert result["messages"] > 0
            assert result["verified"] == result["messages"]
            assert 0 < result["p50_us"] <= result["p99_us"]
        row = report["summary"][key]
        assert sorted(name for name in row if name.startswith("ratio_")) == sorted(f"ratio_{r}" for r in references)
        for reference in references:
            for library in libraries:
                assert row[f"ratio_{reference}"][library] == pytest.approx(
                    row["msgs_per_s"][library] / row["msgs_per_s"][reference]
                )
        assert key in done.stdout
    assert f"/{references[-1]}" in done.stdout


def test_a_server_that_corrupts_echoes_fails_the_run(tmp_path: Path) -> None:
    # The "broken" server changes the last byte of every echo.
    done, report = run_bench(tmp_path, "--libraries", "picows,broken", "--roles", "server", "--filter", "256 B")
    assert done.returncode == 1
    assert report["errors"]
    assert all("broken" in error and "differs" in error for error in report["errors"])
    for row in report["summary"].values():
        assert row["msgs_per_s"]["broken"] is None
        assert row["msgs_per_s"]["picows"] is not None
    assert "FAILED" in done.stdout


@pytest.mark.parametrize("model", ["asyncio", "threads", "trio"])
def test_clients_that_receive_corrupted_echoes_fail_the_run(tmp_path: Path, model: str) -> None:
    # The client rows run against the broken server instead of picows'.
    libraries = ["websockets", "wsproto_core"]
    done, report = run_bench(
        tmp_path,
        *("--loops", model, "--roles", "client", "--against", "broken", "--filter", "256 B"),
        *("--libraries", ",".join(libraries)),
    )
    assert done.returncode == 1
    keys = [key for key in report["summary"] if key.startswith(f"client, {model}, 256 B")]
    assert keys
    for key in keys:
        for library in libraries:
            assert report["summary"][key]["msgs_per_s"][library] is None
            assert any(error.startswith(f"{key}: {library}: ") and "differs" in error for error in report["errors"])


def test_a_server_that_cannot_start_is_reported_and_the_others_measured(tmp_path: Path) -> None:
    """A library whose server process dies at start fails the run with its reason, at once.

    An aiohttp that cannot be imported (shadowed here) stands for any server
    that cannot start: the run names it and what it said, and measures the
    others, instead of waiting forever for its port. The timeout only guards
    against the hang this test is about.
    """
    shadow = tmp_path / "shadow" / "aiohttp"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('aiohttp is broken for this test')\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(shadow.parent), os.environ.get("PYTHONPATH")])),
    }
    done, report = run_bench(
        tmp_path, "--libraries", "aiohttp,wsproto_core", "--roles", "server", "--filter", "256 B", env=env
    )
    assert done.returncode == 1
    keys = list(report["summary"])
    assert keys
    assert sorted(report["errors"]) == sorted(
        f"{key}: aiohttp: aiohttp server did not start (exit status 1): ImportError: aiohttp is broken for this test"
        for key in keys
    )
    for key in keys:
        assert report["summary"][key]["msgs_per_s"]["aiohttp"] is None
        assert report["rounds"][0][key]["wsproto_core"]["verified"] > 0
    assert "FAILED" in done.stdout


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
def test_pinned_run_records_its_cpus_and_still_checks_every_echo(tmp_path: Path) -> None:
    cpu = min(os.sched_getaffinity(0))
    done, report = run_bench(
        tmp_path, "--libraries", "picows,wsproto_core-callbacks", "--filter", "8 KiB", "--pin", f"{cpu},{cpu}"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["metadata"]["pin"] == f"{cpu},{cpu}"
    for row in report["rounds"][0].values():
        for result in row.values():
            assert result["messages"] > 0 and result["verified"] == result["messages"]
