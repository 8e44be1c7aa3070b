"""A constant-velocity Kalman filter on one face box.

State per track: ``(cx, cy, w, h, vcx, vcy, vw, vh)`` in pixels and pixels per frame;
measurement: ``(cx, cy, w, h)``. Process and measurement noise scale with the box height, as
in SORT/ByteTrack, so a 40-pixel face and a 400-pixel face are tracked alike.
"""

from __future__ import annotations

import numpy as np

_STD_POS = 1.0 / 20  # measurement / position noise, fraction of the box height
_STD_VEL = 1.0 / 160  # velocity noise, fraction of the box height per frame

_F = np.eye(8)
_F[:4, 4:] = np.eye(4)  # x += v each frame
_H = np.eye(4, 8)


def xyxy_to_cxcywh(xyxy: np.ndarray) -> np.ndarray:
    """``(N, 4)`` xyxy -> ``(N, 4)`` centre x, centre y, width, height."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)


def cxcywh_to_xyxy(c: np.ndarray) -> np.ndarray:
    """``(N, 4)`` centre x, centre y, width, height -> ``(N, 4)`` xyxy."""
    c = np.asarray(c, dtype=np.float64).reshape(-1, 4)
    half = c[:, 2:] / 2
    return np.concatenate([c[:, :2] - half, c[:, :2] + half], 1)


class BoxKalman:
    """Kalman state of one face box.

    Args:
        xyxy: ``(4,)`` first measured box.
    """

    def __init__(self, xyxy: np.ndarray) -> None:
        z = xyxy_to_cxcywh(xyxy)[0]
        self.mean = np.concatenate([z, np.zeros(4)])
        h = max(z[3], 1.0)
        std = np.array([2 * _STD_POS * h] * 4 + [10 * _STD_VEL * h] * 4)
        self.cov = np.diag(std ** 2)

    def predict(self, damp_velocity: bool = False) -> None:
        """Advance one frame; ``damp_velocity`` halves the velocity first (used while a track is
        lost, so an occluded face does not drift off along a stale motion)."""
        if damp_velocity:
            self.mean[4:] *= 0.5
        h = max(self.mean[3], 1.0)
        q = np.diag(np.array([_STD_POS * h] * 4 + [_STD_VEL * h] * 4) ** 2)
        self.mean = _F @ self.mean
        self.mean[2:4] = np.maximum(self.mean[2:4], 1.0)
        self.cov = _F @ self.cov @ _F.T + q

    def update(self, xyxy: np.ndarray) -> None:
        """Correct with a measured ``(4,)`` xyxy box."""
        z = xyxy_to_cxcywh(xyxy)[0]
        h = max(self.mean[3], 1.0)
        r = np.diag(np.full(4, (_STD_POS * h) ** 2))
        s = _H @ self.cov @ _H.T + r
        gain = np.linalg.solve(s, _H @ self.cov).T  # (8, 4) = P H^T S^-1 (S symmetric)
        self.mean = self.mean + gain @ (z - _H @ self.mean)
        self.cov = (np.eye(8) - gain @ _H) @ self.cov

    @property
    def xyxy(self) -> np.ndarray:
        """``(4,)`` current box estimate."""
        return cxcywh_to_xyxy(self.mean[:4])[0]


__all__ = ["BoxKalman", "cxcywh_to_xyxy", "xyxy_to_cxcywh"]
