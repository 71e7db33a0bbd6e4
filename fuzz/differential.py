"""Differential fuzzing: one byte stream, three WebSocket servers, compared.

    python fuzz/differential.py --seconds 120 [--seed N] [--show 3]

Random frame sequences as a client sends them (masked; mostly valid, with one
mutation from a list of RFC 6455 violations and edge cases, cut into random
chunks) are fed to the server side of wsproto_core's ``Connection``, wsproto's
``Connection`` and websockets' sans-I/O ``Protocol`` (``Side.SERVER``,
``State.OPEN``). Each run is reduced to the messages it delivered (whole: text
or binary, with data), the Pings and Pongs, and the close code it ended with
(the peer's code for a received Close, the failure code when the server failed
the connection, or ``None`` if it is still waiting for bytes).

websockets' ``Protocol`` hands out frames and leaves UTF-8 validation of text
messages to its connection layer, which closes with 1007; that layer is
emulated here (a whole text message is decoded, invalid UTF-8 ends with 1007).

Disagreements are classified:

* ``unspecified``: the RFC leaves the behaviour open (close codes that RFC 6455
  section 7.4.2 reserves without saying what a receiver does: 1004, 1012-1014
  assigned later by IANA, 1016-2999);
* ``theirs``: wsproto_core and one other agree; the odd one out is named with the
  RFC section that wsproto_core's failure cites;
* ``ours``: the two others agree against wsproto_core (to review: possibly our bug);
* ``all differ``: to review by hand.

Each class is printed with a count and the shortest examples (hex and frames).
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import wsproto.connection as wsproto_connection
import wsproto.events as wsproto_events
from _common import build_frame
from websockets.frames import Opcode as WsOpcode
from websockets.protocol import Protocol, Side, State

from wsproto_core.connection import Connection, ConnectionType
from wsproto_core.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

Outcome = tuple[tuple[Any, ...], ...]

# ------------------------------------------------------------------ generation

TEXTS = [b"", b"Hello", "\u00e9t\u00e9 \u20ac \U0001f600".encode(), b"x" * 130, b"y" * 70000]
BAD_UTF8 = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"ok\xce", b"\xf8\x88\x80\x80\x80"]
CLOSE_CODES = [
    0,
    999,
    1000,
    1001,
    1002,
    1003,
    1004,
    1005,
    1006,
    1007,
    1011,
    1012,
    1014,
    1015,
    1016,
    2999,
    3000,
    4999,
    5000,
]


def random_stream(rng: random.Random) -> tuple[bytes, list[str]]:
    """A client's frames (masked) with some mutations; also a description of them."""
    frames: list[bytes] = []
    notes: list[str] = []
    mask = os.urandom(4)

    def add(note: str, opcode: int, payload: bytes = b"", **options: Any) -> None:
        options.setdefault("mask", mask)
        frames.append(build_frame(opcode, payload, **options))
        notes.append(note)

    for _ in range(rng.randint(1, 5)):
        choice = rng.randrange(24)
        text = rng.choice(TEXTS)
        if choice < 6:
            add("text", 1, text)
        elif choice < 8:
            add("binary", 2, os.urandom(rng.choice((0, 3, 126, 300))))
        elif choice < 10:
            cut = rng.randint(0, len(text))
            add("text frag", 1, text[:cut], fin=False)
            if rng.random() < 0.3:
                add("ping mid-message", 9, b"mid")
            add("cont fin", 0, text[cut:])
        elif choice == 10:
            add("ping", 9, os.urandom(rng.choice((0, 5, 125))))
        elif choice == 11:
            add("pong", 0xA, b"unsolicited")
        elif choice == 12:
            add("bad utf8 text", 1, b"ab" + rng.choice(BAD_UTF8) + rng.choice((b"", b"cd")))
        elif choice == 13:
            bad = rng.choice(BAD_UTF8)
            add("bad utf8 frag", 1, b"ok" + bad[:1], fin=False)
            add("bad utf8 cont", 0, bad[1:] + b"z")
        elif choice == 14:
            code = rng.choice(CLOSE_CODES)
            add(f"close {code}", 8, code.to_bytes(2, "big") + rng.choice((b"", b"bye")))
        elif choice == 15:
            add(rng.choice(("close 1-byte", "close empty")), 8, rng.choice((b"\x03", b"")))
        elif choice == 16:
            add("close bad utf8 reason", 8, b"\x03\xe8" + rng.choice(BAD_UTF8))
        elif choice == 17:
            add("rsv bits", rng.choice((1, 2, 9)), b"r", rsv=rng.randint(1, 7))
        elif choice == 18:
            opcode = rng.choice((3, 4, 7, 0xB, 0xF))
            add(f"reserved opcode {opcode:#x}", opcode, b"z")
        elif choice == 19:
            add("control too long", rng.choice((8, 9, 0xA)), b"p" * 126)
        elif choice == 20:
            add("fragmented control", rng.choice((9, 0xA, 8)), b"\x03\xe8", fin=False)
        elif choice == 21:
            add("orphan continuation", 0, b"c", fin=rng.random() < 0.5)
        elif choice == 22:
            add("unmasked", rng.choice((1, 2, 9)), b"u", mask=None)
        else:
            kind = rng.randrange(3)
            if kind == 0:
                add("64-bit length msb", 2, b"", length=1 << 63, length_size=64)
            elif kind == 1:
                add("non-minimal length", 1, b"abc", length_size=rng.choice((16, 64)))
            else:
                add("data frame inside fragmented message", 1, b"a", fin=False)
                add("(new text frame)", 1, b"b")
    return b"".join(frames), notes


