"""The HTTP/1.1 opening handshake (RFC 6455 section 4), in both roles, over h11.

:class:`H11Handshake` turns the upgrade request and response into events
(``Request``, ``AcceptConnection``, ``RejectConnection``, ``RejectData``) and
back, validates every header the RFC constrains, and, once the upgrade is done,
creates the post-handshake :class:`~wsproto_core.connection.Connection` with
the negotiated extensions and any bytes that arrived after the response.

Remote errors raise :class:`RemoteProtocolError` whose ``event_hint`` is the
``RejectConnection`` a server should send back (h11 handles HTTP framing and
the size of the request head).
"""

from __future__ import annotations

import binascii
import contextlib
import re
import weakref
from collections.abc import Iterable, Iterator, Sequence
from http import HTTPStatus
from typing import Any

import h11

try:
    # h11's own request-head reader and buffer, which h11.Connection runs on
    # every request: called directly, they parse a whole request head without
    # the connection's state machine (a quarter of h11's cost per handshake).
    from h11._readers import maybe_read_from_IDLE_client as _read_request_head
    from h11._receivebuffer import ReceiveBuffer as _ReceiveBuffer
except ImportError:  # pragma: no cover - a future h11 that moved them: h11.Connection does it all
    _read_request_head = None  # type: ignore[assignment]

try:
    # The two patterns that reader matches lines with, and the header list
    # its Request holds: with them, a plain request head (CRLF lines, one
    # Host, no Content-Length or Transfer-Encoding) becomes the same Request
    # without the reader's generators and the Request's second pass over
    # the headers (together a third of a server handshake).
    from h11._headers import Headers as _H11Headers
    from h11._readers import header_field_re as _HEADER_FIELD
    from h11._readers import request_line_re as _REQUEST_LINE
except ImportError:  # pragma: no cover - a future h11 that moved them: its reader does it all
    _REQUEST_LINE = None  # type: ignore[assignment]

from .connection import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MIN_PARTIAL_SIZE,
    Connection,
    check_limits,
    check_min_partial_size,
)
from .errors import LocalProtocolError, RemoteProtocolError
from .events import AcceptConnection, Event, RejectConnection, RejectData, Request
from .extension_interface import Extension
from .state import ConnectionState, ConnectionType, SendKind, Trigger, may_send, next_state
from .utilities import generate_accept_token, generate_nonce, split_header_values

__all__ = [
    "DEFAULT_MAX_HANDSHAKE_SIZE",
    "WEBSOCKET_VERSION",
    "H11Handshake",
    "client_extensions_handshake",
    "origin_allowed",
    "server_extensions_handshake",
]

#: The only protocol version defined (RFC 6455 section 4.1, item 9).
WEBSOCKET_VERSION = b"13"

#: The largest request or response head accepted, in bytes (h11's own default).
#: Browsers send 0.5-2 KiB; cookies can push that to several KiB.
DEFAULT_MAX_HANDSHAKE_SIZE = 16 * 1024

#: At most this many header lines in a handshake: far above what browsers send,
#: low enough that a flood of tiny headers is refused early.
MAX_HEADER_COUNT = 128


# RFC 7230 section 3.2: field-name = token; field-value without CR, LF or NUL.
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(rb"[^\x00\r\n]*")


# Headers that the received events carry in their own fields (the host, the
# offered or accepted extensions and subprotocols) or that only the client's
# validation of the 101 needs; extra_headers leaves them out, exactly as wsproto
# does, because applications read extra_headers as "the headers the other side
# added" (trio-websocket hands the client's copy to its users, hypercorn's tests
# compare it whole).
_REQUEST_FIELD_HEADERS = frozenset((b"host", b"sec-websocket-extensions", b"sec-websocket-protocol"))
# The request headers that the server's checks read.
_CHECKED_REQUEST_HEADERS = _REQUEST_FIELD_HEADERS | {
    b"upgrade",
    b"connection",
    b"sec-websocket-version",
    b"sec-websocket-key",
}
_RESPONSE_FIELD_HEADERS = frozenset(
    (b"connection", b"upgrade", b"sec-websocket-accept", b"sec-websocket-extensions", b"sec-websocket-protocol")
)


# The kind of each handshake event, for the state tables.
_HANDSHAKE_KINDS: tuple[tuple[type[Event], SendKind], ...] = (
    (Request, SendKind.REQUEST),
    (AcceptConnection, SendKind.ACCEPT),
    (RejectConnection, SendKind.REJECT),
    (RejectData, SendKind.REJECT_DATA),
)
_HANDSHAKE_KIND_OF_CLASS: dict[type[Event], SendKind] = dict(_HANDSHAKE_KINDS)


def _other_headers(headers: Iterable[tuple[bytes, bytes]], omitted: frozenset[bytes]) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in headers if name.lower() not in omitted]


