"""Run the Autobahn|Testsuite cases against wsproto_core's asyncio driver, as a server and as a client.

Usage (from the repository root, with the project's virtual environment)::

    .venv/bin/pip install -e '.[autobahn]'
    .venv/bin/python .ci/autobahn.py [--role server|client|both] [--cases GLOB]... [--concurrency N]

kosoku (a Python 3 runner of Autobahn's own case files) plays the other side:

- server role: an echo server built on ``wsproto_core.drivers.asyncio.serve`` listens on an
  ephemeral port of 127.0.0.1 and kosoku, in fuzzingclient mode, runs the cases against it;
- client role: kosoku, in fuzzingserver mode, listens on an ephemeral port and an echo client
  built on ``wsproto_core.drivers.asyncio.connect`` fetches ``/getCaseCount``, runs
  ``/runCase?case=N&agent=wsproto_core`` for every case, then ``/updateReports``.

``--concurrency`` (default 2) cases run at a time in each role: kosoku's own parallelism in the
server role, that many connections of the echo client in the client role.

Both testees offer/accept permessage-deflate and have keepalive pings turned off (a keepalive Ping
sent during a 12.x case makes kosoku fail it). Each testee runs in its own process, so that it
does not share an event loop (or the GIL) with kosoku and its timings are its own.

Reports (Autobahn's JSON and HTML) go to ``reports/autobahn/server/`` and
``reports/autobahn/client/``, and a Markdown summary to ``reports/autobahn/summary.md``. A case
passes when its ``behavior`` and its ``behaviorClose`` are both OK, NON-STRICT or INFORMATIONAL;
UNIMPLEMENTED counts as a failure. Exit status: 0 when every case passed, 1 when a case failed,
2 when the harness itself could not run (a testee crashed, no case selected, a timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsproto_core.drivers import ConnectionClosed
from wsproto_core.drivers.asyncio import WebSocket, connect, serve
from wsproto_core.errors import LocalProtocolError, RemoteProtocolError

try:
    import kosoku
except ImportError:  # reported by main(): the testee processes do not need kosoku
    kosoku = None
try:
    # Private, but it is what kosoku's own command line writes its reports with.
    from kosoku._report import write_reports
except ImportError:
    write_reports = None

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "reports" / "autobahn"
AGENT = "wsproto_core"

#: The testees' driver options: permessage-deflate on, keepalive off, and limits large enough
#: for the 9.x cases (16 MiB messages and frames).
TESTEE_OPTIONS: dict[str, Any] = {
    "compression": True,
    "ping_interval": None,
    "max_message_size": 64 * 2**20,
    "max_frame_size": 64 * 2**20,
}
#: The client testee gives up on a case after this long; the longest case timeout is 480 s.
CASE_TIMEOUT = 600.0
#: Give up on a role after this long (a hang, not a slow run: a full role takes 5 to 9 minutes).
ROLE_TIMEOUT = 3600.0
#: How long kosoku may take to end the run once the client testee has exited.
RESULT_GRACE = 60.0
HEARTBEAT = 60.0

ACCEPTED = ("OK", "NON-STRICT", "INFORMATIONAL")
COLUMNS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")


class HarnessError(Exception):
    """The run could not be carried out (as opposed to a case failing)."""


# ------------------------------------------------------------------ testees (child processes)


async def _stdin_closed() -> None:
    """Return when the parent closes our stdin (or dies): the testee's signal to stop."""
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)


async def echo_server() -> int:
    """Serve echo on an ephemeral port of 127.0.0.1, print the port, stop when stdin closes."""

    async def echo(websocket: WebSocket) -> None:
        async for message in websocket:
            await websocket.send(message)

    server = await serve(echo, "127.0.0.1", 0, **TESTEE_OPTIONS)
    print(server.port, flush=True)
    async with server:
        await _stdin_closed()
    return 0


async def echo_client(base_url: str, concurrency: int = 1) -> int:
    """Drive kosoku's fuzzingserver at ``base_url``: every case, then updateReports."""
    expected = (ConnectionClosed, LocalProtocolError, RemoteProtocolError, OSError, TimeoutError)
    agent = urllib.parse.quote(AGENT)

    async with connect(f"{base_url}/getCaseCount", **TESTEE_OPTIONS) as websocket:
        count = int(await websocket.recv())
    print(f"cases {count}", flush=True)
    started = time.monotonic()
    cases = iter(range(1, count + 1))
    done = 0

    async def worker() -> None:
        nonlocal done
        for case in cases:
            url = f"{base_url}/runCase?case={case}&agent={agent}"
            try:
                async with asyncio.timeout(CASE_TIMEOUT), connect(url, **TESTEE_OPTIONS) as websocket:
                    async for message in websocket:
                        await websocket.send(message)
            except expected as error:
                # Failing the connection is the right answer in many cases; kosoku is the judge.
                if isinstance(error, TimeoutError):
                    print(f"case {case}: no end after {CASE_TIMEOUT:.0f} s, moving on", file=sys.stderr, flush=True)
            done += 1
            if done % 50 == 0 or done == count:
                print(f"  client role: {done}/{count} cases, {time.monotonic() - started:.0f} s", file=sys.stderr)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    # kosoku writes its results and drops this connection without a Close frame.
    with contextlib.suppress(*expected):
        async with connect(f"{base_url}/updateReports?agent={agent}", **TESTEE_OPTIONS) as websocket:
            await websocket.recv()
    return 0


