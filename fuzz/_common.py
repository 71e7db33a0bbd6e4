"""Shared code of the fuzz targets: input decoding, invariant checks and the driver.

Every target is a module with a ``test_one_input(data: bytes) -> None`` function
that raises (an ``AssertionError`` for a broken invariant, anything else for an
exception that escaped the library) when it finds a bug. ``main(test_one_input)``
runs it under atheris (libFuzzer, coverage-guided) when atheris is installed, and
otherwise under :func:`fallback_fuzz`, a small mutation driver that accepts the
same command-line flags that matter here (``-max_total_time``, ``-runs``,
``-dict``, ``-artifact_prefix``, ``-seed``, corpus directories).

Inputs are decoded by :class:`Provider`, a deterministic reader written in plain
Python so that a crashing input replays the same way with or without atheris.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

FUZZ_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(FUZZ_DIR.parent))

from wsproto_core.connection import DEFAULT_MIN_PARTIAL_SIZE, Connection, ConnectionState, ConnectionType  # noqa: E402
from wsproto_core.errors import LocalProtocolError, RemoteProtocolError  # noqa: E402
from wsproto_core.events import (  # noqa: E402
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from wsproto_core.frames import MAX_CONTROL_PAYLOAD, frame_header, is_valid_close_code  # noqa: E402
from wsproto_core.masking import python_apply_mask  # noqa: E402

CLIENT = ConnectionType.CLIENT
SERVER = ConnectionType.SERVER

#: After ``events()`` is exhausted, the only bytes left unparsed are an incomplete
#: frame header (at most 2 + 8 + 4 bytes) or an incomplete control frame: data
#: frame payloads are streamed to the application as they arrive. A control
#: frame's header may write its length on 8 bytes (RFC 6455 asks the sender, not
#: the receiver, for the shortest form), so it takes up to 2 + 8 + 4 + 125 bytes.
MAX_UNPARSED = 2 + 8 + 4 + MAX_CONTROL_PAYLOAD

#: Size limits the targets choose from: small ones so that the limit checks run.
LIMITS: tuple[int | None, ...] = (None, 0, 1, 7, 125, 126, 1000, 65536)

#: min_partial_size values the targets choose from: every piece, small gathers, the default.
PARTIAL_SIZES: tuple[int, ...] = (0, 1, 100, DEFAULT_MIN_PARTIAL_SIZE)

#: Close codes a CloseConnection event may carry: the wire-valid ones, 1005 (an
#: empty Close) and 1006 (the transport closed without a Close).
LOCAL_CLOSE_CODES = frozenset({1005, 1006})


class Provider:
    """Reads typed values from the fuzzer's bytes, deterministically; never fails.

    Past the end it returns zeros and empty strings, so every input is valid.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def remaining(self) -> int:
        return len(self.data) - self.position

    def byte(self) -> int:
        if self.position >= len(self.data):
            return 0
        value = self.data[self.position]
        self.position += 1
        return value

    def boolean(self) -> bool:
        return bool(self.byte() & 1)

    def integer(self, low: int, high: int) -> int:
        """An int in [low, high] (inclusive) from up to 2 bytes."""
        span = high - low + 1
        value = self.byte() if span <= 256 else (self.byte() << 8) | self.byte()
        return low + value % span

    def choice(self, options: Sequence[Any]) -> Any:
        return options[self.integer(0, len(options) - 1)]

    def take(self, count: int) -> bytes:
        chunk = self.data[self.position : self.position + max(count, 0)]
        self.position += len(chunk)
        return chunk

    def rest(self) -> bytes:
        return self.take(self.remaining())


# ---------------------------------------------------------------- frame building


def build_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
    length: int | None = None,
    length_size: int | None = None,
) -> bytes:
    """One raw frame (RFC 6455 section 5.2), valid or not (as tests/helpers.py's builder)."""
    declared = len(payload) if length is None else length
    # The form asked for, or the next one that holds the length.
    if length_size is None or length_size == 7:
        length_size = 7 if declared < 126 else 16 if declared < 0x10000 else 64
    elif length_size == 16 and declared >= 0x10000:
        length_size = 64
    first = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    header = frame_header(first, declared & 0xFFFFFFFFFFFFFFFF, mask, length_size)
    if mask is not None:
        return header + python_apply_mask(payload, mask)
    return header + payload


