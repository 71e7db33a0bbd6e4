"""Tests for wsproto_core.extensions and the connection's extension hooks (RFC 6455 section 9).

A toy extension claims RSV1 and XORs payloads with a constant byte; others
refuse frames or add trailing data, to exercise every hook and return value.
"""

from __future__ import annotations

import pytest
from helpers import (
    CLIENT,
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    SERVER,
    assert_failed,
    build_frame,
    feed,
    frame_for,
    parse_frame,
    reassemble,
)

from wsproto_core.connection import Connection, ConnectionState, ConnectionType
from wsproto_core.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto_core.extensions import Extension
from wsproto_core.frames import CloseReason, Opcode, RsvBits

ROLES = [CLIENT, SERVER]
ROLE_IDS = ["client", "server"]


def xor(data: bytes, key: int = 0x5A) -> bytes:
    return bytes(byte ^ key for byte in data)


class EnabledExtension(Extension):
    """An extension the handshake negotiated: the connection only uses enabled ones."""

    def enabled(self) -> bool:
        return True


class XorExtension(EnabledExtension):
    """Claims RSV1; frames with RSV1 set carry payloads XOR-ed with 0x5A."""

    name = "x-xor"

    def __init__(self) -> None:
        self.headers: list[tuple[Opcode, RsvBits, int]] = []
        self.completed: list[bool] = []
        self._active = False

    def frame_inbound_header(
        self, proto: Connection, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        self.headers.append((opcode, rsv, payload_length))
        if opcode is not Opcode.CONTINUATION and not opcode.iscontrol():
            self._active = rsv.rsv1
        return RsvBits(True, False, False)

    def frame_inbound_payload_data(self, proto: Connection, data: bytes) -> bytes | CloseReason:
        return xor(data) if self._active else data

    def frame_inbound_complete(self, proto: Connection, fin: bool) -> bytes | CloseReason | None:
        self.completed.append(fin)
        return None

    def frame_outbound(
        self, proto: Connection, opcode: Opcode, rsv: RsvBits, data: bytes, fin: bool
    ) -> tuple[RsvBits, bytes]:
        if opcode is Opcode.CONTINUATION:
            return rsv, xor(data)
        return RsvBits(True, rsv.rsv2, rsv.rsv3), xor(data)


class RefusingExtension(EnabledExtension):
    """Returns a close code from the hook named by ``where``."""

    name = "x-refuse"

    def __init__(self, where: str, code: CloseReason = CloseReason.POLICY_VIOLATION) -> None:
        self.where = where
        self.code = code

    def frame_inbound_header(
        self, proto: Connection, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        return self.code if self.where == "header" else RsvBits(False, False, False)

    def frame_inbound_payload_data(self, proto: Connection, data: bytes) -> bytes | CloseReason:
        return self.code if self.where == "payload" else data

    def frame_inbound_complete(self, proto: Connection, fin: bool) -> bytes | CloseReason | None:
        return self.code if self.where == "complete" else None


class TrailerExtension(EnabledExtension):
    """Appends b"!" to every completed frame, and doubles every payload byte (an inflating transform)."""

    name = "x-trailer"

    def frame_inbound_payload_data(self, proto: Connection, data: bytes) -> bytes | CloseReason:
        return bytes(byte for byte in data for _ in range(2))

    def frame_inbound_complete(self, proto: Connection, fin: bool) -> bytes | CloseReason | None:
        return b"!"


def pair_with(*extensions: type[Extension]) -> tuple[Connection, Connection]:
    return (
        Connection(CLIENT, extensions=[cls() for cls in extensions]),
        Connection(SERVER, extensions=[cls() for cls in extensions]),
    )


class TestBaseExtension:
    def test_defaults(self) -> None:
        extension = Extension()
        conn = Connection(SERVER)
        assert extension.enabled() is False
        rsv = RsvBits(True, True, True)
        assert extension.frame_inbound_header(conn, Opcode.TEXT, rsv, 3) == RsvBits(False, False, False)
        assert extension.frame_inbound_payload_data(conn, b"abc") == b"abc"
        assert extension.frame_inbound_complete(conn, True) is None
        assert extension.frame_outbound(conn, Opcode.TEXT, rsv, b"abc", True) == (rsv, b"abc")

    @pytest.mark.parametrize(("method", "args"), [("offer", ()), ("accept", ("x",)), ("finalize", ("x",))])
    def test_handshake_hooks_are_abstract(self, method: str, args: tuple[str, ...]) -> None:
        with pytest.raises(NotImplementedError):
            getattr(Extension(), method)(*args)

    def test_base_extension_claims_nothing(self) -> None:
        """Section 5.2: RSV bits need an extension that defines them; the base class defines none."""
        conn = Connection(SERVER, extensions=[Extension()])
        assert_failed(conn, feed(conn, frame_for(conn, OP_TEXT, b"x", rsv=4)), 1002)

    def test_disabled_extensions_are_ignored(self) -> None:
        """Only extensions the handshake enabled take part (hypercorn passes every configured one)."""
        disabled = XorExtension()
        disabled.enabled = lambda: False  # type: ignore[method-assign]
        conn = Connection(SERVER, extensions=[disabled])
        assert conn.extensions == []
        assert conn.send(BytesMessage(b"abc")) == b"\x82\x03abc"
        assert_failed(conn, feed(conn, frame_for(conn, OP_TEXT, xor(b"x"), rsv=4)), 1002)
        assert disabled.headers == []

    def test_hooks_with_default_behaviour_pass_data_through(self) -> None:
        client = Connection(CLIENT, extensions=[EnabledExtension()])
        server = Connection(SERVER, extensions=[EnabledExtension()])
        assert len(client.extensions) == len(server.extensions) == 1
        assert feed(server, client.send(TextMessage("plain"))) == [TextMessage("plain")]
        assert feed(client, server.send(BytesMessage(b"\x00" * 300))) == [BytesMessage(b"\x00" * 300)]


class TestXorExtension:
    @pytest.mark.parametrize("sender_role", ROLES, ids=ROLE_IDS)
    def test_outbound_sets_rsv1_and_transforms(self, sender_role: ConnectionType) -> None:
        sender = Connection(sender_role, extensions=[XorExtension()])
        first, _length, _masked, _key, payload, _ = parse_frame(sender.send(BytesMessage(b"abc")))
        assert first == 0x80 | 0x40 | OP_BINARY
        assert payload == xor(b"abc")

    def test_outbound_fragmented(self) -> None:
        server = Connection(SERVER, extensions=[XorExtension()])
        first_frame = parse_frame(server.send(TextMessage("ab", message_finished=False)))
        last_frame = parse_frame(server.send(TextMessage("cd")))
        assert first_frame[0] == 0x40 | OP_TEXT
        assert last_frame[0] == 0x80 | OP_CONT  # RSV1 only on the first frame
        assert (first_frame[4], last_frame[4]) == (xor(b"ab"), xor(b"cd"))

    def test_control_frames_not_transformed(self) -> None:
        server = Connection(SERVER, extensions=[XorExtension()])
        assert server.send(Ping(b"p")) == b"\x89\x01p"

    @pytest.mark.parametrize("sender_role", ROLES, ids=ROLE_IDS)
    def test_round_trip(self, sender_role: ConnectionType) -> None:
        client, server = pair_with(XorExtension)
        sender, receiver = (client, server) if sender_role is CLIENT else (server, client)
        data = (
            sender.send(TextMessage("héllo"))
            + sender.send(BytesMessage(b"\x01" * 70000))
            + sender.send(TextMessage("frag", message_finished=False))
            + sender.send(Ping(b"mid"))
            + sender.send(TextMessage("ment"))
        )
        assert reassemble(feed(receiver, data, chunk_size=333)) == [
            TextMessage("héllo"),
            BytesMessage(b"\x01" * 70000),
            Ping(b"mid"),
            TextMessage("fragment"),
        ]
        assert receiver.failure is None

    def test_rsv1_frame_accepted_and_hooks_called(self) -> None:
        extension = XorExtension()
        conn = Connection(CLIENT, extensions=[extension])
        data = build_frame(OP_TEXT, xor(b"hi"), rsv=4) + build_frame(OP_PING, b"p")
        assert feed(conn, data) == [TextMessage("hi"), Ping(b"p")]
        assert extension.headers == [
            (Opcode.TEXT, RsvBits(True, False, False), 2),
            (Opcode.PING, RsvBits(False, False, False), 1),
        ]
        assert extension.completed == [True]

    def test_frame_without_rsv1_is_not_transformed(self) -> None:
        conn = Connection(CLIENT, extensions=[XorExtension()])
        assert feed(conn, build_frame(OP_BINARY, b"raw")) == [BytesMessage(b"raw")]

    def test_empty_frame_with_extension(self) -> None:
        conn = Connection(CLIENT, extensions=[XorExtension()])
        assert feed(conn, build_frame(OP_BINARY, b"", rsv=4)) == [BytesMessage(b"")]

    @pytest.mark.parametrize("rsv", [2, 1, 6, 3])
    def test_unclaimed_rsv_bits_still_fail(self, rsv: int) -> None:
        """Section 5.2: bits that no negotiated extension defines fail the connection with 1002."""
        conn = Connection(SERVER, extensions=[XorExtension()])
        assert_failed(conn, feed(conn, frame_for(conn, OP_TEXT, b"x", rsv=rsv)), 1002)

    def test_unclaimed_rsv_on_control_frame(self) -> None:
        conn = Connection(SERVER, extensions=[XorExtension()])
        assert_failed(conn, feed(conn, frame_for(conn, OP_PING, b"x", rsv=2)), 1002)

    def test_framing_rules_still_apply(self) -> None:
        """Section 5.1: an extension does not lift the masking rule."""
        conn = Connection(SERVER, extensions=[XorExtension()])
        assert_failed(conn, feed(conn, build_frame(OP_TEXT, b"x", rsv=4)), 1002)

    def test_invalid_utf8_after_transform(self) -> None:
        """Section 8.1: UTF-8 is checked on the text after the extension's transform."""
        conn = Connection(CLIENT, extensions=[XorExtension()])
        assert_failed(conn, feed(conn, build_frame(OP_TEXT, xor(b"\xff"), rsv=4)), 1007)


class TestRefusals:
    @pytest.mark.parametrize("where", ["header", "payload", "complete"])
    @pytest.mark.parametrize("code", [CloseReason.POLICY_VIOLATION, CloseReason.UNSUPPORTED_DATA])
    def test_hook_returning_close_reason_fails_with_it(self, where: str, code: CloseReason) -> None:
        conn = Connection(SERVER, extensions=[RefusingExtension(where, code)])
        received = feed(conn, frame_for(conn, OP_BINARY, b"data"))
        assert_failed(conn, received, int(code))
        assert conn.send(received[-1].response())  # type: ignore[attr-defined]
        assert conn.state is ConnectionState.CLOSED

    def test_header_refusal_of_control_frame(self) -> None:
        conn = Connection(CLIENT, extensions=[RefusingExtension("header")])
        assert_failed(conn, feed(conn, build_frame(OP_PING, b"p")), 1008)

    def test_hook_exception_fails_with_1011(self) -> None:
        """A crashing extension never leaks an exception out of events()."""

        class Crashing(EnabledExtension):
            name = "x-crash"

            def frame_inbound_payload_data(self, proto: Connection, data: bytes) -> bytes | CloseReason:
                raise RuntimeError("extension bug")

        conn = Connection(CLIENT, extensions=[Crashing()])
        received = feed(conn, build_frame(OP_BINARY, b"x"))
        assert_failed(conn, received, 1011)
        assert isinstance(conn.failure.__cause__, RuntimeError)  # type: ignore[union-attr]


class TestTrailerAndSizes:
    def test_trailing_data_appended(self) -> None:
        conn = Connection(CLIENT, extensions=[TrailerExtension()])
        data = build_frame(OP_TEXT, b"ab", fin=False) + build_frame(OP_CONT, b"c")
        assert reassemble(feed(conn, data)) == [TextMessage("aabb!cc!")]

    def test_message_size_counts_transformed_data(self) -> None:
        """The message limit applies after decompression (the transform doubles the payload)."""
        conn = Connection(CLIENT, extensions=[TrailerExtension()], max_message_size=9)
        assert reassemble(feed(conn, build_frame(OP_BINARY, b"abcd"))) == [BytesMessage(b"aabbccdd!")]
        received = feed(conn, build_frame(OP_BINARY, b"abcde"))
        assert_failed(conn, received, 1009)

    def test_message_size_across_fragments_with_extension(self) -> None:
        conn = Connection(CLIENT, extensions=[TrailerExtension()], max_message_size=11)
        data = build_frame(OP_BINARY, b"ab", fin=False) + build_frame(OP_CONT, b"cde")
        received = feed(conn, data)
        assert received[0] == BytesMessage(b"aabb!", True, False)
        assert_failed(conn, received, 1009)

    def test_frame_size_limit_with_extension(self) -> None:
        conn = Connection(CLIENT, extensions=[TrailerExtension()], max_frame_size=3)
        assert_failed(conn, feed(conn, build_frame(OP_BINARY, b"abcd")), 1009)

    def test_close_with_extension(self) -> None:
        client, server = pair_with(XorExtension)
        assert feed(server, client.send(CloseConnection(1000, "bye"))) == [CloseConnection(1000, "bye")]


class WholeXorExtension(XorExtension):
    """The same transform, also offered whole-message: the connection must take these for whole messages."""

    message_rsv_bits = 0x40

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def encode_message(self, proto: Connection, opcode: Opcode, data: bytes) -> tuple[int, bytes]:
        self.calls.append("encode")
        return 0x40, xor(data)

    def decode_message(
        self, proto: Connection, opcode: Opcode, rsv: int, payload: bytes, max_size: int | None
    ) -> bytes | CloseReason:
        self.calls.append("decode")
        return xor(payload)


class TestWholeMessageMethods:
    def test_capability_is_both_methods(self) -> None:
        assert WholeXorExtension.has_message_methods()
        assert not XorExtension.has_message_methods()
        assert not Extension.has_message_methods()

        class EncodeOnly(XorExtension):
            def encode_message(self, proto: Connection, opcode: Opcode, data: bytes) -> tuple[int, bytes]:
                raise AssertionError

        assert not EncodeOnly.has_message_methods()

    @pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
    def test_defaults_run_the_frame_hooks(self, role: ConnectionType) -> None:
        extension = XorExtension()
        connection = Connection(role, [extension])
        assert extension.encode_message(connection, Opcode.TEXT, b"abc") == (0x40, xor(b"abc"))
        assert extension.decode_message(connection, Opcode.BINARY, 0x40, xor(b"hi"), None) == b"hi"
        assert extension.headers[-1] == (Opcode.BINARY, RsvBits(True, False, False), 2)
        assert extension.decode_message(connection, Opcode.BINARY, 0x40, xor(b"hi"), 1) is CloseReason.MESSAGE_TOO_BIG
        # RSV2 is not the extension's: the frame would be a violation.
        assert extension.decode_message(connection, Opcode.BINARY, 0x60, b"", None) is CloseReason.PROTOCOL_ERROR
        assert RefusingExtension("header").decode_message(connection, Opcode.TEXT, 0, b"", None) is (
            CloseReason.POLICY_VIOLATION
        )

    def test_connection_takes_whole_messages_through_them(self) -> None:
        client_extension, server_extension = WholeXorExtension(), WholeXorExtension()
        client = Connection(CLIENT, [client_extension])
        server = Connection(SERVER, [server_extension])
        wire = client.send(TextMessage("whole"))
        assert wire[0] == 0xC1 and client_extension.calls == ["encode"]
        assert feed(server, wire) == [TextMessage("whole")]
        assert server_extension.calls == ["decode"] and server_extension.headers == []
        # The same frame as the per-frame hooks write (masks aside).
        hooked_wire = Connection(CLIENT, [XorExtension()]).send(TextMessage("whole"))
        assert parse_frame(wire)[0] == parse_frame(hooked_wire)[0]
        assert parse_frame(wire)[4] == parse_frame(hooked_wire)[4]
        hooked = Connection(SERVER, [XorExtension()])
        assert feed(hooked, wire) == [TextMessage("whole")]

    def test_fragments_still_go_through_the_frame_hooks(self) -> None:
        server_extension = WholeXorExtension()
        server = Connection(SERVER, [server_extension])
        sender = Connection(CLIENT, [XorExtension()])
        wire = sender.send(TextMessage("frag", message_finished=False)) + sender.send(TextMessage("ment"))
        assert reassemble(feed(server, wire)) == [TextMessage("fragment")]
        assert server_extension.calls == []
        assert [header[0] for header in server_extension.headers] == [Opcode.TEXT, Opcode.CONTINUATION]

    def test_a_message_without_its_rsv_bits_is_delivered_as_it_came(self) -> None:
        server_extension = WholeXorExtension()
        server = Connection(SERVER, [server_extension])
        assert feed(server, Connection(CLIENT).send(BytesMessage(b"plain"))) == [BytesMessage(b"plain")]
        assert server_extension.calls == []
