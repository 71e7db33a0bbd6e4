"""Benchmark wsproto_core's Connection against wsproto and websockets' sans-I/O core.

Run from the repository root::

    python benchmarks/bench_core.py [--quick] [--json out.json] [--markdown]

All three implementations are measured in ONE interleaved run: every repetition
visits every case, and within a case the implementations take turns (the order
rotates from one repetition to the next), so drift in machine load hits them
alike. Each (case, implementation) pair is calibrated once to an iteration count
that takes about ``--target`` seconds; the reported time is the median over the
repetitions. Ratios are throughput ratios: ``core/websockets = 2.00x`` means
wsproto_core handled twice as many messages per second.

Frames are built once, outside the timed loops, with wsproto_core's frame codec
(``frames.frame_header``; masking by the independent big-int XOR below), and every
library parses the same bytes, so a codec bug fails wsproto's and websockets' rows.
After each timed batch the result is checked (event count, type, and payload of
the last event; the bytes of the last frame sent), so a broken fast path fails
loudly instead of looking fast. See benchmarks/README.md for what each case means.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.metadata
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets.frames
from bench_handshake import REQUEST as HANDSHAKE_REQUEST
from bench_handshake import RESPONSE as HANDSHAKE_RESPONSE
from bench_handshake import (
    SAMPLE_KEY,
    core_client_handshake,
    core_handshake,
    websockets_client_handshake,
    websockets_handshake,
    wsproto_client_handshake,
    wsproto_handshake,
)
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Opcode as WsOpcode
from websockets.protocol import Protocol, Side, State
from websockets.server import ServerProtocol
from wsproto import WSConnection as WpWSConnection
from wsproto import events as wp_events
from wsproto.connection import Connection as WpConnection
from wsproto.connection import ConnectionType as WpType
from wsproto.extensions import PerMessageDeflate as WpPerMessageDeflate

import wsproto_core
import wsproto_core.masking
from wsproto_core import events as core_events
from wsproto_core.connection import Connection as CoreConnection
from wsproto_core.connection import ConnectionType as CoreType
from wsproto_core.frames import frame_header, read_frame_header
from wsproto_core.permessage_deflate import PerMessageDeflate as CorePerMessageDeflate

#: The Sec-WebSocket-Accept that answers bench_handshake's request (RFC 6455 section 1.3's key).
HANDSHAKE_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
CORE, WSPROTO, WEBSOCKETS = "wsproto_core", "wsproto", "websockets"
IMPLS = (CORE, WSPROTO, WEBSOCKETS)

KiB = 1024
MiB = 1024 * KiB
SIZES = (16, KiB, 16 * KiB, MiB, 16 * MiB)
BATCH = 100  # messages per receive_data in the batching cases
STREAM_PIECE = 4 * KiB  # piece size of the streaming case
MEMORY_PIECE = 64 * KiB  # piece size of the peak-memory measurement
IDLE_CONNECTIONS = 1000  # connections allocated to measure the idle size

OP_TEXT, OP_BINARY = 0x1, 0x2


class CheckFailed(AssertionError):
    """An implementation produced the wrong result: its timing is not reported."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# --------------------------------------------------------------------------- frames


def xor_mask(data: bytes, mask: bytes) -> bytes:
    """RFC 6455 masking, independent of the libraries under test (big-int XOR: C speed, O(n))."""
    length = len(data)
    if not length:
        return b""
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(length, "little")


def build_frame(opcode: int, payload: bytes, mask: bytes | None, fin: bool = True) -> bytes:
    """Serialise one frame: a client (masked) frame when ``mask`` is given, else a server frame."""
    header = frame_header((0x80 if fin else 0) | opcode, len(payload), mask)
    return header + (payload if mask is None else xor_mask(payload, mask))


def parse_frame(wire: bytes) -> tuple[int, bool, bytes]:
    """Parse exactly one frame: ``(first header byte, masked, unmasked payload)``."""
    header = read_frame_header(wire)
    check(header is not None, f"{len(wire)} bytes do not hold a frame header")
    assert header is not None
    first, length, mask, position = header
    payload = wire[position:]
    check(len(payload) == length, f"frame says {length} payload bytes, {len(payload)} follow")
    if mask is not None:
        payload = xor_mask(payload, bytes(mask))
    return first, mask is not None, payload


def make_text(size: int) -> str:
    """Mostly ASCII text with some 2-, 3- and 4-byte characters, exactly ``size`` bytes in UTF-8."""
    unit = "The quick brown fox jumps over the lazy dog; Grüße, naïve café — 東京 🙂. "
    parts: list[str] = []
    used = 0
    index = 0
    while used < size:
        char = unit[index % len(unit)]
        index += 1
        width = len(char.encode("utf-8"))
        if used + width > size:
            char, width = "x", 1
        parts.append(char)
        used += width
    text = "".join(parts)
    assert len(text.encode("utf-8")) == size
    return text


def fmt_size(size: int) -> str:
    if size >= MiB and size % MiB == 0:
        return f"{size // MiB} MiB"
    if size >= KiB and size % KiB == 0:
        return f"{size // KiB} KiB"
    return f"{size} B"


# ---------------------------------------------------------------------------- cases

# A runner is (run, verify): run(n) does n operations and returns what verify(result, n)
# needs to check them. Only run() is timed.
Run = Callable[[int], Any]
Verify = Callable[[Any, int], None]
Runner = tuple[Run, Verify]
Memory = dict[str, dict[str, float]]  # measurement -> implementation -> value


@dataclass
class Case:
    name: str
    group: str  # "receive", "send", "stream", "handshake"
    msg_bytes: int  # payload bytes per message
    msgs_per_op: int  # messages per timed operation
    factories: dict[str, Callable[[], Runner]]
    results: dict[str, Result] = field(default_factory=dict)

    @property
    def bytes_per_op(self) -> int:
        return self.msg_bytes * self.msgs_per_op


