"""``python -m wsproto_core fuzz``: the oracle, the judge, and runs against real servers.

The oracle (:func:`expect`) and the judge (:func:`judge`) are pure functions,
tested on hand-made cases and reactions. Then the fuzzer runs against our own
asyncio server, a ``websockets`` and an aiohttp echo server, and a deliberately
broken server, each on 127.0.0.1 port 0 and stopped by its test; the seeds are
fixed so that what must be found is found, and shrunk the same way, every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
import trustme
import websockets.asyncio.server
from aiohttp import WSMsgType, web
from cli_process import COMMAND
from hypothesis import find, given
from hypothesis import strategies as st

from wsproto_core import WSConnection
from wsproto_core.cli import build_parser, main
from wsproto_core.cli.fuzz import (
    Case,
    Expectation,
    Finding,
    FuzzOptions,
    Reaction,
    Unreachable,
    accepted_codes,
    cases,
    expect,
    format_finding,
    frame_spans,
    fuzz,
    judge,
    probe,
)
from wsproto_core.connection import ConnectionType
from wsproto_core.crafting import CraftedFrame, LengthEncoding, close_frame, fragment
from wsproto_core.drivers import HttpResponse, parse_url
from wsproto_core.drivers.asyncio import WebSocket, serve
from wsproto_core.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Request,
    TextMessage,
)
from wsproto_core.frames import Opcode
from wsproto_core.permessage_deflate import DeflateParameters

T = TypeVar("T")
KEY = b"\x00\x00\x00\x00"
CLOSE_1000 = close_frame(1000, mask=KEY)
TEXT, BINARY = int(Opcode.TEXT), int(Opcode.BINARY)


def run(test: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await test()

    return asyncio.run(main())


def kinds(findings: list[Finding]) -> set[str]:
    return {finding.kind for finding in findings}


# ------------------------------------------------------------------ frame_spans


def test_frame_spans_follow_length_fields() -> None:
    data = CraftedFrame(Opcode.TEXT, b"abc", mask=KEY).to_bytes() + CraftedFrame(Opcode.PING, b"").to_bytes()
    assert frame_spans(data) == [(0, 9, True), (9, 11, True)]
    # A 16-bit length promising 300 bytes, 3 written; a lone first byte counts its missing header as zeros.
    promised = CraftedFrame(
        Opcode.BINARY, b"abc", fin=False, length_encoding=LengthEncoding.BITS_16, declared_length=300
    )
    assert frame_spans(promised.to_bytes()) == [(0, 304, False)]
    assert frame_spans(b"\x89") == [(0, 2, True)]
    assert frame_spans(b"") == []


# ------------------------------------------------------------------ the oracle


def test_expect_adds_a_close_and_lists_what_is_due() -> None:
    frames = [
        CraftedFrame(Opcode.TEXT, b"h\xc3", fin=False, mask=KEY),
        CraftedFrame(Opcode.PING, b"p", mask=KEY),
        CraftedFrame(Opcode.CONTINUATION, b"\xa9", mask=KEY),
        CraftedFrame(Opcode.BINARY, b"\x00", mask=KEY),
    ]
    expectation = expect(frames, (3,))
    assert expectation.outcome == "close"
    assert expectation.messages == [(TEXT, "hé".encode()), (BINARY, b"\x00")]
    assert expectation.pings == [b"p"]
    assert expectation.case == Case(tuple(frames), (3,), closing=CLOSE_1000)


def test_expect_cuts_after_the_violation() -> None:
    frames = [
        CraftedFrame(Opcode.BINARY, b"ok", mask=KEY),
        CraftedFrame(Opcode.TEXT, b"\xff", mask=KEY),
        CraftedFrame(Opcode.BINARY, b"never", mask=KEY),
    ]
    expectation = expect(frames)
    assert (expectation.outcome, expectation.code) == ("violation", 1007)
    assert expectation.case.frames == tuple(frames[:2])
    assert expectation.case.closing is None
    assert expectation.messages == [(BINARY, b"ok")]


def test_expect_with_the_clients_close() -> None:
    frames = [close_frame(1001, b"bye", mask=KEY), CraftedFrame(Opcode.TEXT, b"late", mask=KEY)]
    expectation = expect(frames)
    assert (expectation.outcome, expectation.code) == ("close", 1001)
    assert expectation.case.frames == (frames[0],)


def test_expect_completes_an_unfinished_frame_with_zeros() -> None:
    """A length field that promises 5 bytes more: they are added, then the Close is read as a frame."""
    frame = CraftedFrame(Opcode.BINARY, b"ab", mask=KEY, declared_length=7)
    expectation = expect([frame])
    assert expectation.case.padding == 5
    assert expectation.case.closing == CLOSE_1000
    assert expectation.outcome == "close"
    assert expectation.messages == [(BINARY, b"ab" + bytes(5))]


def test_expect_completes_the_frame_that_broke_the_rules() -> None:
    """A reserved opcode whose payload is not all there yet: the server gets the whole frame."""
    frame = CraftedFrame(3, b"", mask=KEY, declared_length=10)
    expectation = expect([frame])
    assert expectation.outcome == "violation"
    assert expectation.case.padding == 10
    assert expectation.complete


def test_expect_leaves_an_impossible_length_unfinished() -> None:
    frame = CraftedFrame(Opcode.BINARY, b"", mask=KEY, length_encoding=LengthEncoding.BITS_64, declared_length=1 << 63)
    expectation = expect([frame])
    assert (expectation.outcome, expectation.code) == ("violation", 1002)
    assert expectation.case.padding == 0
    assert not expectation.complete


def test_expect_open_when_the_close_is_swallowed() -> None:
    """More than the padding limit is promised: the added Close becomes payload, nothing is due."""
    frame = CraftedFrame(Opcode.BINARY, b"", mask=KEY, declared_length=100_000)
    expectation = expect([frame])
    assert expectation.outcome == "open"
    assert expectation.case.padding == 0


# ------------------------------------------------------------------ the judge


def expectation(outcome: str, **fields: Any) -> Expectation:
    return Expectation(Case((CraftedFrame(Opcode.PING, b"", mask=KEY),)), outcome, **fields)


def test_a_correct_reaction_has_no_finding() -> None:
    due = expectation("close", code=1000, messages=[(TEXT, b"a")], pings=[b"1", b"2"])
    # Section 5.5.3: answering only the most recent Ping is enough.
    assert judge(due, Reaction(messages=[(TEXT, b"a")], pongs=[b"2"], ending="close", code=1000)) == []


@pytest.mark.parametrize(
    ("due", "reaction", "kind", "severity"),
    [
        (
            expectation("close", pings=[b"1"]),
            Reaction(ending="close", code=1000),
            "Ping not answered",
            "violation",
        ),
        (
            expectation("close", pings=[b"1"]),
            Reaction(pongs=[b"2"], ending="close", code=1000),
            "Pong payload differs from the Ping's",
            "violation",
        ),
        (
            expectation("close", messages=[(TEXT, b"a")]),
            Reaction(messages=[(BINARY, b"a")], ending="close", code=1000),
            "echoed message differs",
            "violation",
        ),
        (
            expectation("close", messages=[(TEXT, b"a")]),
            Reaction(ending="close", code=1000),
            "message not echoed before the Close reply",
            "warning",
        ),
        (
            expectation("close"),
            Reaction(messages=[(TEXT, b"?")], ending="close", code=1000),
            "message that was never sent",
            "violation",
        ),
        (expectation("close"), Reaction(ending="eof"), "Close not answered", "violation"),
        (expectation("close"), Reaction(ending="timeout"), "Close not answered", "violation"),
        (
            expectation("violation", code=1002, reason="Reserved data opcode 0x3"),
            Reaction(messages=[(TEXT, b"x")], ending="close", code=1002),
            "data frame after a violation",
            "violation",
        ),
        (
            expectation("violation", code=1002, reason="Reserved data opcode 0x3"),
            Reaction(ending="timeout"),
            "violation not detected: Reserved data opcode 0x3",
            "violation",
        ),
        (
            expectation("violation", code=1002, reason="Reserved data opcode 0x3"),
            Reaction(ending="eof"),
            "connection failed without a Close frame",
            "warning",
        ),
        (
            expectation("violation", code=1002, reason="Reserved data opcode 0x3"),
            Reaction(ending="close", code=1000),
            "wrong close code: Reserved data opcode 0x3",
            "warning",
        ),
        (
            expectation("violation", code=1007, reason="Text message is not valid UTF-8", fin=False),
            Reaction(ending="timeout"),
            "invalid UTF-8 in an unfinished message not detected (no fail-fast)",
            "warning",
        ),
        (
            expectation("violation", code=1002, reason="Reserved data opcode 0x3", complete=False),
            Reaction(ending="timeout"),
            "violation in an unfinished frame not detected",
            "warning",
        ),
        (
            expectation("close"),
            Reaction(ending="invalid", invalid="Masked frame from the server"),
            "invalid frame from the server: Masked frame from the server",
            "violation",
        ),
    ],
)
def test_judge_findings(due: Expectation, reaction: Reaction, kind: str, severity: str) -> None:
    found = judge(due, reaction)
    assert [(finding.kind, finding.severity) for finding in found] == [(kind, severity)]
    assert found[0].case is due.case


def test_unsolicited_pongs_are_allowed() -> None:
    """Section 5.5.3: a Pong may be sent unsolicited, as a heartbeat."""
    assert judge(expectation("close"), Reaction(pongs=[b"beat"], ending="close", code=1000)) == []


def test_no_echo_checks_only_the_protocol() -> None:
    due = expectation("close", messages=[(TEXT, b"a")], pings=[b"1"])
    reaction = Reaction(messages=[(BINARY, b"other")], pongs=[b"1"], ending="close", code=1000)
    assert judge(due, reaction, echo=False) == []
    assert kinds(judge(due, dataclass_copy(reaction, pongs=[]), echo=False)) == {"Ping not answered"}


def dataclass_copy(reaction: Reaction, **changes: Any) -> Reaction:
    import dataclasses  # noqa: PLC0415

    return dataclasses.replace(reaction, **changes)


@pytest.mark.parametrize(
    ("code", "reason", "accepted"),
    [
        (1002, "Reserved data opcode 0x3", {1002}),
        (1007, "Text message is not valid UTF-8", {1002, 1007}),
        (1009, "Message of at least 10 bytes exceeds max_message_size=5", {1008, 1009}),
        (1002, "Close frame with invalid close code 1006", {1002, 1007}),
        (1002, "Frame length with the most significant bit set", {1002, 1009}),
    ],
)
def test_accepted_codes(code: int, reason: str, accepted: set[int]) -> None:
    assert accepted_codes(code, reason) == accepted
    for answer in accepted:
        assert judge(expectation("violation", code=code, reason=reason), Reaction(ending="close", code=answer)) == []


def test_format_finding() -> None:
    case = Case((CraftedFrame(Opcode.PING, b"", mask=KEY),), (3,), padding=2, closing=CLOSE_1000)
    finding = Finding("Ping not answered", "violation", "5.5.2", "a Pong", "none", case)
    text = format_finding(1, finding)
    assert text.splitlines() == [
        "[1] violation: Ping not answered (RFC 6455 section 5.5.2)",
        "    expected: a Pong",
        "    observed: none",
        "    minimal input (16 bytes in 2 write(s)):",
        "      89 80 00 00 00 00 00 00 88 82 00 00 00 00 03 e8",
        "    writes: 3 | 13 bytes",
        "    frames:",
        "      PING fin mask=00000000 len=0 b''",
        "      + 2 zero bytes: the rest of the frame the receiver is reading",
        "      CLOSE fin mask=00000000 len=2 b'\\x03\\xe8'  (added: ends the sequence)",
    ]


# ------------------------------------------------------------------ servers


async def our_echo(websocket: WebSocket) -> None:
    async for message in websocket:
        await websocket.send(message)


@contextlib.asynccontextmanager
async def our_server(**options: Any) -> AsyncIterator[str]:
    server = await serve(our_echo, "127.0.0.1", 0, **({"ping_interval": None} | options))
    try:
        yield f"ws://127.0.0.1:{server.port}/"
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def websockets_server() -> AsyncIterator[str]:
    async def echo(connection: Any) -> None:
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            async for message in connection:
                await connection.send(message)

    options: dict[str, Any] = {"compression": None, "ping_interval": None}
    async with websockets.asyncio.server.serve(echo, "127.0.0.1", 0, **options) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


@contextlib.asynccontextmanager
async def aiohttp_server() -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str(message.data)
            elif message.type == WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"ws://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def broken_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An echo server with two bugs: no Pong (RFC 6455 5.5.2), and data sent after failing on invalid UTF-8."""
    ws = WSConnection(ConnectionType.SERVER)
    pieces: list[Any] = []
    try:
        while True:
            data = await reader.read(65536)
            ws.receive_data(data or None)
            for event in ws.events():
                if isinstance(event, Request):
                    writer.write(ws.send(AcceptConnection()))
                elif isinstance(event, Message):
                    pieces.append(event.data)
                    if event.message_finished:
                        if isinstance(event, TextMessage):
                            writer.write(ws.send(TextMessage("".join(pieces))))
                        else:
                            writer.write(ws.send(BytesMessage(b"".join(pieces))))
                        pieces.clear()
                elif isinstance(event, Ping):
                    pass  # the first bug
                elif isinstance(event, CloseConnection):
                    if event.code == 1006:
                        return  # the transport closed first: nothing to answer
                    failure = ws.connection.failure if ws.connection else None
                    if failure is not None and failure.code == 1007:
                        writer.write(b"\x81\x03" + "\ufffd".encode())  # the second bug
                    writer.write(ws.send(event.response()))
                    await writer.drain()
                    return
            if not data:
                return
            await writer.drain()
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def broken_server() -> AsyncIterator[str]:
    server = await asyncio.start_server(broken_client, "127.0.0.1", 0)
    try:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    finally:
        server.close()
        await server.wait_closed()