# The start of every 101 this module writes, up to the Sec-WebSocket-Accept value.
_SWITCHING_PROTOCOLS = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
)


def _upgrade_required() -> RejectConnection:
    # RFC 7231 section 6.5.15: a 426 response MUST carry an Upgrade header.
    return RejectConnection(
        status_code=426, headers=[(b"upgrade", b"websocket"), (b"sec-websocket-version", WEBSOCKET_VERSION)]
    )


def _header_pairs(headers: h11._headers.Headers) -> list[tuple[bytes, bytes]]:
    """The ``(lower-cased name, value)`` pairs of h11's headers, as a list."""
    try:
        # h11 keeps (raw name, lower-cased name, value) triples: reading them
        # costs a fifth of iterating its Headers, a Sequence without an
        # iterator of its own (a Python call per header).
        full_items = headers._full_items
    except AttributeError:  # pragma: no cover - an h11 that stores its headers otherwise
        return list(headers)
    return [(name, value) for _raw_name, name, value in full_items]


#: Headers that h11 rewrites as it reads them (their values normalized, or refused).
_FRAMING_HEADERS = frozenset((b"content-length", b"transfer-encoding"))


def _read_plain_request_head(data: bytes) -> tuple[h11.Request, int] | None:
    """The ``h11.Request`` that h11's reader would make of a plain head in ``data``, and where the head ends.

    None when the head is not plain (incomplete, a bare LF, a folded or
    invalid line, no Host or several, Content-Length or Transfer-Encoding):
    then h11's reader decides, and words any error, as it always did.
    """
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0 or _REQUEST_LINE is None:
        return None
    head = data[:head_end]
    lines = head.split(b"\r\n")
    if head.count(b"\n") != len(lines) - 1:
        return None
    request_line = _REQUEST_LINE.fullmatch(lines[0])
    if request_line is None:
        return None
    items: list[tuple[bytes, bytes, bytes]] = []
    hosts = 0
    for line in lines[1:]:
        field = _HEADER_FIELD.fullmatch(line)
        if field is None:
            return None
        raw_name, value = field.group("field_name", "field_value")
        name = raw_name.lower()
        if name in _FRAMING_HEADERS:
            return None
        if name == b"host":
            hosts += 1
        items.append((raw_name, name, value))
    if hosts != 1:
        return None
    # The request line's pattern already holds the method to a token and the
    # target to visible characters, the checks h11's Request would repeat.
    request = h11.Request.__new__(h11.Request)
    set_field = object.__setattr__  # h11's events are frozen
    set_field(request, "method", request_line["method"])
    set_field(request, "target", request_line["target"])
    set_field(request, "http_version", request_line["http_version"])
    set_field(request, "headers", _H11Headers(items))
    return request, head_end + 4


def _read_request_head_with_h11(data: bytes) -> tuple[h11.Request, int] | None:
    """h11's request reader on ``data``, and where the head ends; None if it is incomplete or refused."""
    if _read_request_head is None:  # pragma: no cover - see the import
        return None
    buffer = _ReceiveBuffer()
    buffer += data
    try:
        request = _read_request_head(buffer)
    except h11.ProtocolError:
        return None
    if request is None:
        return None
    return request, len(data) - len(buffer)


def _tokens(values: Iterable[bytes]) -> set[str]:
    return {element.lower() for element in split_header_values(values)}


def _includes_token(values: list[bytes] | None, token: bytes) -> bool:
    """Whether a list header's values include ``token`` (lower-case), in any case."""
    if values is None:
        return False
    # The common case, the token alone, without splitting the list.
    if len(values) == 1 and values[0].lower() == token:
        return True
    return token.decode("ascii") in _tokens(values)


