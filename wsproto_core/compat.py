"""Run programs written for wsproto on wsproto_core, unchanged.

Call :func:`install` before the program (or the framework it uses: uvicorn,
hypercorn, trio-websocket, httpx-ws) imports ``wsproto``::

    import wsproto_core.compat
    wsproto_core.compat.install()

    import uvicorn  # its "--ws wsproto" protocol now runs on wsproto_core

From then on ``import wsproto`` and its submodules resolve to wsproto_core's
modules, which carry the same names, and wsproto_core behaves as wsproto 1.3.2
does wherever that is safe: the wording of failures (close reasons and
``RemoteProtocolError`` messages), the statuses of rejected handshakes, an empty
read taken for the end of the stream during the handshake, ``receive_data`` in
state CLOSED raising, the ``_events`` queue that subclasses inject events into,
close codes that must not be sent becoming 1000 instead of raising, a client
taking an interim 1xx response for a rejection, and ``PerMessageDeflate`` read
and driven as wsproto's. Where wsproto is unsafe (size limits, unbounded
inflation, a bad key, the state after a violation, ...) wsproto_core keeps its
own behaviour: ``docs/reference/differences.md`` lists each case and why.

How: :func:`install` replaces a few attributes of
:class:`~wsproto_core.connection.Connection`,
:class:`~wsproto_core.handshake.H11Handshake`,
:class:`~wsproto_core.extensions.Extension` and
:class:`~wsproto_core.permessage_deflate.PerMessageDeflate` with the wrappers
below (the table ``_GRAFTS``), and :func:`uninstall` puts the originals back.
None is on a per-frame fast path; the receive path pays one wrapper call per
``receive_data()`` (``benchmarks/bench_compat.py``). Without ``install()``
nothing here runs, so it costs nothing.
"""

from __future__ import annotations

import collections
import importlib
import sys
import types
import weakref
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import h11

from . import _UpgradedWSConnection
from . import handshake as _handshake
from .connection import Connection
from .errors import LocalProtocolError, RemoteProtocolError, Violation
from .events import CloseConnection, Event, RejectConnection
from .extensions import Extension
from .frames import MAX_CONTROL_PAYLOAD, CloseReason, Opcode, RsvBits
from .handshake import H11Handshake
from .permessage_deflate import DeflateParameters, PerMessageDeflate
from .state import ConnectionState
from .utilities import generate_accept_token, split_comma_header

__all__ = ["WSPROTO_MODULES", "install", "installed", "take_role", "uninstall", "wsproto_failure_reason"]

#: The wsproto modules that applications import, and wsproto_core's modules
#: that stand in for them.
WSPROTO_MODULES = {
    "wsproto": "wsproto_core",
    "wsproto.connection": "wsproto_core.connection",
    "wsproto.events": "wsproto_core.events",
    "wsproto.extensions": "wsproto_core.extensions",
    "wsproto.frame_protocol": "wsproto_core.frame_protocol",
    "wsproto.handshake": "wsproto_core.handshake",
    "wsproto.typing": "wsproto_core.typing",
    "wsproto.utilities": "wsproto_core.utilities",
}

_displaced: dict[str, types.ModuleType] = {}

# ============================================================================ failure wording

_CLOSED = ConnectionState.CLOSED
_LOCAL_ONLY_CODES = (1005, 1006, 1015)


def _interleaved_reason(failure: RemoteProtocolError, opcode: int | None) -> str:
    if opcode == Opcode.TEXT or opcode == Opcode.BINARY:  # noqa: PLR1714 - opcode may be None
        return f"expected CONTINUATION, got {Opcode(opcode)!r}"
    return str(failure)


