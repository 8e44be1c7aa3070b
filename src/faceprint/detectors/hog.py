"""dlib's HOG + linear SVM frontal face detector (dlib-bin: the ``[dlib]`` extra)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from ..types import Faces
from .base import Detector, estimate_mouth


class HogDetector(Detector):
    """dlib's ``get_frontal_face_detector`` (what face_recognition uses by default).

    Landmarks come from dlib's 5-point shape predictor: eye centres are the mean of each
    eye's two corners, the nose is the predictor's nose point, and the mouth corners, which
    that predictor does not find, are estimated from the ArcFace template.
    Scores are the SVM margins squashed to ``(0, 1)`` with a logistic function.

    Args:
        upsample: times the image is doubled before detection (finds smaller faces, slower).
        threshold: SVM margin threshold (dlib's ``adjust_threshold``).
    """

    name = "hog"

    def __init__(self, upsample: int = 1, threshold: float = 0.0) -> None:
        if not 0 <= int(upsample) <= 4:
            raise ConfigError(f"upsample must be in 0..4, got {upsample}")
        self.upsample = int(upsample)
        self.threshold = float(threshold)
        self._detector: Any = None
        self._aligner: Any = None

    def _detect(self, rgb: np.ndarray) -> Faces:
        from ..align import DlibChipAligner
        from ..dlibport.native import import_dlib

        if self._detector is None:
            self._detector = import_dlib("the HOG detector (--detector hog)").get_frontal_face_detector()
            self._aligner = DlibChipAligner()
        rects, margins, _ = self._detector.run(rgb, self.upsample, self.threshold)
        if len(rects) == 0:
            return Faces.empty()
        h, w = rgb.shape[:2]
        xyxy = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], np.float32)
        xyxy = np.clip(xyxy, 0, [w, h, w, h])
        faces = Faces(xyxy, 1.0 / (1.0 + np.exp(-np.asarray(margins))), np.zeros((len(rects), 5, 2)))
        pts = self._aligner.predict_points(rgb, faces.xyxy).astype(np.float64)
        # dlib 5-point order: 0,1 = image-right eye corners, 2,3 = image-left eye corners, 4 = nose
        eyes_nose = np.stack([pts[:, 2:4].mean(1), pts[:, 0:2].mean(1), pts[:, 4]], axis=1)
        faces.landmarks = estimate_mouth(eyes_nose)
        faces.extras["dlib_shape5"] = pts.astype(np.float32)
        return faces.by_size() if len(faces) > 1 else faces

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "upsample": self.upsample, "threshold": self.threshold}