class H11Handshake:
    """The opening handshake of one connection.

    :param connection_type: which role we play.
    :param max_handshake_size: the largest request (server) or response head
        (client) accepted, in bytes.
    :param max_frame_size: passed to the ``Connection`` created when the
        handshake succeeds.
    :param max_message_size: likewise.
    :param min_partial_size: likewise.
    :param opens: the :class:`~wsproto_core.connection.Connection` object that
        a successful handshake sets up and hands on, instead of a new one (a
        :class:`~wsproto_core.WSConnection` passes itself).
    """

    #: When true, a client takes an interim (1xx) response other than 101 as
    #: the server's rejection, with no body, as wsproto did, instead of waiting
    #: for the final response as HTTP says (RFC 7231 section 6.2). Set by
    #: :func:`wsproto_core.compat.install` for applications that expect
    #: wsproto's answer (trio-websocket reports such a response as
    #: ``ConnectionRejected``).
    wsproto_interim_responses = False

    # Once the upgrade is done only ``client``, ``_state``, ``_connection`` and
    # the (then empty) event queue matter; the rest is released (see _open).
    __slots__ = (
        "__weakref__",
        "_connection",
        "_events",
        "_h11",
        "_max_frame_size",
        "_max_handshake_size",
        "_max_message_size",
        "_min_partial_size",
        "_nonce",
        "_opens",
        "_received",
        "_request",
        "_state",
        "_transport_closed",
        "_unparsed",
        "client",
        "request_head",
    )

    def __init__(
        self,
        connection_type: ConnectionType,
        *,
        max_handshake_size: int = DEFAULT_MAX_HANDSHAKE_SIZE,
        max_frame_size: int | None = DEFAULT_MAX_FRAME_SIZE,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        min_partial_size: int = DEFAULT_MIN_PARTIAL_SIZE,
        opens: Connection | None = None,
    ) -> None:
        if not isinstance(connection_type, ConnectionType):
            raise LocalProtocolError(
                f"connection_type must be ConnectionType.CLIENT or ConnectionType.SERVER, not {connection_type!r}"
            )
        if not isinstance(max_handshake_size, int) or max_handshake_size <= 0:
            raise LocalProtocolError(f"max_handshake_size must be a positive int, not {max_handshake_size!r}")
        # The defaults need no check (most servers pass them: a handshake's
        # every microsecond counts when clients connect by the thousand).
        if (
            max_frame_size is not DEFAULT_MAX_FRAME_SIZE
            or max_message_size is not DEFAULT_MAX_MESSAGE_SIZE
            or min_partial_size is not DEFAULT_MIN_PARTIAL_SIZE
        ):
            check_limits(max_frame_size=max_frame_size, max_message_size=max_message_size)
            check_min_partial_size(min_partial_size)
        self.client = connection_type is ConnectionType.CLIENT
        self._state = ConnectionState.CONNECTING
        self._max_handshake_size = max_handshake_size
        # Made when first needed (see _http): a server whose first read holds
        # a whole upgrade request that it accepts never needs one.
        self._h11: h11.Connection | None = None
        # Server, when its request was parsed without h11.Connection: the bytes
        # received (for h11.Connection, should it be needed after all), and
        # those after the request head (the WebSocket's first bytes).
        self._received = b""
        self._unparsed = b""
        # For the Connection that a successful handshake opens.
        self._max_frame_size = max_frame_size
        self._max_message_size = max_message_size
        self._min_partial_size = min_partial_size
        self._transport_closed = False
        self._connection: Connection | None = None
        # Weakly: a WSConnection holds its handshake, and a cycle would keep a
        # rejected or abandoned one alive until the garbage collector runs.
        self._opens = weakref.ref(opens) if opens is not None else None
        self._events: list[Event] = []
        # Server: the request being answered. Client: the request we sent.
        self._request: Request | None = None
        #: Server: the target and headers of the HTTP request received, set
        #: even when it is not a valid upgrade, so that a server can answer a
        #: plain HTTP request (a page, a health check) instead of rejecting it.
        self.request_head: tuple[bytes, list[tuple[bytes, bytes]]] | None = None
        self._nonce: bytes | None = None

    @classmethod
    def finished(cls, connection: Connection) -> H11Handshake:
        """A handshake that is over and opened ``connection``, holding nothing of HTTP.

        What a :class:`~wsproto_core.WSConnection` shows as its ``handshake``
        once it let its own go: state OPEN, and received bytes go to
        ``connection``.
        """
        handshake = cls(ConnectionType.CLIENT if connection.client else ConnectionType.SERVER)
        handshake._connection = connection
        handshake._state = next_state(handshake._state, Trigger.HANDSHAKE_ACCEPTED)
        return handshake

    @property
    def state(self) -> ConnectionState:
        """CONNECTING, then OPEN (via the ``Connection``), REJECTING or CLOSED."""
        return self._state

    @property
    def connection(self) -> Connection | None:
        """The post-handshake ``Connection``, once the upgrade completed."""
        return self._connection

    @property
    def pending_events(self) -> bool:
        """Whether received handshake events wait to be handed out by :meth:`events`."""
        return bool(self._events)

    def _http(self) -> h11.Connection:
        """The h11 connection, which only exists until the upgrade is done."""
        http = self._h11
        if http is not None:
            return http
        if self._connection is not None:
            raise LocalProtocolError(
                "The opening handshake is over: send, receive and read events through handshake.connection."
            )
        http = self._h11 = h11.Connection(
            h11.CLIENT if self.client else h11.SERVER, max_incomplete_event_size=self._max_handshake_size
        )
        received = self._received
        if received:
            # The request was parsed without h11.Connection (_read_whole_request)
            # and something else than the 101 follows (a rejection, more
            # bytes, the end of the stream): h11 reads the same bytes, so that
            # its state is the one it would have had from the start.
            http.receive_data(received)
            http.next_event()
            self._received = self._unparsed = b""
        return http

    def _read_whole_request(self, data: bytes) -> bool:
        """Take a server's first read when it holds a whole request head; false if it does not.

        A plain head is read by :func:`_read_plain_request_head`, any other by
        h11's request reader, either as h11.Connection would; a head that is
        incomplete or that h11 refuses goes the usual way instead, so that
        h11.Connection handles it (and words any error) as always.
        """
        parsed = _read_plain_request_head(data) or _read_request_head_with_h11(data)
        if parsed is None:
            return False
        request, head_end = parsed
        self._received = data
        self._unparsed = data[head_end:]
        event = self._process_request(request)
        self._request = event
        self._events.append(event)
        return True

    # ------------------------------------------------------------------ server

    def initiate_upgrade_connection(self, headers: Sequence[tuple[bytes, bytes]], path: bytes | str) -> None:
        """Start a server handshake from a request another HTTP server parsed.

        ``headers`` are the request's headers and ``path`` its target. The
        ``Request`` event follows from :meth:`events`, as if the request had
        been received by :meth:`receive_data`.
        """
        if self.client:
            raise LocalProtocolError("initiate_upgrade_connection() is for servers; a client sends a Request.")
        if self._state is not ConnectionState.CONNECTING or self._request is not None or self.request_head:
            raise LocalProtocolError(
                "initiate_upgrade_connection() starts a handshake: call it once, before anything else."
            )
        target = path.encode("latin-1") if isinstance(path, str) else path
        # The other server already consumed the request; feed h11 the same one
        # so that it expects our response.
        upstream = h11.Connection(h11.CLIENT)
        try:
            data = upstream.send(h11.Request(method=b"GET", target=target, headers=list(headers)))
        except h11.LocalProtocolError as exc:
            raise RemoteProtocolError(f"Bad upgrade request: {exc}", event_hint=RejectConnection()) from None
        self._http().receive_data(data or b"")
        self._receive_events()

    def _process_request(self, request: h11.Request) -> Request:
        """Validate an upgrade request (section 4.2.1) and describe it as an event."""
        target = request.target
        headers = _header_pairs(request.headers)
        # One pass over the headers (a handshake's hot spot): it keeps the
        # headers that the checks below read and those that the Request hands
        # on as extra_headers.
        extra_headers: list[tuple[bytes, bytes]] = []
        fields: dict[bytes, list[bytes]] = {}
        for pair in headers:
            name = pair[0]
            if name in _CHECKED_REQUEST_HEADERS:
                values = fields.get(name)
                if values is None:
                    fields[name] = [pair[1]]
                else:
                    values.append(pair[1])
                if name in _REQUEST_FIELD_HEADERS:
                    continue
            extra_headers.append(pair)
        self.request_head = (target, headers)
        # Section 4.2.1, item 1: "An HTTP/1.1 or higher GET request".
        if request.method != b"GET":
            raise RemoteProtocolError(
                "A WebSocket handshake uses GET",
                event_hint=RejectConnection(status_code=405, headers=[(b"allow", b"GET")]),
            )
        if request.http_version < b"1.1":
            raise RemoteProtocolError(
                "A WebSocket handshake needs HTTP/1.1 or later", event_hint=RejectConnection(status_code=505)
            )
        # h11 enforces the limit on heads that arrive in pieces; this covers
        # one that arrived whole, measured by _head_size on both paths. That
        # measure exceeds the head's length on the wire by at most two bytes a
        # header and one (each line ends in at least LF, each name in a colon,
        # the request line in " HTTP/1.1"), so a head known to be shorter than
        # the limit by that margin needs no measuring.
        received = self._received
        # The head's length on the wire, known when _read_whole_request parsed it.
        head_length = len(received) - len(self._unparsed) if received else self._max_handshake_size
        if (
            head_length + 2 * len(headers) + 1 > self._max_handshake_size
            and _head_size(target, headers) > self._max_handshake_size
        ):
            raise RemoteProtocolError(
                f"Request head over max_handshake_size={self._max_handshake_size}",
                event_hint=RejectConnection(status_code=431),
            )
        if len(headers) > MAX_HEADER_COUNT:
            raise RemoteProtocolError(
                f"More than {MAX_HEADER_COUNT} request headers", event_hint=RejectConnection(status_code=431)
            )
        # Item 2, exactly one Host. h11 checks this for HTTP/1.1 only (RFC 7230
        # section 5.4), and lets a request that claims HTTP/1.2 through.
        hosts = fields.get(b"host", [])
        if len(hosts) != 1:
            raise RemoteProtocolError("Exactly one Host header is required", event_hint=RejectConnection())
        host = hosts[0]
        # Items 3 and 4: Upgrade includes "websocket", Connection includes
        # "Upgrade" (case-insensitive tokens in lists).
        if not _includes_token(fields.get(b"upgrade"), b"websocket"):
            raise RemoteProtocolError("Missing 'Upgrade: websocket' header", event_hint=_upgrade_required())
        if not _includes_token(fields.get(b"connection"), b"upgrade"):
            raise RemoteProtocolError("Missing 'Connection: Upgrade' header", event_hint=_upgrade_required())
        # Item 6: the version is 13; section 4.4 says to answer anything else
        # with 426 and the versions we support.
        if fields.get(b"sec-websocket-version") != [WEBSOCKET_VERSION]:
            raise RemoteProtocolError("Sec-WebSocket-Version must be 13", event_hint=_upgrade_required())
        # Item 5: the key is a base64-encoded 16-byte value.
        keys = fields.get(b"sec-websocket-key", [])
        if len(keys) != 1 or not _is_valid_key(keys[0]):
            raise RemoteProtocolError(
                "Sec-WebSocket-Key must be one base64-encoded 16-byte value", event_hint=RejectConnection()
            )
        self._nonce = keys[0]
        extensions = fields.get(b"sec-websocket-extensions")
        subprotocols = fields.get(b"sec-websocket-protocol")
        return Request(
            host=_decode_host(host),
            target=target.decode("latin-1"),
            extensions=split_header_values(extensions) if extensions else [],
            extra_headers=extra_headers,
            subprotocols=split_header_values(subprotocols) if subprotocols else [],
        )

    def _accept(self, event: AcceptConnection) -> bytes:
        request = self._request
        assert request is not None and self._nonce is not None
        negotiated, accepted = negotiate_server_response(request, event)
        # The 101 ends HTTP on this connection, so it is written here rather
        # than through h11 (whose per-header validation doubles the cost of a
        # handshake); the headers the application chose are checked the same
        # way, ours are constant or base64.
        accept = generate_accept_token(self._nonce)
        if not negotiated:
            # The usual answer: nothing but the accept token to add.
            self._open(accepted)
            return _SWITCHING_PROTOCOLS + accept + b"\r\n\r\n"
        lines = [_SWITCHING_PROTOCOLS + accept]
        for name, value in negotiated:
            if not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
                raise LocalProtocolError(f"Invalid response header {name!r}: {value!r}")
            lines.append(name + b": " + value)
        self._open(accepted)
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def _reject(self, event: RejectConnection) -> bytes:
        if event.status_code == 101:
            raise LocalProtocolError("A RejectConnection cannot have status 101; send AcceptConnection to accept.")
        headers = list(event.headers)
        if not event.has_body:
            headers.append((b"content-length", b"0"))
        reason = _reason_phrase(event.status_code)
        http = self._http()
        data = http.send(h11.Response(status_code=event.status_code, headers=headers, reason=reason)) or b""
        self._state = next_state(self._state, Trigger.HANDSHAKE_REJECTED)
        if not event.has_body:
            data += http.send(h11.EndOfMessage()) or b""
            self._state = next_state(self._state, Trigger.REJECTION_FINISHED)
        return data

    def _send_reject_data(self, event: RejectData) -> bytes:
        http = self._http()
        data = http.send(h11.Data(data=event.data)) or b""
        if event.body_finished:
            data += http.send(h11.EndOfMessage()) or b""
            self._state = next_state(self._state, Trigger.REJECTION_FINISHED)
        return data

    # ------------------------------------------------------------------ client

    def _initiate(self, event: Request) -> bytes:
        self._nonce = generate_nonce()
        headers = [
            (b"Host", event.host.encode("idna") if not event.host.isascii() else event.host.encode("ascii")),
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Key", self._nonce),
            (b"Sec-WebSocket-Version", WEBSOCKET_VERSION),
        ]
        if event.subprotocols:
            headers.append((b"Sec-WebSocket-Protocol", ", ".join(event.subprotocols).encode("ascii")))
        offers = extension_offers(event)
        if offers:
            headers.append((b"Sec-WebSocket-Extensions", offers.encode("ascii")))
        headers.extend(event.extra_headers)
        self._request = event
        request = h11.Request(method=b"GET", target=event.target.encode("ascii"), headers=headers)
        return self._http().send(request) or b""

    def _process_response(self, response: h11.InformationalResponse) -> AcceptConnection:
        """Validate the server's 101 (section 4.2.2 / 4.1, client side)."""
        request = self._request
        assert request is not None and self._nonce is not None
        # Read once from h11's list (see _header_pairs), names lower-cased.
        headers = _header_pairs(response.headers)
        if _head_size(b"", headers) > self._max_handshake_size:
            raise RemoteProtocolError(
                f"Response head over max_handshake_size={self._max_handshake_size}", event_hint=RejectConnection()
            )
        fields = collect_headers(headers, lowercase=False)

        def fail(message: str) -> RemoteProtocolError:
            return RemoteProtocolError(message, event_hint=RejectConnection())

        # Section 4.1 item 2: fail if Upgrade "contains a value that is not an
        # ASCII case-insensitive match for the value 'websocket'": a list such
        # as "websocket, h2c" fails too (a server's check, 4.2.1, is "includes").
        upgrade = fields.get(b"upgrade", [])
        # The usual answer, one "websocket", without splitting the list.
        if not (len(upgrade) == 1 and upgrade[0].lower() == b"websocket") and _tokens(upgrade) != {"websocket"}:
            raise fail("The 101 response's Upgrade is not exactly 'websocket'")
        if not _includes_token(fields.get(b"connection"), b"upgrade"):
            raise fail("The 101 response lacks 'Connection: Upgrade'")
        if fields.get(b"sec-websocket-accept") != [generate_accept_token(self._nonce)]:
            raise fail("The 101 response has a wrong or missing Sec-WebSocket-Accept")
        subprotocol, extensions = negotiate_client_acceptance(request, fields)
        self._open(extensions)
        return AcceptConnection(
            subprotocol=subprotocol,
            extensions=extensions,
            extra_headers=[pair for pair in headers if pair[0] not in _RESPONSE_FIELD_HEADERS],
        )

    def open_after_upgrade(self, extensions: Sequence[Extension] = (), received: bytes = b"") -> None:
        """Skip the handshake: another layer (an HTTP/2 or HTTP/3 stack) did it.

        The connection opens at once with ``extensions`` (already negotiated)
        and ``received``, bytes of the WebSocket that came with the upgrade.
        """
        if self._state is not ConnectionState.CONNECTING or self._request is not None or self.request_head is not None:
            raise LocalProtocolError(
                "open_after_upgrade() is for a handshake that has not started; create a new one instead."
            )
        self._open(list(extensions))
        if received:
            assert self._connection is not None
            self._connection.receive_data(received)

    # ---------------------------------------------------------------- plumbing

    def _open(self, extensions: list[Extension]) -> None:
        http = self._h11
        trailing = self._unparsed if http is None else http.trailing_data[0]
        opens = self._opens() if self._opens is not None else None
        connection = opens if opens is not None else Connection.__new__(Connection)
        # The limits were checked when the handshake was created.
        connection._setup(self.client, extensions, self._max_frame_size, self._max_message_size, self._min_partial_size)
        self._connection = connection
        self._opens = None
        self._state = next_state(self._state, Trigger.HANDSHAKE_ACCEPTED)
        if trailing:
            connection.receive_data(trailing)
        # The connection lives on without HTTP: drop what only the handshake
        # needed (h11's state and buffers, the request, its headers), which
        # would otherwise cost several KB per connection for its whole life.
        self._h11 = None
        self._request = None
        self._nonce = None
        self.request_head = None
        self._received = self._unparsed = b""

    def send(self, event: Event) -> bytes:
        """Return the bytes of a handshake event (Request, AcceptConnection, RejectConnection, RejectData)."""
        kind = _HANDSHAKE_KIND_OF_CLASS.get(type(event))
        if kind is None:
            # A subclass of an event class.
            kind = next((kind for cls, kind in _HANDSHAKE_KINDS if isinstance(event, cls)), None)
        role = ConnectionType.CLIENT if self.client else ConnectionType.SERVER
        # The state tables decide (state.may_send); the HTTP request's existence
        # is the one fact they need from us while CONNECTING.
        if kind is None or not may_send(self._state, role, kind, self._request is not None):
            if self.client:
                raise LocalProtocolError(
                    f"A client sends one Request to start; {type(event).__name__} cannot be sent in state "
                    f"{self._state.name}."
                )
            raise LocalProtocolError(
                f"{type(event).__name__} cannot be sent in state {self._state.name}: a server answers a Request "
                "with AcceptConnection or RejectConnection (then RejectData if has_body)."
            )
        if kind is SendKind.REQUEST:
            return self._initiate(event)  # type: ignore[arg-type]
        if kind is SendKind.ACCEPT:
            return self._accept(event)  # type: ignore[arg-type]
        if kind is SendKind.REJECT:
            return self._reject(event)  # type: ignore[arg-type]
        return self._send_reject_data(event)  # type: ignore[arg-type]

    def receive_data(self, data: bytes | bytearray | memoryview | None) -> None:
        """Feed bytes from the peer (``None`` when the transport closed)."""
        if self._transport_closed:
            raise LocalProtocolError(
                "receive_data() was called after receive_data(None) said the transport closed; "
                "stop feeding this connection."
            )
        if data is None:
            # h11 reads b"" as the end of the stream: a body delimited by the
            # end of the connection ends now.
            self._transport_closed = True
            if self._connection is not None:
                self._connection.receive_data(None)
                return
            self._http().receive_data(b"")
            with contextlib.suppress(RemoteProtocolError):
                # A head cut short by the end of the stream: nobody is left to
                # answer, so the handshake just ends.
                self._receive_events()
            if self._state is not ConnectionState.CLOSED and self._connection is None:
                self._state = next_state(self._state, Trigger.TRANSPORT_CLOSED)
        elif self._connection is not None:
            # The handshake is over: what follows is the WebSocket's.
            self._connection.receive_data(data)
        elif data:
            data = bytes(data)
            if self._h11 is None and not self.client and self.request_head is None and self._read_whole_request(data):
                return
            self._http().receive_data(data)
            self._receive_events()

    def _receive_events(self) -> None:
        while self._connection is None and self._state is not ConnectionState.CLOSED:
            try:
                event = self._http().next_event()
            except h11.RemoteProtocolError as exc:
                raise RemoteProtocolError(
                    f"Bad HTTP message: {exc}",
                    event_hint=RejectConnection(status_code=exc.error_status_hint),
                ) from None
            if event is h11.NEED_DATA or event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                return
            if self.client:
                self._client_event(event)
            elif isinstance(event, h11.Request):
                request = self._process_request(event)
                self._request = request
                self._events.append(request)
                # A GET upgrade has no body: what follows the head belongs to
                # the WebSocket and stays in h11's buffer as trailing data.
                return

    def _client_event(self, event: Any) -> None:
        if isinstance(event, h11.InformationalResponse):
            # 1xx responses other than 101 are interim; the final one follows.
            if event.status_code == 101:
                self._events.append(self._process_response(event))
            elif self.wsproto_interim_responses:
                self._state = next_state(self._state, Trigger.HANDSHAKE_REJECTED)
                self._events.append(
                    RejectConnection(status_code=event.status_code, headers=list(event.headers), has_body=False)
                )
                self._state = next_state(self._state, Trigger.REJECTION_FINISHED)
        elif isinstance(event, h11.Response):
            self._state = next_state(self._state, Trigger.HANDSHAKE_REJECTED)
            self._events.append(
                RejectConnection(status_code=event.status_code, headers=list(event.headers), has_body=True)
            )
        elif isinstance(event, h11.Data):
            self._events.append(RejectData(data=bytes(event.data), body_finished=False))
        elif isinstance(event, h11.EndOfMessage):
            self._events.append(RejectData(data=b"", body_finished=True))
            self._state = next_state(self._state, Trigger.REJECTION_FINISHED)

    def events(self) -> Iterator[Event]:
        """Iterate over the handshake events received so far."""
        while self._events:
            yield self._events.pop(0)

    def __repr__(self) -> str:
        return f"H11Handshake(client={self.client}, state={self._state.name})"