# ------------------------------------------------------------------------------ the runner


@dataclass
class RoleResult:
    role: str
    wall: float
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLUMNS, 0))
    failures: list[Any] = field(default_factory=list)
    total: int = 0
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and self.total > 0 and not self.failures


def classify(behavior: str, behavior_close: str) -> str:
    """The column a case counts in: its behavior when it passed, else UNIMPLEMENTED or FAILED.

    As in the Autobahn report, a case passes when ``behavior`` and ``behaviorClose`` are both
    OK, NON-STRICT or INFORMATIONAL; a passing case counts under its ``behavior`` (the report's
    main cell). A failing ``behaviorClose`` (UNCLEAN, WRONG CODE, ...) makes the case FAILED.
    """
    if behavior == "UNIMPLEMENTED":
        return "UNIMPLEMENTED"
    if behavior in ACCEPTED and behavior_close in ACCEPTED:
        return behavior
    return "FAILED"


async def _results(run: Awaitable[list[Any]]) -> list[Any]:
    try:
        return await run
    except kosoku.FailureError as failure:
        return list(failure.results)
    except ValueError as error:  # kosoku's answer to a --cases that names no case
        raise HarnessError(f"kosoku: {error}") from None


async def _heartbeat(role: str, started: float) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT)
        print(f"  {role} role: still running, {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).resolve()),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


async def run_server_role(cases: Sequence[str] | None, concurrency: int) -> list[Any]:
    """Our echo server under kosoku's fuzzingclient."""
    process = await _spawn("--testee", "server")
    try:
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), 30)
        except TimeoutError:
            raise HarnessError("the echo server did not report its port within 30 s") from None
        if not line.strip().isdigit():
            raise HarnessError(f"the echo server did not start (exit code {await process.wait()})")
        url = f"ws://127.0.0.1:{int(line)}"
        print(f"== server role: kosoku fuzzingclient -> {url}, concurrency {concurrency}", flush=True)
        run = asyncio.ensure_future(_results(kosoku.run_fuzzingclient(url, cases, None, concurrency)))
        died = asyncio.ensure_future(process.wait())
        await asyncio.wait({run, died}, return_when=asyncio.FIRST_COMPLETED)
        if not run.done():
            run.cancel()
            raise HarnessError(f"the echo server exited with code {process.returncode} during the run")
        died.cancel()
        return run.result()
    finally:
        await _stop(process)


async def run_client_role(cases: Sequence[str] | None, concurrency: int) -> list[Any]:
    """Our echo client against kosoku's fuzzingserver."""
    try:
        fuzzingserver = kosoku.run_fuzzingserver(cases, None, host="127.0.0.1", port=0)
    except ValueError as error:
        raise HarnessError(f"kosoku: {error}") from None
    async with fuzzingserver as server:
        url = f"ws://127.0.0.1:{server.port}"
        print(f"== client role: kosoku fuzzingserver on {url}, concurrency {concurrency}", flush=True)
        run = asyncio.ensure_future(_results(server.get_result()))
        process = await _spawn("--testee", "client", url, str(concurrency))
        try:
            assert process.stdout is not None
            line = (await process.stdout.readline()).decode().split()
            if len(line) != 2 or line[0] != "cases":
                raise HarnessError(f"the echo client could not get the case count (exit code {await process.wait()})")
            expected = int(line[1])
            code = await process.wait()
            if code != 0:
                raise HarnessError(f"the echo client exited with code {code}")
            try:
                results = await asyncio.wait_for(asyncio.shield(run), RESULT_GRACE)
            except TimeoutError:
                raise HarnessError("kosoku did not end the run after /updateReports") from None
        finally:
            run.cancel()
            await _stop(process)
    if len(results) != expected:
        raise HarnessError(f"kosoku reported {len(results)} results for {expected} cases")
    return results


def _write_reports(results: list[Any], outdir: Path) -> None:
    """Autobahn's report files: one JSON and one HTML file per case, index.json and index.html."""
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    if write_reports is not None:
        write_reports(results, str(outdir))
        return
    # A kosoku without that module: write Autobahn's index.json at least.
    index: dict[str, dict[str, Any]] = {}
    for result in results:
        index.setdefault(result.agent, {})[result.case_id] = {
            "behavior": result.behavior.value,
            "behaviorClose": result.behavior_close.value,
            "duration": result.duration,
            "remoteCloseCode": result.remote_close_code,
        }
    (outdir / "index.json").write_text(json.dumps(index, indent=3, sort_keys=True))