def fuzz_against(
    server: Callable[[], contextlib.AbstractAsyncContextManager[str]], **options: Any
) -> tuple[list[Finding], int]:
    if options.pop("no_echo", False):
        options["echo"] = False
    settings = FuzzOptions(**({"examples": 80, "seed": 3, "timeout": 0.5, "budget": 40.0} | options))

    async def test() -> tuple[list[Finding], int]:
        async with server() as url:
            return await asyncio.to_thread(fuzz, url, settings)

    return run(test)


def test_our_server_has_no_finding() -> None:
    # A long timeout costs nothing here (our server never leaves one to expire) and keeps a busy machine from
    # turning a slow reply into a finding.
    findings, runs = fuzz_against(our_server, examples=150, max_frames=10, timeout=3.0)
    assert findings == []
    assert runs >= 150


def probe_case(
    server: Callable[[], contextlib.AbstractAsyncContextManager[str]], frames: list[CraftedFrame], **options: Any
) -> list[Finding]:
    """Send one hand-made sequence and judge the reaction: no generation involved."""
    settings = FuzzOptions(**({"timeout": 0.5} | options))

    async def test() -> list[Finding]:
        async with server() as url:
            expectation = expect(frames, max_message_size=settings.max_message_size)
            reaction = await asyncio.to_thread(probe, parse_url(url), expectation.case, settings, settings.timeout)
            return judge(expectation, reaction, echo=settings.echo)

    return run(test)


