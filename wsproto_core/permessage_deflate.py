"""permessage-deflate (RFC 7692): its negotiation, and the compression and bounded inflation of messages.

:class:`PerMessageDeflate` is the extension object that wsproto applications
already pass around: a client puts it in ``Request(extensions=[...])``, a server
in ``AcceptConnection(extensions=[...])`` (uvicorn) or hands it to
``server_extensions_handshake`` (hypercorn). It negotiates the four parameters
of RFC 7692 section 7.1 in either role, then compresses the data messages the
application sends and inflates the compressed ones it receives.

Configured and negotiated parameters are kept apart
    The constructor arguments are stored as given and never change.
    ``accept()`` (server) and ``finalize()`` (client) record what was agreed
    in :attr:`PerMessageDeflate.negotiated`, a :class:`DeflateParameters`, and
    start the per-connection state afresh: negotiating twice with one object
    (one connection after another) gives the same answer both times. wsproto
    overwrote its configuration during negotiation, so an object reused for a
    second connection started from the first connection's outcome. One object
    still serves one connection at a time, because the ``Connection`` holds
    the very object the handshake negotiated, compression state included.

Limits on received messages
    Inflation is bounded by the connection's ``max_message_size`` while it
    happens: zlib is asked for at most 64 KiB at a time and never for more
    than one byte past what is left of the budget, so a small frame that
    would inflate to gigabytes fails the connection with 1009 having produced
    at most the limit plus 64 KiB (a 64 KiB frame inflating to 64 MiB, with a
    1 MiB limit, peaks at 1.3 MiB). Checking the size after inflating, as the
    connection does for uncompressed data, would let such a frame allocate
    everything first.

Choosing what to compress
    ``compression_threshold`` (bytes, default 0) leaves messages sent whole
    and smaller than it uncompressed; :meth:`PerMessageDeflate.send_next_uncompressed`
    does the same for the next message regardless of size (for data that is
    already compressed: images, archives). A message sent in fragments is
    compressed unless opted out, since its size is unknown when it starts.
    RFC 7692 section 6 lets every message choose: RSV1 on its first frame says
    it is compressed.

Memory and compression ratio
    Compressor state is about ``2**(window_bits + 2) + 2**(mem_level + 9)``
    bytes (zlib's own estimate; measured with tracemalloc on zlib 1.2.13):
    window 15 / mem_level 8 takes 262 KiB, 15/5 150 KiB, 12/5 38 KiB, 9/1
    10 KiB. A decompressor takes ``2**window_bits`` plus about 7 KiB: 39 KiB
    at 15, 11 KiB at 12, 8 KiB at 9. On a stream of small JSON messages
    (87 bytes on average) compressed with context takeover, the output was
    20% of the input at window 15, 21% at 12, 24% at 10 and 30% at 9,
    whatever the mem_level; without context takeover it was 82% at any
    setting (small messages only compress well against earlier ones). On a
    27 KB source file, window 15 gave 24%, 12 gave 27%, 9 gave 41%, and
    mem_level 1 cost 3 to 12 points more. The default mem_level is 5: the
    same ratio as zlib's default of 8 on these inputs, 110 KiB less per
    compressor, and creating one costs about 1 us instead of 60 (which
    matters when the context is reset for every message). Servers with many
    connections save most with ``server_max_window_bits`` and
    ``client_max_window_bits`` around 12, or with ``*_no_context_takeover``,
    which lets each zlib object be dropped between messages. zlib objects are
    created on the first message that needs them and released when a Close
    frame is received, when this extension fails the connection (1002, 1007,
    1009), or on :meth:`PerMessageDeflate.release`.

Window bits of 8
    zlib cannot compress with a 256-byte window (``deflateInit2`` rejects
    raw deflate with 8 bits since zlib 1.2.9, and silently used 9 before),
    and compressing with 9 would produce back-references the peer's
    256-byte window cannot resolve. So we never agree to compress with 8: a
    server declines an offer demanding ``server_max_window_bits=8``, we
    choose 9 wherever the value is ours to pick, and a client whose server
    answers ``client_max_window_bits=8`` sends every message uncompressed.
    Inflation always uses at least 9 bits: a larger window decodes anything
    a smaller one does, and zlib peers older than 1.2.9 that agreed to 8
    really compressed with 9.
"""

from __future__ import annotations

import re
import zlib
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from .errors import RemoteProtocolError
from .events import RejectConnection
from .extension_interface import Extension
from .frames import RSV_BITS_BY_VALUE, CloseReason, Opcode, RsvBits

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["DeflateParameters", "PerMessageDeflate"]

