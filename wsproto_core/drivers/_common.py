"""What the asyncio, trio and thread drivers share, so that each stays a thin I/O loop.

Everything here is sans-I/O: parsing ``ws://`` URLs, building the client's
``Request`` and the server's ``AcceptConnection``, the exceptions the drivers
raise, and the driver-side settings. The protocol work itself (replies, timers,
message assembly, limits) lives in :class:`~wsproto_core.managed.ManagedConnection`.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .. import WSConnection
from ..connection import DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_MESSAGE_SIZE
from ..errors import LocalProtocolError, RemoteProtocolError
from ..events import AcceptConnection, BytesMessage, RejectConnection, RejectData, Request, TextMessage
from ..extensions import Extension
from ..handshake import DEFAULT_MAX_HANDSHAKE_SIZE
from ..managed import ManagedConnection
from ..permessage_deflate import PerMessageDeflate
from ..state import ConnectionType

if TYPE_CHECKING:
    # Only for types: logging loads threading, ssl and the proxy module load
    # sockets, which the sans-I/O import check refuses here.
    import logging
    import ssl as ssl_module

    from .proxy import ProxyURL

#: The public names, which :mod:`wsproto_core.drivers` exports (everything
#: else here is for the drivers themselves).
__all__ = [
    "ConnectionClosed",
    "HandshakeRejected",
    "HttpResponse",
    "InvalidURL",
    "ProcessRequest",
    "ProcessResponse",
    "SelectSubprotocol",
    "Settings",
    "parse_url",
]

#: Bytes read from the transport at a time.
READ_SIZE = 65536

#: The LZ77 window (in bits) our drivers compress with and ask their peers
#: to compress with (RFC 7692 sections 7.1.2.1 and 7.1.2.2), not zlib's
#: largest (15). Measured with benchmarks/bench_load.py: with 15 bits a server
#: spends about 1.5 times the CPU per message of 1 B-64 KiB (zlib searches a
#: window eight times as large for matches) for 5% smaller output, and each
#: connection holds 128 KiB of compressor window instead of 16 KiB. websockets
#: uses 12 bits too.
DEFLATE_WINDOW_BITS = 12

#: Connections a server lets sit in the opening handshake at once. Each holds
#: at most ``max_handshake_size`` (16 KiB) of request head, so the handshakes
#: of trickling clients (slowloris) hold at most 64 MiB, and are dropped after
#: ``open_timeout``.
DEFAULT_MAX_HANDSHAKES = 4096

#: The connections of the drivers hand a binary frame that arrives over several
#: reads to the application in pieces of this size (its ``min_partial_size``),
#: not the core's 64 KiB: a frame up to 1 MiB then comes whole, gathered
#: straight into its final bytes (``Connection.payload_buffer``) instead of
#: being handed over in 64 KiB pieces that ``recv()`` or the callbacks' assembly
#: join again. ``recv_streaming()`` still gets a larger frame in pieces.
DRIVER_PIECE_SIZE = 1024 * 1024

#: The least of a frame's payload still to come that a driver reads straight
#: into the payload's buffer (``Connection.payload_buffer``); less is copied
#: there from an ordinary read, a copy that costs less than a read of its own.
READ_INTO_MIN = 16 * 1024

#: Bytes a connection's outgoing buffer may hold before ``send_nowait``
#: decides that the peer is not reading.
DEFAULT_MAX_SEND_BUFFER = 4 * 1024 * 1024


class ConnectionClosed(Exception):
    """The WebSocket connection is closed; ``code`` and ``reason`` say how.

    ``code`` is 1000 or 1001 for a normal closure, 1006 when the transport
    closed without a Close frame, and the peer's or our failure code otherwise.
    """

    def __init__(self, code: int, reason: str | None = None) -> None:
        super().__init__(f"WebSocket connection closed: {code}" + (f" {reason}" if reason else ""))
        self.code = code
        self.reason = reason

    @property
    def normal(self) -> bool:
        """Whether the connection closed normally (1000 or 1001)."""
        return self.code in (1000, 1001)


class HandshakeRejected(Exception):
    """The server answered the upgrade with an HTTP response instead of 101."""

    def __init__(self, status_code: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        super().__init__(f"WebSocket handshake rejected with HTTP {status_code}")
        self.status_code = status_code
        self.headers = headers
        self.body = body


class InvalidURL(ValueError):
    """The URL is not a ``ws://`` or ``wss://`` URL."""


