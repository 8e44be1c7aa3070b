"""The enrollment quality gate: one clear subject, big enough, confidently detected, not smeared.

:meth:`QualityGate.subject` picks the face of a photo that would be enrolled (its clear
subject) or says why none can be; :meth:`QualityGate.check` then judges that face (and its
aligned chip). Every caller (``faceprint enroll``, ``identify --known``, the service,
:class:`~faceprint.gallery.recognizer.Recognizer`) uses one gate with these defaults.

Each rule was kept only where the photos it refuses identify measurably worse, on the tuning
part of LFW View 1 (586 one-shot enrollments; ``bench_gallery.py openset --gate`` prints, per
rule, the DIR, rank-1 and strangers attracted of the photos it refuses against those it accepts):

- several faces and no clear subject (the largest, nearest the centre, and at least
  :attr:`QualityGate.subject_ratio` times the next face's side): refuses 16 photos (2.7%), whose
  people are ranked first for 79% of their queries against 95% for the rest. The old rule
  (refuse any second face) refused 78, whose people identified as well as the rest;
- a detection score under 0.9: 3 photos, false or partial detections (rank-1 0 of 3);
- sharpness under :attr:`QualityGate.min_blur` (3) on the 150 px chip: nothing in View 1 (its
  chips score 3-670); chips blurred with sigma 3 (median 2.2) drop DIR from 0.78 to 0.43 and
  rank-1 from 0.95 to 0.84. The old threshold of 20 refused 72 photos (12%) whose people were
  ranked first as often as the rest (0.96 against 0.95): refusing them cost more than it saved;
- a face under 40 px (none in View 1), upscaled more than 3.5x into the chip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..types import Faces


def blur_score(chip: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the grey chip (higher = sharper).

    ``chip`` is an ``(H, W, 3)`` uint8 aligned face, judged at the chip's own scale (150 px
    for dlib). LFW View 1's chips score 3-670 (median 35); a Gaussian blur of sigma 3 brings
    a sharp 1000-scoring chip under 3.
    """
    g = np.asarray(chip, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    return float(lap.var())


def _sides(faces: Faces) -> np.ndarray:
    wh = faces.xyxy[:, 2:] - faces.xyxy[:, :2]
    return wh.min(axis=1)


def nearest_centre(faces: Faces, shape: tuple[int, ...]) -> int:
    """Index of the face whose box centre is nearest the image centre (``shape`` = ``(H, W, ...)``)."""
    centres = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
    h, w = shape[:2]
    return int(np.argmin(((centres - np.array([w / 2, h / 2])) ** 2).sum(axis=1)))


@dataclass(frozen=True)
class QualityGate:
    """Which photos are good enough to enroll, and which face of a photo is enrolled.

    Attributes:
        min_face_px: minimum of the face box's width and height, in pixels.
        min_score: minimum detector confidence.
        min_blur: minimum :func:`blur_score` of the aligned chip (0 disables the check).
        single_face: when a photo has several faces, enroll only a clear subject (see
            :attr:`subject_ratio`); false (``--allow-multiple``) enrolls the largest face.
        subject_ratio: a face is the clear subject of a photo with several faces when it is the
            largest, the nearest the centre, and its box side is at least this times the next
            largest face's.
    """

    min_face_px: float = 40.0
    min_score: float = 0.9
    min_blur: float = 3.0
    single_face: bool = True
    subject_ratio: float = 1.25

    def __post_init__(self) -> None:
        if self.min_face_px < 0 or not 0 <= self.min_score <= 1 or self.min_blur < 0 or self.subject_ratio < 1:
            raise ConfigError("min_face_px and min_blur must be >= 0, min_score in [0, 1], subject_ratio >= 1")

    def subject(self, faces: Faces, shape: tuple[int, ...]) -> tuple[int | None, str | None]:
        """``(index, None)`` of the face to enroll in a photo of ``shape`` (``faces`` largest
        first), or ``(None, reason)`` when there is no face or no clear subject."""
        if len(faces) == 0:
            return None, "no face found"
        if len(faces) == 1 or not self.single_face:
            return 0, None
        sides = _sides(faces)
        if sides[0] >= self.subject_ratio * sides[1] and nearest_centre(faces, shape) == 0:
            return 0, None
        return None, (f"{len(faces)} faces found and none is clearly the subject (the largest, nearest the "
                      f"centre and {self.subject_ratio:g}x the next); --allow-multiple enrolls the largest")

    def check(self, faces: Faces, chip: np.ndarray | None = None, index: int = 0) -> str | None:
        """``None`` if face ``index`` of ``faces`` (the subject, see :meth:`subject`) may be
        enrolled, else why not; ``chip`` is its aligned chip (sharpness is judged on it)."""
        if len(faces) == 0:
            return "no face found"
        side = float(_sides(faces[index:index + 1])[0])
        if side < self.min_face_px:
            return f"face too small ({side:.0f} px < {self.min_face_px:.0f} px)"
        if float(faces.score[index]) < self.min_score:
            return f"low detection score ({faces.score[index]:.2f} < {self.min_score:.2f})"
        if chip is not None and self.min_blur > 0:
            blur = blur_score(chip)
            if blur < self.min_blur:
                return f"too blurry (sharpness {blur:.1f} < {self.min_blur:g})"
        return None


#: A gate that accepts every photo with at least one face (the largest is enrolled).
PERMISSIVE = QualityGate(min_face_px=0, min_score=0, min_blur=0, single_face=False)