# Each kind of failure -> wsproto's words for it (its FrameDecoder,
# MessageDecoder and FrameProtocol raise ParseFailed with these). A kind
# without an entry (a size limit, an internal error: wsproto has neither)
# keeps our wording.
_REASONS: dict[Violation, Callable[[RemoteProtocolError, int | None], str]] = {
    Violation.ORPHAN_CONTINUATION: lambda failure, opcode: "unexpected CONTINUATION",
    Violation.INTERLEAVED_MESSAGE: _interleaved_reason,
    Violation.MASKED_FROM_SERVER: lambda failure, opcode: "client received unexpected masked frame",
    Violation.UNMASKED_FROM_CLIENT: lambda failure, opcode: "server received unexpected unmasked frame",
    Violation.LENGTH_TOP_BIT: lambda failure, opcode: "8-byte payload length with non-zero MSB",
    Violation.RESERVED_BITS: lambda failure, opcode: "Reserved bit set unexpectedly",
    Violation.RESERVED_OPCODE: lambda failure, opcode: f"Invalid opcode {_last_word(failure)}",
    Violation.FRAGMENTED_CONTROL: lambda failure, opcode: "Invalid attempt to fragment control frame",
    Violation.CONTROL_TOO_LONG: lambda failure, opcode: "Control frame with payload len > 125",
    Violation.EXTENSION_REFUSED_FRAME: lambda failure, opcode: "error in extension",
    Violation.EXTENSION_REFUSED_PAYLOAD: lambda failure, opcode: "error in extension",
    Violation.CLOSE_ONE_BYTE: lambda failure, opcode: "CLOSE with 1 byte payload",
    Violation.CLOSE_INVALID_CODE: lambda failure, opcode: _close_code_reason(int(_last_word(failure))),
    # wsproto reports the decoder's own message.
    Violation.INVALID_UTF8: lambda failure, opcode: _decode_error(failure) or str(failure),
    Violation.CLOSE_REASON_UTF8: lambda failure, opcode: (
        f"Error decoding CLOSE reason: {_decode_error(failure)}" if _decode_error(failure) else str(failure)
    ),
}


def _last_word(failure: RemoteProtocolError) -> str:
    # The opcode or close code that the message ends with.
    return str(failure).rsplit(" ", 1)[-1]


def _decode_error(failure: RemoteProtocolError) -> str | None:
    # The UnicodeDecodeError the failure was raised while handling, if any.
    context = failure.__context__
    return str(context) if isinstance(context, UnicodeDecodeError) else None


def _close_code_reason(code: int) -> str:
    if code < 1000 or code > 4999:
        return "CLOSE with invalid code"
    if code in _LOCAL_ONLY_CODES:
        return "remote CLOSE with local-only reason"
    return "CLOSE with unknown reserved code"


def wsproto_failure_reason(failure: RemoteProtocolError, opcode: int | None = None) -> str:
    """The words wsproto 1.3.2 uses for the protocol violation ``failure``.

    ``opcode`` is the opcode of the offending frame, which wsproto names when a
    new data frame interrupts a fragmented message.
    """
    reason = _REASONS.get(failure.kind) if failure.kind is not None else None
    return str(failure) if reason is None else reason(failure, opcode)


# ============================================================================ Connection


def _fail(self: Connection, failure: RemoteProtocolError) -> CloseConnection:
    # The offending frame's first byte is still unconsumed: a new data frame
    # inside a fragmented message is named by its opcode in wsproto's reason.
    buffer, offset = self._buffer, self._offset
    opcode = buffer[offset] & 0x0F if offset < len(buffer) else None
    event: CloseConnection = _ORIGINALS[Connection, "_fail"](self, failure)
    reason = wsproto_failure_reason(failure, opcode)
    reason = reason.encode("utf-8")[: MAX_CONTROL_PAYLOAD - 2].decode("utf-8", "ignore")
    return CloseConnection(code=event.code, reason=reason)


# The methods the two receive-path wrappers call, bound once: these run per
# receive_data() and per events() call, so every lookup counts.
_connection_receive_data = Connection.receive_data
_connection_events = Connection.events


def _receive_data(self: Connection, data: bytes | bytearray | memoryview | None) -> None:
    if self._state is _CLOSED and data is not None:
        raise LocalProtocolError("Connection already closed.")
    _connection_receive_data(self, data)


#: The ``_events`` queues handed out, by connection. Kept here rather than in
#: the instance: touching ``__dict__`` would make CPython give the instance a
#: real dict, slowing every attribute read on the receive path.
_queues: weakref.WeakKeyDictionary[Connection, collections.deque[Event]] = weakref.WeakKeyDictionary()


def _events(self: Connection) -> Iterator[Event]:
    # Events a subclass appended to _events come first, as in wsproto. Put in
    # place only once some connection's queue was handed out, so programs that
    # never touch _events pay nothing for it.
    injected = _queues.get(self)
    if injected:
        return _drain_then(injected, _connection_events(self))
    return _connection_events(self)