def test_message_size_limit() -> None:
    """With the server's limit given, messages over it must fail with 1009; a server with a higher limit does not."""
    findings, _ = fuzz_against(lambda: our_server(max_message_size=100), examples=30, max_message_size=100)
    assert findings == []
    # The generator makes messages just over the limit...
    # (A Close frame carrying code 1009 is also answered with 1009: only data frames are sought here.)
    too_big = find(
        cases(8, max_message_size=100),
        lambda case: (
            all(frame.opcode != Opcode.CLOSE for frame in case.frames)
            and expect(case.frames, max_message_size=100).code == 1009
        ),
    )
    assert 100 < sum(len(frame.payload) for frame in too_big.frames) <= 116
    # ...and a server that lets one through is caught.
    frames = [CraftedFrame(Opcode.BINARY, bytes(101), mask=KEY)]
    assert probe_case(lambda: our_server(max_message_size=100), frames, max_message_size=100) == []
    findings = probe_case(lambda: our_server(max_message_size=200), frames, timeout=0.2, max_message_size=100)
    assert [(finding.key, finding.severity) for finding in findings] == [
        ("data frame after a violation", "violation"),  # the echo of the message that should have failed
        ("violation not detected: Message of at least N bytes exceeds max_message_size=N", "violation"),
    ]


