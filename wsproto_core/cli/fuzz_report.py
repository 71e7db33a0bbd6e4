"""The reports of ``fuzz`` and ``fuzz --client``: a JSON file for CI, one HTML page for people.

Both list every case run (every connection, shrinking steps included), with
its status (pass, warning, violation), the bytes sent and received (hex, and
as frames or events), the reaction RFC 6455 expected and the section behind
it, and, at the top, a summary and the findings with their smallest inputs.
The JSON shape is ``fuzz_report.schema.json`` beside this module (JSON
Schema); the HTML page is self-contained: no script, no external asset.
"""

from __future__ import annotations

import dataclasses
import html
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from ..frames import Opcode
from .fuzz import VIOLATION, WARNING, Expectation, Finding, Reaction, _section, accepted_codes

__all__ = [
    "MAX_BYTES_SHOWN",
    "CaseReport",
    "FindingReport",
    "Report",
    "case_status",
    "describe_reaction",
    "expected_reaction",
    "report_case",
    "report_schema",
    "to_html",
    "to_json",
    "write_reports",
]

#: The most bytes of a case written out in each direction (the lengths are always given).
MAX_BYTES_SHOWN = 4096

SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True)
class CaseReport:
    """One case (one connection) as reported."""

    number: int
    title: str
    status: str
    section: str
    expected: str
    sent: bytes
    sent_frames: tuple[str, ...]
    received: bytes
    received_events: tuple[str, ...]
    findings: tuple[str, ...] = ()
    handshake: str = ""
    exit_status: str = ""


@dataclasses.dataclass(frozen=True)
class FindingReport:
    """A distinct finding, with its smallest input and the case it was first seen in."""

    finding: Finding
    case_title: str = ""
    handshake: str = ""
    handshake_answer: str = ""


@dataclasses.dataclass
class Report:
    """A whole run: what was fuzzed, with which seed, every case and the findings."""

    mode: str
    target: str
    seed: int | None
    cases: list[CaseReport]
    findings: list[FindingReport]
    seconds: float = 0.0

    def summary(self) -> dict[str, int]:
        """Counts of cases by status and of distinct findings by severity."""
        statuses = [case.status for case in self.cases]
        severities = [item.finding.severity for item in self.findings]
        return {
            "cases": len(self.cases),
            "passed": statuses.count("pass"),
            "warnings": statuses.count(WARNING),
            "violations": statuses.count(VIOLATION),
            "distinct_violations": severities.count(VIOLATION),
            "distinct_warnings": severities.count(WARNING),
        }


# ------------------------------------------------------------------ describing


def expected_reaction(expectation: Expectation) -> str:
    """What the endpoint under test owes a case, in words."""
    if expectation.outcome == "violation":
        codes = " or ".join(str(code) for code in sorted(accepted_codes(expectation.code or 1002, expectation.reason)))
        return f"fail the connection with Close {codes} ({expectation.reason})"
    if expectation.outcome == "refused":
        return "refuse the handshake: close the TCP connection without sending a frame"
    parts = []
    if expectation.messages:
        parts.append(f"echo {len(expectation.messages)} message(s)")
    if expectation.pings:
        parts.append("answer the Ping")
    parts.append("answer the Close" if expectation.outcome == "close" else "close its side")
    return ", ".join(parts)


def expected_section(expectation: Expectation) -> str:
    """The RFC 6455 section behind what a case expects."""
    if expectation.outcome == "violation":
        return _section(expectation.reason)
    return "5.5.1"


def case_status(findings: Sequence[Finding]) -> str:
    """``"violation"``, ``"warning"`` or ``"pass"``: the worst of the findings."""
    severities = {finding.severity for finding in findings}
    return VIOLATION if VIOLATION in severities else WARNING if WARNING in severities else "pass"


def _show(payload: bytes) -> str:
    return repr(payload if len(payload) <= 40 else payload[:40] + b"...")


