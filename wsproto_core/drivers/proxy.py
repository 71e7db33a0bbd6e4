"""Client connections through an HTTP CONNECT or a SOCKS5 proxy.

Which proxy, if any: an explicit ``proxy`` URL, or (``proxy=True``, the
default of :func:`wsproto_core.drivers.asyncio.connect`) the environment as
curl and websockets read it: ``HTTPS_PROXY`` for ``wss://``, ``HTTP_PROXY``
for ``ws://``, then ``ALL_PROXY``, each also in lower case, and ``NO_PROXY``
naming the hosts to reach directly. Proxy URLs are ``http://`` (HTTP
CONNECT), ``socks5://`` and ``socks5h://`` (both let the proxy resolve the
target's name); ``user:password@`` in them authenticates (Basic for HTTP,
RFC 1929 for SOCKS5). TLS to the proxy itself (``https://`` proxies) is not
supported; ``wss://`` through any of them is (TLS runs inside the tunnel).

The two tunnel protocols are written without I/O (:class:`HttpConnectTunnel`,
:class:`Socks5Tunnel`: bytes to send, bytes received, done or failed), behind
one interface, :class:`Tunnel`, that each driver runs on its own sockets:
:func:`open_tunnel` on an asyncio socket, ``wsproto_core.drivers.sync`` on a
blocking one and ``wsproto_core.drivers.trio`` on a trio stream.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import socket
import struct
import urllib.parse
import urllib.request

from ._common import WebSocketURL

__all__ = ["HttpConnectTunnel", "ProxyError", "ProxyURL", "Socks5Tunnel", "Tunnel", "open_tunnel", "proxy_for"]

#: The largest CONNECT response head accepted from a proxy.
MAX_RESPONSE_HEAD = 16 * 1024


class ProxyError(ConnectionError):
    """The proxy refused the tunnel, or does not speak the protocol its URL names."""


@dataclasses.dataclass(frozen=True)
class ProxyURL:
    """A parsed proxy URL."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> ProxyURL:
        """Parse ``http://``, ``socks5://`` or ``socks5h://`` URLs; raise ``ValueError`` for others."""
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        scheme = parts.scheme.lower()
        if scheme not in ("http", "socks5", "socks5h") or not parts.hostname:
            raise ValueError(f"{url!r} is not a proxy URL this client supports (http://, socks5://, socks5h://)")
        default_port = 80 if scheme == "http" else 1080
        return cls(
            "socks5" if scheme == "socks5h" else scheme,
            parts.hostname,
            parts.port or default_port,
            urllib.parse.unquote(parts.username) if parts.username else None,
            urllib.parse.unquote(parts.password) if parts.password else None,
        )


def proxy_for(target: WebSocketURL, proxy: str | bool | None = True) -> ProxyURL | None:
    """The proxy to reach ``target`` through: ``proxy`` itself if it is a URL, the environment's if ``True``."""
    if proxy is None or proxy is False:
        return None
    if isinstance(proxy, str):
        return ProxyURL.parse(proxy)
    proxies = urllib.request.getproxies_environment()
    if bypassed(target.host, proxies.get("no", "")):
        return None
    url = proxies.get("https" if target.secure else "http") or proxies.get("all")
    return ProxyURL.parse(url) if url else None


