"""ByteTrack-style face tracker: Kalman-predicted boxes matched to detections by IoU in two stages.

Each frame the tracker predicts every track one frame ahead. On frames with detections it
associates them (greedy by descending IoU, which equals optimal assignment whenever faces do
not overlap each other, the usual case):

1. confident detections (``score >= high_score``) against confirmed and lost tracks, so a
   face that comes back after a short occlusion gets its old track (and name) back; lost
   tracks match at the lower ``lost_iou``, since their predicted box has drifted;
2. weak detections (``low_score <= score < high_score``: blurred, half-occluded faces) against
   the confirmed tracks still unmatched, at the stricter ``low_iou`` (ByteTrack's idea: a weak
   box is trusted only to continue a track, never to start one);
3. remaining confident detections against tentative (new) tracks; the rest start new tracks.

A new track is tentative until it has ``min_hits`` detections, then confirmed; unmatched
confirmed tracks become lost and are dropped after ``max_lost_frames`` frames without a
detection. Detection may run on every n-th frame only: between detections, tracks move on
their Kalman prediction and their landmarks follow the box.

Re-attaching a lost track is checked by appearance when the caller can describe faces (a
``describe`` callable passed to :meth:`FaceTracker.step`, e.g. face embeddings) and the track
has a reference ``appearance``: a lost track never takes a detection whose descriptor lies
farther than ``reattach_distance`` from it (so a face that reappears near someone else's lost
track starts its own track instead of taking that name), and a lost track whose face reappears
away from its predicted box (no overlap) is re-attached by appearance alone, within
``reattach_radius`` box heights of where it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..boxes import iou_matrix
from ..errors import ConfigError
from ..types import Faces
from .kalman import BoxKalman

TENTATIVE, CONFIRMED, LOST = "tentative", "confirmed", "lost"


def greedy_match(iou: np.ndarray, min_iou: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Pairs ``(row, col)`` taken by descending IoU, each row and column at most once.

    Args:
        iou: ``(R, C)`` overlaps.
        min_iou: pairs with an IoU below this never match.

    Returns:
        ``(pairs, unmatched_rows, unmatched_cols)``.
    """
    rows, cols = iou.shape
    pairs: list[tuple[int, int]] = []
    if rows and cols:
        order = np.argsort(-iou, axis=None, kind="stable")
        used_r, used_c = np.zeros(rows, bool), np.zeros(cols, bool)
        for flat in order:
            r, c = divmod(int(flat), cols)
            if iou[r, c] < min_iou:
                break
            if not used_r[r] and not used_c[c]:
                used_r[r] = used_c[c] = True
                pairs.append((r, c))
    got_r = {r for r, _ in pairs}
    got_c = {c for _, c in pairs}
    return pairs, [r for r in range(rows) if r not in got_r], [c for c in range(cols) if c not in got_c]


@dataclass(eq=False)
class Track:
    """One tracked face.

    Attributes:
        track_id: unique id, counting from 1.
        kalman: the box filter.
        score: detector score of the last matched detection.
        landmarks: ``(5, 2)`` landmarks of the last matched detection.
        det_xyxy: ``(4,)`` box of the last matched detection.
        state: ``"tentative"``, ``"confirmed"`` or ``"lost"``.
        hits: matched detections so far.
        first_frame: frame index where the track started.
        frames_since_update: frames since the last matched detection (0 on a matched frame).
        appearance: ``(D,)`` reference descriptor set by the caller (``None`` = unknown), used
            to check re-attachment after the track was lost.
        reattached: True on the frame a lost track was matched again.
    """

    track_id: int
    kalman: BoxKalman
    score: float
    landmarks: np.ndarray
    det_xyxy: np.ndarray
    state: str = TENTATIVE
    hits: int = 1
    first_frame: int = 0
    frames_since_update: int = 0
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    appearance: np.ndarray | None = None
    reattached: bool = False

    @property
    def xyxy(self) -> np.ndarray:
        """``(4,)`` the detection box on a matched frame, else the Kalman prediction."""
        return self.det_xyxy if self.frames_since_update == 0 else self.kalman.xyxy

    @property
    def current_landmarks(self) -> np.ndarray:
        """``(5, 2)`` last landmarks moved and scaled with the box since that detection."""
        if self.frames_since_update == 0:
            return self.landmarks
        old, new = self.det_xyxy.astype(np.float64), self.kalman.xyxy
        scale = (new[2:] - new[:2]) / np.maximum(old[2:] - old[:2], 1e-6)
        return ((self.landmarks - old[:2]) * scale + new[:2]).astype(np.float32)

    def _match(self, faces: Faces, i: int, min_hits: int) -> None:
        self.kalman.update(faces.xyxy[i])
        self.det_xyxy = faces.xyxy[i].copy()
        self.score = float(faces.score[i])
        self.landmarks = faces.landmarks[i].copy()
        self.extras = {k: v[i] for k, v in faces.extras.items()}
        self.frames_since_update = 0
        self.hits += 1
        self.reattached = self.state == LOST
        if self.state == LOST or (self.state == TENTATIVE and self.hits >= min_hits):
            self.state = CONFIRMED


