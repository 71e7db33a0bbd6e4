"""The in-memory demo: ``python -m wsproto_core demo``, also what runs without a command.

The other commands (``serve``, ``connect``) are tested in test_cli.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from wsproto_core.__main__ import main


def test_demo_runs_a_full_conversation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    output = capsys.readouterr().out
    # The fragmented message comes back whole, the ping is answered, and the
    # closing handshake leaves both ends CLOSED.
    assert "TextMessage(data='fragmented'" in output
    assert "Pong(payload=b'are you there?')" in output
    assert "final states: client=CLOSED server=CLOSED" in output
    # Client frames are masked, server frames are not (RFC 6455 section 5.1).
    assert "text         FIN masked" in output
    assert "text         FIN unmasked" in output
    # It points at the live demo.
    assert "python -m wsproto_core serve" in output


@pytest.mark.parametrize("arguments", [["demo"], []])
def test_demo_as_a_module(arguments: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wsproto_core", *arguments], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert "final states: client=CLOSED server=CLOSED" in result.stdout


def test_unknown_command_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["launch-rockets"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