def frames_from(provider: Provider, *, masked: bool, deflate: Callable[[bytes], bytes] | None = None) -> bytes:
    """Decode the rest of the input as a sequence of frames described field by field.

    Most frames are close to valid (the right mask bit, the true length, a known
    opcode), so that the parser gets past the header checks and into message
    assembly, UTF-8 validation, limits and (with ``deflate``) inflation; each
    field is sometimes wrong on purpose.
    """
    out = bytearray()
    while provider.remaining() > 0:
        flags = provider.byte()
        kind = flags & 0x07
        if kind == 7:
            # Raw bytes, untouched: anything the structured form cannot say.
            out += provider.take(provider.integer(0, 64))
            continue
        opcode = (0x1, 0x2, 0x0, 0x9, 0xA, 0x8)[kind] if kind < 6 else provider.byte() & 0x0F
        fin = not flags & 0x08
        rsv = 4 if flags & 0x10 and deflate is not None else (provider.byte() & 7 if flags & 0x10 else 0)
        payload = provider.take(provider.integer(0, 200 if opcode < 8 else 127))
        if opcode == 0x8 and flags & 0x20 and payload:
            # A Close frame with a close code taken from the input.
            payload = provider.integer(0, 5000).to_bytes(2, "big") + payload[2:]
        if deflate is not None and rsv & 4 and flags & 0x20 and opcode < 8:
            payload = deflate(payload)
        mask = os.urandom(4) if masked != bool(flags & 0x40) else None
        length = None
        length_size = None
        if flags & 0x80:
            how = provider.byte()
            length_size = (7, 16, 64)[how % 3]
            if how & 0x80:
                length = len(payload) + provider.integer(0, 1 << 16) - (1 << 15)
                length = max(length, 0)
        out += build_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask, length=length, length_size=length_size)
    return bytes(out)


def chunks(provider: Provider, data: bytes) -> list[bytes]:
    """Cut ``data`` into pieces whose sizes the provider chooses (1 to 64 bytes, or whole)."""
    if provider.boolean():
        return [data] if data else []
    pieces = []
    position = 0
    while position < len(data):
        size = provider.integer(1, 64)
        pieces.append(data[position : position + size])
        position += size
    return pieces


# ---------------------------------------------------------------- invariants


def peer_for(conn: Connection) -> Connection:
    """A fresh Connection of the other role, with the extensions ``conn`` negotiated.

    A peer's permessage-deflate is negotiated through the public API, from an
    offer or a response that spells out ``conn``'s negotiated parameters.
    """
    from wsproto_core.permessage_deflate import PerMessageDeflate  # noqa: PLC0415

    extensions = []
    for extension in conn.extensions:
        assert isinstance(extension, PerMessageDeflate), extension
        agreed = extension.negotiated
        assert agreed is not None
        # A client may have agreed to a server window of 8 bits, which a fresh
        # server peer declines; it compresses with 9, which inflates the same.
        element = agreed._replace(server_max_window_bits=max(agreed.server_max_window_bits, 9)).response()
        peer_extension = PerMessageDeflate()
        if conn.client:
            assert peer_extension.accept(element) is not None, peer_extension.decline_reason
        else:
            peer_extension.finalize(element)
        extensions.append(peer_extension)
    return Connection(SERVER if conn.client else CLIENT, extensions, max_message_size=None)