class _Descriptors:
    """Detection descriptors of one frame, computed on first request and kept."""

    def __init__(self, describe: Callable[[np.ndarray], np.ndarray] | None) -> None:
        self.describe = describe
        self.known: dict[int, np.ndarray] = {}

    def get(self, faces: Faces, indices: np.ndarray) -> np.ndarray:
        """``(k, D)`` descriptors of detections ``indices``; ``inf`` rows when none can be made."""
        indices = [int(i) for i in indices]
        todo = [i for i in indices if i not in self.known]
        if todo and self.describe is not None:
            for i, vec in zip(todo, np.asarray(self.describe(np.array(todo, np.int64)), np.float64)):
                self.known[i] = vec
        if any(i not in self.known for i in indices):  # no describer: nothing looks alike
            return np.full((len(indices), 1), np.inf)
        return np.stack([self.known[i] for i in indices])


def detections_of(tracks: list[Track]) -> Faces:
    """The last matched detections (box, score, landmarks) of ``tracks`` as one :class:`Faces`
    batch with ``track_id`` set, row for row."""
    if not tracks:
        return Faces.empty()
    return Faces(np.stack([t.det_xyxy for t in tracks]), np.array([t.score for t in tracks]),
                 np.stack([t.landmarks for t in tracks]), np.array([t.track_id for t in tracks]))


