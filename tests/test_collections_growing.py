"""A photo library that grows (real LFW faces): re-runs change nothing, new photos never make it
worse, new people form new clusters, noise stays noise, named people survive."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faceprint.collections.assign import cluster_index
from faceprint.collections.clustering import as_vectors, pairwise_distances
from faceprint.collections.incremental import MEAN_FRACTION, _support, cohesion, join_new, regroup
from faceprint.collections.index import index_folder, store_results
from faceprint.collections.metrics import cluster_scores
from faceprint.collections.review import merge_clusters
from faceprint.collections.scan import PhotoFile
from faceprint.collections.store import connect, read_faces, set_cluster_name
from faceprint.collections.workers import PhotoResult

from .conftest import shared

PEOPLE = ("Ricardo_Lagos", "Paul_Wolfowitz", "Jennifer_Lopez", "Zhu_Rongji", "Tang_Jiaxuan", "Paul_Martin",
          "John_Bolton", "Hans_Blix", "Donald_Rumsfeld", "Angelina_Jolie")
NEWCOMERS = ("Jennifer_Garner", "Amelie_Mauresmo")  # first seen in a later batch
CLI = [sys.executable, "-c", "from faceprint.cli import main; main()"]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """An indexed library: 10 people with 7-8 photos, 2 newcomers, 16 people with one photo.

    Photos get neutral names (``pNNN.jpg``); the truth ``{path: person}`` is kept apart."""
    lfw = shared("lfw-view1", "images")
    root = tmp_path_factory.mktemp("library")
    singles = sorted(p for p in lfw.iterdir() if len(list(p.glob("*.jpg"))) == 1)[:16]
    sources = [f for name in PEOPLE + NEWCOMERS for f in sorted((lfw / name).glob("*.jpg"))]
    sources += [next(p.glob("*.jpg")) for p in singles]
    truth = {}
    for i, src in enumerate(sources):
        dst = root / f"p{i:03d}.jpg"
        shutil.copy(src, dst)
        truth[str(dst.resolve())] = src.parent.name
    db = tmp_path_factory.mktemp("db") / "lib.db"
    index_folder(connect(db), root)
    return db, truth


def copy(db: Path, dst: Path) -> sqlite3.Connection:
    with sqlite3.connect(db) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return connect(dst)


def hold_back(conn: sqlite3.Connection, photos: set[str]) -> list[PhotoResult]:
    """Remove ``photos`` from the index; returns them as the index would store them again."""
    faces = read_faces(conn)
    out = []
    for p in sorted(photos):
        rows = [r for r, q in enumerate(faces.photo) if q == p]
        out.append(PhotoResult(PhotoFile(p, 1, 1), "-", 250, 250, faces.xyxy[rows], np.ones(len(rows), np.float32),
                               faces.embeddings.vectors[rows]))
    conn.execute("PRAGMA foreign_keys = ON")
    conn.executemany("DELETE FROM photos WHERE path = ?", [(p,) for p in photos])
    conn.commit()
    return out


def add_back(conn: sqlite3.Connection, results: list[PhotoResult]) -> None:
    store_results(conn, results, "dlib_resnet_v1", "euclidean")


def labels(conn: sqlite3.Connection) -> dict[int, int]:
    return {int(f): int(c) for f, c in conn.execute("SELECT id, coalesce(cluster_id, -1) FROM faces")}


def centre_faces(conn: sqlite3.Connection) -> dict[str, int]:
    """Each photo's face nearest the image centre (the LFW subject): ``{path: face id}``."""
    best: dict[str, tuple[float, int]] = {}
    for fid, path, cx, cy in conn.execute("SELECT f.id, p.path, (f.x1 + f.x2) / 2, (f.y1 + f.y2) / 2 "
                                          "FROM faces f JOIN photos p ON p.id = f.photo_id"):
        d = (cx - 125) ** 2 + (cy - 125) ** 2
        if path not in best or d < best[path][0]:
            best[path] = (d, int(fid))
    return {p: f for p, (_, f) in best.items()}