@dataclass
class Result:
    run: Run | None = None
    verify: Verify | None = None
    iterations: int = 0
    samples: list[float] = field(default_factory=list)  # seconds per operation, one per repetition
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples and not self.error else None

    @property
    def spread(self) -> float | None:
        """Interquartile range of the samples relative to their median."""
        if len(self.samples) < 4 or self.error:
            return None
        quartiles = statistics.quantiles(self.samples, n=4)
        return (quartiles[2] - quartiles[0]) / statistics.median(self.samples)


def core_type(role: str) -> CoreType:
    return CoreType.SERVER if role == "server" else CoreType.CLIENT


def wp_type(role: str) -> WpType:
    return WpType.SERVER if role == "server" else WpType.CLIENT


def ws_protocol(role: str) -> Protocol:
    return Protocol(Side.SERVER if role == "server" else Side.CLIENT, state=State.OPEN, max_size=None)


# A browser's upgrade request, fed to each server whole: the rows marked "ws" measure the
# object that servers built on these libraries really keep after the handshake.
UPGRADE_REQUEST = (
    b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Origin: https://example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0\r\n"
)
DEFLATE_OFFER = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"


def upgrade_request(deflate: bool) -> bytes:
    return UPGRADE_REQUEST + (DEFLATE_OFFER if deflate else b"") + b"\r\n"


def core_upgraded(deflate: bool = False) -> wsproto_core.WSConnection:
    """A server ``WSConnection`` after a real handshake, as uvicorn or hypercorn hold it."""
    ws = wsproto_core.WSConnection(CoreType.SERVER)
    ws.receive_data(upgrade_request(deflate))
    [request] = ws.events()
    check(isinstance(request, core_events.Request), f"got {request!r}, not a Request")
    ws.send(core_events.AcceptConnection(extensions=[CorePerMessageDeflate()] if deflate else []))
    check(ws.state is wsproto_core.ConnectionState.OPEN, f"state {ws.state} after the handshake")
    check(ws.connection is not None and bool(ws.connection.extensions) == deflate, "extension not negotiated")
    return ws


def wsproto_upgraded(deflate: bool = False) -> WpWSConnection:
    ws = WpWSConnection(WpType.SERVER)
    ws.receive_data(upgrade_request(deflate))
    [request] = ws.events()
    check(isinstance(request, wp_events.Request), f"got {request!r}, not a Request")
    ws.send(wp_events.AcceptConnection(extensions=[WpPerMessageDeflate()] if deflate else []))
    check(ws.state.name == "OPEN", f"state {ws.state} after the handshake")
    return ws


def websockets_upgraded(deflate: bool = False) -> ServerProtocol:
    proto = ServerProtocol(max_size=None, extensions=[ServerPerMessageDeflateFactory()] if deflate else None)
    proto.receive_data(upgrade_request(deflate))
    [request] = proto.events_received()
    proto.send_response(proto.accept(request))  # type: ignore[arg-type]
    proto.data_to_send()
    check(proto.state is State.OPEN, f"state {proto.state} after the handshake")
    check(bool(proto.extensions) == deflate, "extension not negotiated")
    return proto


def receive_case(role: str, opcode: int, payload: bytes, count: int, name: str, *, upgraded: bool = False) -> Case:
    """``count`` messages with ``payload``, in one receive_data call per operation.

    ``upgraded``: through each library's server object after a real handshake
    (wsproto_core's and wsproto's ``WSConnection``, websockets' ``ServerProtocol``),
    with the methods looked up on the object at each call, as servers do.
    """
    text = payload.decode("utf-8") if opcode == OP_TEXT else None
    # The server receives masked client frames, the client unmasked server frames.
    rng = random.Random(len(payload) * 7 + count)
    wire = b"".join(build_frame(opcode, payload, rng.randbytes(4) if role == "server" else None) for _ in range(count))
    expected = text if text is not None else payload
    core_cls = core_events.TextMessage if text is not None else core_events.BytesMessage
    wp_cls = wp_events.TextMessage if text is not None else wp_events.BytesMessage

    def verify_message(result: Any, n: int, cls: type) -> None:
        seen, event = result
        check(seen == n * count, f"{seen} events for {n * count} messages")
        check(type(event) is cls, f"last event is {type(event).__name__}, not {cls.__name__}")
        check(event.message_finished and event.frame_finished, "last event does not finish its message")
        check(event.data == expected, "last event carries the wrong payload")

    def through_object(conn: Any) -> Run:
        def run(n: int) -> Any:
            seen = 0
            event = None
            for _ in range(n):
                conn.receive_data(wire)
                for event in conn.events():  # noqa: B007 - the last event is checked after the loop
                    seen += 1
            return seen, event

        return run

    def core() -> Runner:
        if upgraded:
            return through_object(core_upgraded()), lambda result, n: verify_message(result, n, core_cls)
        conn = CoreConnection(core_type(role))
        receive_data, events = conn.receive_data, conn.events

        def run(n: int) -> Any:
            seen = 0
            event = None
            for _ in range(n):
                receive_data(wire)
                for event in events():  # noqa: B007 - the last event is checked after the loop
                    seen += 1
            return seen, event

        return run, lambda result, n: verify_message(result, n, core_cls)

    def wsproto() -> Runner:
        if upgraded:
            return through_object(wsproto_upgraded()), lambda result, n: verify_message(result, n, wp_cls)
        conn = WpConnection(wp_type(role))
        receive_data, events = conn.receive_data, conn.events

        def run(n: int) -> Any:
            seen = 0
            event = None
            for _ in range(n):
                receive_data(wire)
                for event in events():  # noqa: B007 - the last event is checked after the loop
                    seen += 1
            return seen, event

        return run, lambda result, n: verify_message(result, n, wp_cls)

    def websockets() -> Runner:
        proto = websockets_upgraded() if upgraded else ws_protocol(role)
        receive_data, events_received = proto.receive_data, proto.events_received

        if upgraded and text is None:

            def run(n: int) -> Any:
                seen = 0
                frame = None
                for _ in range(n):
                    proto.receive_data(wire)
                    for frame in proto.events_received():  # noqa: B007 - the last frame is checked after the loop
                        seen += 1
                return seen, frame, None

        elif upgraded:

            def run(n: int) -> Any:
                seen = 0
                frame = decoded = None
                for _ in range(n):
                    proto.receive_data(wire)
                    for frame in proto.events_received():
                        decoded = frame.data.decode()
                        seen += 1
                return seen, frame, decoded

        elif text is None:

            def run(n: int) -> Any:
                seen = 0
                frame = None
                for _ in range(n):
                    receive_data(wire)
                    for frame in events_received():  # noqa: B007 - the last frame is checked after the loop
                        seen += 1
                return seen, frame, None

        else:
            # websockets' Protocol hands out TEXT frames as bytes; its asyncio/sync layers
            # decode them. Decode here too, so every implementation delivers a str.
            def run(n: int) -> Any:
                seen = 0
                frame = decoded = None
                for _ in range(n):
                    receive_data(wire)
                    for frame in events_received():
                        decoded = frame.data.decode()
                        seen += 1
                return seen, frame, decoded

        def verify(result: Any, n: int) -> None:
            seen, frame, decoded = result
            check(seen == n * count, f"{seen} frames for {n * count} messages")
            check(frame is not None and frame.fin, "last frame missing or not final")
            check(frame.opcode is (WsOpcode.TEXT if text is not None else WsOpcode.BINARY), "wrong opcode")
            check((decoded if text is not None else frame.data) == expected, "last frame carries the wrong payload")
            check(proto.state is State.OPEN, f"protocol left OPEN: {proto.state}")

        return run, verify

    return Case(name, "receive", len(payload), count, {CORE: core, WSPROTO: wsproto, WEBSOCKETS: websockets})