class FaceTracker:
    """Associates per-frame detections into tracks (see the module docstring).

    Args:
        high_score: detections at or above this are confident (stage 1, may start tracks).
        low_score: detections below this are ignored; between the two they only continue tracks.
        match_iou: minimum IoU in stages 1 and 3.
        low_iou: minimum IoU in stage 2 (weak detections).
        lost_iou: minimum IoU for a lost track's predicted box.
        min_hits: detections before a track is confirmed (1 = at once).
        max_lost_frames: frames a lost track is kept for re-identification.
        reattach_distance: largest descriptor distance (Euclidean) at which a lost track with an
            ``appearance`` takes a detection; ``None`` = no appearance check.
        reattach_radius: how far (in the lost track's box heights) from its predicted centre a
            lost track is re-attached by appearance alone.

    Raises:
        ConfigError: a parameter is out of range.
    """

    def __init__(self, high_score: float = 0.85, low_score: float = 0.5, match_iou: float = 0.3,
                 low_iou: float = 0.5, lost_iou: float = 0.1, min_hits: int = 2, max_lost_frames: int = 30,
                 reattach_distance: float | None = None, reattach_radius: float = 3.0) -> None:
        if not 0.0 <= low_score <= high_score <= 1.0:
            raise ConfigError(f"need 0 <= low_score <= high_score <= 1, got {low_score}, {high_score}")
        for name, value in (("match_iou", match_iou), ("low_iou", low_iou), ("lost_iou", lost_iou)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
        if min_hits < 1 or max_lost_frames < 0:
            raise ConfigError(f"need min_hits >= 1 and max_lost_frames >= 0, got {min_hits}, {max_lost_frames}")
        self.high_score, self.low_score = float(high_score), float(low_score)
        self.match_iou, self.low_iou, self.lost_iou = float(match_iou), float(low_iou), float(lost_iou)
        self.min_hits, self.max_lost_frames = int(min_hits), int(max_lost_frames)
        if reattach_distance is not None and not reattach_distance > 0 or not reattach_radius >= 0:
            raise ConfigError(f"need reattach_distance > 0 (or None) and reattach_radius >= 0, got "
                              f"{reattach_distance}, {reattach_radius}")
        self.reattach_distance = None if reattach_distance is None else float(reattach_distance)
        self.reattach_radius = float(reattach_radius)
        self.tracks: list[Track] = []
        self.frame_index = -1
        self._next_id = 1

    def step(self, faces: Faces | None, describe: Callable[[np.ndarray], np.ndarray] | None = None) -> list[Track]:
        """Advance one frame; ``faces`` are this frame's detections, ``None`` on a frame without
        detection (tracks then move on their prediction).

        Args:
            faces: this frame's detections.
            describe: ``describe(indices) -> (k, D)`` descriptors of detections ``indices`` of
                ``faces`` (called only when a lost track with an ``appearance`` could take them).

        Returns:
            The tracks removed on this frame (lost for longer than ``max_lost_frames``, or
            tentative and unmatched).
        """
        self.frame_index += 1
        for track in self.tracks:
            track.kalman.predict(damp_velocity=track.state == LOST)
            track.frames_since_update += 1
            track.reattached = False
        if faces is None:
            removed = [t for t in self.tracks if t.frames_since_update > self.max_lost_frames]
        else:
            removed = self._associate(faces, _Descriptors(describe) if self.reattach_distance is not None else None)
        self.tracks = [t for t in self.tracks if t not in removed]
        return removed

    def end_all(self) -> list[Track]:
        """Remove every track (a shot cut, or the end of the stream); returns them."""
        ended, self.tracks = self.tracks, []
        return ended

    def visible(self) -> list[Track]:
        """Confirmed tracks on this frame: matched now, or predicted between detections."""
        return [t for t in self.tracks if t.state == CONFIRMED]

    def visible_faces(self) -> Faces:
        """:meth:`visible` tracks as a :class:`Faces` batch with ``track_id`` set."""
        tracks = self.visible()
        if not tracks:
            out = Faces.empty()
            out.track_id = np.zeros(0, np.int64)
            return out
        return Faces(np.stack([t.xyxy for t in tracks]), np.array([t.score for t in tracks]),
                     np.stack([t.current_landmarks for t in tracks]), np.array([t.track_id for t in tracks]))

    def _associate(self, faces: Faces, descriptors: _Descriptors | None) -> list[Track]:
        high = np.nonzero(faces.score >= self.high_score)[0]
        low = np.nonzero((faces.score >= self.low_score) & (faces.score < self.high_score))[0]
        pool = [t for t in self.tracks if t.state != TENTATIVE]
        # stage 1: confident detections vs confirmed + lost tracks (lost ones at a lower IoU)
        iou = self._iou(pool, faces.xyxy[high])
        lost_rows = np.array([t.state == LOST for t in pool], bool)
        iou[lost_rows] = np.where(iou[lost_rows] >= self.lost_iou, np.maximum(iou[lost_rows], self.match_iou), 0.0)
        if descriptors is not None:
            self._gate_by_appearance(pool, iou, faces, high, descriptors)
        pairs, free_t, free_d = greedy_match(iou, self.match_iou)
        for r, c in pairs:
            pool[r]._match(faces, int(high[c]), self.min_hits)
        high = high[free_d]
        if descriptors is not None:  # stage 1b: lost tracks whose face reappeared off their predicted box
            lost = [pool[r] for r in free_t if pool[r].state == LOST and pool[r].appearance is not None]
            taken = self._reattach(lost, faces, high, descriptors)
            free_t = [r for r in free_t if pool[r] not in taken]
            high = np.array([i for i in high if i not in taken.values()], np.int64)
        # stage 2: weak detections continue confirmed tracks only
        rest = [pool[r] for r in free_t if pool[r].state == CONFIRMED]
        pairs, free_t2, _ = greedy_match(self._iou(rest, faces.xyxy[low]), self.low_iou)
        for r, c in pairs:
            rest[r]._match(faces, int(low[c]), self.min_hits)
        for r in free_t2:
            rest[r].state = LOST
        # stage 3: remaining confident detections vs tentative tracks, then new tracks
        tentative = [t for t in self.tracks if t.state == TENTATIVE]
        pairs, free_new, free_d = greedy_match(self._iou(tentative, faces.xyxy[high]), self.match_iou)
        for r, c in pairs:
            tentative[r]._match(faces, int(high[c]), self.min_hits)
        removed = [tentative[r] for r in free_new]
        removed += [t for t in self.tracks if t.state == LOST and t.frames_since_update > self.max_lost_frames]
        for c in free_d:
            self._start(faces, int(high[c]))
        return removed

    def _start(self, faces: Faces, i: int) -> None:
        track = Track(self._next_id, BoxKalman(faces.xyxy[i]), float(faces.score[i]), faces.landmarks[i].copy(),
                      faces.xyxy[i].copy(), first_frame=self.frame_index,
                      extras={k: v[i] for k, v in faces.extras.items()})
        track.frames_since_update = 0
        if self.min_hits <= 1:
            track.state = CONFIRMED
        self._next_id += 1
        self.tracks.append(track)

    def _gate_by_appearance(self, pool: list[Track], iou: np.ndarray, faces: Faces, high: np.ndarray,
                            descriptors: _Descriptors) -> None:
        """Zero the overlaps of lost tracks with detections that look like someone else."""
        for r, track in enumerate(pool):
            if track.state != LOST or track.appearance is None:
                continue
            cols = np.nonzero(iou[r] > 0)[0]
            if len(cols):
                dist = np.linalg.norm(descriptors.get(faces, high[cols]) - track.appearance, axis=1)
                iou[r, cols[dist > self.reattach_distance]] = 0.0

    def _reattach(self, lost: list[Track], faces: Faces, high: np.ndarray,
                  descriptors: _Descriptors) -> dict[Track, int]:
        """Match lost tracks to free confident detections by appearance, nearest first."""
        if not lost or not len(high):
            return {}
        centres = (faces.xyxy[high, :2] + faces.xyxy[high, 2:]) / 2
        near = np.zeros((len(lost), len(high)), bool)
        for r, track in enumerate(lost):
            box = track.kalman.xyxy
            reach = self.reattach_radius * max(box[3] - box[1], 1.0)
            near[r] = np.linalg.norm(centres - (box[:2] + box[2:]) / 2, axis=1) <= reach
        if not near.any():
            return {}
        cols = np.nonzero(near.any(0))[0]
        desc = descriptors.get(faces, high[cols])
        dist = np.full(near.shape, np.inf)
        for r, track in enumerate(lost):
            d = np.linalg.norm(desc - track.appearance, axis=1)
            dist[r, cols] = np.where(near[r, cols] & (d <= self.reattach_distance), d, np.inf)
        # greedy by ascending distance = greedy_match on (-distance), finite pairs only
        pairs, _, _ = greedy_match(np.where(np.isfinite(dist), -dist, -np.inf), -self.reattach_distance)
        taken: dict[Track, int] = {}
        for r, c in pairs:
            lost[r]._match(faces, int(high[c]), self.min_hits)
            taken[lost[r]] = int(high[c])
        return taken

    @staticmethod
    def _iou(tracks: list[Track], xyxy: np.ndarray) -> np.ndarray:
        if not tracks or not len(xyxy):
            return np.zeros((len(tracks), len(xyxy)))
        return iou_matrix(np.stack([t.kalman.xyxy for t in tracks]), xyxy)


__all__ = ["CONFIRMED", "LOST", "TENTATIVE", "FaceTracker", "Track", "detections_of", "greedy_match"]