def centre_labels(conn: sqlite3.Connection) -> dict[str, int]:
    """Each photo's centre face (:func:`centre_faces`) -> cluster (-1 noise)."""
    got = labels(conn)
    return {p: got[f] for p, f in centre_faces(conn).items()}


def f1(conn: sqlite3.Connection, truth: dict[str, str]) -> float:
    got = centre_labels(conn)
    photos = sorted(truth)
    return cluster_scores([truth[p] for p in photos], [got.get(p, -1) for p in photos]).f1


def test_run_twice_in_fresh_processes_changes_nothing(library: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    db, truth = library
    copy(db, tmp_path / "lib.db").close()
    path = str(tmp_path / "lib.db")
    subprocess.run(CLI + ["cluster", "--db", path], check=True, capture_output=True)
    with sqlite3.connect(path) as conn:
        first = labels(conn)
    assert sum(c >= 0 for c in first.values()) >= 50
    for extra in ([], ["--html", str(tmp_path / "sheet.html")]):  # a sheet needs no re-clustering either
        res = subprocess.run(CLI + ["cluster", "--db", path, *extra], check=True, capture_output=True, text=True)
        with sqlite3.connect(path) as conn:
            assert labels(conn) == first, res.stdout


def test_incremental_matches_full_and_keeps_cluster_ids(library: tuple[Path, dict[str, str]],
                                                       tmp_path: Path) -> None:
    db, truth = library
    conn = copy(db, tmp_path / "lib.db")
    later = {p for i, p in enumerate(sorted(truth)) if i % 5 == 0 and truth[p] in PEOPLE}  # 20% of the regulars
    batch = hold_back(conn, later)
    path = str(tmp_path / "lib.db")
    subprocess.run(CLI + ["cluster", "--db", path], check=True, capture_output=True)  # as a user: fresh processes
    before = labels(conn)
    add_back(conn, batch)
    res = subprocess.run(CLI + ["cluster", "--db", path], check=True, capture_output=True, text=True)
    assert "joined new faces to existing clusters" in res.stdout
    after = labels(conn)
    # the touched region is re-cut as --full would cut it, so a few clustered faces may move; an
    # old cluster keeps its id on at least half of its faces (ids are mapped back by overlap)
    clustered = {f: c for f, c in before.items() if c >= 0}
    moved = [f for f, c in clustered.items() if after[f] != c]
    assert len(moved) <= 0.05 * len(clustered), (len(moved), len(clustered))
    for c in set(clustered.values()):
        faces = [f for f, b in clustered.items() if b == c]
        assert 2 * sum(after[f] == c for f in faces) >= len(faces), c
    joined = sum(after[f] >= 0 for f in set(after) - set(before))
    assert joined >= 0.6 * len(batch)  # most new photos of known people found their person
    incremental_f1 = f1(conn, truth)
    cluster_index(conn, full=True)
    assert incremental_f1 >= f1(conn, truth) - 0.01, (incremental_f1, f1(conn, truth))


def test_new_people_form_new_clusters_and_noise_stays_noise(library: tuple[Path, dict[str, str]],
                                                            tmp_path: Path) -> None:
    db, truth = library
    conn = copy(db, tmp_path / "lib.db")
    batch = hold_back(conn, {p for p in truth if truth[p] in NEWCOMERS})
    cluster_index(conn)
    before = labels(conn)
    noise = {f for f, c in before.items() if c < 0}
    assert noise  # single photos and background faces
    add_back(conn, batch)
    cluster_index(conn)
    after = labels(conn)
    assert all(after[f] == c for f, c in before.items() if c >= 0)
    got = centre_labels(conn)
    old_ids = set(before.values())
    for person in NEWCOMERS:
        mine = [got[p] for p in got if truth[p] == person]
        clusters = {c for c in mine if c >= 0}
        assert clusters and clusters.isdisjoint(old_ids), person  # new clusters, not others' clusters
        assert max(mine.count(c) for c in clusters) >= len(mine) - 2, person
    newcomer_clusters = {got[p] for p in got if truth[p] in NEWCOMERS} - {-1}
    strays = [f for f in noise if after[f] >= 0 and after[f] not in newcomer_clusters]
    assert strays == []  # old noise never joined an old cluster (only, at most, a newcomer's new one)


def test_named_people_survive_full_and_incremental_runs(library: tuple[Path, dict[str, str]],
                                                        tmp_path: Path) -> None:
    db, truth = library
    conn = copy(db, tmp_path / "lib.db")
    batch = hold_back(conn, {p for i, p in enumerate(sorted(truth)) if i % 4 == 1})
    cluster_index(conn)
    got = centre_labels(conn)
    cid = max({c for c in got.values() if c >= 0}, key=lambda c: list(got.values()).count(c))
    set_cluster_name(conn, cid, "Ada")
    named = {f for f, c in labels(conn).items() if c == cid}
    add_back(conn, batch)
    cluster_index(conn)
    cluster_index(conn, "hdbscan", full=True, min_cluster_size=3)  # other settings: a full re-run
    after = labels(conn)
    assert all(after[f] == cid for f in named)
    assert conn.execute("SELECT name FROM clusters WHERE id = ?", (cid,)).fetchone() == ("Ada",)


def test_cohesion_and_join_rule_against_a_plain_loop() -> None:
    rng = np.random.default_rng(0)
    v, _ = as_vectors(rng.normal(size=(9, 4)) * 0.3, "euclidean")
    rows = np.arange(6)

    def mean_nearest(i: int, others: list[int], m: int) -> float:
        return float(np.mean(sorted(float(np.linalg.norm(v[i] - v[j])) for j in others if j != i)[:m]))

    plain = np.median([mean_nearest(i, list(rows), 3) for i in rows])
    assert cohesion(v, "euclidean", rows) == pytest.approx(plain)
    d = pairwise_distances(v[6:], v[rows], "euclidean")
    assert _support(d, 3) == pytest.approx([mean_nearest(i, list(rows), 3) for i in range(6, 9)])
    labels = np.array([0] * 6 + [-1] * 3)
    new = np.array([False] * 6 + [True] * 3)
    got = join_new(v, "euclidean", labels, new, threshold=10.0, cannot_link=[], must_link=[])
    for i in range(6, 9):
        d_i = sorted(float(np.linalg.norm(v[i] - v[j])) for j in rows)
        ok = np.mean(d_i[:3]) <= plain and sum(x <= plain for x in d_i) >= 2
        assert got[i] == (0 if ok else -1)
    # a lone face's cluster is never joined; a cannot-link keeps a face out
    lone = join_new(v, "euclidean", np.array([0] + [-1] * 8), ~np.eye(9, dtype=bool)[0], 10.0, [], [])
    assert (lone[1:] == -1).all()
    twin = np.concatenate([v[:6], v[:1] + 1e-4])
    kept = join_new(twin, "euclidean", np.array([0] * 6 + [-1]), np.array([False] * 6 + [True]), 10.0, [(0, 6)], [])
    assert kept[6] == -1
    assert join_new(twin, "euclidean", np.array([0] * 6 + [-1]), np.array([False] * 6 + [True]), 10.0, [], [])[6] == 0


def test_cli_cluster_json_reports_every_face(library: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    db, truth = library
    copy(db, tmp_path / "lib.db").close()
    res = subprocess.run(CLI + ["cluster", "--db", str(tmp_path / "lib.db"), "--json", "-"], check=True,
                         capture_output=True, text=True)
    data = json.loads(res.stdout)
    with sqlite3.connect(tmp_path / "lib.db") as conn:
        total = conn.execute("SELECT count(*) FROM faces").fetchone()[0]
    assert sum(len(c["faces"]) for c in data["clusters"]) + len(data["noise"]) == total


def test_a_new_face_far_from_a_cluster_on_average_neither_joins_nor_is_regrouped_into_it() -> None:
    # a tight pair plus a far member: a new face beside the pair passes the nearest-members
    # test but its mean distance to all three (plain loop) is above MEAN_FRACTION * threshold
    v = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [3.0, 0.0], [0.05, 0.05]])
    labels, new = np.array([0, 0, 0, 0, -1]), np.array([False] * 4 + [True])
    mean = np.mean([float(np.linalg.norm(v[4] - v[j])) for j in range(4)])
    for threshold in (mean / MEAN_FRACTION * 0.99, mean / MEAN_FRACTION * 1.01):
        joins = mean <= MEAN_FRACTION * threshold
        got = join_new(v, "euclidean", labels, new, threshold=threshold, cannot_link=[], must_link=[])
        assert got[4] == (0 if joins else -1)
        fresh = np.array([0, 0, 0, 0, 0])  # the neighbourhood run put the new face with the cluster
        placed = regroup(labels.copy(), new, np.arange(5), fresh, [], lambda: 99, v, "euclidean", threshold)
        assert placed[4] == (0 if joins else -1)
    # a named cluster takes a regrouped face only when the gallery's open-set decision says its name
    for said, want in (("Ada", 0), ("Bob", -1), (None, -1)):
        asked = []
        placed = regroup(labels.copy(), new, np.arange(5), np.zeros(5, np.int64), [], lambda: 99, v, "euclidean",
                         10.0, {0: "Ada"}, lambda rows: asked.append(len(rows)) or [said] * len(rows))
        assert placed[4] == want and asked == [1]


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_nearest_search_matches_a_plain_loop(metric: str) -> None:
    from faceprint.collections.incremental import _nearest

    rng = np.random.default_rng(1)
    v, m = as_vectors(rng.normal(size=(300, 8)), metric)
    queries, rows = np.arange(0, 40), np.arange(40, 300)
    got_i, got_d = _nearest(v, m, queries, rows, 5, chunk=16)
    for q in range(len(queries)):
        plain = sorted((float(pairwise_distances(v[queries[q]:queries[q] + 1], v[r:r + 1], m)[0, 0]), int(r))
                       for r in rows)[:5]
        assert got_i[q].tolist() == [r for _, r in plain]
        assert got_d[q] == pytest.approx([d for d, _ in plain], abs=1e-5)
    # within a radius: the same faces, cut at the radius, the rest -1 / inf
    radius = float(np.median(got_d[:, 2])) * 0.999  # between two distances: no tie at the radius
    near_i, near_d = _nearest(v, m, queries, rows, 5, chunk=16, within=radius)
    assert (near_i == -1).any() and (near_i[:, 0] >= 0).any()  # the radius cuts some lists, not all
    for q in range(len(queries)):
        keep = got_d[q] < radius
        assert near_i[q][near_d[q] < radius].tolist() == got_i[q][keep].tolist()
        assert (near_i[q][keep.sum():] == -1).all() and np.isinf(near_d[q][keep.sum():]).all()


