"""The WebSockets guide's diagrams, drawn as SVG files in ``docs/_static/diagrams/``.

Why generated rather than drawn by hand: the values in the pictures come from the library and the
RFC's own examples, so they are checked rather than typed. The frame layout is drawn from
:data:`FRAME_FIELDS` (bit offsets that the tests compare with RFC 6455 section 5.2 and with the
bytes :func:`wsproto_core.frames.build_frame_header` writes), the masking example is computed by
:func:`wsproto_core.masking.apply_mask`, and the handshake's accept value by
:func:`wsproto_core.utilities.generate_accept_token`. One stylesheet keeps the six pictures alike.

The files are written when the documentation is built (only when their content changed) and are
also committed, so that the Markdown pages show them on a forge too; ``tests/test_docs_diagrams.py``
fails when a committed file differs from what this module draws. To redraw them by hand:
``python docs/_ext/guide_diagrams.py``.

Each picture carries its own opaque background, light or dark after the reader's colour-scheme
preference, so it stays readable whichever theme furo shows around it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make the package and the helper importable
    sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]

from svgdraw import arrow, document, element, text_width

from wsproto_core.events import Request
from wsproto_core.frames import Opcode, build_frame_header
from wsproto_core.http2 import SETTINGS_ENABLE_CONNECT_PROTOCOL, connect_request_headers
from wsproto_core.masking import apply_mask
from wsproto_core.utilities import generate_accept_token

DIRECTORY = Path(__file__).resolve().parent.parent / "_static" / "diagrams"

_STYLE = (
    "svg{--fg:#1f2328;--muted:#59636e;--bg:#fff;--box:#f6f8fa;--line:#b7bfc8;"
    "--c:#0969da;--s:#8250df;--hl:#fff8c5;--flag:#ddf4ff;--len:#fbefff;--key:#fff1e5;--data:#dafbe1}"
    "@media (prefers-color-scheme:dark){svg{--fg:#e6edf3;--muted:#9198a1;--bg:#151b23;--box:#212830;"
    "--line:#4d555e;--c:#4493f8;--s:#ab7df8;--hl:#3a3115;--flag:#0c2d4a;--len:#2f1c3f;--key:#3d2410;"
    "--data:#12351f}}"
    ".bg{fill:var(--bg)}"
    ".box{fill:var(--box);stroke:var(--fg);stroke-width:1.2}"
    ".card{fill:var(--box);stroke:var(--line);stroke-width:1}"
    ".group{fill:none;stroke:var(--muted);stroke-width:1.2;stroke-dasharray:6 4}"
    ".t{fill:var(--fg);font:13px system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}"
    ".m{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}"
    ".b{font-weight:600}"
    ".s{font-size:11.5px;fill:var(--muted)}"
    ".lane{stroke:var(--line);stroke-width:2;stroke-dasharray:4 4}"
    ".a{stroke:var(--fg);stroke-width:1.4}.ah{fill:var(--fg)}"
    ".ac{stroke:var(--c);stroke-width:1.6}.ach{fill:var(--c)}"
    ".as{stroke:var(--s);stroke-width:1.6}.ash{fill:var(--s)}"
    ".pill{fill:var(--hl);stroke:var(--muted);stroke-width:1}"
    ".band{fill:var(--hl)}"
    ".cell{stroke:var(--fg);stroke-width:1}"
    ".flag{fill:var(--flag)}.len{fill:var(--len)}.key{fill:var(--key)}.data{fill:var(--data)}"
    ".tick{stroke:var(--line);stroke-width:1}"
)


def _text(x: float, y: float, content: str, cls: str = "t", anchor: str = "start") -> str:
    return element("text", content, x=x, y=y, class_=cls, text_anchor=None if anchor == "start" else anchor)


def _lines(
    x: float, y: float, lines: list[str], cls: str = "t", anchor: str = "start", *, step: float = 17
) -> list[str]:
    return [_text(x, y + index * step, line, cls, anchor) for index, line in enumerate(lines)]


def _box(x: float, y: float, width: float, height: float, cls: str = "box", *, rx: float = 8) -> str:
    return element("rect", x=x, y=y, width=width, height=height, rx=rx, class_=cls)


def _svg(width: float, height: float, title: str, description: str, body: list[str], *, name: str) -> str:
    background = element("rect", x=0, y=0, width=width, height=height, rx=10, class_="bg")
    return document(width, height, title, description, [background, *body], style=_STYLE, id_prefix=name)


# --- Sequence diagrams (opening and closing handshakes) ------------------------------------------

_CLIENT_X = 190.0
_SERVER_X = 590.0
_WIDTH = 780.0


def _lanes(top: float, bottom: float, client: str = "Client (browser)", server: str = "Server") -> list[str]:
    parts = []
    for x, name in ((_CLIENT_X, client), (_SERVER_X, server)):
        width = text_width(name, 13) + 28
        parts.append(_box(x - width / 2, top, width, 30))
        parts.append(_text(x, top + 20, name, "t b", "middle"))
        parts.append(element("line", x1=x, y1=top + 30, x2=x, y2=bottom, class_="lane"))
    return parts


def _message(y: float, rightwards: bool, lines: list[str], *, mono: bool = True) -> tuple[list[str], float]:
    """A message between the lanes, its text above its arrow; returns the parts and the next y.

    Several lines of monospace text (HTTP headers, frame bytes) go on a card, left-aligned.
    """
    step = 16.0
    middle = (_CLIENT_X + _SERVER_X) / 2
    parts: list[str] = []
    if mono and len(lines) > 1:
        width = max(text_width(line, 12, mono=True) for line in lines) + 24
        parts.append(_box(middle - width / 2, y, width, len(lines) * step + 10, "card", rx=5))
        parts += _lines(middle - width / 2 + 12, y + 18, lines, "t m", "start", step=step)
        arrow_y = y + len(lines) * step + 22
    else:
        parts += _lines(middle, y + 14, lines, "t m" if mono else "t", "middle", step=step)
        arrow_y = y + 14 + (len(lines) - 1) * step + 12
    start, end = (_CLIENT_X, _SERVER_X) if rightwards else (_SERVER_X, _CLIENT_X)
    line_class, head_class = ("ac", "ach") if rightwards else ("as", "ash")
    parts.append(arrow(start, arrow_y, end, arrow_y, line_class=line_class, head_class=head_class))
    return parts, arrow_y + 14


def _pill(x: float, y: float, label: str) -> list[str]:
    width = text_width(label, 11.5, mono=True) + 14
    return [_box(x - width / 2, y - 13, width, 19, "pill", rx=9), _text(x, y + 1, label, "t m s", "middle")]


def _note(x: float, y: float, lines: list[str], anchor: str) -> list[str]:
    return _lines(x, y, lines, "t s", anchor, step=15)


SAMPLE_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example key


def opening_handshake() -> str:
    """The opening handshake (RFC 6455 section 4), then frames in both directions."""
    accept = generate_accept_token(SAMPLE_KEY).decode()
    body: list[str] = []
    y = 70.0
    body += _pill(_CLIENT_X, y, "CONNECTING") + _pill(_SERVER_X, y, "CONNECTING")
    y += 14
    parts, y = _message(y, True, ["TCP connection (and TLS for wss://)"], mono=False)
    body += parts
    request = [
        "GET /chat HTTP/1.1",
        "Host: app.example",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {SAMPLE_KEY.decode()}",
        "Sec-WebSocket-Version: 13",
        "Origin: https://app.example",
    ]
    parts, y_after = _message(y + 6, True, request)
    body += parts
    body += _note(
        _SERVER_X + 14,
        y + 40,
        [
            "checks the path,",
            "Origin and",
            "authentication;",
            "computes the",
            "accept value:",
            "base64(SHA-1(",
            "key + GUID))",
        ],
        "start",
    )
    body += _note(_CLIENT_X - 14, y + 40, ["random 16-byte", "key, base64;", "cookies go", "with it"], "end")
    y = y_after
    response = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept}",
    ]
    parts, y = _message(y + 6, False, response)
    body += parts
    body += _note(_CLIENT_X - 14, y - 40, ["checks the", "accept value"], "end")
    body += _pill(_CLIENT_X, y + 6, "OPEN") + _pill(_SERVER_X, y + 6, "OPEN")
    y += 22
    band_text = "WebSocket frames from here on: both ways, at any time"
    body.append(_box(_CLIENT_X - 120, y, _SERVER_X - _CLIENT_X + 240, 24, "band", rx=4))
    body.append(_text((_CLIENT_X + _SERVER_X) / 2, y + 16.5, band_text, "t", "middle"))
    y += 30
    for rightwards, text in (
        (True, 'Text "hello" (masked)'),
        (False, 'Text "hi!" (unmasked)'),
        (False, "Ping"),
        (True, "Pong (same payload)"),
    ):
        parts, y = _message(y, rightwards, [text], mono=False)
        body += parts
    height = y + 16
    lanes = _lanes(16, height - 14)
    description = (
        "Sequence diagram. The client opens a TCP connection (with TLS for wss://) and sends an HTTP/1.1 GET "
        "with Upgrade: websocket, Connection: Upgrade, a random Sec-WebSocket-Key, Sec-WebSocket-Version: 13 "
        "and Origin. The server checks it and answers 101 Switching Protocols with Sec-WebSocket-Accept, "
        "the base64 SHA-1 of the key and a fixed GUID. Both sides move from CONNECTING to OPEN, and frames "
        "then flow both ways: the client's masked, the server's unmasked, Pings answered by Pongs."
    )
    return _svg(_WIDTH, height, "The opening handshake", description, lanes + body, name="opening-handshake")


def closing_handshake() -> str:
    """The closing handshake (RFC 6455 sections 5.5.1, 7.1.1 and 7.1.2), started by the client."""
    body: list[str] = []
    y = 70.0
    body += _pill(_CLIENT_X, y, "OPEN") + _pill(_SERVER_X, y, "OPEN")
    y += 14
    parts, y = _message(y, True, ['Close 1000 "bye"', "payload: 03 e8 62 79 65"])
    body += parts
    body += _pill(_CLIENT_X, y + 4, "LOCAL_CLOSING") + _pill(_SERVER_X, y + 4, "REMOTE_CLOSING")
    body += _note(_CLIENT_X - 14, y + 28, ["sends no more", "data frames", "(section 5.5.1)"], "end")
    body += _note(_SERVER_X + 14, y + 28, ["answers with its", "own Close as soon", "as practical"], "start")
    y += 30
    parts, y = _message(y, False, ["Close 1000 (echoing the code)"])
    body += parts
    body += _pill(_CLIENT_X, y + 4, "CLOSED") + _pill(_SERVER_X, y + 4, "CLOSED")
    y += 22
    parts, y = _message(y, False, ["server closes the TCP connection first (section 7.1.1)"], mono=False)
    body += parts
    body += _note(_SERVER_X + 14, y - 40, ["so that TIME_WAIT", "stays on the", "server"], "start")
    body += _note(_CLIENT_X - 14, y - 40, ["waits for this,", "up to", "close_timeout"], "end")
    parts, y = _message(y, True, ["client closes its side"], mono=False)
    body += parts
    lanes = _lanes(16, y - 6)
    body += _lines(
        _WIDTH / 2,
        y + 16,
        [
            "A transport that drops without this exchange is reported as 1006, a code never sent on the wire.",
            "After a protocol violation nobody waits: the endpoint sends its Close (1002, 1007, 1009...) and closes.",
        ],
        "t s",
        "middle",
        step=16,
    )
    height = y + 44
    description = (
        "Sequence diagram. Both ends are OPEN. The client sends Close with code 1000 and reason bye "
        "(payload 03 e8 62 79 65) and becomes LOCAL_CLOSING, sending no more data frames; the server, on "
        "receiving it, is REMOTE_CLOSING and answers with its own Close 1000; both are then CLOSED. The "
        "server closes the TCP connection first, and the client, which waits for that up to close_timeout, "
        "closes its side. A connection dropped without Close frames is reported as 1006."
    )
    return _svg(_WIDTH, height, "The closing handshake", description, lanes + body, name="closing-handshake")


# --- The frame layout -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameField:
    """One field of the frame header, at its bit offset from the first bit of the frame."""

    name: str
    start: int
    bits: int
    css: str


#: The frame of RFC 6455 section 5.2 in its longest form (a 64-bit length and a masking key),
#: bit 0 being the most significant bit of the first byte. Shorter forms drop fields, never gaps:
#: with a length under 126 the masking key starts at bit 16, with 126 at bit 32.
FRAME_FIELDS = (
    FrameField("FIN", 0, 1, "flag"),
    FrameField("RSV1", 1, 1, "flag"),
    FrameField("RSV2", 2, 1, "flag"),
    FrameField("RSV3", 3, 1, "flag"),
    FrameField("opcode", 4, 4, "flag"),
    FrameField("MASK", 8, 1, "len"),
    FrameField("Payload len", 9, 7, "len"),
    FrameField("Extended payload length", 16, 64, "len"),
    FrameField("Masking key", 80, 32, "key"),
    FrameField("Payload data", 112, 16, "data"),
)

_CELL = 24.0
_GRID_X = 92.0
_GRID_Y = 70.0
_ROW = 46.0

# What each field says in each row it crosses (the extended length reads differently by row).
_SEGMENT_TEXT = {
    ("Extended payload length", 0): ["Extended payload length", "16 bits if Payload len = 126"],
    ("Extended payload length", 1): ["Extended payload length, continued", "if Payload len = 127 (64 bits, top bit 0)"],
    ("Extended payload length", 2): ["…continued (127)"],
    ("Masking key", 2): ["Masking key", "if MASK = 1"],
    ("Masking key", 3): ["Masking key, continued"],
    ("Payload data", 3): ["Payload data"],
}


def frame_layout() -> str:
    """The frame header as a grid of 32 bits per row, after the RFC's own drawing."""
    body: list[str] = []
    for byte in range(4):
        x = _GRID_X + byte * 8 * _CELL
        body.append(_text(x + 4 * _CELL, 30, f"byte {byte} of each row", "t s", "middle"))
        body.append(element("line", x1=x, y1=36, x2=x, y2=_GRID_Y - 16, class_="tick"))
    for bit in range(32):
        body.append(_text(_GRID_X + (bit + 0.5) * _CELL, _GRID_Y - 6, str(bit), "t s", "middle"))
    rows = 5
    for row in range(rows):
        body.append(_text(_GRID_X - 10, _GRID_Y + row * _ROW + _ROW / 2 + 4, f"+{row * 4} bytes", "t s", "end"))
    for frame_field in FRAME_FIELDS:
        start, end = frame_field.start, frame_field.start + frame_field.bits
        while start < end:
            row, column = divmod(start, 32)
            stop = min(end, (row + 1) * 32)
            x, width = _GRID_X + column * _CELL, (stop - start) * _CELL
            y = _GRID_Y + row * _ROW
            body.append(
                element(
                    "rect",
                    x=x,
                    y=y,
                    width=width,
                    height=_ROW,
                    class_=f"cell {frame_field.css}",
                    data_field=frame_field.name,
                )
            )
            lines = _SEGMENT_TEXT.get((frame_field.name, row), [frame_field.name])
            if frame_field.bits == 1:
                # One bit is narrower than its name: the name runs upwards, as in many RFC drawings.
                center_x, center_y = x + width / 2 + 4, y + _ROW / 2
                body.append(
                    element(
                        "text",
                        frame_field.name,
                        x=center_x,
                        y=center_y,
                        class_="t s b",
                        text_anchor="middle",
                        transform=f"rotate(-90 {center_x} {center_y})",
                    )
                )
            elif frame_field.name == "opcode":
                body += _lines(x + width / 2, y + 19, ["opcode", "4 bits"], "t", "middle", step=16)
            elif frame_field.name == "Payload len":
                body += _lines(x + width / 2, y + 19, ["Payload len", "7 bits"], "t", "middle", step=16)
            else:
                first_y = y + _ROW / 2 + 5 - (len(lines) - 1) * 8
                body += _lines(x + width / 2, first_y, lines, "t", "middle", step=16)
            start = stop
    # The payload goes on past the grid.
    last_y = _GRID_Y + 4 * _ROW
    body.append(element("rect", x=_GRID_X, y=last_y, width=32 * _CELL, height=_ROW, class_="cell data"))
    body.append(
        _text(
            _GRID_X + 16 * _CELL,
            last_y + _ROW / 2 + 5,
            "Payload data, continued (Payload len bytes in all)",
            "t",
            "middle",
        )
    )
    notes_y = _GRID_Y + rows * _ROW + 28
    notes = [
        "FIN: last fragment of a message. RSV1-3: 0 unless an extension defines them (permessage-deflate uses RSV1).",
        "opcode: 0 continuation, 1 text, 2 binary, 3-7 reserved, 8 Close, 9 Ping, 10 (0xA) Pong, 11-15 reserved.",
        "MASK: 1 on every client-to-server frame, 0 on every server-to-client frame.",
        "Payload len 0-125 is the length; 126: a 16-bit length follows; 127: a 64-bit length follows.",
        "Lengths are unsigned, network byte order, and minimal. The drawing shows the longest header, 14 bytes;",
        "with a shorter length field the masking key follows it at once (at bit 16 or 32): headers are 2 to 14 bytes.",
    ]
    body += _lines(_GRID_X - 60, notes_y, notes, "t", "start", step=19)
    width = _GRID_X + 32 * _CELL + 24
    height = notes_y + len(notes) * 19 + 4
    description = (
        "The frame layout of RFC 6455 section 5.2, 32 bits per row, bit 0 being the most significant bit of "
        "the first byte. Bit 0: FIN. Bits 1, 2, 3: RSV1, RSV2, RSV3. Bits 4 to 7: opcode. Bit 8: MASK. "
        "Bits 9 to 15: payload length (7 bits). Then the extended payload length: 16 bits (bits 16 to 31) "
        "when the 7-bit length is 126, or 64 bits (bits 16 to 79) when it is 127. Then the 32-bit masking "
        "key when MASK is 1 (bits 80 to 111 in the longest form), then the payload data."
    )
    return _svg(width, height, "The WebSocket frame layout", description, body, name="frame-layout")


