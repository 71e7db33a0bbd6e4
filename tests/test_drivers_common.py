"""The drivers' shared contract without I/O: the opening sequence in both roles and the handler policy.

Each driver only moves these bytes; here a client and a server opening are
joined in memory, as a driver would join them through a socket.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Callable
from typing import Any

import pytest

from wsproto_core.drivers import asyncio as asyncio_driver
from wsproto_core.drivers import sync as sync_driver
from wsproto_core.drivers import trio as trio_driver
from wsproto_core.drivers._common import (
    ClientOpening,
    ClientOptions,
    ConnectionClosed,
    Fragments,
    HttpResponse,
    InvalidURL,
    ServerOpening,
    ServerOptions,
    Settings,
    Upgrade,
    WebSocketURL,
    handler_close,
    parse_url,
)
from wsproto_core.errors import LocalProtocolError
from wsproto_core.events import BytesMessage, CloseConnection, TextMessage
from wsproto_core.state import ConnectionState


@pytest.mark.parametrize("compression", [True, False])
def test_client_and_server_openings_joined_in_memory_open_one_connection(compression: bool) -> None:
    settings = Settings(compression=compression, ping_interval=None)
    client = ClientOpening.start(parse_url("ws://example.com:8080/chat?room=1"), settings, ["chat.v2", "chat.v1"])
    assert client.request.startswith(b"GET /chat?room=1 HTTP/1.1\r\n")
    assert b"host: example.com:8080\r\n" in client.request.lower()
    server = ServerOpening(settings, None)
    # Trickled a byte at a time: decided only once the head is whole.
    decided = [server.receive(client.request[index : index + 1]) for index in range(len(client.request))]
    assert decided == [False] * (len(client.request) - 1) + [True]
    assert server.request is not None and server.request.target == "/chat?room=1"
    answer, accept = server.upgrade(Upgrade(subprotocols=["chat.v1", "chat.v2"]), settings)
    assert accept is not None and accept.subprotocol == "chat.v1"
    # The server's first frame may come in the same read as the 101.
    server_side = server.managed(now=5.0, hold_after_message=True)
    server_side.send(TextMessage("welcome"))
    accepted = client.receive(answer + server_side.data_to_send())
    assert accepted is not None and accepted.subprotocol == "chat.v1"
    assert bool(accepted.extensions) is compression
    client_side = client.managed(now=5.0)
    assert (client_side.client, server_side.client) == (True, False)
    assert (client_side.hold_after_message, server_side.hold_after_message) == (False, True)
    assert client_side.state is server_side.state is ConnectionState.OPEN
    assert list(client_side.events(6.0)) == [TextMessage("welcome")]
    client_side.send(BytesMessage(b"\x00" * 300))
    server_side.receive_data(client_side.data_to_send(), 7.0)
    assert list(server_side.events(7.0)) == [BytesMessage(b"\x00" * 300)]


def test_the_openings_take_the_limits_of_the_settings() -> None:
    settings = Settings(max_message_size=10, compression=False, ping_interval=None)
    client = ClientOpening.start(parse_url("ws://localhost/"), settings)
    server = ServerOpening(settings, None)
    assert server.receive(client.request)
    answer, _ = server.upgrade(Upgrade(), settings)
    assert client.receive(answer) is not None
    client_side, server_side = client.managed(now=0.0), server.managed(now=0.0)
    client_side.send(BytesMessage(b"x" * 11))
    server_side.receive_data(client_side.data_to_send())
    (closed,) = server_side.events()
    assert isinstance(closed, CloseConnection) and closed.code == 1009


def test_a_handler_that_returns_or_lets_connection_closed_escape_closes_with_1000(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("test.handler")
    assert handler_close(None, log) == (1000, "")
    assert handler_close(ConnectionClosed(1006), log) == (1000, "")
    assert caplog.records == []


def test_a_handler_that_raises_closes_with_1011_and_the_error_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.handler")
    error = ValueError("a secret that must not reach the peer")
    with caplog.at_level(logging.ERROR, logger="test.handler"):
        assert handler_close(error, log) == (1011, "internal error")
    (record,) = caplog.records
    assert record.name == "test.handler"
    assert record.exc_info is not None and record.exc_info[1] is error


class _Sender:
    """What Fragments.begin/release need of a WebSocket: its flag."""

    _fragmenting = False


def test_fragments_one_message_at_a_time_and_unfinished_only_once_started() -> None:
    sender = _Sender()
    first = Fragments(["a", "b"])
    first.begin(sender)
    assert sender._fragmenting
    with pytest.raises(LocalProtocolError, match="send_fragments"):
        Fragments(["c"]).begin(sender)
    assert first.piece("a") == TextMessage("a", message_finished=False)
    # Released halfway: the peer holds the start of a message.
    assert first.release(sender) is True
    assert not sender._fragmenting

    ended = Fragments([b"x"])
    ended.begin(sender)
    assert ended.piece(bytearray(b"x")) == BytesMessage(b"x", message_finished=False)
    assert ended.end() == BytesMessage(b"")
    assert ended.release(sender) is False

    empty = Fragments([])
    empty.begin(sender)
    assert empty.end() is None  # No piece, no message.
    assert empty.release(sender) is False

    mixed = Fragments(["text", b"bytes"])
    mixed.piece("text")
    with pytest.raises(TypeError, match="both str and bytes"):
        mixed.piece(b"bytes")
    with pytest.raises(TypeError, match="iterable of pieces"):
        Fragments("a whole message")


def test_client_options_take_connect_keywords_and_leave_the_rest_to_settings() -> None:
    options = ClientOptions.parse(
        "wss://example.com:8443/feed?x=1",
        subprotocols=["chat"],
        open_timeout=None,
        proxy=None,
        ping_interval=5.0,
    )
    assert options.url == WebSocketURL(True, "example.com", 8443, "/feed?x=1")
    assert (options.subprotocols, options.open_timeout, options.proxy) == (["chat"], None, None)
    assert options.settings == Settings(ping_interval=5.0)
    assert options.through() is None
    assert options.ssl_context() is not None  # wss:// without a context: the default one.
    assert ClientOptions.parse("ws://example.com/").ssl_context() is None
    # A Unix domain socket never goes through a proxy, whatever the environment says.
    assert (
        ClientOptions.parse("ws://example.com/", unix_path="/tmp/socket", proxy="http://proxy:3128").through() is None
    )
    assert ClientOptions.parse("ws://example.com/", proxy="http://proxy:3128").through() is not None
    request = options.opening().request
    assert request.startswith(b"GET /feed?x=1 HTTP/1.1\r\n")
    assert b"sec-websocket-protocol: chat\r\n" in request.lower()
    with pytest.raises(TypeError, match="Unknown option"):
        ClientOptions.parse("ws://example.com/", colour="blue")
    with pytest.raises(InvalidURL):
        ClientOptions.parse("http://example.com/")


def test_server_options_open_each_connection_with_process_request_and_the_upgrade_callbacks() -> None:
    def page(target: str, headers: list[tuple[bytes, bytes]]) -> HttpResponse | None:
        return HttpResponse(200, [(b"content-type", b"text/plain")], b"a page") if target == "/page" else None

    options = ServerOptions(
        Settings(), subprotocols=["chat.v1"], process_request=page, select_subprotocol=lambda request: "chat.v2"
    )
    plain = options.opening()
    assert plain.receive(b"GET /page HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert plain.request is None
    assert plain.response.endswith(b"a page")
    client = ClientOpening.start(parse_url("ws://localhost/chat"), options.settings, ["chat.v1", "chat.v2"])
    upgrading = options.opening()
    assert upgrading.receive(client.request)
    # select_subprotocol decides, not the subprotocols list.
    answer, accept = upgrading.upgrade(options.upgrade(), options.settings)
    assert accept is not None and accept.subprotocol == "chat.v2"
    accepted = client.receive(answer)
    assert accepted is not None and accepted.subprotocol == "chat.v2"


@pytest.mark.parametrize(
    "serve",
    [asyncio_driver.serve, asyncio_driver.serve_listener, trio_driver.serve, sync_driver.serve],
    ids=["asyncio", "asyncio-listener", "trio", "threads"],
)
def test_every_serve_takes_the_server_options_with_their_defaults(serve: Callable[..., Any]) -> None:
    """The keywords each driver's serve() takes are ServerOptions' fields, with the same defaults."""
    parameters = inspect.signature(serve).parameters
    for field in dataclasses.fields(ServerOptions)[1:]:
        assert parameters[field.name].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[field.name].default == field.default, field.name