def split_off(path: str, face_ids: list[int]) -> int:
    """Move ``face_ids`` into a new unnamed cluster (a fragment, as an older run could leave)."""
    with sqlite3.connect(path) as conn:
        cid = int(conn.execute("INSERT INTO clusters (name) VALUES (NULL)").lastrowid)
        conn.executemany("UPDATE faces SET cluster_id = ? WHERE id = ?", [(cid, f) for f in face_ids])
    return cid


def fragments(library: tuple[Path, dict[str, str]], tmp_path: Path) -> tuple[str, dict[str, list[int]], list]:
    """A library clustered (fresh CLI process) without one Ricardo_Lagos photo, his and Paul_Wolfowitz's
    clusters each split in two; returns the database, each person's centre faces and the held photo."""
    db, truth = library
    conn = copy(db, tmp_path / "lib.db")
    lagos = sorted(p for p in truth if truth[p] == "Ricardo_Lagos")
    batch = hold_back(conn, {lagos[0]})
    path = str(tmp_path / "lib.db")
    subprocess.run(CLI + ["cluster", "--db", path], check=True, capture_output=True)
    faces = {}
    for person in ("Ricardo_Lagos", "Paul_Wolfowitz"):
        rows = conn.execute("SELECT f.id, p.path, coalesce(f.cluster_id, -1), (f.x1 + f.x2) / 2, (f.y1 + f.y2) / 2 "
                            "FROM faces f JOIN photos p ON p.id = f.photo_id").fetchall()
        best: dict[str, tuple[float, int, int]] = {}
        for fid, p, cid, cx, cy in rows:
            d = (cx - 125) ** 2 + (cy - 125) ** 2
            if truth.get(p) == person and (p not in best or d < best[p][0]):
                best[p] = (d, int(fid), int(cid))
        mine = [best[p] for p in sorted(best)]
        assert len({c for _, _, c in mine}) == 1 and mine[0][2] >= 0, person  # one cluster before the split
        faces[person] = [f for _, f, _ in mine]
        split_off(path, faces[person][:3])
    conn.close()
    return path, faces, batch


