"""Photo collections: indexing throughput and clustering quality vs face_recognition + dlib, in one run.

Both measured through the commands users run, each a fresh ``faceprint`` process with its
defaults, on LFW View 1 people linked into temporary folder trees:

- **report set**: people with at least ``--min-photos`` photos (default 4: 180 people, 868 photos);
- **tuning set**: people with 2 or 3 photos (985 people, 2,194 photos), disjoint from the report
  set by construction (split by identity).

1. throughput: ``faceprint index DIR --db DB`` (defaults: one worker per core), timed around the
   process (start-up included, what a user waits), against face_recognition's load +
   ``face_locations`` (HOG, upsample 1) + ``face_encodings`` per photo, one after the other;
   ``--workers N`` adds labelled rows;
2. clustering: ``faceprint cluster --db DB --full --json -`` (defaults: HDBSCAN cut at the
   model's threshold, every indexed face, same-photo cannot-links) scored as it stands. Every
   indexed face takes part; the face scored per photo is the one nearest the photo centre (LFW
   labels the centred person; the other faces have no label and are left out of the scores);
   a photo without a face counts as an unclustered singleton. Extra rows: the HDBSCAN cut
   chosen by ``faceprint cluster --threshold T`` on the tuning set (best pairwise F1), the
   other algorithms at their defaults, and the anchor, dlib's ``chinese_whispers_clustering``
   on every face_recognition encoding at dlib's 0.5, scored the same way.

face_recognition's encodings are cached in ``--cache`` (default ``/tmp/s2-15b-cache``).
Run: ``python benchmarks/bench_collections.py [--workers N ...] [--limit N] [--markdown]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
import types
from importlib import resources
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import DATA, print_table  # noqa: E402


def lfw_tree(dest: Path, min_photos: int, limit: int | None, max_photos: int | None = None) -> list[Path]:
    """Link ``dest/<Name>/<photo>`` for people with ``min_photos`` to ``max_photos`` photos; returns the links."""
    images = DATA / "lfw-view1" / "images"
    people = [p for p in sorted(images.iterdir())
              if min_photos <= len(list(p.glob("*.jpg"))) <= (max_photos or 1 << 30)]
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


CUTS = (0.45, 0.5, 0.55, 0.5733, 0.6, 0.6133, 0.65)


def faceprint_cli(*argv: str) -> str:
    """Run ``faceprint ARGV`` in a fresh process; its stdout."""
    return subprocess.run([sys.executable, "-c", "from faceprint.cli import main; main()", *argv],
                          capture_output=True, text=True, check=True).stdout


def face_recognition_run(photos: list[Path], cache: Path) -> tuple[float, list[list[tuple[np.ndarray, tuple]]]]:
    """Seconds for load + HOG detect + encode of every photo, and each photo's (encoding, box
    ``(top, right, bottom, left)``) list; cached in ``cache`` (seconds from the measured run)."""
    if cache.exists():
        data = np.load(cache, allow_pickle=True)
        return float(data["seconds"]), list(data["faces"])
    # face_recognition_models uses pkg_resources, which recent setuptools no longer ships
    sys.modules.setdefault("pkg_resources", types.SimpleNamespace(
        resource_filename=lambda pkg, res: str(resources.files(pkg) / res)))
    import face_recognition

    face_recognition.face_encodings(np.zeros((64, 64, 3), np.uint8))  # load models before timing
    out: list[list[tuple[np.ndarray, tuple]]] = []
    t0 = time.perf_counter()
    for path in photos:
        img = face_recognition.load_image_file(str(path))
        locs = face_recognition.face_locations(img)
        out.append(list(zip(face_recognition.face_encodings(img, locs), locs)))
    seconds = time.perf_counter() - t0
    cache.parent.mkdir(parents=True, exist_ok=True)
    faces = np.empty(len(out), dtype=object)
    faces[:] = out
    np.savez(cache, seconds=seconds, faces=faces)
    return seconds, out


def centre_row(boxes: list[tuple[float, float, float, float]], hw: tuple[int, int] = (250, 250)) -> int:
    """Index of the xyxy box whose centre is nearest the centre of an ``hw`` photo."""
    h, w = hw
    return int(np.argmin([((x1 + x2) / 2 - w / 2) ** 2 + ((y1 + y2) / 2 - h / 2) ** 2 for x1, y1, x2, y2 in boxes]))


def score_clusters(photos: list[Path], truth: list[str], faces: list[tuple[str, tuple, int]]) -> object:
    """Score ``(photo, xyxy box, cluster or -1)`` of every face by the centre face of each photo."""
    from faceprint.collections.metrics import cluster_scores

    per_photo: dict[str, list[tuple[tuple, int]]] = collections.defaultdict(list)
    for photo, box, label in faces:
        per_photo[str(Path(photo).name)].append((box, label))
    pred = []
    for path in photos:
        found = per_photo.get(path.name, [])
        pred.append(found[centre_row([b for b, _ in found])][1] if found else -1)
    return cluster_scores(truth, np.array(pred, dtype=np.int64))


def cli_clusters(db: Path, *options: str) -> list[tuple[str, tuple, int]]:
    """``faceprint cluster --db DB --full --json - OPTIONS`` as (photo, box, cluster or -1) per face."""
    data = json.loads(faceprint_cli("cluster", "--db", str(db), "--full", "--json", "-", *options))
    faces = [(f["photo"], tuple(f["box"]), c["id"]) for c in data["clusters"] for f in c["faces"]]
    return faces + [(f["photo"], tuple(f["box"]), -1) for f in data["noise"]]


def index_cli(root: Path, db: Path, *options: str) -> tuple[float, dict]:
    """Wall seconds of ``faceprint index ROOT --db DB --json OPTIONS`` (a fresh process) and its report."""
    t0 = time.perf_counter()
    rep = json.loads(faceprint_cli("index", str(root), "--db", str(db), "--json", *options))
    return time.perf_counter() - t0, rep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-photos", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N photos")
    parser.add_argument("--workers", type=int, nargs="*", default=[], help="extra index rows with --workers N")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/s2-15b-cache"))
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"shared data not found at {DATA}")
    import dlib

    with tempfile.TemporaryDirectory() as tmp:
        root, tune_root = Path(tmp) / "photos", Path(tmp) / "tune"
        photos = lfw_tree(root, args.min_photos, args.limit)
        tune_photos = lfw_tree(tune_root, 2, args.limit, max_photos=args.min_photos - 1)
        truth, tune_truth = [p.parent.name for p in photos], [p.parent.name for p in tune_photos]
        print(f"report set: {len(photos)} photos of {len(set(truth))} people; tuning set: {len(tune_photos)} "
              f"photos of {len(set(tune_truth))} people", file=sys.stderr)
        fr_seconds, fr_faces = face_recognition_run(photos, args.cache / f"fr_lfw{args.min_photos}_{args.limit}.npz")
        fr_rate = len(photos) / fr_seconds
        db = Path(tmp) / "index.db"
        wall, rep = index_cli(root, db)
        speed_rows = [("faceprint index (defaults; process wall time)", f"{len(photos) / wall:.1f}",
                       f"{len(photos) / wall / fr_rate:.1f}x", f"{rep['faces']}"),
                      ("face_recognition load+HOG+encode loop (anchor)", f"{fr_rate:.1f}", "1.0x",
                       f"{sum(len(f) for f in fr_faces)}")]
        for w in args.workers:
            wall_w, rep_w = index_cli(root, Path(tmp) / f"index{w}.db", "--workers", str(w))
            speed_rows.append((f"extra: faceprint index --workers {w}", f"{len(photos) / wall_w:.1f}",
                               f"{len(photos) / wall_w / fr_rate:.1f}x", f"{rep_w['faces']}"))
        print_table(("indexing", "photos/s", "vs face_recognition", "faces"), speed_rows, args.markdown)
        print()

        tune_db = Path(tmp) / "tune.db"
        index_cli(tune_root, tune_db)
        tune_f1 = {cut: score_clusters(tune_photos, tune_truth, cli_clusters(tune_db, "--threshold", str(cut))).f1
                   for cut in CUTS}
        best = max(CUTS, key=lambda c: (tune_f1[c], -abs(c - 0.6133)))
        print("tuning set, hdbscan cut -> pairwise F1: " + ", ".join(f"{c:g}: {f:.4f}" for c, f in tune_f1.items())
              + f"; chosen {best:g}")
        rows = []

        def row(name: str, s: object, seconds: float) -> None:
            rows.append((name, f"{s.precision:.4f}", f"{s.recall:.4f}", f"{s.f1:.4f}", f"{s.bcubed_f:.4f}",
                         f"{s.nmi:.4f}", f"{s.n_clusters}/{s.n_people}", str(s.n_noise), f"{seconds:.1f}"))

        runs = [("faceprint cluster (defaults: hdbscan, model threshold)", ()),
                ("dlib chinese_whispers 0.5 on face_recognition (anchor)", None),
                (f"extra: faceprint cluster --threshold {best:g} (chosen on the tuning set)", ("--threshold", str(best))),
                ("extra: faceprint cluster --algorithm chinese_whispers", ("--algorithm", "chinese_whispers")),
                ("extra: faceprint cluster --algorithm agglomerative", ("--algorithm", "agglomerative"))]
        for name, options in runs:
            t0 = time.perf_counter()
            if options is None:
                vectors = [dlib.vector(e) for faces in fr_faces for e, _ in faces]
                labels = iter(dlib.chinese_whispers_clustering(vectors, 0.5))
                faces = [(str(p), (l, t, r, b), next(labels)) for p, found in zip(photos, fr_faces)
                         for _, (t, r, b, l) in found]
            else:
                faces = cli_clusters(db, *options)
            row(name, score_clusters(photos, truth, faces), time.perf_counter() - t0)
        print_table(("clustering", "P", "R", "pairwise F1", "BCubed F", "NMI", "clusters/people", "noise",
                     "seconds"), rows, args.markdown)


if __name__ == "__main__":
    main()
