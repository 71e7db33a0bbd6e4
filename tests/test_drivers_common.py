"""The drivers' shared contract without I/O: the opening sequence in both roles and the handler policy.

Each driver only moves these bytes; here a client and a server opening are
joined in memory, as a driver would join them through a socket.
"""

from __future__ import annotations

import logging

import pytest

from wsproto_core.drivers._common import (
    ClientOpening,
    ConnectionClosed,
    ServerOpening,
    Settings,
    Upgrade,
    handler_close,
    parse_url,
)
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