def test_fragments_a_new_face_touches_merge_and_untouched_ones_stay(library: tuple[Path, dict[str, str]],
                                                                    tmp_path: Path) -> None:
    path, faces, batch = fragments(library, tmp_path)
    with sqlite3.connect(path) as conn:
        before = labels(conn)
        add_back(connect(Path(path)), batch)  # the held Ricardo_Lagos photo comes back
    res = subprocess.run(CLI + ["cluster", "--db", path], check=True, capture_output=True, text=True)
    assert "joined new faces to existing clusters" in res.stdout
    with sqlite3.connect(path) as conn:
        after = labels(conn)
    new = set(after) - set(before)
    lagos = {after[f] for f in faces["Ricardo_Lagos"]}
    assert len(lagos) == 1  # the run touched a fragment: every pair of the union is close, so they merge
    assert {after[f] for f in new if after[f] >= 0} <= lagos
    assert len({after[f] for f in faces["Paul_Wolfowitz"]}) == 2  # no new face touched these: they stay apart
    merged = {f for f in faces["Ricardo_Lagos"]}
    assert all(after[f] == c for f, c in before.items() if f not in merged)  # nothing else moved
    assert sum(before[f] != after[f] for f in merged) <= 3  # the larger fragment keeps its label
    again = subprocess.run(CLI + ["cluster", "--db", path], check=True, capture_output=True, text=True)
    with sqlite3.connect(path) as conn:
        assert labels(conn) == after, again.stdout


