"""``python -m wsproto_core fuzz URL``: a compliance fuzzer for WebSocket servers.

For each example, hypothesis generates a sequence of frames, valid and invalid
(built with :mod:`wsproto_core.crafting`), and the bytes are written on a fresh
connection in generated chunks. The server's reaction is compared with what
RFC 6455 requires, and the oracle that says what it requires is wsproto_core
itself: the same bytes go into a server-role :class:`Connection`, which tells
which messages and Pings the server received before the sequence ended, and
whether it ended with the client's Close or with a violation (and which close
code that violation calls for).

The target is assumed to be an echo server, as the Autobahn|Testsuite assumes:
every message comes back with the same type and payload. ``--no-echo`` checks
only the protocol reactions. Each distinct finding is shrunk by hypothesis and
reported with the smallest byte sequence seen that triggers it.

Blocking sockets, every read with a timeout: nothing here can hang longer than
``--timeout`` per read, and ``--budget`` bounds the whole run.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import random
import re
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, TextIO

from .. import WSConnection
from ..connection import Connection, ConnectionType
from ..crafting import CraftedFrame, LengthEncoding, close_frame, fragment
from ..drivers import HandshakeRejected, InvalidURL, parse_url
from ..drivers._common import ClientOpening, WebSocketURL
from ..errors import RemoteProtocolError
from ..events import BytesMessage, CloseConnection, Event, Ping, Pong, Request, TextMessage
from ..frames import Opcode, RsvBits, read_frame_header
from ..permessage_deflate import DeflateParameters, PerMessageDeflate
from ._shared import error

if TYPE_CHECKING:
    from hypothesis.strategies import DrawFn, SearchStrategy

    from .fuzz_report import CaseReport

__all__ = [
    "Case",
    "Expectation",
    "Finding",
    "FuzzOptions",
    "Reaction",
    "Unreachable",
    "accepted_codes",
    "compress_messages",
    "expect",
    "frame_spans",
    "fuzz",
    "judge",
    "probe",
    "run_fuzz",
]

EXIT_OK, EXIT_VIOLATIONS, EXIT_USAGE = 0, 1, 2

#: The close codes accepted for each code the oracle names. Section 8.1 only
#: says "Fail the WebSocket Connection" for invalid UTF-8: 1007 is its code in
#: section 7.4.1, but 1002 (protocol error) is the generic one and is accepted
#: too. 1008 (policy violation) is the generic code for refusing a message, so
#: it is accepted where 1009 is due.
ACCEPTED_CODES = {1002: {1002}, 1007: {1007, 1002}, 1009: {1009, 1008}}


def accepted_codes(code: int, reason: str) -> set[int]:
    """The close codes that answer a violation correctly (``reason``: the oracle's words)."""
    if reason.startswith("Close frame"):
        # A Close payload may break two rules at once (a bad code and a reason
        # that is not UTF-8), and the RFC gives no order for checking them.
        return {1002, 1007}
    if "most significant bit" in reason:
        # A 2**63-byte frame is also over any size limit: 1009 names a real problem.
        return {1002, 1009}
    return ACCEPTED_CODES.get(code, {code})


# Kinds of finding: a MUST of the RFC broken is a violation; a SHOULD, a warning.
VIOLATION, WARNING = "violation", "warning"


@dataclasses.dataclass(frozen=True)
class FuzzOptions:
    """The settings of one fuzzing run (the command's options).

    :param examples: how many generated sequences to try (shrinking comes on top).
    :param seed: the hypothesis seed; ``None`` draws one at random.
    :param timeout: seconds to wait for each read of the server's reaction
        (connecting and the handshake get at least ``MIN_OPEN_TIMEOUT``).
    :param max_frames: the most frames a generated sequence holds.
    :param echo: whether the server echoes every message.
    :param budget: seconds after which no further example is run (``None``: no limit).
    :param max_message_size: the server's message size limit, if it has one the
        fuzzer should check: bigger messages are then generated, and must fail
        the connection with 1009 (or 1008).
    :param headers: extra HTTP headers for the opening handshake (``Origin``,
        ``Authorization``, ...).
    :param subprotocols: the subprotocols to offer.
    :param deflate: offer permessage-deflate (RFC 7692); when the server
        accepts, every message the fuzzer sends is compressed, and the oracle
        decompresses with the parameters the server chose.
    """

    examples: int = 100
    seed: int | None = None
    timeout: float = 2.0
    max_frames: int = 8
    echo: bool = True
    budget: float | None = None
    max_message_size: int | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()
    subprotocols: tuple[str, ...] = ()
    deflate: bool = False


@dataclasses.dataclass(frozen=True)
class Case:
    """One example: the frames, where the writes cut the bytes, and what the fuzzer added.

    ``padding`` zero bytes complete a frame that the generated bytes left
    unfinished (a length field may promise more than was written), and
    ``closing`` is the Close that ends a sequence which did not end itself.
    """

    frames: tuple[CraftedFrame, ...]
    cuts: tuple[int, ...] = ()
    padding: int = 0
    closing: CraftedFrame | None = None

    def data(self) -> bytes:
        """The bytes written after the handshake."""
        data = b"".join(frame.to_bytes() for frame in self.frames) + bytes(self.padding)
        return data if self.closing is None else data + self.closing.to_bytes()

    def chunks(self) -> list[bytes]:
        """The bytes, cut into the writes made."""
        data = self.data()
        points = sorted({cut % (len(data) + 1) for cut in self.cuts} | {0, len(data)})
        return [data[start:end] for start, end in itertools.pairwise(points) if end > start]

    def describe(self) -> list[str]:
        """One line per frame, and per addition."""
        lines = [frame.describe() for frame in self.frames]
        if self.padding:
            lines.append(f"+ {self.padding} zero bytes: the rest of the frame the receiver is reading")
        if self.closing is not None:
            lines.append(f"{self.closing.describe()}  (added: ends the sequence)")
        return lines


@dataclasses.dataclass
class Expectation:
    """What the oracle (a server-role :class:`Connection`) made of a case.

    ``outcome`` is ``"close"`` (the sequence ends with a valid Close from the
    client), ``"violation"`` (with a protocol violation: ``code`` and
    ``reason`` say which) or ``"open"`` (it stops inside a frame, so nothing
    is due). ``messages`` and ``pings`` are those received before the end.
    ``complete`` says whether the frame that ended the sequence was written
    whole, ``fin`` whether it had the FIN bit.
    """

    case: Case
    outcome: str = "open"
    code: int | None = None
    reason: str = ""
    messages: list[tuple[int, bytes]] = dataclasses.field(default_factory=list)
    pings: list[bytes] = dataclasses.field(default_factory=list)
    complete: bool = True
    fin: bool = True


@dataclasses.dataclass
class Reaction:
    """What the server did: messages and Pongs received, then how it ended.

    ``ending`` is ``"close"`` (a Close frame: ``code``), ``"eof"`` (the TCP
    connection closed without one), ``"timeout"``, or ``"invalid"`` (a frame
    that breaks the RFC: ``invalid`` says why). ``received`` holds the bytes
    read, for the reports.
    """

    messages: list[tuple[int, bytes]] = dataclasses.field(default_factory=list)
    pongs: list[bytes] = dataclasses.field(default_factory=list)
    ending: str = "timeout"
    code: int | None = None
    invalid: str = ""
    received: bytearray = dataclasses.field(default_factory=bytearray, compare=False, repr=False)


@dataclasses.dataclass
class Finding:
    """A server behaviour that RFC 6455 (or the echo assumption) rules out."""

    kind: str
    severity: str
    section: str
    expected: str
    observed: str
    case: Case

    @property
    def key(self) -> str:
        """What identifies the finding across examples: its kind, codes and sizes left out (not UTF-8's 8)."""
        return re.sub(r"0x[0-9a-f]+|\b\d{2,}\b", "N", self.kind)

    def size(self) -> tuple[int, int, int, bytes]:
        """The order in which the smallest reproducer is kept (then the bytes, so that zero masks win)."""
        data = self.case.data()
        return (len(data), len(self.case.frames), len(self.case.chunks()), data)


# ------------------------------------------------------------------ the oracle


class _Assembler:
    """Joins the pieces of each message into ``(opcode, payload)`` pairs, appended to ``messages``."""

    def __init__(self, messages: list[tuple[int, bytes]]) -> None:
        self.messages = messages
        self._text: list[str] = []
        self._binary: list[bytes] = []

    def add(self, event: Event) -> bool:
        """Take ``event`` if it is a piece of a message; return whether it was."""
        if isinstance(event, TextMessage):
            self._text.append(event.data)
            if event.message_finished:
                self.messages.append((Opcode.TEXT, "".join(self._text).encode()))
                self._text.clear()
        elif isinstance(event, BytesMessage):
            self._binary.append(bytes(event.data))
            if event.message_finished:
                self.messages.append((Opcode.BINARY, b"".join(self._binary)))
                self._binary.clear()
        else:
            return False
        return True


def _collect(events: Iterable[Event], expectation: Expectation, assembler: _Assembler) -> bool:
    """Add the oracle's events to ``expectation``; return whether the input ended."""
    for event in events:
        if assembler.add(event):
            pass
        elif isinstance(event, Ping):
            expectation.pings.append(bytes(event.payload))
        elif isinstance(event, CloseConnection):
            expectation.code = event.code
            expectation.reason = event.reason or ""
            return True
    return False


#: The most zero bytes added to finish a frame; a longer one stays unfinished.
MAX_PADDING = 4096


def frame_spans(data: bytes) -> list[tuple[int, int, bool]]:
    """Where a receiver sees frames in ``data``: ``(start, end, fin)`` for each.

    This follows the length fields, not the frames as they were crafted (a
    length field that lies moves the boundaries). The last ``end`` may lie
    past the data: that frame is unfinished, and the missing header bytes
    count as zeros.
    """
    spans: list[tuple[int, int, bool]] = []
    position = 0
    while position < len(data):
        # A header cut short reads as if zeros followed (at most 13 bytes are missing).
        header = read_frame_header(data[position : position + 14].ljust(14, b"\0"))
        assert header is not None  # 14 bytes always hold a whole header
        first, length, _mask, header_size = header
        end = position + header_size + length
        spans.append((position, end, bool(first & 0x80)))
        position = end
    return spans


def expect(
    frames: Sequence[CraftedFrame],
    cuts: Sequence[int] = (),
    mask: bytes = b"\0\0\0\0",
    *,
    max_message_size: int | None = None,
    deflate: DeflateParameters | None = None,
    role: ConnectionType = ConnectionType.SERVER,
) -> Expectation:
    """Run the frames through the oracle and shape the case that will be sent.

    Frames after the one that closes or breaks the connection are dropped, so
    that the server never has unread bytes when it closes (a TCP reset could
    then destroy its Close frame before we read it). A frame left unfinished
    is completed with zero bytes, since a server may well check a frame only
    once it has all of it. When the frames leave the connection open, a Close
    (1000, masked with ``mask``) is added, so that every example ends.
    ``max_message_size`` is the server's limit, if the run checks one.
    With ``deflate`` (the parameters negotiated), the messages are compressed
    first, in order, as one connection compresses them. ``role`` is the role
    of the endpoint under test: ``CLIENT`` for ``fuzz --client``, where the
    frames come from a server and the added Close is unmasked (deflate is
    then not supported).
    """
    if deflate is not None:
        frames = compress_messages(frames, _deflate_pair(deflate)[0])
    oracle = _oracle(max_message_size, deflate, role)
    kept: list[CraftedFrame] = []
    ended = False
    for frame in frames:
        kept.append(frame)
        oracle.receive_data(frame.to_bytes())
        if any(isinstance(event, CloseConnection) for event in oracle.events()):
            ended = True
            break
    case = Case(tuple(kept), tuple(cuts))
    spans = frame_spans(case.data())
    missing = spans[-1][1] - len(case.data()) if spans else 0
    if missing <= MAX_PADDING:
        case = dataclasses.replace(case, padding=missing)
    if not ended:
        closing_mask = mask if role is ConnectionType.SERVER else None
        case = dataclasses.replace(case, closing=close_frame(1000, mask=closing_mask))
    return _expectation(case, _oracle(max_message_size, deflate, role))


def _oracle(
    max_message_size: int | None, deflate: DeflateParameters | None, role: ConnectionType = ConnectionType.SERVER
) -> Connection:
    """A fresh connection in ``role`` (the endpoint under test) that receives as that endpoint should."""
    extensions = [] if deflate is None else [_deflate_pair(deflate)[1]]
    return Connection(role, extensions, max_frame_size=None, max_message_size=max_message_size)


def _deflate_pair(negotiated: DeflateParameters) -> tuple[PerMessageDeflate, PerMessageDeflate]:
    """A client and a server ``PerMessageDeflate`` that agreed on ``negotiated``, fresh."""
    header = negotiated.response()
    client = PerMessageDeflate(
        client_no_context_takeover=negotiated.client_no_context_takeover,
        client_max_window_bits=negotiated.client_max_window_bits,
        server_no_context_takeover=negotiated.server_no_context_takeover,
        server_max_window_bits=negotiated.server_max_window_bits,
    )
    client.finalize(header)
    server = PerMessageDeflate()
    server.accept(header)
    return client, server


def compress_messages(frames: Sequence[CraftedFrame], extension: PerMessageDeflate) -> list[CraftedFrame]:
    """Compress the data messages among ``frames`` with a client's ``extension`` (RFC 7692 section 7.2.1).

    A message starts with a text or binary frame without RSV bits or a lying
    length field, and goes on with its continuation frames; each frame is
    compressed and flushed as it comes, RSV1 on the first. Every other frame
    (control frames, violations) is left as generated.
    """
    carrier = Connection(ConnectionType.CLIENT)  # the hook's ``proto`` argument, unused by PerMessageDeflate
    result: list[CraftedFrame] = []
    compressing = False
    for frame in frames:
        plain = frame.rsv == 0 and frame.declared_length is None
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            compressing = plain
        elif frame.opcode != Opcode.CONTINUATION or not plain:
            result.append(frame)
            continue
        if not compressing:
            result.append(frame)
            continue
        rsv, payload = extension.frame_outbound(
            carrier, Opcode(frame.opcode), RsvBits(False, False, False), frame.payload, frame.fin
        )
        result.append(dataclasses.replace(frame, payload=payload, rsv=4 if rsv.rsv1 else 0))
        compressing = not frame.fin
    return result


def _expectation(case: Case, oracle: Connection) -> Expectation:
    """Feed the case to a fresh oracle frame by frame, noting which frame ended it."""
    expectation = Expectation(case)
    assembler = _Assembler(expectation.messages)
    data = case.data()
    for start, end, fin in frame_spans(data):
        oracle.receive_data(data[start:end])
        if _collect(oracle.events(), expectation, assembler):
            expectation.complete, expectation.fin = end <= len(data), fin
            failure = oracle.failure
            if failure is None:
                expectation.outcome = "close"
            else:
                expectation.outcome, expectation.code, expectation.reason = "violation", failure.code, str(failure)
            break
    return expectation


# ------------------------------------------------------------------ the network


class Unreachable(Exception):
    """The server refused a connection or the handshake."""


def _open(url: WebSocketURL, options: FuzzOptions, timeout: float) -> tuple[socket.socket, Connection]:
    """Connect and do the opening handshake; return the socket and our view of the server."""
    try:
        sock = socket.create_connection((url.host, url.port), timeout=timeout)
    except OSError as exc:
        raise Unreachable(f"cannot connect to {url.host}:{url.port}: {exc}") from None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if url.secure:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=url.host)
        # permessage-deflate is offered only when asked for: the crafted frames
        # are compressed only then.
        handshake = WSConnection(ConnectionType.CLIENT, max_frame_size=None, max_message_size=None)
        opening = ClientOpening(handshake)
        request = Request(
            host=url.authority,
            target=url.target,
            extra_headers=list(options.headers),
            subprotocols=list(options.subprotocols),
            extensions=[PerMessageDeflate()] if options.deflate else [],
        )
        sock.sendall(handshake.send(request))
        while opening.receive(sock.recv(65536)) is None:
            pass
    except HandshakeRejected as exc:
        sock.close()
        raise Unreachable(f"the server rejected the handshake with HTTP {exc.status_code}") from None
    except (OSError, RemoteProtocolError) as exc:
        sock.close()
        raise Unreachable(f"opening handshake failed: {exc or type(exc).__name__}") from None
    assert handshake.connection is not None
    return sock, handshake.connection


