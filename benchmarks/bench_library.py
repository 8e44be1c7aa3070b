"""A growing photo library through the CLI: quality of first, repeated and incremental
``faceprint cluster`` runs, stability across random subsets, and clustering at 100k faces.

``quality``: a folder of photos with neutral file names and a ground-truth JSON kept apart
(``{absolute photo path: person}``; make one from LFW View 1 with ``--make-folder``) indexed
once (``faceprint index``; the database is cached and copied for each experiment). Rows:
``cluster --full``; the same command again and a plain ``cluster`` with nothing new (labels
changed); incremental: the library without a random 10% of the photos is clustered, the photos
come back through ``faceprint index`` and ``cluster`` runs again, against ``cluster --full`` on
the same photos. Scores on each photo's centre face (the LFW subject), split by person-name
hash into the tuning half (0) and the reported half (1), and on all.

``stability``: ``--subsets`` random 70% subsets (``cluster --full`` each): how many clusters
and unclustered faces each of the ``--people`` most-photographed people gets; with ``--grow``
each subset is first clustered without a further 10% of the photos, which then come back as an
index run stores them (new faces, unclustered) before a plain ``cluster`` (incremental).

``scale``: ``--faces`` faces (the library's own LFW vectors plus dlib-shaped synthetic ones,
as ``bench_gallery.py scale`` makes) written into a fresh database as an index run would;
``cluster`` (first run) wall time and peak memory of the process, then ``--add`` more faces
and ``cluster`` again (incremental).

Run: ``python benchmarks/bench_library.py quality|stability|scale --db D --truth T [--markdown]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import DATA, print_table  # noqa: E402

CLI = [sys.executable, "-c", "from faceprint.cli import main; main()"]


def make_folder(dest: Path, truth_path: Path, seed: int = 22) -> None:
    """Copy LFW View 1 into ``dest/rollNN/photo_NNNNN.jpg`` in random order; truth to ``truth_path``."""
    files = sorted((DATA / "lfw-view1" / "images").glob("*/*.jpg"))
    random.Random(seed).shuffle(files)
    truth = {}
    for i, src in enumerate(files):
        dst = dest / f"roll{i // 500:02d}" / f"photo_{i:05d}.jpg"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
        truth[str(dst.resolve())] = src.parent.name
    truth_path.write_text(json.dumps(truth))


CPU_SECONDS: list[float] = []  # user + system seconds of each run, in order
LOAD: list[float] = []  # the 1-minute load average when each run started


def run(*args: str) -> tuple[float, float, str]:
    """Run the CLI in a fresh process: ``(wall seconds, peak resident GB, stdout)``; its CPU
    seconds (user + system) go to :data:`CPU_SECONDS` (on a shared machine wall time also
    counts the other jobs)."""
    cmd = ["/usr/bin/time", "-f", "%U %S %M"] + CLI + list(args)
    LOAD.append(os.getloadavg()[0])
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {res.stderr[-2000:]}")
    user, system, peak_kb = res.stderr.strip().splitlines()[-1].split()
    CPU_SECONDS.append(float(user) + float(system))
    return seconds, int(peak_kb) / 1e6, res.stdout


def copy_db(src: Path, dst: Path) -> Path:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


def without(db: Path, paths: list[str]) -> Path:
    """``db`` with the photos ``paths`` (and their faces) deleted."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.executemany("DELETE FROM photos WHERE path = ?", [(p,) for p in paths])
    return db