def negotiate_server_response(
    request: Request, event: AcceptConnection
) -> tuple[list[tuple[bytes, bytes]], list[Extension]]:
    """The response headers that carry a server's choices, and the accepted extensions.

    Shared by HTTP/1.1 and HTTP/2 (RFC 8441): the subprotocol must be one the
    client offered (section 4.2.2, item 5.4), extensions are chosen with
    :func:`server_extensions_handshake`, and ``event.extra_headers`` follow.
    """
    if event.subprotocol is not None and event.subprotocol not in request.subprotocols:
        raise LocalProtocolError(
            f"Subprotocol {event.subprotocol!r} was not offered (offered: {request.subprotocols}); "
            "pick one of those or None."
        )
    headers: list[tuple[bytes, bytes]] = []
    if event.subprotocol is not None:
        headers.append((b"Sec-WebSocket-Protocol", event.subprotocol.encode("latin-1")))
    accepted: list[Extension] = []
    if event.extensions:
        offers = [offer for offer in request.extensions if isinstance(offer, str)]
        value = server_extensions_handshake(offers, event.extensions, accepted)
        if value:
            headers.append((b"Sec-WebSocket-Extensions", value))
    headers.extend(event.extra_headers)
    return headers, accepted


def negotiate_client_acceptance(
    request: Request, fields: dict[bytes, list[bytes]]
) -> tuple[str | None, list[Extension]]:
    """Check a server's subprotocol and extension choices against what we offered.

    Shared by HTTP/1.1 and HTTP/2. ``fields`` maps lower-cased header names to
    their values. Raises :class:`RemoteProtocolError` for a choice that was not
    offered (section 4.1, client requirements 5 and 6).
    """
    subprotocols = split_header_values(fields.get(b"sec-websocket-protocol", []))
    if len(subprotocols) > 1:
        raise RemoteProtocolError("The server chose more than one subprotocol", event_hint=RejectConnection())
    subprotocol = subprotocols[0] if subprotocols else None
    if subprotocol is not None and subprotocol not in request.subprotocols:
        raise RemoteProtocolError(
            f"The server chose subprotocol {subprotocol!r}, which was not offered", event_hint=RejectConnection()
        )
    offered = [extension for extension in request.extensions if isinstance(extension, Extension)]
    extensions = client_extensions_handshake(split_header_values(fields.get(b"sec-websocket-extensions", [])), offered)
    return subprotocol, extensions