def _drain_then(injected: collections.deque[Event], parsed: Iterator[Event]) -> Iterator[Event]:
    while injected:
        yield injected.popleft()
    yield from parsed


class _EventQueue:
    """``Connection._events``: each connection's deque, made on first use, as wsproto's attribute."""

    def __get__(self, instance: Connection | None, owner: type) -> Any:
        if instance is None:
            return self
        queue = _queues.get(instance)
        if queue is None:
            queue = _queues[instance] = collections.deque()
            _start_draining()
        return queue

    def __set__(self, instance: Connection, value: collections.deque[Event]) -> None:
        _queues[instance] = value
        _start_draining()


def _start_draining() -> None:
    """Make ``events()`` drain injected events first, also through an upgraded WSConnection."""
    Connection.events = _events  # type: ignore[method-assign]
    # An upgraded WSConnection's class carries Connection's methods itself.
    _UpgradedWSConnection.events = _events


# ============================================================================ H11Handshake


def _handshake_receive_data(self: H11Handshake, data: bytes | bytearray | memoryview | None) -> None:
    # wsproto hands b"" to h11, for which it means the end of the stream.
    if data is not None and not data:
        data = None
    try:
        _ORIGINALS[H11Handshake, "receive_data"](self, data)
    except RemoteProtocolError as exc:
        if str(exc).startswith(("Bad HTTP message", "Bad upgrade request")):
            raise RemoteProtocolError("Bad HTTP message", event_hint=RejectConnection()) from None
        raise


def _process_request(self: H11Handshake, request: h11.Request) -> Any:
    try:
        return _ORIGINALS[H11Handshake, "_process_request"](self, request)
    except RemoteProtocolError:
        wsproto_error = _wsproto_request_error(request)
        if wsproto_error is None:
            raise
        raise wsproto_error from None


def _wsproto_request_error(request: h11.Request) -> RemoteProtocolError | None:
    """The error wsproto raises for a request we refused, checked in its order.

    ``None`` when wsproto would have accepted it: a request over our size limits,
    on HTTP/1.0, or with a malformed key, which we refuse on purpose.
    """
    if request.method != b"GET":
        return RemoteProtocolError("Request method must be GET", event_hint=RejectConnection())
    if request.http_version < b"1.1":
        return None
    fields: dict[bytes, bytes] = {}
    connection_tokens: list[str] | None = None
    for name, value in request.headers:
        lowered = name.lower()
        if lowered == b"connection":
            connection_tokens = split_comma_header(value)
        fields[lowered] = value
    if connection_tokens is None or not any(token.lower() == "upgrade" for token in connection_tokens):
        return RemoteProtocolError("Missing header, 'Connection: Upgrade'", event_hint=RejectConnection())
    version = fields.get(b"sec-websocket-version")
    if version != _handshake.WEBSOCKET_VERSION:
        return RemoteProtocolError(
            "Missing header, 'Sec-WebSocket-Version'",
            event_hint=RejectConnection(
                headers=[(b"Sec-WebSocket-Version", _handshake.WEBSOCKET_VERSION)], status_code=426 if version else 400
            ),
        )
    if b"sec-websocket-key" not in fields:
        return RemoteProtocolError("Missing header, 'Sec-WebSocket-Key'", event_hint=RejectConnection())
    if fields.get(b"upgrade", b"").lower() != b"websocket":
        return RemoteProtocolError("Missing header, 'Upgrade: websocket'", event_hint=RejectConnection())
    if b"host" not in fields:
        return RemoteProtocolError("Missing header, 'Host'", event_hint=RejectConnection())
    return None


def _process_response(self: H11Handshake, response: h11.InformationalResponse) -> Any:
    try:
        return _ORIGINALS[H11Handshake, "_process_response"](self, response)
    except RemoteProtocolError as exc:
        wsproto_error = _wsproto_response_error(self, response, exc)
        if wsproto_error is None:
            raise
        raise wsproto_error from None