def send_case(role: str, opcode: int, payload: bytes, name: str, *, upgraded: bool = False) -> Case:
    """Build the event and serialise it: one message per operation.

    ``upgraded``: as for :func:`receive_case` (server role only).
    """
    text = payload.decode("utf-8") if opcode == OP_TEXT else None
    masked = role == "client"

    def verify_wire(wire: bytes) -> None:
        first, was_masked, data = parse_frame(wire)
        check(first == 0x80 | opcode, f"first header byte {first:#x}")
        check(was_masked == masked, f"frame {'not ' if masked else ''}masked in the {role} role")
        check(data == payload, "frame carries the wrong payload")

    def through_object(conn: Any, message: Callable[..., Any], data: Any) -> Run:
        def run(n: int) -> Any:
            wire = None
            for _ in range(n):
                wire = conn.send(message(data))
            return wire

        return run

    def core() -> Runner:
        if upgraded:
            cls = core_events.BytesMessage if text is None else core_events.TextMessage
            run = through_object(core_upgraded(), cls, payload if text is None else text)
            return run, lambda wire, n: verify_wire(wire)
        conn = CoreConnection(core_type(role))
        send = conn.send
        if text is None:
            bytes_message = core_events.BytesMessage

            def run(n: int) -> Any:
                wire = None
                for _ in range(n):
                    wire = send(bytes_message(payload))
                return wire

        else:
            text_message = core_events.TextMessage

            def run(n: int) -> Any:
                wire = None
                for _ in range(n):
                    wire = send(text_message(text))
                return wire

        return run, lambda wire, n: verify_wire(wire)

    def wsproto() -> Runner:
        if upgraded:
            data = payload if text is None else text
            message = wp_events.BytesMessage if text is None else wp_events.TextMessage
            run = through_object(wsproto_upgraded(), lambda data: message(data=data), data)
            return run, lambda wire, n: verify_wire(wire)
        conn = WpConnection(wp_type(role))
        send = conn.send
        if text is None:
            bytes_message = wp_events.BytesMessage

            def run(n: int) -> Any:
                wire = None
                for _ in range(n):
                    wire = send(bytes_message(data=payload))
                return wire

        else:
            text_message = wp_events.TextMessage

            def run(n: int) -> Any:
                wire = None
                for _ in range(n):
                    wire = send(text_message(data=text))
                return wire

        return run, lambda wire, n: verify_wire(wire)

    def websockets() -> Runner:
        proto = websockets_upgraded() if upgraded else ws_protocol(role)
        data_to_send = proto.data_to_send
        if upgraded and text is None:

            def run(n: int) -> Any:
                writes = None
                for _ in range(n):
                    proto.send_binary(payload)
                    writes = proto.data_to_send()
                return writes

        elif upgraded:

            def run(n: int) -> Any:
                writes = None
                for _ in range(n):
                    proto.send_text(text.encode())
                    writes = proto.data_to_send()
                return writes

        elif text is None:
            send_binary = proto.send_binary

            def run(n: int) -> Any:
                writes = None
                for _ in range(n):
                    send_binary(payload)
                    writes = data_to_send()
                return writes

        else:
            # send_text() takes bytes: encoding the str is part of sending a text message.
            send_text = proto.send_text

            def run(n: int) -> Any:
                writes = None
                for _ in range(n):
                    send_text(text.encode())
                    writes = data_to_send()
                return writes

        def verify(writes: Any, n: int) -> None:
            check(isinstance(writes, list) and len(writes) == 1, f"data_to_send() returned {type(writes)}")
            verify_wire(writes[0])

        return run, verify

    return Case(name, "send", len(payload), 1, {CORE: core, WSPROTO: wsproto, WEBSOCKETS: websockets})


