"""Tests for wsproto_core.compat: ``import wsproto`` served by wsproto_core.

install() rewrites ``sys.modules`` and a class attribute, both process-wide.
Other test modules import the real wsproto for interoperability tests, so
every in-process test here runs inside the ``sandbox`` fixture, which puts
``sys.modules`` and the compat state back exactly as they were; the
fresh-interpreter checks run in a subprocess.
"""

from __future__ import annotations

import collections
import importlib
import importlib.util
import subprocess
import sys
import textwrap
import types
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

import wsproto_core
import wsproto_core.extensions
from wsproto_core import compat
from wsproto_core.connection import Connection, ConnectionState, ConnectionType
from wsproto_core.errors import LocalProtocolError, Violation
from wsproto_core.events import CloseConnection, TextMessage
from wsproto_core.frames import Opcode, RsvBits
from wsproto_core.handshake import H11Handshake

HAS_PERMESSAGE_DEFLATE = hasattr(wsproto_core.extensions, "PerMessageDeflate")
_WSPROTO_SPEC = importlib.util.find_spec("wsproto")
#: Whether the real wsproto is installed (when compat is installed, the spec found is wsproto_core's).
HAS_REAL_WSPROTO = _WSPROTO_SPEC is not None and _WSPROTO_SPEC.name == "wsproto"


def _real_wsproto() -> types.ModuleType | None:
    """The real wsproto package (with its submodules loaded), if installed and not shadowed."""
    if not HAS_REAL_WSPROTO or compat.installed():
        return None
    modules = [
        importlib.import_module(name)
        for name in (
            "wsproto",
            "wsproto.connection",
            "wsproto.events",
            "wsproto.extensions",
            "wsproto.handshake",
            "wsproto.frame_protocol",
        )
    ]
    return modules[0] if modules[0].__name__ == "wsproto" else None


#: The real wsproto, to compare against; loaded now, before any test installs compat.
REAL = _real_wsproto()
needs_real_wsproto = pytest.mark.skipif(REAL is None, reason="the real wsproto is not installed")
#: wsproto's PerMessageDeflate, for the real library's side of a comparison.
REAL_PER_MESSAGE_DEFLATE: Any = REAL.extensions.PerMessageDeflate if REAL is not None else None


def _is_wsproto_name(name: str) -> bool:
    return name == "wsproto" or name.startswith("wsproto.")


@pytest.fixture
def sandbox() -> Iterator[None]:
    """Restore sys.modules["wsproto*"], compat's bookkeeping and its two switches afterwards."""
    saved_modules = {name: module for name, module in sys.modules.items() if _is_wsproto_name(name)}
    saved_displaced = dict(compat._displaced)
    saved_close_codes = Connection.__dict__.get("wsproto_close_codes", False)
    saved_interim = H11Handshake.__dict__.get("wsproto_interim_responses", False)
    try:
        yield
    finally:
        compat.uninstall()
        for name in [name for name in sys.modules if _is_wsproto_name(name)]:
            del sys.modules[name]
        sys.modules.update(saved_modules)
        compat._displaced.clear()
        compat._displaced.update(saved_displaced)
        Connection.wsproto_close_codes = saved_close_codes
        H11Handshake.wsproto_interim_responses = saved_interim


@pytest.fixture
def installed(sandbox: None) -> Iterator[None]:
    compat.install()
    yield


# ======================================================================== module aliases


def test_module_table() -> None:
    assert compat.WSPROTO_MODULES == {
        "wsproto": "wsproto_core",
        "wsproto.connection": "wsproto_core.connection",
        "wsproto.events": "wsproto_core.events",
        "wsproto.extensions": "wsproto_core.extensions",
        "wsproto.frame_protocol": "wsproto_core.frame_protocol",
        "wsproto.handshake": "wsproto_core.handshake",
        "wsproto.typing": "wsproto_core.typing",
        "wsproto.utilities": "wsproto_core.utilities",
    }


@pytest.mark.parametrize(("alias", "target"), sorted(compat.WSPROTO_MODULES.items()))
def test_install_aliases_module(installed: None, alias: str, target: str) -> None:
    assert importlib.import_module(alias) is importlib.import_module(target)
    assert sys.modules[alias].__name__ == target


def test_import_statements_resolve_to_wsproto_core(installed: None) -> None:
    # The import forms that uvicorn, hypercorn, trio-websocket and httpx-ws use.
    namespace: dict[str, object] = {}
    exec(
        textwrap.dedent(
            """
            import wsproto
            import wsproto.utilities
            import wsproto.frame_protocol as wsframeproto
            from wsproto import ConnectionType, WSConnection, events
            from wsproto.connection import Connection, ConnectionState
            from wsproto.events import Request, TextMessage
            from wsproto.frame_protocol import CloseReason
            from wsproto.handshake import WEBSOCKET_VERSION, server_extensions_handshake
            from wsproto.utilities import LocalProtocolError, generate_accept_token, split_comma_header
            """
        ),
        namespace,
    )
    assert namespace["wsproto"] is wsproto_core
    assert namespace["wsframeproto"] is sys.modules["wsproto_core.frame_protocol"]
    assert namespace["events"] is sys.modules["wsproto_core.events"]
    assert namespace["WSConnection"] is wsproto_core.WSConnection
    assert namespace["Connection"] is Connection
    assert namespace["LocalProtocolError"] is LocalProtocolError
    wsproto = namespace["wsproto"]
    assert isinstance(wsproto, types.ModuleType)
    assert wsproto.utilities.RemoteProtocolError is wsproto_core.errors.RemoteProtocolError  # type: ignore[attr-defined]