async def run_role(role: str, cases: Sequence[str] | None, concurrency: int) -> RoleResult:
    started = time.monotonic()
    heartbeat = asyncio.ensure_future(_heartbeat(role, started))
    try:
        async with asyncio.timeout(ROLE_TIMEOUT):
            if role == "server":
                results = await run_server_role(cases, concurrency)
            else:
                results = await run_client_role(cases, concurrency)
    except HarnessError as error:
        return RoleResult(role, time.monotonic() - started, error=str(error))
    except TimeoutError:
        return RoleResult(role, time.monotonic() - started, error=f"no result after {ROLE_TIMEOUT:.0f} s")
    finally:
        heartbeat.cancel()
    outcome = RoleResult(role, time.monotonic() - started, total=len(results))
    if not results:
        outcome.error = "no case was run (does --cases match any case id?)"
        return outcome
    for result in results:
        column = classify(result.behavior.value, result.behavior_close.value)
        outcome.counts[column] += 1
        if column in ("FAILED", "UNIMPLEMENTED"):
            outcome.failures.append(result)
    _write_reports(results, REPORTS / role)
    return outcome


# ---------------------------------------------------------------------------------- output


def _sort_key(case_id: str) -> list[int]:
    return [int(part) for part in case_id.split(".") if part.isdigit()]


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s ({int(seconds // 60)} min {seconds % 60:02.0f} s)"


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _environment() -> str:
    return (
        f"wsproto_core {_version('wsproto_core')}, kosoku {_version('kosoku')}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    )


def _failure_line(result: Any, outdir: Path) -> str:
    why = "; ".join(text for text in (result.result, result.result_close) if text)
    # The report's file name is made from the agent (the Server header or agent=) and the case id.
    reports = sorted(outdir.glob(f"*_case_{result.case_id.replace('.', '_')}.json")) or [outdir / "index.json"]
    return (
        f"{result.case_id}: behavior={result.behavior.value} behaviorClose={result.behavior_close.value}"
        f" ({why}) [{reports[0].relative_to(ROOT)}]"
    )


def print_table(outcomes: list[RoleResult]) -> None:
    header = ["role", "total", *COLUMNS, "wall"]
    rows = [
        [
            o.role,
            str(o.total),
            *(str(o.counts[c]) for c in COLUMNS),
            f"{o.wall:.0f} s" + (" (error)" if o.error else ""),
        ]
        for o in outcomes
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, *rows]:
        print(
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )
    for o in outcomes:
        if o.error:
            print(f"{o.role} role: ERROR: {o.error}")
        for result in sorted(o.failures, key=lambda r: _sort_key(r.case_id)):
            print(f"{o.role} role: {_failure_line(result, REPORTS / o.role)}")


def write_summary(outcomes: list[RoleResult], cases: Sequence[str] | None, concurrency: int, wall: float) -> Path:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Autobahn|Testsuite run",
        "",
        f"- date: {now}",
        f"- environment: {_environment()}",
        f"- cases: {', '.join(cases) if cases else 'all'}; concurrency: {concurrency}",
        f"- wall time: {_minutes(wall)}",
        "",
        "| role | total | " + " | ".join(COLUMNS) + " | wall |",
        "|---|" + "---:|" * (len(COLUMNS) + 2),
    ]
    for o in outcomes:
        counts = " | ".join(str(o.counts[c]) for c in COLUMNS)
        lines.append(f"| {o.role} | {o.total} | {counts} | {o.wall:.0f} s |")
    problems = [f"- {o.role} role: ERROR: {o.error}" for o in outcomes if o.error]
    for o in outcomes:
        problems += [f"- {o.role} role: {_failure_line(r, REPORTS / o.role)}" for r in o.failures]
    lines += ["", "## Failures", "", *problems] if problems else ["", "Every case passed."]
    REPORTS.mkdir(parents=True, exist_ok=True)
    path = REPORTS / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------ main


async def amain(args: argparse.Namespace) -> int:
    if kosoku is None:
        print("kosoku is not installed: pip install -e '.[autobahn]'", file=sys.stderr)
        return 2
    roles = ["server", "client"] if args.role == "both" else [args.role]
    cases = args.cases or None
    print(f"== Autobahn|Testsuite: {_environment()}", flush=True)
    started = time.monotonic()
    outcomes = [await run_role(role, cases, args.concurrency) for role in roles]
    wall = time.monotonic() - started
    print_table(outcomes)
    summary = write_summary(outcomes, cases, args.concurrency, wall)
    print(
        f"wall time {_minutes(wall)}; reports in {REPORTS.relative_to(ROOT)}/, summary in {summary.relative_to(ROOT)}"
    )
    if any(o.error for o in outcomes):
        return 2
    return 0 if all(o.passed for o in outcomes) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=["server", "client", "both"], default="both", help="default: both")
    parser.add_argument(
        "--cases", action="append", metavar="GLOB", help="case id or * glob, e.g. 9.* (repeatable; default: all)"
    )
    parser.add_argument("--concurrency", type=int, default=2, help="cases run at a time, in each role (default: 2)")
    parser.add_argument("--testee", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.testee:
        if args.testee == ["server"]:
            return asyncio.run(echo_server())
        if args.testee[0] == "client" and len(args.testee) == 3:
            return asyncio.run(echo_client(args.testee[1], int(args.testee[2])))
        parser.error("--testee server | --testee client URL CONCURRENCY")
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