def describe_reaction(reaction: Reaction) -> tuple[str, ...]:
    """The reaction as events: messages, Pongs, then how it ended."""
    lines = [
        f"{'text' if opcode == Opcode.TEXT else 'binary'} message {_show(payload)}"
        for opcode, payload in reaction.messages
    ]
    lines += [f"Pong {_show(payload)}" for payload in reaction.pongs]
    ending = {
        "close": f"Close {reaction.code}",
        "eof": "TCP closed without a Close frame",
        "timeout": "nothing more until the timeout",
        "invalid": f"invalid frame: {reaction.invalid}",
    }[reaction.ending]
    return (*lines, ending)


def report_case(
    number: int,
    title: str,
    expectation: Expectation,
    reaction: Reaction,
    found: Sequence[Finding],
    *,
    sent: bytes | None = None,
    section: str | None = None,
    handshake: str = "",
    exit_status: str = "",
) -> CaseReport:
    """One judged connection as reported; ``sent`` defaults to the case's frames (no handshake)."""
    case = expectation.case
    sections = sorted({finding.section for finding in found})
    return CaseReport(
        number=number,
        title=title,
        status=case_status(found),
        section=", ".join(sections) if sections else section or expected_section(expectation),
        expected=expected_reaction(expectation),
        sent=case.data() if sent is None else sent,
        sent_frames=tuple(case.describe()),
        received=bytes(reaction.received),
        received_events=describe_reaction(reaction),
        findings=tuple(finding.kind for finding in found),
        handshake=handshake,
        exit_status=exit_status,
    )


# ------------------------------------------------------------------ JSON


def _hex(data: bytes) -> str:
    return data[:MAX_BYTES_SHOWN].hex(" ")


def _finding_json(item: FindingReport) -> dict[str, Any]:
    finding = item.finding
    data = finding.case.data()
    return {
        "kind": finding.kind,
        "severity": finding.severity,
        "section": finding.section,
        "expected": finding.expected,
        "observed": finding.observed,
        "case": item.case_title,
        "handshake": item.handshake,
        "handshake_answer": item.handshake_answer,
        "minimal_input": {
            "length": len(data),
            "hex": _hex(data),
            "writes": [len(chunk) for chunk in finding.case.chunks()],
            "frames": finding.case.describe(),
        },
    }