# The names wsproto 1.3 applications and servers import, by module.
WSPROTO_NAMES = [
    ("wsproto", "WSConnection"),
    ("wsproto", "ConnectionType"),
    ("wsproto.connection", "Connection"),
    ("wsproto.connection", "ConnectionState"),
    ("wsproto.connection", "ConnectionType"),
    ("wsproto.connection", "CLIENT"),
    ("wsproto.connection", "SERVER"),
    *(
        ("wsproto.events", name)
        for name in (
            "Event",
            "Request",
            "AcceptConnection",
            "RejectConnection",
            "RejectData",
            "CloseConnection",
            "Message",
            "TextMessage",
            "BytesMessage",
            "Ping",
            "Pong",
        )
    ),
    ("wsproto.extensions", "Extension"),
    ("wsproto.extensions", "PerMessageDeflate"),
    ("wsproto.frame_protocol", "CloseReason"),
    ("wsproto.frame_protocol", "Opcode"),
    ("wsproto.frame_protocol", "RsvBits"),
    ("wsproto.handshake", "H11Handshake"),
    ("wsproto.handshake", "WEBSOCKET_VERSION"),
    ("wsproto.handshake", "server_extensions_handshake"),
    ("wsproto.handshake", "client_extensions_handshake"),
    ("wsproto.utilities", "split_comma_header"),
    ("wsproto.utilities", "generate_accept_token"),
    ("wsproto.utilities", "generate_nonce"),
    ("wsproto.utilities", "normed_header_dict"),
    ("wsproto.utilities", "LocalProtocolError"),
    ("wsproto.utilities", "RemoteProtocolError"),
    ("wsproto.utilities", "ProtocolError"),
    ("wsproto.typing", "Headers"),
]


@pytest.mark.parametrize(("module_name", "name"), WSPROTO_NAMES)
def test_wsproto_names_are_exposed(installed: None, module_name: str, name: str) -> None:
    if name == "PerMessageDeflate" and not HAS_PERMESSAGE_DEFLATE:
        pytest.skip("wsproto_core.extensions.PerMessageDeflate has not landed yet")
    module = importlib.import_module(module_name)
    assert hasattr(module, name), f"{module_name}.{name} is missing"


