"""``python -m wsproto_core``: see :mod:`wsproto_core.cli` (``--help`` lists the commands)."""

from __future__ import annotations

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