def extension_offers(request: Request) -> str | None:
    """The ``Sec-WebSocket-Extensions`` value that offers a client's extensions."""
    offers: list[str] = []
    for extension in request.extensions:
        if not isinstance(extension, Extension):
            raise LocalProtocolError("Request.extensions must be Extension objects when a client sends it.")
        offer = extension.offer()
        if offer is True:
            offers.append(extension.name)
        elif offer:
            offers.append(f"{extension.name}; {offer}")
    return ", ".join(offers) if offers else None


def collect_headers(headers: Iterable[tuple[bytes, bytes]], *, lowercase: bool = True) -> dict[bytes, list[bytes]]:
    """Group header values by lower-cased name, keeping repeats in order.

    ``lowercase=False`` when the names already are (h11 lower-cases them).
    """
    fields: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        fields.setdefault(name.lower() if lowercase else name, []).append(value)
    return fields


def _decode_host(host: bytes) -> str:
    """The Host header as text: internationalised names decoded, as wsproto does.

    The client side encodes a non-ASCII host with IDNA (RFC 3490), so decoding
    gives the application back the name it was sent. A header that is not
    valid IDNA (a broken ``xn--`` label) is still a Host: it comes as Latin-1
    rather than failing the handshake, which wsproto let escape as a crash.
    """
    if b"xn--" not in host.lower():
        # IDNA decoding returns a label without the ACE prefix as it is
        # (RFC 3490 section 4.2, ToUnicode): skip the slow codec.
        return host.decode("latin-1")
    try:
        return host.decode("idna")
    except UnicodeError:
        return host.decode("latin-1")


