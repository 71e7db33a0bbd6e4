"""The frame-level names that wsproto applications import from ``wsproto.frame_protocol``.

The definitions live in :mod:`wsproto_core.frames`; this module only gives them
their wsproto address.
"""

from __future__ import annotations

from .frames import CloseReason, Opcode, RsvBits

__all__ = ["CloseReason", "Opcode", "RsvBits"]
