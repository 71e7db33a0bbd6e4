"""Type aliases that wsproto applications import from ``wsproto.typing``."""

from __future__ import annotations

from .events import Headers

__all__ = ["Headers"]