def split(rng: random.Random, data: bytes) -> list[bytes]:
    if rng.random() < 0.5:
        return [data]
    pieces, position = [], 0
    while position < len(data):
        size = rng.choice((1, 2, 3, 7, 64, 1000))
        pieces.append(data[position : position + size])
        position += size
    return pieces


# ------------------------------------------------------------------ the three servers


def run_ours(pieces: list[bytes]) -> Outcome:
    conn = Connection(ConnectionType.SERVER, max_frame_size=None, max_message_size=None)
    out: list[tuple[Any, ...]] = []
    buffer: list[bytes] = []
    for piece in pieces:
        conn.receive_data(piece)
        for event in conn.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                buffer.append(event.data.encode() if isinstance(event, TextMessage) else event.data)
                if event.message_finished:
                    out.append(("text" if isinstance(event, TextMessage) else "binary", b"".join(buffer)))
                    buffer = []
            elif isinstance(event, (Ping, Pong)):
                out.append((type(event).__name__.lower(), event.payload))
            elif isinstance(event, CloseConnection):
                out.append(("close", int(event.code)))
                return tuple(out)
    return tuple(out)


def run_wsproto(pieces: list[bytes]) -> Outcome:
    conn = wsproto_connection.Connection(wsproto_connection.ConnectionType.SERVER)
    out: list[tuple[Any, ...]] = []
    buffer: list[bytes] = []
    for piece in pieces:
        conn.receive_data(piece)
        for event in conn.events():
            if isinstance(event, wsproto_events.Message):
                data = event.data.encode("utf-8", "surrogatepass") if isinstance(event.data, str) else event.data
                buffer.append(bytes(data))
                if event.message_finished:
                    kind = "text" if isinstance(event, wsproto_events.TextMessage) else "binary"
                    out.append((kind, b"".join(buffer)))
                    buffer = []
            elif isinstance(event, (wsproto_events.Ping, wsproto_events.Pong)):
                out.append((type(event).__name__.lower(), bytes(event.payload)))
            elif isinstance(event, wsproto_events.CloseConnection):
                out.append(("close", int(event.code)))
                return tuple(out)
    return tuple(out)


def run_websockets(pieces: list[bytes]) -> Outcome:
    protocol = Protocol(Side.SERVER, state=State.OPEN, max_size=None)
    out: list[tuple[Any, ...]] = []
    buffer: list[bytes] = []
    kind = ""
    for piece in pieces:
        protocol.receive_data(piece)
        for frame in protocol.events_received():
            if frame.opcode in (WsOpcode.TEXT, WsOpcode.BINARY, WsOpcode.CONT):
                if frame.opcode is not WsOpcode.CONT:
                    kind = "text" if frame.opcode is WsOpcode.TEXT else "binary"
                buffer.append(frame.data)
                if frame.fin:
                    data = b"".join(buffer)
                    buffer = []
                    if kind == "text":
                        # The connection layer's UTF-8 check (it closes with 1007).
                        try:
                            data.decode("utf-8")
                        except UnicodeDecodeError:
                            out.append(("close", 1007))
                            return tuple(out)
                    out.append((kind, data))
            elif frame.opcode in (WsOpcode.PING, WsOpcode.PONG):
                out.append((frame.opcode.name.lower(), frame.data))
            elif frame.opcode is WsOpcode.CLOSE:
                break
        if protocol.close_rcvd is not None:
            out.append(("close", int(protocol.close_rcvd.code)))
            return tuple(out)
        if protocol.close_sent is not None:
            out.append(("close", int(protocol.close_sent.code)))
            return tuple(out)
    return tuple(out)


