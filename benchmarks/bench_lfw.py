"""LFW pair verification: faceprint's default pipeline vs face_recognition's, on the same pairs.

Each unique image is embedded once per row. The user's-path rows come first:

- ``faceprint verify`` (the user's path): the largest face of each image, what ``faceprint
  verify A B`` compares, through :func:`faceprint.evaluation.lfw.pair_distances` with
  ``choice="largest"`` (= ``eval lfw --face-choice largest``); a pair with an image where no
  face is found (verify exits with "no face") is decided "different". A few pairs where the
  two face choices disagree are re-run through the real ``faceprint verify --json`` in a fresh
  process, and the largest distance difference to this row is printed.
- face_recognition's user's path (the anchor): ``face_encodings(image)[0]``, the first face
  found by ``face_locations`` (HOG, upsample 1); no face decides the pair "different".
- extra rows: the LFW protocol's face nearest the centre, for faceprint with its documented
  centre fallback (``eval lfw``, default), and for face_recognition (no fallback).

Reported per row: accuracy at the model's default threshold (0.6, dlib's, not tuned here),
accuracy at the best threshold on these pairs (self-tuned: optimistic), AUC, TAR at FAR 1e-3
and 1e-2, images without a face, images/s (decoding included, after one warm-up image) and
CPU time per image (all threads). Ratio row = faceprint verify / face_recognition
``[0]``. On a shared machine images/s moves with the load; CPU ms/image is steadier.

Needs the anchor (``pip install --no-deps face_recognition``) and the shared LFW View 1 data.
Run: ``python benchmarks/bench_lfw.py [--pairs FILE] [--root DIR] [--limit N] [--markdown]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import DATA, print_table  # noqa: E402
from faceprint.evaluation.lfw import NO_FACE_DISTANCE  # noqa: E402


def anchor_distances(paths: list[Path], a_idx: np.ndarray, b_idx: np.ndarray) -> dict[str, tuple]:
    """face_recognition's rows: ``first`` (``face_encodings(img)[0]``) and ``centre``, each
    (distances per pair, images without a face, images/s, CPU ms/image) from one timed loop."""
    import face_recognition

    face_recognition.face_encodings(face_recognition.load_image_file(str(paths[0])))  # warm-up
    first: list[np.ndarray | None] = []
    centre: list[np.ndarray | None] = []
    t0, c0 = time.perf_counter(), time.process_time()
    for path in paths:
        img = face_recognition.load_image_file(str(path))
        locs = face_recognition.face_locations(img)  # HOG, upsample 1: face_encodings' default
        if not locs:
            first.append(None)
            centre.append(None)
            continue
        encs = face_recognition.face_encodings(img, locs)
        h, w = img.shape[:2]
        centres = [((l + r) / 2 - w / 2) ** 2 + ((t + b) / 2 - h / 2) ** 2 for t, r, b, l in locs]
        first.append(encs[0])
        centre.append(encs[int(np.argmin(centres))])
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = {}
    for name, vectors in (("first", first), ("centre", centre)):
        dist = np.array([NO_FACE_DISTANCE if vectors[i] is None or vectors[j] is None
                         else float(np.linalg.norm(vectors[i] - vectors[j])) for i, j in zip(a_idx, b_idx)])
        rows[name] = (dist, sum(v is None for v in vectors), len(paths) / seconds, 1e3 * cpu / len(paths))
    return rows


def faceprint_distances(pairs: object, choice: str) -> tuple[np.ndarray, int, float, float]:
    """faceprint's distances per pair under face ``choice``, images without a face, images/s,
    CPU ms/image (all threads)."""
    from faceprint import FacePipeline
    from faceprint.evaluation.lfw import embed_images, pair_distances

    pipe = FacePipeline()
    embed_images(pipe, [pairs.unique_images()[0][0]])  # warm-up: model conversion and session start
    c0 = time.process_time()
    dist = pair_distances(pipe, pairs, choice=choice)
    cpu = time.process_time() - c0
    return dist.distances, dist.no_face, dist.images_per_s, 1e3 * cpu / dist.n_images


def check_verify_cli(pairs: object, largest: np.ndarray, centre: np.ndarray, n: int = 3) -> str:
    """Re-run ``n`` pairs where the face choices disagree through ``faceprint verify --json`` in
    fresh processes; the largest |distance - largest-row distance| (the row is verify's rule)."""
    import json
    import subprocess

    paths, a_idx, b_idx = pairs.unique_images()
    differ = np.flatnonzero((np.abs(largest - centre) > 1e-3) & (largest < NO_FACE_DISTANCE))[:n]
    if len(differ) == 0:
        return "no pair where the face choices disagree"
    worst = 0.0
    for k in differ:
        out = subprocess.run([sys.executable, "-c", "from faceprint.cli import main; main()", "verify",
                              str(paths[a_idx[k]]), str(paths[b_idx[k]]), "--json"],
                             capture_output=True, text=True, check=True)
        worst = max(worst, abs(json.loads(out.stdout)["distance"] - largest[k]))
    return f"{len(differ)} pairs where the face choices disagree, through `faceprint verify --json`: max |diff| {worst:.2e}"


def summarise(d: np.ndarray, y: np.ndarray, no_face: int, ips: float, cpu_ms: float,
              threshold: float) -> dict[str, float]:
    from faceprint.evaluation import metrics

    return {
        "accuracy @ 0.6": metrics.accuracy_at(d, y, threshold),
        "accuracy (self-tuned)": metrics.best_threshold(d, y)[1],
        "AUC": metrics.auc(d, y),
        "TAR @ FAR 1e-3": metrics.tar_at_far(d, y, 1e-3),
        "TAR @ FAR 1e-2": metrics.tar_at_far(d, y, 1e-2),
        "no face": float(no_face),
        "images/s": ips,
        "CPU ms / image": cpu_ms,
    }


def _cell(key: str, value: float) -> str:
    return format(value, ".0f" if key == "no face" else ".1f" if key in ("images/s", "CPU ms / image") else ".4f")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=DATA / "lfw-view1" / "pairsDevTest.txt")
    parser.add_argument("--root", type=Path, default=DATA / "lfw-view1" / "images")
    parser.add_argument("--limit", type=int, default=0, help="Use only the first N same and N different pairs.")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table for the README")
    args = parser.parse_args()

    from faceprint.embedders.dlib_resnet import DLIB_RESNET_SPEC
    from faceprint.evaluation.pairs import read_pairs

    pairs = read_pairs(args.pairs, args.root)
    if args.limit:
        pairs = pairs.head(args.limit, args.limit)
    paths, a_idx, b_idx = pairs.unique_images()
    y = pairs.labels
    print(f"{len(pairs)} pairs ({int(y.sum())} same) over {len(paths)} images from {args.pairs}")
    threshold = DLIB_RESNET_SPEC.threshold
    largest = faceprint_distances(pairs, "largest")
    centre = faceprint_distances(pairs, "centre")
    anchor = anchor_distances(paths, a_idx, b_idx)
    results = [(name, summarise(res[0], y, *res[1:], threshold)) for name, res in (
        ("faceprint verify (largest face; no face: pair 'different')", largest),
        ("face_recognition face_encodings(img)[0] (anchor)", anchor["first"]),
        ("extra: faceprint eval lfw (centre face, centre fallback)", centre),
        ("extra: face_recognition centre face", anchor["centre"]),
    )]
    keys = list(results[0][1])
    rows = [(name, *(_cell(k, r[k]) for k in keys)) for name, r in results]
    fp, fr = results[0][1], results[1][1]
    rows.append(("ratio faceprint verify / face_recognition [0]",
                 *(f"{fp[k] / fr[k]:.2f}" if fr[k] else "-" for k in keys)))
    print_table(("setting", *keys), rows, args.markdown)
    changed = int(np.sum(np.abs(largest[0] - centre[0]) > 1e-3))
    print(f"pairs whose distance differs between the face choices: {changed}")
    print(check_verify_cli(pairs, largest[0], centre[0]))


if __name__ == "__main__":
    main()
