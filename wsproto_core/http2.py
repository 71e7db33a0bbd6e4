"""WebSockets over HTTP/2 (RFC 8441): the extended CONNECT handshake as headers.

HTTP/2 has no Upgrade: a client opens a stream with an *extended CONNECT*
request (``:method CONNECT``, ``:protocol websocket``) and the server answers
``:status 200``; WebSocket frames then travel in the stream's DATA frames. The
HTTP/2 framing belongs to the application's HTTP/2 library (h2, for one), so
this module works on header lists only: it validates the request or response
and builds the other side's headers. Once the handshake is done, pair the
stream with a handshake-less :class:`~wsproto_core.connection.Connection`
(its frames are still masked by the client: section 5 keeps RFC 6455 framing
unchanged).

A server must first advertise ``SETTINGS_ENABLE_CONNECT_PROTOCOL = 1``
(section 3); h2 exposes it as ``h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL``.

Subprotocols and extensions are negotiated by the same functions as over
HTTP/1.1 (:mod:`wsproto_core.handshake`), so a request gets the same answer on
either. An HTTP/2 or HTTP/3 stack that does the handshake itself can go on
with :meth:`wsproto_core.WSConnection.after_upgrade` or a bare ``Connection``.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import LocalProtocolError, RemoteProtocolError
from .events import AcceptConnection, RejectConnection, Request
from .extension_interface import Extension
from .handshake import (
    _REQUEST_FIELD_HEADERS,
    _RESPONSE_FIELD_HEADERS,
    MAX_HEADER_COUNT,
    WEBSOCKET_VERSION,
    _decode_host,
    _other_headers,
    collect_headers,
    extension_offers,
    negotiate_client_acceptance,
    negotiate_server_response,
)
from .utilities import split_header_values

__all__ = [
    "SETTINGS_ENABLE_CONNECT_PROTOCOL",
    "accept_headers",
    "client_accepted",
    "connect_request_headers",
    "reject_headers",
    "request_from_headers",
    "response_headers",
]

#: The identifier of the HTTP/2 setting that allows extended CONNECT (RFC 8441
#: section 3). A client MUST NOT send ``:protocol`` before the server's
#: SETTINGS said 1.
SETTINGS_ENABLE_CONNECT_PROTOCOL = 0x8

# RFC 9113 section 8.2.2: "An endpoint MUST NOT generate an HTTP/2 message
# containing connection-specific header fields"; a rejection built for
# HTTP/1.1 (process_request's page, a 426) may carry them.
_CONNECTION_SPECIFIC_HEADERS = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)

HeaderList = Iterable[tuple[bytes | str, bytes | str]]


def _as_bytes(headers: HeaderList) -> list[tuple[bytes, bytes]]:
    return [
        (
            name.encode("ascii").lower() if isinstance(name, str) else name.lower(),
            value.encode("latin-1") if isinstance(value, str) else value,
        )
        for name, value in headers
    ]


def request_from_headers(headers: HeaderList) -> Request:
    """Server side: validate an extended CONNECT request and describe it as a ``Request``.

    ``headers`` is the stream's header list, pseudo-headers included (bytes or
    str). Raises :class:`RemoteProtocolError` whose ``event_hint`` carries the
    status to answer with (400, or 426 for a wrong WebSocket version).
    """
    header_list = _as_bytes(headers)
    if len(header_list) > MAX_HEADER_COUNT:
        raise RemoteProtocolError(
            f"More than {MAX_HEADER_COUNT} request headers", event_hint=RejectConnection(status_code=431)
        )
    fields = collect_headers(header_list)

    def single(name: bytes) -> bytes:
        values = fields.get(name, [])
        if len(values) != 1 or not values[0]:
            raise RemoteProtocolError(
                f"Extended CONNECT needs exactly one {name.decode()} (RFC 8441 section 4)",
                event_hint=RejectConnection(status_code=400),
            )
        return values[0]

    # RFC 8441 section 4: ":method" is CONNECT, ":protocol" names the protocol,
    # and unlike a plain CONNECT, ":scheme" and ":path" MUST be present.
    if single(b":method") != b"CONNECT":
        raise RemoteProtocolError("A WebSocket over HTTP/2 uses CONNECT", event_hint=RejectConnection(status_code=405))
    if single(b":protocol").lower() != b"websocket":
        raise RemoteProtocolError("The :protocol is not websocket", event_hint=RejectConnection(status_code=400))
    scheme = single(b":scheme")
    if scheme not in (b"http", b"https"):
        raise RemoteProtocolError("The :scheme must be http or https", event_hint=RejectConnection(status_code=400))
    path = single(b":path")
    authority = single(b":authority")
    # Section 5: Sec-WebSocket-Version still applies; the key and accept do not.
    if fields.get(b"sec-websocket-version") != [WEBSOCKET_VERSION]:
        raise RemoteProtocolError(
            "sec-websocket-version must be 13",
            event_hint=RejectConnection(status_code=426, headers=[(b"sec-websocket-version", WEBSOCKET_VERSION)]),
        )
    regular = [(name, value) for name, value in header_list if not name.startswith(b":")]
    # The same Request as the HTTP/1.1 handshake makes of the same request:
    # :authority plays the part of Host (RFC 9113 section 8.3.1).
    return Request(
        host=_decode_host(authority),
        target=path.decode("latin-1"),
        extensions=split_header_values(fields.get(b"sec-websocket-extensions", [])),
        extra_headers=_other_headers(regular, _REQUEST_FIELD_HEADERS),
        subprotocols=split_header_values(fields.get(b"sec-websocket-protocol", [])),
    )


def accept_headers(request: Request, event: AcceptConnection) -> tuple[list[tuple[bytes, bytes]], list[Extension]]:
    """Server side: the ``:status 200`` response headers, and the accepted extensions.

    Pass the extensions to ``Connection(ConnectionType.SERVER, extensions)``.
    Raises :class:`LocalProtocolError` for a subprotocol that was not offered.
    """
    negotiated, accepted = negotiate_server_response(request, event)
    headers = [(b":status", b"200"), *((name.lower(), value) for name, value in negotiated)]
    return headers, accepted


def reject_headers(event: RejectConnection) -> list[tuple[bytes, bytes]]:
    """Server side: the response headers that refuse a stream.

    The same ``RejectConnection`` serves HTTP/1.1 and HTTP/2 (see
    :func:`response_headers`). Whether a body follows in DATA frames is the
    caller's to decide from ``event.has_body``.
    """
    if not 300 <= event.status_code <= 599:
        raise LocalProtocolError(
            f"A rejection needs a status from 300 to 599 (a 2xx accepts the stream), not {event.status_code}"
        )
    return response_headers(event.status_code, event.headers)


def response_headers(status_code: int, headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """An HTTP/2 response's header list for a plain HTTP answer (a page, a refusal).

    ``:status`` first, names lower-cased (RFC 9113 section 8.2), and the
    connection-specific headers that HTTP/2 forbids (section 8.2.2) left out,
    so that an answer written for HTTP/1.1 can be sent as it is.
    """
    if not 200 <= status_code <= 599:
        raise LocalProtocolError(f"An HTTP/2 final response has a status from 200 to 599, not {status_code}")
    response = [(b":status", str(status_code).encode("ascii"))]
    for name, value in headers:
        lower = name.lower()
        if lower not in _CONNECTION_SPECIFIC_HEADERS:
            response.append((lower, value))
    return response


def connect_request_headers(request: Request, scheme: str = "https") -> list[tuple[bytes, bytes]]:
    """Client side: the extended CONNECT header list that opens a WebSocket stream.

    Send it only after the server's SETTINGS enabled the CONNECT protocol.
    """
    headers = [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", scheme.encode("ascii")),
        (b":path", request.target.encode("ascii")),
        (b":authority", request.host.encode("ascii")),
        (b"sec-websocket-version", WEBSOCKET_VERSION),
    ]
    if request.subprotocols:
        headers.append((b"sec-websocket-protocol", ", ".join(request.subprotocols).encode("ascii")))
    offers = extension_offers(request)
    if offers:
        headers.append((b"sec-websocket-extensions", offers.encode("ascii")))
    headers.extend((name.lower(), value) for name, value in request.extra_headers)
    return headers


def client_accepted(request: Request, headers: HeaderList) -> AcceptConnection | RejectConnection:
    """Client side: interpret the server's response headers to our extended CONNECT.

    A 2xx status accepts (section 5: "a 2xx series status code"); anything else
    is a rejection whose body, if any, arrives in the stream's DATA frames.
    Raises :class:`RemoteProtocolError` when an accepting response chose a
    subprotocol or extension we did not offer.
    """
    header_list = _as_bytes(headers)
    fields = collect_headers(header_list)
    status = fields.get(b":status", [b""])[0]
    if not status.isdigit():
        raise RemoteProtocolError("The response has no valid :status", event_hint=RejectConnection())
    regular = [(name, value) for name, value in header_list if not name.startswith(b":")]
    if not 200 <= int(status) < 300:
        return RejectConnection(status_code=int(status), headers=regular, has_body=True)
    subprotocol, extensions = negotiate_client_acceptance(request, fields)
    return AcceptConnection(
        subprotocol=subprotocol,
        extensions=extensions,
        extra_headers=_other_headers(regular, _RESPONSE_FIELD_HEADERS),
    )