# --- Masking --------------------------------------------------------------------------------------

#: RFC 6455 section 5.7's example: "Hello" sent by a client with this masking key.
MASK_EXAMPLE_KEY = bytes.fromhex("37fa213d")
MASK_EXAMPLE_PAYLOAD = b"Hello"


def masking() -> str:
    """How a client masks a payload (section 5.3), on the RFC's own example."""
    payload, key = MASK_EXAMPLE_PAYLOAD, MASK_EXAMPLE_KEY
    masked = apply_mask(payload, key)
    frame = build_frame_header(Opcode.TEXT, len(payload), mask=key) + masked
    body: list[str] = []
    left, cell, cell_gap = 190.0, 84.0, 10.0
    rows = [
        ("payload byte i", [f"{b:02x}" for b in payload], [f"'{chr(b)}'" for b in payload], "data"),
        (
            "key byte i mod 4",
            [f"{key[i % 4]:02x}" for i in range(len(payload))],
            [f"key[{i % 4}]" for i in range(len(payload))],
            "key",
        ),
        ("XOR: byte on the wire", [f"{b:02x}" for b in masked], ["" for _ in masked], "len"),
    ]
    y = 58.0
    for index in range(len(payload)):
        body.append(_text(left + index * (cell + cell_gap) + cell / 2, y - 14, f"i = {index}", "t s", "middle"))
    for row_index, (label, values, hints, css) in enumerate(rows):
        row_y = y + row_index * 74
        body.append(_text(left - 16, row_y + 26, label, "t", "end"))
        for index, (value, hint) in enumerate(zip(values, hints, strict=True)):
            x = left + index * (cell + cell_gap)
            body.append(element("rect", x=x, y=row_y, width=cell, height=40, rx=5, class_=f"cell {css}"))
            body.append(_text(x + cell / 2, row_y + 25, value, "t m b", "middle"))
            if hint:
                body.append(_text(x + cell / 2, row_y + 56, hint, "t s m", "middle"))
        if row_index == 1:
            for index in range(len(payload)):
                x = left + index * (cell + cell_gap) + cell / 2
                body.append(_text(x, row_y + 70, "=", "t b", "middle"))
        elif row_index == 0:
            for index in range(len(payload)):
                x = left + index * (cell + cell_gap) + cell / 2
                body.append(_text(x, row_y + 70, "⊕", "t b", "middle"))
    y += 3 * 74 + 4
    body += _lines(
        40,
        y,
        [
            f"The whole frame on the wire: {frame.hex(' ')}",
            f"(81: FIN + text; 85: MASK + length 5; {key.hex(' ')}: the key; then the masked payload.)",
            'The server XORs with the same key again and gets "Hello" back: masking is not encryption,',
            "the key travels in the frame. It stops a page's script from choosing the bytes a proxy sees,",
            "since each frame gets a fresh unpredictable key (section 10.3).",
        ],
        "t",
        "start",
        step=19,
    )
    height = y + 5 * 19 + 6
    description = (
        f"RFC 6455 section 5.7's example. The client masks the payload Hello, bytes {payload.hex(' ')}, with the "
        f"key {key.hex(' ')}: each byte i is XORed with key byte i mod 4, giving {masked.hex(' ')}. The frame "
        f"on the wire is {frame.hex(' ')}. The server XORs again with the same key to recover the payload."
    )
    return _svg(680, height, "Masking a client frame", description, body, name="masking")