def test_named_fragments_are_never_merged_by_an_incremental_run(library: tuple[Path, dict[str, str]],
                                                                tmp_path: Path) -> None:
    path, faces, batch = fragments(library, tmp_path)
    with sqlite3.connect(path) as conn:
        before = labels(conn)
    lagos = faces["Ricardo_Lagos"]
    for name, face in (("Ricardo", lagos[0]), ("Lagos", lagos[-1])):  # one named, then both
        conn = connect(Path(path))
        set_cluster_name(conn, before[face], name)
        work = copy(Path(path), tmp_path / f"{name}.db")
        add_back(work, batch)
        work.close()
        subprocess.run(CLI + ["cluster", "--db", str(tmp_path / f"{name}.db")], check=True, capture_output=True)
        with sqlite3.connect(tmp_path / f"{name}.db") as done:
            after = labels(done)
        assert all(after[f] == before[f] for f in lagos), name  # the fragments keep their own labels
        assert len({after[f] for f in lagos}) == 2
        conn.close()


MIXED = ("Paul_Wolfowitz", "John_Bolton")  # one cluster of both, as a smaller library's run could leave


def mixed_library(library: tuple[Path, dict[str, str]], tmp_path: Path, how: str) -> tuple[str, dict, dict, list]:
    """The library clustered (fresh CLI process) without one photo of each of :data:`MIXED`, whose
    clusters are then one: left so by an older run (``"run"``), that cluster named (``"named"``) or
    merged by the user (``"merge"``, stored as must-links). Returns the database, each person's
    centre faces, the labels and the held photos."""
    db, truth = library
    conn = copy(db, tmp_path / "lib.db")
    held = {sorted(p for p in truth if truth[p] == person)[0] for person in MIXED}
    batch = hold_back(conn, held)
    path = str(tmp_path / "lib.db")
    subprocess.run(CLI + ["cluster", "--db", path], check=True, capture_output=True)
    centre = {f: p for p, f in centre_faces(conn).items()}
    faces = {person: sorted(f for f, p in centre.items() if truth[p] == person) for person in MIXED}
    got = labels(conn)
    keep, gone = (sorted({got[f] for f in faces[person]}) for person in MIXED)
    assert len(keep) == len(gone) == 1 and keep[0] >= 0 and gone[0] >= 0, (keep, gone)  # each one cluster first
    if how == "merge":
        merge_clusters(conn, keep[0], gone)
    else:
        with conn:
            conn.execute("UPDATE faces SET cluster_id = ? WHERE cluster_id = ?", (keep[0], gone[0]))
            conn.execute("DELETE FROM clusters WHERE id = ?", (gone[0],))
        if how == "named":
            set_cluster_name(conn, keep[0], "Ada")
    before = labels(conn)
    conn.close()
    return path, faces, before, batch


