"""benchmarks/bench_chat_redis.py, reduced: two chat processes on a real Redis, clients in two processes.

Needs ``WSPROTO_CORE_REDIS_URL`` (the ``redis_url`` fixture: a failure under
CI, a skip elsewhere). What is asserted is what the benchmark promises to
check, not its speed: every delivery arrived, once, in each publisher's order.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_chat_redis.py"


def test_every_message_reaches_every_client_of_both_processes_once_in_order(redis_url: str, tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    clients_per_process, messages = 6, 200
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--redis",
            redis_url,
            "--clients",
            str(clients_per_process),
            "--client-processes",
            "2",
            "--publishers",
            "4",
            "--messages",
            str(messages),
            "--rate",
            "1000",
            "--timeout",
            "60",
            "--json",
            str(report_file),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(report_file.read_text())
    assert report["problems"] == []
    assert report["clients"] == 2 * clients_per_process
    # Every client, sender included, in either process, got every message.
    assert report["deliveries"] == report["expected deliveries"] == 2 * clients_per_process * messages
    assert 0 < report["latency p50 ms"] <= report["latency p99 ms"] <= report["latency max ms"]
