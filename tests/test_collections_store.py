"""Photo index store: constraints, corrections that persist, incremental joins, names (synthetic faces)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faceprint.collections.assign import cluster_index
from faceprint.collections.constraints import apply_constraints, same_photo_pairs, units
from faceprint.collections.index import store_results
from faceprint.collections.scan import PhotoFile
from faceprint.collections.store import add_links, connect, read_faces, set_cluster_name
from faceprint.collections.workers import PhotoResult
from faceprint.errors import CollectionError, UnknownClusterError

from .test_collections_clustering import blobs


def add_photos(conn: sqlite3.Connection, vectors: list[np.ndarray], start: int = 0) -> None:
    """One synthetic photo per entry of ``vectors`` (its rows are the photo's faces)."""
    results = []
    for i, vec in enumerate(vectors, start):
        xyxy = np.tile(np.array([[10, 10, 60, 60]], np.float32), (len(vec), 1))
        results.append(PhotoResult(PhotoFile(f"/photos/{i:04d}.jpg", 100, i), f"sha{i}", 200, 200, xyxy,
                                   np.ones(len(vec), np.float32), np.asarray(vec, np.float32)))
    store_results(conn, results, "synthetic", "euclidean")


@pytest.fixture()
def people_db(tmp_path: Path) -> sqlite3.Connection:
    """4 people x 12 faces, one face per photo."""
    X, _ = blobs(0.02, n_people=4)
    conn = connect(tmp_path / "index.db")
    add_photos(conn, [x[None] for x in X])
    return conn


def groups(conn: sqlite3.Connection) -> dict[int, set[int]]:
    faces = read_faces(conn)
    out: dict[int, set[int]] = {}
    for f, c in zip(faces.face_id, faces.cluster_id):
        out.setdefault(int(c), set()).add(int(f))
    return out


def cluster_of(conn: sqlite3.Connection, face_id: int) -> int:
    return int(conn.execute("SELECT coalesce(cluster_id, -1) FROM faces WHERE id = ?", (face_id,)).fetchone()[0])


def in_new_process(db: Path, code: str) -> object:
    """Run ``code`` in a fresh interpreter with ``conn = connect(db)`` open; it prints JSON, returned parsed."""
    prelude = ("import json, sys\nfrom faceprint.collections.assign import cluster_index\n"
               "from faceprint.collections.store import connect\nconn = connect(sys.argv[1])\n"
               "def cluster_of(f):\n    return conn.execute('SELECT coalesce(cluster_id, -1) FROM faces WHERE id = ?',"
               " (f,)).fetchone()[0]\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", prelude + code, str(db)], capture_output=True, text=True, env=env,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_schema_is_versioned_and_reopens(tmp_path: Path) -> None:
    conn = connect(tmp_path / "a.db")
    assert conn.execute("SELECT version FROM schema_versions WHERE component = 'collections'").fetchone() == (1,)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    add_photos(conn, [np.ones((2, 4))])
    conn.close()
    # another process opens it: nothing migrated again, the tables and rows kept
    assert in_new_process(tmp_path / "a.db", "print(json.dumps([conn.execute(q).fetchall() for q in ("
                          "\"SELECT component, version FROM schema_versions WHERE component = 'collections'\", "
                          "'SELECT count(*) FROM faces', 'PRAGMA journal_mode')]))") == [
        [["collections", 1]], [[2]], [["wal"]]]
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 10)
    with pytest.raises(Exception) as info:
        connect(tmp_path / "junk.db")
    assert "faceprint" in type(info.value).__module__


@pytest.mark.parametrize("algorithm", ["chinese_whispers", "agglomerative", "dbscan", "hdbscan"])
def test_cluster_index_finds_the_people(people_db: sqlite3.Connection, algorithm: str) -> None:
    result = cluster_index(people_db, algorithm, threshold=0.5)
    assert sorted(len(g) for g in groups(people_db).values()) == [12, 12, 12, 12]
    data = result.to_dict()
    assert set(data) == {"clusters", "noise"} and len(data["clusters"]) == 4 and data["noise"] == []
    face = data["clusters"][0]["faces"][0]
    assert set(face) == {"face_id", "photo", "box"} and face["box"] == [10.0, 10.0, 60.0, 60.0]


def test_two_faces_of_one_photo_are_never_one_person(tmp_path: Path) -> None:
    X, _ = blobs(0.02, n_people=2)
    conn = connect(tmp_path / "i.db")
    # photo 0 holds two near-identical faces of person 0 (a reflection, a poster...)
    add_photos(conn, [np.stack([X[0], X[1]])] + [x[None] for x in X[2:]])
    cluster_index(conn, "chinese_whispers", threshold=0.5)
    assert cluster_of(conn, 1) != cluster_of(conn, 2)
    assert sorted(len(g) for g in groups(conn).values()) == [1, 11, 12]