def _head_size(target: bytes, headers: Iterable[tuple[bytes, bytes]]) -> int:
    """The size of an HTTP head on the wire, give or take the first line's words."""
    return len(target) + 16 + sum(len(name) + len(value) + 4 for name, value in headers)


def _reason_phrase(status_code: int) -> bytes:
    try:
        return HTTPStatus(status_code).phrase.encode("ascii")
    except ValueError:
        return b""


def _is_valid_key(key: bytes) -> bool:
    try:
        # What base64.b64decode(key, validate=True) does, without its wrapper.
        return len(binascii.a2b_base64(key, strict_mode=True)) == 16
    except binascii.Error:
        return False


def server_extensions_handshake(
    requested: Iterable[str], supported: Sequence[Extension], accepted: list[Extension] | None = None
) -> bytes | None:
    """Choose extensions from a client's offers; return the response header value.

    Offers are considered in the client's order and, for each extension, the
    first offer it accepts wins (RFC 6455 section 9.1: the order of offers is
    the client's preference). Extensions that accepted an offer are appended to
    ``accepted`` when given. Returns ``None`` when nothing was accepted.
    """
    responses: list[bytes] = []
    chosen: set[str] = set()
    for offer in requested:
        name = offer.split(";", 1)[0].strip()
        if name in chosen:
            continue
        for extension in supported:
            if extension.name != name:
                continue
            response = extension.accept(offer)
            if response is None or response is False:
                continue
            chosen.add(name)
            if accepted is not None:
                accepted.append(extension)
            if response is True or response == "":
                responses.append(name.encode("ascii"))
            else:
                responses.append(f"{name}; {response}".encode("ascii"))
            break
    return b", ".join(responses) if responses else None


