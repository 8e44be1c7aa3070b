"""`.ci/run` in CI refuses to run without ../shared/data (instead of passing with a third of the
tests skipped), and ``shared()`` fails rather than skips when FACEPRINT_REQUIRE_DATA is set."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import shared

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "run"


def test_ci_run_fails_without_shared_data(tmp_path: Path) -> None:
    repo = tmp_path / "repo"  # no tmp_path/shared/data beside it
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(SCRIPT, repo / ".ci" / "run")
    env = {k: v for k, v in os.environ.items() if k != "FACEPRINT_REQUIRE_DATA"}
    proc = subprocess.run(["bash", str(repo / ".ci" / "run")], env={**env, "CI": "1"}, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 1
    want = (f"error: CI run without the shared test data at {tmp_path / 'shared' / 'data'} (tests would skip); "
            "see tests/conftest.py")
    assert proc.stdout.strip().splitlines() == [want]


def test_ci_run_lists_skips() -> None:
    assert "-rs" in next(line for line in SCRIPT.read_text().splitlines() if "python3 -m pytest" in line)


def test_shared_skips_locally_and_fails_when_data_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEPRINT_REQUIRE_DATA", raising=False)
    with pytest.raises(pytest.skip.Exception, match="shared test data not found"):
        shared("no-such-folder")
    monkeypatch.setenv("FACEPRINT_REQUIRE_DATA", "1")
    with pytest.raises(pytest.fail.Exception, match="shared test data not found"):
        shared("no-such-folder")
