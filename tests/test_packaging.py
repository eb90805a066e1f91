"""Packaging: ``pip install .`` builds without a warning, ships what the code reads at
run time, and carries the one version."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import crawler

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_builds_without_warnings_and_ships_its_data_files(tmp_path):
    """Built from a copy of what the wheel is made of: setuptools writes ``build/`` and
    ``*.egg-info`` into the tree it builds, and a stale ``build/lib`` there would be
    packed into later wheels."""
    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        (source / name).parent.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    for package in ("crawler", "cdp"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = (result.stdout + result.stderr).lower()
    assert "warning" not in output and "deprecat" not in output, result.stdout + result.stderr
    (wheel,) = tmp_path.glob("trio_cdp_crawler-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"crawler/py.typed", "cdp/py.typed"} <= names
    lua = {n for n in names if n.startswith("crawler/store/redis/lua/") and n.endswith(".lua")}
    assert lua, "the Redis store's Lua scripts are not in the wheel"
    metadata = zipfile.ZipFile(wheel).read(f"trio_cdp_crawler-{crawler.__version__}.dist-info/METADATA").decode()
    assert f"Version: {crawler.__version__}\n" in metadata
    assert "License-Expression: MIT" in metadata
    matplotlib = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: matplotlib")]
    assert matplotlib and all('extra == "plot"' in line for line in matplotlib), matplotlib
