"""The WebSocket extensions: their interface and the ones this library implements.

:class:`Extension` is defined in :mod:`wsproto_core.extension_interface`, which
the connection uses and which knows no particular extension; this module adds
:class:`~wsproto_core.permessage_deflate.PerMessageDeflate`, because wsproto
applications import both from ``wsproto.extensions``.
"""

from __future__ import annotations

from .extension_interface import Extension
from .permessage_deflate import PerMessageDeflate

__all__ = ["SUPPORTED_EXTENSIONS", "Extension", "PerMessageDeflate"]

#: The extensions this library implements, by token (as in wsproto).
SUPPORTED_EXTENSIONS: dict[str, type[Extension]] = {PerMessageDeflate.name: PerMessageDeflate}
