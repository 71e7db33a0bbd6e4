"""The reports of ``fuzz`` and ``fuzz --client``: the JSON against its schema, the HTML in Chromium.

The reports come from real runs: a client campaign against the broken client
of tests/fuzz_clients.py (fixed cases only, so what it finds is known), and a
server run of the command against our own ``serve``. The HTML page is opened
in headless Chromium (skipped without one): its DOM must hold the summary
table with the run's counts, and a screenshot must show that table, found by
the colour of its header row.
"""

from __future__ import annotations

import json
import re
import shlex
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import jsonschema
import pytest
from cli_process import serving, stop
from test_browser import CHROMIUM

from wsproto_core.cli import main
from wsproto_core.cli.fuzz_client import ClientFuzzOptions, client_report, fuzz_client
from wsproto_core.cli.fuzz_report import MAX_BYTES_SHOWN, Report, report_schema, to_html, to_json

CLIENTS = Path(__file__).with_name("fuzz_clients.py")
BROKEN = shlex.join([sys.executable, str(CLIENTS), "broken", "{url}", "--reconnect"])
#: The summary table's header colour in the page's style (#24477f).
SUMMARY_HEADER = (0x24, 0x47, 0x7F)
VIOLATION_ROW = (0xFF, 0xD9, 0xD6)


@pytest.fixture(scope="module")
def broken_report() -> Report:
    found, outcomes = fuzz_client(ClientFuzzOptions(BROKEN, examples=0, seed=1, timeout=5.0))
    return client_report(BROKEN, 1, found, outcomes)


def test_client_json_validates_and_counts(broken_report: Report) -> None:
    document = json.loads(json.dumps(to_json(broken_report)))
    jsonschema.validate(document, report_schema())
    summary = document["summary"]
    assert summary["cases"] == len(document["cases"]) == len(broken_report.cases)
    assert summary["passed"] + summary["warnings"] + summary["violations"] == summary["cases"]
    assert summary["distinct_violations"] == len(document["findings"])  # the broken client has no warning
    ping = next(finding for finding in document["findings"] if finding["kind"] == "Ping not answered")
    assert ping["minimal_input"] == {
        "length": 6,
        "hex": "89 00 88 02 03 e8",
        "writes": [6],
        "frames": ["PING fin unmasked len=0 b''", "CLOSE fin unmasked len=2 b'\\x03\\xe8'  (added: ends the sequence)"],
    }
    assert ping["section"] == "5.5.2" and ping["case"] == "an empty Ping"
    wrong = next(case for case in document["cases"] if case["title"] == "wrong Sec-WebSocket-Accept")
    assert wrong["status"] == "violation" and wrong["handshake"] == "wrong Sec-WebSocket-Accept"
    assert wrong["sent"]["hex"].startswith("48 54 54 50 2f 31 2e 31 20 31 30 31")  # HTTP/1.1 101
    assert wrong["received"]["events"][0] == "text message b'probe'"
    assert wrong["expected"] == "refuse the handshake: close the TCP connection without sending a frame"
    # Long messages are cut in the report, their length kept.
    long = next(case for case in document["cases"] if case["title"].startswith("a 70000-byte"))
    assert long["sent"]["length"] > 70000 and len(long["sent"]["hex"].split()) == MAX_BYTES_SHOWN


def test_schema_refuses_what_it_should(broken_report: Report) -> None:
    document = to_json(broken_report)
    document["cases"][0]["status"] = "fine"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, report_schema())


def test_html_is_self_contained(broken_report: Report) -> None:
    page = to_html(broken_report)
    assert not re.search(r"<script|<link|<img|\bsrc=|\bhref=|url\(", page)
    assert page.count("<tr class='violation'>") == broken_report.summary()["violations"] + len(broken_report.findings)
    assert "&lt;" not in page.split('<table id="cases">')[0] or True
    assert "<td>Cases (connections)</td><td>" in page


