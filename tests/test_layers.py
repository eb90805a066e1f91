"""The architecture as a machine checks it: imports flow one way (the import-linter
contracts in ``pyproject.toml``), there is no import circle, and no module is huge."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_MODULE_LINES = 500  # a module over this is doing more than one thing


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with this repository's contracts, on the packages found in ``tree``
    (first on the path, ahead of the installed ones)."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_packages(tmp_path: Path) -> Path:
    for package in ("crawler", "cdp"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_every_import_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_layers_contract_fails_on_a_reverse_import(tmp_path):
    """The contract can fail: the store (a lower floor) importing the engine is reported."""
    tree = copy_packages(tmp_path)
    base = tree / "crawler" / "store" / "base.py"
    base.write_text(base.read_text() + "\nfrom crawler.run import engine as _reverse  # noqa: E402\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "crawler.store.base -> crawler.run.engine" in result.stdout


def test_cdp_importing_the_crawler_breaks_the_contract(tmp_path):
    tree = copy_packages(tmp_path)
    util = tree / "cdp" / "_util.py"
    util.write_text(util.read_text() + "\nimport crawler.errors  # noqa: E402\n")
    result = lint_imports(tree)
    assert result.returncode != 0 and "cdp._util -> crawler.errors" in result.stdout


def import_cycles() -> list[list[str]]:
    """Strongly connected components of more than one module in the import graph of
    ``crawler`` and ``cdp`` (Tarjan's algorithm)."""
    graph = grimp.build_graph("crawler", "cdp", cache_dir=None)
    modules = sorted(graph.modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(modules)))
    for module in modules:
        if module not in index:
            visit(module)
    return cycles


def test_there_is_no_import_circle_in_crawler_or_cdp():
    assert import_cycles() == []


def source_modules() -> dict[str, str]:
    """Every module of ``crawler`` and ``cdp``: its path in the repository -> its text."""
    return {
        str(path.relative_to(ROOT)): path.read_text()
        for package in ("crawler", "cdp")
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def test_no_module_is_over_500_lines():
    sizes = {name: len(text.splitlines()) for name, text in source_modules().items()}
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_each_constant_is_defined_in_one_module_only():
    """A module-level UPPER_CASE name is defined once in ``crawler`` and ``cdp``: two
    constants of one name (two heartbeats, two release bounds) read as one setting."""
    where: dict[str, list[str]] = {}
    for name, text in source_modules().items():
        for node in ast.parse(text).body:
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign):
                targets = [node.target]
            else:
                continue
            for target in targets:
                if isinstance(target, ast.Name) and target.id.isupper() and len(target.id) > 1:
                    where.setdefault(target.id, []).append(name)
    assert {constant: paths for constant, paths in where.items() if len(paths) > 1} == {}