@dataclasses.dataclass(frozen=True)
class WebSocketURL:
    """A parsed ``ws://`` or ``wss://`` URL."""

    secure: bool
    host: str
    port: int
    target: str

    @property
    def authority(self) -> str:
        """The Host header value: the port is left out when it is the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_url(url: str) -> WebSocketURL:
    """Parse a WebSocket URL (RFC 6455 section 3); raise :class:`InvalidURL` if it is not one."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise InvalidURL(f"{url!r} is not a WebSocket URL: it must start with ws:// or wss://")
    if parts.fragment:
        # Section 3: "Fragment identifiers are meaningless in the context of
        # WebSocket URIs and MUST NOT be used".
        raise InvalidURL(f"{url!r} has a fragment (#...), which WebSocket URLs must not have")
    try:
        port = parts.port
    except ValueError:
        raise InvalidURL(f"{url!r} has an invalid port") from None
    if not parts.hostname:
        raise InvalidURL(f"{url!r} has no host")
    secure = parts.scheme == "wss"
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return WebSocketURL(secure, parts.hostname, port or (443 if secure else 80), target)


@dataclasses.dataclass(frozen=True)
class Settings:
    """The options every driver accepts, with the defaults a server wants.

    :param compression: negotiate permessage-deflate (RFC 7692).
    :param max_message_size: the largest message accepted, in bytes (1009 above).
    :param max_frame_size: the largest frame accepted, in bytes.
    :param ping_interval: seconds between keepalive Pings; ``None`` disables them.
    :param ping_timeout: seconds to wait for a keepalive Pong before giving up.
    :param close_timeout: seconds to wait for the peer during the closing handshake.
    :param max_queue: received messages buffered for the application before
        the driver stops reading from the socket (backpressure); it also stops
        while as many pieces of a message arriving in pieces wait untaken
        (``recv_streaming()``).
    :param max_handshakes: servers: connections allowed in the opening
        handshake at once; beyond it a new connection is answered with HTTP
        503 and ``Retry-After``. ``None``: no cap.
    :param max_connections: servers: connections allowed at once, in the
        handshake or open; beyond it, the same 503. ``None``: no cap.
    :param retry_after: the seconds a 503 asks the client to wait.
    :param max_send_buffer: bytes an outgoing buffer may already hold when a
        message is queued without waiting (``send_nowait``); beyond it the peer
        is not reading, and the connection is dropped (1006) rather than
        buffering without bound. ``send`` waits for the buffer to drain
        instead, so it never reaches this. ``None``: no limit.
    :param logger: each connection's logger (a ``Logger`` or ``LoggerAdapter``);
        ``None``: ``wsproto_core.client`` or ``wsproto_core.server``. With DEBUG
        enabled as a connection opens, its frames are logged
        (:mod:`wsproto_core.drivers.tracing`); otherwise that costs nothing.
    """

    compression: bool = True
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE
    max_frame_size: int | None = DEFAULT_MAX_FRAME_SIZE
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float | None = 10.0
    max_queue: int = 16
    max_handshakes: int | None = DEFAULT_MAX_HANDSHAKES
    max_connections: int | None = None
    retry_after: int = 10
    max_send_buffer: int | None = DEFAULT_MAX_SEND_BUFFER
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Settings:
        """The ``Settings`` for a driver call's keyword options, naming an unknown one."""
        try:
            return cls(**options)
        except TypeError as exc:
            raise TypeError(f"Unknown option: {exc}") from None