def test_wsproto_constants_and_enums(installed: None) -> None:
    import wsproto.connection  # noqa: PLC0415 - must run after install()
    import wsproto.extensions  # noqa: PLC0415
    import wsproto.frame_protocol  # noqa: PLC0415
    import wsproto.handshake  # noqa: PLC0415

    assert wsproto.handshake.WEBSOCKET_VERSION == b"13"
    assert wsproto.frame_protocol.CloseReason.NORMAL_CLOSURE == 1000
    assert wsproto.frame_protocol.Opcode.TEXT == 1
    assert [state.value for state in wsproto.connection.ConnectionState] == [0, 1, 2, 3, 4, 5]
    assert wsproto.utilities.generate_accept_token(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert wsproto.utilities.split_comma_header(b'a, b; p="1,2"') == ["a", 'b; p="1,2"']
    # httpx-ws builds its connections with wsproto.connection.CLIENT.
    assert wsproto.connection.CLIENT is ConnectionType.CLIENT
    assert wsproto.connection.SERVER is ConnectionType.SERVER
    assert Connection(wsproto.connection.CLIENT).connection_type is ConnectionType.CLIENT
    deflate = wsproto.extensions.PerMessageDeflate
    assert (deflate.DEFAULT_CLIENT_MAX_WINDOW_BITS, deflate.DEFAULT_SERVER_MAX_WINDOW_BITS) == (15, 15)


# ======================================================================== close codes


def _close_code_on_the_wire(data: bytes) -> int:
    peer = Connection(ConnectionType.CLIENT)
    peer.receive_data(data)
    [event] = peer.events()
    assert isinstance(event, CloseConnection)
    return event.code


@pytest.mark.parametrize("code", [1006, 1015])
def test_compat_turns_local_only_close_codes_into_1000(installed: None, code: int) -> None:
    # RFC 6455 section 7.4.1: 1006 and 1015 "MUST NOT be set as a status code in
    # a Close control frame". wsproto sent 1000 instead, and trio-websocket
    # relies on that when it "closes" a connection whose transport died.
    import wsproto  # noqa: PLC0415

    server = wsproto.connection.Connection(wsproto.ConnectionType.SERVER)
    data = server.send(wsproto.events.CloseConnection(code=code))
    assert data[:4] == b"\x88\x02\x03\xe8"
    assert _close_code_on_the_wire(data) == 1000
    assert server.state is wsproto.connection.ConnectionState.LOCAL_CLOSING


def test_compat_close_code_1006_through_wsconnection(installed: None) -> None:
    import wsproto  # noqa: PLC0415

    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    server.receive_data(client.send(wsproto.events.Request(host="h", target="/")))
    list(server.events())
    client.receive_data(server.send(wsproto.events.AcceptConnection()))
    list(client.events())
    server.receive_data(client.send(wsproto.events.CloseConnection(code=1006)))
    [close] = server.events()
    assert isinstance(close, CloseConnection)
    assert close.code == 1000


def test_compat_keeps_other_close_codes(installed: None) -> None:
    server = Connection(ConnectionType.SERVER)
    assert _close_code_on_the_wire(server.send(CloseConnection(code=4001, reason="app"))) == 4001
    # 1005 means "no code": an empty Close payload (section 7.1.5).
    assert Connection(ConnectionType.SERVER).send(CloseConnection(code=1005)) == b"\x88\x00"


def test_without_compat_local_only_close_codes_are_refused(sandbox: None) -> None:
    compat.uninstall()
    with pytest.raises(LocalProtocolError):
        Connection(ConnectionType.SERVER).send(CloseConnection(code=1006))


# ======================================================================== interim responses


def test_compat_client_takes_an_interim_response_for_a_rejection(installed: None) -> None:
    # trio-websocket's suite: a server answering "100 Continue" rejects the
    # handshake (ConnectionRejected, status 100, no body), as with wsproto.
    import wsproto  # noqa: PLC0415

    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    client.send(wsproto.events.Request(host="h", target="/"))
    client.receive_data(b"HTTP/1.1 100 CONTINUE\r\n\r\n")
    assert list(client.events()) == [wsproto.events.RejectConnection(status_code=100, headers=[], has_body=False)]
    assert client.state is wsproto.connection.ConnectionState.CLOSED


def test_without_compat_interim_responses_are_skipped(sandbox: None) -> None:
    compat.uninstall()
    client = wsproto_core.WSConnection(ConnectionType.CLIENT)
    client.send(wsproto_core.events.Request(host="h", target="/"))
    client.receive_data(b"HTTP/1.1 100 CONTINUE\r\n\r\n")
    assert list(client.events()) == []
    assert client.state is wsproto_core.ConnectionState.CONNECTING


# ======================================================================== uninstall


def test_uninstall_restores_displaced_modules(sandbox: None) -> None:
    # A stand-in for the real wsproto, already imported before install().
    for name in [name for name in sys.modules if _is_wsproto_name(name)]:
        del sys.modules[name]
    compat._displaced.clear()
    fake = types.ModuleType("wsproto")
    fake_events = types.ModuleType("wsproto.events")
    sys.modules["wsproto"] = fake
    sys.modules["wsproto.events"] = fake_events

    compat.install()
    compat.install()  # idempotent: the originals are remembered once
    assert sys.modules["wsproto"] is wsproto_core
    assert sys.modules["wsproto.events"] is sys.modules["wsproto_core.events"]
    assert Connection.wsproto_close_codes is True
    assert H11Handshake.wsproto_interim_responses is True

    compat.uninstall()
    assert sys.modules["wsproto"] is fake
    assert sys.modules["wsproto.events"] is fake_events
    # Aliases that displaced nothing are removed.
    for alias in set(compat.WSPROTO_MODULES) - {"wsproto", "wsproto.events"}:
        assert alias not in sys.modules
    assert compat._displaced == {}
    assert Connection.wsproto_close_codes is False
    assert H11Handshake.wsproto_interim_responses is False
    with pytest.raises(LocalProtocolError):
        Connection(ConnectionType.SERVER).send(CloseConnection(code=1006))


def test_uninstall_without_install(sandbox: None) -> None:
    for name in [name for name in sys.modules if _is_wsproto_name(name)]:
        del sys.modules[name]
    compat._displaced.clear()
    compat.uninstall()
    assert not any(_is_wsproto_name(name) for name in sys.modules)


# ======================================================================== a wsproto 1.3 program, unchanged

WSPROTO_PROGRAM = """
import sys

import wsproto_core.compat

wsproto_core.compat.install()

# From here on: a program written for wsproto 1.3.
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection, CloseConnection, Message, Ping, Pong, RejectConnection, Request, TextMessage,
)
from wsproto.utilities import RemoteProtocolError

client = WSConnection(ConnectionType.CLIENT)
server = WSConnection(ConnectionType.SERVER)
server.receive_data(client.send(Request(host="localhost", target="/echo", subprotocols=["echo"])))
request = next(server.events())
assert isinstance(request, Request) and request.subprotocols == ["echo"]
client.receive_data(server.send(AcceptConnection(subprotocol=request.subprotocols[0])))
assert isinstance(next(client.events()), AcceptConnection)
server.receive_data(client.send(Message(data="hello")))
event = next(server.events())
assert isinstance(event, TextMessage) and event.data == "hello"
client.receive_data(server.send(Ping(b"1")))
ping = next(client.events())
server.receive_data(client.send(ping.response()))
assert isinstance(next(server.events()), Pong)
server.receive_data(client.send(CloseConnection(code=1000)))
close = next(server.events())
client.receive_data(server.send(close.response()))
assert isinstance(next(client.events()), CloseConnection)
assert client.state is server.state is ConnectionState.CLOSED

# uvicorn's way of refusing a bad request.
bad = WSConnection(ConnectionType.SERVER)
try:
    bad.receive_data(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
except RemoteProtocolError as err:
    assert isinstance(err.event_hint, RejectConnection)
    assert bad.send(err.event_hint).startswith(b"HTTP/1.1 4")
else:
    raise AssertionError("a plain GET is not a WebSocket handshake")

print(sys.modules["wsproto"].__name__, type(client).__module__)

wsproto_core.compat.uninstall()
assert "wsproto" not in sys.modules
try:
    import wsproto
except ImportError:
    print("no-real-wsproto")
else:
    print(wsproto.__name__, wsproto.WSConnection.__module__)
"""


def test_wsproto_program_runs_unchanged_in_a_fresh_interpreter() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WSPROTO_PROGRAM], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[:2] == ["wsproto_core", "wsproto_core"]
    if HAS_REAL_WSPROTO:
        # After uninstall(), a later import finds the real package again.
        assert lines[2:] == ["wsproto", "wsproto"]
    else:
        assert lines[2:] == ["no-real-wsproto"]


