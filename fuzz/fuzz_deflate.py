"""Fuzz target: permessage-deflate (RFC 7692) negotiation and bounded inflation.

The first byte selects a mode:

* negotiation: the input, as a header element, goes to a server's ``accept()``
  (it may only decline, never raise; an acceptance must be a response that a
  client offering defaults can ``finalize()``) and to a client's ``finalize()``
  (only ``RemoteProtocolError`` may escape); and a client configured from the
  input offers to a server configured from the input: they must agree, the
  response must satisfy the client, and a message must survive the round trip;
* inflation: a server Connection that negotiated permessage-deflate, with a small
  ``max_message_size``, is fed frames (RSV1 set, payloads either raw input or
  input deflated) in chunks; the frame invariants apply, inflated messages
  stay within the limit, and bombs fail with 1009, not memory.
"""

from __future__ import annotations

import sys
import zlib

from _common import CLIENT, PARTIAL_SIZES, SERVER, Connection, Provider, frames_from, main, run_connection

from wsproto_core.errors import RemoteProtocolError
from wsproto_core.events import BytesMessage, TextMessage
from wsproto_core.permessage_deflate import PerMessageDeflate

BITS = (None, 8, 9, 10, 12, 15)


def configured(provider: Provider) -> PerMessageDeflate:
    flags = provider.byte()
    return PerMessageDeflate(
        client_no_context_takeover=bool(flags & 1),
        client_max_window_bits=provider.choice(BITS),
        server_no_context_takeover=bool(flags & 2),
        server_max_window_bits=provider.choice(BITS),
        compression_threshold=provider.choice((0, 0, 10)),
    )


def negotiation(provider: Provider, text: str) -> None:
    server = configured(provider)
    response = server.accept(text)
    if response is None:
        assert server.negotiated is None and server.decline_reason
    else:
        assert isinstance(response, str) and server.negotiated is not None
        PerMessageDeflate().finalize(f"permessage-deflate; {response}" if response else "permessage-deflate")
    client = configured(provider)
    try:
        client.finalize(text)
    except RemoteProtocolError:
        assert client.negotiated is None
    # A client and a server configured from the input must agree.
    client, server = configured(provider), configured(provider)
    offer = f"permessage-deflate; {client.offer()}"
    response = server.accept(offer)
    if response is None:
        assert client.server_max_window_bits == 8, (offer, server.decline_reason)
        return
    client.finalize(f"permessage-deflate; {response}" if response else "permessage-deflate")
    ours, theirs = client.negotiated, server.negotiated
    assert ours is not None and theirs is not None
    assert ours.server_no_context_takeover == theirs.server_no_context_takeover, (offer, response)
    assert ours.client_max_window_bits <= theirs.client_max_window_bits or theirs.client_max_window_bits == 8, (
        offer,
        response,
    )
    assert ours.server_max_window_bits >= theirs.server_max_window_bits, (offer, response)
    # Messages in both directions survive compression.
    client_conn = Connection(CLIENT, [client])
    server_conn = Connection(SERVER, [server])
    payload = provider.take(200)
    for sender, receiver in ((client_conn, server_conn), (server_conn, client_conn), (client_conn, server_conn)):
        receiver.receive_data(sender.send(BytesMessage(payload)) + sender.send(TextMessage(payload.hex())))
        received = list(receiver.events())
        assert receiver.failure is None, receiver.failure
        assert [event.data for event in received] == [payload, payload.hex()], received


def inflation(provider: Provider, data: bytes) -> None:
    server = configured(provider)
    if server.accept(f"permessage-deflate; {configured(provider).offer()}") is None:
        return
    conn = Connection(
        SERVER,
        [server],
        max_message_size=provider.choice((0, 1, 100, 1000, 4096)),
        min_partial_size=provider.choice(PARTIAL_SIZES),
    )
    level = provider.integer(0, 9)

    def deflate(payload: bytes) -> bytes:
        # Bombs too: a repeated payload compresses far below its inflated size.
        compressor = zlib.compressobj(level, zlib.DEFLATED, -9)
        data = compressor.compress(payload * (1 + len(payload) % 64)) + compressor.flush(zlib.Z_SYNC_FLUSH)
        return data[:-4] if data.endswith(b"\x00\x00\xff\xff") else data

    stream = frames_from(provider, masked=True, deflate=deflate)
    run_connection(Provider(data[::-1]), conn, stream, end=provider.boolean())


def test_one_input(data: bytes) -> None:
    provider = Provider(data)
    mode = provider.byte()
    if mode & 1:
        text = data[1:].decode("latin-1")
        negotiation(Provider(data[::-1]), text)
    else:
        inflation(provider, data)


if __name__ == "__main__":
    main(test_one_input)
    sys.exit(0)