def _react(sock: socket.socket, server: Connection, timeout: float) -> Reaction:
    """Read the server's frames until it closes, breaks the RFC, or goes quiet."""
    reaction = Reaction()
    assembler = _Assembler(reaction.messages)
    sock.settimeout(timeout)  # the reaction's own timeout, after the opening's longer one
    while True:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return reaction
        except OSError:
            data = b""
        reaction.received += data
        server.receive_data(data or None)
        for event in server.events():
            if assembler.add(event):
                pass
            elif isinstance(event, Pong):
                reaction.pongs.append(bytes(event.payload))
            elif isinstance(event, CloseConnection):
                if server.failure is not None:
                    reaction.ending, reaction.invalid = "invalid", str(server.failure)
                elif event.code == 1006:
                    reaction.ending = "eof"
                else:
                    reaction.ending, reaction.code = "close", event.code
                return reaction
        if not data:  # pragma: no cover (the 1006 CloseConnection returned above)
            reaction.ending = "eof"
            return reaction


#: The least time given to connecting and the opening handshake: they are not
#: what is being tested, and a loaded machine can be slower than ``timeout``.
MIN_OPEN_TIMEOUT = 5.0


def probe(url: WebSocketURL, case: Case, options: FuzzOptions, timeout: float) -> Reaction:
    """Open a connection, write the case in its chunks and read the reaction (``timeout`` per read).

    A first failure to connect is retried once, after a short pause: a busy
    server's full backlog is not a finding.
    """
    try:
        sock, server = _open(url, options, max(timeout, MIN_OPEN_TIMEOUT))
    except Unreachable:
        time.sleep(0.2)
        sock, server = _open(url, options, max(timeout, MIN_OPEN_TIMEOUT))
    try:
        for chunk in case.chunks():
            try:
                sock.sendall(chunk)
            except OSError:
                break  # the server closed: its reaction is read below
        return _react(sock, server, timeout)
    finally:
        sock.close()


