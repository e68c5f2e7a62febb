"""The layers of ARCHITECTURE.md hold, read from the imports themselves (``ast``): each layer
imports only the layers below it, no module imports itself back, ``settings.py`` is a leaf, the
runtime never imports the sandbox, and every path ARCHITECTURE.md names exists."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("booker_assets", "booker_sandbox")
# What each layer may import besides itself. ``top``: the code location, the commands, the
# demo (booker_assets/*.py but the leaves), which start the sandbox when no account is set.
ALLOWED = {
    "top": {"defs", "load", "catalogue", "api", "settings", "errors", "booker_sandbox"},
    "defs": {"load", "catalogue", "api", "settings", "errors"},
    "load": {"catalogue", "api", "settings", "errors"},
    "catalogue": {"settings", "errors"},
    "api": {"settings", "errors"},
    "settings": {"errors"},
    "errors": set(),
    # The sandbox reshapes what the catalogue declares, writes dates as the loader reads
    # them, and registers itself as a named endpoint of api/transport.py.
    "booker_sandbox": {"api", "catalogue", "load", "settings", "errors"},
}
RUNTIME = ("defs", "load", "catalogue", "api", "settings", "errors")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


FILES = [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
NAMES = {_module(path) for path in FILES}


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside a function (a lazy import is
    an import): ``from package import module`` counts the module, not the package."""
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package up
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            named = {f"{base}.{alias.name}" for alias in node.names}
            found |= named if named <= NAMES else named | {base}
    return found


MODULES = {_module(path): _imports(path) for path in FILES}


def _layer(module: str) -> str | None:
    """The layer of one of our modules (None: not ours, or a package's bare name)."""
    parts = module.split(".")
    if parts[0] == "booker_sandbox":
        return "booker_sandbox"
    if parts[0] != "booker_assets" or len(parts) == 1:
        return None
    return parts[1] if parts[1] in ALLOWED else "top"


def _ours(names: set[str]) -> set[str]:
    """The imported names that are modules of ours (a ``from m import function`` is not)."""
    return {name for name in names if name in MODULES}


def test_each_layer_imports_only_the_layers_below_it():
    wrong = [f"{module} ({_layer(module)}) imports {name} ({_layer(name)})"
             for module, names in MODULES.items() for name in _ours(names)
             if _layer(name) not in {_layer(module), *ALLOWED[_layer(module)]}]
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_itself_back():
    """No cycle among our modules, within a layer or across (``TYPE_CHECKING`` and lazy
    imports included: they were how the rate-limit modules hid theirs)."""
    graph = {module: _ours(names) - {module} for module, names in MODULES.items()}
    cycles: list[str] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append(" -> ".join([*path[path.index(module):], module]))
            return
        if module in done:
            return
        for name in sorted(graph[module]):
            visit(name, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert not cycles, "\n".join(cycles)


def test_settings_imports_only_the_standard_library_and_errors():
    imported = {name for name in MODULES["booker_assets.settings"]
                if name.split(".")[0] not in sys.stdlib_module_names
                and (name in NAMES or not name.startswith(PACKAGES))}  # not errors.SomeError
    assert imported <= {"booker_assets.errors"}, imported


def test_the_runtime_never_imports_the_sandbox():
    wrong = [f"{module} imports {name}" for module, names in MODULES.items()
             if _layer(module) in RUNTIME for name in names if name.startswith("booker_sandbox")]
    assert not wrong, "\n".join(wrong)


# A real account's code location loads no sandbox; with no account, the top imports it and
# the account's variables default to its endpoint (in a fresh process: conftest imports it).
OPT_IN = """
import os, sys
from booker_assets.definitions import build_definitions, deployed_settings
build_definitions(deployed_settings())
assert "booker_sandbox" not in sys.modules, "a real account loaded the sandbox"
for name in [n for n in os.environ if n.startswith("BOOKER_") and n != "BOOKER_DUCKDB_PATH"]:
    del os.environ[name]
deployed_settings()
assert "booker_sandbox" in sys.modules and os.environ["BOOKER_BASE_URL"] == "sandbox"
"""


def test_the_sandbox_is_loaded_only_when_no_account_is_set(tmp_path):
    account = {var: "x" for var in ("BOOKER_CLIENT_ID", "BOOKER_CLIENT_SECRET",
                                    "BOOKER_SUBSCRIPTION_KEY", "BOOKER_PERSONAL_ACCESS_TOKEN")}
    env = {**os.environ, **account, "BOOKER_LOCATION_IDS": "1001",
           "BOOKER_DUCKDB_PATH": str(tmp_path / "b.duckdb")}
    done = subprocess.run([sys.executable, "-c", OPT_IN], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


# A path as ARCHITECTURE.md writes one: a file with an extension, or a folder ending in "/".
PATH = re.compile(
    r"(?<![\w./-])((?:[A-Za-z_][\w-]*/)*[A-Za-z_][\w-]*(?:\.(?:py|md|yml|yaml|toml)|/))(?![\w/])")


def test_every_path_architecture_names_exists():
    """A path is read from the repository's root, or from booker_assets/ (the tree's own
    names, and the tables' ``defs/…``)."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    named = set(PATH.findall(text))
    missing = sorted(path for path in named
                     if not (ROOT / path).exists() and not (ROOT / "booker_assets" / path).exists())
    assert len(named) > 40, sorted(named)  # the pattern still finds the document's paths
    assert not missing, missing
