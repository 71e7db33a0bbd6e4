"""A Sphinx directive that draws the state machine from ``wsproto_core.state``.

``{wsproto-state-machine}`` in a page expands, at build time, into a text diagram and two tables
generated from :data:`wsproto_core.state.TRANSITIONS` and :data:`wsproto_core.state.SENDABLE`, so the
documentation cannot drift from the code. No external tool (graphviz, mermaid) is needed.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

from wsproto_core.state import SENDABLE, TRANSITIONS, ConnectionState, SendKind, Trigger

_TRIGGER_TEXT = {
    Trigger.HANDSHAKE_ACCEPTED: "handshake accepted",
    Trigger.HANDSHAKE_REJECTED: "handshake rejected",
    Trigger.REJECTION_FINISHED: "rejection response finished",
    Trigger.SEND_CLOSE: "we send a Close",
    Trigger.RECEIVE_CLOSE: "we receive a Close",
    Trigger.REMOTE_VIOLATION: "the peer breaks the protocol",
    Trigger.TRANSPORT_CLOSED: "receive_data(None): transport closed",
}

_SEND_TEXT = {
    SendKind.DATA: "messages, Ping, Pong",
    SendKind.CLOSE: "CloseConnection",
    SendKind.REJECT_DATA: "RejectData",
}


def diagram_lines() -> list[str]:
    """One block per state: every transition that leaves it, as ``--trigger--> NEXT``."""
    width = max(len(_TRIGGER_TEXT.get(t, t.name)) for t in Trigger)
    lines: list[str] = []
    for state, transitions in TRANSITIONS.items():
        lines.append(f"[{state.name}]")
        for trigger, target in transitions.items():
            arrow = f"--{_TRIGGER_TEXT.get(trigger, trigger.name)}".ljust(width + 3, "-") + "-->"
            loop = "  (stays)" if target is state else ""
            lines.append(f"    {arrow} [{target.name}]{loop}")
        lines.append("")
    return lines[:-1]


def transition_rows() -> list[tuple[str, str, str]]:
    """``(state, trigger, next state)`` for every entry of the table, in its order."""
    return [
        (state.name, trigger.name, target.name)
        for state, transitions in TRANSITIONS.items()
        for trigger, target in transitions.items()
    ]


def sendable_rows() -> list[tuple[str, str]]:
    """``(state, what may be sent)`` for every state."""
    rows = []
    for state in ConnectionState:
        kinds = sorted(SENDABLE[state], key=lambda kind: kind.value)
        rows.append((state.name, ", ".join(_SEND_TEXT[kind] for kind in kinds) or "nothing"))
    return rows


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    return lines


def rst_lines() -> list[str]:
    """The reStructuredText that the directive expands into."""
    lines = ["::", ""]
    lines += [f"   {line}" if line else "" for line in diagram_lines()]
    lines += ["", "Every transition (``TRANSITIONS``):", ""]
    rows = [(f"``{state}``", f"``{trigger}``", f"``{target}``") for state, trigger, target in transition_rows()]
    lines += _table(("state", "trigger", "next state"), rows)
    lines += ["", "What the application may send in each state (``SENDABLE``):", ""]
    lines += _table(("state", "may send"), [(f"``{a}``", b) for a, b in sendable_rows()])
    return lines


class StateMachineDirective(SphinxDirective):
    """``{wsproto-state-machine}``: the generated diagram and tables."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(StringList(rst_lines(), source="wsproto_core.state"), self.content_offset, container)
        return list(container.children)


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("wsproto-state-machine", StateMachineDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
