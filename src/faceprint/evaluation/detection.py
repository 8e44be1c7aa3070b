"""Detector recall on annotated photos: dlib's imglab boxes and CompreFace's nose points.

Used by the detector tests and ``benchmarks/bench_detection.py`` to choose the default
detector by measurement.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..boxes import iou_matrix


def imglab_boxes(folder: Path, files: tuple[str, ...] = ("training.xml", "testing.xml")) -> dict[str, np.ndarray]:
    """``{image file: (N, 4) xyxy}`` from dlib imglab XML files, ``ignore='1'`` boxes left out."""
    out: dict[str, np.ndarray] = {}
    for name in files:
        for image in ET.parse(folder / name).getroot().iter("image"):
            boxes = [[int(b.get("left")), int(b.get("top")),
                      int(b.get("left")) + int(b.get("width")), int(b.get("top")) + int(b.get("height"))]
                     for b in image.iter("box") if b.get("ignore", "0") != "1"]
            out[image.get("file")] = np.array(boxes, float).reshape(-1, 4)
    return out


def nose_points(folder: Path) -> dict[str, np.ndarray]:
    """``{image file: (N, 2) nose points}`` from CompreFace's ``annotations.json``."""
    noses = json.loads((folder / "annotations.json").read_text())["nose_points_xy"]
    return {name: np.array(points, float).reshape(-1, 2) for name, points in sorted(noses.items())}


def match_one_to_one(truth: np.ndarray, found: np.ndarray, min_iou: float) -> int:
    """Greedy one-to-one matching by IoU: how many ground-truth boxes get a detection."""
    iou = iou_matrix(truth, found) if len(truth) and len(found) else np.zeros((len(truth), len(found)))
    matched = 0
    while iou.size and iou.max() >= min_iou:
        i, j = np.unravel_index(iou.argmax(), iou.shape)
        iou[i, :] = -1
        iou[:, j] = -1
        matched += 1
    return matched


def points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> tuple[int, int]:
    """``(points inside some box, boxes containing no point)``."""
    inside = ((points[:, None, 0] >= boxes[None, :, 0]) & (points[:, None, 0] <= boxes[None, :, 2])
              & (points[:, None, 1] >= boxes[None, :, 1]) & (points[:, None, 1] <= boxes[None, :, 3]))
    return int(inside.any(1).sum()), int((~inside.any(0)).sum())


@dataclass
class RecallReport:
    """Faces found out of annotated ones, and detections that match no annotation."""

    found: int = 0
    total: int = 0
    extra: int = 0
    lines: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / self.total if self.total else float("nan")

    def add(self, name: str, found: int, total: int, extra: int) -> None:
        self.found, self.total, self.extra = self.found + found, self.total + total, self.extra + extra
        self.lines.append(f"{name}: {found}/{total} found, {extra} unmatched")

    def summary(self) -> str:
        return f"recall {self.found}/{self.total} = {self.recall:.3f}, unmatched detections {self.extra}"


def recall_on_boxes(detector: Any, folder: Path, min_iou: float = 0.3) -> RecallReport:
    """Recall on dlib's annotated photos (``training.xml`` + ``testing.xml``).

    IoU >= 0.3 counts a match: detectors draw faces differently (dlib: brows to mouth;
    MTCNN: forehead to chin), so the same face scores IoU 0.5-0.8 across conventions, while a
    box on a neighbouring face scores about 0.
    """
    report = RecallReport()
    for name, truth in imglab_boxes(folder).items():
        faces = detector.detect(folder / name)
        matched = match_one_to_one(truth, faces.xyxy, min_iou)
        report.add(name, matched, len(truth), len(faces) - matched)
    return report


def recall_on_noses(detector: Any, folder: Path) -> RecallReport:
    """Recall on CompreFace's samples: a face is found when a box contains its nose point."""
    report = RecallReport()
    for name, points in nose_points(folder).items():
        found, extra = points_in_boxes(points, detector.detect(folder / name).xyxy)
        report.add(name, found, len(points), extra)
    return report
