"""The fuzz targets in fuzz/ run on every seed corpus file, so that they cannot rot.

Each target's ``test_one_input`` is the function atheris calls; run on the
committed corpus, it must pass (a failure is either a library bug the corpus
reaches or a target that no longer matches the library's API). Inputs that once
crashed a target are kept under fuzz/crashes/<target>/ and replayed here.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

FUZZ_DIR = Path(__file__).resolve().parent.parent / "fuzz"
sys.path.insert(0, str(FUZZ_DIR))

TARGETS = sorted(path.stem for path in FUZZ_DIR.glob("fuzz_*.py"))
CASES = [
    pytest.param(target, path, id=f"{target}/{path.name}")
    for target in TARGETS
    for path in sorted((FUZZ_DIR / "corpus" / target).iterdir())
]


def test_every_target_has_a_corpus() -> None:
    assert TARGETS, "no fuzz targets found"
    for target in TARGETS:
        assert any((FUZZ_DIR / "corpus" / target).iterdir()), target


@pytest.mark.parametrize(("target", "path"), CASES)
def test_target_on_corpus_file(target: str, path: Path) -> None:
    module = importlib.import_module(target)
    module.test_one_input(path.read_bytes())


def test_fallback_driver_runs_and_mutates(tmp_path: Path) -> None:
    common = importlib.import_module("_common")
    seen: list[bytes] = []
    code = common.fallback_fuzz(
        seen.append,
        ["x", "-runs=300", "-seed=1", f"-dict={FUZZ_DIR / 'websocket.dict'}", str(FUZZ_DIR / "corpus" / TARGETS[0])],
    )
    assert code == 0
    assert len(seen) == 300 and len(set(seen)) > 100


def test_fallback_driver_saves_a_crash(tmp_path: Path) -> None:
    common = importlib.import_module("_common")

    def crash(data: bytes) -> None:
        raise ValueError("boom")

    assert common.fallback_fuzz(crash, ["x", "-runs=5", f"-artifact_prefix={tmp_path}/"]) == 1
    assert [path.name.startswith("crash-") for path in tmp_path.iterdir()] == [True]


@pytest.mark.parametrize(
    "crash", sorted(FUZZ_DIR.glob("crashes/*/*")), ids=lambda path: f"{path.parent.name}/{path.name}"
)
def test_fixed_crashes_stay_fixed(crash: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every input that once crashed a target (fuzz/crashes/<target>/) now passes it."""
    monkeypatch.setenv("FUZZ_STRICT", "1")
    module = importlib.import_module(crash.parent.name)
    module.test_one_input(crash.read_bytes())
