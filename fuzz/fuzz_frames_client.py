"""Fuzz target: a client-side Connection fed frames from the server, in random chunks.

Half the inputs are raw bytes, half a sequence of mostly valid frames described
field by field (see ``_common.frames_from``). Checks the invariants of
``_common.Checker``: only documented exceptions, a valid state, never OPEN after
a CloseConnection, bounded buffering and message sizes, output that re-parses.
"""

from __future__ import annotations

import sys

from _common import CLIENT, fuzz_frames, main


def test_one_input(data: bytes) -> None:
    fuzz_frames(data, CLIENT)


if __name__ == "__main__":
    main(test_one_input)
    sys.exit(0)