#: RFC 7692 section 7.2.1: a sync flush ends with an empty stored block, whose
#: last four octets the sender removes; section 7.2.2: the receiver appends
#: them back before inflating.
_TAIL = b"\x00\x00\xff\xff"
_Z_SYNC_FLUSH = zlib.Z_SYNC_FLUSH
_NO_RSV = RSV_BITS_BY_VALUE[0]
_RSV1 = RSV_BITS_BY_VALUE[4]

_EXTENSION_NAME = "permessage-deflate"
_SERVER_NO_CONTEXT_TAKEOVER = "server_no_context_takeover"
_CLIENT_NO_CONTEXT_TAKEOVER = "client_no_context_takeover"
_SERVER_MAX_WINDOW_BITS = "server_max_window_bits"
_CLIENT_MAX_WINDOW_BITS = "client_max_window_bits"
#: Sections 7.1.2.1 and 7.1.2.2: "a decimal integer value without leading
#: zeroes between 8 to 15, inclusive".
_WINDOW_BITS = {str(bits): bits for bits in range(8, 16)}
#: The smallest window zlib compresses with (see "Window bits of 8" above).
_MIN_COMPRESS_BITS = 9
_MAX_BITS = 15
_ESCAPE = re.compile(r"\\(.)")
#: A message size no message reaches: "compress nothing".
_NEVER = 1 << 62
#: How much a single zlib call may inflate when a message size limit applies.
_INFLATE_STEP = 64 * 1024


class DeflateParameters(NamedTuple):
    """The parameters a connection uses once negotiation is over.

    Window bits are 15 where the negotiation set no limit. The values are the
    effective ones, which can be stricter than the response header alone: a
    client that offered ``client_no_context_takeover`` keeps that promise even
    if the server's response leaves it out.
    """

    server_no_context_takeover: bool
    client_no_context_takeover: bool
    server_max_window_bits: int
    client_max_window_bits: int

    def response(self) -> str:
        """A ``Sec-WebSocket-Extensions`` element stating every parameter explicitly.

        Handing it to a fresh ``PerMessageDeflate``'s ``accept`` (server) or
        ``finalize`` (client) sets up a peer that agreed on exactly these
        parameters, which is how test harnesses pair a connection with one.
        """
        elements = [_EXTENSION_NAME]
        if self.server_no_context_takeover:
            elements.append(_SERVER_NO_CONTEXT_TAKEOVER)
        if self.client_no_context_takeover:
            elements.append(_CLIENT_NO_CONTEXT_TAKEOVER)
        elements.append(f"{_SERVER_MAX_WINDOW_BITS}={self.server_max_window_bits}")
        elements.append(f"{_CLIENT_MAX_WINDOW_BITS}={self.client_max_window_bits}")
        return "; ".join(elements)


class _Parameters(NamedTuple):
    """The parameters of one received offer or response, as written."""

    server_no_context_takeover: bool
    client_no_context_takeover: bool
    server_max_window_bits: int | None
    client_max_window_bits: int | None
    #: Whether client_max_window_bits was present, with or without a value.
    client_max_window_bits_present: bool


class _NegotiationError(ValueError):
    """An offer to decline, or a response to fail the handshake on."""


def _unquote(value: str) -> str | None:
    """Undo RFC 7230 quoted-string syntax, which RFC 7692 section 7 allows for values."""
    if not value.startswith('"'):
        return value
    if len(value) < 2 or not value.endswith('"'):
        return None
    return _ESCAPE.sub(r"\1", value[1:-1])


