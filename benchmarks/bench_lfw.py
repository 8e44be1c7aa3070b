"""LFW pair verification: faceprint's default pipeline vs face_recognition's, on the same pairs.

Both sides embed each unique image once and use the face nearest the image centre.

- faceprint: ``FacePipeline()`` (MTCNN + dlib ResNet on ONNX Runtime) through
  :func:`faceprint.evaluation.lfw.pair_distances`; images with no face get the documented
  centre fallback (counted in ``no face``).
- face_recognition (the anchor): ``face_locations`` (HOG, upsample 1) then ``face_encodings``
  for those locations, exactly what ``face_encodings(image)`` does, keeping the locations so
  the centre face can be chosen. An image with no face makes its pairs a failure: they are
  decided "different" (distance set to 10, beyond any real one).

Reported per side: accuracy at the model's default threshold (0.6), accuracy at the best
threshold on these pairs (self-tuned), AUC, TAR at FAR 1e-3, images without a face and
images/s (image decoding included, after one warm-up image) and CPU time per image (all
threads; the anchor runs on one core, faceprint overlaps detection with embedding on two).
Ratio = faceprint / anchor. On a shared machine images/s moves with the load; CPU ms/image
is the steadier cost figure.

Needs the anchor (``pip install --no-deps face_recognition``) and the shared LFW View 1 data.
Run: ``python benchmarks/bench_lfw.py [--pairs FILE] [--root DIR] [--limit N]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import DATA, print_table  # noqa: E402
NO_FACE_DISTANCE = 10.0


def anchor_distances(paths: list[Path], a_idx: np.ndarray, b_idx: np.ndarray) -> tuple[np.ndarray, int, float, float]:
    """face_recognition's distances per pair, images without a face, images/s, CPU ms/image."""
    import face_recognition

    face_recognition.face_encodings(face_recognition.load_image_file(str(paths[0])))  # warm-up
    vectors: list[np.ndarray | None] = []
    t0, c0 = time.perf_counter(), time.process_time()
    for path in paths:
        img = face_recognition.load_image_file(str(path))
        locs = face_recognition.face_locations(img)  # HOG, upsample 1: face_encodings' default
        if not locs:
            vectors.append(None)
            continue
        encs = face_recognition.face_encodings(img, locs)
        h, w = img.shape[:2]
        centres = [((l + r) / 2 - w / 2) ** 2 + ((t + b) / 2 - h / 2) ** 2 for t, r, b, l in locs]
        vectors.append(encs[int(np.argmin(centres))])
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    dist = np.array([NO_FACE_DISTANCE if vectors[i] is None or vectors[j] is None
                     else float(np.linalg.norm(vectors[i] - vectors[j])) for i, j in zip(a_idx, b_idx)])
    return dist, sum(v is None for v in vectors), len(paths) / seconds, 1e3 * cpu / len(paths)


def faceprint_distances(pairs: object) -> tuple[np.ndarray, int, float, float]:
    """faceprint's distances per pair, images without a face, images/s, CPU ms/image (all threads)."""
    from faceprint import FacePipeline
    from faceprint.evaluation.lfw import embed_images, pair_distances

    pipe = FacePipeline()
    embed_images(pipe, [pairs.unique_images()[0][0]])  # warm-up: model conversion and session start
    c0 = time.process_time()
    dist = pair_distances(pipe, pairs)
    cpu = time.process_time() - c0
    return dist.distances, dist.no_face, dist.images_per_s, 1e3 * cpu / dist.n_images


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
    d, no_face, ips, cpu_ms = faceprint_distances(pairs)
    fp = summarise(d, y, no_face, ips, cpu_ms, threshold)
    d, no_face, ips, cpu_ms = anchor_distances(paths, a_idx, b_idx)
    fr = summarise(d, y, no_face, ips, cpu_ms, threshold)
    rows = []
    for key in fp:
        fmt = ".0f" if key == "no face" else ".1f" if key in ("images/s", "CPU ms / image") else ".4f"
        ratio = f"{fp[key] / fr[key]:.2f}" if fr[key] else "-"
        rows.append((key, format(fp[key], fmt), format(fr[key], fmt), ratio))
    print_table(("metric", "faceprint", "face_recognition", "ratio"), rows, args.markdown)

if __name__ == "__main__":
    main()
