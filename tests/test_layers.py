"""The layers contract of pyproject.toml (`[tool.importlinter]`): config at the bottom, the
CLI at the top, no import from a lower layer into a higher one and no import circle between
layers; and no module import circle anywhere in the package."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_layers_contract_is_kept() -> None:
    command = shutil.which("lint-imports")
    if command is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    run = subprocess.run([command, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "1 kept, 0 broken" in run.stdout


def test_no_module_imports_itself_through_another() -> None:
    graph = grimp.build_graph("raygan", include_external_packages=False)
    circles = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(importer=imported, imported=module):
                circles.add(tuple(sorted((module, imported))))
    assert not circles, sorted(circles)