def _wsproto_response_error(
    handshake: H11Handshake, response: h11.InformationalResponse, error: RemoteProtocolError
) -> RemoteProtocolError | None:
    """The error wsproto raises for a 101 response we refused, checked in its order."""
    connection_tokens: list[str] | None = None
    upgrade = b""
    accept = None
    subprotocol = None
    accepted: list[str] = []
    for name, value in response.headers:
        lowered = name.lower()
        if lowered == b"connection":
            connection_tokens = split_comma_header(value)
        elif lowered == b"upgrade":
            upgrade = value
        elif lowered == b"sec-websocket-accept":
            accept = value
        elif lowered == b"sec-websocket-protocol":
            subprotocol = value.decode("latin-1")
        elif lowered == b"sec-websocket-extensions":
            accepted = split_comma_header(value)

    def fail(message: str) -> RemoteProtocolError:
        return RemoteProtocolError(message, event_hint=RejectConnection())

    if connection_tokens is None or not any(token.lower() == "upgrade" for token in connection_tokens):
        return fail("Missing header, 'Connection: Upgrade'")
    if upgrade.lower() != b"websocket":
        return fail("Missing header, 'Upgrade: websocket'")
    nonce = handshake._nonce
    if nonce is None or accept != generate_accept_token(nonce):
        return fail("Bad accept token")
    request = handshake._request
    offered = request.subprotocols if request is not None else []
    if subprotocol is not None and subprotocol not in offered:
        return fail(f"unrecognized subprotocol {subprotocol}")
    offered_extensions = request.extensions if request is not None else []
    supported = [extension.name for extension in offered_extensions if isinstance(extension, Extension)]
    for element in accepted:
        token = element.split(";", 1)[0].strip()
        if token not in supported:
            return fail(f"unrecognized extension {token}")
    return None


def _handshake_repr(self: H11Handshake) -> str:
    return f"{type(self).__name__}(client={self.client}, state={self.state})"


def _no_reason_phrase(status_code: int) -> bytes:
    # wsproto lets h11 write its rejections, which leaves the reason phrase empty.
    return b""


# ============================================================================ Extension


def _extension_accept(self: Extension, offer: str) -> bool | str | None:
    # wsproto's base class declines every offer instead of raising.
    return None


def _extension_finalize(self: Extension, offer: str) -> None:
    return None


# ============================================================================ PerMessageDeflate

#: Extensions switched on through wsproto's private ``_enabled`` attribute,
#: whose role (client or server) the first frame hook learns from its proto.
_enabled_without_role: weakref.WeakSet[PerMessageDeflate] = weakref.WeakSet()
_NOT_NEGOTIATED: DeflateParameters | None = None


def _deflate_enabled_get(self: PerMessageDeflate) -> bool:
    return self.negotiated is not None or self in _enabled_without_role


def _deflate_enabled_set(self: PerMessageDeflate, value: bool) -> None:
    # wsproto's tests (and programs driving the extension by hand) set
    # _enabled = True to use the configured parameters without a handshake.
    if value:
        _enabled_without_role.add(self)
    else:
        _enabled_without_role.discard(self)
        self._start(_NOT_NEGOTIATED, client=False)


def take_role(extension: Extension, client: bool) -> None:
    """Start a permessage-deflate extension enabled by hand (``_enabled = True``) in a role.

    A frame hook does this on its first call, from its proto; a
    :class:`~wsproto_core.frame_protocol.FrameProtocol` does it when built. Any
    other extension is left alone.
    """
    if isinstance(extension, PerMessageDeflate) and extension in _enabled_without_role:
        _take_role(extension, client)


def _take_role(self: PerMessageDeflate, client: bool) -> None:
    _enabled_without_role.discard(self)
    bits = PerMessageDeflate.DEFAULT_CLIENT_MAX_WINDOW_BITS
    self._start(
        DeflateParameters(
            self.server_no_context_takeover,
            self.client_no_context_takeover,
            self.server_max_window_bits or bits,
            self.client_max_window_bits or bits,
        ),
        client=client,
    )


def _deflate_inbound_header(
    self: PerMessageDeflate, proto: Any, opcode: Opcode, rsv: RsvBits, payload_length: int
) -> CloseReason | RsvBits:
    if _enabled_without_role and self in _enabled_without_role:
        _take_role(self, bool(proto.client))
    result: CloseReason | RsvBits = _ORIGINALS[PerMessageDeflate, "frame_inbound_header"](
        self, proto, opcode, rsv, payload_length
    )
    if isinstance(result, RsvBits) and self.negotiated is not None:
        # wsproto claims RSV1 on every frame it accepts; the frames on which
        # RSV1 is a violation were refused above, so the claim changes nothing.
        return _CLAIMED_RSV1
    return result