@dataclasses.dataclass(frozen=True)
class ClientOptions:
    """What a client's ``connect`` was asked for, parsed once.

    Every driver's ``connect``, ``reconnect`` and ``unix_connect`` take these
    keywords (:meth:`parse` tells them from :class:`Settings` options) and
    open connections from one of these.
    """

    url: WebSocketURL
    settings: Settings
    subprotocols: Sequence[str] = ()
    extra_headers: Sequence[tuple[bytes, bytes]] = ()
    ssl: ssl_module.SSLContext | None = None
    open_timeout: float | None = 10.0
    unix_path: str | None = None
    proxy: str | bool | None = True

    @classmethod
    def parse(cls, url: str, **kwargs: Any) -> ClientOptions:
        """The options of ``connect(url, **kwargs)``: its own keywords, and the rest as :class:`Settings`.

        Raises ``TypeError`` for an unknown keyword and :class:`InvalidURL` for a bad URL.
        """
        own = {name: kwargs.pop(name) for name in _CLIENT_KEYWORDS if name in kwargs}
        settings = Settings.from_options(kwargs)
        return cls(parse_url(url), settings, **own)

    def opening(self) -> ClientOpening:
        """A fresh :class:`ClientOpening` for these options (one per attempt)."""
        return ClientOpening.start(self.url, self.settings, self.subprotocols, self.extra_headers)

    def ssl_context(self) -> ssl_module.SSLContext | None:
        """The TLS context for a ``wss://`` URL (the one given, or the default), ``None`` for ``ws://``."""
        if not self.url.secure:
            return None
        if self.ssl is not None:
            return self.ssl
        import ssl as ssl_module  # noqa: PLC0415 (the sans-I/O import check walks this module)

        return ssl_module.create_default_context()

    def through(self) -> ProxyURL | None:
        """The proxy to connect through (never for a Unix domain socket), or ``None`` to connect directly."""
        if self.unix_path is not None:
            return None
        from .proxy import proxy_for  # noqa: PLC0415 (it loads asyncio and socket)

        return proxy_for(self.url, self.proxy)


#: ``connect``'s own keywords; any other is a :class:`Settings` option.
_CLIENT_KEYWORDS = tuple(field.name for field in dataclasses.fields(ClientOptions))[2:]


def request_for(
    url: WebSocketURL,
    settings: Settings,
    subprotocols: Sequence[str] = (),
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
) -> Request:
    """The client's upgrade ``Request`` for ``url``."""
    extensions: list[Extension] = []
    if settings.compression:
        # Offering client_no_context_takeover lets a server that wants to save
        # memory ask for it (RFC 7692 section 7.1.1.2). The windows are left to
        # the server (DEFLATE_WINDOW_BITS is what our server picks): an offer of
        # client_max_window_bits=12 makes servers that answer with a larger
        # value (Autobahn's fuzzingserver answers 15) fail the handshake.
        extensions.append(PerMessageDeflate(client_no_context_takeover=True))
    return Request(
        host=url.authority,
        target=url.target,
        extensions=extensions,
        extra_headers=list(extra_headers),
        subprotocols=list(subprotocols),
    )


def accept_for(request: Request, settings: Settings, subprotocols: Sequence[str] = ()) -> AcceptConnection:
    """The server's ``AcceptConnection``: our first supported subprotocol the client offered."""
    chosen = next((protocol for protocol in subprotocols if protocol in request.subprotocols), None)
    extensions: list[Extension] = (
        [PerMessageDeflate(server_max_window_bits=DEFLATE_WINDOW_BITS, client_max_window_bits=DEFLATE_WINDOW_BITS)]
        if settings.compression
        else []
    )
    return AcceptConnection(subprotocol=chosen, extensions=extensions)


@dataclasses.dataclass(frozen=True)
class HttpResponse:
    """A plain HTTP response a server sends instead of upgrading."""

    status_code: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""

    def rejection(self) -> RejectConnection:
        """The ``RejectConnection`` that starts this response."""
        headers = [*self.headers, (b"content-length", str(len(self.body)).encode("ascii"))]
        return RejectConnection(status_code=self.status_code, headers=headers, has_body=True)


#: ``process_request(target, headers)``: called with every HTTP request a
#: server receives, upgrade or not. Return an :class:`HttpResponse` to answer
#: it with plain HTTP (a page, a health check, a 403 for a bad Origin), or
#: ``None`` to go on with the WebSocket handshake.
ProcessRequest = Callable[[str, list[tuple[bytes, bytes]]], "HttpResponse | None"]


