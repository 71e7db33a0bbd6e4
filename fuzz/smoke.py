"""Run every fuzz target for a bounded time and report executions; exit 1 on a crash.

    python fuzz/smoke.py --seconds 30

Each target runs in its own subprocess (atheris when installed, else the
fallback driver of ``_common``) on a scratch copy of its seed corpus, so the
committed corpus never grows. A crashing input is saved under
``reports/fuzz/<target>/`` (git-ignored) and named in the output.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
ROOT = FUZZ_DIR.parent
TARGETS = sorted(path.stem for path in FUZZ_DIR.glob("fuzz_*.py"))
_EXECUTED = re.compile(r"stat::number_of_executed_units:\s*(\d+)")


def run(target: str, seconds: int, reports: Path) -> tuple[int, float, int]:
    """Run one target; return (executions, seconds taken, exit code)."""
    artifacts = reports / target
    artifacts.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{target}-") as scratch:
        corpus = FUZZ_DIR / "corpus" / target
        if corpus.is_dir():
            shutil.copytree(corpus, scratch, dirs_exist_ok=True)
        command = [
            sys.executable,
            str(FUZZ_DIR / f"{target}.py"),
            f"-max_total_time={seconds}",
            "-print_final_stats=1",
            f"-dict={FUZZ_DIR / 'websocket.dict'}",
            f"-artifact_prefix={artifacts}/",
            "-timeout=10",
            "-rss_limit_mb=2048",
            scratch,
        ]
        start = time.monotonic()
        result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
        elapsed = time.monotonic() - start
    output = result.stdout + result.stderr
    (artifacts / "log.txt").write_text(output, encoding="utf-8")
    found = _EXECUTED.findall(output)
    executions = int(found[-1]) if found else 0
    if result.returncode != 0:
        print(output[-6000:], file=sys.stderr)
    return executions, elapsed, result.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=30, help="time per target (default 30)")
    parser.add_argument("--reports", type=Path, default=ROOT / "reports" / "fuzz", help="where crashes go")
    parser.add_argument("targets", nargs="*", default=TARGETS, help=f"targets to run (default all: {TARGETS})")
    args = parser.parse_args()
    try:
        import atheris  # type: ignore[import-not-found]  # noqa: F401, PLC0415

        engine = "atheris (libFuzzer)"
    except ImportError:
        engine = "the fallback driver (random mutation, no coverage feedback)"
    print(f"fuzz smoke: {len(args.targets)} targets x {args.seconds} s with {engine}")
    failed = []
    total = 0
    for target in args.targets:
        executions, elapsed, code = run(target, args.seconds, args.reports)
        total += executions
        status = "ok" if code == 0 else f"CRASH (exit {code}; input in {args.reports / target}/)"
        print(f"  {target:24} {executions:>10} execs  {executions / max(elapsed, 1e-9):>8.0f} execs/s  {status}")
        if code != 0:
            failed.append(target)
    print(f"  {'total':24} {total:>10} execs")
    if failed:
        print(f"fuzz smoke: crashes in {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
