"""The documentation's diagrams (docs/_ext/): drawn from the code, well-formed, and true to the RFC.

The state diagram is checked against the state table it is drawn from, including tables other than
the library's (a picture that ignored its input would pass a test on one table only). The guide's
pictures are checked against RFC 6455's own numbers: the bit offsets of section 5.2, the masking
example of section 5.7 and the handshake example of section 1.3.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproto_core import state as state_module
from wsproto_core.frames import Opcode, build_close_payload, build_frame_header
from wsproto_core.http2 import connect_request_headers
from wsproto_core.state import ConnectionState, Trigger

DOCS = Path(__file__).resolve().parent.parent / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import guide_diagrams  # noqa: E402 (docs/_ext is not a package)
import state_diagram  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"
S = ConnectionState
T = Trigger


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def drawn_transitions(root: ET.Element) -> set[tuple[str, str, str]]:
    """``(state, trigger, next state)`` for every trigger label inside an arrow's group."""
    drawn = set()
    for arrow in root.iter(f"{SVG}g"):
        if arrow.get("class") != "sm-transition":
            continue
        for label in arrow.iter(f"{SVG}text"):
            drawn.add((arrow.get("data-from", ""), label.get("data-trigger", ""), arrow.get("data-to", "")))
    return drawn


def drawn_states(root: ET.Element) -> list[str]:
    return [text.text or "" for text in root.iter(f"{SVG}text") if text.get("class") == "sm-name"]


def boxes(root: ET.Element) -> list[tuple[float, float, float, float]]:
    """The rectangles of states and labels, as ``(left, top, right, bottom)``."""
    found = []
    for rect in root.iter(f"{SVG}rect"):
        if rect.get("class") in ("sm-state", "sm-label-box"):
            x, y = float(rect.get("x", 0)), float(rect.get("y", 0))
            found.append((x, y, x + float(rect.get("width", 0)), y + float(rect.get("height", 0))))
    return found


