"""The package's layout keeps data flowing one way: each module imports only those above it."""

from __future__ import annotations

import ast
from pathlib import Path

import anychannel_async

# The order of README's "How it works": a module may import only modules listed before it.
ORDER = (
    "_version",
    "_results",
    "_errors",
    "_metrics",
    "_lifecycle",
    "_tickets",
    "_models",
    "_serde",
    "_settings",
    "_credentials",
    "_accounts",
    "_ratelimit",
    "_client",
    "_submission",
    "_conversations",
    "_flow",
    "_outbox",
    "_batcher",
    "_router",
    "_sender",
    "_pipeline",
    "_pool",
)
PACKAGE = Path(anychannel_async.__file__).parent


def _imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    return {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
    }


def test_each_core_module_imports_only_modules_above_it() -> None:
    """No module reaches back into a later stage: the import graph follows the layout."""
    backwards = {
        module: sorted(d for d in _imports(module) if d not in ORDER[:index])
        for index, module in enumerate(ORDER)
    }
    assert {m: d for m, d in backwards.items() if d} == {}


def test_every_core_module_has_its_place_in_the_layout() -> None:
    """A new private module is placed in the order (and in the README) deliberately."""
    core = {p.stem for p in PACKAGE.glob("_*.py")} - {"__init__", "__main__"}
    assert core == set(ORDER)
