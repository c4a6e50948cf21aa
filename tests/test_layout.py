"""The package's folders follow the flow, and imports point down it only.

data (the contract, reading, checking, synth) <- analysis (pure figures) <- report (what a reader
sees) <- pipeline (run settings, executors, rendering, publishing) <- cli. A module may import its
own layer or a lower one, never a higher one, so no layer can reach back into the one that calls
it (docs/architecture in the README). ``ipcreport.resources`` (where the package's files are) is a
leaf every layer may use.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ipcreport"
ORDER = ["data", "analysis", "report", "pipeline"]
# modules at the package root any layer may import, and the names its __init__ gives every process
LEAVES = {"resources", "__init__", "__version__", "return_free_memory"}


def _layer(dotted: str) -> str | None:
    """The layer a dotted module name (ipcreport.x.y) belongs to."""
    parts = dotted.split(".")
    if parts[0] != "ipcreport" or len(parts) == 1:
        return None
    return parts[1] if parts[1] in ORDER else "cli" if parts[1] == "cli" else None


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every ipcreport module a source file imports, made absolute, with its line."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{alias.name}" for alias in node.names]
            found += [(node.lineno, name) for name in names if name.startswith("ipcreport")]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("ipcreport")]
    return found


def test_the_four_layers_are_folders():
    assert [p.name for p in sorted(PACKAGE.iterdir()) if p.is_dir() and (p / "__init__.py").exists()
            and p.name in ORDER] == sorted(ORDER)
    loose = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__", "cli", "resources"], "a module at the package root belongs in a layer's folder"


@pytest.mark.parametrize("layer", ORDER)
def test_imports_point_down_the_flow_only(layer):
    allowed = set(ORDER[: ORDER.index(layer) + 1])
    wrong = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for line, target in _imports(path):
            if target.split(".")[1] in LEAVES or target == "ipcreport":
                continue
            if _layer(target) not in allowed:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_a_reaching_back_import(tmp_path):
    """The rule above must be able to fail: a relative import up two levels is resolved."""
    fake = PACKAGE / "analysis" / "money.py"
    lines = _imports(fake)
    assert any(target == "ipcreport.data.contract" for _, target in lines)


def test_every_subpackage_is_listed_for_the_wheel():
    """pyproject.toml lists packages by name: a new folder left out installs without its code."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