def stream_case(payload: bytes, piece: int, name: str, min_partial_size: int | None = None) -> Case:
    """One masked frame fed to a server in ``piece``-byte pieces; consumers drop each piece.

    ``min_partial_size`` is wsproto_core's (its default when ``None``; 0 hands
    out every piece, as wsproto does).
    """
    wire = build_frame(OP_BINARY, payload, b"\x5a\xc3\x17\x8e")
    pieces = [wire[i : i + piece] for i in range(0, len(wire), piece)]
    size = len(payload)

    def verify_stream(result: Any, n: int) -> None:
        total, finished = result
        check(total == n * size, f"{total} payload bytes delivered, expected {n * size}")
        check(finished == n, f"{finished} finished messages, expected {n}")

    def first_check(run_once: Callable[[], bytes]) -> None:
        # The timed loop only counts bytes; check the content once, at preparation.
        check(run_once() == payload, "streamed payload differs from the one sent")

    def core() -> Runner:
        options = {} if min_partial_size is None else {"min_partial_size": min_partial_size}
        conn = CoreConnection(CoreType.SERVER, **options)
        receive_data, events = conn.receive_data, conn.events

        def collect() -> bytes:
            chunks = []
            for data in pieces:
                receive_data(data)
                chunks.extend(event.data for event in events())
            return b"".join(chunks)

        first_check(collect)

        def run(n: int) -> Any:
            total = finished = 0
            for _ in range(n):
                for data in pieces:
                    receive_data(data)
                    for event in events():
                        total += len(event.data)
                        if event.message_finished:
                            finished += 1
            return total, finished

        return run, verify_stream

    def wsproto() -> Runner:
        conn = WpConnection(WpType.SERVER)
        receive_data, events = conn.receive_data, conn.events

        def collect() -> bytes:
            chunks = []
            for data in pieces:
                receive_data(data)
                chunks.extend(bytes(event.data) for event in events())
            return b"".join(chunks)

        first_check(collect)

        def run(n: int) -> Any:
            total = finished = 0
            for _ in range(n):
                for data in pieces:
                    receive_data(data)
                    for event in events():
                        total += len(event.data)
                        if event.message_finished:
                            finished += 1
            return total, finished

        return run, verify_stream

    def websockets() -> Runner:
        # websockets buffers the whole frame and delivers it once complete.
        proto = ws_protocol("server")
        receive_data, events_received = proto.receive_data, proto.events_received

        def collect() -> bytes:
            chunks = []
            for data in pieces:
                receive_data(data)
                chunks.extend(bytes(frame.data) for frame in events_received())
            return b"".join(chunks)

        first_check(collect)

        def run(n: int) -> Any:
            total = finished = 0
            for _ in range(n):
                for data in pieces:
                    receive_data(data)
                    for frame in events_received():
                        total += len(frame.data)
                        if frame.fin:
                            finished += 1
            return total, finished

        return run, verify_stream

    return Case(name, "stream", size, 1, {CORE: core, WSPROTO: wsproto, WEBSOCKETS: websockets})


def handshake_case() -> Case:
    """Server opening handshakes: ``bench_handshake.py``'s browser-like request, accepted."""

    def runner(handshake: Callable[[], bytes]) -> Callable[[], Runner]:
        def factory() -> Runner:
            def run(n: int) -> Any:
                response = b""
                for _ in range(n):
                    response = handshake()
                return response

            def verify(response: Any, n: int) -> None:
                check(response.startswith(b"HTTP/1.1 101 "), f"not a 101: {response[:40]!r}")
                check(HANDSHAKE_ACCEPT in response, "wrong Sec-WebSocket-Accept")

            return run, verify

        return factory

    return Case(
        "handshake server (browser request, accepted)",
        "handshake",
        len(HANDSHAKE_REQUEST),
        1,
        {
            CORE: runner(core_handshake),
            WSPROTO: runner(wsproto_handshake),
            WEBSOCKETS: runner(websockets_handshake),
        },
    )


def client_handshake_case() -> Case:
    """Client opening handshakes: ``bench_handshake.py``'s request written, its 101 read."""

    def runner(handshake: Callable[[], bytes]) -> Callable[[], Runner]:
        def factory() -> Runner:
            def run(n: int) -> Any:
                request = b""
                for _ in range(n):
                    request = handshake()
                return request

            def verify(request: Any, n: int) -> None:
                check(request.startswith(b"GET /chat?room=1 HTTP/1.1\r\n"), f"not the request: {request[:40]!r}")
                check(SAMPLE_KEY in request, "wrong Sec-WebSocket-Key")

            return run, verify

        return factory

    return Case(
        "handshake client (request, 101 read)",
        "handshake",
        len(HANDSHAKE_RESPONSE),
        1,
        {
            CORE: runner(core_client_handshake),
            WSPROTO: runner(wsproto_client_handshake),
            WEBSOCKETS: runner(websockets_client_handshake),
        },
    )


