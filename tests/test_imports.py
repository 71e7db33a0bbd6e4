"""Sans-I/O: importing wsproto_core loads no I/O, concurrency or TLS module.

Checked in a fresh, isolated interpreter (``python -I``): the modules present
before the import are recorded, and only modules newly loaded by the import
count (some builds preload ``threading``, for one). The I/O layers that sit on
the core (``wsproto_core.drivers``, ``wsproto_core.cli`` and ``__main__``)
are expected to import asyncio and sockets, so they are left out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import wsproto_core

FORBIDDEN = ["asyncio", "trio", "socket", "threading", "ssl", "selectors", "anyio", "select", "_socket", "_ssl"]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    before = set(sys.modules)
    import importlib, pkgutil
    import wsproto_core
    names = sorted(
        info.name
        for info in pkgutil.walk_packages(wsproto_core.__path__, "wsproto_core.")
        if not info.name.endswith("__main__")
        and not info.name.startswith(("wsproto_core.drivers", "wsproto_core.cli"))
    )
    for name in names:
        importlib.import_module(name)
    after = set(sys.modules)
    json.dump({"names": names, "new": sorted(after - before)}, sys.stdout)
    """
)


def run_isolated() -> dict[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-I", "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_no_io_modules_loaded() -> None:
    outcome = run_isolated()
    new = set(outcome["new"])
    loaded = sorted(name for name in new if name.split(".")[0] in FORBIDDEN)
    assert loaded == [], f"wsproto_core imported I/O modules: {loaded}"


def test_every_module_was_imported() -> None:
    outcome = run_isolated()
    expected = {
        "wsproto_core.connection",
        "wsproto_core.errors",
        "wsproto_core.events",
        "wsproto_core.extensions",
        "wsproto_core.frames",
        "wsproto_core.masking",
        "wsproto_core.state",
    }
    assert expected <= set(outcome["names"])
    assert expected <= set(outcome["new"])


def test_public_api() -> None:
    assert wsproto_core.Connection.__module__ == "wsproto_core.connection"
    for name in wsproto_core.__all__:
        assert hasattr(wsproto_core, name), name
