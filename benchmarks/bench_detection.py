"""Detector choice by measurement on raw photos: recall, unmatched boxes and time, vs face_recognition.

Every detector gets the photos as they are on disk (no pre-downscaling: the CompreFace samples
of identity A are 12-36 megapixels), so MTCNN's default ``max_side=1920`` is exercised.

The 27 annotated photos of ``../shared/data/detection`` are split once, by file, into
- a **tuning half** (13 photos, 36 faces): dlib's ``training.xml``
  photos and the CompreFace samples with an odd number (001_A, 003_A, 005_A, 007_B, 009_C,
  011_3, 013_4, 015_6, 017_0);
- a **report half** (14 photos, 53 faces): dlib's ``testing.xml`` photos and the even-numbered CompreFace
  samples (000_5, 002_A, 004_A, 006_A, 008_B, 010_2, 012_4, 014_5, 016_8).
Both halves hold multi-megapixel photos of identity A and group photos (detection has no
identities to split by). The MTCNN settings (``min_face_size``, ``max_side``) are chosen on the
tuning half (most faces found minus unmatched boxes, ties: less time) and reported on the other.

Rows: first the user's path, ``FacePipeline().detect`` (what ``faceprint detect`` runs: default
MTCNN, ``min_face_size=40``, ``max_side=1920``), then the anchor, ``face_recognition.
face_locations`` (HOG, upsample 1) on the raw photo, then labelled extra settings. A face of
dlib's photos is found at IoU >= 0.3 with its box; a CompreFace face when a box holds its nose
point; "unmatched" counts boxes matching no face. Time: seconds over the report half's photos
(decode included, one run each, after one warm-up call) and the median ms on the 1280x886 group photo.

The anchor's detections on the raw photos take minutes; they are cached in
``--cache`` (default ``/tmp/s2-15b-cache``; delete it to re-measure).
Run: ``python benchmarks/bench_detection.py [--repeat N] [--markdown] [--cache DIR]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import DATA, median_time, print_table  # noqa: E402

DLIB = DATA / "detection" / "dlib_faces"
COMPREFACE = DATA / "detection" / "compreface_samples"


class FaceRecognitionHog:
    """The anchor: ``face_recognition.face_locations`` (HOG, upsample 1) as a detector."""

    def detect(self, image: Any) -> Any:
        import face_recognition

        from faceprint import Faces, load_image

        locs = face_recognition.face_locations(load_image(image))
        xyxy = np.array([[left, top, right, bottom] for top, right, bottom, left in locs], float).reshape(-1, 4)
        return Faces(xyxy, np.ones(len(xyxy)), np.zeros((len(xyxy), 5, 2)))


class UserPath:
    """``FacePipeline().detect``: the default detector, as ``faceprint detect`` runs it."""

    def __init__(self) -> None:
        from faceprint import FacePipeline

        self.pipe = FacePipeline()

    def detect(self, image: Any) -> Any:
        return self.pipe.detect(image)


def halves() -> dict[str, list[tuple[Path, str, np.ndarray]]]:
    """``{"tune"|"report": [(photo, "boxes"|"noses", truth)]}``: the split described above."""
    from faceprint.evaluation.detection import imglab_boxes, nose_points

    split: dict[str, list[tuple[Path, str, np.ndarray]]] = {"tune": [], "report": []}
    for half, xml in (("tune", "training.xml"), ("report", "testing.xml")):
        split[half] += [(DLIB / name, "boxes", truth) for name, truth in imglab_boxes(DLIB, (xml,)).items()]
    for name, points in nose_points(COMPREFACE).items():
        split["tune" if int(name[:3]) % 2 else "report"].append((COMPREFACE / name, "noses", points))
    return split


def score(xyxy: np.ndarray, kind: str, truth: np.ndarray) -> tuple[int, int]:
    """(faces found, boxes matching no face) of one photo."""
    from faceprint.evaluation.detection import match_one_to_one, points_in_boxes

    if kind == "boxes":
        found = match_one_to_one(truth, xyxy, 0.3)
        return found, len(xyxy) - found
    if len(truth) == 0:
        return 0, len(xyxy)
    return points_in_boxes(truth, xyxy)


def run_half(det: Any, photos: list[tuple[Path, str, np.ndarray]], cached: dict | None = None) -> dict:
    """Boxes, faces found, unmatched and seconds of ``det`` over ``photos`` (one run each);
    ``cached`` holds earlier boxes and seconds per photo (the anchor's)."""
    found = total = extra = 0
    seconds = 0.0
    boxes: dict[str, Any] = {}
    for path, kind, truth in photos:
        if cached is not None and path.name in cached:
            xyxy, took = np.array(cached[path.name]["xyxy"], float).reshape(-1, 4), cached[path.name]["s"]
        else:
            t0 = time.perf_counter()
            xyxy = det.detect(path).xyxy
            took = time.perf_counter() - t0
        f, e = score(np.asarray(xyxy, float), kind, truth)
        boxes[path.name] = {"xyxy": np.asarray(xyxy).tolist(), "s": took, "found": f, "of": len(truth), "extra": e}
        found, total, extra, seconds = found + f, total + len(truth), extra + e, seconds + took
    return {"found": found, "total": total, "extra": extra, "s": seconds, "boxes": boxes}


def main() -> None:
    from faceprint import create_detector, load_image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/s2-15b-cache"))
    args = parser.parse_args()
    group = load_image(DATA / "group" / "insightface_t1.jpg")
    split = halves()
    for half, photos in split.items():
        print(f"{half} half: {len(photos)} photos, {sum(len(t) for _, _, t in photos)} faces: "
              + ", ".join(p.name for p, _, _ in photos))
    user = "faceprint detect (FacePipeline().detect: mtcnn min_face_size=40, max_side=1920)"
    anchor = "face_recognition face_locations (hog, upsample 1; anchor)"
    tuned = {f"mtcnn min_face_size={m}, max_side={s}": create_detector("mtcnn", min_face_size=m, max_side=s)
             for m, s in ((40, 1920), (20, 1920), (60, 1920), (40, 1280), (40, 2560))}
    candidates: dict[str, Any] = {user: UserPath(), anchor: FaceRecognitionHog(), **tuned,
                                  "hog upsample=0": create_detector("hog", upsample=0)}
    yunet = DATA / "models" / "face_detection_yunet_2026may.onnx"
    if yunet.exists():
        candidates["yunet onnx (test model, not a default)"] = create_detector(yunet)
    cache_file = args.cache / "detection_anchor_raw.json"
    anchor_cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    results = {}
    for name, det in candidates.items():
        cached = anchor_cache if name == anchor else None
        det.detect(group)  # warm-up: model loading and session start are not timed
        res = {half: run_half(det, photos, cached) for half, photos in split.items()}
        if name == anchor:
            args.cache.mkdir(parents=True, exist_ok=True)
            cache_file.write_text(json.dumps({**res["tune"]["boxes"], **res["report"]["boxes"]}))
        res["group_ms"] = median_time(lambda: det.detect(group), args.repeat) * 1e3
        results[name] = res
    chosen = max(tuned, key=lambda n: (results[n]["tune"]["found"] - results[n]["tune"]["extra"],
                                       -results[n]["tune"]["s"]))
    rows = []
    base = results[anchor]
    for name, res in results.items():
        label = ("extra: " if name not in (user, anchor) else "") + name + (" [chosen on tune half]" if name == chosen else "")
        t, r = res["tune"], res["report"]
        rows.append((label, f"{t['found']}/{t['total']}", str(t["extra"]), f"{r['found']}/{r['total']}",
                     str(r["extra"]), f"{r['s']:.1f}", f"{base['report']['s'] / r['s']:.1f}x",
                     f"{res['group_ms']:.0f}", f"{base['group_ms'] / res['group_ms']:.1f}x"))
    header = ("detector", "tune found", "tune unmatched", "report found", "report unmatched", "report s",
              "speed-up", "1280x886 ms", "speed-up")
    print_table(header, rows, args.markdown)
    print(f"chosen on the tuning half: {chosen}")
    for name in (user, anchor):
        for half in split:
            off = [f"{p} {b['found']}/{b['of']} +{b['extra']}" for p, b in results[name][half]["boxes"].items()
                   if b["found"] < b["of"] or b["extra"]]
            print(f"{name.split(' (')[0]}, {half} photos with misses or unmatched boxes: {'; '.join(off) or 'none'}")


if __name__ == "__main__":
    main()