def build_cases() -> list[Case]:
    rng = random.Random(6455)
    binary = {size: rng.randbytes(size) for size in SIZES}
    text = make_text(KiB).encode("utf-8")
    cases: list[Case] = []
    for direction in ("recv", "send"):
        for role in ("server", "client"):
            what = "masked" if (role == "server") == (direction == "recv") else "unmasked"
            for size in SIZES:
                for opcode, payload, label in ((OP_BINARY, binary[size], ""), (OP_TEXT, text, " text")):
                    if opcode == OP_TEXT and size != KiB:
                        continue
                    name = f"{direction} {role} {fmt_size(size)}{label} ({what})"
                    if direction == "recv":
                        cases.append(receive_case(role, opcode, payload, 1, name))
                    else:
                        cases.append(send_case(role, opcode, payload, name))
            if direction == "recv":
                name = f"recv {role} {BATCH}x16 B in one call ({what})"
                cases.append(receive_case(role, OP_BINARY, binary[16], BATCH, name))
    # Through each library's server object after a real handshake, as servers use them, with
    # the bare-Connection rows of the same sizes beside them (128 B and 16 B text exist only here).
    small_text = make_text(16).encode("utf-8")
    binary[128] = rng.randbytes(128)
    for direction in ("recv", "send"):
        what = "masked" if direction == "recv" else "unmasked"
        for payload, opcode, label in (
            (binary[16], OP_BINARY, "16 B"),
            (binary[128], OP_BINARY, "128 B"),
            (binary[KiB], OP_BINARY, "1 KiB"),
            (small_text, OP_TEXT, "16 B text"),
            (text, OP_TEXT, "1 KiB text"),
        ):
            plain = f"{direction} server {label} ({what})"
            upgraded = f"ws {direction} server {label} ({what})"
            if direction == "recv":
                if label in ("128 B", "16 B text"):
                    cases.append(receive_case("server", opcode, payload, 1, plain))
                cases.append(receive_case("server", opcode, payload, 1, upgraded, upgraded=True))
            else:
                if label in ("128 B", "16 B text"):
                    cases.append(send_case("server", opcode, payload, plain))
                cases.append(send_case("server", opcode, payload, upgraded, upgraded=True))
    cases.append(handshake_case())
    cases.append(client_handshake_case())
    # Two sizes with the same piece size: equal MB/s means the work is linear in the message size.
    cases.extend(
        stream_case(binary[size], STREAM_PIECE, f"stream server {fmt_size(size)} in {fmt_size(STREAM_PIECE)} pieces")
        for size in (MiB, 16 * MiB)
    )
    # The same with every 4 KiB piece handed out as it arrives (wsproto's way).
    cases.append(
        stream_case(
            binary[MiB],
            STREAM_PIECE,
            f"stream server 1 MiB in {fmt_size(STREAM_PIECE)}, every piece",
            min_partial_size=0,
        )
    )
    # A large message as a driver reads it (64 KiB per read), whole to the
    # application: the drivers' 1 MiB min_partial_size, where the payload is
    # gathered in place (Connection.payload_buffer) instead of joined.
    large = rng.randbytes(100_000)
    cases.extend(
        stream_case(payload, 64 * KiB, f"stream server {label} in 64 KiB reads, whole", min_partial_size=MiB)
        for payload, label in ((large, "100 KB"), (binary[MiB], "1 MiB"))
    )
    return cases


# ------------------------------------------------------------------------- timing


#: The clock of every sample: wall time by default; ``--clock cpu`` takes this
#: process's CPU time, which other processes on a shared machine disturb less.
CLOCK: Callable[[], float] = time.perf_counter


def timed(run: Run, n: int) -> tuple[float, Any]:
    gc_was_enabled = gc.isenabled()
    gc.disable()
    clock = CLOCK
    try:
        start = clock()
        result = run(n)
        elapsed = clock() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return elapsed, result


