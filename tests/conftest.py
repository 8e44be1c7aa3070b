"""Shared fixtures: the shared data folder and an isolated model cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

# property tests draw the same examples on every run, so CI is deterministic
hypothesis_settings.register_profile("faceprint", derandomize=True, database=None)
hypothesis_settings.load_profile("faceprint")

from .pg import pg_server, pg_small_buffers_uri, pg_uri  # noqa: F401,E402  (a real PostgreSQL + pgvector for gallery tests)

#: ``../shared/data`` beside the repository (read-only test data; see its README).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared(*parts: str) -> Path:
    """A path under the shared data folder; skips the test when it is absent (fails instead when
    ``FACEPRINT_REQUIRE_DATA`` is set, as ``.ci/run`` does in CI)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        stop = pytest.fail if os.environ.get("FACEPRINT_REQUIRE_DATA") else pytest.skip
        stop(f"shared test data not found at {path} (tests need ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Converted models go to a per-run cache unless FACEPRINT_CACHE_DIR is already set."""
    if "FACEPRINT_CACHE_DIR" not in os.environ:
        os.environ["FACEPRINT_CACHE_DIR"] = str(tmp_path_factory.mktemp("faceprint-cache"))
