"""The state machine of ``wsproto_core.state``, drawn: a text diagram, table rows, and an SVG picture.

Everything here is computed from :data:`wsproto_core.state.TRANSITIONS` and
:data:`wsproto_core.state.SENDABLE`, read from the module when called rather than bound at import,
so that a test can swap in another table and see the picture change. No external tool (graphviz,
mermaid) is needed: the layout below is a small layered ("Sugiyama") layout written for graphs of
this size. ``state_machine.py`` puts the result in the documentation; this module has no Sphinx
dependency, so the tests can draw without it.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from svgdraw import arrowhead, document, element, group, number, text_width

from wsproto_core import state as state_module
from wsproto_core.state import ConnectionState, SendKind, Trigger

Table = Mapping[Any, Mapping[Any, Any]]

# Short, so that the diagram fits the text column at a readable size.
_TRIGGER_TEXT = {
    Trigger.HANDSHAKE_ACCEPTED: "handshake accepted",
    Trigger.HANDSHAKE_REJECTED: "handshake rejected",
    Trigger.REJECTION_FINISHED: "rejection finished",
    Trigger.SEND_CLOSE: "we send a Close",
    Trigger.RECEIVE_CLOSE: "we receive a Close",
    Trigger.REMOTE_VIOLATION: "peer breaks the protocol",
    Trigger.TRANSPORT_CLOSED: "transport closed",
}

_SEND_TEXT = {
    SendKind.DATA: "messages, Ping, Pong",
    SendKind.CLOSE: "CloseConnection",
    SendKind.REQUEST: "Request (client)",
    SendKind.ACCEPT: "AcceptConnection (server)",
    SendKind.REJECT: "RejectConnection (server)",
    SendKind.REJECT_DATA: "RejectData",
}


def trigger_text(trigger: Enum) -> str:
    """How a trigger is worded in the diagrams (its enum name when it has no wording)."""
    return _TRIGGER_TEXT.get(trigger, trigger.name)  # type: ignore[call-overload]


def _table(transitions: Table | None) -> Table:
    return state_module.TRANSITIONS if transitions is None else transitions


def diagram_lines(transitions: Table | None = None) -> list[str]:
    """One block per state: every transition that leaves it, as ``--trigger--> NEXT``."""
    table = _table(transitions)
    triggers = [trigger for row in table.values() for trigger in row]
    width = max((len(trigger_text(t)) for t in triggers), default=0)
    lines: list[str] = []
    for state, row in table.items():
        lines.append(f"[{state.name}]")
        for trigger, target in row.items():
            arrow = f"--{trigger_text(trigger)}".ljust(width + 3, "-") + "-->"
            loop = "  (stays)" if target is state else ""
            lines.append(f"    {arrow} [{target.name}]{loop}")
        lines.append("")
    return lines[:-1]


def transition_rows(transitions: Table | None = None) -> list[tuple[str, str, str]]:
    """``(state, trigger, next state)`` for every entry of the table, in its order."""
    return [
        (state.name, trigger.name, target.name)
        for state, row in _table(transitions).items()
        for trigger, target in row.items()
    ]


def sendable_rows() -> list[tuple[str, str]]:
    """``(state, what may be sent)`` for every state."""
    rows = []
    for state in ConnectionState:
        kinds = sorted(state_module.SENDABLE[state], key=lambda kind: kind.value)
        rows.append((state.name, ", ".join(_SEND_TEXT[kind] for kind in kinds) or "nothing"))
    return rows


# --- The SVG layout -------------------------------------------------------------------------------
#
# 1. States get layers by longest path from the states nothing leads to (edges that close a cycle
#    are reversed for this step only), so every arrow points down unless the table has a cycle.
# 2. Every edge (all triggers between the same two states, merged) gets one node per layer it
#    crosses, on the half-layers between state layers; the first of them carries the edge's label.
#    Labels are therefore laid out like states and cannot overlap each other or a state.
# 3. Within a layer, nodes are ordered by the barycentre of their neighbours, a few sweeps down and
#    up, which removes the crossings this graph could have.
# 4. Horizontal positions move each node towards its neighbours' average, keeping the order and
#    a minimum gap; self-loops reserve room on their state's right.

_STATE_FONT = 13.0
_LABEL_FONT = 12.0
_LINE_HEIGHT = 15.0
_STATE_HEIGHT = 34.0
_GAP = 22.0
_LAYER_GAP = 26.0
_MARGIN = 16.0
_LOOP_REACH = 26.0


@dataclass(eq=False)
class _Node:
    key: Hashable
    rank: int
    width: float
    height: float
    lines: list[tuple[str, str]] = field(default_factory=list)  # label nodes: (trigger name, text)
    right_extra: float = 0.0  # room for a self-loop and its label
    left_extra: float = 0.0  # room for the start marker of an initial state
    x: float = 0.0
    y: float = 0.0
    order: float = 0.0
    up: list[_Node] = field(default_factory=list)
    down: list[_Node] = field(default_factory=list)

    @property
    def is_state(self) -> bool:
        return self.rank % 2 == 0


@dataclass(eq=False)
class _Edge:
    source: Any
    target: Any
    triggers: list[Any]
    reversed: bool
    chain: list[_Node] = field(default_factory=list)  # in layer order, top to bottom


def _states_in_order(table: Table) -> list[Any]:
    states: list[Any] = []
    for source, row in table.items():
        for state in (source, *row.values()):
            if state not in states:
                states.append(state)
    return states


def _merged_edges(table: Table) -> tuple[dict[tuple[Any, Any], list[Any]], dict[Any, list[Any]]]:
    edges: dict[tuple[Any, Any], list[Any]] = {}
    loops: dict[Any, list[Any]] = {}
    for source, row in table.items():
        for trigger, target in row.items():
            if target is source:
                loops.setdefault(source, []).append(trigger)
            else:
                edges.setdefault((source, target), []).append(trigger)
    return edges, loops


def _back_edges(states: list[Any], pairs: list[tuple[Any, Any]]) -> set[tuple[Any, Any]]:
    """The edges that close a cycle, found by a depth-first walk in table order."""
    successors: dict[Any, list[Any]] = {state: [] for state in states}
    for source, target in pairs:
        successors[source].append(target)
    back: set[tuple[Any, Any]] = set()
    visited: set[Any] = set()
    on_path: set[Any] = set()

    def visit(state: Any) -> None:
        visited.add(state)
        on_path.add(state)
        for target in successors[state]:
            if target in on_path:
                back.add((state, target))
            elif target not in visited:
                visit(target)
        on_path.discard(state)

    for state in states:
        if state not in visited:
            visit(state)
    return back


def _layers(states: list[Any], pairs: list[tuple[Any, Any]]) -> dict[Any, int]:
    """Longest-path layering of an acyclic edge list."""
    layer = dict.fromkeys(states, 0)
    # At most len(states) rounds of relaxation settle the longest paths of a DAG.
    for _ in states:
        changed = False
        for source, target in pairs:
            if layer[target] < layer[source] + 1:
                layer[target] = layer[source] + 1
                changed = True
        if not changed:
            break
    return layer


def _order_layers(ranks: list[list[_Node]]) -> None:
    for nodes_in_rank in ranks:
        for position, node in enumerate(nodes_in_rank):
            node.order = position
    for sweep in range(8):
        downwards = sweep % 2 == 0
        sequence = ranks[1:] if downwards else ranks[-2::-1]
        for nodes_in_rank in sequence:
            for node in nodes_in_rank:
                neighbours = node.up if downwards else node.down
                if neighbours:
                    node.order = sum(n.order for n in neighbours) / len(neighbours)
            # A stable sort keeps the table's order between nodes with equal barycentres.
            nodes_in_rank.sort(key=lambda n: n.order)
            for position, node in enumerate(nodes_in_rank):
                node.order = position


def _separation(left: _Node, right: _Node) -> float:
    return left.width / 2 + left.right_extra + _GAP + right.left_extra + right.width / 2


def _place_rank(nodes_in_rank: list[_Node], desired: list[float]) -> None:
    """Positions as close to ``desired`` as the order and gaps allow: the mean of packing each way."""
    count = len(nodes_in_rank)
    pushed_right = list(desired)
    for i in range(1, count):
        pushed_right[i] = max(desired[i], pushed_right[i - 1] + _separation(nodes_in_rank[i - 1], nodes_in_rank[i]))
    pushed_left = list(desired)
    for i in range(count - 2, -1, -1):
        pushed_left[i] = min(desired[i], pushed_left[i + 1] - _separation(nodes_in_rank[i], nodes_in_rank[i + 1]))
    for node, a, b in zip(nodes_in_rank, pushed_right, pushed_left, strict=True):
        node.x = (a + b) / 2


def _position(ranks: list[list[_Node]]) -> None:
    for nodes_in_rank in ranks:
        _place_rank(nodes_in_rank, [0.0] * len(nodes_in_rank))
    # Alternate sweeps pull each layer towards the one above, then below; the last ones use both
    # sides at once, which straightens the chains of long edges.
    for sweep in range(16):
        downwards = sweep % 2 == 0
        sequence = ranks[1:] if downwards else ranks[-2::-1]
        for nodes_in_rank in sequence:
            desired = []
            for node in nodes_in_rank:
                if sweep >= 10:
                    neighbours = node.up + node.down
                else:
                    neighbours = (node.up if downwards else node.down) or (node.down if downwards else node.up)
                desired.append(sum(n.x for n in neighbours) / len(neighbours) if neighbours else node.x)
            _place_rank(nodes_in_rank, desired)


def _straighten_outer_edges(edges: list[_Edge], ranks: list[list[_Node]]) -> None:
    """Line up the bends of a long edge that runs along the outside of the drawing.

    A bend that is the last (or first) node of its layer can move right (or left) without
    touching anything, so the edge becomes one bulge instead of a wiggle.
    """
    for edge in edges:
        bends = [n for n in edge.chain[1:-1] if not n.lines]
        if all(n is ranks[n.rank][-1] for n in bends) and bends:
            for node in bends:
                node.x = max(b.x for b in bends)
        elif all(n is ranks[n.rank][0] for n in bends) and bends:
            for node in bends:
                node.x = min(b.x for b in bends)


def _extent(ranks: list[list[_Node]]) -> tuple[float, float]:
    """Move the drawing to the margins, give each layer its height, and return the size."""
    left = min(n.x - n.width / 2 - n.left_extra for rank in ranks for n in rank)
    right = max(n.x + n.width / 2 + n.right_extra for rank in ranks for n in rank)
    y = _MARGIN
    for nodes_in_rank in ranks:
        height = max((n.height for n in nodes_in_rank), default=0.0)
        for node in nodes_in_rank:
            node.x += _MARGIN - left
            node.y = y + height / 2
        y += height + (_LAYER_GAP if nodes_in_rank else 0.0)
    return right - left + 2 * _MARGIN, y - _LAYER_GAP + _MARGIN


def _edge_path(points: list[tuple[float, float]]) -> str:
    """Cubic segments that leave and enter each point vertically, so lines flow through labels."""
    commands = [f"M{number(points[0][0])},{number(points[0][1])}"]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        middle = (y0 + y1) / 2
        commands.append(f"C{number(x0)},{number(middle)} {number(x1)},{number(middle)} {number(x1)},{number(y1)}")
    return " ".join(commands)


def state_svg(transitions: Table | None = None) -> str:
    """The state diagram of ``transitions`` (by default the library's table) as an inline SVG element.

    It draws in ``currentColor`` with translucent fills, so it follows the page's text colour in
    light and dark themes; label backgrounds use furo's background colour variable.
    """
    table = _table(transitions)
    states = _states_in_order(table)
    if not states:
        return document(200, 40, "An empty state table", "No states.", [], style="", id_prefix="wsproto-states")
    merged, loops = _merged_edges(table)
    back = _back_edges(states, list(merged))
    edges = [_Edge(source, target, triggers, (source, target) in back) for (source, target), triggers in merged.items()]
    layer = _layers(states, [(e.target, e.source) if e.reversed else (e.source, e.target) for e in edges])

    # States that no other state leads to are where a connection starts.
    entered = {target for source, row in table.items() for target in row.values() if target is not source}
    initial = [state for state in states if state not in entered]
    state_nodes: dict[Any, _Node] = {}
    for state in states:
        # Wide enough for the name, and for one arrow every 16 pixels on its busiest side.
        degree = max(
            sum(1 for e in edges if e.source is state or e.target is state if (e.source is state) != e.reversed),
            sum(1 for e in edges if e.source is state or e.target is state if (e.target is state) != e.reversed),
        )
        box_width = max(text_width(state.name, _STATE_FONT, mono=True) + 28, 16.0 * degree + 24)
        node = _Node(state, 2 * layer[state], box_width, _STATE_HEIGHT)
        if state in loops:
            node.right_extra = _LOOP_REACH + 8 + max(text_width(trigger_text(t), _LABEL_FONT) for t in loops[state])
        if state in initial:
            node.left_extra = 30.0
        state_nodes[state] = node
    ranks: list[list[_Node]] = [[] for _ in range(2 * max(layer.values(), default=0) + 1)]
    for node in state_nodes.values():
        ranks[node.rank].append(node)

    for edge in edges:
        top, bottom = (edge.target, edge.source) if edge.reversed else (edge.source, edge.target)
        previous = state_nodes[top]
        edge.chain.append(previous)
        for rank in range(state_nodes[top].rank + 1, state_nodes[bottom].rank):
            if rank == state_nodes[top].rank + 1:
                lines = [(t.name, trigger_text(t)) for t in edge.triggers]
                width = max(text_width(text, _LABEL_FONT) for _, text in lines) + 12
                node = _Node(edge, rank, width, len(lines) * _LINE_HEIGHT + 8, lines)
            else:
                node = _Node(edge, rank, 8.0, 8.0)
            ranks[rank].append(node)
            edge.chain.append(node)
        edge.chain.append(state_nodes[bottom])
        for upper, lower in zip(edge.chain, edge.chain[1:], strict=False):
            upper.down.append(lower)
            lower.up.append(upper)

    _order_layers(ranks)
    _position(ranks)
    _straighten_outer_edges(edges, ranks)
    width, height = _extent(ranks)

    # Where each edge meets its states: spread along the bottom and top sides, in the order of
    # the neighbours, so that parallel edges do not start from one point.
    ports: dict[tuple[int, int], float] = {}
    for node in state_nodes.values():
        for side in ("down", "up"):
            attached = sorted(
                (e for e in edges if node in e.chain and _neighbour(e, node, side) is not None),
                key=lambda e, n=node, s=side: _neighbour(e, n, s).x,  # type: ignore[union-attr]
            )
            for index, edge in enumerate(attached):
                share = node.width - 24
                offset = share * ((index + 1) / (len(attached) + 1) - 0.5)
                ports[(id(edge), id(node) * (1 if side == "down" else -1))] = node.x + offset

    body: list[str] = []
    for edge in edges:
        points = []
        for index, node in enumerate(edge.chain):
            if index == 0:
                points.append((ports[(id(edge), id(node))], node.y + node.height / 2))
            elif index == len(edge.chain) - 1:
                points.append((ports[(id(edge), -id(node))], node.y - node.height / 2))
            else:
                points.append((node.x, node.y))
        if edge.reversed:
            points.reverse()
        tip, before = points[-1], points[-2]
        # The head points along the final cubic's end tangent, which is vertical.
        head = arrowhead(tip[0], tip[1], tip[0], before[1], class_="sm-head")
        children = [
            element("title", " | ".join(f"{edge.source.name} --{t.name}--> {edge.target.name}" for t in edge.triggers)),
            element("path", d=_edge_path(points), class_="sm-edge"),
            head,
        ]
        label = next((n for n in edge.chain if n.lines), None)
        if label is not None:
            children.append(_label(label.x, label.y, label.width, label.lines))
        body.append(group(children, class_="sm-transition", data_from=edge.source.name, data_to=edge.target.name))

    for state, triggers in loops.items():
        node = state_nodes[state]
        right = node.x + node.width / 2
        top, bottom = node.y - 7, node.y + 7
        loop_path = (
            f"M{number(right)},{number(top)} C{number(right + _LOOP_REACH)},{number(top - 16)} "
            f"{number(right + _LOOP_REACH)},{number(bottom + 16)} {number(right + 5)},{number(bottom + 2)}"
        )
        lines = [(t.name, trigger_text(t)) for t in triggers]
        label_width = max(text_width(text, _LABEL_FONT) for _, text in lines)
        children = [
            element("title", " | ".join(f"{state.name} --{t.name}--> {state.name}" for t in triggers)),
            element("path", d=loop_path, class_="sm-edge"),
            arrowhead(right, bottom, right + 8, bottom + 4, class_="sm-head"),
            _label(right + _LOOP_REACH + 6 + label_width / 2, node.y, label_width + 4, lines),
        ]
        body.append(group(children, class_="sm-transition", data_from=state.name, data_to=state.name))

    for state, node in state_nodes.items():
        left, top = node.x - node.width / 2, node.y - node.height / 2
        children = [element("rect", x=left, y=top, width=node.width, height=node.height, rx=9, class_="sm-state")]
        if not any(target is not state for target in table.get(state, {}).values()):
            # A state with no way out gets the double border of a final state.
            inner = {"x": left + 3, "y": top + 3, "width": node.width - 6, "height": node.height - 6}
            children.append(element("rect", rx=7, class_="sm-inner", **inner))
        children.append(element("text", state.name, x=node.x, y=node.y + 4.5, class_="sm-name"))
        body.append(group(children, class_="sm-node", data_state=state.name))

    for state in initial:
        node = state_nodes[state]
        left = node.x - node.width / 2
        body.append(element("circle", cx=left - 22, cy=node.y, r=5, class_="sm-start"))
        body.append(element("line", x1=left - 17, y1=node.y, x2=left - 6, y2=node.y, class_="sm-edge"))
        body.append(arrowhead(left, node.y, left - 10, node.y, class_="sm-head"))

    description = "; ".join(
        f"{state.name} goes to {target.name} when {trigger_text(trigger)}"
        for state, row in table.items()
        for trigger, target in row.items()
    )
    style = (
        ".sm-state{fill:currentColor;fill-opacity:.07;stroke:currentColor;stroke-width:1.5}"
        ".sm-inner{fill:none;stroke:currentColor;stroke-width:1}"
        ".sm-name{fill:currentColor;font:600 13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;"
        "text-anchor:middle}"
        ".sm-edge{fill:none;stroke:currentColor;stroke-opacity:.75;stroke-width:1.3}"
        ".sm-head,.sm-start{fill:currentColor}"
        ".sm-label-box{fill:var(--color-background-primary,#fff);stroke:currentColor;stroke-opacity:.25}"
        ".sm-label{fill:currentColor;font:12px system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}"
    )
    svg = document(
        width,
        height,
        "The connection state machine of wsproto_core",
        description,
        body,
        style=style,
        id_prefix="wsproto-states",
    )
    # Inline in a page, the picture must shrink with the text column instead of overflowing it.
    return svg.replace("<svg ", '<svg class="wsproto-state-diagram" style="max-width:100%;height:auto" ', 1)


def _neighbour(edge: _Edge, node: _Node, side: str) -> _Node | None:
    index = edge.chain.index(node)
    if side == "down":
        return edge.chain[index + 1] if index + 1 < len(edge.chain) else None
    return edge.chain[index - 1] if index > 0 else None


def _label(center_x: float, center_y: float, width: float, lines: list[tuple[str, str]]) -> str:
    height = len(lines) * _LINE_HEIGHT + 6
    top = center_y - height / 2
    parts = [element("rect", x=center_x - width / 2, y=top, width=width, height=height, rx=4, class_="sm-label-box")]
    for index, (name, text) in enumerate(lines):
        parts.append(
            element(
                "text",
                text,
                x=center_x - width / 2 + 6,
                y=top + 3 + (index + 0.8) * _LINE_HEIGHT,
                class_="sm-label",
                data_trigger=name,
            )
        )
    return "".join(parts)