def calibrate(result: Result, target: float) -> None:
    """Warm up, and pick the iteration count that takes about ``target`` seconds."""
    assert result.run is not None and result.verify is not None
    n = 1
    while True:
        elapsed, value = timed(result.run, n)
        result.verify(value, n)
        if elapsed >= target / 5 or n >= 1 << 26:
            break
        n *= max(2, min(100, int(target / 5 / max(elapsed, 1e-7))))
    result.iterations = max(1, round(n * target / elapsed))
    # One more warm-up run at the final count, checked as well.
    elapsed, value = timed(result.run, result.iterations)
    result.verify(value, result.iterations)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def measure(cases: list[Case], reps: int, target: float, progress: bool) -> list[Baseline]:
    started = time.perf_counter()
    for case in cases:
        for impl, factory in case.factories.items():
            result = case.results[impl] = Result()
            try:
                result.run, result.verify = factory()
                calibrate(result, target)
            except Exception as exc:  # noqa: BLE001 - reported in the table, the run goes on
                result.error = describe(exc)
        if progress:
            print(f"  calibrated {case.name}", file=sys.stderr)
    baselines = baseline_cases()
    for baseline in baselines:
        calibrate(baseline.result, target)
    for rep in range(reps):
        gc.collect()
        for case in cases:
            # Round-robin: the implementation that goes first rotates every repetition.
            order = IMPLS[rep % len(IMPLS) :] + IMPLS[: rep % len(IMPLS)]
            for impl in order:
                result = case.results[impl]
                if result.error:
                    continue
                assert result.run is not None and result.verify is not None
                try:
                    elapsed, value = timed(result.run, result.iterations)
                    result.verify(value, result.iterations)
                except Exception as exc:  # noqa: BLE001
                    result.error = describe(exc)
                    continue
                result.samples.append(elapsed / result.iterations)
        for baseline in baselines:
            result = baseline.result
            assert result.run is not None and result.verify is not None
            elapsed, value = timed(result.run, result.iterations)
            result.verify(value, result.iterations)
            result.samples.append(elapsed / result.iterations)
        if progress:
            print(f"  repetition {rep + 1}/{reps} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return baselines


@dataclass
class Baseline:
    name: str
    size: int
    result: Result


def baseline_cases() -> list[Baseline]:
    """Plain copies in the same run: a ceiling for the large-message cases on this machine."""

    def copy_case(size: int) -> Baseline:
        source = bytearray(os.urandom(size))

        def copy(n: int) -> Any:
            out = b""
            for _ in range(n):
                out = bytes(source)
            return out

        def verify(out: Any, n: int) -> None:
            check(len(out) == size and out[-64:] == source[-64:], "copy is wrong")

        return Baseline(f"bytes(buf): copy a {fmt_size(size)} bytearray", size, Result(run=copy, verify=verify))

    def fill_and_copy(n: int) -> Any:
        out = b""
        for _ in range(n):
            out = bytes(bytearray(16 * MiB))
        return out

    def verify_fill(out: Any, n: int) -> None:
        check(len(out) == 16 * MiB and out[-64:] == bytes(64), "zero-fill is wrong")

    return [
        copy_case(MiB),
        copy_case(16 * MiB),
        Baseline("bytes(bytearray(16 MiB)): zero-fill + copy", 16 * MiB, Result(run=fill_and_copy, verify=verify_fill)),
    ]


# ------------------------------------------------------------------------- memory


def traced_growth(build: Callable[[], Any]) -> tuple[int, int, Any]:
    """Run ``build`` under tracemalloc: (bytes it left allocated, its peak bytes, its result)."""
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        value = build()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return current - base, peak - base, value


def idle_connection_sizes() -> dict[str, float]:
    factories: dict[str, Callable[[], object]] = {
        CORE: lambda: CoreConnection(CoreType.SERVER),
        WSPROTO: lambda: WpConnection(WpType.SERVER),
        WEBSOCKETS: lambda: ws_protocol("server"),
    }
    sizes = {}
    for impl, factory in factories.items():
        factory()  # warm any lazily built module-level state before tracing
        slots: list[object] = [None] * IDLE_CONNECTIONS  # allocated before tracing: not counted

        def fill(factory: Callable[[], object] = factory, slots: list[object] = slots) -> list[object]:
            for i in range(IDLE_CONNECTIONS):
                slots[i] = factory()
            return slots

        current, _, _ = traced_growth(fill)
        sizes[impl] = current / IDLE_CONNECTIONS
        del slots
    return sizes


def idle_upgraded_sizes(deflate: bool) -> dict[str, float]:
    """Bytes per idle server object after a real handshake (permessage-deflate: zlib not yet allocated)."""
    factories: dict[str, Callable[[], object]] = {
        CORE: lambda: core_upgraded(deflate),
        WSPROTO: lambda: wsproto_upgraded(deflate),
        WEBSOCKETS: lambda: websockets_upgraded(deflate),
    }
    sizes = {}
    for impl, factory in factories.items():
        factory()
        slots: list[object] = [None] * IDLE_CONNECTIONS

        def fill(factory: Callable[[], object] = factory, slots: list[object] = slots) -> list[object]:
            for i in range(IDLE_CONNECTIONS):
                slots[i] = factory()
            return slots

        current, _, _ = traced_growth(fill)
        sizes[impl] = current / IDLE_CONNECTIONS
        del slots
    return sizes


def dispatch_overhead(reps: int) -> dict[str, float]:
    """Time through a server ``WSConnection`` after a real handshake over a bare ``Connection``.

    Both are called the way servers call them (the method looked up on the object at every call),
    in alternating batches timed in CPU time (``time.process_time``: other processes on a busy
    machine count less than in wall time); the result is the median of the paired ratios, so
    1.02 means 2% more time per message through ``WSConnection``.
    """
    payload = random.Random(3).randbytes(128)
    wire = build_frame(OP_BINARY, payload, b"\x01\x02\x03\x04")
    bytes_message, text_message = core_events.BytesMessage, core_events.TextMessage
    text = make_text(16)

    def send_binary(conn: Any, n: int) -> None:
        for _ in range(n):
            conn.send(bytes_message(payload))

    def send_text(conn: Any, n: int) -> None:
        for _ in range(n):
            conn.send(text_message(text))

    def receive(conn: Any, n: int) -> None:
        for _ in range(n):
            conn.receive_data(wire)
            for _event in conn.events():
                pass

    ratios: dict[str, float] = {}
    for name, run in (
        ("send 128 B binary", send_binary),
        ("send 16 B text", send_text),
        ("recv 128 B binary (masked)", receive),
    ):
        through, bare = core_upgraded(), CoreConnection(CoreType.SERVER)
        paired = []
        for rep in range(max(reps, 5) * 4):
            times = {}
            for label, conn in (("ws", through), ("conn", bare)) if rep % 2 else (("conn", bare), ("ws", through)):
                start = time.process_time()
                run(conn, 5000)
                times[label] = time.process_time() - start
            paired.append(times["ws"] / times["conn"])
        ratios[name] = statistics.median(paired)
    return ratios


def peak_receive_memory(retain: bool) -> dict[str, float]:
    """Peak traced memory while a server receives one 16 MiB message in 64 KiB pieces.

    ``retain``: the application keeps every payload piece it is handed (what an
    application that wants the whole message must do), else it drops each piece.
    """
    size = 16 * MiB
    payload = random.Random(1).randbytes(size)
    wire = build_frame(OP_BINARY, payload, b"\x01\x02\x03\x04")
    pieces = [wire[i : i + MEMORY_PIECE] for i in range(0, len(wire), MEMORY_PIECE)]
    del wire
    peaks = {}

    for impl in IMPLS:
        if impl == WEBSOCKETS:
            proto = ws_protocol("server")

            def feed(proto: Protocol = proto) -> Any:
                kept, total = [], 0
                for data in pieces:
                    proto.receive_data(data)
                    for frame in proto.events_received():
                        total += len(frame.data)
                        if retain:
                            kept.append(frame.data)
                return total, kept

        else:
            conn: Any = CoreConnection(CoreType.SERVER) if impl == CORE else WpConnection(WpType.SERVER)

            def feed(conn: Any = conn) -> Any:
                kept, total = [], 0
                for data in pieces:
                    conn.receive_data(data)
                    for event in conn.events():
                        total += len(event.data)
                        if retain:
                            kept.append(event.data)
                return total, kept

        _, peak, (total, kept) = traced_growth(feed)
        check(total == size, f"{impl}: {total} bytes received, expected {size}")
        if retain:
            check(b"".join(kept) == payload, f"{impl}: received payload differs")
        peaks[impl] = peak / size
        del kept
    return peaks


# ------------------------------------------------------------------------ reports


def git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def websockets_speedups() -> bool:
    try:
        from websockets import speedups  # noqa: PLC0415
    except ImportError:
        return False
    return websockets.frames.apply_mask is speedups.apply_mask


def metadata(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "wsproto_core": wsproto_core.__version__,
        "wsproto_core_revision": git_revision(),
        "wsproto_core_speedups": wsproto_core.masking.SPEEDUPS,
        "wsproto": importlib.metadata.version("wsproto"),
        "websockets": importlib.metadata.version("websockets"),
        "websockets_speedups": websockets_speedups(),
        "quick": args.quick,
        "clock": args.clock,
        "repetitions": args.reps,
        "target_seconds": args.target,
    }


def rate(case: Case, impl: str) -> float | None:
    median = case.results[impl].median
    return case.msgs_per_op / median if median else None


def paired_ratios(case: Case, other: str) -> list[float]:
    """Throughput ratio core/other within each repetition (the two ran seconds apart).

    Machine speed drifts between repetitions and moves all implementations alike;
    pairing the samples of one repetition cancels that drift.
    """
    core, theirs = case.results[CORE], case.results[other]
    if core.error or theirs.error:
        return []
    return [their_time / core_time for core_time, their_time in zip(core.samples, theirs.samples, strict=True)]


def ratio(case: Case, other: str) -> float | None:
    """Median of the per-repetition throughput ratios core/other."""
    ratios = paired_ratios(case, other)
    return statistics.median(ratios) if ratios else None


def ratio_spread(case: Case) -> float | None:
    """The larger, over the two ratios, of the interquartile range of the per-repetition ratios / median."""
    spreads = []
    for other in (WEBSOCKETS, WSPROTO):
        ratios = paired_ratios(case, other)
        if len(ratios) >= 4:
            quartiles = statistics.quantiles(ratios, n=4)
            spreads.append((quartiles[2] - quartiles[0]) / statistics.median(ratios))
    return max(spreads) if spreads else None


def fmt_rate(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e4:
        return f"{value / 1e3:.0f}k"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}"


def fmt_mb(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def fmt_ratio(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.3f}x" if value < 0.1 else f"{value:.2f}x"


def cell(case: Case, impl: str, text: str) -> str:
    return "FAILED" if case.results[impl].error else text


def throughput_rows(cases: list[Case]) -> list[list[str]]:
    rows = []
    for case in cases:
        rates = {impl: rate(case, impl) for impl in IMPLS}
        spread = ratio_spread(case)
        rows.append(
            [
                case.name,
                *(cell(case, impl, fmt_rate(rates[impl])) for impl in IMPLS),
                *(cell(case, impl, fmt_mb(rates[impl] and rates[impl] * case.msg_bytes / 1e6)) for impl in IMPLS),
                fmt_ratio(ratio(case, WEBSOCKETS)),
                fmt_ratio(ratio(case, WSPROTO)),
                "-" if spread is None else f"{spread * 100:.0f}%",
            ]
        )
    return rows


THROUGHPUT_HEADER = [
    "case",
    "core msg/s",
    "wsproto msg/s",
    "websockets msg/s",
    "core MB/s",
    "wsproto MB/s",
    "websockets MB/s",
    "core/websockets",
    "core/wsproto",
    "ratio IQR",
]


def memory_rows(memory: Memory) -> list[list[str]]:
    rows: list[list[str]] = []
    if not memory:
        return rows
    for label, values, unit in (
        ("idle OPEN connection (bytes)", memory["idle_bytes"], "{:,.0f}"),
        ("idle server after a real handshake (bytes)", memory["idle_upgraded"], "{:,.0f}"),
        ("the same, permessage-deflate negotiated (bytes)", memory["idle_upgraded_deflate"], "{:,.0f}"),
        ("peak recv 16 MiB / 64 KiB pieces, app keeps pieces (x msg size)", memory["peak_retained"], "{:.3f}"),
        ("peak recv 16 MiB / 64 KiB pieces, app drops pieces (x msg size)", memory["peak_dropped"], "{:.3f}"),
    ):
        rows.append(
            [
                label,
                *(unit.format(values[impl]) for impl in IMPLS),
                fmt_ratio(values[CORE] / values[WEBSOCKETS] if values[WEBSOCKETS] else None),
                fmt_ratio(values[CORE] / values[WSPROTO] if values[WSPROTO] else None),
            ]
        )
    return rows


MEMORY_HEADER = ["memory (lower is better)", CORE, WSPROTO, WEBSOCKETS, "core/websockets", "core/wsproto"]


def baseline_rows(baselines: list[Baseline]) -> list[list[str]]:
    rows = []
    for baseline in baselines:
        median = baseline.result.median
        if median:
            rows.append([baseline.name, f"{median * 1e3:.3f} ms", f"{baseline.size / median / 1e9:.2f}"])
        else:
            rows.append([baseline.name, "-", "-"])
    return rows


BASELINE_HEADER = ["memory-copy baseline", "time", "GB/s"]


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for index, row in enumerate([header, *rows]):
        parts = [row[0].ljust(widths[0])] + [
            value.rjust(width) for value, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def meta_lines(meta: dict[str, Any], elapsed: float) -> list[str]:
    return [
        f"date: {meta['date']}   {meta['python']} on {meta['platform']} ({meta['cpus']} CPUs)",
        f"wsproto_core {meta['wsproto_core']} (rev {meta['wsproto_core_revision']}, "
        f"C masking {'on' if meta['wsproto_core_speedups'] else 'off'})   wsproto {meta['wsproto']}   "
        f"websockets {meta['websockets']} (C speedups {'ACTIVE' if meta['websockets_speedups'] else 'NOT active'})",
        f"{meta['repetitions']} interleaved repetitions of ~{meta['target_seconds'] * 1e3:.0f} ms per measurement, "
        f"medians; run took {elapsed:.0f} s{' (--quick)' if meta['quick'] else ''}",
    ]


LEGEND = (
    "msg/s: messages per second (median over repetitions). MB/s: payload megabytes (10^6 B) per second.\n"
    "core/X: wsproto_core throughput / X's, median of the per-repetition ratios; above 1.00x core is faster.\n"
    "ratio IQR: interquartile range / median of those per-repetition ratios (the larger of the two); it tells\n"
    "how far to trust a ratio. Absolute rates drift with machine load; ratios from paired samples much less.\n"
    "Memory ratios are core/X sizes: below 1.00x wsproto_core uses less."
)


def report(cases: list[Case], baselines: list[Baseline], memory: Memory, meta: dict[str, Any], elapsed: float) -> str:
    parts = [
        "\n".join(meta_lines(meta, elapsed)),
        text_table(THROUGHPUT_HEADER, throughput_rows(cases)),
        *([text_table(MEMORY_HEADER, memory_rows(memory))] if memory else []),
        text_table(BASELINE_HEADER, baseline_rows(baselines)),
        LEGEND,
    ]
    errors = [
        f"  {case.name} / {impl}: {result.error}"
        for case in cases
        for impl, result in case.results.items()
        if result.error
    ]
    if errors:
        parts.append("FAILURES (not timed):\n" + "\n".join(errors))
    return "\n\n".join(parts)


def markdown_report(
    cases: list[Case], baselines: list[Baseline], memory: Memory, meta: dict[str, Any], elapsed: float
) -> str:
    return "\n\n".join(
        [
            "\n".join(f"- {line}" for line in meta_lines(meta, elapsed)),
            markdown_table(THROUGHPUT_HEADER, throughput_rows(cases)),
            *([markdown_table(MEMORY_HEADER, memory_rows(memory))] if memory else []),
            markdown_table(BASELINE_HEADER, baseline_rows(baselines)),
            "\n".join(f"{line}  " for line in LEGEND.splitlines()),
        ]
    )


def json_report(
    cases: list[Case], baselines: list[Baseline], memory: Memory, meta: dict[str, Any], elapsed: float
) -> Any:
    return {
        "meta": {**meta, "elapsed_seconds": elapsed},
        "cases": [
            {
                "name": case.name,
                "group": case.group,
                "message_bytes": case.msg_bytes,
                "messages_per_op": case.msgs_per_op,
                "results": {
                    impl: {
                        "iterations": result.iterations,
                        "seconds_per_op": result.samples,
                        "median_seconds_per_op": result.median,
                        "messages_per_second": rate(case, impl),
                        "megabytes_per_second": (rate(case, impl) or 0) * case.msg_bytes / 1e6 or None,
                        "spread": result.spread,
                        "error": result.error,
                    }
                    for impl, result in case.results.items()
                },
                "ratio_core_over_websockets": ratio(case, WEBSOCKETS),
                "ratio_core_over_wsproto": ratio(case, WSPROTO),
                "per_repetition_ratio_core_over_websockets": paired_ratios(case, WEBSOCKETS),
                "per_repetition_ratio_core_over_wsproto": paired_ratios(case, WSPROTO),
                "ratio_spread": ratio_spread(case),
            }
            for case in cases
        ],
        "memory": memory or None,
        "baselines": [
            {
                "name": baseline.name,
                "bytes": baseline.size,
                "seconds_per_op": baseline.result.samples,
                "median_seconds": baseline.result.median,
                "gigabytes_per_second": baseline.size / baseline.result.median / 1e9
                if baseline.result.median
                else None,
            }
            for baseline in baselines
        ],
    }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repetitions (whole run < 60 s)")
    parser.add_argument("--json", metavar="PATH", help="also write every sample and the metadata as JSON")
    parser.add_argument("--markdown", action="store_true", help="also print the tables as Markdown")
    parser.add_argument("--reps", type=int, help="repetitions (default 15, --quick 7)")
    parser.add_argument("--target", type=float, help="seconds per measurement (default 0.1, --quick 0.05)")
    parser.add_argument("--filter", metavar="TEXT", help="only the cases whose name contains TEXT")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc measurements")
    parser.add_argument("--no-overhead", action="store_true", help="skip the WSConnection-over-Connection timing")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="time samples in wall time (default) or in this process's CPU time (less disturbed on a busy machine)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.reps is None:
        args.reps = 7 if args.quick else 15
    if args.target is None:
        args.target = 0.05 if args.quick else 0.1

    meta = metadata(args)
    cases = build_cases()
    if args.filter:
        cases = [case for case in cases if args.filter in case.name]
    progress = not args.quiet
    if progress:
        print(f"{len(cases)} cases x {len(IMPLS)} implementations, {args.reps} repetitions", file=sys.stderr)
    baselines = measure(cases, args.reps, args.target, progress)
    memory: Memory = {}
    if not args.no_memory:
        if progress:
            print("  measuring memory (tracemalloc)", file=sys.stderr)
        memory = {
            "idle_bytes": idle_connection_sizes(),
            "idle_upgraded": idle_upgraded_sizes(deflate=False),
            "idle_upgraded_deflate": idle_upgraded_sizes(deflate=True),
            "peak_retained": peak_receive_memory(retain=True),
            "peak_dropped": peak_receive_memory(retain=False),
        }
    overhead = {} if args.no_overhead else dispatch_overhead(args.reps)
    elapsed_total = time.perf_counter() - START

    print(report(cases, baselines, memory, meta, elapsed_total))
    if overhead:
        print("\nWSConnection after a real handshake over a bare Connection (paired CPU time, median ratio):")
        for name, value in overhead.items():
            print(f"  {name:<28} {value:.3f} ({100 * (value - 1):+.1f}%)")
    if args.markdown:
        print()
        print(markdown_report(cases, baselines, memory, meta, elapsed_total))
    if args.json:
        Path(args.json).write_text(
            json.dumps(json_report(cases, baselines, memory, meta, elapsed_total), indent=1) + "\n"
        )
    failed = any(result.error for case in cases for result in case.results.values())
    return 1 if failed else 0


START = time.perf_counter()

if __name__ == "__main__":
    sys.exit(main())