@pytest.mark.skipif(not HAS_REAL_WSPROTO, reason="the real wsproto is not installed")
def test_sandbox_leaves_the_real_wsproto_in_place() -> None:
    # Whatever ran before in this process, the real wsproto is what other test
    # modules get.
    import wsproto  # noqa: PLC0415

    assert wsproto.__name__ == "wsproto"
    assert Connection.wsproto_close_codes is False


# ======================================================================== wsproto's behaviour, compared with wsproto

ZERO_MASK = b"\x00\x00\x00\x00"


def _masked(first: int, payload: bytes) -> bytes:
    """A client frame (masked with the all-zero key, so the payload reads as is)."""
    assert len(payload) < 126
    return bytes((first, 0x80 | len(payload))) + ZERO_MASK + payload


#: Byte streams that break RFC 6455, sent to a server (role "server") or a client.
VIOLATIONS = {
    "continuation without a message": ("server", _masked(0x80, b"")),
    "new data frame inside a fragmented message": ("server", _masked(0x01, b"a") + _masked(0x82, b"")),
    "new text frame inside a fragmented binary message": ("server", _masked(0x02, b"a") + _masked(0x81, b"b")),
    "invalid UTF-8": ("server", _masked(0x81, b"ok\xff\xfe")),
    "invalid UTF-8 across frames": ("server", _masked(0x01, b"\xce") + _masked(0x80, b"A")),
    "reserved data opcode": ("server", _masked(0x83, b"")),
    "reserved control opcode": ("server", _masked(0x8B, b"")),
    "fragmented ping": ("server", _masked(0x09, b"")),
    "unmasked client frame": ("server", b"\x81\x00"),
    "masked server frame": ("client", _masked(0x81, b"")),
    "reserved bit": ("server", _masked(0xC1, b"")),
    "one-byte close payload": ("server", _masked(0x88, b"\x03")),
    "close code 999": ("server", _masked(0x88, b"\x03\xe7")),
    "close code 5000": ("server", _masked(0x88, b"\x13\x88")),
    "close code 1005": ("server", _masked(0x88, b"\x03\xed")),
    "close code 1006": ("client", b"\x88\x02\x03\xee"),
    "close code 1004": ("server", _masked(0x88, b"\x03\xec")),
    "close code 2999": ("client", b"\x88\x02\x0b\xb7"),
    "close reason not UTF-8": ("server", _masked(0x88, b"\x03\xe8\xff\xfe")),
    "control frame over 125 bytes": ("client", b"\x89\x7e\x00\x7e" + bytes(126)),
    "64-bit length with its top bit set": ("client", b"\x82\x7f\x80" + bytes(7)),
}


def _failure(connection: Any, data: bytes) -> tuple[int, str]:
    connection.receive_data(data)
    events = list(connection.events())
    assert events, "the violation went unnoticed"
    close = events[-1]
    assert type(close).__name__ == "CloseConnection"
    return int(close.code), close.reason


