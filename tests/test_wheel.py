"""The built wheel works on its own: build it, install it into a fresh venv without downloading
anything, and run `faceprint --version` and a real `faceprint verify` from outside the source tree.
Catches files missing from the wheel (the open-set statistics .npz, the service's static files,
py.typed) that an editable install would hide."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import faceprint

from .conftest import shared

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_NO_INPUT"] = "1"
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the wheel, the venv's bin folder): built from a copy of the project, installed with --no-index."""
    base = tmp_path_factory.mktemp("wheel")
    project = base / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, project / name)
    shutil.copytree(ROOT / "src", project / "src", ignore=ignore)
    dist = base / "dist"
    # the installed setuptools builds it: no isolated build environment, so nothing is fetched
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation",
                  "-w", str(dist), str(project)], cwd=base)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = dist.glob("faceprint-*.whl")
    venv = base / "venv"
    made = _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=base)
    assert made.returncode == 0, made.stderr
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    installed = _run([str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
                     cwd=base)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return wheel, bin_dir


def test_the_wheel_carries_the_data_files(wheel_venv: tuple[Path, Path]) -> None:
    wheel, _ = wheel_venv
    names = set(zipfile.ZipFile(wheel).namelist())
    for static in (ROOT / "src" / "faceprint" / "service" / "static").iterdir():
        assert f"faceprint/service/static/{static.name}" in names
    for stats in (ROOT / "src" / "faceprint" / "embedders").glob("*.npz"):
        assert f"faceprint/embedders/{stats.name}" in names
    assert "faceprint/py.typed" in names
    assert not any(n.startswith(("tests/", "benchmarks/", "docs/")) for n in names)


def test_the_installed_wheel_runs_version_and_verify(wheel_venv: tuple[Path, Path], tmp_path: Path) -> None:
    _, bin_dir = wheel_venv
    where = _run([str(bin_dir / "python"), "-c", "import faceprint; print(faceprint.__file__)"], cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(bin_dir.parent), where.stdout  # not the source tree

    version = _run([str(bin_dir / "faceprint"), "--version"], cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert faceprint.__version__ in version.stdout

    same_a = shared("people", "knn_examples", "train", "biden", "biden2.jpg")
    same_b, other = shared("people", "biden.jpg"), shared("people", "obama.jpg")
    for b, expected in ((same_b, True), (other, False)):
        proc = _run([str(bin_dir / "faceprint"), "verify", str(same_a), str(b), "--json"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        record = json.loads(proc.stdout)
        assert record["match"] is expected, record
        assert record["model"].startswith("dlib_resnet")