# --- End to end, and fan-out ----------------------------------------------------------------------


def end_to_end() -> str:
    """The path of a WebSocket from a browser tab to the application code on a server."""
    body: list[str] = []
    box_x, box_width, note_x = 24.0, 324.0, 372.0
    y = 20.0

    def stage(height: float, title: str, lines: list[str], notes: list[str]) -> None:
        nonlocal y
        body.append(_box(box_x, y, box_width, height))
        body.append(_text(box_x + 14, y + 22, title, "t b"))
        body.extend(_lines(box_x + 14, y + 42, lines, "t m", "start", step=17))
        body.extend(_note(note_x, y + 18, notes, "start"))
        y += height

    def hop(label: str, cls: str = "a") -> None:
        nonlocal y
        middle = box_x + box_width / 2
        body.append(arrow(middle, y + 4, middle, y + 44, line_class=cls, head_class=f"{cls}h"))
        body.append(arrow(middle + 10, y + 44, middle + 10, y + 4, line_class=cls, head_class=f"{cls}h"))
        body.append(_text(middle + 24, y + 28, label, "t s"))
        y += 48

    stage(
        64,
        "Browser tab",
        ['new WebSocket("wss://app.example/chat")'],
        [
            "Sends the page's Origin and the site's cookies with the",
            "handshake; answers Pings by itself; reconnecting is",
            "the page's job.",
        ],
    )
    hop("TCP + TLS across the internet, port 443")
    stage(
        64,
        "Load balancer / reverse proxy",
        ["TLS ends here (usually)"],
        [
            "Must pass Upgrade and Connection on, over HTTP/1.1;",
            "its idle timeout must be longer than the keepalive",
            "interval. The backend it picks keeps the connection.",
        ],
    )
    hop("HTTP/1.1 upgrade, then frames (plain or TLS inside)")
    top = y
    body.append(_box(box_x, y, box_width, 150))
    body.append(_text(box_x + 14, y + 22, "Server process", "t b"))
    inner_x, inner_width = box_x + 14, box_width - 28
    body.append(_box(inner_x, y + 34, inner_width, 44, "box", rx=6))
    body.extend(
        _lines(
            inner_x + 10,
            y + 52,
            ["driver: event loop, socket, timers", "(asyncio, trio or threads)"],
            "t s",
            "start",
            step=16,
        )
    )
    body.append(
        arrow(
            inner_x + inner_width / 2 - 6,
            y + 80,
            inner_x + inner_width / 2 - 6,
            y + 96,
            line_class="a",
            head_class="ah",
        )
    )
    body.append(
        arrow(
            inner_x + inner_width / 2 + 6,
            y + 96,
            inner_x + inner_width / 2 + 6,
            y + 80,
            line_class="a",
            head_class="ah",
        )
    )
    body.append(_text(inner_x + inner_width / 2 + 18, y + 92, "bytes", "t s"))
    body.append(_box(inner_x, y + 98, inner_width, 40, "box", rx=6))
    body.extend(
        _lines(
            inner_x + 10,
            y + 116,
            ["wsproto_core: bytes in, events out,", "and events in, bytes out"],
            "t s",
            "start",
            step=15,
        )
    )
    body.extend(
        _note(
            note_x,
            top + 18,
            [
                "One process holds the socket for the connection's",
                "whole life. The driver moves bytes and keeps time;",
                "the protocol core checks every RFC 6455 rule and",
                "answers Pings and Closes. Nothing here is HTTP any",
                "more after the 101.",
            ],
            "start",
        )
    )
    y += 150
    hop("events: TextMessage, BytesMessage, CloseConnection...")
    stage(
        64,
        "Application handler",
        ["async for message in ws: ..."],
        [
            "Authorises each action, replies, and publishes to a",
            "broker to reach connections held by other processes",
            "(see Scaling).",
        ],
    )
    height = y + 20
    description = (
        "The path of a WebSocket connection, top to bottom. A browser tab calls new WebSocket with a wss URL, "
        "sending Origin and cookies. TCP and TLS cross the internet on port 443 to a load balancer or reverse "
        "proxy, which usually ends TLS, must forward the Upgrade over HTTP/1.1 and have an idle timeout longer "
        "than the keepalive interval. It passes the connection to one server process, where a driver (event "
        "loop, socket, timers) hands bytes to wsproto_core, which turns them into events for the application "
        "handler; the handler publishes to a broker to reach connections in other processes."
    )
    return _svg(780, height, "A WebSocket end to end", description, body, name="end-to-end")