def _parse(element: str, *, response: bool) -> _Parameters:
    """Parse one ``permessage-deflate; name[=value]; ...`` element.

    Raises :class:`_NegotiationError` for what section 7 says to decline (an
    offer) or to fail on (a response): an unknown parameter, a duplicate, or
    an invalid value. ``client_max_window_bits`` may lack a value in an offer
    only.
    """
    name, *parts = element.split(";")
    if name.strip() != PerMessageDeflate.name:
        raise _NegotiationError(f"{element!r} is not a {PerMessageDeflate.name} element")
    seen: set[str] = set()
    server_no_context_takeover = client_no_context_takeover = client_bits_present = False
    server_bits: int | None = None
    client_bits: int | None = None
    for part in parts:
        key, equals, raw = part.partition("=")
        key = key.strip()
        if not key:
            raise _NegotiationError(f"empty parameter in {element!r}")
        if key in seen:
            raise _NegotiationError(f"duplicate parameter {key}")
        seen.add(key)
        if key in (_SERVER_NO_CONTEXT_TAKEOVER, _CLIENT_NO_CONTEXT_TAKEOVER):
            # Section 7.1.1: these parameters have no value.
            if equals:
                raise _NegotiationError(f"{key} takes no value, got {raw.strip()!r}")
            if key == _SERVER_NO_CONTEXT_TAKEOVER:
                server_no_context_takeover = True
            else:
                client_no_context_takeover = True
        elif key in (_SERVER_MAX_WINDOW_BITS, _CLIENT_MAX_WINDOW_BITS):
            bits = None
            if equals:
                value = _unquote(raw.strip())
                bits = _WINDOW_BITS.get(value) if value is not None else None
                if bits is None:
                    raise _NegotiationError(f"{key} must be an integer from 8 to 15, got {raw.strip()!r}")
            elif key == _SERVER_MAX_WINDOW_BITS or response:
                # Section 7.1.2.1: server_max_window_bits always has a value;
                # section 7.1.2.2: client_max_window_bits may omit it in an
                # offer, never in a response.
                raise _NegotiationError(f"{key} needs a value here")
            if key == _SERVER_MAX_WINDOW_BITS:
                server_bits = bits
            else:
                client_bits = bits
                client_bits_present = True
        else:
            raise _NegotiationError(f"unknown parameter {key!r}")
    return _Parameters(
        server_no_context_takeover, client_no_context_takeover, server_bits, client_bits, client_bits_present
    )


def _check_window_bits(name: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 8 <= value <= _MAX_BITS):
        raise ValueError(f"{name} must be None or an integer from 8 to 15, not {value!r}")
    return value