class Checker:
    """Feeds a Connection and checks every invariant after each step.

    ``send_replies`` makes it answer Pings, echo messages and answer Closes the
    way an application does; every byte sent is handed to a fresh peer of the
    other role, which must parse it without failing and see the same messages.
    """

    def __init__(self, conn: Connection, peer: Connection | None = None, *, send_replies: bool = True) -> None:
        self.conn = conn
        self.peer = peer if peer is not None else peer_for(conn)
        self.send_replies = send_replies
        self.closed_event: CloseConnection | None = None
        self.transport_closed = False
        self.message_type: type | None = None
        self.message_size = 0
        self.frame_size = 0
        self.sent_messages: list[tuple[type, bytes]] = []
        self.sending: tuple[type, bytearray] | None = None
        self.peer_messages: list[tuple[type, bytes]] = []
        self.peer_pending: tuple[type, bytearray] | None = None
        self.shortcut = False

    # -- receiving

    def feed(self, data: bytes | None) -> None:
        conn = self.conn
        if self.transport_closed:
            return
        # Every other read goes through receive_messages, the drivers' shortcut:
        # the whole messages it returns come before the events of the rest.
        self.shortcut = not self.shortcut
        view = conn.payload_buffer() if data else None
        if view is not None and data:
            # A large frame is gathered: read into its buffer, as a driver's
            # BufferedProtocol does, and feed what does not fit as usual.
            count = min(len(view), len(data))
            view[:count] = data[:count]
            view.release()
            conn.payload_received(count)
            if count < len(data):
                conn.receive_data(data[count:])
        elif data is not None and self.shortcut:
            for message in conn.receive_messages(data):
                self.check_event(TextMessage(message) if isinstance(message, str) else BytesMessage(message))
                self.check_state()
        else:
            conn.receive_data(data)
        if data is None:
            self.transport_closed = True
        for event in conn.events():
            self.check_event(event)
            self.check_state()
        self.check_state()
        if not self.transport_closed and self.closed_event is None:
            # A binary frame's payload is also held back until min_partial_size
            # bytes of it have arrived (or the frame ends).
            bound = max(MAX_UNPARSED, conn.min_partial_size - 1)
            assert conn.buffered_bytes <= bound, f"{conn.buffered_bytes} bytes left unparsed (bound {bound})"
        if self.transport_closed:
            assert self.closed_event is not None, "the transport closed and no CloseConnection was delivered"
            assert conn.state is ConnectionState.CLOSED, conn.state

    def check_state(self) -> None:
        state = self.conn.state
        assert isinstance(state, ConnectionState), state
        assert state not in (ConnectionState.CONNECTING, ConnectionState.REJECTING), state
        if self.closed_event is not None:
            assert state is not ConnectionState.OPEN, "OPEN after a CloseConnection event"
        failure = self.conn.failure
        if failure is not None:
            assert isinstance(failure, RemoteProtocolError), failure
            assert failure.code != 1011 and failure.__cause__ is None, f"internal error: {failure!r}"
            assert self.closed_event is not None and self.closed_event.code == failure.code

    def check_event(self, event: Event) -> None:
        conn = self.conn
        assert self.closed_event is None, f"{event!r} after {self.closed_event!r}"
        if isinstance(event, CloseConnection):
            self.closed_event = event
            assert is_valid_close_code(event.code) or event.code in LOCAL_CLOSE_CODES, event
            assert len((event.reason or "").encode("utf-8")) <= MAX_CONTROL_PAYLOAD - 2, event
            assert conn.state is not ConnectionState.OPEN
            if self.send_replies and conn.state is ConnectionState.REMOTE_CLOSING:
                self.send(event.response())
                assert conn.state is ConnectionState.CLOSED
            return
        if isinstance(event, (Ping, Pong)):
            assert len(event.payload) <= MAX_CONTROL_PAYLOAD
            if isinstance(event, Ping) and self.send_replies and conn.state is ConnectionState.OPEN:
                self.send(event.response())
            return
        assert isinstance(event, (TextMessage, BytesMessage)), event
        if self.message_type is None:
            self.message_type = type(event)
        assert type(event) is self.message_type, f"{event!r} inside a {self.message_type.__name__} message"
        size = len(event.data.encode("utf-8")) if isinstance(event, TextMessage) else len(event.data)
        self.message_size += size
        limit = conn.max_message_size
        assert limit is None or self.message_size <= limit, f"message of {self.message_size} > {limit}"
        if not conn.extensions:
            # Without an extension the payload is the data: the frame limit holds too.
            self.frame_size += size
            frame_limit = conn.max_frame_size
            assert frame_limit is None or self.frame_size <= frame_limit, f"frame of {self.frame_size} > {frame_limit}"
        if event.frame_finished:
            self.frame_size = 0
        else:
            assert not event.message_finished, event
        if event.message_finished:
            self.message_type = None
            self.message_size = 0
            if self.send_replies and conn.state is ConnectionState.OPEN and size <= 1024:
                self.send(type(event)(event.data))

    # -- sending

    def send(self, event: Event) -> bytes:
        """Send ``event``; LocalProtocolError is allowed and must leave the state alone."""
        conn = self.conn
        before = conn.state
        try:
            data = conn.send(event)
        except LocalProtocolError:
            assert conn.state is before, f"a refused send moved {before} to {conn.state}"
            return b""
        assert isinstance(data, bytes), type(data)
        if isinstance(event, Message):
            payload = event.data.encode("utf-8") if isinstance(event.data, str) else bytes(event.data)
            if self.sending is None:
                self.sending = (type(event), bytearray())
            self.sending[1].extend(payload)
            if event.message_finished:
                self.sent_messages.append((self.sending[0], bytes(self.sending[1])))
                self.sending = None
        elif isinstance(event, CloseConnection):
            self.sending = None
        self.deliver(data)
        return data

    def deliver(self, data: bytes) -> None:
        """Hand bytes we sent to the peer: they must be valid frames."""
        peer = self.peer
        if peer.state is ConnectionState.CLOSED or peer._input_done:
            return
        peer.receive_data(data)
        for event in peer.events():
            assert peer.failure is None, f"our output does not re-parse: {peer.failure!r} from {data!r}"
            if isinstance(event, Message):
                if self.peer_pending is None:
                    self.peer_pending = (type(event), bytearray())
                payload = event.data.encode("utf-8") if isinstance(event.data, str) else event.data
                self.peer_pending[1].extend(payload)
                if event.message_finished:
                    self.peer_messages.append((self.peer_pending[0], bytes(self.peer_pending[1])))
                    self.peer_pending = None
        assert self.peer_messages == self.sent_messages[: len(self.peer_messages)], "the peer saw other messages"
        assert len(self.peer_messages) == len(self.sent_messages), "a message sent did not arrive whole"

    def random_sends(self, provider: Provider) -> None:
        """Send a few events the input chooses, some of which the state refuses."""
        for _ in range(provider.integer(0, 3)):
            kind = provider.integer(0, 5)
            data = provider.take(provider.integer(0, 40))
            finished = provider.boolean()
            if kind == 0:
                self.send(TextMessage(data.decode("utf-8", "replace"), message_finished=finished))
            elif kind == 1:
                self.send(BytesMessage(data, message_finished=finished))
            elif kind == 2:
                self.send(Ping(data))
            elif kind == 3:
                self.send(Pong(data))
            elif kind == 4:
                code = provider.choice((1000, 1001, 1005, 1006, 1011, 1015, 2999, 3000, 4999, 5000, 999))
                self.send(CloseConnection(code=code, reason=data.decode("utf-8", "replace")))
            else:
                self.send(CloseConnection(code=1000))


