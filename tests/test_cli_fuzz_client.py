"""``python -m wsproto_core fuzz --client``: the answers, the judge, and campaigns against real clients.

The handshake answers are checked against our own client (the oracle), the
judge on hand-made outcomes. Then whole campaigns run against client
processes (tests/fuzz_clients.py): our ``connect --echo`` (one process per
case), websockets', aiohttp's and websocket-client's clients and a broken
client with planted violations (one process that connects again after each
case). Each campaign's server listens on 127.0.0.1 port 0 and stops its
client at the end. Campaigns run the fixed cases, whose findings and minimal
bytes are known in advance; generated cases add only what they may find.
"""

from __future__ import annotations

import dataclasses
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cli_process import COMMAND

from wsproto_core import WSConnection
from wsproto_core.cli import main
from wsproto_core.cli.fuzz import VIOLATION, WARNING, Case, Expectation, Finding, Reaction
from wsproto_core.cli.fuzz_client import (
    PROBE_FRAMES,
    VALID_ANSWER,
    ClientCase,
    ClientFuzzOptions,
    Outcome,
    answers,
    catalogue,
    frame_case,
    fuzz_client,
    judge_outcome,
    server_frames,
)
from wsproto_core.connection import ConnectionType
from wsproto_core.crafting import CraftedFrame
from wsproto_core.errors import RemoteProtocolError
from wsproto_core.events import AcceptConnection, Request
from wsproto_core.frames import Opcode
from wsproto_core.permessage_deflate import PerMessageDeflate
from wsproto_core.utilities import generate_accept_token

CLIENTS = Path(__file__).with_name("fuzz_clients.py")
PROBE = b"".join(frame.to_bytes() for frame in PROBE_FRAMES)


def client_command(kind: str, *flags: str) -> str:
    return shlex.join([sys.executable, str(CLIENTS), kind, "{url}", *flags])


def kinds(found: list[tuple[Finding, ClientCase]]) -> dict[str, Finding]:
    return {finding.kind: finding for finding, _ in found}


# ------------------------------------------------------------------ the answers


def our_client_takes(answer_bytes: bytes, offer_deflate: bool) -> bool:
    """Whether wsproto_core's client opens the connection on ``answer_bytes`` (``{accept}`` for its key)."""
    client = WSConnection(ConnectionType.CLIENT)
    request = client.send(
        Request(host="example.com", target="/", extensions=[PerMessageDeflate()] if offer_deflate else [])
    )
    key = next(line.split(b": ")[1] for line in request.split(b"\r\n") if line.lower().startswith(b"sec-websocket-key"))
    try:
        client.receive_data(answer_bytes.replace(b"{accept}", generate_accept_token(key)))
        client.receive_data(None)
    except RemoteProtocolError:
        return False
    return any(isinstance(event, AcceptConnection) for event in client.events())


@pytest.mark.parametrize("offer_deflate", [False, True])
def test_answers_agree_with_our_client(offer_deflate: bool) -> None:
    # Our PerMessageDeflate always offers client_max_window_bits.
    for answer in answers(offered_deflate=offer_deflate, offered_client_window=offer_deflate):
        head = answer.head if answer.cut is None else answer.head[: answer.cut]
        assert our_client_takes(head, offer_deflate) is answer.accept, answer.name


def test_answers_name_the_deflate_mistake_by_the_offer() -> None:
    offered = {answer.name: answer for answer in answers(offered_deflate=True, offered_client_window=False)}
    assert b"client_max_window_bits=10" in offered["permessage-deflate with client_max_window_bits not offered"].head
    assert offered["permessage-deflate with server_max_window_bits=7"].section == "4.1; RFC 7692 section 7"
    bare = {answer.name: answer for answer in answers(offered_deflate=False, offered_client_window=False)}
    assert bare["permessage-deflate with server_max_window_bits=7"].section == "4.1"


def test_answer_render_puts_the_accept_value_and_cuts() -> None:
    key = b"dGhlIHNhbXBsZSBub25jZQ=="
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in VALID_ANSWER.render(key)
    cut = next(answer for answer in answers(False, False) if answer.cut is not None)
    assert cut.render(key) == VALID_ANSWER.head[: cut.cut]
    assert not cut.render(key).endswith(b"\r\n\r\n")


# ------------------------------------------------------------------ the cases