class TestStateDiagram:
    def test_is_well_formed_svg_with_a_size_and_a_description(self) -> None:
        root = parse(state_diagram.state_svg())
        _, _, width, height = (float(value) for value in root.get("viewBox", "").split())
        assert width > 100 and height > 100
        assert root.find(f"{SVG}title") is not None
        description = root.find(f"{SVG}desc")
        assert description is not None and "OPEN goes to LOCAL_CLOSING when we send a Close" in (description.text or "")

    def test_draws_every_state_once(self) -> None:
        assert sorted(drawn_states(parse(state_diagram.state_svg()))) == sorted(s.name for s in ConnectionState)

    def test_draws_every_transition_with_its_label(self) -> None:
        root = parse(state_diagram.state_svg())
        assert drawn_transitions(root) == set(state_diagram.transition_rows())
        shown = texts(root)
        for trigger in {trigger for row in state_module.TRANSITIONS.values() for trigger in row}:
            assert state_diagram.trigger_text(trigger) in shown

    def test_marks_the_initial_and_final_states(self) -> None:
        root = parse(state_diagram.state_svg())
        assert len([c for c in root.iter(f"{SVG}circle") if c.get("class") == "sm-start"]) == 1  # CONNECTING
        inner_border = f"{SVG}rect[@class='sm-inner']"
        finals = [g.get("data-state") for g in root.iter(f"{SVG}g") if g.find(inner_border) is not None]
        assert finals == ["CLOSED"]

    def test_follows_the_table_in_the_module(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = state_diagram.state_svg()
        # A different machine, with a cycle (OPEN -> LOCAL_CLOSING -> OPEN) that the layout must break.
        fake = {
            S.OPEN: {T.SEND_CLOSE: S.LOCAL_CLOSING, T.TRANSPORT_CLOSED: S.CLOSED},
            S.LOCAL_CLOSING: {T.RECEIVE_CLOSE: S.OPEN},
            S.CLOSED: {T.TRANSPORT_CLOSED: S.CLOSED},
        }
        monkeypatch.setattr(state_module, "TRANSITIONS", fake)
        svg = state_diagram.state_svg()
        assert svg != original
        root = parse(svg)
        assert sorted(drawn_states(root)) == ["CLOSED", "LOCAL_CLOSING", "OPEN"]
        assert drawn_transitions(root) == {
            ("OPEN", "SEND_CLOSE", "LOCAL_CLOSING"),
            ("OPEN", "TRANSPORT_CLOSED", "CLOSED"),
            ("LOCAL_CLOSING", "RECEIVE_CLOSE", "OPEN"),
            ("CLOSED", "TRANSPORT_CLOSED", "CLOSED"),
        }
        # The tables and the text fallback of the directive follow the same table.
        assert state_diagram.transition_rows() == [
            ("OPEN", "SEND_CLOSE", "LOCAL_CLOSING"),
            ("OPEN", "TRANSPORT_CLOSED", "CLOSED"),
            ("LOCAL_CLOSING", "RECEIVE_CLOSE", "OPEN"),
            ("CLOSED", "TRANSPORT_CLOSED", "CLOSED"),
        ]
        assert "CONNECTING" not in "\n".join(state_diagram.diagram_lines())

    def test_the_directive_emits_the_figure_and_real_tables(self) -> None:
        # The directive itself needs Sphinx (the "docs" extra); the drawing does not.
        state_machine = pytest.importorskip("state_machine")
        nodes = pytest.importorskip("docutils.nodes")

        produced = state_machine.content_nodes()
        raw = [node for node in produced if isinstance(node, nodes.raw)]
        assert len(raw) == 1 and "<svg" in raw[0].astext() and raw[0]["format"] == "html"
        tables = [node for node in produced if isinstance(node, nodes.table)]
        assert len(tables) == 2
        # Header plus one row per transition, and per state.
        assert len(list(tables[0].findall(nodes.row))) == 1 + len(state_diagram.transition_rows())
        assert len(list(tables[1].findall(nodes.row))) == 1 + len(ConnectionState)

    @settings(max_examples=60, deadline=None)
    @given(
        st.dictionaries(
            st.sampled_from(list(ConnectionState)),
            st.dictionaries(st.sampled_from(list(Trigger)), st.sampled_from(list(ConnectionState)), max_size=4),
            min_size=1,
        )
    )
    def test_any_table_is_drawn_completely_without_overlaps(self, table: dict[S, dict[T, S]]) -> None:
        root = parse(state_diagram.state_svg(table))
        rows = {(s.name, t.name, n.name) for s, row in table.items() for t, n in row.items()}
        assert drawn_transitions(root) == rows
        states = {source.name for source in table} | {target.name for row in table.values() for target in row.values()}
        assert sorted(drawn_states(root)) == sorted(states)
        _, _, width, height = (float(value) for value in root.get("viewBox", "").split())
        drawn = boxes(root)
        for index, (left, top, right, bottom) in enumerate(drawn):
            assert left >= 0 and right <= width and top >= 0 and bottom <= height
            for other in drawn[index + 1 :]:
                separate = right <= other[0] or other[2] <= left or bottom <= other[1] or other[3] <= top
                assert separate, f"{(left, top, right, bottom)} overlaps {other}"


# --- The guide's pictures --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(guide_diagrams.DIAGRAMS))
def test_guide_diagram_is_well_formed_and_described(name: str) -> None:
    root = parse(guide_diagrams.DIAGRAMS[name]())
    title, description = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and title.text
    assert description is not None and len(description.text or "") > 100
    # The id references of aria-labelledby resolve inside the picture.
    ids = {element.get("id") for element in root.iter()}
    assert set(root.get("aria-labelledby", "").split()) <= ids


@pytest.mark.parametrize("name", sorted(guide_diagrams.DIAGRAMS))
def test_committed_guide_diagram_is_up_to_date(name: str) -> None:
    path = guide_diagrams.DIRECTORY / f"{name}.svg"
    assert path.read_text(encoding="utf-8") == guide_diagrams.DIAGRAMS[name](), (
        f"{path} differs from what docs/_ext/guide_diagrams.py draws: run python docs/_ext/guide_diagrams.py"
    )


def test_every_guide_diagram_is_shown_with_a_text_alternative() -> None:
    shown: dict[str, str] = {}
    for page in DOCS.rglob("*.md"):
        for alt, target in re.findall(r"!\[([^\]]*)\]\(([^)]*_static/diagrams/[^)]*\.svg)\)", page.read_text("utf-8")):
            assert (page.parent / target).resolve().is_file(), f"{page}: {target} does not exist"
            shown[Path(target).stem] = alt
    assert set(shown) == set(guide_diagrams.DIAGRAMS)
    assert {path.stem for path in guide_diagrams.DIRECTORY.glob("*.svg")} == set(guide_diagrams.DIAGRAMS)
    for name, alt in shown.items():
        assert len(alt) > 150, f"the alt text of {name} is too short to stand in for the picture"


def test_write_all_writes_only_what_changed(tmp_path: Path) -> None:
    assert len(guide_diagrams.write_all(tmp_path)) == len(guide_diagrams.DIAGRAMS)
    assert guide_diagrams.write_all(tmp_path) == []
    (tmp_path / "masking.svg").write_text("stale", encoding="utf-8")
    assert guide_diagrams.write_all(tmp_path) == [tmp_path / "masking.svg"]


# RFC 6455 section 5.2, read off its figure: (field, first bit, bits), for the longest header.
RFC_FRAME_FIELDS = [
    ("FIN", 0, 1),
    ("RSV1", 1, 1),
    ("RSV2", 2, 1),
    ("RSV3", 3, 1),
    ("opcode", 4, 4),
    ("MASK", 8, 1),
    ("Payload len", 9, 7),
    ("Extended payload length", 16, 64),
    ("Masking key", 80, 32),
]


class TestFrameLayout:
    def test_fields_are_where_rfc_6455_puts_them(self) -> None:
        header_fields = [(f.name, f.start, f.bits) for f in guide_diagrams.FRAME_FIELDS if f.name != "Payload data"]
        assert header_fields == RFC_FRAME_FIELDS
        payload = guide_diagrams.FRAME_FIELDS[-1]
        assert (payload.name, payload.start) == ("Payload data", 112)  # after the 14-byte header

    def test_fields_read_back_what_the_library_writes(self) -> None:
        key = bytes.fromhex("a1b2c3d4")
        length = 70_000  # needs the 64-bit form, as drawn
        header = build_frame_header(Opcode.BINARY, length, fin=True, rsv=0x40, mask=key)
        assert len(header) * 8 == guide_diagrams.FRAME_FIELDS[-1].start
        value = int.from_bytes(header, "big")

        def read(name: str) -> int:
            field = next(f for f in guide_diagrams.FRAME_FIELDS if f.name == name)
            return (value >> (len(header) * 8 - field.start - field.bits)) & ((1 << field.bits) - 1)

        assert [read(name) for name in ("FIN", "RSV1", "RSV2", "RSV3")] == [1, 1, 0, 0]
        assert read("opcode") == Opcode.BINARY
        assert read("MASK") == 1
        assert read("Payload len") == 127
        assert read("Extended payload length") == length
        assert read("Masking key") == int.from_bytes(key, "big")

    def test_shorter_forms_move_the_key_up_as_the_notes_say(self) -> None:
        key = b"\x01\x02\x03\x04"
        assert build_frame_header(Opcode.TEXT, 5, mask=key)[2:6] == key  # bit 16
        assert build_frame_header(Opcode.TEXT, 300, mask=key)[4:8] == key  # bit 32
        notes = " ".join(texts(parse(guide_diagrams.frame_layout())))
        assert "(at bit 16 or 32)" in notes and "2 to 14 bytes" in notes

    def test_cells_are_drawn_at_their_bits(self) -> None:
        root = parse(guide_diagrams.frame_layout())
        cells: dict[str, list[tuple[float, float]]] = {}
        for rect in root.iter(f"{SVG}rect"):
            if rect.get("data-field"):
                cells.setdefault(rect.get("data-field", ""), []).append(
                    (float(rect.get("x", 0)), float(rect.get("y", 0)))
                )
        cell = 24.0
        for field in guide_diagrams.FRAME_FIELDS:
            row, column = divmod(field.start, 32)
            x, y = cells[field.name][0]
            assert x == pytest.approx(92.0 + column * cell), field.name
            assert y == pytest.approx(70.0 + row * 46.0), field.name
            drawn_bits = sum(
                float(r.get("width", 0)) / cell for r in root.iter(f"{SVG}rect") if r.get("data-field") == field.name
            )
            assert drawn_bits == pytest.approx(field.bits), field.name


def test_masking_picture_shows_rfc_6455_section_5_7_example() -> None:
    shown = texts(parse(guide_diagrams.masking()))
    # Section 5.7: "A single-frame masked text message" contains "Hello".
    assert [text for text in shown if len(text) == 2][-5:] == ["7f", "9f", "4d", "51", "58"]
    assert any("81 85 37 fa 21 3d 7f 9f 4d 51 58" in text for text in shown)


def test_opening_handshake_shows_rfc_6455_section_1_3_accept_value() -> None:
    shown = texts(parse(guide_diagrams.opening_handshake()))
    assert "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" in shown
    assert "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in shown


def test_closing_handshake_shows_the_close_payload_and_states() -> None:
    shown = texts(parse(guide_diagrams.closing_handshake()))
    assert f"payload: {build_close_payload(1000, 'bye').hex(' ')}" in shown
    # Each side's states in the order the state table takes them.
    assert [t for t in shown if t in {"OPEN", "LOCAL_CLOSING", "REMOTE_CLOSING", "CLOSED"}] == [
        "OPEN",
        "OPEN",
        "LOCAL_CLOSING",
        "REMOTE_CLOSING",
        "CLOSED",
        "CLOSED",
    ]
    assert state_module.next_state(S.OPEN, T.SEND_CLOSE) is S.LOCAL_CLOSING
    assert state_module.next_state(S.OPEN, T.RECEIVE_CLOSE) is S.REMOTE_CLOSING
    assert state_module.next_state(S.LOCAL_CLOSING, T.RECEIVE_CLOSE) is S.CLOSED
    assert state_module.next_state(S.REMOTE_CLOSING, T.SEND_CLOSE) is S.CLOSED


def test_http2_picture_shows_the_header_list_the_library_sends() -> None:
    """RFC 8441 sections 3 and 4: the setting's identifier and the extended CONNECT, as the library builds them."""
    shown = texts(parse(guide_diagrams.http2_streams()))
    sent = [
        f"{name.decode()}: {value.decode()}" for name, value in connect_request_headers(guide_diagrams.HTTP2_REQUEST)
    ]
    start = shown.index(sent[0])
    assert shown[start : start + len(sent)] == sent
    assert sent[:2] == [":method: CONNECT", ":protocol: websocket"]
    assert "ENABLE_CONNECT_PROTOCOL (0x8) = 1" in shown
    # Client-initiated streams have odd identifiers (RFC 9113 section 5.1.1); stream 0 is the connection's.
    streams = [int(text.split()[1]) for text in shown if re.fullmatch(r"stream \d+", text)]
    assert streams == [0, 1, 3, 5]