def run_connection(provider: Provider, conn: Connection, stream: bytes, *, end: bool) -> Checker:
    """Feed ``stream`` to ``conn`` in chunks, with sends in between; check everything."""
    checker = Checker(conn)
    for piece in chunks(provider, stream):
        checker.feed(piece)
        if provider.byte() & 0x0F == 0:
            checker.random_sends(provider)
    if end:
        checker.feed(None)
    return checker


def limits(provider: Provider) -> dict[str, int | None]:
    return {
        "max_frame_size": provider.choice(LIMITS),
        "max_message_size": provider.choice(LIMITS),
        "min_partial_size": provider.choice(PARTIAL_SIZES),
    }


def fuzz_frames(data: bytes, role: ConnectionType) -> None:
    """The frame targets: a ``role`` connection fed what its peer would send.

    Half the inputs are raw bytes, half a sequence of mostly valid frames
    described field by field (masked when they come from a client).
    """
    provider = Provider(data)
    mode = provider.byte()
    conn = Connection(role, **limits(provider))
    stream = frames_from(provider, masked=role is SERVER) if mode & 1 else provider.rest()
    # The chunking and the sends take their choices from the frame bytes again,
    # so that raw inputs stay raw (a second provider over the same input).
    run_connection(Provider(data[::-1]), conn, stream, end=bool(mode & 2))


