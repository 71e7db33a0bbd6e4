"""Fuzz target: a server-side Connection fed frames from the client, in random chunks.

Half the inputs are raw bytes, half a sequence of mostly valid frames described
field by field (see ``_common.frames_from``). Checks the invariants of
``_common.Checker``: only documented exceptions, a valid state, never OPEN after
a CloseConnection, bounded buffering and message sizes, output that re-parses.
"""

from __future__ import annotations

import sys

from _common import SERVER, Connection, Provider, frames_from, limits, main, run_connection


def test_one_input(data: bytes) -> None:
    provider = Provider(data)
    mode = provider.byte()
    conn = Connection(SERVER, **limits(provider))
    stream = frames_from(provider, masked=True) if mode & 1 else provider.rest()
    # The chunking and the sends take their choices from the frame bytes again,
    # so that raw inputs stay raw (a second provider over the same input).
    run_connection(Provider(data[::-1]), conn, stream, end=bool(mode & 2))


if __name__ == "__main__":
    main(test_one_input)
    sys.exit(0)
