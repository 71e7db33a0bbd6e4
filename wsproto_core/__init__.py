"""wsproto_core: a sans-I/O WebSocket protocol implementation (RFC 6455).

It consumes bytes, produces events, and turns events into bytes to send; it never
touches a socket, so any I/O framework can drive it. The event vocabulary is
wsproto's, so wsproto applications can switch.
"""

from __future__ import annotations

from .connection import Connection, ConnectionState, ConnectionType
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError

__all__ = [
    "Connection",
    "ConnectionState",
    "ConnectionType",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
]

__version__ = "0.1.0"
