"""Active liveness by challenge: the person turns their head to one side and to the other.

The yaw proxy of :func:`~faceprint.video.quality.pose_from_landmarks` (nose offset from the
eye midpoint, in eye distances) is a ratio of horizontal distances, so it does not change
when a flat photo is tilted or turned in front of the camera: only a 3-D head passes.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .liveness import LIVE, PENDING, LivenessStatus
from .quality import pose_from_landmarks


class HeadTurnLiveness:
    """A track is live once its yaw went past ``+min_yaw`` and past ``-min_yaw`` within ``within_s``.

    Args:
        min_yaw: how far to turn (0.25 is roughly 20-25 degrees).
        within_s: both turns must happen within this many seconds.

    Raises:
        ConfigError: a parameter is not positive.
    """

    name = "head_turn"

    def __init__(self, min_yaw: float = 0.25, within_s: float = 10.0) -> None:
        if not min_yaw > 0 or not within_s > 0:
            raise ConfigError(f"min_yaw and within_s must be > 0, got {min_yaw}, {within_s}")
        self.min_yaw, self.within_s = float(min_yaw), float(within_s)
        self._left: dict[int, float] = {}  # track -> last time the yaw was below -min_yaw
        self._right: dict[int, float] = {}
        self._passed: set[int] = set()

    def observe(self, track_id: int, rgb: np.ndarray, xyxy: np.ndarray, landmarks: np.ndarray,
                time_s: float) -> None:
        if track_id in self._passed:
            return
        yaw = float(pose_from_landmarks(np.asarray(landmarks)[None])[0][0])
        if yaw <= -self.min_yaw:
            self._left[track_id] = time_s
        elif yaw >= self.min_yaw:
            self._right[track_id] = time_s
        left, right = self._left.get(track_id), self._right.get(track_id)
        if left is not None and right is not None and abs(left - right) <= self.within_s:
            self._passed.add(track_id)

    def status(self, track_id: int) -> LivenessStatus:
        if track_id in self._passed:
            return LivenessStatus(LIVE, 1.0, self.name, "turned both ways")
        todo = [side for side, seen in (("left", self._left), ("right", self._right)) if track_id not in seen]
        return LivenessStatus(PENDING, None, self.name, "turn head " + " and ".join(todo or ["again"]))

    def forget(self, track_id: int) -> None:
        self._left.pop(track_id, None)
        self._right.pop(track_id, None)
        self._passed.discard(track_id)


__all__ = ["HeadTurnLiveness"]