@pytest.mark.parametrize("how", ["run", "named", "merge"])
def test_a_mixed_cluster_new_photos_touch_is_split_unless_named_or_corrected(library: tuple[Path, dict[str, str]],
                                                                             tmp_path: Path, how: str) -> None:
    path, faces, before, batch = mixed_library(library, tmp_path, how)
    mixed = before[faces[MIXED[0]][0]]
    with connect(Path(path)) as conn:
        add_back(conn, batch)  # a new photo of each of the two people
    res = subprocess.run(CLI + ["cluster", "--db", path], check=True, capture_output=True, text=True)
    assert "joined new faces to existing clusters" in res.stdout  # the incremental path
    with sqlite3.connect(path) as conn:
        after = labels(conn)
        new_centre = {f for f in centre_faces(conn).values() if f not in before}
    first, second = ({after[f] for f in faces[person]} for person in MIXED)
    if how == "run":  # re-clustered with the new photos: two people, two clusters
        assert len(first) == len(second) == 1 and first != second, (first, second)
        assert mixed in first | second  # the larger part keeps the old id
        assert {after[f] for f in new_centre} == first | second  # and each new photo went to its person
    else:  # a named person and a user's merge are never undone
        assert first == second == {mixed}
        assert all(after[f] == mixed for f, c in before.items() if c == mixed)
    touched = {mixed} | {after[f] for f in new_centre}
    untouched = {f: c for f, c in before.items() if c >= 0 and c not in touched}
    assert sum(after[f] == c for f, c in untouched.items()) >= 0.9 * len(untouched)  # ids of the rest stay
    again = subprocess.run(CLI + ["cluster", "--db", path], check=True, capture_output=True, text=True)
    with sqlite3.connect(path) as conn:
        assert labels(conn) == after, again.stdout  # nothing new: nothing changes


def test_adopt_region_keeps_ids_by_overlap_against_a_plain_loop() -> None:
    from faceprint.collections.region import adopt_region

    rng = np.random.default_rng(4)
    for _ in range(200):
        n = int(rng.integers(1, 30))
        old = np.where(rng.random(n) < 0.3, -1, rng.integers(0, 5, n) * 10)
        fresh = rng.integers(-1, 6, n)
        labels = np.concatenate([old, [7, 8]])  # two rows outside the region
        rows = np.arange(n)
        counter = iter(range(1000, 2000))
        got = adopt_region(labels, rows, fresh, lambda: next(counter))
        assert got[n:].tolist() == [7, 8]
        # plain loop: singletons of unclustered faces are noise; then the largest overlap first
        size = {f: int((fresh == f).sum()) for f in set(fresh.tolist())}
        local = [-1 if f < 0 or (size[f] == 1 and o < 0) else int(f) for f, o in zip(fresh, old)]
        overlap: dict[tuple[int, int], int] = {}
        for f, o in zip(local, old):
            if f >= 0 and o >= 0:
                overlap[(f, int(o))] = overlap.get((f, int(o)), 0) + 1
        mapping, used = {}, set()
        for (f, o), _c in sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0])):
            if f not in mapping and o not in used:
                mapping[f], used = o, used | {o}
        fresh_ids = iter(range(1000, 2000))
        for f in sorted(set(local) - {-1}):
            if f not in mapping:
                mapping[f] = next(fresh_ids)
        assert got[:n].tolist() == [mapping[f] if f >= 0 else -1 for f in local]
