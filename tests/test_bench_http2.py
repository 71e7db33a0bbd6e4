"""benchmarks/bench_http2.py in its tiny mode: the report's structure; no speed is asserted here."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_http2.py"


def test_bench_http2_reports_both_protocols_for_each_case(tmp_path: Path) -> None:
    out = tmp_path / "http2.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "2", "--duration", "0.05", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert set(report["cases"]) == {"echo 256 B", "100 WebSockets"}
    for row in report["cases"].values():
        assert row["HTTP/1.1 msgs/s"] > 0
        assert row["HTTP/2 msgs/s"] > 0
        assert len(row["ratios"]) == 2
        assert row["HTTP/2 / HTTP/1.1"] == statistics.median(row["ratios"])
    assert "HTTP/2 / 1.1" in done.stdout
