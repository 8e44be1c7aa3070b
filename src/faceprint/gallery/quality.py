"""The enrollment quality gate: exactly one face, big enough, confidently detected, sharp.

:meth:`QualityGate.check` looks at one photo's detections (and the aligned chip of the
largest face) and returns ``None`` when the photo may be enrolled, else a short reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..types import Faces


def blur_score(chip: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the grey chip (higher = sharper).

    ``chip`` is an ``(H, W, 3)`` uint8 aligned face. Sharp 150 px dlib chips of LFW score
    roughly 100-1500; heavy blur falls under 30.
    """
    g = np.asarray(chip, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    return float(lap.var())


@dataclass(frozen=True)
class QualityGate:
    """Which photos are good enough to enroll.

    Attributes:
        min_face_px: minimum of the face box's width and height, in pixels.
        min_score: minimum detector confidence.
        min_blur: minimum :func:`blur_score` of the aligned chip (0 disables the check).
        single_face: reject photos with more than one face (which one is the person?).
    """

    min_face_px: float = 40.0
    min_score: float = 0.9
    min_blur: float = 20.0
    single_face: bool = True

    def __post_init__(self) -> None:
        if self.min_face_px < 0 or not 0 <= self.min_score <= 1 or self.min_blur < 0:
            raise ConfigError("min_face_px and min_blur must be >= 0, min_score in [0, 1]")

    def check(self, faces: Faces, chip: np.ndarray | None = None) -> str | None:
        """``None`` if the photo passes, else why not (``faces`` largest first)."""
        if len(faces) == 0:
            return "no face found"
        if self.single_face and len(faces) > 1:
            return f"{len(faces)} faces found, expected exactly one"
        wh = faces.xyxy[0, 2:] - faces.xyxy[0, :2]
        if float(wh.min()) < self.min_face_px:
            return f"face too small ({wh.min():.0f} px < {self.min_face_px:.0f} px)"
        if float(faces.score[0]) < self.min_score:
            return f"low detection score ({faces.score[0]:.2f} < {self.min_score:.2f})"
        if chip is not None and self.min_blur > 0:
            blur = blur_score(chip)
            if blur < self.min_blur:
                return f"too blurry (sharpness {blur:.0f} < {self.min_blur:.0f})"
        return None


#: A gate that accepts every photo with at least one face (the largest is enrolled).
PERMISSIVE = QualityGate(min_face_px=0, min_score=0, min_blur=0, single_face=False)
