"""Run programs written for wsproto on wsproto_core, unchanged.

Call :func:`install` before the program (or the framework it uses: uvicorn,
hypercorn, trio-websocket, httpx-ws) imports ``wsproto``::

    import wsproto_core.compat
    wsproto_core.compat.install()

    import uvicorn  # its "--ws wsproto" protocol now runs on wsproto_core

From then on ``import wsproto`` and its submodules resolve to wsproto_core's
modules, which carry the same names. Two behaviours change to match wsproto:
sending close code 1006 or 1015 sends 1000 instead of raising
``LocalProtocolError`` (trio-websocket, for one, "sends" 1006 to mark a
connection whose transport died), and a client takes an interim 1xx response
other than 101 as a rejection instead of waiting for the final response. Every
other difference is documented in ``docs/reference/differences.md``.
"""

from __future__ import annotations

import importlib
import sys
import types

from .connection import Connection
from .handshake import H11Handshake

__all__ = ["WSPROTO_MODULES", "install", "uninstall"]

#: The wsproto modules that applications import, and wsproto_core's modules
#: that stand in for them.
WSPROTO_MODULES = {
    "wsproto": "wsproto_core",
    "wsproto.connection": "wsproto_core.connection",
    "wsproto.events": "wsproto_core.events",
    "wsproto.extensions": "wsproto_core.extensions",
    "wsproto.frame_protocol": "wsproto_core.frame_protocol",
    "wsproto.handshake": "wsproto_core.handshake",
    "wsproto.typing": "wsproto_core.typing",
    "wsproto.utilities": "wsproto_core.utilities",
}

_displaced: dict[str, types.ModuleType] = {}


def install() -> None:
    """Make ``import wsproto`` (and its submodules) load wsproto_core.

    Safe to call more than once. Modules that already imported the real
    wsproto keep their references to it, so call this first.
    """
    for alias, target in WSPROTO_MODULES.items():
        module = importlib.import_module(target)
        previous = sys.modules.get(alias)
        if previous is not None and previous is not module and alias not in _displaced:
            _displaced[alias] = previous
        sys.modules[alias] = module
    Connection.wsproto_close_codes = True
    H11Handshake.wsproto_interim_responses = True


def uninstall() -> None:
    """Undo :func:`install`: restore whatever ``wsproto`` modules it displaced."""
    for alias in WSPROTO_MODULES:
        sys.modules.pop(alias, None)
    sys.modules.update(_displaced)
    _displaced.clear()
    Connection.wsproto_close_codes = False
    H11Handshake.wsproto_interim_responses = False
