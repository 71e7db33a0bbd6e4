"""Sphinx configuration for the wsproto_core documentation (MyST Markdown, furo theme).

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``. No network is used:
intersphinx is off, and every diagram is SVG drawn by our own Python at build time: the state
machine from the code's table (``_ext/state_machine.py``, inlined in the page) and the WebSockets
guide's pictures (``_ext/guide_diagrams.py``, written to ``_static/diagrams/``).
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

import wsproto_core  # noqa: E402 (after the path set-up above)

project = "wsproto_core"
author = "the wsproto_core authors"
copyright = "the wsproto_core authors"
release = wsproto_core.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "state_machine",
    "guide_diagrams",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

nitpicky = False
html_theme = "furo"
html_title = f"wsproto_core {release}"