class PerMessageDeflate(Extension):
    """The permessage-deflate extension (RFC 7692).

    The four parameters are those of RFC 7692 section 7.1 and mean the same
    in both roles; the object learns its role from the handshake (``accept``
    is the server's, ``offer``/``finalize`` the client's).

    :param client_no_context_takeover: the client resets its compression
        context after each message. A client offers it (and keeps to it); a
        server requires it.
    :param client_max_window_bits: the largest LZ77 window (8 to 15 bits) the
        client compresses with. A client announces it as a limit on itself
        (9 if given 8); a server asks the client for it when the client's offer
        allows. ``None``: no limit of ours.
    :param server_no_context_takeover: the server resets its compression
        context after each message. A client asks for it; a server announces it.
    :param server_max_window_bits: the largest window the server compresses
        with. A client asks for it; a server announces it (9 if given 8).
    :param compression_threshold: messages sent whole (one frame) and smaller
        than this many bytes are sent uncompressed; default 0 (compress all).
        Keyword-only.
    :param mem_level: zlib's ``memLevel`` (1 to 9) for compression: memory of
        the compressor against a small gain in ratio; default 5 (see the
        module documentation). Keyword-only.
    :param compress_level: zlib's compression level, -1 (zlib's default, 6) or
        0 to 9; default -1. Keyword-only.

    Attributes:
        ``negotiated``: the :class:`DeflateParameters` the last ``accept()`` or
        ``finalize()`` agreed, or ``None`` (not negotiated, or declined).
        ``decline_reason``: why the last ``accept()`` declined its offer, or
        ``None``; for logs.
    """

    name = _EXTENSION_NAME

    #: How a fragment that does not end its message is flushed: synced, so
    #: the peer can inflate it on arrival. ``compat.install()`` sets
    #: ``zlib.Z_NO_FLUSH`` (a no-op flush), which holds the data back until the
    #: message's last frame, as wsproto does. Either way the frames form one
    #: valid RFC 7692 stream; only where the bytes fall between frames differs.
    _fragment_flush: ClassVar[int] = _Z_SYNC_FLUSH

    #: The window a side compresses with when nothing limits it (RFC 7692
    #: section 7.1.2: 15 bits, zlib's largest); wsproto's class attributes.
    DEFAULT_CLIENT_MAX_WINDOW_BITS = 15
    DEFAULT_SERVER_MAX_WINDOW_BITS = 15

    __slots__ = (
        "_compression_threshold",
        "_compressor",
        "_decompressor",
        "_in_compressed",
        "_in_limit",
        "_in_size",
        "_min_compressed",
        "_out_compressed",
        "_recv_reset",
        "_recv_wbits",
        "_send_reset",
        "_send_wbits",
        "_skip_next",
        "client_max_window_bits",
        "client_no_context_takeover",
        "compress_level",
        "decline_reason",
        "mem_level",
        "negotiated",
        "server_max_window_bits",
        "server_no_context_takeover",
    )

    def __init__(
        self,
        client_no_context_takeover: bool = False,
        client_max_window_bits: int | None = None,
        server_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        *,
        compression_threshold: int = 0,
        mem_level: int = 5,
        compress_level: int = -1,
    ) -> None:
        self.client_no_context_takeover = bool(client_no_context_takeover)
        self.client_max_window_bits = _check_window_bits("client_max_window_bits", client_max_window_bits)
        self.server_no_context_takeover = bool(server_no_context_takeover)
        self.server_max_window_bits = _check_window_bits("server_max_window_bits", server_max_window_bits)
        if not isinstance(compression_threshold, int) or compression_threshold < 0:
            raise ValueError(f"compression_threshold must be a non-negative int, not {compression_threshold!r}")
        if not isinstance(mem_level, int) or not 1 <= mem_level <= 9:
            raise ValueError(f"mem_level must be an integer from 1 to 9, not {mem_level!r}")
        if not isinstance(compress_level, int) or not -1 <= compress_level <= 9:
            raise ValueError(f"compress_level must be an integer from -1 to 9, not {compress_level!r}")
        self._compression_threshold = compression_threshold
        self.mem_level = mem_level
        self.compress_level = compress_level
        self.negotiated: DeflateParameters | None = None
        self.decline_reason: str | None = None
        self._start(None, client=False)

    def __repr__(self) -> str:
        configured = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in (
                _CLIENT_NO_CONTEXT_TAKEOVER,
                _CLIENT_MAX_WINDOW_BITS,
                _SERVER_NO_CONTEXT_TAKEOVER,
                _SERVER_MAX_WINDOW_BITS,
            )
        )
        return f"<PerMessageDeflate {configured}; negotiated={self.negotiated!r}>"

    # ---------------------------------------------------------------- state

    def _start(self, negotiated: DeflateParameters | None, *, client: bool) -> None:
        """Record a negotiation's outcome and start the per-connection state afresh."""
        self.negotiated = negotiated
        # The direction we compress is the client's when we are the client.
        # 0 as the send window means "compress nothing" (a window of 8 bits).
        self._send_wbits = self._recv_wbits = 0
        self._send_reset = self._recv_reset = False
        if negotiated is not None:
            if client:
                send_bits, self._send_reset = negotiated.client_max_window_bits, negotiated.client_no_context_takeover
                recv_bits, self._recv_reset = negotiated.server_max_window_bits, negotiated.server_no_context_takeover
            else:
                send_bits, self._send_reset = negotiated.server_max_window_bits, negotiated.server_no_context_takeover
                recv_bits, self._recv_reset = negotiated.client_max_window_bits, negotiated.client_no_context_takeover
            # Negative wbits select raw DEFLATE, with no zlib header (section 7.2).
            self._send_wbits = -send_bits if send_bits >= _MIN_COMPRESS_BITS else 0
            self._recv_wbits = -max(recv_bits, _MIN_COMPRESS_BITS)
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None
        self._in_compressed = False
        self._in_size = 0
        self._in_limit: int | None = None
        self._out_compressed = False
        self._skip_next = False
        self._update_min_compressed()

    def _update_min_compressed(self) -> None:
        # The send fast path decides with one comparison: the smallest whole
        # message it compresses, given the threshold, a pending
        # send_next_uncompressed() and whether we compress at all.
        if self._skip_next or not self._send_wbits:
            self._min_compressed = _NEVER
        else:
            self._min_compressed = self._compression_threshold

    @property
    def compression_threshold(self) -> int:
        """Messages sent whole and smaller than this many bytes go uncompressed."""
        return self._compression_threshold

    @compression_threshold.setter
    def compression_threshold(self, value: int) -> None:
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"compression_threshold must be a non-negative int, not {value!r}")
        self._compression_threshold = value
        self._update_min_compressed()

    def release(self) -> None:
        """Free the zlib objects; call it when the connection is over.

        The extension does this by itself when it sees the peer's Close frame
        or fails the connection; a driver whose transport dies calls it (or
        drops the connection). Afterwards the extension still works and
        creates zlib objects again when needed. That is always safe for what
        we send (a new compressor never refers to data the peer has not seen),
        but a received message that refers to earlier data (context takeover)
        can no longer be inflated and fails the connection with 1007.
        """
        self._compressor = None
        self._decompressor = None

    def send_next_uncompressed(self) -> None:
        """Send the next message uncompressed, whatever its size.

        For payloads that compression cannot shrink (images, archives, data
        already compressed by the application). It applies to the next
        message the connection starts; a fragmented message already under way
        keeps its compression. One call covers one message.
        """
        self._skip_next = True
        self._min_compressed = _NEVER

    # ------------------------------------------------------------ negotiation

    def enabled(self) -> bool:
        """Whether the last negotiation agreed to use permessage-deflate."""
        return self.negotiated is not None

    def offer(self) -> str:
        """Client side: the parameters to offer (RFC 7692 section 7.1).

        ``client_max_window_bits`` is always included, bare when not
        configured, to say the server may limit our window (section 7.1.2.2).
        """
        parameters = []
        if self.client_no_context_takeover:
            parameters.append(_CLIENT_NO_CONTEXT_TAKEOVER)
        if self.server_no_context_takeover:
            parameters.append(_SERVER_NO_CONTEXT_TAKEOVER)
        if self.server_max_window_bits is not None:
            parameters.append(f"{_SERVER_MAX_WINDOW_BITS}={self.server_max_window_bits}")
        parameters.append(self._offered_client_max_window_bits())
        return "; ".join(parameters)

    def _offered_client_max_window_bits(self) -> str:
        if self.client_max_window_bits is None:
            return _CLIENT_MAX_WINDOW_BITS
        return f"{_CLIENT_MAX_WINDOW_BITS}={max(self.client_max_window_bits, _MIN_COMPRESS_BITS)}"

    # The negotiation tables of RFC 7692 section 7.1. N and M are window bits
    # (8..15); "-" is "absent"; "bare" is client_max_window_bits without a
    # value. "Used" is what this side then does.
    #
    # Server, accept(): configuration x client's offer -> response.
    #
    #   server_no_context_takeover (7.1.1.1)
    #     Config  Offer    Response  Used by our compressor
    #     False   -        -         keep context
    #     False   present  present   reset per message (MUST answer it)
    #     True    any      present   reset per message (MAY add it unasked)
    #
    #   client_no_context_takeover (7.1.1.2)
    #     Config  Offer    Response  Used by our decompressor
    #     False   -        -         keep context
    #     False   present  present   reset: the client promised, and echoing
    #                                the hint lets us drop the decompressor
    #                                between messages
    #     True    any      present   reset
    #
    #   server_max_window_bits (7.1.2.1)
    #     Config  Offer    Response             Used by our compressor
    #     None    -        -                    15
    #     None    M        M                    M
    #     N       -        max(N, 9)            max(N, 9) (MAY add it unasked)
    #     N       M        max(min(N, M), 9)    the same (MUST be <= M)
    #     any     8        decline              zlib cannot compress with 8
    #
    #   client_max_window_bits (7.1.2.2)
    #     Config  Offer    Response             Used by our decompressor
    #     any     -        -                    15 (MUST NOT answer what was
    #                                           not offered; a configured
    #                                           limit cannot be enforced)
    #     None    bare     -                    15
    #     N       bare     N                    N
    #     None    M        M                    M (the client promised <= M)
    #     N       M        min(N, M)            min(N, M)
    #
    # Client, finalize(): our offer (from offer()) x server's response.
    #
    #   server_no_context_takeover
    #     Offer    Response  Result
    #     -        -         the server keeps context
    #     any      present   the server resets (our decompressor is dropped
    #                        between messages)
    #     present  -         fail: an accepted request MUST be echoed
    #
    #   client_no_context_takeover
    #     Offer    Response  Result
    #     -        -         keep context
    #     any      present   reset per message
    #     present  -         reset per message (we promised)
    #
    #   server_max_window_bits
    #     Offer    Response  Result (our decompressor)
    #     -        -         15
    #     -        M         M
    #     N        -         fail: an accepted limit MUST be echoed
    #     N        M <= N    M
    #     N        M > N     fail
    #
    #   client_max_window_bits (always offered: bare, or max(N, 9))
    #     Offer    Response  Result (our compressor)
    #     bare     -         15
    #     bare     M         M
    #     N        -         N
    #     N        M <= N    M
    #     N        M > N     fail
    #     any      bare      fail: a response MUST give a value
    #     any      8         accepted, but we send every message
    #                        uncompressed (zlib cannot compress with 8)
    #
    # Any unknown parameter, duplicate or invalid value: the server declines
    # the offer, the client fails the handshake (section 7).

    def accept(self, offer: str) -> str | None:
        """Server side: answer one offer, or decline it with ``None``.

        ``offer`` is one element of the client's ``Sec-WebSocket-Extensions``
        header, name included (``"permessage-deflate; client_max_window_bits"``).
        The return value is the response's parameters, without the name. A
        handshake calls this once per offer, in the client's order of
        preference, and keeps the first acceptance; each call starts from the
        configured parameters. ``decline_reason`` says why an offer was
        declined.
        """
        self._start(None, client=False)
        self.decline_reason = None
        try:
            negotiated, response = self._answer(_parse(offer, response=False))
        except _NegotiationError as exc:
            self.decline_reason = str(exc)
            return None
        self._start(negotiated, client=False)
        return response

    def _answer(self, offer: _Parameters) -> tuple[DeflateParameters, str]:
        response: list[str] = []
        server_no_context_takeover = self.server_no_context_takeover or offer.server_no_context_takeover
        if server_no_context_takeover:
            response.append(_SERVER_NO_CONTEXT_TAKEOVER)
        client_no_context_takeover = self.client_no_context_takeover or offer.client_no_context_takeover
        if client_no_context_takeover:
            response.append(_CLIENT_NO_CONTEXT_TAKEOVER)

        server_bits = _MAX_BITS
        if offer.server_max_window_bits == 8:
            raise _NegotiationError("the offer requires server_max_window_bits=8, and zlib cannot compress with 8")
        if offer.server_max_window_bits is not None or self.server_max_window_bits is not None:
            server_bits = min(offer.server_max_window_bits or _MAX_BITS, self.server_max_window_bits or _MAX_BITS)
            server_bits = max(server_bits, _MIN_COMPRESS_BITS)
            response.append(f"{_SERVER_MAX_WINDOW_BITS}={server_bits}")

        client_bits = _MAX_BITS
        if offer.client_max_window_bits_present:
            limits = [bits for bits in (offer.client_max_window_bits, self.client_max_window_bits) if bits is not None]
            if limits:
                client_bits = min(limits)
                response.append(f"{_CLIENT_MAX_WINDOW_BITS}={client_bits}")

        negotiated = DeflateParameters(server_no_context_takeover, client_no_context_takeover, server_bits, client_bits)
        return negotiated, "; ".join(response)

    def finalize(self, offer: str) -> None:
        """Client side: apply the server's response to our offer.

        ``offer`` is the ``permessage-deflate`` element of the server's
        ``Sec-WebSocket-Extensions`` header (the name says "offer" for
        wsproto's sake). Raises :class:`RemoteProtocolError` when the response
        is invalid or does not answer what :meth:`offer` asked (RFC 7692
        section 7: the client MUST fail the connection).
        """
        self._start(None, client=True)
        try:
            negotiated = self._apply(_parse(offer, response=True))
        except _NegotiationError as exc:
            raise RemoteProtocolError(
                f"Invalid permessage-deflate response {offer!r}: {exc}", event_hint=RejectConnection()
            ) from None
        self._start(negotiated, client=True)

    def _apply(self, response: _Parameters) -> DeflateParameters:
        if self.server_no_context_takeover and not response.server_no_context_takeover:
            raise _NegotiationError("server_no_context_takeover was requested and not accepted")
        client_no_context_takeover = self.client_no_context_takeover or response.client_no_context_takeover

        requested = self.server_max_window_bits
        server_bits = response.server_max_window_bits
        if requested is not None and server_bits is None:
            raise _NegotiationError(f"server_max_window_bits={requested} was requested and not accepted")
        if requested is not None and server_bits is not None and server_bits > requested:
            raise _NegotiationError(f"server_max_window_bits={server_bits} exceeds the {requested} requested")

        offered = self.client_max_window_bits
        if offered is not None:
            offered = max(offered, _MIN_COMPRESS_BITS)
        client_bits = response.client_max_window_bits
        if offered is not None and client_bits is not None and client_bits > offered:
            raise _NegotiationError(f"client_max_window_bits={client_bits} exceeds the {offered} offered")
        if client_bits is None:
            client_bits = offered

        return DeflateParameters(
            response.server_no_context_takeover,
            client_no_context_takeover,
            _MAX_BITS if server_bits is None else server_bits,
            _MAX_BITS if client_bits is None else client_bits,
        )

    # ---------------------------------------------------------- frame hooks

    def _fail(self, reason: CloseReason) -> CloseReason:
        # The connection fails on any close code we return and parses nothing
        # more, so the zlib state is of no further use.
        self.release()
        return reason

    def frame_inbound_header(
        self, proto: Connection, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        """Note whether the message starting here is compressed (RSV1, RFC 7692 section 6)."""
        if self.negotiated is None:
            return _NO_RSV
        if opcode & 0x08:
            # Section 6: "An endpoint MUST NOT set the 'Per-Message
            # Compressed' bit of control frames and non-first fragments of a
            # data message. An endpoint receiving such a frame MUST _Fail the
            # WebSocket Connection_."
            if rsv.rsv1:
                return self._fail(CloseReason.PROTOCOL_ERROR)
            if opcode == Opcode.CLOSE:
                # RFC 6455 section 5.5.1: nothing is parsed after a Close and
                # only a Close may still be sent, so no zlib object is needed.
                self.release()
            return _NO_RSV
        if opcode == Opcode.CONTINUATION:
            # Section 6 again: RSV1 belongs on the first frame of a message only.
            if rsv.rsv1:
                return self._fail(CloseReason.PROTOCOL_ERROR)
            return _NO_RSV
        self._in_compressed = rsv.rsv1
        if rsv.rsv1:
            self._in_size = 0
            self._in_limit = proto.max_message_size
            if self._decompressor is None:
                self._decompressor = zlib.decompressobj(self._recv_wbits)
        return _RSV1

    def frame_inbound_payload_data(self, proto: Connection, data: bytes) -> bytes | CloseReason:
        """Inflate received payload of a compressed message, within ``max_message_size``."""
        if not self._in_compressed:
            return data
        return self._inflate(data)

    def frame_inbound_complete(self, proto: Connection, fin: bool) -> bytes | CloseReason | None:
        """At the end of a compressed message, inflate the tail section 7.2.2 appends."""
        if not fin or not self._in_compressed:
            return None
        self._in_compressed = False
        result = self._inflate(_TAIL)
        if self._recv_reset:
            # The peer starts each message with an empty window, so ours can go.
            self._decompressor = None
        return result

    def frame_inbound_payload(
        self, proto: Connection, data: bytes, frame_finished: bool, fin: bool
    ) -> bytes | CloseReason:
        """Inflate received payload; at the message's end, with its tail, in one zlib call.

        Hot path: this replaces the two wsproto hooks above, which need two
        calls into zlib per message.
        """
        if not self._in_compressed:
            return data
        if not (frame_finished and fin):
            return self._inflate(data)
        self._in_compressed = False
        result = self._inflate(data + _TAIL)
        if self._recv_reset:
            self._decompressor = None
        return result

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        decompressor = self._decompressor
        if decompressor is None:  # release() was called during the message
            decompressor = self._decompressor = zlib.decompressobj(self._recv_wbits)
        limit = self._in_limit
        pieces: list[bytes] = []
        produced = self._in_size
        try:
            while True:
                if limit is None:
                    wanted = 0
                    piece = decompressor.decompress(data)
                else:
                    # Inflate a step at a time, never more than one byte past
                    # the budget: a bomb is caught having produced at most the
                    # limit plus one step, and nothing is joined (which would
                    # briefly need twice the memory).
                    wanted = min(limit - produced + 1, _INFLATE_STEP)
                    piece = decompressor.decompress(data, wanted)
                produced += len(piece)
                if limit is not None and produced > limit:
                    return self._fail(CloseReason.MESSAGE_TOO_BIG)
                if decompressor.eof:
                    # A block with BFINAL set ended the DEFLATE stream (section
                    # 7.2.3.4 allows it); zlib stops there, so what follows goes
                    # to a new decompressor. (Its window starts empty: a peer
                    # that refers across such a boundary is not supported.)
                    data = decompressor.unused_data
                    decompressor = self._decompressor = zlib.decompressobj(self._recv_wbits)
                    if data:
                        pieces.append(piece)
                        continue
                elif wanted and len(piece) == wanted:
                    # The step was filled: more input or pending output may remain.
                    data = decompressor.unconsumed_tail
                    pieces.append(piece)
                    continue
                break
        except zlib.error:
            return self._fail(CloseReason.INVALID_FRAME_PAYLOAD_DATA)
        self._in_size = produced
        if pieces:
            pieces.append(piece)
            return b"".join(pieces)
        return piece

    # ---------------------------------------------------- whole-message paths
    #
    # Connection calls these two instead of the frame hooks when this is its
    # only extension and a message fits in one frame: one call each way instead
    # of four layers of hooks per message (hot path). They apply exactly the
    # rules of the hooks above and below; tests compare the two paths.

    #: RFC 7692 section 6: RSV1 on a message's first frame marks it compressed.
    message_rsv_bits = 0x40

    def encode_message(self, proto: Connection | None, opcode: Opcode, data: bytes) -> tuple[int, bytes]:
        """A whole message sent in one frame: RSV1 and its compressed form, or 0 and the message.

        It goes uncompressed when smaller than ``compression_threshold``, after
        ``send_next_uncompressed()``, or when the negotiated window (8 bits)
        leaves nothing to compress with.
        """
        compressed = self._compress_whole(data)
        return (0, data) if compressed is None else (0x40, compressed)

    def decode_message(
        self, proto: Connection | None, opcode: Opcode, rsv: int, payload: bytes, max_size: int | None
    ) -> bytes | CloseReason:
        """Inflate one compressed message received in one frame, within ``max_size`` bytes."""
        if rsv != 0x40 or self.negotiated is None:
            # As frame_inbound_header: RSV1 means nothing without a negotiation.
            return CloseReason.PROTOCOL_ERROR
        if self._decompressor is None:
            self._decompressor = zlib.decompressobj(self._recv_wbits)
        self._in_size = 0
        self._in_limit = max_size
        result = self._inflate(payload + _TAIL)
        if self._recv_reset:
            self._decompressor = None
        return result

    def _compress_whole(self, data: bytes) -> bytes | None:
        """Compress one message sent in one frame; ``None`` when it goes uncompressed.

        The result lacks the flush's ``00 00 ff ff`` (section 7.2.1) and is to
        be sent with RSV1 set.
        """
        if len(data) < self._min_compressed:
            if self._skip_next:
                self._skip_next = False
                self._update_min_compressed()
            return None
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = zlib.compressobj(
                self.compress_level, zlib.DEFLATED, self._send_wbits, self.mem_level
            )
        payload = compressor.compress(data) + compressor.flush(_Z_SYNC_FLUSH)
        if self._send_reset:
            self._compressor = None
        # A sync flush always ends with an empty stored block, whose last four
        # octets are 00 00 ff ff: no need to look before cutting them off.
        return payload[:-4]

    def _shared_compression_key(self, size: int) -> tuple[int, int, int] | None:
        """What a whole message of ``size`` bytes compresses to depends on, when only that.

        With no context takeover on our side every message starts from a
        fresh compressor, so its compressed form is the same for every
        connection with the same window, level and memory level: prepared
        messages (:mod:`wsproto_core.prepared`) compress once per key.
        ``None`` when the message goes uncompressed (threshold, a pending
        ``send_next_uncompressed()``, a window of 8) or when our context
        carries over from earlier messages.
        """
        if not self._send_reset or size < self._min_compressed:
            return None
        return (self._send_wbits, self.compress_level, self.mem_level)

    @property
    def _keeps_send_context(self) -> bool:
        # Whether what we compress depends on the messages sent before.
        return not self._send_reset and self._send_wbits != 0

    def frame_outbound(
        self, proto: Connection, opcode: Opcode, rsv: RsvBits, data: bytes, fin: bool
    ) -> tuple[RsvBits, bytes]:
        """Compress an outgoing data frame (RFC 7692 section 7.2.1).

        Each frame's data is compressed and sync-flushed, so a fragment carries
        everything sent so far; the flush's trailing ``00 00 ff ff`` is removed
        from the last frame of the message only (the receiver appends it once,
        after the whole message). RSV1 goes on the first frame only. (Under
        ``compat.install()`` only the last frame is flushed, as wsproto does:
        see ``_fragment_flush``.)
        """
        if opcode & 0x08:
            return rsv, data
        first = opcode != Opcode.CONTINUATION
        if first:
            skip = self._skip_next
            if skip:
                self._skip_next = False
                self._update_min_compressed()
            self._out_compressed = (
                self._send_wbits != 0 and not skip and not (fin and len(data) < self._compression_threshold)
            )
        if not self._out_compressed:
            return rsv, data
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = zlib.compressobj(
                self.compress_level, zlib.DEFLATED, self._send_wbits, self.mem_level
            )
        payload = compressor.compress(data) + compressor.flush(_Z_SYNC_FLUSH if fin else self._fragment_flush)
        if fin:
            self._out_compressed = False
            if payload.endswith(_TAIL):
                payload = payload[:-4]
            if self._send_reset:
                # Our next message starts from an empty window: drop the state.
                # (A message that compression did not shrink is still sent
                # compressed: some peers, the Autobahn testsuite's among them,
                # mishandle an uncompressed message on a deflate connection.
                # compression_threshold is the way to skip small messages.)
                self._compressor = None
        if first:
            rsv = _RSV1 if rsv is _NO_RSV else RsvBits(True, rsv.rsv2, rsv.rsv3)
        return rsv, payload
