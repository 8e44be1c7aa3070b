"""A command whose optional extra is missing says which extra to install: one line, exit 8.
Each case runs `faceprint` in a fresh process with the module hidden, as after the base install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from faceprint.cli.common import missing_extra_message

from .conftest import shared

SRC = Path(__file__).resolve().parents[1] / "src"


def run_without(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    code = (f"import sys; sys.modules[{module!r}] = None\n"  # `import module` raises ModuleNotFoundError
            "from faceprint.cli import main\nsys.argv[0] = 'faceprint'\nmain()\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, check=False,
                          env=dict(os.environ, PYTHONPATH=str(SRC)), timeout=300)


@pytest.mark.parametrize(("module", "args", "extra"), [
    ("uvicorn", ("serve", "--db", "g.db"), "service"),
    ("sklearn", ("eval", "cluster", "--root", "TRAIN"), "collections"),
    ("torch", ("train", "--data", "TRAIN", "--out", "run"), "train"),
])
def test_a_missing_extra_is_named_in_one_line(module, args, extra, tmp_path) -> None:
    train = str(shared("people", "knn_examples", "train"))
    proc = run_without(module, *[train if a == "TRAIN" else a for a in args], cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 8, proc.stderr
    assert len(lines) == 1 and f"pip install 'faceprint[{extra}]'" in lines[0], proc.stderr
    assert "unexpected" not in lines[0] and not (tmp_path / "g.db").exists()


def test_messages_pick_the_extra_of_the_command() -> None:
    assert "faceprint[eval]" in missing_extra_message("sklearn.metrics", "eval lfw")
    assert "faceprint[collections]" in missing_extra_message("sklearn", "cluster")
    assert "faceprint[postgres]" in missing_extra_message("psycopg", "enroll")
    assert missing_extra_message("not_an_optional_module", "verify") is None