def test_websockets_server_only_warnings() -> None:
    """websockets answers a Close before echoing a message that came with it (section 5.5.1 allows it)."""
    findings, _ = fuzz_against(websockets_server, timeout=0.5)
    assert [finding for finding in findings if finding.severity == "violation"] == []
    assert kinds(findings) <= {
        "message not echoed before the Close reply",
        "invalid UTF-8 in an unfinished message not detected (no fail-fast)",
    }


AIOHTTP_FINDINGS = {
    # RFC 6455 5.1: the MASK bit is not checked, so an unmasked frame is echoed.
    "violation not detected: Unmasked frame from the client",
    "data frame after a violation",
    # Section 8.1, late: text is decoded once the message is whole.
    "invalid UTF-8 in an unfinished message not detected (no fail-fast)",
    # Section 7.4: close codes 1006 and 5000 and above are taken for normal ones.
    "wrong close code: Close frame with invalid close code N",
}


def test_aiohttp_server() -> None:
    """What the fuzzer finds in aiohttp is what docs/reference/fuzzing.md lists, and nothing else."""
    findings, _ = fuzz_against(aiohttp_server, timeout=0.3, examples=60, seed=2)
    assert {finding.key for finding in findings} <= AIOHTTP_FINDINGS
    # The first of them, shown directly: an empty unmasked binary frame comes back.
    unmasked = probe_case(aiohttp_server, [CraftedFrame(Opcode.BINARY, b"")], timeout=0.3)
    assert [(finding.kind, finding.severity, finding.case.data()) for finding in unmasked] == [
        ("data frame after a violation", "violation", b"\x82\x00"),
        ("violation not detected: Unmasked frame from the client", "violation", b"\x82\x00"),
    ]