# ---------------------------------------------------------------- driver


def corpus_files(target: str) -> list[Path]:
    directory = FUZZ_DIR / "corpus" / target
    return sorted(path for path in directory.iterdir() if path.is_file()) if directory.is_dir() else []


def load_dictionary(path: str | os.PathLike[str]) -> list[bytes]:
    """Read a libFuzzer/AFL dictionary: lines of ``name="value"`` with \\xNN escapes."""
    tokens = []
    for raw_line in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or '"' not in line:
            continue
        quoted = line[line.index('"') + 1 : line.rindex('"')]
        tokens.append(quoted.encode("latin-1").decode("unicode_escape").encode("latin-1"))
    return tokens


def mutate(data: bytes, rng: random.Random, corpus: Sequence[bytes], tokens: Sequence[bytes]) -> bytes:
    """A few random edits: flips, inserts, deletions, dictionary tokens, splices."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        position = rng.randint(0, len(buf))
        if op == 0 and buf:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 2:
            buf[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and buf:
            del buf[position : position + rng.randint(1, 16)]
        elif op == 4 and tokens:
            buf[position:position] = rng.choice(tokens)
        elif op == 5 and corpus:
            other = rng.choice(corpus)
            cut = rng.randint(0, len(other))
            buf = buf[:position] + bytearray(other[cut:])
        elif op == 6 and buf:
            start = rng.randrange(len(buf))
            piece = buf[start : start + rng.randint(1, 32)]
            buf[position:position] = piece
    return bytes(buf[:4096])


def fallback_fuzz(test_one_input: Callable[[bytes], None], argv: Sequence[str]) -> int:
    """Mutation fuzzing without coverage feedback, for machines without atheris."""
    options: dict[str, str] = {}
    paths: list[str] = []
    for arg in argv[1:]:
        if arg.startswith("-") and "=" in arg:
            key, _, value = arg[1:].partition("=")
            options[key] = value
        elif not arg.startswith("-"):
            paths.append(arg)
    rng = random.Random(int(options.get("seed", "0")) or None)
    max_time = float(options.get("max_total_time", "0")) or float("inf")
    runs = int(options.get("runs", "-1"))
    tokens = load_dictionary(options["dict"]) if "dict" in options else []
    corpus: list[bytes] = []
    for name in paths:
        path = Path(name)
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        corpus.extend(file.read_bytes() for file in files)
    if not corpus:
        corpus.append(b"")
    if runs >= 0 and paths and all(Path(p).is_file() for p in paths):
        # libFuzzer's "replay these inputs" mode.
        for data in corpus:
            test_one_input(data)
        print(f"stat::number_of_executed_units: {len(corpus)}")
        return 0
    start = time.monotonic()
    executed = 0
    pending = list(corpus)
    while executed != runs and time.monotonic() - start < max_time:
        data = pending.pop() if pending else mutate(rng.choice(corpus), rng, corpus, tokens)
        try:
            test_one_input(data)
        except Exception:  # noqa: BLE001 - any exception is a finding; report and save it
            traceback.print_exc()
            name = options.get("artifact_prefix", "./") + "crash-" + hashlib.sha1(data).hexdigest()
            Path(name).parent.mkdir(parents=True, exist_ok=True)
            Path(name).write_bytes(data)
            print(f"==ERROR: fallback driver: uncaught exception; test unit written to {name}", file=sys.stderr)
            print(f"stat::number_of_executed_units: {executed + 1}")
            return 1
        executed += 1
        if executed % 1000 == 0 and rng.random() < 0.05 and len(corpus) < 2000:
            corpus.append(data)
        if executed & (executed - 1) == 0:
            elapsed = max(time.monotonic() - start, 1e-9)
            print(f"#{executed}\tpulse  exec/s: {int(executed / elapsed)}", file=sys.stderr)
    elapsed = max(time.monotonic() - start, 1e-9)
    print(f"Done {executed} runs in {int(elapsed)} second(s)", file=sys.stderr)
    print(f"stat::number_of_executed_units: {executed}")
    print(f"stat::average_exec_per_sec: {int(executed / elapsed)}")
    return 0


def main(test_one_input: Callable[[bytes], None], instrumented: Iterable[str] = ("wsproto_core",)) -> None:
    """Run a target: atheris when available (unless FUZZ_FALLBACK=1), else the fallback driver."""
    atheris: Any = None
    if not os.environ.get("FUZZ_FALLBACK"):
        try:
            import atheris  # type: ignore[import-not-found,no-redef]  # noqa: PLC0415
        except ImportError:
            atheris = None
    if atheris is None:
        sys.exit(fallback_fuzz(test_one_input, sys.argv))
    # Instrument the library for coverage feedback. It was imported above for
    # this module's own use, so instrument the loaded modules' code in place.
    for name, module in list(sys.modules.items()):
        if module is not None and any(name == root or name.startswith(root + ".") for root in instrumented):
            for value in list(vars(module).values()):
                if callable(value) and getattr(value, "__module__", None) == name:
                    _instrument(atheris, value)
    atheris.Setup(list(sys.argv), test_one_input)
    atheris.Fuzz()


def _instrument(atheris: Any, value: Any) -> None:
    """Instrument a function, or every function of a class, for atheris."""
    targets = [value]
    if isinstance(value, type):
        targets = [
            member.fget if isinstance(member, property) else getattr(member, "__func__", member)
            for member in vars(value).values()
        ]
    for target in targets:
        if hasattr(target, "__code__"):
            # Some builtins and wrappers cannot be instrumented.
            with contextlib.suppress(Exception):
                atheris.instrument_func(target)


# ---------------------------------------------------------------- known bugs

#: Library bugs found by these targets and reported, not yet fixed. While one is
#: listed, the targets skip inputs that trigger it so that fuzzing can find
#: others; FUZZ_STRICT=1 turns the skip off. Each fixed bug's input moves to
#: fuzz/crashes/<target>/, which tests/test_fuzz_targets.py replays.
KNOWN_BUGS: dict[str, Callable[[BaseException], bool]] = {}


def is_known_bug(exc: BaseException) -> bool:
    if os.environ.get("FUZZ_STRICT"):
        return False
    return any(predicate(exc) for predicate in KNOWN_BUGS.values())


# ---------------------------------------------------------------- handshakes


def check_handshake_state(ws: Any) -> None:
    state = ws.state
    assert isinstance(state, ConnectionState), state


def run_handshake(provider: Provider, ws: Any, stream: bytes, on_event: Callable[[Event], None]) -> Checker | None:
    """Feed an HTTP handshake (and what follows it) to a WSConnection in chunks.

    Only RemoteProtocolError may leave ``receive_data`` during the handshake;
    once the upgrade is done the Connection's invariants are checked as in the
    frame targets, starting with the bytes that arrived after the handshake.
    """
    from wsproto_core.events import RejectConnection  # noqa: PLC0415

    checker: Checker | None = None
    pieces = chunks(provider, stream)
    pieces.append(None)  # type: ignore[arg-type]
    for piece in pieces:
        connection = ws.connection
        if connection is not None:
            if checker is None:
                checker = Checker(connection)
            checker.feed(piece)
            continue
        before = ws.state
        try:
            ws.receive_data(piece)
        except RemoteProtocolError as exc:
            check_handshake_state(ws)
            hint = exc.event_hint
            assert hint is None or isinstance(hint, RejectConnection), hint
            if hint is not None and not ws.client and before is ConnectionState.CONNECTING:
                # The rejection to send back must be sendable.
                data = ws.send(hint)
                assert data.startswith(b"HTTP/1.1 "), data[:40]
            return checker
        except Exception as exc:
            if is_known_bug(exc):
                return checker
            raise
        check_handshake_state(ws)
        for event in ws.events():
            check_handshake_state(ws)
            if checker is not None:
                # WSConnection.events() goes on with the frames once the upgrade is done.
                checker.check_event(event)
                checker.check_state()
                continue
            on_event(event)
            if ws.connection is not None:
                checker = Checker(ws.connection)
        if piece is None:
            break
    if checker is not None and not checker.transport_closed:
        checker.feed(None)
    return checker
