"""Detector choice by measurement: recall on ../shared/data/detection and speed, vs face_recognition.

For each detector: recall on dlib's annotated photos (boxes, IoU >= 0.3), recall on CompreFace's
samples (nose point inside a box), unmatched detections, and the median time on the 1280x886
group photo and a 640x480 frame. Photos larger than 1600 px are downscaled for every detector
alike (HOG with upsample 1 on a 36 Mpx photo takes minutes).

Run: ``python benchmarks/bench_detection.py [--repeat N] [--markdown]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import DATA, median_time, print_table  # noqa: E402

MAX_SIDE = 1600


class Downscaled:
    """Runs ``detector`` on a copy no larger than ``MAX_SIDE`` and maps boxes back."""

    def __init__(self, detector: Any) -> None:
        self.detector = detector

    def detect(self, image: Any) -> Any:
        import cv2

        from faceprint import load_image

        rgb = load_image(image)
        scale = min(1.0, MAX_SIDE / max(rgb.shape[:2]))
        if scale < 1.0:
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        faces = self.detector.detect(rgb)
        faces.xyxy /= scale
        faces.landmarks /= scale
        return faces


class FaceRecognitionHog:
    """The anchor: ``face_recognition.face_locations`` (HOG, upsample 1) as a detector."""

    def detect(self, image: Any) -> Any:
        import face_recognition

        from faceprint import Faces, load_image

        locs = face_recognition.face_locations(load_image(image))
        xyxy = np.array([[left, top, right, bottom] for top, right, bottom, left in locs], float).reshape(-1, 4)
        return Faces(xyxy, np.ones(len(xyxy)), np.zeros((len(xyxy), 5, 2)))


def main() -> None:
    import cv2

    from faceprint import create_detector, load_image
    from faceprint.evaluation.detection import recall_on_boxes, recall_on_noses

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    group = load_image(DATA / "group" / "insightface_t1.jpg")
    frame = cv2.resize(group, (640, 480), interpolation=cv2.INTER_AREA)
    candidates = {
        "face_recognition hog (anchor)": FaceRecognitionHog(),
        "mtcnn min_face_size=40 (default)": create_detector("mtcnn"),
        "mtcnn min_face_size=20": create_detector("mtcnn", min_face_size=20),
        "hog upsample=0": create_detector("hog", upsample=0),
    }
    yunet = DATA / "models" / "face_detection_yunet_2026may.onnx"
    if yunet.exists():
        candidates["yunet onnx (test model, not a default)"] = create_detector(yunet)
    rows = []
    anchor_ms = None
    for name, det in candidates.items():
        boxes = recall_on_boxes(Downscaled(det), DATA / "detection" / "dlib_faces")
        noses = recall_on_noses(Downscaled(det), DATA / "detection" / "compreface_samples")
        t_group = median_time(lambda: det.detect(group), args.repeat) * 1e3
        t_frame = median_time(lambda: det.detect(frame), args.repeat) * 1e3
        anchor_ms = anchor_ms or (t_group, t_frame)
        rows.append((name, f"{boxes.found}/{boxes.total}", f"{noses.found}/{noses.total}",
                     f"{boxes.extra + noses.extra}", f"{t_group:.0f}", f"{anchor_ms[0] / t_group:.1f}x",
                     f"{t_frame:.0f}", f"{anchor_ms[1] / t_frame:.1f}x"))
    header = ("detector", "dlib_faces recall", "compreface recall", "unmatched", "1280x886 ms", "speed-up",
              "640x480 ms", "speed-up")
    print_table(header, rows, args.markdown)


if __name__ == "__main__":
    main()
