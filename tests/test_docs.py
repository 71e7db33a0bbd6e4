"""Every Python example in the documentation runs.

Each fenced ```python block of docs/**/*.md is a complete program, run in its own interpreter
(so that one example's imports, event loop or ``compat.install()`` cannot leak into another). A
block is skipped only when the line before its fence is ``<!-- no-test -->``, which the docs keep
for examples that need a peer on the network or a server that runs until interrupted.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
SKIP_MARKER = "<!-- no-test -->"
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(line number, code, skipped)`` for every fenced python block of a Markdown text."""
    blocks: list[tuple[int, str, bool]] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        language = match["info"].strip().split(" ", 1)[0] if match["info"].strip() else ""
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index][indent:] if lines[index][:indent].strip() == "" else lines[index])
            index += 1
        index += 1
        if language in ("python", "py", "python3"):
            skipped = start > 0 and lines[start - 1].strip() == SKIP_MARKER
            blocks.append((start + 1, "\n".join(body) + "\n", skipped))
    return blocks


def collect() -> list[object]:
    params: list[object] = []
    for path in sorted(DOCS.rglob("*.md")):
        if "_build" in path.parts:
            continue
        for line, code, skipped in python_blocks(path.read_text(encoding="utf-8")):
            name = f"{path.relative_to(DOCS)}:{line}"
            marks = [pytest.mark.skip(reason="marked <!-- no-test --> in the docs")] if skipped else []
            params.append(pytest.param(code, id=name, marks=marks))
    return params


EXAMPLES = collect()


def test_the_docs_have_examples() -> None:
    assert len(EXAMPLES) >= 10


def test_block_extraction() -> None:
    text = "\n".join(
        [
            "```python",
            "a = 1",
            "```",
            "<!-- no-test -->",
            "```python",
            "serve_forever()",
            "```",
            "```sh",
            "ls",
            "```",
            "- item:",
            "  ```python",
            "  b = 2",
            "  ```",
        ]
    )
    assert python_blocks(text) == [(1, "a = 1\n", False), (5, "serve_forever()\n", True), (12, "b = 2\n", False)]


@pytest.mark.parametrize("code", EXAMPLES)
def test_example_runs(code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"example failed:\n{code}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
