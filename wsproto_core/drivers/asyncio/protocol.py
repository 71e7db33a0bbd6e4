"""The asyncio protocol of one connection: its bytes go to the opening handshake, then to the WebSocket."""

from __future__ import annotations

import asyncio
import contextvars
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .websocket import WebSocket

#: The context the driver's own callbacks (timers, deferred writes) run in: one
#: for all, instead of a copy of the caller's per callback scheduled (asyncio's
#: default), which an idle connection's keepalive timer would hold. They read
#: no context variable; the application's tasks keep their own contexts.
DRIVER_CONTEXT = contextvars.Context()


class Opening:
    """What a connection does until its opening handshake is decided (one per role)."""

    __slots__ = ()

    def connection_made(self, protocol: ConnectionProtocol, transport: asyncio.Transport) -> None:
        raise NotImplementedError

    def data_received(self, data: bytes) -> None:
        raise NotImplementedError

    def ended(self) -> None:
        raise NotImplementedError


class ConnectionProtocol(asyncio.Protocol):
    """One TCP connection: the opening handshake, then every event to the :class:`WebSocket`."""

    __slots__ = ("_opening", "_transport", "websocket", "writing_paused")

    def __init__(self, opening: Opening | None) -> None:
        # None: the WebSocket is already open (an HTTP/2 stream's, whose
        # opening is the HTTP/2 connection's business).
        self._opening = opening
        self._transport: asyncio.Transport | None = None
        self.websocket: WebSocket | None = None
        self.writing_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Any loop's transport will do (uvloop's are not asyncio.Transport
        # subclasses): only the methods asyncio documents are used.
        self._transport = transport  # type: ignore[assignment]
        if self._opening is not None:
            self._opening.connection_made(self, transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        websocket = self.websocket
        if websocket is not None:
            websocket._received(data)
        elif self._opening is not None:
            self._opening.data_received(data)

    def eof_received(self) -> bool:
        self._ended()
        # Keep the transport to write our last frames (our Close answers the
        # peer's); the WebSocket closes it. TLS transports cannot stay half-open.
        return (
            self.websocket is not None
            and self._transport is not None
            and (self._transport.get_extra_info("sslcontext") is None)
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended()
        if self.websocket is not None:
            self.websocket._connection_lost()

    def _ended(self) -> None:
        if self.websocket is not None:
            self.websocket._received(None)
        elif self._opening is not None:
            opening, self._opening = self._opening, None
            opening.ended()

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self.websocket is not None:
            self.websocket._update_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.websocket is not None:
            self.websocket._writing_resumed()

    def opened(self, websocket: WebSocket) -> None:
        self._opening = None
        self.websocket = websocket
