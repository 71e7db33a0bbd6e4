"""Tests of prepared messages: one encoding, many connections, the same messages on the wire.

Each connection is joined in memory to a peer with the matching negotiated
extension; what the peer decodes from ``send_prepared`` must be exactly the
message, as with ``send``, in every role and extension combination, and the
compressed context of a connection must stay in step with its peer when
prepared and ordinary messages alternate.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproto_core import ConnectionType, LocalProtocolError, PreparedMessage, WSConnection
from wsproto_core.connection import Connection
from wsproto_core.events import AcceptConnection, BytesMessage, CloseConnection, Message, Ping, Request, TextMessage
from wsproto_core.extensions import Extension
from wsproto_core.permessage_deflate import PerMessageDeflate

CLIENT = ConnectionType.CLIENT
SERVER = ConnectionType.SERVER
RSV1 = 0x40


class HookDeflate(PerMessageDeflate):
    """permessage-deflate under another class: the connection then uses its extension hooks."""

    __slots__ = ()


def negotiated(
    client_config: dict[str, Any] | None, server_config: dict[str, Any], *, hooks: bool = False
) -> tuple[Connection, Connection]:
    """A client and a server joined after negotiating (or not, for ``None``) permessage-deflate."""
    if client_config is None:
        return Connection(CLIENT), Connection(SERVER)
    cls = HookDeflate if hooks else PerMessageDeflate
    client_ext, server_ext = cls(**client_config), cls(**server_config)
    response = server_ext.accept(f"permessage-deflate; {client_ext.offer()}".rstrip("; "))
    assert response is not None
    client_ext.finalize(f"permessage-deflate; {response}".rstrip("; "))
    extensions: tuple[list[Extension], list[Extension]] = ([client_ext], [server_ext])
    return Connection(CLIENT, extensions[0]), Connection(SERVER, extensions[1])


def messages_of(receiver: Connection, wire: bytes) -> list[str | bytes]:
    """Feed ``wire`` and return the whole messages it carried, failing on anything else."""
    receiver.receive_data(wire)
    result: list[str | bytes] = []
    pieces: list[Any] = []
    for event in receiver.events():
        assert isinstance(event, Message), event
        pieces.append(event.data)
        if event.message_finished:
            result.append("".join(pieces) if isinstance(event, TextMessage) else b"".join(pieces))
            pieces = []
    assert not pieces
    assert receiver.failure is None
    return result


def first_bytes(wire: bytes) -> int:
    return wire[0]


# The extension combinations that matter: none; permessage-deflate with and
# without context takeover on either side, small windows, a threshold, a
# window of 8 (a client that then never compresses); and the hook path.
DEFLATE_CONFIGS: list[tuple[dict[str, Any] | None, dict[str, Any], bool]] = [
    (None, {}, False),
    ({}, {}, False),
    ({}, {"server_no_context_takeover": True}, False),
    ({"client_no_context_takeover": True}, {}, False),
    ({"client_no_context_takeover": True}, {"server_no_context_takeover": True}, False),
    ({"server_max_window_bits": 10}, {"server_no_context_takeover": True, "client_max_window_bits": 9}, False),
    ({"client_no_context_takeover": True}, {"server_no_context_takeover": True, "compression_threshold": 40}, False),
    ({"client_max_window_bits": 8}, {}, False),
    ({}, {"server_no_context_takeover": True}, True),
]

message_data = st.one_of(st.text(max_size=300), st.binary(max_size=300), st.sampled_from(["abc" * 200, b"\x00" * 700]))


@settings(max_examples=150, deadline=None)
@given(
    config=st.sampled_from(DEFLATE_CONFIGS),
    role=st.sampled_from([CLIENT, SERVER]),
    compress_with_context=st.booleans(),
    # Each message: its data and whether it is sent prepared (else with send()).
    sent=st.lists(st.tuples(message_data, st.booleans()), min_size=1, max_size=8),
    skip_some=st.booleans(),
)
def test_prepared_messages_decode_as_sent_in_every_role_and_extension(
    *,
    config: tuple[dict[str, Any] | None, dict[str, Any], bool],
    role: ConnectionType,
    compress_with_context: bool,
    sent: list[tuple[str | bytes, bool]],
    skip_some: bool,
) -> None:
    client_config, server_config, hooks = config
    client, server = negotiated(client_config, server_config, hooks=hooks)
    sender, receiver = (client, server) if role is CLIENT else (server, client)
    wire = b""
    for index, (data, prepared) in enumerate(sent):
        if skip_some and index % 3 == 1 and sender.extensions:
            # A pending send_next_uncompressed() applies to a prepared message too.
            extension = sender.extensions[0]
            assert isinstance(extension, PerMessageDeflate)
            extension.send_next_uncompressed()
            before = len(wire)
        if prepared:
            wire += sender.send_prepared(PreparedMessage(data, compress_with_context=compress_with_context))
        else:
            event = TextMessage(data) if isinstance(data, str) else BytesMessage(data)
            wire += sender.send(event)
        if skip_some and index % 3 == 1 and sender.extensions:
            assert not first_bytes(wire[before:]) & RSV1
    assert messages_of(receiver, wire) == [data for data, _ in sent]


@pytest.mark.parametrize("config", DEFLATE_CONFIGS)
@pytest.mark.parametrize("role", [CLIENT, SERVER])
def test_one_prepared_message_reaches_many_connections_intact(
    config: tuple[dict[str, Any] | None, dict[str, Any], bool], role: ConnectionType
) -> None:
    client_config, server_config, hooks = config
    pairs = [negotiated(client_config, server_config, hooks=hooks) for _ in range(4)]
    message = PreparedMessage("héllo wörld " * 30)
    history = ["earlier message " * 10, b"\x01\x02" * 40]
    for client, server in pairs:
        sender, receiver = (client, server) if role is CLIENT else (server, client)
        # Earlier messages put something in a compression context, if kept.
        wire = b"".join(sender.send(TextMessage(h) if isinstance(h, str) else BytesMessage(h)) for h in history)
        wire += sender.send_prepared(message) + sender.send(TextMessage("after"))
        assert messages_of(receiver, wire) == [*history, message.data, "after"]


def test_server_frames_without_extension_are_one_object_identical_to_send() -> None:
    servers = [Connection(SERVER) for _ in range(3)]
    for data in ("x" * 10, "é" * 100, b"\xff" * 70000):
        message = PreparedMessage(data)
        frames = [server.send_prepared(message) for server in servers]
        assert all(frame is frames[0] for frame in frames)
        event = TextMessage(data) if isinstance(data, str) else BytesMessage(data)
        assert frames[0] == Connection(SERVER).send(event)


def test_client_frames_are_masked_with_a_fresh_key_each() -> None:
    message = PreparedMessage(b"payload" * 20)
    client = Connection(CLIENT)
    frames = [client.send_prepared(message) for _ in range(3)]
    masks = {frame[2:6] for frame in frames}
    assert len(masks) == 3
    assert all(frame[1] & 0x80 for frame in frames)


def test_no_context_takeover_shares_one_compression_per_parameter_set() -> None:
    message = PreparedMessage("fan out " * 200)
    same = [negotiated({}, {"server_no_context_takeover": True})[1] for _ in range(5)]
    other = [negotiated({}, {"server_no_context_takeover": True, "server_max_window_bits": 10})[1] for _ in range(5)]
    frames = [server.send_prepared(message) for server in same + other]
    assert message.compressions == 2
    assert all(frame is frames[0] for frame in frames[:5])
    assert all(frame is frames[5] for frame in frames[5:])
    assert frames[0][0] & RSV1
    assert len(frames[0]) < len(message.payload)
    # Clients without context takeover share the compressed payload too (the
    # window-15 one already made for servers), each masking it anew.
    clients = [negotiated({"client_no_context_takeover": True}, {})[0] for _ in range(3)]
    client_frames = [client.send_prepared(message) for client in clients]
    assert message.compressions == 2
    assert len({frame[2:6] for frame in client_frames}) == 3


@pytest.mark.parametrize(("compress_with_context", "compressions"), [(True, 4), (False, 0)])
def test_context_takeover_compresses_per_connection_or_sends_uncompressed(
    compress_with_context: bool, compressions: int
) -> None:
    message = PreparedMessage("keep context " * 100, compress_with_context=compress_with_context)
    pairs = [negotiated({}, {}) for _ in range(4)]
    for client, server in pairs:
        frame = server.send_prepared(message)
        assert bool(frame[0] & RSV1) is compress_with_context
        # The context goes on in step with the peer's afterwards.
        frame += server.send(TextMessage("keep context " * 100))
        assert messages_of(client, frame) == [message.data, message.data]
    assert message.compressions == compressions


def test_threshold_leaves_small_prepared_messages_uncompressed() -> None:
    _, server = negotiated({}, {"server_no_context_takeover": True, "compression_threshold": 100})
    small, large = PreparedMessage("s" * 99), PreparedMessage("l" * 100)
    assert not server.send_prepared(small)[0] & RSV1
    assert server.send_prepared(large)[0] & RSV1
    assert (small.compressions, large.compressions) == (0, 1)


def test_closed_connections_refuse_and_stay_as_they_were() -> None:
    message = PreparedMessage("late")
    for extensions in ([], [HookDeflate()]):
        server = Connection(SERVER, extensions)
        server.send(CloseConnection(1000))
        with pytest.raises(LocalProtocolError, match="LOCAL_CLOSING"):
            server.send_prepared(message)
    client, server = negotiated({}, {})
    client.receive_data(server.send(CloseConnection(1001)))
    list(client.events())
    with pytest.raises(LocalProtocolError, match="REMOTE_CLOSING"):
        client.send_prepared(message)
    # Its Close can still be answered.
    assert client.send(CloseConnection(1001))


@pytest.mark.parametrize("config", DEFLATE_CONFIGS)
def test_a_prepared_message_never_interleaves_a_fragmented_one(
    config: tuple[dict[str, Any] | None, dict[str, Any], bool],
) -> None:
    client, server = negotiated(*config[:2], hooks=config[2])
    for kind in (TextMessage("part", message_finished=False), BytesMessage(b"part", message_finished=False)):
        wire = server.send(kind)
        for message in (PreparedMessage("text"), PreparedMessage(b"binary")):
            with pytest.raises(LocalProtocolError, match="fragmented message"):
                server.send_prepared(message)
        # Refusing changed nothing: the fragmented message ends, then the prepared one goes.
        wire += server.send(type(kind)(kind.data, message_finished=True))  # type: ignore[call-arg]
        wire += server.send_prepared(PreparedMessage("next"))
        assert messages_of(client, wire) == [kind.data * 2, "next"]


def test_control_frames_between_fragments_do_not_unblock_it() -> None:
    server = Connection(SERVER)
    server.send(TextMessage("a", message_finished=False))
    server.send(Ping(b"p"))
    with pytest.raises(LocalProtocolError):
        server.send_prepared(PreparedMessage("b"))


def test_what_cannot_be_prepared() -> None:
    with pytest.raises(LocalProtocolError, match="lone surrogates"):
        PreparedMessage("\ud800")
    with pytest.raises(LocalProtocolError, match="not int"):
        PreparedMessage(5)  # type: ignore[arg-type]
    binary = PreparedMessage(bytearray(b"ab"))
    assert (binary.is_text, binary.data, binary.payload) == (False, b"ab", b"ab")
    assert binary.event() == BytesMessage(b"ab")
    text = PreparedMessage("é")
    assert (text.is_text, text.data, text.payload, text.event()) == (True, "é", "é".encode(), TextMessage("é"))
    assert "text, 2 bytes" in repr(text)


def test_wsconnection_sends_prepared_messages_after_the_handshake_only() -> None:
    client, server = WSConnection(CLIENT), WSConnection(SERVER)
    message = PreparedMessage("over the handshake")
    with pytest.raises(LocalProtocolError, match="handshake"):
        server.send_prepared(message)
    server.receive_data(client.send(Request(host="example.com", target="/")))
    assert [type(event) for event in server.events()] == [Request]
    client.receive_data(server.send(AcceptConnection()))
    list(client.events())
    client.receive_data(server.send_prepared(message))
    assert [event.data for event in client.events() if isinstance(event, Message)] == [message.data]