def test_server_frames_turn_the_masks_around() -> None:
    key = b"\x01\x02\x03\x04"
    flipped = server_frames(Case((CraftedFrame(Opcode.TEXT, b"a", mask=key), CraftedFrame(Opcode.BINARY, b"b")), (3,)))
    assert [frame.mask for frame in flipped.frames] == [None, b"\x37\xfa\x21\x3d"]
    assert flipped.cuts == (3,)


def test_catalogue_cases_end_as_the_oracle_says() -> None:
    outcomes = {title: frame_case(title, frames, hangup)[1] for title, frames, hangup in catalogue()}
    assert outcomes["a Close in the middle of a message"].outcome == "close"
    assert outcomes["a Close in the middle of a message"].messages == []
    assert outcomes["a masked frame"].code == 1002
    assert outcomes["invalid UTF-8 ff split after byte 1"].code == 1007
    split = outcomes["UTF-8 split across fragments at every byte"]
    assert split.outcome == "close" and len(split.messages) == len("a\u20ac\U0001d11eb".encode()) - 1
    # Every case ends: with a Close from the server, a violation, or a hang-up.
    for (title, _, hangup), expectation in zip(catalogue(), outcomes.values(), strict=True):
        assert hangup or expectation.outcome in {"close", "violation"}, title
    hangup = frame_case("TCP close without a Close", [CraftedFrame(Opcode.TEXT, b"x")], hangup=True)[0]
    assert hangup.frames.closing is None and hangup.frames.data() == b"\x81\x01x"


# ------------------------------------------------------------------ the judge


def outcome(answer_name: str | None = None, **reaction: object) -> Outcome:
    answer = VALID_ANSWER if answer_name is None else next(a for a in answers(False, False) if a.name == answer_name)
    probe = Case(PROBE_FRAMES)
    expectation = Expectation(probe, outcome="refused")
    return Outcome(ClientCase(answer.name, answer, probe), expectation, reaction=Reaction(**reaction))  # type: ignore[arg-type]


def judged(result: Outcome, *, check_exit: bool = True) -> dict[str, str]:
    return {finding.kind: finding.severity for finding in judge_outcome(result, echo=True, check_exit=check_exit)}


def test_refused_handshake_judged_by_what_the_client_sends() -> None:
    wrong = "wrong Sec-WebSocket-Accept"
    assert judged(outcome(wrong, ending="eof")) == {}
    assert judged(outcome(wrong, ending="eof", pongs=[b"probe"])) == {f"bad handshake accepted: {wrong}": VIOLATION}
    assert judged(outcome(wrong, ending="close", code=1002)) == {
        f"Close frame after a refused handshake: {wrong}": WARNING
    }
    assert judged(outcome(wrong, ending="timeout")) == {f"bad handshake not refused: {wrong}": VIOLATION}
    # A plain HTTP answer says Connection: close, but an open socket is no WebSocket violation.
    assert judged(outcome("403 with a body", ending="timeout")) == {}


def test_exit_status_judged_by_the_convention() -> None:
    refused = outcome("no Upgrade header", ending="eof")
    refused.exit_status = 0
    assert judged(refused) == {"exit status 0 after a failed connection": WARNING}
    assert judged(refused, check_exit=False) == {}
    refused.exit_status = 1
    assert judged(refused) == {}
    refused.exit_status = "hung"
    assert judged(refused) == {"client neither exited nor connected again": WARNING}
    refused.exit_status = "reconnected"
    assert judged(refused) == {}
    case, expectation = frame_case("a text message", [CraftedFrame(Opcode.TEXT, b"x")])
    clean = Outcome(case, expectation, reaction=Reaction(messages=[(1, b"x")], ending="close", code=1000))
    clean.exit_status = 1
    assert judged(clean) == {"non-zero exit status after a normal closure": WARNING}
    clean.exit_status = 0
    assert judged(clean) == {}


def test_valid_answer_refused_and_hangup() -> None:
    keep_alive = next(answer for answer in answers(False, False) if "keep-alive, Upgrade" in answer.name)
    case, expectation = frame_case("x", [CraftedFrame(Opcode.TEXT, b"x")])
    refused = Outcome(dataclasses.replace(case, answer=keep_alive), expectation, reaction=Reaction(ending="eof"))
    assert judged(refused) == {f"valid handshake answer refused: {keep_alive.name}": VIOLATION}
    case, expectation = frame_case("hang-up", [CraftedFrame(Opcode.TEXT, b"x")], hangup=True)
    assert judged(Outcome(case, expectation, reaction=Reaction(ending="timeout"))) == {
        "connection left open after the server closed TCP": WARNING
    }
    assert judged(Outcome(case, expectation, reaction=Reaction(ending="eof"))) == {}


