"""A long-running reader of a SQLite gallery (a service, a video loop) sees every change another
process makes: appends are applied incrementally (only the new rows are read), and renames,
merges and removals reload the index. Checked against a fresh open of the file after each step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faceprint import Embeddings
from faceprint.gallery import open_gallery

SRC = Path(__file__).resolve().parents[1] / "src"
MODEL = "dlib_resnet_v1"


def _people(n: int, per: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (n, 128)).astype(np.float32)
    return centres[:, None, :] + 0.01 * rng.normal(0, 1, (n, per, 128)).astype(np.float32)


def _write(db: Path, code: str) -> None:
    """Run ``code`` against ``g = open_gallery(db)`` in a new process."""
    prog = ("import numpy as np\nfrom faceprint import Embeddings\nfrom faceprint.gallery import open_gallery\n"
            f"g = open_gallery({str(db)!r})\n{code}\ng.close()\n")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    subprocess.run([sys.executable, "-c", prog], check=True, env=env, timeout=120)


def _add(db: Path, name: str, vectors: np.ndarray, tmp: Path) -> None:
    np.save(tmp / f"{name}.npy", vectors)
    _write(db, f"g.add_faces({name!r}, Embeddings(np.load({str(tmp / f'{name}.npy')!r}), {MODEL!r}))")


def _names(g, queries: np.ndarray) -> list[str]:
    return [m[0].name if m else "" for m in g.search(Embeddings(queries, MODEL), k=1)]


def _fresh(db: Path, queries: np.ndarray) -> list[str]:
    with open_gallery(db) as g:
        return _names(g, queries)


@pytest.mark.parametrize("ann", ["off", "on"])
def test_a_reader_follows_another_process_appends_and_edits(tmp_path: Path, ann: str, monkeypatch) -> None:
    db = tmp_path / "g.db"
    faces = _people(4)
    queries = faces[:, 0] + 0.001
    for name, vecs in zip(("alice", "bob"), faces[:2]):
        _add(db, name, vecs, tmp_path)
    reader = open_gallery(db, ann=ann)
    assert _names(reader, queries[:2]) == ["alice", "bob"]

    appended = []
    real = type(reader)._append_only
    monkeypatch.setattr(type(reader), "_append_only", lambda self, v: appended.append(real(self, v)) or appended[-1])

    _add(db, "carol", faces[2], tmp_path)          # an append: only the new rows are read
    _add(db, "dave", faces[3], tmp_path)
    assert _names(reader, queries) == ["alice", "bob", "carol", "dave"] == _fresh(db, queries)
    assert appended == [True]  # both appends applied by one incremental sync

    _write(db, "g.rename('alice', 'ada')")          # edits reload
    assert _names(reader, queries) == ["ada", "bob", "carol", "dave"] == _fresh(db, queries)
    _write(db, "g.remove('bob')")
    got = _names(reader, queries)
    assert got == _fresh(db, queries) and "bob" not in got and got[0] == "ada"
    _write(db, "g.merge('carol', 'dave')")
    assert _names(reader, queries[2:]) == ["dave", "dave"] == _fresh(db, queries[2:])
    assert len(reader) == 2 and reader.sample_count() == 9
    reader.close()


def test_a_deletion_without_the_layout_counter_still_reloads(tmp_path: Path) -> None:
    """A file changed by a tool that does not count its edits (plain SQL) is caught by the sample count."""
    import sqlite3

    db = tmp_path / "g.db"
    faces = _people(2)
    for name, vecs in zip(("alice", "bob"), faces):
        _add(db, name, vecs, tmp_path)
    reader = open_gallery(db)
    assert _names(reader, faces[:, 0]) == ["alice", "bob"]
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM people WHERE name = 'bob'")
    assert _names(reader, faces[:, 0]) == ["alice", "alice"]
    reader.close()
