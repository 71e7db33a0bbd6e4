"""Just enough SVG writing for the documentation's diagrams, with no dependency and no external tool.

The diagrams are drawn by our own Python (``state_machine.py``, ``guide_diagrams.py``) so that the
documentation builds offline and the pictures are computed from the same data as the text: the
state table, the frame header's bit offsets, the masking function. Text widths are estimated from
character counts, generously, since no font metrics are available without a renderer.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape, quoteattr

#: Average advance of a character, in font sizes. Sans-serif fonts average 0.45 to 0.52 on lowercase
#: text (DejaVu Sans, the widest common one, is near the top); the margin keeps labels inside their
#: boxes whichever font the browser picks.
SANS_ADVANCE = 0.56
MONO_ADVANCE = 0.62


def text_width(text: str, size: float, *, mono: bool = False) -> float:
    """An upper estimate of the rendered width of ``text`` at ``size`` pixels."""
    return len(text) * size * (MONO_ADVANCE if mono else SANS_ADVANCE)


def number(value: float) -> str:
    """A coordinate with at most one decimal, so that the files stay short and stable."""
    rounded = round(value, 1)
    return str(int(rounded)) if rounded == int(rounded) else str(rounded)


def attributes(**values: object) -> str:
    """``key="value"`` pairs; ``class_`` becomes ``class``, other underscores become dashes."""
    parts = []
    for key, value in values.items():
        if value is None:
            continue
        name = "class" if key == "class_" else key.rstrip("_").replace("_", "-")
        text = number(value) if isinstance(value, float | int) and not isinstance(value, bool) else str(value)
        parts.append(f"{name}={quoteattr(text)}")
    return " ".join(parts)


def element(tag: str, content: str | None = None, **values: object) -> str:
    """One element; ``content`` is escaped text (pass markup through :func:`group` instead)."""
    attrs = attributes(**values)
    opening = f"<{tag} {attrs}" if attrs else f"<{tag}"
    if content is None:
        return opening + "/>"
    return f"{opening}>{escape(content)}</{tag}>"


def group(children: list[str], **values: object) -> str:
    """A ``<g>`` around already-rendered children."""
    attrs = attributes(**values)
    return (f"<g {attrs}>" if attrs else "<g>") + "".join(children) + "</g>"


def arrowhead(tip_x: float, tip_y: float, from_x: float, from_y: float, size: float = 8.0, **values: object) -> str:
    """A filled triangle whose tip is at ``tip``, pointing away from ``from``."""
    angle = math.atan2(tip_y - from_y, tip_x - from_x)
    spread = math.radians(24)
    points = [(tip_x, tip_y)]
    for side in (-1, 1):
        points.append((tip_x - size * math.cos(angle + side * spread), tip_y - size * math.sin(angle + side * spread)))
    return element("polygon", points=" ".join(f"{number(x)},{number(y)}" for x, y in points), **values)


def arrow(x1: float, y1: float, x2: float, y2: float, *, line_class: str, head_class: str, dashed: bool = False) -> str:
    """A straight arrow from ``(x1, y1)`` to ``(x2, y2)``."""
    # The line stops short of the tip so that its square end does not poke through the head.
    length = math.hypot(x2 - x1, y2 - y1) or 1.0
    shorten = min(6.0, length / 2)
    end_x, end_y = x2 - (x2 - x1) * shorten / length, y2 - (y2 - y1) * shorten / length
    dash = "5 4" if dashed else None
    line = element("line", x1=x1, y1=y1, x2=end_x, y2=end_y, class_=line_class, stroke_dasharray=dash)
    return line + arrowhead(x2, y2, x1, y1, class_=head_class)


def document(
    width: float, height: float, title: str, description: str, body: list[str], *, style: str, id_prefix: str = "svg"
) -> str:
    """An SVG document with an accessible title and description.

    ``id_prefix`` keeps the ids unique when several diagrams are inlined in one HTML page.
    """
    header = (
        '<svg xmlns="http://www.w3.org/2000/svg" '
        + attributes(
            viewBox=f"0 0 {number(width)} {number(height)}",
            width=width,
            height=height,
            role="img",
            aria_labelledby=f"{id_prefix}-title {id_prefix}-desc",
        )
        + ">"
    )
    return "\n".join(
        [
            header,
            element("title", title, id=f"{id_prefix}-title"),
            element("desc", description, id=f"{id_prefix}-desc"),
            f"<style>{style}</style>",
            *body,
            "</svg>",
            "",
        ]
    )
