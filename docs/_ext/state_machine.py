"""A Sphinx directive that draws the state machine from ``wsproto_core.state``.

``{wsproto-state-machine}`` in a page expands, at build time, into an SVG diagram (inlined in HTML
output; a text diagram in other formats) and two tables, all generated from
:data:`wsproto_core.state.TRANSITIONS` and :data:`wsproto_core.state.SENDABLE` by
``state_diagram.py``, so the documentation cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.util.docutils import SphinxDirective
from state_diagram import diagram_lines, sendable_rows, state_svg, transition_rows

# --- The directive --------------------------------------------------------------------------------
#
# The directive builds docutils nodes itself rather than parsing generated markup: the page is
# MyST Markdown, so nested markup would be read as Markdown and reST tables would come out as text.


def _table_node(header: tuple[str, ...], rows: list[tuple[str, ...]], code_columns: set[int]) -> nodes.table:
    """A table node; cells in ``code_columns`` are set as inline code."""
    table = nodes.table()
    table_group = nodes.tgroup(cols=len(header))
    table += table_group
    for _ in header:
        table_group += nodes.colspec(colwidth=1)

    def row_node(cells: tuple[str, ...], code: set[int]) -> nodes.row:
        row = nodes.row()
        for index, cell in enumerate(cells):
            paragraph = nodes.paragraph()
            paragraph += nodes.literal(cell, cell) if index in code else nodes.Text(cell)
            row += nodes.entry("", paragraph)
        return row

    head = nodes.thead()
    head += row_node(header, set())
    body = nodes.tbody()
    for cells in rows:
        body += row_node(cells, code_columns)
    table_group += head
    table_group += body
    return table


def _intro(before: str, code: str) -> nodes.paragraph:
    paragraph = nodes.paragraph()
    paragraph += nodes.Text(before + " (")
    paragraph += nodes.literal(code, code)
    paragraph += nodes.Text("):")
    return paragraph


def content_nodes() -> list[nodes.Node]:
    """Everything the directive expands into: the figure, its text fallback, and the two tables."""
    figure = (
        '<figure class="wsproto-diagram">'
        + state_svg()
        + "<figcaption>Generated from <code>wsproto_core.state.TRANSITIONS</code> when the documentation"
        " was built. Hover over an arrow to see its table entries.</figcaption></figure>"
    )
    # Builders that cannot show inline SVG (LaTeX, text, man) get the text diagram instead.
    fallback = addnodes.only(expr="not html")
    text = "\n".join(diagram_lines())
    fallback += nodes.literal_block(text, text)
    return [
        nodes.raw("", figure, format="html"),
        fallback,
        _intro("Every transition", "TRANSITIONS"),
        _table_node(("state", "trigger", "next state"), transition_rows(), {0, 1, 2}),
        _intro("What the application may send in each state", "SENDABLE"),
        _table_node(("state", "may send"), sendable_rows(), {0}),
    ]


class StateMachineDirective(SphinxDirective):
    """``{wsproto-state-machine}``: the generated diagram and tables."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        return content_nodes()


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("wsproto-state-machine", StateMachineDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
