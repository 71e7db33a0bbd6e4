"""Two real h2 connections joined in memory, with one WebSocket stream between them.

The WebSocket bytes travel as DATA frames cut where the test says, within
HTTP/2's frame size and flow-control windows, and the receiving side
acknowledges what it consumed, as a driver does.
"""

from __future__ import annotations

from collections.abc import Iterable

import h2.config
import h2.connection
import h2.events
import h2.settings

from wsproto_core.events import AcceptConnection, Request
from wsproto_core.extensions import Extension
from wsproto_core.http2 import accept_headers, client_accepted, connect_request_headers, request_from_headers


def h2_pair(*, enable_connect: bool = True) -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
    """An h2 client and server that exchanged their prefaces and SETTINGS."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    client.initiate_connection()
    server.initiate_connection()
    if enable_connect:
        # RFC 8441 section 3: the server enables extended CONNECT in its SETTINGS.
        server.update_settings({h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1})
    exchange(client, server)
    return client, server


def exchange(client: h2.connection.H2Connection, server: h2.connection.H2Connection) -> list[h2.events.Event]:
    """Move bytes both ways until both sides are quiet; return every event seen."""
    seen: list[h2.events.Event] = []
    while True:
        to_server = client.data_to_send()
        to_client = server.data_to_send()
        if not to_server and not to_client:
            return seen
        if to_server:
            seen.extend(server.receive_data(to_server))
        if to_client:
            seen.extend(client.receive_data(to_client))


class H2Link:
    """A WebSocket stream opened by extended CONNECT between two in-memory h2 connections."""

    def __init__(
        self,
        request: Request | None = None,
        accept: AcceptConnection | None = None,
    ) -> None:
        self.client, self.server = h2_pair()
        self.request = request or Request(host="example.com", target="/")
        self.stream_id = self.client.get_next_available_stream_id()
        self.client.send_headers(self.stream_id, connect_request_headers(self.request))
        (received,) = [e for e in exchange(self.client, self.server) if isinstance(e, h2.events.RequestReceived)]
        self.server_request = request_from_headers(received.headers)
        response, self.server_extensions = accept_headers(self.server_request, accept or AcceptConnection())
        self.server.send_headers(self.stream_id, response)
        (answer,) = [e for e in exchange(self.client, self.server) if isinstance(e, h2.events.ResponseReceived)]
        accepted = client_accepted(self.request, answer.headers)
        assert isinstance(accepted, AcceptConnection), accepted
        self.accepted = accepted
        self.client_extensions: list[Extension] = accepted.extensions

    def deliver(self, from_client: bool, pieces: Iterable[bytes]) -> list[bytes]:
        """Send ``pieces`` as DATA frames one way; return the payloads received, in order.

        A piece larger than what HTTP/2 lets through at once (the frame size or
        the stream's window) is cut further; the receiver acknowledges each
        DATA frame, which reopens the window.
        """
        sender, receiver = (self.client, self.server) if from_client else (self.server, self.client)
        received: list[bytes] = []
        for piece in pieces:
            view = memoryview(piece)
            while view:
                allowed = min(sender.local_flow_control_window(self.stream_id), sender.max_outbound_frame_size)
                assert allowed > 0, "the receiver did not acknowledge what it consumed"
                sender.send_data(self.stream_id, bytes(view[:allowed]))
                view = view[allowed:]
                for event in receiver.receive_data(sender.data_to_send()):
                    if isinstance(event, h2.events.DataReceived):
                        received.append(event.data)
                        receiver.acknowledge_received_data(event.flow_controlled_length, self.stream_id)
                # The WINDOW_UPDATE frames go back to the sender.
                exchange(self.client, self.server)
        return received
