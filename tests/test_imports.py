"""Sans-I/O: importing wsproto_core loads no I/O, concurrency or TLS module.

Checked in a fresh, isolated interpreter (``python -I``): the modules present
before the import are recorded, and only modules newly loaded by the import
count (some builds preload ``threading``, for one). The I/O layers that sit on
the core (``wsproto_core.drivers``, ``wsproto_core.cli`` and ``__main__``)
are expected to import asyncio and sockets, so they are left out.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import wsproto_core

FORBIDDEN = ["asyncio", "trio", "socket", "threading", "ssl", "selectors", "anyio", "select", "_socket", "_ssl"]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    before = set(sys.modules)
    import importlib, pkgutil
    import wsproto_core

    # pkgutil.walk_packages would import the I/O packages to look inside them.
    def walk(path, prefix):
        for info in pkgutil.iter_modules(path, prefix):
            if info.name.endswith("__main__") or info.name.startswith(("wsproto_core.drivers", "wsproto_core.cli")):
                continue
            yield info.name
            if info.ispkg:
                yield from walk(importlib.import_module(info.name).__path__, info.name + ".")

    names = sorted(walk(wsproto_core.__path__, "wsproto_core."))
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
        "wsproto_core.extension_interface",
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


# ------------------------------------------------------------------ layering

PACKAGE = Path(wsproto_core.__file__).parent
ARCHITECTURE = PACKAGE.parent / "docs" / "explanation" / "architecture.md"
#: Modules that sit on top of the core (they may import anything) or are not Python.
ON_TOP = {"__main__", "_speedups", "cli", "drivers"}


def documented_layers() -> list[str]:
    """The modules of the numbered list under "## Layers", in the order the document lists them."""
    section = ARCHITECTURE.read_text(encoding="utf-8").split("## Layers", 1)[1].split("\n## ", 1)[0]
    order: list[str] = []
    for item in re.findall(r"^\d+\. (.*?)(?=^\d+\. |^\S|\Z)", section, flags=re.MULTILINE | re.DOTALL):
        # Module names are the backticked words outside parentheses, before the item's first colon.
        head = re.sub(r"\([^()]*\)", "", item).split(":", 1)[0]
        order.extend(re.findall(r"`(\w+)`", head))
    return order


def runtime_imports(path: Path) -> set[str]:
    """The package modules that ``path`` imports when it runs (``if TYPE_CHECKING:`` blocks left out)."""
    imported: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                imported.add(node.module.split(".")[0])
            else:
                # ``from . import name``: a module of the package, or else a
                # name that the package's ``__init__`` defines.
                imported.update(
                    alias.name
                    if (PACKAGE / f"{alias.name}.py").exists() or (PACKAGE / alias.name).is_dir()
                    else "__init__"
                    for alias in node.names
                )
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wsproto_core."):
            imported.add(node.module.split(".")[1])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return imported - ON_TOP


def test_the_documented_layers_cover_every_core_module() -> None:
    layers = documented_layers()
    modules = {path.stem for path in PACKAGE.glob("*.py")} - ON_TOP
    assert len(layers) == len(set(layers)), "a module is listed twice"
    assert set(layers) == modules


def test_each_module_imports_only_modules_listed_before_it() -> None:
    position = {module: index for index, module in enumerate(documented_layers())}
    backwards = sorted(
        f"{module} imports {imported}"
        for module in position
        for imported in runtime_imports(PACKAGE / f"{module}.py")
        if position[imported] >= position[module]
    )
    assert backwards == []


def test_the_connection_knows_no_particular_extension() -> None:
    # Layers know each other by interface: the engine asks its extension what it can do.
    assert "permessage_deflate" not in runtime_imports(PACKAGE / "connection.py")
    assert "permessage_deflate" not in runtime_imports(PACKAGE / "extension_interface.py")