@needs_real_wsproto
@pytest.mark.parametrize("name", sorted(VIOLATIONS))
def test_failure_close_reasons_are_wsprotos(installed: None, name: str) -> None:
    # A proxy that forwards a failed connection's close reason sends the same bytes as on wsproto.
    assert REAL is not None
    role, data = VIOLATIONS[name]
    expected = _failure(REAL.connection.Connection(getattr(REAL.connection, role.upper())), data)
    connection = Connection(ConnectionType[role.upper()])
    assert _failure(connection, data) == expected
    # A safety exception: the connection is not left OPEN for the application
    # to keep sending into (wsproto leaves it OPEN).
    assert connection.state is ConnectionState.REMOTE_CLOSING


@pytest.mark.parametrize("name", ["new data frame inside a fragmented message", "reserved bit"])
def test_without_compat_failures_keep_our_wording(sandbox: None, name: str) -> None:
    role, data = VIOLATIONS[name]
    code, reason = _failure(Connection(ConnectionType[role.upper()]), data)
    assert code == 1002
    assert reason in ("New data frame inside a fragmented message", "Reserved bits set without a negotiated extension")


@pytest.mark.parametrize("code", [0, 999, 1004, 1016, 2999, 5000, 1006, 1015])
def test_compat_sends_1000_for_any_unsendable_code(installed: None, code: int) -> None:
    # wsproto sends a Close and moves to LOCAL_CLOSING; so do we, with 1000 in
    # place of a code that must not be on the wire (RFC 6455 section 7.4).
    client = Connection(ConnectionType.CLIENT)
    data = client.send(CloseConnection(code=code, reason="bye"))
    assert client.state is ConnectionState.LOCAL_CLOSING
    server = Connection(ConnectionType.SERVER)
    server.receive_data(data)
    assert list(server.events()) == [CloseConnection(code=1000, reason="bye")]


def test_injected_events_come_first(installed: None) -> None:
    # A proxy subclasses Connection and appends to _events to inject a message.
    class Injecting(Connection):
        def inject(self, text: str) -> None:
            self._events.append(TextMessage(text))  # type: ignore[attr-defined]

    server = Injecting(ConnectionType.SERVER)
    client = Connection(ConnectionType.CLIENT)
    server.receive_data(client.send(TextMessage("from the wire")))
    server.inject("injected")
    assert [event.data for event in server.events()] == ["injected", "from the wire"]  # type: ignore[attr-defined]
    assert list(server.events()) == []
    server.inject("later")
    assert list(server.events()) == [TextMessage("later")]
    # Each connection has its own queue.
    assert not Injecting(ConnectionType.SERVER)._events  # type: ignore[attr-defined]


def test_without_compat_there_is_no_event_queue(sandbox: None) -> None:
    assert not hasattr(Connection(ConnectionType.SERVER), "_events")


def test_compat_refuses_bytes_once_closed(installed: None) -> None:
    client, server = Connection(ConnectionType.CLIENT), Connection(ConnectionType.SERVER)
    server.receive_data(client.send(CloseConnection(code=1000)))
    client.receive_data(server.send(next(server.events()).response()))  # type: ignore[attr-defined]
    list(client.events())
    assert client.state is ConnectionState.CLOSED
    with pytest.raises(LocalProtocolError, match=r"^Connection already closed\.$"):
        client.receive_data(b"\x81\x00")


def test_without_compat_bytes_after_the_close_are_dropped(sandbox: None) -> None:
    client, server = Connection(ConnectionType.CLIENT), Connection(ConnectionType.SERVER)
    server.receive_data(client.send(CloseConnection(code=1000)))
    client.receive_data(server.send(next(server.events()).response()))  # type: ignore[attr-defined]
    list(client.events())
    client.receive_data(b"\x81\x00")
    assert list(client.events()) == []