#: ``select_subprotocol(request)``: called for every valid upgrade request
#: (``request.subprotocols`` lists what the client offered, in its order);
#: return one of those, or ``None`` for no subprotocol. It replaces the
#: choice by the server's ``subprotocols`` list.
SelectSubprotocol = Callable[[Request], "str | None"]

#: ``process_response(request, accept)``: called with every valid upgrade
#: request and the 101 about to answer it (an ``AcceptConnection``: its
#: subprotocol, extensions and ``extra_headers``). Return ``None`` to send it,
#: another ``AcceptConnection`` to send that one instead (for instance
#: ``dataclasses.replace(accept, extra_headers=[(b"set-cookie", b"...")])``),
#: or an :class:`HttpResponse` to answer with plain HTTP instead of upgrading.
ProcessResponse = Callable[[Request, AcceptConnection], "AcceptConnection | HttpResponse | None"]


@dataclasses.dataclass(frozen=True)
class Upgrade:
    """How a server answers a valid upgrade request: its subprotocols and the two callbacks.

    One decision for every driver (:meth:`decide`). A callback that raises, or
    chooses a subprotocol the client did not offer, is a bug of the
    application: it is logged and the client gets a 500.
    """

    subprotocols: Sequence[str] = ()
    select_subprotocol: SelectSubprotocol | None = None
    process_response: ProcessResponse | None = None

    def decide(self, request: Request, settings: Settings) -> AcceptConnection | HttpResponse:
        """The 101 (an ``AcceptConnection``) or the plain HTTP answer for ``request``."""
        try:
            accept = accept_for(request, settings, self.subprotocols)
            if self.select_subprotocol is not None:
                accept = dataclasses.replace(accept, subprotocol=self.select_subprotocol(request))
            answer = accept if self.process_response is None else self.process_response(request, accept) or accept
            if isinstance(answer, AcceptConnection) and answer.subprotocol not in (None, *request.subprotocols):
                raise LocalProtocolError(
                    f"The server chose subprotocol {answer.subprotocol!r}, which the client did not offer "
                    f"(offered: {request.subprotocols}); choose one of those, or None"
                )
        except Exception:
            # logging loads threading, and this module is imported with the
            # package, which the sans-I/O import check walks: load it only here.
            import logging  # noqa: PLC0415

            logging.getLogger("wsproto_core.drivers").exception("WebSocket upgrade callback failed")
            return HttpResponse(500, [(b"content-type", b"text/plain; charset=utf-8")], b"Internal server error.\n")
        return answer


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """What a server's ``serve`` was asked for, gathered once.

    Every driver's ``serve`` and ``unix_serve`` (and the asyncio driver's
    ``serve_listener``) take these keywords, with these defaults, and hand one
    of these to the code that listens and accepts connections.
    """

    settings: Settings
    subprotocols: Sequence[str] = ()
    process_request: ProcessRequest | None = None
    ssl: ssl_module.SSLContext | None = None
    open_timeout: float | None = 10.0
    select_subprotocol: SelectSubprotocol | None = None
    process_response: ProcessResponse | None = None
    unix_path: str | None = None

    def upgrade(self) -> Upgrade:
        """How to answer a valid upgrade request: the subprotocols and the two callbacks."""
        return Upgrade(self.subprotocols, self.select_subprotocol, self.process_response)

    def opening(self) -> ServerOpening:
        """A fresh :class:`ServerOpening` for one accepted connection."""
        return ServerOpening(self.settings, self.process_request)


