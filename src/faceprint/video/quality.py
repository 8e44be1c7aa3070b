"""Face quality for picking the frames worth embedding: size, sharpness and pose.

Each factor is in ``[0, 1]`` and the total is their product, so one bad factor (a tiny,
blurred or turned face) is enough to rank a frame low. The same scores pick the frames that
``faceprint enroll --video`` enrols.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..gallery.quality import blur_score
from ..types import Faces

_BLUR_SIDE = 64  # faces are resized to this square before the Laplacian, so sharpness is scale-free


def pose_from_landmarks(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Yaw and roll proxies from ``(N, 5, 2)`` landmarks in ``LANDMARK_ORDER``.

    Returns:
        ``yaw`` ``(N,)``: the nose's horizontal offset from the eye midpoint in units of the
        eye distance, measured along the eye line (0 frontal, about +-0.5 at a half profile;
        positive when the nose points to the image's right);
        ``roll_deg`` ``(N,)``: the eye line's angle in degrees.
    """
    lm = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
    left, right, nose = lm[:, 0], lm[:, 1], lm[:, 2]
    eye_vec = right - left
    eye_dist = np.maximum(np.linalg.norm(eye_vec, axis=1), 1e-6)
    unit = eye_vec / eye_dist[:, None]
    yaw = ((nose - (left + right) / 2) * unit).sum(1) / eye_dist
    roll = np.degrees(np.arctan2(eye_vec[:, 1], eye_vec[:, 0]))
    return yaw, roll


def pitch_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Pitch proxy ``(N,)`` from ``(N, 5, 2)`` landmarks in ``LANDMARK_ORDER``: where the nose
    lies on the line from the eye midpoint to the mouth midpoint (0 at the eyes, 1 at the mouth).

    About 0.45-0.6 for a face looking at the camera; it grows as the head bows (the nose tip
    moves down towards the mouth) and shrinks as it tips back.
    """
    lm = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
    eyes, mouth = (lm[:, 0] + lm[:, 1]) / 2, (lm[:, 3] + lm[:, 4]) / 2
    axis = mouth - eyes
    return ((lm[:, 2] - eyes) * axis).sum(1) / np.maximum((axis ** 2).sum(1), 1e-12)


@dataclass
class QualityScores:
    """Per-face quality factors, each ``(N,)`` float64 in ``[0, 1]``; ``total`` is their product."""

    size: np.ndarray
    blur: np.ndarray
    pose: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.size * self.blur * self.pose


class FaceQuality:
    """Scores faces for embedding: ``score(rgb, faces) -> QualityScores``.

    Args:
        good_height_px: box height at which the size factor reaches 1 (dlib's chips are 150 px;
            faces under ~40 px embed poorly).
        sharp_variance: Laplacian variance (``gallery.quality.blur_score`` of the face resized
            to 64x64) at which the blur factor
            is ``1 - 1/e``; the factor is ``1 - exp(-variance / sharp_variance)``.
        max_yaw: yaw proxy (see :func:`pose_from_landmarks`) at which the pose factor reaches 0.
        max_roll_deg: in-plane rotation at which the pose factor reaches 0.

    Raises:
        ConfigError: a parameter is not positive.
    """

    def __init__(self, good_height_px: float = 80.0, sharp_variance: float = 100.0, max_yaw: float = 0.6,
                 max_roll_deg: float = 45.0) -> None:
        for name, value in (("good_height_px", good_height_px), ("sharp_variance", sharp_variance),
                            ("max_yaw", max_yaw), ("max_roll_deg", max_roll_deg)):
            if not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value}")
        self.good_height_px = float(good_height_px)
        self.sharp_variance = float(sharp_variance)
        self.max_yaw = float(max_yaw)
        self.max_roll_deg = float(max_roll_deg)

    def score(self, rgb: np.ndarray, faces: Faces) -> QualityScores:
        """Quality factors of each face of one RGB ``(H, W, 3)`` uint8 frame."""
        import cv2

        heights = faces.xyxy[:, 3] - faces.xyxy[:, 1]
        size = np.clip(heights / self.good_height_px, 0.0, 1.0).astype(np.float64)
        blur = np.zeros(len(faces))
        h, w = rgb.shape[:2]
        for i, (x1, y1, x2, y2) in enumerate(np.round(faces.xyxy).astype(int)):
            x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
            if x2 - x1 < 3 or y2 - y1 < 3:
                continue
            crop = cv2.resize(np.ascontiguousarray(rgb[y1:y2, x1:x2]), (_BLUR_SIDE, _BLUR_SIDE),
                              interpolation=cv2.INTER_AREA)
            blur[i] = 1.0 - np.exp(-blur_score(crop) / self.sharp_variance)
        yaw, roll = pose_from_landmarks(faces.landmarks)
        pose = np.clip(1 - np.abs(yaw) / self.max_yaw, 0, 1) * np.clip(1 - np.abs(roll) / self.max_roll_deg, 0, 1)
        return QualityScores(size, blur, pose)


__all__ = ["FaceQuality", "QualityScores", "pitch_from_landmarks", "pose_from_landmarks"]