#: Upgrade requests that wsproto refuses, each as a list of header lines after the request line.
BAD_REQUESTS = {
    "no Connection": [b"Host: h", b"Upgrade: websocket", b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Key: a2V5"],
    "no Upgrade": [b"Host: h", b"Connection: Upgrade", b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Key: a2V5"],
    "no Upgrade, no Connection": [b"Host: h", b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Key: a2V5"],
    "version 8": [
        b"Host: h",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Version: 8",
        b"Sec-WebSocket-Key: a2V5",
    ],
    "no version": [b"Host: h", b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Key: a2V5"],
    "no key": [b"Host: h", b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Version: 13"],
}


def _rejection(ws_connection: Any, request: bytes) -> tuple[str, int, bytes]:
    # Each library raises its own RemoteProtocolError class.
    with pytest.raises(Exception) as info:
        ws_connection.receive_data(request)
    assert type(info.value).__name__ == "RemoteProtocolError"
    hint = info.value.event_hint  # type: ignore[attr-defined]
    return str(info.value), hint.status_code, ws_connection.send(hint)


@needs_real_wsproto
@pytest.mark.parametrize("name", [*sorted(BAD_REQUESTS), "POST", "garbage"])
def test_handshake_rejections_are_wsprotos(installed: None, name: str) -> None:
    # The message, the status and the bytes of the rejection, as wsproto sends them.
    assert REAL is not None
    if name == "POST":
        request = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
    elif name == "garbage":
        request = b"not http at all\r\n\r\n"
    else:
        request = b"GET / HTTP/1.1\r\n" + b"".join(line + b"\r\n" for line in BAD_REQUESTS[name]) + b"\r\n"
    expected = _rejection(REAL.WSConnection(REAL.ConnectionType.SERVER), request)
    assert _rejection(wsproto_core.WSConnection(ConnectionType.SERVER), request) == expected


@needs_real_wsproto
def test_handshake_bytes_are_wsprotos(installed: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # The request a client writes and the 101 a server answers, byte for byte,
    # and the events and states on each side.
    assert REAL is not None
    key = b"dGhlIHNhbXBsZSBub25jZQ=="
    monkeypatch.setattr(REAL.handshake, "generate_nonce", lambda: key)
    monkeypatch.setattr(wsproto_core.handshake, "generate_nonce", lambda: key)

    def conversation(library: Any) -> list[object]:
        events = library.events
        client = library.WSConnection(library.ConnectionType.CLIENT)
        server = library.WSConnection(library.ConnectionType.SERVER)
        request = client.send(
            events.Request(
                host="example.com",
                target="/chat?room=1",
                subprotocols=["chat", "superchat"],
                extra_headers=[(b"Origin", b"https://example.com")],
            )
        )
        server.receive_data(request)
        received = next(server.events())
        response = server.send(
            events.AcceptConnection(subprotocol="chat", extra_headers=[(b"Set-Cookie", b"session=1")])
        )
        client.receive_data(response)
        accepted = next(client.events())
        return [
            request,
            response,
            repr(received),
            repr(accepted),
            server.state.name,
            client.state.name,
        ]

    assert conversation(wsproto_core) == conversation(REAL)


def test_compat_handshake_repr(installed: None) -> None:
    handshake = H11Handshake(ConnectionType.CLIENT)
    assert repr(handshake) == "H11Handshake(client=True, state=ConnectionState.CONNECTING)"


def test_uninstall_restores_our_behaviour(sandbox: None) -> None:
    compat.install()
    compat.uninstall()
    assert "_events" not in vars(Connection)
    assert repr(H11Handshake(ConnectionType.SERVER)) == "H11Handshake(client=False, state=CONNECTING)"
    _, data = VIOLATIONS["reserved bit"]
    code, reason = _failure(Connection(ConnectionType.SERVER), data)
    assert (code, reason) == (1002, "Reserved bits set without a negotiated extension")


def test_receive_path_is_untouched_until_a_queue_is_used(sandbox: None) -> None:
    # The events() wrapper goes in only once some program uses _events, so the
    # others keep the plain method; uninstall() takes it out again.
    original_events = Connection.__dict__["events"]
    compat.install()
    assert Connection.__dict__["events"] is original_events
    assert isinstance(Connection(ConnectionType.SERVER)._events, collections.deque)  # type: ignore[attr-defined]
    assert Connection.__dict__["events"] is not original_events
    compat.uninstall()
    assert Connection.__dict__["events"] is original_events


def test_every_failure_kind_has_wsprotos_wording_or_is_ours_on_purpose() -> None:
    # A new kind of failure must be given wsproto's words, or be one wsproto
    # cannot produce (it has no size limits and no internal-error path).
    assert set(Violation) - set(compat._REASONS) == {
        Violation.FRAME_TOO_BIG,
        Violation.MESSAGE_TOO_BIG,
        Violation.INTERNAL_ERROR,
    }


# ======================================================================== permessage-deflate, as wsproto's


def _deflate_view(extension: Any) -> tuple[object, ...]:
    return (
        extension.enabled(),
        extension.client_no_context_takeover,
        extension.client_max_window_bits,
        extension.server_no_context_takeover,
        extension.server_max_window_bits,
    )


DEFLATE_OFFERS = [
    "permessage-deflate; client_max_window_bits=10; server_no_context_takeover",
    "permessage-deflate; client_max_window_bits=15; server_max_window_bits=9",
    "permessage-deflate; client_no_context_takeover; client_max_window_bits=12; server_max_window_bits=11",
]


@needs_real_wsproto
@pytest.mark.parametrize("offer", DEFLATE_OFFERS)
def test_deflate_attributes_show_the_negotiated_parameters(installed: None, offer: str) -> None:
    # Programs read the outcome of a negotiation from these attributes, which
    # wsproto overwrote; ours show it without losing the configuration.
    real_server, server = REAL_PER_MESSAGE_DEFLATE(), wsproto_core.extensions.PerMessageDeflate()
    assert server.accept(offer) == real_server.accept(offer)  # wsproto writes the same answer for these
    assert _deflate_view(server) == _deflate_view(real_server)
    real_client, client = REAL_PER_MESSAGE_DEFLATE(), wsproto_core.extensions.PerMessageDeflate()
    real_client.finalize(offer)
    client.finalize(offer)
    assert _deflate_view(client) == _deflate_view(real_client)
    # The configuration is kept: the same object answers the next offer afresh.
    assert server.accept("permessage-deflate") is not None
    assert server.client_max_window_bits == 15


@needs_real_wsproto
@pytest.mark.parametrize("client", [True, False])
def test_deflate_enabled_by_hand_compresses_and_inflates_as_wsproto(installed: None, client: bool) -> None:
    # wsproto's own tests, and programs driving the extension without a
    # handshake, set the private _enabled and call the hooks with a proto.
    payload = b"compress me " * 20

    def compress(module: Any, extension: Any) -> tuple[bool, bytes]:
        extension._enabled = True
        proto = module.FrameProtocol(client=client, extensions=[extension])
        rsv, data = extension.frame_outbound(
            proto, module.Opcode.BINARY, module.RsvBits(False, False, False), payload, True
        )
        return rsv.rsv1, data

    ours = compress(wsproto_core.frame_protocol, wsproto_core.extensions.PerMessageDeflate())
    assert ours == compress(REAL.frame_protocol, REAL_PER_MESSAGE_DEFLATE())

    receiver = wsproto_core.extensions.PerMessageDeflate()
    receiver._enabled = True  # type: ignore[attr-defined]
    assert receiver.enabled()
    proto = wsproto_core.frame_protocol.FrameProtocol(client=not client, extensions=[receiver])
    header = receiver.frame_inbound_header(proto, Opcode.BINARY, RsvBits(True, False, False), len(ours[1]))  # type: ignore[arg-type]
    assert header == RsvBits(True, False, False)
    inflated = receiver.frame_inbound_payload_data(proto, ours[1])  # type: ignore[arg-type]
    tail = receiver.frame_inbound_complete(proto, True)  # type: ignore[arg-type]
    assert isinstance(inflated, bytes) and isinstance(tail, bytes)
    assert inflated + tail == payload


def test_without_compat_deflate_attributes_are_the_configuration(sandbox: None) -> None:
    compat.install()
    compat.uninstall()
    extension = wsproto_core.extensions.PerMessageDeflate()
    extension.accept("permessage-deflate; client_max_window_bits=10")
    assert extension.client_max_window_bits is None
    assert extension.negotiated is not None
    assert extension.negotiated.client_max_window_bits == 10


DEFLATE_CONFIGURATIONS: list[dict[str, Any]] = [
    {},
    {"client_max_window_bits": None, "server_max_window_bits": None},
    {"client_max_window_bits": 12},
    {"server_max_window_bits": 10, "server_no_context_takeover": True},
    {"client_no_context_takeover": True, "client_max_window_bits": 9, "server_max_window_bits": 15},
]


@needs_real_wsproto
@pytest.mark.parametrize("configuration", DEFLATE_CONFIGURATIONS)
def test_deflate_offer_is_wsprotos(
    installed: None, monkeypatch: pytest.MonkeyPatch, configuration: dict[str, Any]
) -> None:
    # wsproto writes out both window sizes (15 where none is configured), and
    # shows 15 for an unconfigured one; the whole request is byte-identical.
    assert REAL is not None
    ours, real = wsproto_core.extensions.PerMessageDeflate(**configuration), REAL_PER_MESSAGE_DEFLATE(**configuration)
    assert ours.offer() == real.offer()
    assert _deflate_view(ours) == _deflate_view(real)
    key = b"dGhlIHNhbXBsZSBub25jZQ=="
    monkeypatch.setattr(REAL.handshake, "generate_nonce", lambda: key)
    monkeypatch.setattr(wsproto_core.handshake, "generate_nonce", lambda: key)

    def request(library: Any, extension: Any) -> bytes:
        client = library.WSConnection(library.ConnectionType.CLIENT)
        data: bytes = client.send(library.events.Request(host="example.com", target="/", extensions=[extension]))
        return data

    assert request(wsproto_core, ours) == request(REAL, real)


def test_deflate_offer_of_15_asks_for_nothing_more(installed: None) -> None:
    # Under compat the default offer says server_max_window_bits=15, as
    # wsproto's does; 15 is no limit, so a server that leaves the parameter out
    # of its response is still accepted (our negotiation reads the configuration).
    client = wsproto_core.extensions.PerMessageDeflate()
    assert client.offer() == "client_max_window_bits=15; server_max_window_bits=15"
    client.finalize("permessage-deflate")
    assert client.negotiated == wsproto_core.permessage_deflate.DeflateParameters(False, False, 15, 15)
    # A configured limit is still one: leaving it out fails the handshake.
    limited = wsproto_core.extensions.PerMessageDeflate(server_max_window_bits=10)
    with pytest.raises(wsproto_core.RemoteProtocolError, match="server_max_window_bits=10 was requested"):
        limited.finalize("permessage-deflate")


def test_without_compat_deflate_offer_is_ours(sandbox: None) -> None:
    compat.install()
    compat.uninstall()
    extension = wsproto_core.extensions.PerMessageDeflate()
    assert extension.offer() == "client_max_window_bits"
    assert extension.client_max_window_bits is None


FRAGMENTS = [b"first fragment " * 7, b"", b"second " * 30, b"last"]


def _send_fragmented(connection: Any, message_type: Any) -> bytes:
    return b"".join(
        connection.send(message_type(data=fragment, message_finished=index == len(FRAGMENTS) - 1))
        for index, fragment in enumerate(FRAGMENTS)
    )


def _received_data(events: Iterator[Any]) -> bytes:
    received = list(events)
    assert received[-1].message_finished
    return b"".join(event.data for event in received)


@needs_real_wsproto
def test_fragmented_compressed_message_is_wsprotos_and_inflates_everywhere(sandbox: None) -> None:
    # Under compat only a message's last fragment is flushed, as in wsproto:
    # the same bytes, which our receiver (without compat) and wsproto's inflate.
    assert REAL is not None
    real_extension = REAL_PER_MESSAGE_DEFLATE()
    real_extension.accept("permessage-deflate")
    real_server = REAL.connection.Connection(REAL.connection.ConnectionType.SERVER, extensions=[real_extension])
    expected = _send_fragmented(real_server, REAL.events.BytesMessage)

    compat.install()
    extension = wsproto_core.extensions.PerMessageDeflate()
    extension.accept("permessage-deflate")
    server = Connection(ConnectionType.SERVER, extensions=[extension])
    wire = _send_fragmented(server, wsproto_core.events.BytesMessage)
    assert wire == expected
    compat.uninstall()

    # A fragment may now carry no complete deflate block; each still goes out
    # as a frame, RSV1 on the first only.
    assert wire[0] == 0x40 | Opcode.BINARY
    for client_extension, connection_type, receiver_class in [
        (wsproto_core.extensions.PerMessageDeflate(), ConnectionType.CLIENT, Connection),
        (REAL_PER_MESSAGE_DEFLATE(), REAL.connection.ConnectionType.CLIENT, REAL.connection.Connection),
    ]:
        client_extension.finalize("permessage-deflate")
        receiver = receiver_class(connection_type, extensions=[client_extension])
        receiver.receive_data(wire)
        assert _received_data(receiver.events()) == b"".join(FRAGMENTS)


def test_without_compat_each_fragment_is_flushed(sandbox: None) -> None:
    # Our own behaviour: every fragment inflates on arrival, alone.
    compat.install()
    compat.uninstall()
    extension = wsproto_core.extensions.PerMessageDeflate()
    extension.accept("permessage-deflate")
    server = Connection(ConnectionType.SERVER, extensions=[extension])
    first = server.send(wsproto_core.events.BytesMessage(data=FRAGMENTS[0], message_finished=False))
    payload = first[2:]
    assert first[1] == len(payload)
    assert payload.endswith(b"\x00\x00\xff\xff")
    assert zlib.decompressobj(-15).decompress(payload) == FRAGMENTS[0]


@pytest.mark.parametrize("touched_before_data", [False, True])
@pytest.mark.parametrize("side", ["client", "server"])
def test_events_injected_after_the_upgrade_come_out_of_ws_events(
    installed: None, side: str, touched_before_data: bool
) -> None:
    # A program may first touch _events once its WSConnection has upgraded,
    # after the WSConnection bound the Connection's events method.
    assert Connection.__dict__["events"] is compat._ORIGINALS[Connection, "events"]
    client = wsproto_core.WSConnection(ConnectionType.CLIENT)
    server = wsproto_core.WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(wsproto_core.events.Request(host="example.com", target="/")))
    assert [type(event).__name__ for event in server.events()] == ["Request"]
    client.receive_data(server.send(wsproto_core.events.AcceptConnection()))
    assert [type(event).__name__ for event in client.events()] == ["AcceptConnection"]
    ws, peer = (client, server) if side == "client" else (server, client)
    if touched_before_data:
        assert not ws.connection._events  # type: ignore[union-attr]
    ws.receive_data(peer.send(TextMessage("from the wire")))
    ws.connection._events.append(TextMessage("injected"))  # type: ignore[union-attr]
    assert list(ws.events()) == [TextMessage("injected"), TextMessage("from the wire")]
    ws.connection._events.append(TextMessage("later"))  # type: ignore[union-attr]
    assert list(ws.events()) == [TextMessage("later")]


@needs_real_wsproto
@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate",
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; client_max_window_bits; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits=15; server_max_window_bits=15",
        "permessage-deflate; client_max_window_bits; client_no_context_takeover; server_max_window_bits=10",
    ],
)
def test_deflate_response_of_an_unconfigured_server_is_wsprotos(installed: None, offer: str) -> None:
    # A browser offers a bare client_max_window_bits; wsproto answers it with
    # 15, which states the window we agree on anyway.
    server = wsproto_core.extensions.PerMessageDeflate()
    response = server.accept(offer)
    assert response == REAL_PER_MESSAGE_DEFLATE().accept(offer)
    client = wsproto_core.extensions.PerMessageDeflate()
    client.finalize("; ".join(filter(None, ["permessage-deflate", response])))
    assert client.negotiated == server.negotiated