IMPLEMENTATIONS: dict[str, Callable[[list[bytes]], Outcome]] = {
    "wsproto_core": run_ours,
    "wsproto": run_wsproto,
    "websockets": run_websockets,
}

# ------------------------------------------------------------------ classification

SECTIONS = [
    ("Reserved bits", "RFC 6455 5.2 (RSV bits MUST be 0)"),
    ("nmasked frame", "RFC 6455 5.1 (server MUST fail on an unmasked frame)"),
    ("Reserved control opcode", "RFC 6455 5.2 (reserved opcodes: fail)"),
    ("Reserved data opcode", "RFC 6455 5.2 (reserved opcodes: fail)"),
    ("Fragmented", "RFC 6455 5.5 (control frames MUST NOT be fragmented)"),
    ("payload over 125", "RFC 6455 5.5 (control payload <= 125)"),
    ("Continuation frame without", "RFC 6455 5.4 (continuation without a message)"),
    ("New data frame inside", "RFC 6455 5.4 (fragments MUST NOT be interleaved)"),
    ("Text message is not valid UTF-8", "RFC 6455 8.1 (invalid UTF-8 text: fail with 1007)"),
    ("reason is not valid UTF-8", "RFC 6455 5.5.1 / 8.1 (Close reason MUST be UTF-8)"),
    ("1-byte payload", "RFC 6455 5.5.1 (a Close body starts with a 2-byte code)"),
    ("invalid close code", "RFC 6455 7.4.1 / 7.4.2 (close codes that MUST NOT be sent)"),
    ("most significant bit", "RFC 6455 5.2 (64-bit length MSB MUST be 0)"),
]
UNSPECIFIED_CODES = {1004, 1012, 1013, 1014, *range(1016, 3000)}


def our_reason(pieces: list[bytes]) -> str:
    conn = Connection(ConnectionType.SERVER, max_frame_size=None, max_message_size=None)
    for piece in pieces:
        conn.receive_data(piece)
        for _ in conn.events():
            pass
        if conn.failure is not None:
            return str(conn.failure)
    return ""


def classify(notes: list[str], pieces: list[bytes], outcomes: dict[str, Outcome]) -> tuple[str, str]:
    ours, wsp, wss = outcomes["wsproto_core"], outcomes["wsproto"], outcomes["websockets"]
    close_codes = {int(note.split()[1]) for note in notes if note.startswith("close ") and note.split()[1].isdigit()}
    if close_codes & UNSPECIFIED_CODES:
        return "unspecified", "close code reserved by RFC 6455 7.4.2 with no receiver rule (IANA registry)"
    if "non-minimal length" in notes and ours == wss and wsp != ours:
        return "unspecified", "non-minimal length encoding: RFC 6455 5.2's MUST binds the sender; wsproto fails it"
    reason = our_reason(pieces)
    section = next((text for key, text in SECTIONS if key in reason), reason or "no failure on our side")
    if ours == wsp:
        return "theirs: websockets", section
    if ours == wss:
        return "theirs: wsproto", section
    if wsp == wss:
        return "ours", section
    return "all differ", section


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--show", type=int, default=2, help="examples per class and section")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    found: dict[tuple[str, str], list[tuple[int, list[str], bytes, dict[str, Outcome]]]] = collections.defaultdict(list)
    runs = 0
    start = time.monotonic()
    while time.monotonic() - start < args.seconds:
        stream, notes = random_stream(rng)
        pieces = split(rng, stream)
        outcomes = {name: run(pieces) for name, run in IMPLEMENTATIONS.items()}
        runs += 1
        if len(set(outcomes.values())) > 1:
            found[classify(notes, pieces, outcomes)].append((len(stream), notes, stream, outcomes))
    elapsed = time.monotonic() - start
    print(f"differential: seed {seed}, {runs} streams in {elapsed:.0f} s ({runs / elapsed:.0f}/s)")
    for (kind, section), cases in sorted(found.items(), key=lambda item: (item[0][0], -len(item[1]))):
        print(f"\n[{kind}] {section}: {len(cases)} streams")
        for _, notes, stream, outcomes in sorted(cases, key=lambda case: case[0])[: args.show]:
            shown = stream.hex() if len(stream) <= 80 else stream[:80].hex() + "..."
            print(f"  frames: {', '.join(notes)}\n  bytes:  {shown}")
            for name, outcome in outcomes.items():
                summary = [(item[0], item[1] if item[0] == "close" else len(item[1])) for item in outcome]
                print(f"    {name:13} {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
