"""I/O drivers: wsproto_core on real sockets with asyncio, trio or threads.

The drivers sit on top of the sans-I/O core and never inside it. Each is a thin
loop around :class:`~wsproto_core.managed.ManagedConnection`: read, feed, write,
sleep until the next deadline. Import the one you need:
``wsproto_core.drivers.asyncio`` (standard library), ``wsproto_core.drivers.trio``
(needs trio) or ``wsproto_core.drivers.sync`` (blocking sockets and threads).
"""

from __future__ import annotations

# One list of public names, in _common (where they are defined).
from ._common import *  # noqa: F403
from ._common import __all__ as __all__