def test_corrections_persist_across_reclustering(people_db: sqlite3.Connection) -> None:
    cluster_index(people_db, threshold=0.5)
    assert cluster_of(people_db, 1) == cluster_of(people_db, 2)  # same person
    assert cluster_of(people_db, 1) != cluster_of(people_db, 13)  # different people
    add_links(people_db, [(1, 2)], "cannot")
    add_links(people_db, [(1, 13)], "must")
    for full in (False, True, True):
        result = cluster_index(people_db, threshold=0.5, full=full)
        assert not result.incremental  # corrections changed, or --full
        assert cluster_of(people_db, 1) != cluster_of(people_db, 2)
        assert cluster_of(people_db, 1) == cluster_of(people_db, 13)
    # the corrections are in the file: a new process re-clusters everything and still honours them
    db = people_db.execute("PRAGMA database_list").fetchone()[2]
    people_db.close()
    assert in_new_process(Path(db), "cluster_index(conn, threshold=0.5, full=True)\n"
                          "print(json.dumps([cluster_of(1) != cluster_of(2), cluster_of(1) == cluster_of(13)]))"
                          ) == [True, True]
    people_db = connect(db)
    with pytest.raises(CollectionError):
        add_links(people_db, [(1, 999)], "must")
    with pytest.raises(CollectionError):
        add_links(people_db, [(3, 3)], "cannot")


def test_names_follow_their_faces_through_reclustering(people_db: sqlite3.Connection) -> None:
    cluster_index(people_db, threshold=0.5)
    cid = cluster_of(people_db, 5)
    set_cluster_name(people_db, cid, "Ada")
    result = cluster_index(people_db, "agglomerative", threshold=0.5)  # other algorithm: full re-cluster
    named = [c for c in result.to_dict()["clusters"] if c["name"] == "Ada"]
    assert len(named) == 1 and 5 in {f["face_id"] for f in named[0]["faces"]}
    # and in a new process, after another full re-cluster, the name still follows face 5
    db = Path(people_db.execute("PRAGMA database_list").fetchone()[2])
    people_db.commit()
    assert in_new_process(db, "d = cluster_index(conn, 'hdbscan', threshold=0.5, full=True).to_dict()\n"
                          "print(json.dumps([sorted(f['face_id'] for f in c['faces']) for c in d['clusters'] "
                          "if c['name'] == 'Ada']))") == [sorted(groups(people_db)[cluster_of(people_db, 5)])]
    with pytest.raises(UnknownClusterError):
        set_cluster_name(people_db, 12345, "Bob")


def test_new_faces_join_existing_clusters_incrementally(tmp_path: Path) -> None:
    X, truth = blobs(0.02, n_people=3, per=10)
    conn = connect(tmp_path / "i.db")
    old = np.flatnonzero(truth < 2)  # persons 0 and 1 first
    add_photos(conn, [X[i][None] for i in old])
    cluster_index(conn, "chinese_whispers", threshold=0.5)
    before = {int(f): int(c) for f, c in zip(read_faces(conn).face_id, read_faces(conn).cluster_id)}
    new = [X[i][None] for i in (0, 10)] + [X[i][None] for i in np.flatnonzero(truth == 2)]  # 2 known + a new person
    add_photos(conn, new, start=100)
    result = cluster_index(conn, "chinese_whispers", threshold=0.5)
    assert result.incremental
    after = {int(f): int(c) for f, c in zip(result.faces.face_id, result.cluster_id)}
    assert all(after[f] == c for f, c in before.items())  # nothing already clustered moved
    new_ids = sorted(set(after) - set(before))
    assert after[new_ids[0]] == before[1] and after[new_ids[1]] == before[11]
    newcomers = {after[f] for f in new_ids[2:]}
    assert len(newcomers) == 1 and newcomers.isdisjoint(before.values())


def test_constraint_rules_on_labels() -> None:
    assert list(units(5, [(0, 1), (1, 2)])) == [0, 0, 0, 3, 4]
    assert same_photo_pairs(np.array([7, 7, 8, 7])) == [(0, 1), (0, 3), (1, 3)]
    # every pair of each photo's faces (a plain double loop), photos in order of first appearance
    ids = np.random.default_rng(4).integers(0, 40, 120)
    firsts = sorted(set(ids.tolist()), key=ids.tolist().index)
    plain = [(a, b) for p in firsts for a in range(120) for b in range(a + 1, 120) if ids[a] == ids[b] == p]
    assert same_photo_pairs(ids) == plain and same_photo_pairs(np.zeros(0, np.int64)) == []
    v = np.array([[0.0], [0.1], [0.2], [3.0], [3.1]])
    # the cannot-link 0-3 evicts the face farther from the centroid (3); it joins the nearest cluster within 0.5
    labels = apply_constraints(v, "euclidean", np.array([0, 0, 0, 0, 1]), [], [(0, 3)], threshold=0.5)
    assert list(labels) == [0, 0, 0, 1, 1]
    # beyond the threshold it becomes a cluster of its own
    labels = apply_constraints(v, "euclidean", np.array([0, 0, 0, 0, 1]), [], [(0, 3)], threshold=0.05)
    assert list(labels) == [0, 0, 0, 1, 2]  # relabelled in order of first appearance
    # a must-link moves a unit as one: face 4 joins 3, and both stay away from face 0
    labels = apply_constraints(v, "euclidean", np.array([0, 0, 0, 0, 1]), [(3, 4)], [(0, 3)], threshold=0.05)
    assert labels[3] == labels[4] != labels[0] and labels[0] == labels[1] == labels[2]
