"""The package's layer contract (``[tool.importlinter]`` in pyproject.toml), checked with import-linter.

The contract is run on this checkout's ``src/`` in a subprocess (so the installed copy of faceprint,
if any, is not the one analysed), and once more on a copy with a deliberate violation to show that
a broken layer or a new import cycle fails.
"""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="import-linter is in the test extra")

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PYPROJECT = ROOT / "pyproject.toml"


def _lint(src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()", str(PYPROJECT), "--no-cache"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def _contracts() -> list[dict]:
    return tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]


def test_the_layer_contract_holds() -> None:
    out = _lint(SRC)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "BROKEN" not in out.stdout
    assert out.stdout.count("KEPT") == len(_contracts())


def test_every_module_of_the_package_root_has_a_layer() -> None:
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    placed = {name.strip() for layer in layers for name in layer.replace("|", ":").split(":")}
    root = [f"faceprint.{m.name}" for m in pkgutil.iter_modules([str(SRC / "faceprint")])]
    assert root, "no modules found under src/faceprint"
    assert sorted(set(root) - placed) == [], "place new root modules in a layer of [tool.importlinter]"
    assert sorted(placed - set(root)) == [], "the contract names modules that do not exist"


def _broken_copy(tmp_path: Path, module: str, line: str) -> Path:
    copy = tmp_path / "src"
    shutil.copytree(SRC / "faceprint", copy / "faceprint", ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "faceprint" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    return copy


def test_a_lower_layer_importing_a_higher_one_fails(tmp_path: Path) -> None:
    out = _lint(_broken_copy(tmp_path, "types.py", "from .gallery import Recognizer  # deliberate violation"))
    assert out.returncode != 0
    assert "layers: front ends > jobs > pipeline > models > dlib port > core BROKEN" in out.stdout
    assert "faceprint.types -> faceprint.gallery" in out.stdout


def test_the_two_front_ends_stay_independent(tmp_path: Path) -> None:
    out = _lint(_broken_copy(tmp_path, "service/app.py", "from ..cli import app as _cli  # deliberate violation"))
    assert out.returncode != 0
    assert "faceprint.service.app -> faceprint.cli" in out.stdout


def test_an_import_cycle_inside_a_package_fails(tmp_path: Path) -> None:
    out = _lint(_broken_copy(tmp_path, "gallery/results.py", "from . import base  # deliberate cycle"))
    assert out.returncode != 0
    assert "no import cycles between the modules of any package BROKEN" in out.stdout