def fan_out() -> str:
    """Publish/subscribe across processes and machines."""
    body: list[str] = []
    width = 780.0
    # Producers and the broker.
    producers = [("HTTP API", 150.0), ("background job", 390.0), ("another process", 630.0)]
    for name, x in producers:
        w = text_width(name, 13) + 28
        body.append(_box(x - w / 2, 20, w, 32))
        body.append(_text(x, 41, name, "t", "middle"))
        body.append(arrow(x, 54, x, 92, line_class="a", head_class="ah"))
    body.append(_text(400, 78, "publish(topic, message)", "t s"))
    body.append(_box(40, 94, width - 80, 44))
    body.append(
        _text(width / 2, 114, "Broker: Redis pub/sub, NATS, Kafka, PostgreSQL LISTEN/NOTIFY...", "t b", "middle")
    )
    body.append(_text(width / 2, 130, "one subscription per topic per process, not per connection", "t s", "middle"))
    # Machines, processes, connections.
    machines = [
        ("machine 1", 24.0, 470.0, [("process A", ["room:1", "room:2"], 3), ("process B", ["room:1"], 2)]),
        ("machine 2", 510.0, 246.0, [("process C", ["room:2"], 2)]),
    ]
    process_y = 196.0
    for machine, mx, mw, processes in machines:
        body.append(element("rect", x=mx, y=170, width=mw, height=206, rx=10, class_="group"))
        body.append(_text(mx + 12, 188, machine, "t s"))
        slot = mw / len(processes)
        for index, (process, topics, connections) in enumerate(processes):
            px = mx + index * slot + 14
            pw = slot - 28
            body.append(arrow(px + pw / 2, 140, px + pw / 2, process_y - 2, line_class="as", head_class="ash"))
            body.append(_box(px, process_y, pw, 84))
            body.append(_text(px + 12, process_y + 20, process, "t b"))
            body.append(_text(px + 12, process_y + 40, "topic → its connections:", "t s"))
            body.append(_text(px + 12, process_y + 58, ", ".join(topics), "t m"))
            body.append(_text(px + 12, process_y + 75, "bounded queue per connection", "t s"))
            spacing = pw / connections
            for c in range(connections):
                cx = px + spacing * (c + 0.5)
                body.append(arrow(cx, process_y + 86, cx, 338, line_class="ac", head_class="ach"))
                body.append(element("circle", cx=cx, cy=352, r=12, class_="box"))
                body.append(_text(cx, 356, "ws", "t s", "middle"))
    body += _lines(
        width / 2,
        402,
        [
            "ws: an open WebSocket to a browser. Each process writes the same serialised bytes to every",
            "local connection subscribed to the topic; a slow one fills only its own queue, and is dropped",
            "when that overflows.",
        ],
        "t s",
        "middle",
        step=16,
    )
    height = 458.0
    description = (
        "Fan-out with publish/subscribe. Producers (an HTTP API, a background job, another process) publish "
        "messages on topics to a broker such as Redis pub/sub, NATS, Kafka or PostgreSQL LISTEN/NOTIFY. Each "
        "server process, on machine 1 (processes A and B) and machine 2 (process C), subscribes once per topic "
        "its connections care about, keeps a map from topic to its connections, and writes the same bytes to "
        "each of them through a bounded per-connection queue."
    )
    return _svg(width, height, "Fan-out across processes and machines", description, body, name="fan-out")