class ClientOpening:
    """The client's side of the opening handshake, without the I/O.

    :meth:`start` makes one for a URL. A driver sends :attr:`request`, feeds
    every read to :meth:`receive` until it returns the server's
    ``AcceptConnection``, then runs the connection :meth:`managed` returns.
    """

    def __init__(self, connection: WSConnection, settings: Settings | None = None, request: bytes = b"") -> None:
        self.connection = connection
        self.settings = settings or Settings()
        #: The upgrade request, to send first.
        self.request = request
        self._rejection: RejectConnection | None = None
        self._body = bytearray()

    @classmethod
    def start(
        cls,
        url: WebSocketURL,
        settings: Settings,
        subprotocols: Sequence[str] = (),
        extra_headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> ClientOpening:
        """The opening for ``url``: a client connection with the limits of ``settings``, and its request."""
        connection = WSConnection(
            ConnectionType.CLIENT,
            max_frame_size=settings.max_frame_size,
            max_message_size=settings.max_message_size,
            min_partial_size=DRIVER_PIECE_SIZE,
        )
        return cls(connection, settings, connection.send(request_for(url, settings, subprotocols, extra_headers)))

    def managed(self, now: float, *, hold_after_message: bool = False) -> ManagedConnection:
        """The connection to run once :meth:`receive` returned the acceptance (see :func:`managed_connection`)."""
        return managed_connection(
            self.connection, self.settings, client=True, now=now, hold_after_message=hold_after_message
        )

    def receive(self, data: bytes | bytearray) -> AcceptConnection | None:
        """Feed bytes read (``b""`` at end of stream); return the acceptance once it came.

        Raises :class:`HandshakeRejected` when the server answered with plain
        HTTP, ``ConnectionError`` when it closed without answering, and
        ``RemoteProtocolError`` for an invalid 101.
        """
        self.connection.receive_data(data or None)
        for event in self.connection.events():
            if isinstance(event, AcceptConnection):
                return event
            if isinstance(event, RejectConnection):
                self._rejection = event
            elif isinstance(event, RejectData):
                self._body += event.data
                if event.body_finished:
                    raise self._rejected()
        if not data:
            if self._rejection is not None:
                raise self._rejected()
            raise ConnectionError("The server closed the connection during the WebSocket handshake")
        return None

    def _rejected(self) -> HandshakeRejected:
        assert self._rejection is not None
        return HandshakeRejected(self._rejection.status_code, list(self._rejection.headers), bytes(self._body))


class ServerOpening:
    """The server's side of the opening handshake, without the I/O.

    A driver feeds every read to :meth:`receive` until it returns true, writes
    :attr:`response` if there is one, and goes on with :attr:`request` (the
    client's ``Request``) or, when it is ``None``, closes the connection: the
    request was answered with plain HTTP (``process_request``) or rejected.
    To go on, it writes what :meth:`upgrade` returns, then, if that is a 101,
    runs the connection :meth:`managed` returns.
    """

    def __init__(self, settings: Settings, process_request: ProcessRequest | None) -> None:
        self.settings = settings
        self.connection = WSConnection(
            ConnectionType.SERVER,
            max_frame_size=settings.max_frame_size,
            max_message_size=settings.max_message_size,
            min_partial_size=DRIVER_PIECE_SIZE,
        )
        self._process_request = process_request
        self.request: Request | None = None
        self.response = b""
        #: The request head received so far, until it is whole (then ``None``).
        self._head: bytearray | None = bytearray()

    def receive(self, data: bytes | bytearray) -> bool:
        """Feed bytes read; return whether the handshake is decided.

        Raises ``ConnectionError`` when the client closed the connection first.
        """
        if not data:
            raise ConnectionError("The client closed the connection during the handshake")
        head = self._head
        if head is not None:
            # The head goes to the HTTP parser only once it is whole (an empty
            # line ends it, RFC 9112 section 2.1; h11 also takes a bare LF) or
            # longer than any acceptable head, which the parser then refuses
            # (431). A client trickling its request a byte at a time
            # (slowloris) costs an append and a short search per read instead
            # of a parse of everything received so far.
            start = max(0, len(head) - 3)
            head += data
            if (
                head.find(b"\n\r\n", start) < 0
                and head.find(b"\n\n", start) < 0
                and len(head) <= DEFAULT_MAX_HANDSHAKE_SIZE
            ):
                return False
            data, self._head = bytes(head), None
        try:
            self.connection.receive_data(data)
        except RemoteProtocolError as failure:
            answer = self._answer()
            self.response = self._respond(answer) if answer is not None else self.connection.send(failure.event_hint)
            return True
        for event in self.connection.events():
            if isinstance(event, Request):
                answer = self._answer()
                if answer is not None:
                    self.response = self._respond(answer)
                else:
                    self.request = event
                return True
        return False

    def upgrade(self, upgrade: Upgrade, settings: Settings) -> tuple[bytes, AcceptConnection | None]:
        """Once :attr:`request` is set: the bytes answering it, and the ``AcceptConnection`` if they are a 101.

        ``None`` instead of an acceptance means the answer is plain HTTP (from
        ``process_response``, or a 500): write it, then close the connection.
        """
        assert self.request is not None
        answer = upgrade.decide(self.request, settings)
        if isinstance(answer, HttpResponse):
            return self._respond(answer), None
        return self.connection.send(answer), answer

    def managed(self, now: float, *, hold_after_message: bool = False) -> ManagedConnection:
        """The connection to run once accepted (see :func:`managed_connection`)."""
        return managed_connection(
            self.connection, self.settings, client=False, now=now, hold_after_message=hold_after_message
        )

    def _answer(self) -> HttpResponse | None:
        head = self.connection.handshake.request_head
        if self._process_request is None or head is None:
            return None
        target, headers = head
        return self._process_request(target.decode("latin-1"), headers)

    def _respond(self, answer: HttpResponse) -> bytes:
        return self.connection.send(answer.rejection()) + self.connection.send(RejectData(answer.body))


def remove_stale_unix_socket(path: str) -> None:
    """Remove a socket file left at ``path`` by a server that is gone, as asyncio does before it binds.

    Anything else at ``path`` (a regular file) is left alone: binding then fails.
    """
    import os  # noqa: PLC0415 (only Unix servers need it)
    import stat  # noqa: PLC0415

    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.remove(path)
    except FileNotFoundError:
        pass


class Fragments:
    """One message sent from pieces, without assembling it: the event for each piece, then the end.

    Every driver's ``send_fragments`` runs it, the same way::

        message = Fragments(fragments)
        message.begin(websocket)  # send() raises until release()
        try:
            for piece in fragments:  # or async for (see async_pieces)
                send(message.piece(piece))
            if (end := message.end()) is not None:
                send(end)
        finally:
            if message.release(websocket) and not websocket.closed:
                websocket.close(1011, UNFINISHED_MESSAGE)

    Pieces are all ``str`` for a text message, all bytes-like for a binary
    one. A message that started and did not end leaves the peer holding the
    start of a message: :meth:`release` says so, and the driver closes the
    connection (1011).
    """

    __slots__ = ("ended", "text")

    def __init__(self, fragments: object) -> None:
        if isinstance(fragments, str | bytes | bytearray | memoryview):
            raise TypeError("send_fragments() takes an iterable of pieces; send a whole message with send()")
        #: Whether the message is text (``None`` until the first piece).
        self.text: bool | None = None
        #: Whether the event ending the message was handed out.
        self.ended = False

    @property
    def started(self) -> bool:
        """Whether a piece went out."""
        return self.text is not None

    def begin(self, websocket: Any) -> None:
        """Mark ``websocket`` (its ``_fragmenting`` flag) as sending this message.

        Raises ``LocalProtocolError`` if it already sends one: a message cannot
        go between another's fragments.
        """
        if websocket._fragmenting:
            raise LocalProtocolError(FRAGMENTS_IN_PROGRESS)
        websocket._fragmenting = True

    def release(self, websocket: Any) -> bool:
        """Let ``websocket`` send other messages again; return whether this one was left unfinished.

        Unfinished (the peer holds its start): the driver closes the
        connection with 1011 and :data:`UNFINISHED_MESSAGE`, unless it is closed already.
        """
        websocket._fragmenting = False
        return self.started and not self.ended

    def piece(self, piece: str | bytes | bytearray | memoryview) -> TextMessage | BytesMessage:
        """The event that sends ``piece`` as a frame of the message (not its last)."""
        is_text = isinstance(piece, str)
        if self.text is None:
            self.text = is_text
        elif self.text is not is_text:
            raise TypeError("send_fragments() got both str and bytes pieces; a message is text or binary")
        if is_text:
            return TextMessage(piece, message_finished=False)  # type: ignore[arg-type]
        return BytesMessage(piece if piece.__class__ is bytes else bytes(piece), message_finished=False)  # type: ignore[arg-type]

    def end(self) -> TextMessage | BytesMessage | None:
        """The event that ends the message (an empty final frame), or ``None`` when no piece came."""
        if self.text is None:
            return None
        self.ended = True
        return TextMessage("") if self.text else BytesMessage(b"")


async def async_pieces(
    fragments: Iterable[str | bytes] | AsyncIterable[str | bytes],
) -> AsyncGenerator[str | bytes, None]:
    """The pieces of an iterable or an async iterable, one way (for the asyncio and trio ``send_fragments``)."""
    if isinstance(fragments, AsyncIterable):
        async for piece in fragments:
            yield piece
    else:
        for piece in fragments:
            yield piece


#: Why a connection is closed (1011) when ``send_fragments`` could not finish its message.
UNFINISHED_MESSAGE = "message left unfinished"

#: What ``send`` raises while ``send_fragments`` is sending.
FRAGMENTS_IN_PROGRESS = (
    "send_fragments() is sending a message on this connection: wait until it returns before sending another"
)


def admission_refusal(settings: Settings, *, handshaking: int, connections: int) -> bytes | None:
    """What a server answers a connection it just accepted, or ``None`` to admit it.

    ``handshaking`` counts the connections already in the opening handshake,
    ``connections`` every connection already accepted and not yet closed
    (handshaking or open). Beyond :attr:`Settings.max_handshakes` or
    :attr:`Settings.max_connections` the answer is an HTTP 503 with
    ``Retry-After`` (RFC 9110 sections 15.6.4 and 10.2.3): the client learns
    the server is busy, instead of being accepted and dropped. The driver
    writes it, closes its side for writing, and drops the connection once
    the client closed or after a short grace.
    """
    over_handshakes = settings.max_handshakes is not None and handshaking >= settings.max_handshakes
    over_connections = settings.max_connections is not None and connections >= settings.max_connections
    if not (over_handshakes or over_connections):
        return None
    body = b"The server is busy; retry later.\n"
    return (
        b"HTTP/1.1 503 Service Unavailable\r\n"
        b"Retry-After: %d\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\n"
        b"Connection: close\r\n\r\n%s"
    ) % (settings.retry_after, len(body), body)


#: Seconds a refused connection may stay open after its 503, for the client
#: to read the answer before closing (closing with its request unread would
#: make the kernel send an RST, which may destroy the answer on its way).
REFUSAL_GRACE = 2.0


def handler_close(error: BaseException | None, log: logging.Logger) -> tuple[int, str]:
    """The code and reason of the Close a server sends once its handler ended, raising ``error`` or returning.

    A handler that returns, or that lets the connection's own
    :class:`ConnectionClosed` escape, closes normally: 1000 (RFC 6455 section
    7.4.1). Any other exception is logged on ``log`` and closes with 1011,
    "an unexpected condition that prevented it from fulfilling the request"
    (section 7.4.1); its text stays in the log, not on the wire.
    """
    if error is None or isinstance(error, ConnectionClosed):
        return 1000, ""
    log.error("WebSocket handler failed", exc_info=error)
    return 1011, "internal error"


def send_buffer_full(settings: Settings, buffered: int) -> bool:
    """Whether a connection whose outgoing buffer holds ``buffered`` bytes must refuse more (``max_send_buffer``)."""
    return settings.max_send_buffer is not None and buffered >= settings.max_send_buffer


def managed_connection(
    connection: WSConnection, settings: Settings, *, client: bool, now: float, hold_after_message: bool = False
) -> ManagedConnection:
    """The :class:`ManagedConnection` that a driver runs, configured from ``settings``.

    Once the handshake is over it wraps the WSConnection's framing
    ``Connection`` directly, so that the handshake's objects are freed.
    ``hold_after_message``: the driver keeps the ordering rule through
    :attr:`ManagedConnection.held` (an application that takes messages from a
    queue; not one whose callbacks answer inside the parse).
    """
    managed = ManagedConnection(
        connection.connection if connection.connection is not None else connection,
        client=client,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        close_timeout=settings.close_timeout,
        now=now,
        hold_after_message=hold_after_message,
    )
    # Imported here: logging loads threading, and importing this package must not.
    from .tracing import trace  # noqa: PLC0415

    trace(managed, settings.logger, client=client)
    return managed