def test_broken_server_findings_are_shrunk() -> None:
    findings, _ = fuzz_against(broken_server, examples=200)
    by_kind = {finding.kind: finding for finding in findings}
    assert set(by_kind) == {"Ping not answered", "data frame after a violation"}
    ping = by_kind["Ping not answered"]
    assert ping.case.data().hex(" ") == "89 80 00 00 00 00 88 82 00 00 00 00 03 e8"
    assert (ping.expected, ping.section) == ("a Pong b'' before the Close reply", "5.5.2")
    garbage = by_kind["data frame after a violation"]
    # Shrunk to one small frame with invalid UTF-8: a text message (81 81 00 00 00 00 ff) or a
    # close reason, whichever the run met first; either way what the server echoed was garbage.
    assert len(garbage.case.data()) <= 9
    assert len(garbage.case.frames) == 1
    assert expect(garbage.case.frames).code == 1007
    assert garbage.observed == "message text b'\\xef\\xbf\\xbd'"


# ------------------------------------------------------------------ the command


def test_command_reports_violations_with_exit_1() -> None:
    async def test() -> tuple[int, str, str]:
        async with broken_server() as url:
            process = await asyncio.create_subprocess_exec(
                *COMMAND, "fuzz", url, "--examples", "100", "--seed", "3", "--timeout", "0.5", "-v",
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )  # fmt: skip
            stdout, stderr = await process.communicate()
            assert process.returncode is not None
            return process.returncode, stdout.decode(), stderr.decode()

    code, stdout, stderr = run(test)
    assert (code, stderr) == (1, "")
    assert "* found: Ping not answered" in stdout
    assert "violation: Ping not answered (RFC 6455 section 5.5.2)" in stdout
    assert "      89 80 00 00 00 00 88 82 00 00 00 00 03 e8" in stdout


def test_command_exit_0_without_violations(capsys: pytest.CaptureFixture[str]) -> None:
    async def test() -> int:
        async with our_server() as url:
            return await asyncio.to_thread(main, ["fuzz", url, "--examples", "20", "--seed", "1"])

    assert run(test) == 0
    out = capsys.readouterr().out
    assert "0 violation(s), 0 warning(s)" in out


def test_command_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fuzz", "http://example.com/"]) == 2
    assert "is not a WebSocket URL" in capsys.readouterr().err
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert main(["fuzz", f"ws://127.0.0.1:{port}/", "--timeout", "1"]) == 2
    assert "cannot connect" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fuzz", "ws://x/", "--examples", "0"])


