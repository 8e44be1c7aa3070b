"""A YuNet-style ONNX face detector loaded from a user-given path, run on ONNX Runtime.

The model takes a BGR float image ``(1, 3, H, W)`` with H, W multiples of 32 and returns,
per stride s in (8, 16, 32), ``cls_s``, ``obj_s`` ``(1, A, 1)``, ``bbox_s`` ``(1, A, 4)`` and
``kps_s`` ``(1, A, 10)`` for the ``A = (H/s) * (W/s)`` grid cells in row-major order (the
layout of OpenCV zoo's YuNet).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..boxes import nms
from ..errors import ConfigError, ModelLoadError
from ..types import Faces
from .base import Detector

STRIDES = (8, 16, 32)


class OnnxYunetDetector(Detector):
    """YuNet decoding on ONNX Runtime.

    Args:
        path: the ``.onnx`` file.
        score_threshold: minimum face score in ``(0, 1)``.
        nms_iou: IoU above which overlapping boxes are suppressed.
        max_side: images whose longer side exceeds this are downscaled for detection
            (boxes are mapped back to the original pixels); ``None`` keeps full size.
        threads: ONNX Runtime intra-op threads (0 = all cores).
    """

    name = "onnx"

    def __init__(self, path: str | Path, score_threshold: float = 0.6, nms_iou: float = 0.3,
                 max_side: int | None = 1280, threads: int = 0) -> None:
        if not 0.0 < score_threshold < 1.0:
            raise ConfigError(f"score_threshold must be in (0, 1), got {score_threshold}")
        self.path = Path(path)
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.max_side = max_side
        self.threads = int(threads)
        self._session: Any = None

    @property
    def session(self) -> Any:
        if self._session is None:
            from ..onnx_graph import open_session

            if not self.path.is_file():
                raise ModelLoadError(f"ONNX detector not found: {self.path}")
            session = open_session(self.path, self.threads)
            names = {o.name for o in session.get_outputs()}
            missing = {f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in STRIDES} - names
            if missing:
                raise ModelLoadError(f"{self.path}: not a YuNet-style detector (missing outputs {sorted(missing)})")
            self._session = session
        return self._session

    def _detect(self, rgb: np.ndarray) -> Faces:
        import cv2

        session = self.session
        h, w = rgb.shape[:2]
        scale = 1.0
        if self.max_side and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        sh, sw = rgb.shape[:2]
        ph, pw = -(-sh // 32) * 32, -(-sw // 32) * 32
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :sh, :sw] = rgb[:, :, ::-1].transpose(2, 0, 1)  # BGR, 0..255
        outs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {session.get_inputs()[0].name: blob})))
        boxes, scores, points = [], [], []
        for s in STRIDES:
            rows, cols = ph // s, pw // s
            cls = np.clip(outs[f"cls_{s}"].reshape(-1), 0, 1)
            obj = np.clip(outs[f"obj_{s}"].reshape(-1), 0, 1)
            score = np.sqrt(cls * obj)
            keep = np.nonzero(score >= self.score_threshold)[0]
            if len(keep) == 0:
                continue
            r, c = np.divmod(keep, cols)
            grid = np.stack([c, r], 1).astype(np.float32)
            bbox = outs[f"bbox_{s}"].reshape(rows * cols, 4)[keep]
            centre = (grid + bbox[:, :2]) * s
            size = np.exp(bbox[:, 2:]) * s
            boxes.append(np.concatenate([centre - size / 2, centre + size / 2], 1))
            kps = outs[f"kps_{s}"].reshape(rows * cols, 5, 2)[keep]
            points.append((kps + grid[:, None, :]) * s)
            scores.append(score[keep])
        if not boxes:
            return Faces.empty()
        xyxy, score, pts = np.concatenate(boxes), np.concatenate(scores), np.concatenate(points)
        keep = nms(xyxy, score, self.nms_iou)
        xyxy = np.clip(xyxy[keep] / scale, 0, [w, h, w, h])
        return Faces(xyxy, score[keep], pts[keep] / scale)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "score_threshold": self.score_threshold,
                "nms_iou": self.nms_iou, "max_side": self.max_side}
