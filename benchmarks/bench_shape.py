"""dlib's 5-point shape predictor: the numpy port against dlib itself, side by side.

- In-process: ms per face on the first ``--limit`` LFW View 1 DevTest images, one face each
  (dlib's HOG box), after a warm-up; dlib's ``shape_predictor`` vs
  :class:`faceprint.dlibport.shape.ShapePredictor` one face per call and 8 faces per call. The
  points are compared too (they must be equal).
- Loading: parsing the ``.dat`` (first use, then cached) and loading the cached ``.npz``
  (every later process) against ``dlib.shape_predictor(path)``.
- Whole process: ``faceprint verify`` on two photos, wall seconds, median of ``--runs`` fresh
  processes, for a checkout given by ``--base`` (e.g. the commit before the port, exported with
  ``git archive``) and for this one, both with a warm model cache.

Needs dlib (``pip install 'faceprint[dlib]'``) and the shared data.
Run: ``python benchmarks/bench_shape.py [--limit N] [--runs N] [--base SRC_DIR] [--markdown]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import DATA, print_table  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"


def _faces(limit: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    import dlib

    from faceprint import load_image

    det = dlib.get_frontal_face_detector()
    images, boxes = [], []
    lines = (DATA / "lfw-view1" / "pairsDevTest.txt").read_text().split("\n")[1:]
    names = []
    for line in lines:
        f = line.split()
        if len(f) == 3:
            names += [(f[0], int(f[1])), (f[0], int(f[2]))]
        elif len(f) == 4:
            names += [(f[0], int(f[1])), (f[2], int(f[3]))]
    for name, k in dict.fromkeys(names):
        rgb = load_image(DATA / "lfw-view1" / "images" / name / f"{name}_{k:04d}.jpg")
        rects = det(rgb, 1)
        if len(rects):
            r = max(rects, key=lambda r: r.area())
            images.append(rgb)
            boxes.append(np.array([[r.left(), r.top(), r.right(), r.bottom()]]))
        if len(images) >= limit:
            break
    return images, boxes


def _per_face(fn, images: list[np.ndarray], boxes: list[np.ndarray], faces_per_call: int = 1) -> float:
    fn(images[0], boxes[0])
    start = time.perf_counter()
    for rgb, box in zip(images, boxes):
        fn(rgb, np.repeat(box, faces_per_call, axis=0))
    return (time.perf_counter() - start) / (len(images) * faces_per_call) * 1000


def _verify_wall(src: Path, runs: int) -> float:
    a, b = DATA / "people" / "obama.jpg", DATA / "people" / "biden.jpg"
    env = dict(os.environ, PYTHONPATH=str(src))
    cmd = [sys.executable, "-c", "import sys; from faceprint.cli import main; sys.argv[0] = 'faceprint'; main()",
           "verify", str(a), str(b)]
    subprocess.run(cmd, env=env, capture_output=True, check=True)  # warm the cache (conversions)
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, check=True)
        walls.append(time.perf_counter() - start)
    return statistics.median(walls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=200, help="LFW faces to time")
    ap.add_argument("--runs", type=int, default=5, help="fresh `faceprint verify` processes per side")
    ap.add_argument("--base", type=Path, help="src/ folder of the checkout to compare the CLI with")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    import dlib

    from faceprint.cache import package_file
    from faceprint.dlibport.shape import ShapeModel, ShapePredictor, read_shape_predictor

    dat = str(package_file("face_recognition_models", "models/shape_predictor_5_face_landmarks.dat", "x"))
    start = time.perf_counter()
    sp = dlib.shape_predictor(dat)
    t_dlib_load = time.perf_counter() - start
    start = time.perf_counter()
    model = read_shape_predictor(dat)
    t_parse = time.perf_counter() - start
    npz = Path("/tmp") / f"bench-shape-{os.getpid()}.npz"
    model.save(npz)
    start = time.perf_counter()
    port = ShapePredictor(ShapeModel.load(npz))
    t_npz = time.perf_counter() - start
    npz.unlink()

    images, boxes = _faces(args.limit)

    def dlib_fn(rgb: np.ndarray, ltrb: np.ndarray) -> np.ndarray:
        return np.array([[(p.x, p.y) for p in sp(rgb, dlib.rectangle(*map(int, b))).parts()] for b in ltrb])

    same = all(np.array_equal(dlib_fn(r, b), port.predict(r, b)) for r, b in zip(images, boxes))
    rows = []
    for label, k in (("ms/face, 1 face per call", 1), ("ms/face, 8 faces per call", 8)):
        d, p = _per_face(dlib_fn, images, boxes, k), _per_face(port.predict, images, boxes, k)
        rows.append((label, f"{d:.3f}", f"{p:.3f}", f"{d / p:.2f}"))
    rows.append(("load (s): dlib .dat / port parse (first use)", f"{t_dlib_load:.3f}", f"{t_parse:.3f}",
                 f"{t_dlib_load / t_parse:.2f}"))
    rows.append(("load (s): dlib .dat / port cached .npz", f"{t_dlib_load:.3f}", f"{t_npz:.3f}",
                 f"{t_dlib_load / t_npz:.2f}"))
    print(f"{len(images)} LFW faces; points equal to dlib's on all: {same}")
    print_table(("5-point predictor", "dlib", "port", "dlib / port"), rows, args.markdown)
    if args.base:
        base, ours = _verify_wall(args.base, args.runs), _verify_wall(SRC, args.runs)
        print()
        print_table(("`faceprint verify` 2 photos, fresh process", "base", "this", "base / this"),
                    [(f"wall s, median of {args.runs}", f"{base:.2f}", f"{ours:.2f}", f"{base / ours:.2f}")],
                    args.markdown)


if __name__ == "__main__":
    main()
