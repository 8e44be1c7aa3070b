"""Shared galleries as users run them: every step is a fresh `faceprint` process.

Milvus (milvus-lite) enroll -> reopen -> identify -> remove a non-ASCII name -> re-enroll with
nothing duplicated; kill -9 during a Milvus and a PostgreSQL enrollment, then resume; dead and
unknown ``--db`` URIs fail with one line, in bounded time, creating nothing locally.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import shared

KNN = ("people", "knn_examples")
#: Twelve LFW people with 7-8 photos each (87 photos): long enough to kill an enrollment midway.
LFW_PEOPLE = ("Dominique_de_Villepin", "Donald_Rumsfeld", "Hans_Blix", "Jennifer_Garner", "Jennifer_Lopez",
              "John_Bolton", "John_Snow", "Paul_Martin", "Paul_Wolfowitz", "Ricardo_Lagos", "Tang_Jiaxuan", "Zhu_Rongji")
#: Names Milvus filter expressions could not hold (quote, backslash, non-ASCII).
ODD_NAMES = {"rose_leslie": "José Ñúñez", "kit_harington": 'Kit "the crow" \\ Harington'}


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


def faceprint(*args: object, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the CLI in a new process."""
    return subprocess.run([sys.executable, "-c", "from faceprint.cli import main; main()", *map(str, args)],
                          cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _json(proc: subprocess.CompletedProcess) -> object:
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def _milvus() -> None:
    pytest.importorskip("pymilvus", reason="Milvus tests need pymilvus: pip install 'faceprint[scale]'")
    pytest.importorskip("milvus_lite", reason="Milvus tests need milvus-lite: pip install 'faceprint[scale]'")


def knn_folders(root: Path) -> Path:
    """knn_examples/train copied with two people renamed to :data:`ODD_NAMES`."""
    out = root / "train"
    for person in shared(*KNN, "train").iterdir():
        shutil.copytree(person, out / ODD_NAMES.get(person.name, person.name))
    return out


def test_milvus_enroll_reopen_identify_remove_and_reenroll(tmp_path: Path) -> None:
    _milvus()
    train, db = knn_folders(tmp_path), "g.milvus.db"
    first = _json(faceprint("enroll", "--db", db, "--from-folders", train, "--jitter", 0, "--json", cwd=tmp_path))
    assert all(r["enrolled"] for r in first)
    counts = {p["name"]: p["samples"] for p in _json(faceprint("people", "--db", db, "list", "--json", cwd=tmp_path))}
    assert counts == {"José Ñúñez": 2, 'Kit "the crow" \\ Harington': 2, "alex_lacamoire": 1, "biden": 2,
                      "obama": 2}
    photo = shared(*KNN, "test", "kit_with_rose.jpg")
    faces = _json(faceprint("identify", "--db", db, photo, "--json", cwd=tmp_path))[0]["faces"]
    assert sorted(f["name"] for f in faces) == sorted(ODD_NAMES.values())
    shown = _json(faceprint("people", "--db", db, "show", "José Ñúñez", "--json", cwd=tmp_path))
    assert shown["samples"] == 2 and len(set(shown["sources"])) == 2
    removed = faceprint("people", "--db", db, "remove", "José Ñúñez", cwd=tmp_path)
    assert removed.returncode == 0 and "2 sample(s)" in removed.stdout, removed.stderr
    left = {p["name"] for p in _json(faceprint("people", "--db", db, "list", "--json", cwd=tmp_path))}
    assert left == set(counts) - {"José Ñúñez"}
    faces = _json(faceprint("identify", "--db", db, photo, "--json", cwd=tmp_path))[0]["faces"]
    assert "José Ñúñez" not in [f["name"] for f in faces]
    # the same enrollment again: only the removed person comes back, nobody is duplicated
    again = _json(faceprint("enroll", "--db", db, "--from-folders", train, "--jitter", 0, "--json", cwd=tmp_path))
    assert {r["name"]: len(r["enrolled"]) for r in again} == {n: 2 if n == "José Ñúñez" else 0 for n in counts}
    final = {p["name"]: p["samples"] for p in _json(faceprint("people", "--db", db, "list", "--json", cwd=tmp_path))}
    assert final == counts


def lfw_folders(root: Path) -> Path:
    out = root / "lfw"
    for name in LFW_PEOPLE:
        shutil.copytree(shared("lfw-view1", "images", name), out / name)
    return out


@pytest.mark.parametrize("backend", ["milvus", "postgres"])
def test_kill_9_during_enrollment_then_resume(tmp_path: Path, backend: str, request) -> None:
    if backend == "milvus":
        _milvus()
        db = "crash.milvus.db"
    else:
        db = request.getfixturevalue("pg_uri")
    folders = lfw_folders(tmp_path)
    photos = {p.name: sorted(f.name for f in (folders / p.name).iterdir()) for p in folders.iterdir()}
    args = [sys.executable, "-c", "from faceprint.cli import main; main()", "enroll", "--db", db,
            "--from-folders", str(folders), "--jitter", "0"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    reported: dict[str, int] = {}  # printed after each person's enrollment committed
    while not reported:
        line = proc.stdout.readline()
        assert line, "the enrollment ended before it could be killed"
        if line.startswith("enrolled "):
            who, _, rest = line[len("enrolled "):].rpartition(": ")
            reported[who] = int(rest.split()[0])
    os.kill(proc.pid, signal.SIGKILL)  # somewhere after the first person's commit
    proc.wait()
    before = {p["name"]: p["samples"] for p in _json(faceprint("people", "--db", db, "list", "--json", cwd=tmp_path))}
    assert all(before.get(n) == k for n, k in reported.items()), (reported, before)
    assert len(before) < len(LFW_PEOPLE), "the enrollment finished before the kill"
    resumed = _json(faceprint("enroll", "--db", db, "--from-folders", folders, "--jitter", 0, "--json", cwd=tmp_path))
    for rep in resumed:
        duplicates = [r for r in rep["rejected"] if r["reason"].startswith("duplicate photo")]
        assert len(duplicates) == before.get(rep["name"], 0), rep  # what was stored is not stored again
        assert len(rep["enrolled"]) + len(rep["rejected"]) == len(photos[rep["name"]])
    person = _json(faceprint("people", "--db", db, "show", next(iter(reported)), "--json", cwd=tmp_path))
    assert len(person["sources"]) == len(set(person["sources"])) == person["samples"]
    final = {p["name"]: p["samples"] for p in _json(faceprint("people", "--db", db, "list", "--json", cwd=tmp_path))}
    expected = {r["name"]: before.get(r["name"], 0) + len(r["enrolled"]) for r in resumed}
    assert final == expected and set(final) == set(LFW_PEOPLE)


DEAD = [
    ("milvus://127.0.0.1:1", "cannot open Milvus"),
    ("postgresql://faceprint:secret@127.0.0.1:1/gallery", "cannot connect to postgresql://faceprint:***@"),
    ("redis://127.0.0.1:6379", "unknown gallery URI"),
    ("milvus:/127.0.0.1:19530", "unknown gallery URI"),  # a URI that lost a slash is not a path either
]


@pytest.mark.parametrize("uri,message", DEAD)
def test_dead_and_unknown_uris_fail_in_one_line_and_create_nothing(tmp_path: Path, uri: str, message: str) -> None:
    if uri.startswith("milvus://"):
        _milvus()
    if uri.startswith("postgresql://"):
        pytest.importorskip("psycopg", reason="needs psycopg: pip install 'faceprint[postgres]'")
    for args in (["people", "--db", uri, "list"], ["keys", "list", "--db", uri]):
        proc = faceprint(*args, cwd=tmp_path, timeout=30)  # bounded: a hang raises TimeoutExpired
        lines = proc.stderr.strip().splitlines()
        if uri.startswith("milvus://") and args[0] == "keys":
            message_here = "--keys-db"  # a Milvus gallery's keys live in a SQLite file named by --keys-db
        else:
            message_here = message
        assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:"), (args, proc.stderr)
        assert message_here in lines[0] and "secret" not in lines[0], lines[0]
    assert list(tmp_path.iterdir()) == []  # no SQLite file, no milvus-lite folder, nothing