def bypassed(host: str, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` (comma-separated) names ``host``: ``*``, the host, or a domain it is in."""
    host = host.lower().strip("[]")
    for raw_entry in no_proxy.lower().split(","):
        name = raw_entry.strip()
        if name.startswith("[") and "]" in name:
            name = name[1 : name.index("]")]
        elif name.count(":") == 1:
            name = name.partition(":")[0]  # a port is ignored, as curl does
        name = name.lstrip(".")
        if name == "*" or (name and (host == name or host.endswith("." + name))):
            return True
    return False


class HttpConnectTunnel:
    """An HTTP CONNECT request (RFC 9110 section 9.3.6) and its answer, without I/O."""

    def __init__(self, proxy: ProxyURL, target: WebSocketURL) -> None:
        host = f"[{target.host}]" if ":" in target.host else target.host
        authority = f"{host}:{target.port}".encode("idna")
        lines = [b"CONNECT " + authority + b" HTTP/1.1", b"Host: " + authority]
        if proxy.username is not None:
            credentials = f"{proxy.username}:{proxy.password or ''}".encode()
            lines.append(b"Proxy-Authorization: Basic " + base64.b64encode(credentials))
        self.request = b"\r\n".join(lines) + b"\r\n\r\n"
        self._buffer = bytearray()

    def receive(self, data: bytes) -> bytes | None:
        """Feed bytes from the proxy; return the bytes after the answer once the tunnel is open.

        Raises :class:`ProxyError` for an answer other than 2xx, or a proxy
        that closed (``data`` empty) or sent too long a head.
        """
        if not data:
            raise ProxyError("The proxy closed the connection before answering CONNECT")
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_RESPONSE_HEAD:
                raise ProxyError("The proxy's answer to CONNECT is too long")
            return None
        status_line = bytes(self._buffer[: self._buffer.find(b"\r\n")])
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProxyError(f"The proxy did not answer CONNECT with HTTP: {status_line[:100]!r}")
        if not 200 <= int(parts[1]) < 300:
            raise ProxyError(f"The proxy refused the tunnel: {status_line.decode('latin-1')}")
        return bytes(self._buffer[end + 4 :])


_SOCKS_REPLIES = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}


class Socks5Tunnel:
    """A SOCKS5 CONNECT (RFC 1928), with username/password authentication (RFC 1929), without I/O.

    :attr:`greeting` is sent first; every answer to :meth:`receive` is sent
    next, until :meth:`receive` reports the tunnel open. The target's name is
    sent to the proxy to resolve.
    """

    def __init__(self, proxy: ProxyURL, target: WebSocketURL) -> None:
        self._proxy = proxy
        self._target = target
        authenticate = proxy.username is not None
        # Methods offered: 0 (none), and 2 (username/password) when we have them.
        self.greeting = b"\x05\x02\x00\x02" if authenticate else b"\x05\x01\x00"
        self._buffer = bytearray()
        self._step = "method"

    def receive(self, data: bytes) -> tuple[bytes, bytes | None]:
        """Feed bytes from the proxy; return (bytes to send now, the bytes after the reply once open, else ``None``)."""
        if not data:
            raise ProxyError("The SOCKS5 proxy closed the connection during its handshake")
        self._buffer += data
        to_send = b""
        while True:
            if self._step == "method":
                if len(self._buffer) < 2:
                    return to_send, None
                version, method = self._take(2)
                if version != 5:
                    raise ProxyError("The proxy does not speak SOCKS5")
                if method == 2 and self._proxy.username is not None:
                    user = self._proxy.username.encode()
                    password = (self._proxy.password or "").encode()
                    to_send += bytes([1, len(user)]) + user + bytes([len(password)]) + password
                    self._step = "auth"
                elif method == 0:
                    to_send += self._connect_request()
                    self._step = "reply"
                else:
                    raise ProxyError("The SOCKS5 proxy accepts none of our authentication methods")
            elif self._step == "auth":
                if len(self._buffer) < 2:
                    return to_send, None
                if self._take(2)[1] != 0:
                    raise ProxyError("The SOCKS5 proxy refused our username and password")
                to_send += self._connect_request()
                self._step = "reply"
            else:
                if len(self._buffer) < 5:
                    return to_send, None
                version, reply, _, address_type, first = self._buffer[:5]
                if version != 5:
                    raise ProxyError("The proxy does not speak SOCKS5")
                if reply != 0:
                    raise ProxyError(f"The SOCKS5 proxy refused the tunnel: {_SOCKS_REPLIES.get(reply, reply)}")
                address_length = {1: 4, 3: 1 + first, 4: 16}.get(address_type)
                if address_length is None:
                    raise ProxyError("The SOCKS5 proxy answered with an unknown address type")
                length = 4 + address_length + 2
                if len(self._buffer) < length:
                    return to_send, None
                return to_send, bytes(self._buffer[length:])

    def _take(self, count: int) -> bytes:
        taken = bytes(self._buffer[:count])
        del self._buffer[:count]
        return taken

    def _connect_request(self) -> bytes:
        name = self._target.host.encode("idna")
        if len(name) > 255:
            raise ProxyError("The host name is too long for SOCKS5")
        return b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack("!H", self._target.port)


class Tunnel:
    """Either tunnel protocol, one way: send :attr:`opening`, then feed replies to :meth:`receive`.

    What a driver's loop looks like, whatever the proxy::

        send(tunnel.opening)
        while True:
            to_send, opened = tunnel.receive(read())
            send(to_send)  # when not empty
            if opened:
                break
    """

    def __init__(self, proxy: ProxyURL, target: WebSocketURL) -> None:
        self._http = HttpConnectTunnel(proxy, target) if proxy.scheme == "http" else None
        self._socks = Socks5Tunnel(proxy, target) if self._http is None else None
        #: The first bytes to send to the proxy.
        self.opening = self._http.request if self._http is not None else self._socks.greeting  # type: ignore[union-attr]

    def receive(self, data: bytes) -> tuple[bytes, bool]:
        """Feed bytes read from the proxy (``b""``: it closed); return (bytes to send now, whether the tunnel is open).

        Raises :class:`ProxyError` when the proxy refuses, closes, or speaks
        once the tunnel is open (the target speaks only after our request).
        """
        if self._http is not None:
            after = self._http.receive(data)
            to_send = b""
        else:
            assert self._socks is not None
            to_send, after = self._socks.receive(data)
        if after:
            raise ProxyError("The proxy sent bytes of its own after opening the tunnel")
        return to_send, after is not None


async def open_tunnel(proxy: ProxyURL, target: WebSocketURL) -> socket.socket:
    """Connect to ``proxy`` and open a tunnel to ``target``; return the connected socket.

    The socket is non-blocking, ready for ``loop.create_connection(sock=...)``
    (with TLS to the target for ``wss://``). Raises :class:`ProxyError` when
    the proxy refuses, ``OSError`` when it cannot be reached.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(proxy.host, proxy.port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"Cannot resolve the proxy {proxy.host!r}")
    family, kind, protocol, _, address = infos[0]
    sock = socket.socket(family, kind, protocol)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
        tunnel = Tunnel(proxy, target)
        await loop.sock_sendall(sock, tunnel.opening)
        while True:
            to_send, opened = tunnel.receive(await loop.sock_recv(sock, 4096))
            if to_send:
                await loop.sock_sendall(sock, to_send)
            if opened:
                break
    except BaseException:
        sock.close()
        raise
    return sock