def test_command_without_hypothesis(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    assert main(["fuzz", "ws://127.0.0.1:1/"]) == 2
    assert "pip install 'wsproto_core[compliance]'" in capsys.readouterr().err


def test_fuzz_over_tls(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))

    async def test() -> tuple[str, list[Finding], int]:
        server = await serve(our_echo, "127.0.0.1", 0, ssl=server_context, ping_interval=None)
        try:
            url = f"wss://127.0.0.1:{server.port}/"
            options = FuzzOptions(examples=15, seed=1, timeout=1.0)
            # The system's trust store does not know the throwaway CA.
            with pytest.raises(Unreachable) as refused:
                await asyncio.to_thread(fuzz, url, options)
            monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
            return (str(refused.value), *await asyncio.to_thread(fuzz, url, options))
        finally:
            await server.close()

    refused, findings, runs = run(test)
    assert "CERTIFICATE_VERIFY_FAILED" in refused
    assert (findings, runs) == ([], 15)


# ------------------------------------------------------------------ servers that misbehave


@contextlib.asynccontextmanager
async def raw_server(
    on_client: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    try:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    finally:
        server.close()
        await server.wait_closed()


def test_server_that_stops_listening() -> None:
    """The first connections work, then the listening socket closes: reported, with the last sequence sent."""
    connections = 0
    holder: list[asyncio.Server] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections == 3:
            holder[0].close()
        await broken_client(reader, writer)

    async def test() -> tuple[list[Finding], int]:
        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        holder.append(server)
        try:
            url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
            return await asyncio.to_thread(fuzz, url, FuzzOptions(examples=10, seed=1, timeout=0.5))
        finally:
            server.close()
            await server.wait_closed()

    findings, runs = run(test)
    assert runs == 2  # the first connection was the check that the server answers
    stopped = [finding for finding in findings if finding.kind == "server stopped accepting connections"]
    assert len(stopped) == 1
    assert "cannot connect" in stopped[0].observed
    assert stopped[0].case.frames  # the sequence sent just before
    assert "(availability)" in format_finding(1, stopped[0])


def test_server_that_resets_the_connection() -> None:
    """A TCP reset instead of a Close reply reads as the end of the stream."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        while True:
            data = await reader.read(65536)
            ws.receive_data(data or None)
            for event in ws.events():
                if isinstance(event, Request):
                    writer.write(ws.send(AcceptConnection()))
                    await writer.drain()
                elif isinstance(event, CloseConnection):
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    writer.transport.abort()
                    return
            if not data:
                return

    findings, _ = fuzz_against(lambda: raw_server(on_client), examples=5, timeout=0.2, no_echo=True)
    assert "Close not answered" in kinds(findings)
    assert {finding.observed for finding in findings if finding.kind == "Close not answered"} == {
        "TCP closed without a Close frame"
    }


@pytest.mark.parametrize(
    ("respond", "message"),
    [
        (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "rejected the handshake with HTTP 404"),
        (b"", "opening handshake failed: The server closed the connection during the WebSocket handshake"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "opening handshake failed: "),
    ],
)
def test_handshake_failures(respond: bytes, message: str) -> None:
    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(respond)
        await writer.drain()
        writer.close()

    async def test() -> str:
        async with raw_server(on_client) as url:
            with pytest.raises(Unreachable) as failed:
                await asyncio.to_thread(fuzz, url, FuzzOptions(examples=1, timeout=1.0))
            return str(failed.value)

    assert message in run(test)


def test_fuzzer_bugs_are_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    import wsproto_core.cli.fuzz as module  # noqa: PLC0415

    def broken_judge(*args: Any, **kwargs: Any) -> list[Finding]:
        raise RuntimeError("a bug in the fuzzer")

    monkeypatch.setattr(module, "judge", broken_judge)
    with pytest.raises(RuntimeError, match="a bug in the fuzzer"):
        fuzz_against(our_server, examples=3)


def test_command_headers_subprotocols_and_seed(capsys: pytest.CaptureFixture[str]) -> None:
    """A server that wants an Origin and a subprotocol; the seed drawn is printed to repeat the run."""
    seen: list[str | None] = []

    def check_origin(target: str, headers: list[tuple[bytes, bytes]]) -> HttpResponse | None:
        if (b"origin", b"https://allowed.example") not in [(name.lower(), value) for name, value in headers]:
            return HttpResponse(403, [], b"")
        return None

    async def handler(websocket: WebSocket) -> None:
        seen.append(websocket.subprotocol)
        await our_echo(websocket)

    async def test() -> tuple[int, int]:
        server = await serve(handler, "127.0.0.1", 0, process_request=check_origin, subprotocols=["chat"])
        try:
            url = f"ws://127.0.0.1:{server.port}/"
            refused = await asyncio.to_thread(main, ["fuzz", url, "--examples", "3"])
            accepted = await asyncio.to_thread(
                main,
                [
                    "fuzz",
                    url,
                    "--examples",
                    "3",
                    "--header",
                    "Origin: https://allowed.example",
                    "--subprotocol",
                    "chat",
                ],
            )
            return refused, accepted
        finally:
            await server.close()

    assert run(test) == (2, 0)
    captured = capsys.readouterr()
    assert "error: the server rejected the handshake with HTTP 403" in captured.err
    seeds = re.findall(r"examples, --seed (\d+)", captured.out)
    assert len(seeds) == 2
    assert seen and set(seen) == {"chat"}


def test_command_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["fuzz", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for option in ("--examples", "--seed", "--timeout", "--max-frames", "--budget", "--no-echo", "--max-message-size"):
        assert option in out


# ------------------------------------------------------------------ permessage-deflate

NEGOTIATED = DeflateParameters(
    server_no_context_takeover=False,
    client_no_context_takeover=False,
    server_max_window_bits=15,
    client_max_window_bits=12,
)


def test_compress_messages_in_order_with_context_takeover() -> None:
    ping = CraftedFrame(Opcode.PING, b"p", mask=KEY)
    frames = [
        CraftedFrame(Opcode.TEXT, b"hello hello hello", mask=KEY),
        *fragment(Opcode.BINARY, b"abcabcabc", [3], mask=KEY, interleave={0: [ping]}),
        CraftedFrame(Opcode.TEXT, b"hello hello hello", mask=KEY),
        CraftedFrame(Opcode.BINARY, b"as is", rsv=2, mask=KEY),  # a violation stays as generated
    ]
    expectation = expect(frames, deflate=NEGOTIATED)
    sent = expectation.case.frames
    assert [frame.rsv for frame in sent] == [4, 4, 0, 0, 4, 2]
    assert sent[2] == ping and sent[5] == frames[5]
    # The second "hello hello hello" refers back to the first: shorter.
    assert len(sent[4].payload) < len(sent[0].payload) < 17
    assert (expectation.outcome, expectation.code) == ("violation", 1002)
    assert expectation.messages == [(TEXT, b"hello hello hello"), (BINARY, b"abcabcabc"), (TEXT, b"hello hello hello")]
    assert expectation.pings == [b"p"]


@given(
    messages=st.lists(
        st.tuples(st.booleans(), st.text(max_size=40), st.lists(st.integers(0, 10), max_size=2)), max_size=4
    ),
    no_context_takeover=st.booleans(),
)
def test_compressed_messages_reach_the_oracle_intact(
    messages: list[tuple[bool, str, list[int]]], no_context_takeover: bool
) -> None:
    negotiated = NEGOTIATED._replace(client_no_context_takeover=no_context_takeover)
    frames = [
        frame
        for binary, text, sizes in messages
        for frame in fragment(Opcode.BINARY if binary else Opcode.TEXT, text.encode(), sizes, mask=KEY)
    ]
    expectation = expect(frames, deflate=negotiated)
    assert expectation.outcome == "close"
    assert expectation.messages == [(BINARY if binary else TEXT, text.encode()) for binary, text, _ in messages]


def test_deflate_against_our_server() -> None:
    findings, runs = fuzz_against(our_server, examples=60, deflate=True)
    assert (findings, runs) == ([], 60)


def test_deflate_declined() -> None:
    async def test() -> str:
        async with our_server(compression=False) as url:
            with pytest.raises(Unreachable) as declined:
                await asyncio.to_thread(fuzz, url, FuzzOptions(examples=1, deflate=True))
            return str(declined.value)

    assert run(test) == "the server declined permessage-deflate (--deflate)"