def labels_of(db: Path) -> dict[str, int]:
    """``{photo path: cluster id or -1}`` of each photo's centre face (nearest the image centre)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT p.path, (f.x1 + f.x2) / 2 - p.width / 2.0, (f.y1 + f.y2) / 2 - p.height / 2.0, "
                            "coalesce(f.cluster_id, -1) FROM faces f JOIN photos p ON p.id = f.photo_id").fetchall()
    best: dict[str, tuple[float, int]] = {}
    for path, dx, dy, cid in rows:
        d = dx * dx + dy * dy
        if path not in best or d < best[path][0]:
            best[path] = (d, int(cid))
    return {p: c for p, (_, c) in best.items()}


def all_labels(db: Path) -> dict[int, int]:
    with sqlite3.connect(db) as conn:
        return {int(f): int(c) for f, c in conn.execute("SELECT id, coalesce(cluster_id, -1) FROM faces")}


def scores(truth: dict[str, str], labels: dict[str, int]) -> dict[str, object]:
    """Pairwise F1 and BCubed F on half 0, half 1 and all (photos without a face: noise)."""
    from faceprint.collections.metrics import cluster_scores

    out = {}
    for name, keep in (("tune", 0), ("report", 1), ("all", None)):
        photos = [p for p in sorted(truth) if keep is None or zlib.crc32(truth[p].encode()) % 2 == keep]
        out[name] = cluster_scores([truth[p] for p in photos], [labels.get(p, -1) for p in photos])
    return out


def score_cells(s: dict[str, object]) -> list[str]:
    return [f"{s[h].f1:.4f} / {s[h].bcubed_f:.4f}" for h in ("tune", "report", "all")]


def quality(args: argparse.Namespace) -> None:
    truth = json.loads(Path(args.truth).read_text())
    folder = Path(args.folder)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        db = copy_db(Path(args.db), tmp / "lib.db")
        sec, gb, _ = run("cluster", "--db", str(db), "--full")
        first = all_labels(db)
        rows.append(["cluster --full (first run)", *score_cells(scores(truth, labels_of(db))), f"{sec:.1f}", "-"])
        sec, gb, _ = run("cluster", "--db", str(db))
        again = all_labels(db)
        changed = sum(first[f] != again[f] for f in first)
        rows.append(["cluster again, nothing new", *score_cells(scores(truth, labels_of(db))), f"{sec:.1f}",
                     str(changed)])
        sec, gb, _ = run("cluster", "--db", str(db), "--html", str(tmp / "s.html"))
        changed = sum(first[f] != all_labels(db)[f] for f in first)
        rows.append(["cluster --html, nothing new", *score_cells(scores(truth, labels_of(db))), f"{sec:.1f}",
                     str(changed)])
        for seed in range(args.repeats):
            photos = sorted(truth)
            gone = random.Random(seed).sample(photos, len(photos) // 10)
            inc = without(copy_db(Path(args.db), tmp / f"inc{seed}.db"), gone)
            run("cluster", "--db", str(inc))
            before = all_labels(inc)
            run("index", str(folder), "--db", str(inc))
            sec, gb, _ = run("cluster", "--db", str(inc))
            after = all_labels(inc)
            moved = sum(c >= 0 and after[f] != c for f, c in before.items())
            woke = sum(c < 0 and after[f] >= 0 for f, c in before.items())
            inc_s = scores(truth, labels_of(inc))
            rows.append([f"+10% new photos (seed {seed}), incremental", *score_cells(inc_s), f"{sec:.1f}",
                         f"{moved} clustered moved, {woke} old noise now clustered"])
            ref = copy_db(inc, tmp / f"ref{seed}.db")
            sec, gb, _ = run("cluster", "--db", str(ref), "--full")
            rows.append([f"same photos (seed {seed}), cluster --full", *score_cells(scores(truth, labels_of(ref))),
                         f"{sec:.1f}", "-"])
    print_table(("run", "tune F1 / BCubed", "report F1 / BCubed", "all F1 / BCubed", "s", "labels changed"),
                rows, args.markdown)


def hold_back(db: Path, paths: list[str]) -> None:
    """Take ``paths`` out of the library, keeping their photo and face rows aside (``put_back``)."""
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE held_photos AS SELECT * FROM photos WHERE path IN (SELECT value FROM json_each(?))",
                     (json.dumps(paths),))
        conn.execute("CREATE TABLE held_faces AS SELECT * FROM faces WHERE photo_id IN (SELECT id FROM held_photos)")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM photos WHERE id IN (SELECT id FROM held_photos)")


def put_back(db: Path) -> None:
    """The held photos come back as an index run stores them: new face ids, not yet clustered."""
    with sqlite3.connect(db) as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(faces)")]
        top = conn.execute("SELECT coalesce(max(id), 0) FROM faces").fetchone()[0]
        fresh = {"id": f"id + {top}", "cluster_id": "NULL", "clustered": "0"}
        conn.execute("INSERT INTO photos SELECT * FROM held_photos")
        conn.execute(f"INSERT INTO faces ({', '.join(cols)}) SELECT {', '.join(fresh.get(c, c) for c in cols)} "
                     "FROM held_faces")
        conn.execute("DROP TABLE held_photos")
        conn.execute("DROP TABLE held_faces")


def stability(args: argparse.Namespace) -> None:
    """Each top person's (clusters, unclustered faces) over random 70% subsets, ``cluster --full``
    each; with ``--grow``, also the same subset grown: clustered without a further 10%, those
    added, and a plain ``cluster`` (incremental) run."""
    truth = json.loads(Path(args.truth).read_text())
    counts: dict[str, int] = {}
    for p in truth.values():
        counts[p] = counts.get(p, 0) + 1
    top = sorted(counts, key=lambda p: (-counts[p], p))[:args.people]
    whole = {(p, grown): 0 for p in top for grown in (False, True)}
    rows = []

    def cells(db: Path, grown: bool) -> list[str]:
        labels = labels_of(db)
        out = []
        for person in top:
            mine = [labels[p] for p in labels if truth.get(p) == person]
            clusters = {c for c in mine if c >= 0}
            noise = sum(c < 0 for c in mine)
            whole[(person, grown)] += len(clusters) == 1 and noise == 0
            out.append(f"{len(mine)}: {len(clusters)}c+{noise}n")
        return out

    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.subsets):
            photos = sorted(truth)
            rng = random.Random(100 + seed)
            gone = rng.sample(photos, int(len(photos) * 0.3))
            db = without(copy_db(Path(args.db), Path(tmp) / f"s{seed}.db"), gone)
            run("cluster", "--db", str(db), "--full")
            rows.append([str(seed), "cluster --full", *cells(db, False)])
            if args.grow:  # the same subset grown: clustered without a further 10%, then those added
                grown = without(copy_db(Path(args.db), Path(tmp) / f"g{seed}.db"), gone)
                hold_back(grown, rng.sample(sorted(set(photos) - set(gone)), len(photos) // 10))
                run("cluster", "--db", str(grown), "--full")
                put_back(grown)
                run("cluster", "--db", str(grown))
                rows.append([str(seed), "60% --full, +10% cluster", *cells(grown, True)])
    print_table(("subset", "run", *top), rows, args.markdown)
    for grown in (False, True) if args.grow else (False,):
        label = "after the incremental add" if grown else "cluster --full"
        print(f"{label}: " + ", ".join(f"{p}: one cluster in {whole[(p, grown)]}/{args.subsets}" for p in top))


def write_faces(db: Path, vectors: np.ndarray, start: int, model_id: str, metric: str) -> None:
    """Store ``vectors`` as one-face photos ``/synthetic/NNNNNNN.jpg``, as an index run would."""
    from faceprint.collections.index import store_results
    from faceprint.collections.scan import PhotoFile
    from faceprint.collections.store import connect
    from faceprint.collections.workers import PhotoResult

    conn = connect(db)
    box, score = np.array([[60, 60, 190, 190]], np.float32), np.ones(1, np.float32)
    for s in range(0, len(vectors), 5000):
        store_results(conn, [PhotoResult(PhotoFile(f"/synthetic/{start + i:07d}.jpg", 1, 1), "-", 250, 250, box, score,
                                         vectors[i:i + 1]) for i in range(s, min(len(vectors), s + 5000))],
                      model_id, metric)
    conn.close()


def scale(args: argparse.Namespace) -> None:
    """100k faces: ``cluster`` first run and after adding ``--add`` faces (fresh processes)."""
    from bench_gallery import DlibShaped

    from faceprint.collections.metrics import cluster_scores
    from faceprint.collections.store import connect, read_faces

    truth = json.loads(Path(args.truth).read_text())
    real = read_faces(connect(Path(args.db)))
    centre = labels_of_rows(real)
    lfw = real.embeddings.vectors[[centre[p] for p in sorted(centre) if p in truth]]
    model = DlibShaped(lfw, [truth[p] for p in sorted(centre) if p in truth])
    n_syn = args.faces - len(real) + args.add
    per = 4
    centres = model.centres(n_syn // per + 1, np.random.default_rng(0))
    ident = np.random.default_rng(3).permutation(np.arange(n_syn) // per)  # a library grows in no order
    syn = model.photos(centres[ident], np.random.default_rng(2))
    rows: list[list[str]] = []

    def add(row: list[str]) -> None:  # shown as it comes (a long run stopped early keeps its rows)
        rows.append(row)
        print(" | ".join(row), file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        db = copy_db(Path(args.db), Path(tmp) / "big.db")
        write_faces(db, syn[:n_syn - args.add], 0, real.embeddings.model_id, real.embeddings.metric)
        sec, gb, out = run("cluster", "--db", str(db))
        first = all_labels(db)
        add([f"cluster, first run ({len(first)} faces)", f"{sec:.1f}", f"{CPU_SECONDS[-1]:.1f}", f"{gb:.2f}",
                     f"{LOAD[-1]:.1f}", out.strip()])
        sec, gb, out = run("cluster", "--db", str(db))
        same = sum(first[f] != c for f, c in all_labels(db).items())
        add(["cluster, nothing new", f"{sec:.1f}", f"{CPU_SECONDS[-1]:.1f}", f"{gb:.2f}", f"{LOAD[-1]:.1f}",
                     f"{same} labels changed"])
        write_faces(db, syn[n_syn - args.add:], n_syn - args.add, real.embeddings.model_id, real.embeddings.metric)
        sec, gb, out = run("cluster", "--db", str(db))
        after = all_labels(db)
        moved = sum(c >= 0 and after[f] != c for f, c in first.items())
        add([f"cluster after adding {args.add} faces", f"{sec:.1f}", f"{CPU_SECONDS[-1]:.1f}", f"{gb:.2f}",
                     f"{LOAD[-1]:.1f}", f"{out.strip()}; {moved} clustered faces moved"])
        with sqlite3.connect(db) as conn:
            got = dict(conn.execute("SELECT p.path, coalesce(f.cluster_id, -1) FROM faces f "
                                    "JOIN photos p ON p.id = f.photo_id WHERE p.path LIKE '/synthetic/%'"))
        ids = [got[f"/synthetic/{i:07d}.jpg"] for i in range(n_syn)]
        s = cluster_scores(ident, ids)
        add(["synthetic identities: pairwise F1 / BCubed F", f"{s.f1:.4f}", f"{s.bcubed_f:.4f}", "", "", ""])
    print_table(("run", "wall s", "CPU s", "peak GB", "load avg", "result"), rows, args.markdown)
    print(f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def labels_of_rows(faces: object) -> dict[str, int]:
    """``{photo: row of its face nearest the centre of a 250 px LFW image}``."""
    c = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
    d = np.linalg.norm(c - 125, axis=1)
    best: dict[str, int] = {}
    for r, p in enumerate(faces.photo):
        if p not in best or d[r] < d[best[p]]:
            best[p] = r
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["quality", "stability", "scale", "make-folder"])
    parser.add_argument("--db", default="/tmp/issue22-cache/full.db")
    parser.add_argument("--truth", default="/tmp/issue22-cache/truth.json")
    parser.add_argument("--folder", default="/tmp/issue22-cache/photos")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--subsets", type=int, default=18)
    parser.add_argument("--people", type=int, default=5, help="stability: how many most-photographed people")
    parser.add_argument("--grow", action="store_true",
                        help="stability: each subset clustered without its last 10%%, then those added (incremental)")
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--add", type=int, default=1000)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.mode == "make-folder":
        make_folder(Path(args.folder), Path(args.truth))
        return
    {"quality": quality, "stability": stability, "scale": scale}[args.mode](args)


if __name__ == "__main__":
    main()