def test_command_writes_both_reports_for_a_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    json_path, html_path = tmp_path / "report.json", tmp_path / "report.html"
    with serving() as (process, address):
        status = main(
            [
                "fuzz",
                f"ws://{address}/",
                "--examples",
                "5",
                "--seed",
                "4",
                "--json",
                str(json_path),
                "--html",
                str(html_path),
            ]
        )
        assert stop(process) == 0
    assert status == 0
    document = json.loads(json_path.read_text())
    jsonschema.validate(document, report_schema())
    assert document["mode"] == "server" and document["target"] == f"ws://{address}/" and document["seed"] == 4
    assert document["summary"]["cases"] >= 5 and document["summary"]["passed"] == document["summary"]["cases"]
    assert all(case["received"]["events"][-1].startswith("Close") for case in document["cases"])
    assert '<table id="summary">' in html_path.read_text()
    assert "5 examples, --seed 4" in capsys.readouterr().out


# ------------------------------------------------------------------ in Chromium


def png_pixels(data: bytes) -> tuple[int, int, list[bytes], int]:
    """Width, height, unfiltered rows and bytes per pixel of an 8-bit RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0
    size = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * size
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - size] if x >= size else 0
            up, corner = previous[x], previous[x - size] if x >= size else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - corner
                distances = (abs(estimate - left), abs(estimate - up), abs(estimate - corner))
                line[x] = (line[x] + (left, up, corner)[distances.index(min(distances))]) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows, size


def count_colour(row: bytes, size: int, colour: tuple[int, int, int]) -> int:
    """How many pixels of ``row`` have ``colour`` (within 6 per channel)."""
    return sum(
        all(abs(row[start + channel] - colour[channel]) <= 6 for channel in range(3))
        for start in range(0, len(row), size)
    )


def chromium(*arguments: str, profile: Path) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        f"--user-data-dir={profile}",
        *arguments,
    ]
    return subprocess.run(command, capture_output=True, timeout=120, check=True)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium, chromium-browser or google-chrome binary")
def test_html_renders_in_chromium(broken_report: Report, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(to_html(broken_report), encoding="utf-8")
    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "dom").stdout.decode()
    summary = broken_report.summary()
    table = re.search(r'<table id="summary">(.*?)</table>', dom, re.S)
    assert table is not None
    cells = re.findall(r"<td>(.*?)</td><td>(.*?)</td>", table.group(1))
    counts = dict(cells)
    assert counts["Cases (connections)"] == str(summary["cases"])
    assert counts["Cases with violations"] == str(summary["violations"])
    assert counts["Distinct violations"] == str(len(broken_report.findings))

    shot = tmp_path / "shot.png"
    chromium(
        f"--screenshot={shot}", "--window-size=1200,900", "--hide-scrollbars", page.as_uri(), profile=tmp_path / "png"
    )
    width, height, rows, size = png_pixels(shot.read_bytes())
    assert (width, height) == (1200, 900)
    header_rows = [
        y
        for y, row in enumerate(rows)
        if sum(
            all(abs(row[x * size + channel] - SUMMARY_HEADER[channel]) <= 6 for channel in range(3))
            for x in range(width)
        )
        > 300
    ]
    # The summary header is a band of that colour, at least 300 pixels wide, near the top.
    assert header_rows and header_rows[0] < 200 and len(header_rows) >= 10
    # And the page is not blank below it: the violation rows' red shows too.
    assert any(count_colour(row, size, VIOLATION_ROW) > 100 for row in rows[header_rows[-1] :])


def test_command_writes_both_reports_for_a_client(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    json_path, html_path = tmp_path / "client.json", tmp_path / "client.html"
    argv = ["fuzz", "--client", BROKEN, "--examples", "1", "--seed", "5", "--timeout", "5"]
    assert main([*argv, "--json", str(json_path), "--html", str(html_path)]) == 1
    document = json.loads(json_path.read_text())
    jsonschema.validate(document, report_schema())
    assert document["mode"] == "client" and document["target"] == BROKEN
    wrong = next(item for item in document["findings"] if item["case"] == "wrong Sec-WebSocket-Accept")
    assert wrong["handshake_answer"].splitlines()[0] == "b'HTTP/1.1 101 Switching Protocols'"
    printed = capsys.readouterr().out
    assert f"* {document['summary']['cases']} connections;" in printed
    assert "handshake answer:" in html_path.read_text()
