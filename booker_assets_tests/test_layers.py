"""The layers of ARCHITECTURE.md hold: no module imports a layer above its own."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "booker_assets"
# Each layer may import the layers listed after it (and itself); leaves are open to all.
BELOW = {
    "defs": {"load", "catalogue", "api", "sandbox"},  # the sandbox: the demo's default Booker
    "load": {"catalogue", "api"},
    "catalogue": set(),
    "api": set(),
    "sandbox": {"api", "catalogue"},  # shapes.py reshapes what the catalogue declares
}
LEAVES = {"errors", "settings"}
# What a leaf may import: settings builds the rate budget (api), the PII policy (load) and
# Domo's options (catalogue) from the environment.
LEAF_IMPORTS = {"errors": set(), "settings": {"api", "catalogue", "load"}}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "booker_assets" else None


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.startswith("booker_assets.")}


def test_no_module_imports_a_layer_above_its_own():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if own not in BELOW:
            continue  # the top: definitions, cli, demo (and the leaves)
        for module in _imports(path):
            layer = _layer(module)
            if layer and layer != own and layer not in BELOW[own] | LEAVES:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_the_leaves_import_only_what_they_must():
    for leaf, allowed in LEAF_IMPORTS.items():
        layers = {_layer(m) for m in _imports(PACKAGE / f"{leaf}.py")} - {None} - LEAVES
        assert layers <= allowed, (leaf, layers)