def client_extensions_handshake(accepted: Iterable[str], supported: Sequence[Extension]) -> list[Extension]:
    """Apply the extensions a server accepted; refuse any that was not offered.

    Section 9.1: the server may only answer with extensions the client offered.
    """
    extensions: list[Extension] = []
    for response in accepted:
        name = response.split(";", 1)[0].strip()
        for extension in supported:
            if extension.name == name and extension not in extensions:
                extension.finalize(response)
                extensions.append(extension)
                break
        else:
            raise RemoteProtocolError(
                f"The server accepted extension {name!r}, which was not offered", event_hint=RejectConnection()
            )
    return extensions


def origin_allowed(request: Request, allowed_origins: Iterable[str | None]) -> bool:
    """Whether the request's ``Origin`` header is one of ``allowed_origins``.

    Browsers always send ``Origin`` and it is the server's only defence against
    cross-site WebSocket hijacking (RFC 6455 section 10.2): a page on another
    site can open a WebSocket to your server with the user's cookies. Compare
    against the exact origins you serve (scheme, host and port, e.g.
    ``"https://example.com"``); include ``None`` to allow clients that send no
    Origin (non-browser clients). Answer a refusal with
    ``RejectConnection(status_code=403)``.
    """
    origins = [value for name, value in request.extra_headers if name.lower() == b"origin"]
    allowed = set(allowed_origins)
    if not origins:
        return None in allowed
    if len(origins) > 1:
        return False
    return origins[0].decode("latin-1").lower() in {origin.lower() for origin in allowed if origin is not None}