def _deflate_outbound(  # noqa: PLR0917 - wsproto's hook signature
    self: PerMessageDeflate, proto: Any, opcode: Opcode, rsv: RsvBits, data: bytes, fin: bool
) -> tuple[RsvBits, bytes]:
    if _enabled_without_role and self in _enabled_without_role:
        _take_role(self, bool(proto.client))
    result: tuple[RsvBits, bytes] = _ORIGINALS[PerMessageDeflate, "frame_outbound"](self, proto, opcode, rsv, data, fin)
    return result


_CLAIMED_RSV1 = RsvBits(True, False, False)

# wsproto writes the parameters of its offers and responses in this order.
_WSPROTO_PARAMETER_ORDER = {
    "client_max_window_bits": 0,
    "server_max_window_bits": 1,
    "client_no_context_takeover": 2,
    "server_no_context_takeover": 3,
}
_WSPROTO_RESPONSE_ORDER = {
    "client_no_context_takeover": 0,
    "server_no_context_takeover": 1,
    "client_max_window_bits": 2,
    "server_max_window_bits": 3,
}


def _in_order(parameters: str, order: dict[str, int]) -> str:
    elements = [element.strip() for element in parameters.split(";")]
    return "; ".join(sorted(elements, key=lambda element: order.get(element.split("=", 1)[0], len(order))))


#: Extensions whose own negotiation code is running: they read their
#: configuration as configured (``None`` for no limit), not wsproto's view.
_reading_configuration: weakref.WeakSet[PerMessageDeflate] = weakref.WeakSet()


def _as_configured(self: PerMessageDeflate, name: str, *args: str) -> Any:
    _reading_configuration.add(self)
    try:
        return _ORIGINALS[PerMessageDeflate, name](self, *args)
    finally:
        _reading_configuration.discard(self)


def _deflate_offer(self: PerMessageDeflate) -> str:
    # wsproto writes out both window sizes, 15 where none is configured.
    # Offering 15 asks for nothing more than offering no limit: finalize()
    # still reads the configuration, so a response that leaves out
    # server_max_window_bits is accepted as before.
    offer: str = _as_configured(self, "offer")
    elements = [element.strip() for element in offer.split(";")]
    bare_client_bits = f"{_CLIENT_MAX_WINDOW_BITS}={PerMessageDeflate.DEFAULT_CLIENT_MAX_WINDOW_BITS}"
    elements = [bare_client_bits if element == _CLIENT_MAX_WINDOW_BITS else element for element in elements]
    if not any(element.startswith(_SERVER_MAX_WINDOW_BITS + "=") for element in elements):
        elements.append(f"{_SERVER_MAX_WINDOW_BITS}={PerMessageDeflate.DEFAULT_SERVER_MAX_WINDOW_BITS}")
    return _in_order("; ".join(elements), _WSPROTO_PARAMETER_ORDER)


def _deflate_accept(self: PerMessageDeflate, offer: str) -> str | None:
    response: str | None = _as_configured(self, "accept", offer)
    negotiated = self.negotiated
    if negotiated is None or response is None:
        return response
    # wsproto answers a bare client_max_window_bits (as browsers offer it) with
    # the window it agreed, 15 when nothing limits it; we leave out the
    # parameter that would change nothing. Stating it is as valid (RFC 7692
    # section 7.1.2.2) and makes the 101 response wsproto's.
    offered = [element.strip() for element in offer.split(";")[1:]]
    if _CLIENT_MAX_WINDOW_BITS in offered and _CLIENT_MAX_WINDOW_BITS not in response:
        stated = f"{_CLIENT_MAX_WINDOW_BITS}={negotiated.client_max_window_bits}"
        response = f"{response}; {stated}" if response else stated
    return _in_order(response, _WSPROTO_RESPONSE_ORDER) if response else response


def _deflate_finalize(self: PerMessageDeflate, offer: str) -> None:
    _as_configured(self, "finalize", offer)


_CLIENT_MAX_WINDOW_BITS = "client_max_window_bits"
_SERVER_MAX_WINDOW_BITS = "server_max_window_bits"