# ------------------------------------------------------------------ the judge


def _show(message: tuple[int, bytes]) -> str:
    opcode, payload = message
    shown = payload if len(payload) <= 40 else payload[:40] + b"..."
    return f"{'text' if opcode == Opcode.TEXT else 'binary'} {shown!r}"


def _is_subsequence(items: Sequence[bytes], within: Sequence[bytes]) -> bool:
    iterator = iter(within)
    return all(any(item == candidate for candidate in iterator) for item in items)


def judge(expectation: Expectation, reaction: Reaction, *, echo: bool = True, peer: str = "server") -> list[Finding]:
    """Compare the reaction of the endpoint under test (``peer``: ``"server"`` or ``"client"``) with the RFC."""
    found: list[Finding] = []
    case = expectation.case

    def add(kind: str, severity: str, section: str, expected: str, observed: str) -> None:
        found.append(Finding(kind, severity, section, expected, observed, case))

    if reaction.ending == "invalid":
        add(
            f"invalid frame from the {peer}: {reaction.invalid}", VIOLATION, "5", "well-formed frames", reaction.invalid
        )
    due = expectation.messages
    if echo:
        for index, got in enumerate(reaction.messages):
            if index >= len(due):
                if expectation.outcome == "violation":
                    add(
                        "data frame after a violation",
                        VIOLATION,
                        "7.1.7",
                        f"no data after the violation ({expectation.reason})",
                        f"message {_show(got)}",
                    )
                else:
                    add("message that was never sent", VIOLATION, "echo", "nothing more", _show(got))
                break
            if got != due[index]:
                add("echoed message differs", VIOLATION, "echo", _show(due[index]), _show(got))
                break
    ended_well = expectation.outcome == "close" and reaction.ending == "close"
    if echo and ended_well and len(reaction.messages) < len(due):
        # The RFC does not make a server answer a message before it answers
        # the client's Close, so a lost echo is a warning (Autobahn's NON-STRICT).
        add(
            "message not echoed before the Close reply",
            WARNING,
            "echo",
            f"{len(due)} message(s) echoed before the Close reply",
            f"{len(reaction.messages)}, then Close {reaction.code}",
        )
    # Without a Ping, a Pong is an unsolicited heartbeat (section 5.5.3): allowed.
    if expectation.pings and not _is_subsequence(reaction.pongs, expectation.pings):
        add(
            "Pong payload differs from the Ping's",
            VIOLATION,
            "5.5.3",
            f"Pongs with payloads among {expectation.pings!r}",
            f"{reaction.pongs!r}",
        )
    elif ended_well and expectation.pings and (not reaction.pongs or reaction.pongs[-1] != expectation.pings[-1]):
        # Section 5.5.3 lets a server answer only the most recent of several
        # Pings, so only the last one must have its Pong.
        add(
            "Ping not answered",
            VIOLATION,
            "5.5.2",
            f"a Pong {expectation.pings[-1]!r} before the Close reply",
            f"Pongs {reaction.pongs!r}, then Close {reaction.code}",
        )
    if reaction.ending == "invalid":
        return found
    if expectation.outcome == "close":
        if reaction.ending == "eof":
            add("Close not answered", VIOLATION, "5.5.1", "a Close frame in reply", "TCP closed without a Close frame")
        elif reaction.ending == "timeout":
            add("Close not answered", VIOLATION, "5.5.1", "a Close frame in reply", "nothing until the timeout")
    elif expectation.outcome == "violation":
        assert expectation.code is not None
        accepted = accepted_codes(expectation.code, expectation.reason)
        wanted = " or ".join(str(code) for code in sorted(accepted))
        what = expectation.reason
        if reaction.ending == "timeout" and not expectation.complete:
            add(
                "violation in an unfinished frame not detected",
                WARNING,
                _section(what),
                f"the connection failed on the frame's header, Close {wanted}",
                "no Close while the frame was unfinished (the server may wait for the whole frame)",
            )
        elif reaction.ending == "timeout" and expectation.code == 1007 and not expectation.fin:
            # Section 8.1 says to fail on invalid UTF-8, not how soon: a server
            # that checks whole messages only fails once the message ends,
            # which never comes here (Autobahn calls this NON-STRICT).
            add(
                "invalid UTF-8 in an unfinished message not detected (no fail-fast)",
                WARNING,
                "8.1",
                f"the connection failed at the invalid byte, Close {wanted}",
                "no Close while the message was unfinished",
            )
        elif reaction.ending == "timeout":
            add(
                f"violation not detected: {what}",
                VIOLATION,
                _section(what),
                f"the connection failed, Close {wanted}",
                "no Close, connection left open",
            )
        elif reaction.ending == "eof":
            # One kind whatever the violation: a server that never sends a
            # Close when failing would otherwise fill the report.
            add(
                "connection failed without a Close frame",
                WARNING,
                "7.1.7",
                f"Close {wanted} ({what}), then TCP close",
                "TCP closed without a Close frame",
            )
        elif reaction.code not in accepted:
            add(
                f"wrong close code: {what}",
                WARNING,
                "7.1.7, 7.4.1",
                f"Close {wanted}",
                f"Close {reaction.code}",
            )
    return found


