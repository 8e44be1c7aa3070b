"""Liveness per track: the common interface, its states, and how checks combine.

A check observes a track frame by frame and reports a :class:`LivenessStatus`:

- ``"live"``: evidence of a live face (a blink, a head turn, the passive model's verdict);
- ``"spoof"``: the passive model says photo/screen;
- ``"pending"``: not enough evidence yet (a still photo stays here forever: never a pass);
- ``"unavailable"``: no check is configured, so liveness is unknown. Never reported as live.

Backends: :mod:`.blink` (eye aspect ratio from dlib's 68 landmarks), :mod:`.headturn`
(yaw challenge), :mod:`.antispoof` (a passive model from a path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

LIVE, SPOOF, PENDING, UNAVAILABLE = "live", "spoof", "pending", "unavailable"


@dataclass(frozen=True)
class LivenessStatus:
    """``state`` (one of the module's four), ``score`` in ``[0, 1]`` (evidence of life, when
    the check has one), ``method`` (which check decided) and a short ``detail``."""

    state: str
    score: float | None = None
    method: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"state": self.state, "score": None if self.score is None else round(self.score, 4),
                "method": self.method, "detail": self.detail}


class LivenessCheck(Protocol):
    """Observes tracked faces and reports liveness per track id."""

    name: str

    def observe(self, track_id: int, rgb: np.ndarray, xyxy: np.ndarray, landmarks: np.ndarray,
                time_s: float) -> None:
        """One frame of a track: RGB frame, ``(4,)`` box, ``(5, 2)`` landmarks, time in seconds."""

    def status(self, track_id: int) -> LivenessStatus: ...

    def forget(self, track_id: int) -> None: ...


class NoLiveness:
    """The check used when none is configured: every track is ``"unavailable"``."""

    name = "none"

    def observe(self, track_id: int, rgb: np.ndarray, xyxy: np.ndarray, landmarks: np.ndarray,
                time_s: float) -> None:
        return None

    def status(self, track_id: int) -> LivenessStatus:
        return LivenessStatus(UNAVAILABLE, None, self.name, "no liveness check configured")

    def forget(self, track_id: int) -> None:
        return None


class AllOf:
    """Combines checks: ``spoof`` if any says spoof, ``live`` when all say live, else ``pending``.

    Args:
        checks: one or more checks (an empty list behaves as :class:`NoLiveness`).
    """

    def __init__(self, checks: Sequence[LivenessCheck]) -> None:
        self.checks = list(checks)
        self.name = "+".join(c.name for c in self.checks) or NoLiveness.name

    def observe(self, track_id: int, rgb: np.ndarray, xyxy: np.ndarray, landmarks: np.ndarray,
                time_s: float) -> None:
        for check in self.checks:
            check.observe(track_id, rgb, xyxy, landmarks, time_s)

    def status(self, track_id: int) -> LivenessStatus:
        if not self.checks:
            return NoLiveness().status(track_id)
        statuses = [c.status(track_id) for c in self.checks]
        for s in statuses:
            if s.state == SPOOF:
                return s
        if all(s.state == LIVE for s in statuses):
            scores = [s.score for s in statuses if s.score is not None]
            return LivenessStatus(LIVE, min(scores) if scores else None, self.name,
                                  "; ".join(s.detail for s in statuses if s.detail))
        waiting = [s for s in statuses if s.state != LIVE]
        return LivenessStatus(PENDING, None, self.name, "; ".join(f"{s.method}: {s.detail}" for s in waiting))

    def forget(self, track_id: int) -> None:
        for check in self.checks:
            check.forget(track_id)

    def load(self) -> None:
        """Load the checks' models now (those that have any)."""
        for check in self.checks:
            if hasattr(check, "load"):
                check.load()

    @property
    def available(self) -> bool:
        return bool(self.checks)


__all__ = ["LIVE", "PENDING", "SPOOF", "UNAVAILABLE", "AllOf", "LivenessCheck", "LivenessStatus", "NoLiveness"]