# --- WebSockets over HTTP/2 (RFC 8441) -------------------------------------------------------------

#: The request drawn on the HTTP/2 picture; its header list comes from the library.
HTTP2_REQUEST = Request(host="example.com", target="/chat")


def http2_streams() -> str:
    """Streams of one HTTP/2 connection: the page, and WebSockets opened by extended CONNECT."""
    body: list[str] = []
    width = 780.0
    left, right = 24.0, 600.0
    column = 156.0
    middle_x, middle_width = left + column + 22, right - left - column - 44
    headers = [f"{name.decode()}: {value.decode()}" for name, value in connect_request_headers(HTTP2_REQUEST)]
    rows: list[tuple[str, list[str], str, str]] = [
        (
            "stream 0",
            ["SETTINGS from the server:", f"ENABLE_CONNECT_PROTOCOL ({SETTINGS_ENABLE_CONNECT_PROTOCOL:#x}) = 1"],
            "",
            "the connection",
        ),
        (
            "stream 1",
            ["HEADERS  :method: GET  :path: /", "response :status: 200, DATA: the page"],
            "page",
            "process_request",
        ),
        (
            "stream 3",
            ["HEADERS, an extended CONNECT:", *headers, "response :status: 200", "DATA both ways: WebSocket frames"],
            "WebSocket /chat",
            "own Connection",
        ),
        (
            "stream 5",
            ["the same, for a second WebSocket:", "its own frames, window and close"],
            "WebSocket /feed",
            "own Connection",
        ),
    ]
    body.append(_box(left, 20, column, 34))
    body.append(_text(left + column / 2, 42, "Browser tab", "t b", "middle"))
    body.append(_box(right, 20, column, 34))
    body.append(_text(right + column / 2, 42, "Server", "t b", "middle"))
    body.append(_text(middle_x + middle_width / 2, 36, "one TCP connection, TLS with ALPN h2", "t b", "middle"))
    body.append(_text(middle_x + middle_width / 2, 52, "HTTP/2 frames of every stream, interleaved", "t s", "middle"))
    y = 72.0
    top = y
    step = 16.0
    for stream, lines, client_part, server_part in rows:
        height = len(lines) * step + 34
        body.append(_box(middle_x, y, middle_width, height, "card", rx=6))
        body.append(_text(middle_x + 12, y + 20, stream, "t b"))
        body += _lines(middle_x + 84, y + 20, lines, "t m", "start", step=step)
        centre = y + height / 2
        if client_part:
            body.append(_box(left, centre - 16, column, 32))
            body.append(_text(left + column / 2, centre + 5, client_part, "t", "middle"))
            body.append(arrow(left + column + 2, centre, middle_x - 2, centre, line_class="ac", head_class="ach"))
        body.append(_box(right, centre - 16, column, 32))
        body.append(_text(right + column / 2, centre + 5, server_part, "t", "middle"))
        body.append(arrow(right - 2, centre, middle_x + middle_width + 2, centre, line_class="as", head_class="ash"))
        y += height + 12
    body.append(
        element("rect", x=middle_x - 10, y=top - 8, width=middle_width + 20, height=y - top + 4, rx=10, class_="group")
    )
    body += _lines(
        width / 2,
        y + 18,
        [
            "Each WebSocket stream has its own flow-control window, reopened as its application reads:",
            "a stalled WebSocket stops only its own stream. A failure resets that stream (RST_STREAM);",
            "a closing handshake ends it (END_STREAM). The connection and the other streams go on.",
        ],
        "t s",
        "middle",
        step=16,
    )
    height = y + 74
    description = (
        "WebSockets over HTTP/2 (RFC 8441). One TCP connection with TLS, where ALPN chose h2, carries several "
        "streams. On stream 0 the server's SETTINGS enable extended CONNECT (setting 0x8 = 1). Stream 1 carries "
        "the page: a GET answered with status 200 by process_request. Stream 3 is a WebSocket: the browser sends "
        "an extended CONNECT (" + ", ".join(headers) + "), the server answers status 200, and WebSocket frames "
        "then travel in DATA frames both ways, to a Connection and a handler of its own. Stream 5 is a second "
        "WebSocket with its own frames, window and close. Each stream's flow-control window is reopened as its "
        "application reads, so a stalled WebSocket stops only its own stream; a failure resets that stream and a "
        "closing handshake ends it, while the connection and the other streams go on."
    )
    return _svg(
        width, height, "WebSockets as streams of one HTTP/2 connection", description, body, name="http2-streams"
    )


#: Every diagram of the guide, by file name (without ``.svg``).
DIAGRAMS: dict[str, Callable[[], str]] = {
    "opening-handshake": opening_handshake,
    "frame-layout": frame_layout,
    "masking": masking,
    "closing-handshake": closing_handshake,
    "end-to-end": end_to_end,
    "fan-out": fan_out,
    "http2-streams": http2_streams,
}


def write_all(directory: Path = DIRECTORY) -> list[Path]:
    """Draw every diagram into ``directory``; returns the files whose content changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, draw in DIAGRAMS.items():
        path = directory / f"{name}.svg"
        svg = draw()
        # Rewriting identical files would needlessly make Sphinx rebuild every page that shows them.
        if not path.exists() or path.read_text(encoding="utf-8") != svg:
            path.write_text(svg, encoding="utf-8")
            changed.append(path)
    return changed


def _on_builder_inited(app: Any) -> None:
    write_all(Path(app.srcdir) / "_static" / "diagrams")


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", _on_builder_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    for written in write_all():
        print(f"wrote {written}")
