"""Fit the landmarks -> dlib-box mapping used by ``align.dlib_box_from_landmarks``.

dlib's 5-point shape predictor was trained on boxes from dlib's HOG detector; other
detectors draw boxes differently. From 5 landmarks we build a box like HOG's: centre and
side relative to the eye-to-mouth distance. This script measures those ratios on LFW View 1
DevTrain images (never DevTest) where HOG finds exactly one face, and prints the medians.

Run: ``python tools/fit_dlib_box.py [--detector mtcnn] [--limit 400]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lfw-view1"


def devtrain_images(limit: int) -> list[Path]:
    """The first ``limit`` unique images of DevTrain's pairs, in file order."""
    from faceprint.evaluation.pairs import read_pairs

    return read_pairs(DATA / "pairsDevTrain.txt").unique_images()[0][:limit]


def main() -> None:
    from faceprint import create_detector, load_image
    from faceprint.align import face_frame

    parser = argparse.ArgumentParser()
    parser.add_argument("--detector", default="mtcnn")
    parser.add_argument("--limit", type=int, default=400)
    args = parser.parse_args()
    hog, det = create_detector("hog", upsample=1), create_detector(args.detector)
    rows = []
    for path in devtrain_images(args.limit):
        rgb = load_image(path)
        ref, faces = hog.detect(rgb), det.detect(rgb).by_size()
        if len(ref) != 1 or len(faces) == 0:
            continue
        centre, scale = face_frame(faces.landmarks[:1])
        x1, y1, x2, y2 = ref.xyxy[0]
        rows.append([((x1 + x2) / 2 - centre[0, 0]) / scale[0], ((y1 + y2) / 2 - centre[0, 1]) / scale[0],
                     (x2 - x1) / scale[0]])
    arr = np.array(rows)
    med = np.median(arr, axis=0)
    print(f"{len(arr)} faces; median dx={med[0]:.4f} dy={med[1]:.4f} side={med[2]:.4f} "
          f"(IQR side {np.percentile(arr[:, 2], 25):.3f}..{np.percentile(arr[:, 2], 75):.3f})")


if __name__ == "__main__":
    main()