def to_json(report: Report) -> dict[str, Any]:
    """The report as the JSON document that ``fuzz_report.schema.json`` describes."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "wsproto_core fuzz",
        "mode": report.mode,
        "target": report.target,
        "seed": report.seed,
        "seconds": round(report.seconds, 3),
        "summary": report.summary(),
        "findings": [_finding_json(item) for item in report.findings],
        "cases": [
            {
                "number": case.number,
                "title": case.title,
                "status": case.status,
                "section": case.section,
                "expected": case.expected,
                "handshake": case.handshake,
                "exit_status": case.exit_status,
                "findings": list(case.findings),
                "sent": {"length": len(case.sent), "hex": _hex(case.sent), "frames": list(case.sent_frames)},
                "received": {
                    "length": len(case.received),
                    "hex": _hex(case.received),
                    "events": list(case.received_events),
                },
            }
            for case in report.cases
        ],
    }


def report_schema() -> dict[str, Any]:
    """The JSON Schema of :func:`to_json`'s document."""
    text = resources.files(__package__).joinpath("fuzz_report.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


# ------------------------------------------------------------------ HTML

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1b1f24; background: #fff; }
h1 { font-size: 22px; margin: 0 0 12px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #c9d1d9; padding: 4px 8px; text-align: left; vertical-align: top; }
#summary { min-width: 520px; }
#summary th { background: #24477f; color: #fff; font-size: 15px; }
#summary td { font-size: 15px; font-weight: 600; }
.pass { background: #d8f5dd; } .warning { background: #fff3c4; } .violation { background: #ffd9d6; }
code, pre { font: 12px/1.4 ui-monospace, monospace; }
pre { margin: 4px 0; white-space: pre-wrap; word-break: break-all; max-width: 1100px; }
details summary { cursor: pointer; }
.muted { color: #57606a; }
"""


def _escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def _hex_block(data: bytes) -> str:
    shown = _hex(data) or "(none)"
    more = f" (first {MAX_BYTES_SHOWN} of {len(data)} bytes)" if len(data) > MAX_BYTES_SHOWN else ""
    return f"<pre>{_escape(shown)}</pre>{_escape(more)}"


def _lines_block(lines: Sequence[str]) -> str:
    return "<pre>" + _escape("\n".join(lines) or "(none)") + "</pre>"


def to_html(report: Report) -> str:
    """The report as one self-contained HTML page: summary, findings, then every case."""
    summary = report.summary()
    peer = "client" if report.mode == "client" else "server"
    rows = [
        ("Fuzzed", f"{peer}: {report.target}"),
        ("Seed", report.seed),
        ("Cases (connections)", summary["cases"]),
        ("Passed", summary["passed"]),
        ("Cases with warnings", summary["warnings"]),
        ("Cases with violations", summary["violations"]),
        ("Distinct violations", summary["distinct_violations"]),
        ("Distinct warnings", summary["distinct_warnings"]),
        ("Duration", f"{report.seconds:.1f} s"),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>wsproto_core fuzz report: {_escape(report.target)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>WebSocket compliance report ({_escape(peer)})</h1>",
        '<table id="summary"><tr><th>Summary</th><th></th></tr>',
        *(f"<tr><td>{_escape(name)}</td><td>{_escape(value)}</td></tr>" for name, value in rows),
        "</table>",
        "<h2>Findings</h2>",
    ]
    if report.findings:
        parts.append(
            '<table id="findings"><tr><th>#</th><th>Severity</th><th>Finding</th><th>RFC 6455 section</th>'
            "<th>Expected</th><th>Observed</th><th>Minimal input</th></tr>"
        )
        for number, item in enumerate(report.findings, 1):
            finding = item.finding
            where = f"<div class='muted'>case: {_escape(item.case_title)}</div>" if item.case_title else ""
            if item.handshake_answer:
                where += f"<div class='muted'>handshake answer:</div><pre>{_escape(item.handshake_answer)}</pre>"
            parts.append(
                f"<tr class='{_escape(finding.severity)}'><td>{number}</td><td>{_escape(finding.severity)}</td>"
                f"<td>{_escape(finding.kind)}{where}</td><td>{_escape(finding.section)}</td>"
                f"<td>{_escape(finding.expected)}</td><td>{_escape(finding.observed)}</td>"
                f"<td>{_hex_block(finding.case.data())}{_lines_block(finding.case.describe())}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append("<p>None.</p>")
    parts += [
        "<h2>Cases</h2>",
        '<table id="cases"><tr><th>#</th><th>Case</th><th>Status</th><th>Section</th><th>Expected</th>'
        "<th>Bytes sent and received</th></tr>",
    ]
    for case in report.cases:
        extra = ""
        if case.handshake:
            extra += f"<div class='muted'>handshake: {_escape(case.handshake)}</div>"
        if case.exit_status:
            extra += f"<div class='muted'>exit: {_escape(case.exit_status)}</div>"
        if case.findings:
            extra += "<div>" + "<br>".join(_escape(kind) for kind in case.findings) + "</div>"
        parts.append(
            f"<tr class='{_escape(case.status)}'><td>{case.number}</td><td>{_escape(case.title)}{extra}</td>"
            f"<td>{_escape(case.status)}</td><td>{_escape(case.section)}</td><td>{_escape(case.expected)}</td>"
            f"<td><details><summary>{len(case.sent)} bytes sent, {len(case.received)} received</summary>"
            f"<div>sent</div>{_hex_block(case.sent)}{_lines_block(case.sent_frames)}"
            f"<div>received</div>{_hex_block(case.received)}{_lines_block(case.received_events)}"
            "</details></td></tr>"
        )
    parts += ["</table>", "</body></html>", ""]
    return "\n".join(parts)


def write_reports(report: Report, *, json_path: str | None, html_path: str | None) -> None:
    """Write the JSON and/or HTML report (``None``: not asked for)."""
    if json_path is not None:
        Path(json_path).write_text(json.dumps(to_json(report), indent=1) + "\n", encoding="utf-8")
    if html_path is not None:
        Path(html_path).write_text(to_html(report), encoding="utf-8")