def _section(reason: str) -> str:
    """The RFC 6455 section behind one of the oracle's failure reasons."""
    lowered = reason.lower()
    for words, section in (
        # RFC 7692 section 6: RSV1 marks the first frame of a compressed
        # message, nothing else; section 6.2: the payload must inflate.
        ("refused the frame", "5.2; RFC 7692 section 6"),
        ("refused the payload", "7.1.7; RFC 7692 section 6.2"),
        ("utf-8", "8.1"),
        ("close", "5.5.1, 7.4"),
        ("reserved bits", "5.2"),
        ("opcode", "5.2"),
        ("masked", "5.1"),
        ("continuation", "5.4"),
        ("inside a fragmented", "5.4"),
        ("fragmented", "5.5"),
        ("payload over", "5.5"),
        ("significant bit", "5.2"),
    ):
        if words in lowered:
            return section
    return "5"


# ------------------------------------------------------------------ generation


INVALID_UTF8 = (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80", b"\xfe")
INVALID_CLOSE_CODES = (0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535)
VALID_CLOSE_CODES = (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999)


def cases(max_frames: int, max_message_size: int | None = None) -> SearchStrategy[Case]:
    """The hypothesis strategy of examples: mostly valid frames, some violations.

    With ``max_message_size``, messages just over that size (of zero bytes,
    in one frame or two) are among the violations.
    """
    from hypothesis import strategies as st  # noqa: PLC0415 (hypothesis is optional)

    keys = st.binary(min_size=4, max_size=4)
    small = st.binary(max_size=20)

    @st.composite
    def message(draw: DrawFn) -> list[CraftedFrame]:
        mask = draw(keys)
        if draw(st.booleans()):
            opcode, payload = Opcode.TEXT, draw(st.text(max_size=30)).encode()
        else:
            opcode, payload = Opcode.BINARY, draw(st.binary(max_size=60))
        pieces = draw(st.integers(0, 3))
        sizes = draw(st.lists(st.integers(0, 12), min_size=pieces, max_size=pieces))
        pings = draw(st.dictionaries(st.integers(0, max(pieces - 1, 0)), small, max_size=pieces))
        interleave = {index: [CraftedFrame(Opcode.PING, body, mask=mask)] for index, body in pings.items()}
        frames = fragment(opcode, payload, sizes, mask=mask, interleave=interleave if pieces else None)
        encoding = draw(st.sampled_from([LengthEncoding.MINIMAL, LengthEncoding.BITS_16, LengthEncoding.BITS_64]))
        # Non-minimal lengths only on data frames: the RFC bounds a control
        # frame's length to 125, and a receiver may read a 126 marker as more.
        return [frame if frame.opcode & 8 else dataclasses.replace(frame, length_encoding=encoding) for frame in frames]

    control = st.builds(
        lambda opcode, payload, mask: [CraftedFrame(opcode, payload, mask=mask)],
        st.sampled_from([Opcode.PING, Opcode.PONG]),
        small,
        keys,
    )
    close = st.builds(
        lambda code, reason, mask: [close_frame(code, reason.encode(), mask=mask)],
        st.sampled_from(VALID_CLOSE_CODES),
        st.text(max_size=20),
        keys,
    )

    @st.composite
    def violation(draw: DrawFn) -> list[CraftedFrame]:
        mask = draw(keys)
        payload = draw(small)
        kind = draw(st.sampled_from(range(13)))
        if kind == 0:
            return [CraftedFrame(draw(st.sampled_from([3, 4, 5, 6, 7, 11, 12, 13, 14, 15])), payload, mask=mask)]
        if kind == 1:
            opcode = draw(st.sampled_from([Opcode.TEXT, Opcode.BINARY, Opcode.PING]))
            return [CraftedFrame(opcode, b"", rsv=draw(st.integers(1, 7)), mask=mask)]
        if kind == 2:
            return [CraftedFrame(Opcode.BINARY, payload)]  # unmasked
        if kind == 3:
            return [CraftedFrame(Opcode.PING, bytes(draw(st.integers(126, 130))), mask=mask)]
        if kind == 4:
            return [CraftedFrame(draw(st.sampled_from([Opcode.PING, Opcode.PONG])), payload, fin=False, mask=mask)]
        if kind == 5:
            return [CraftedFrame(Opcode.CONTINUATION, payload, mask=mask)]
        if kind == 6:
            opcode = draw(st.sampled_from([Opcode.TEXT, Opcode.BINARY]))
            return [CraftedFrame(Opcode.TEXT, b"a", fin=False, mask=mask), CraftedFrame(opcode, payload, mask=mask)]
        if kind == 7:
            text = draw(st.text(max_size=10)).encode() + draw(st.sampled_from(INVALID_UTF8))
            sizes = draw(st.lists(st.integers(0, 6), max_size=2))
            return fragment(Opcode.TEXT, text + draw(st.text(max_size=5)).encode(), sizes, mask=mask)
        if kind == 8:
            code = draw(st.sampled_from(INVALID_CLOSE_CODES))
            return [close_frame(code, draw(st.text(max_size=10)).encode(), mask=mask)]
        if kind == 9:
            return [close_frame(1000, draw(st.sampled_from(INVALID_UTF8)), mask=mask)]
        if kind == 10:
            return [CraftedFrame(Opcode.CLOSE, payload[:1].ljust(1, b"\x03"), mask=mask)]
        if kind == 11:
            return [
                CraftedFrame(
                    Opcode.BINARY,
                    b"",
                    mask=mask,
                    length_encoding=LengthEncoding.BITS_64,
                    declared_length=(1 << 63) | draw(st.integers(0, 255)),
                )
            ]
        # A length field shorter than the payload: the rest is read as frames.
        body = draw(st.binary(min_size=2, max_size=20))
        return [CraftedFrame(Opcode.BINARY, body, mask=mask, declared_length=draw(st.integers(0, len(body) - 1)))]

    empty_close = st.builds(lambda mask: [close_frame(None, mask=mask)], keys)
    steps = [message(), control, violation(), message(), violation(), close, empty_close]
    if max_message_size is not None:

        @st.composite
        def too_big(draw: DrawFn) -> list[CraftedFrame]:
            size = max_message_size + draw(st.integers(1, 16))
            opcode = draw(st.sampled_from([Opcode.BINARY, Opcode.TEXT]))
            sizes = draw(st.lists(st.integers(0, size), max_size=1))
            return fragment(opcode, bytes(size), sizes, mask=draw(keys))

        steps.append(too_big())
    step = st.one_of(*steps)
    return st.builds(
        lambda steps, cuts: Case(tuple(frame for group in steps for frame in group)[:max_frames], tuple(cuts)),
        st.lists(step, min_size=1, max_size=max(1, max_frames)),
        st.lists(st.integers(0, 1 << 16), max_size=3),
    )


# ------------------------------------------------------------------ the run


class _Reported(AssertionError):
    """Raised for a finding so that hypothesis shrinks it; subclassed per kind."""


def _bind(test: Callable[[Case, frozenset[str]], None], known: frozenset[str]) -> Callable[[Case], None]:
    """``test`` with the kinds known before a round fixed (``@given`` takes no defaults)."""

    def each(case: Case) -> None:
        test(case, known)

    return each


def _unexpected(exc: BaseException) -> bool:
    """Whether ``exc`` holds anything but findings and hypothesis' flakiness reports."""
    from hypothesis.errors import Flaky  # noqa: PLC0415 (optional)

    if isinstance(exc, BaseExceptionGroup):
        return any(_unexpected(inner) for inner in exc.exceptions)
    return not isinstance(exc, _Reported | Flaky)


def fuzz(
    url: str,
    options: FuzzOptions,
    *,
    log: Callable[[str], None] | None = None,
    record: Callable[[Expectation, Reaction, list[Finding]], None] | None = None,
) -> tuple[list[Finding], int]:
    """Fuzz the server at ``url``; return the findings (smallest reproducer each) and the examples run.

    ``record`` is called for every connection judged (shrinking steps
    included), with what was due, what came and what was found: the reports
    are built from it.

    Raises :class:`InvalidURL` for a bad URL, :class:`Unreachable` when the
    first connection fails, and ``ImportError`` without hypothesis.
    """
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings  # noqa: PLC0415 (optional)
    from hypothesis import seed as seeded  # noqa: PLC0415

    target = parse_url(url)
    sock, connection = _open(
        target, options, max(options.timeout, MIN_OPEN_TIMEOUT)
    )  # fail early, and clearly, when nobody answers
    sock.close()
    deflate: DeflateParameters | None = None
    if options.deflate:
        deflate = next(
            (extension.negotiated for extension in connection.extensions if isinstance(extension, PerMessageDeflate)),
            None,
        )
        if deflate is None:
            raise Unreachable("the server declined permessage-deflate (--deflate)")
    findings: dict[str, Finding] = {}
    errors: dict[str, type[_Reported]] = {}
    # The kinds that failed an example, so that hypothesis shrank them: later
    # rounds fail only on others (and keep any smaller reproducer they meet).
    shrunk: set[str] = set()
    started = time.monotonic()
    runs = quiet = 0
    stopped: list[Finding] = []
    last = Case(())

    def over_budget() -> bool:
        return options.budget is not None and time.monotonic() - started > options.budget

    def one(case: Case, known: frozenset[str]) -> None:
        nonlocal runs, quiet, last
        if stopped or over_budget():
            return
        expectation = expect(case.frames, case.cuts, max_message_size=options.max_message_size, deflate=deflate)
        try:
            # Nothing is due when the bytes stop inside a frame: wait less.
            wait = options.timeout if expectation.outcome != "open" else min(options.timeout, 0.5)
            reaction = probe(target, expectation.case, options, wait)
            if expectation.outcome == "close" and reaction.ending == "timeout":
                # Every server answers a Close at once unless it is broken or
                # the machine is busy: make sure before reporting it.
                reaction = probe(target, expectation.case, options, max(wait, MIN_OPEN_TIMEOUT))
        except Unreachable as exc:
            # It answered at the start: the previous example may have broken it.
            stopped.append(
                Finding("server stopped accepting connections", VIOLATION, "-", "a new connection", str(exc), last)
            )
            return
        runs += 1
        last = expectation.case
        found = judge(expectation, reaction, echo=options.echo)
        if record is not None:
            record(expectation, reaction, found)
        for finding in found:
            recorded = findings.get(finding.key)
            if recorded is None or finding.size() < recorded.size():
                if recorded is None and log is not None:
                    log(f"found: {finding.kind}")
                findings[finding.key] = finding
        new = [finding for finding in found if finding.key not in known]
        if not new:
            quiet += 1
            return
        # One exception class per kind: hypothesis shrinks each kind separately.
        shrunk.add(new[0].key)
        kind = errors.setdefault(new[0].key, type(f"Finding{len(errors)}", (_Reported,), {}))
        raise kind(new[0].kind)

    # Hypothesis stops generating soon after its first failures, so the run
    # goes in rounds: each round shrinks the kinds it finds, and later rounds
    # no longer fail on them, until enough examples showed nothing new.
    for round_number in range(1000):
        if quiet >= options.examples or stopped or over_budget():
            break
        before = frozenset(shrunk)

        test = settings(
            max_examples=options.examples - quiet,
            deadline=None,
            database=None,
            phases=(Phase.generate, Phase.shrink),
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
            report_multiple_bugs=True,
            print_blob=False,
        )(given(cases(options.max_frames, options.max_message_size))(_bind(one, before)))
        if options.seed is not None:
            test = seeded(options.seed + round_number)(test)
        try:
            test()
        except Exception as exc:
            # Every finding was recorded, with its smallest reproducer, as it
            # happened. Hypothesis also refuses a failure that does not happen
            # again (a server whose reaction depends on timing): they stand.
            if _unexpected(exc):
                raise
        if shrunk == before:
            break  # a whole round without anything new
    if stopped:
        findings[stopped[0].key] = stopped[0]
    order = {VIOLATION: 0, WARNING: 1}
    return sorted(findings.values(), key=lambda finding: (order[finding.severity], finding.kind)), runs


def format_finding(number: int, finding: Finding) -> str:
    """A finding for people: what was due, what came, and the bytes that show it."""
    case = finding.case
    data = case.data()
    section = {"echo": "echo assumption", "-": "availability"}.get(
        finding.section, f"RFC 6455 section {finding.section}"
    )
    lines = [
        f"[{number}] {finding.severity}: {finding.kind} ({section})",
        f"    expected: {finding.expected}",
        f"    observed: {finding.observed}",
        f"    minimal input ({len(data)} bytes in {len(case.chunks())} write(s)):",
    ]
    hex_text = data.hex(" ")
    lines += [f"      {hex_text[start : start + 96]}" for start in range(0, len(hex_text), 96)] or ["      (none)"]
    if len(case.chunks()) > 1:
        lines.append("    writes: " + " | ".join(str(len(chunk)) for chunk in case.chunks()) + " bytes")
    lines.append("    frames:")
    lines += [f"      {line}" for line in case.describe()]
    return "\n".join(lines)


def campaign_seed(args: argparse.Namespace) -> int | None:
    """The campaign's seed (``--seed`` or a fresh one), or None, said why, if hypothesis is missing."""
    try:
        import hypothesis  # noqa: F401, PLC0415 (optional dependency)
    except ImportError:
        error("the fuzz command needs hypothesis: pip install 'wsproto_core[compliance]' (or pip install hypothesis)")
        return None
    # Drawn here rather than by hypothesis, so that it can be printed and replayed.
    return random.randrange(1 << 32) if args.seed is None else int(args.seed)


def run_fuzz(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run ``fuzz`` with the parsed command line; return the exit code."""
    stream = sys.stdout if out is None else out
    seed = campaign_seed(args)
    if seed is None:
        return EXIT_USAGE
    options = FuzzOptions(
        examples=args.examples,
        seed=seed,
        timeout=args.timeout or 2.0,
        max_frames=args.max_frames,
        echo=not args.no_echo,
        budget=args.budget or None,
        max_message_size=args.max_message_size,
        headers=tuple(args.header),
        subprotocols=tuple(args.subprotocol),
        deflate=args.deflate,
    )

    def log(line: str) -> None:
        if args.verbose:
            print(f"* {line}", file=stream, flush=True)

    from .fuzz_report import FindingReport, Report, report_case, write_reports  # noqa: PLC0415 (a cycle)

    cases: list[CaseReport] = []

    def record(expectation: Expectation, reaction: Reaction, found: list[Finding]) -> None:
        if args.json is not None or args.html is not None:
            cases.append(report_case(len(cases) + 1, "example", expectation, reaction, found))

    mode = "echo server" if options.echo else "protocol reactions only (--no-echo)"
    print(f"* fuzzing {args.url} ({mode}), {options.examples} examples, --seed {seed}", file=stream, flush=True)
    started = time.monotonic()
    try:
        findings, runs = fuzz(args.url, options, log=log, record=record)
    except InvalidURL as exc:
        error(str(exc))
        return EXIT_USAGE
    except Unreachable as exc:
        error(str(exc))
        return EXIT_USAGE
    violations = sum(finding.severity == VIOLATION for finding in findings)
    warnings = len(findings) - violations
    print(f"* {runs} connections; {violations} violation(s), {warnings} warning(s)", file=stream)
    for number, finding in enumerate(findings, 1):
        print(file=stream)
        print(format_finding(number, finding), file=stream)
    report = Report("server", args.url, seed, cases, [FindingReport(finding) for finding in findings])
    report.seconds = time.monotonic() - started
    write_reports(report, json_path=args.json, html_path=args.html)
    stream.flush()
    return EXIT_VIOLATIONS if violations else EXIT_OK