# ------------------------------------------------------------------ campaigns


def campaign(command: str, examples: int = 0, **options: object) -> list[tuple[Finding, ClientCase]]:
    found, outcomes = fuzz_client(ClientFuzzOptions(command, examples=examples, seed=3, timeout=5.0, **options))  # type: ignore[arg-type]
    assert len(outcomes) >= len(catalogue()) + len(answers(False, False)) + examples
    return found


def test_our_client_has_no_finding() -> None:
    # connect --echo runs once per case: its exit status is judged too.
    command = shlex.join([*COMMAND, "connect", "--echo", "{url}"])
    assert campaign(command, examples=5) == []


def test_broken_client_planted_violations_found_with_minimal_bytes() -> None:
    found = kinds(campaign(client_command("broken", "--reconnect")))
    ping = found["Ping not answered"]
    assert ping.case.data() == bytes.fromhex("8900 8802 03e8")
    for answer in answers(False, False):
        if not answer.accept and answer.switches and answer.cut is None:
            assert found[f"bad handshake accepted: {answer.name}"].case.data() == PROBE
    # Of the violations in the catalogue, the smallest: the first frame of a fragmented Ping.
    assert found["data frame after a violation"].case.data() == bytes.fromhex("09 01 78")
    assert {finding.severity for finding in found.values()} == {VIOLATION}


def test_broken_client_found_by_generated_cases_too() -> None:
    found = kinds(campaign(client_command("broken", "--reconnect"), examples=15))
    assert {"Ping not answered", "data frame after a violation"} <= set(found)
    assert len(found["data frame after a violation"].case.data()) <= 3


def test_websockets_client() -> None:
    found = kinds(campaign(client_command("websockets", "--reconnect")))
    assert not [kind for kind, finding in found.items() if finding.severity == VIOLATION]


def test_aiohttp_client() -> None:
    found = kinds(campaign(client_command("aiohttp", "--reconnect")))
    assert {
        "bad handshake accepted: a subprotocol that was not offered",
        "valid handshake answer refused: 101 with Connection: keep-alive, Upgrade",
        "violation not detected: Masked frame from the server",
    } <= {kind for kind, finding in found.items() if finding.severity == VIOLATION}


def test_websocket_client() -> None:
    found = kinds(campaign(client_command("websocket-client", "--reconnect")))
    assert {
        "bad handshake accepted: an extension that was not offered",
        "violation not detected: Masked frame from the server",
    } <= {kind for kind, finding in found.items() if finding.severity == VIOLATION}


@pytest.mark.parametrize("kind", ["websockets", "aiohttp", "websocket-client", "broken"])
def test_reconnecting_client_exits_when_the_campaign_listener_is_gone(kind: str) -> None:
    # A reconnecting client that missed the refusal (aiohttp wraps it in its
    # own error) used to retry at full speed forever after its campaign ended.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run(
        [sys.executable, str(CLIENTS), kind, f"ws://127.0.0.1:{port}/", "--reconnect"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")


# ------------------------------------------------------------------ the command


def test_command_reports_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    command = client_command("broken", "--reconnect")
    assert main(["fuzz", "--client", command, "--examples", "1", "--seed", "2", "--timeout", "5"]) == 1
    out = capsys.readouterr().out
    assert f"* fuzzing the client {command!r} (echo client), 1 examples, --seed 2" in out
    assert "violation: Ping not answered (RFC 6455 section 5.5.2)" in out
    assert "    case: an empty Ping\n" in out
    assert "      89 00 88 02 03 e8" in out
    assert "    handshake answer (wrong Sec-WebSocket-Accept):" in out
    assert "cases, " in out  # the progress lines


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--client", "python client.py"], "--client needs {url}"),
        (["ws://127.0.0.1:1/", "--client", "x {url}"], "either a URL"),
        ([], "fuzz needs a URL"),
        (["--client", "x '{url}"], "--client: No closing quotation"),
    ],
)
def test_command_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fuzz", *argv]) == 2
    assert message in capsys.readouterr().err


def test_client_that_never_connects(capsys: pytest.CaptureFixture[str]) -> None:
    command = shlex.join([sys.executable, "-c", "import sys; sys.exit(3)", "{url}"])
    assert main(["fuzz", "--client", command, "--examples", "1"]) == 2
    assert "the client exited with status 3 without connecting" in capsys.readouterr().err