def _negotiated_view(name: str) -> property:
    """wsproto's view of a parameter: what the last negotiation agreed, else what was configured.

    wsproto overwrote its configuration while negotiating, and programs read
    the outcome from these attributes. We keep the configuration (so an object
    answers the same for every connection) and show the outcome instead. A
    window size configured as ``None`` (no limit) shows as wsproto's default,
    15, except to the extension's own negotiation code.
    """
    configured = vars(PerMessageDeflate)[name]  # the slot that holds the configuration
    default = getattr(PerMessageDeflate, f"DEFAULT_{name.upper()}", None)

    def get(self: PerMessageDeflate) -> Any:
        negotiated = self.negotiated
        if negotiated is not None:
            return getattr(negotiated, name)
        value = configured.__get__(self)
        if value is None and default is not None and self not in _reading_configuration:
            return default
        return value

    def set_(self: PerMessageDeflate, value: Any) -> None:
        configured.__set__(self, value)

    return property(get, set_, doc=f"``{name}``: negotiated if the extension was, else as configured.")


# ============================================================================ install

#: (owner, attribute) -> the replacement that install() puts in place.
_GRAFTS: dict[tuple[Any, str], Any] = {
    (Connection, "_fail"): _fail,
    (Connection, "receive_data"): _receive_data,
    (Connection, "_events"): _EventQueue(),
    (_UpgradedWSConnection, "receive_data"): _receive_data,
    (H11Handshake, "receive_data"): _handshake_receive_data,
    (H11Handshake, "_process_request"): _process_request,
    (H11Handshake, "_process_response"): _process_response,
    (H11Handshake, "__repr__"): _handshake_repr,
    (_handshake, "_reason_phrase"): _no_reason_phrase,
    (Extension, "accept"): _extension_accept,
    (Extension, "finalize"): _extension_finalize,
    (PerMessageDeflate, "_enabled"): property(_deflate_enabled_get, _deflate_enabled_set),
    (PerMessageDeflate, "frame_inbound_header"): _deflate_inbound_header,
    (PerMessageDeflate, "frame_outbound"): _deflate_outbound,
    (PerMessageDeflate, "enabled"): _deflate_enabled_get,
    (PerMessageDeflate, "offer"): _deflate_offer,
    (PerMessageDeflate, "accept"): _deflate_accept,
    (PerMessageDeflate, "finalize"): _deflate_finalize,
    (PerMessageDeflate, "_fragment_flush"): zlib.Z_NO_FLUSH,
    **{
        (PerMessageDeflate, name): _negotiated_view(name)
        for name in (
            "client_no_context_takeover",
            "client_max_window_bits",
            "server_no_context_takeover",
            "server_max_window_bits",
        )
    },
}
#: What the grafts replaced, to restore; also what the wrappers call.
#: ``events`` is grafted lazily (see ``_events``) but restored here.
_ORIGINALS: dict[tuple[Any, str], Any] = {
    (owner, name): vars(owner).get(name)
    for owner, name in [*_GRAFTS, (Connection, "events"), (_UpgradedWSConnection, "events")]
}


def installed() -> bool:
    """Whether :func:`install` is in effect."""
    return Connection.wsproto_close_codes


def install() -> None:
    """Make ``import wsproto`` (and its submodules) load wsproto_core, behaving as wsproto.

    Safe to call more than once. Modules that already imported the real
    wsproto keep their references to it, so call this first.
    """
    for alias, target in WSPROTO_MODULES.items():
        module = importlib.import_module(target)
        previous = sys.modules.get(alias)
        if previous is not None and previous is not module and alias not in _displaced:
            _displaced[alias] = previous
        sys.modules[alias] = module
    for (owner, name), replacement in _GRAFTS.items():
        setattr(owner, name, replacement)
    Connection.wsproto_close_codes = True
    H11Handshake.wsproto_interim_responses = True


def uninstall() -> None:
    """Undo :func:`install`: restore whatever ``wsproto`` modules it displaced, and our behaviour."""
    for alias in WSPROTO_MODULES:
        sys.modules.pop(alias, None)
    sys.modules.update(_displaced)
    _displaced.clear()
    for (owner, name), original in _ORIGINALS.items():
        if original is None:
            if name in vars(owner):
                delattr(owner, name)
        else:
            setattr(owner, name, original)
    Connection.wsproto_close_codes = False
    H11Handshake.wsproto_interim_responses = False
