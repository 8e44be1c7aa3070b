"""Real-time recognition on a frame stream: detect every n-th frame, track, embed each track
on a few of its best frames, vote its identity, check its liveness.

The recognizer is a plain object fed one RGB frame at a time (:meth:`VideoRecognizer.process`),
so the CLI, the benchmark and the web service's webcam mode drive it alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..errors import ConfigError
from ..types import AlignedFaces, Embeddings, Faces
from .liveness import LIVE, SPOOF, LivenessCheck, LivenessStatus, NoLiveness
from .quality import FaceQuality
from .tracker import FaceTracker, Track, detections_of
from .voting import Decision, IdentityVote


class Identifier(Protocol):
    """Names embeddings: ``identify(emb) -> [(name or None, confidence in [0, 1])]`` per row."""

    def identify(self, embeddings: Embeddings) -> list[tuple[str | None, float]]: ...


@dataclass
class _Candidate:
    quality: float = -1.0
    rgb: np.ndarray | None = None
    face: Faces | None = None


@dataclass
class TrackState:
    """What the recognizer knows about one track beyond its box."""

    vote: IdentityVote
    first_time_s: float
    last_seen_s: float = 0.0
    embedded: int = 0
    last_embed_frame: int = -(10 ** 9)
    window_start: int = 0
    best_quality: float = 0.0
    candidate: _Candidate = field(default_factory=_Candidate)


@dataclass(frozen=True)
class TrackView:
    """One visible track on one frame, ready to draw or log."""

    track_id: int
    xyxy: np.ndarray
    landmarks: np.ndarray
    decision: Decision
    liveness: LivenessStatus
    quality: float
    embedded: int
    first_time_s: float
    last_seen_s: float

    @property
    def label(self) -> str:
        if self.liveness.state == SPOOF:
            return "spoof"
        return self.decision.label()


@dataclass
class FrameResult:
    """The recognizer's output for one frame: visible tracks and the tracks that ended."""

    index: int
    time_s: float
    detected: bool
    tracks: list[TrackView]
    ended: list[TrackView]


class VideoRecognizer:
    """Detect, track, embed, identify and check liveness on a frame stream.

    Args:
        detector: ``detect(rgb) -> Faces``.
        aligner, embedder: as in :class:`~faceprint.pipeline.FacePipeline`; ``None`` disables
            embedding (tracking only).
        identifier: names embeddings (e.g. a gallery); ``None`` leaves tracks undecided.
        tracker: defaults to :class:`FaceTracker`.
        quality: defaults to :class:`FaceQuality`.
        liveness: a :class:`LivenessCheck`; defaults to :class:`NoLiveness` ("unavailable").
        detect_every: run the detector on every n-th frame (1 = every frame).
        detect_scale: downscale frames by this factor before detection (boxes are scaled back).
        max_embeddings: embeddings per track at most.
        good_quality: a frame at least this good is embedded at once; otherwise the best frame
            of the last ``patience_frames`` frames is.
        min_gap_frames: frames between two embeddings of one track.
        require_live: embed (so name) a track only once its liveness is ``"live"``.

    Raises:
        ConfigError: a parameter is out of range, or ``require_live`` without a liveness check.
    """

    def __init__(self, detector: Any, aligner: Any = None, embedder: Any = None, identifier: Identifier | None = None,
                 tracker: FaceTracker | None = None, quality: FaceQuality | None = None,
                 liveness: LivenessCheck | None = None, detect_every: int = 3, detect_scale: float = 1.0,
                 max_embeddings: int = 3, good_quality: float = 0.5, patience_frames: int = 15,
                 min_gap_frames: int = 6, require_live: bool = False) -> None:
        if detect_every < 1 or not 0.05 <= detect_scale <= 1.0 or max_embeddings < 0:
            raise ConfigError(f"need detect_every >= 1, 0.05 <= detect_scale <= 1, max_embeddings >= 0; "
                              f"got {detect_every}, {detect_scale}, {max_embeddings}")
        if (aligner is None) != (embedder is None):
            raise ConfigError("aligner and embedder go together: give both or neither")
        self.detector, self.aligner, self.embedder, self.identifier = detector, aligner, embedder, identifier
        self.tracker = tracker or FaceTracker()
        self.quality = quality or FaceQuality()
        self.liveness = liveness or NoLiveness()
        if require_live and isinstance(self.liveness, NoLiveness):
            raise ConfigError("require_live needs a liveness check (blink, head turn or an anti-spoofing model)")
        self.detect_every, self.detect_scale = int(detect_every), float(detect_scale)
        self.max_embeddings, self.good_quality = int(max_embeddings), float(good_quality)
        self.patience_frames, self.min_gap_frames = int(patience_frames), int(min_gap_frames)
        self.require_live = bool(require_live)
        self.states: dict[int, TrackState] = {}
        self.stats = {"frames": 0, "detections": 0, "embeddings": 0}

    def load(self) -> VideoRecognizer:
        """Load every model now (detector, embedder, liveness), so the first frames are not slow."""
        for part in (self.detector, self.liveness):
            if hasattr(part, "load"):
                part.load()
        if self.embedder is not None and hasattr(self.embedder, "session"):
            _ = self.embedder.session
        if self.aligner is not None and hasattr(self.aligner, "predictor"):
            _ = self.aligner.predictor
        return self

    def process(self, rgb: np.ndarray, index: int, time_s: float) -> FrameResult:
        """Advance the stream by one RGB ``(H, W, 3)`` uint8 frame."""
        detected = index % self.detect_every == 0
        faces = self._detect(rgb) if detected else None
        ended = [self._view(t, time_s) for t in self.tracker.step(faces) if t.track_id in self.states]
        for view in ended:
            self.liveness.forget(view.track_id)
            del self.states[view.track_id]
        visible = self.tracker.visible()
        for track in visible:
            if track.track_id not in self.states:
                self.states[track.track_id] = TrackState(IdentityVote(), time_s, time_s, window_start=index)
            if track.frames_since_update == 0:
                self.states[track.track_id].last_seen_s = time_s
            self.liveness.observe(track.track_id, rgb, track.xyxy, track.current_landmarks, time_s)
        qualities: dict[int, float] = {}
        if detected and visible:
            qualities = self._choose_and_embed(rgb, index, [t for t in visible if t.frames_since_update == 0])
        self.stats["frames"] += 1
        return FrameResult(index, time_s, detected, [self._view(t, time_s, qualities.get(t.track_id)) for t in visible],
                           ended)

    def finish(self, time_s: float) -> list[TrackView]:
        """End every track (the stream is over); returns their final views."""
        views = [self._view(t, time_s) for t in self.tracker.tracks if t.track_id in self.states]
        self.tracker.tracks.clear()
        self.states.clear()
        return views

    # -----------------------------------------------------------------------------------------

    def _detect(self, rgb: np.ndarray) -> Faces:
        self.stats["detections"] += 1
        if self.detect_scale >= 1.0:
            return self.detector.detect(rgb)
        import cv2

        h, w = rgb.shape[:2]
        small = cv2.resize(rgb, (max(1, round(w * self.detect_scale)), max(1, round(h * self.detect_scale))),
                           interpolation=cv2.INTER_AREA)
        faces = self.detector.detect(small)
        sx, sy = w / small.shape[1], h / small.shape[0]
        return Faces(faces.xyxy * [sx, sy, sx, sy], faces.score, faces.landmarks * [sx, sy], faces.track_id,
                     faces.extras)

    def _wants_embedding(self, state: TrackState, track_id: int) -> bool:
        if self.embedder is None or state.embedded >= self.max_embeddings or state.vote.settled:
            return False
        return not self.require_live or self.liveness.status(track_id).state == LIVE

    def _choose_and_embed(self, rgb: np.ndarray, index: int, matched: list[Track]) -> dict[int, float]:
        """Score matched tracks' faces; embed those whose best recent frame is due."""
        faces = detections_of(matched)
        total = self.quality.score(rgb, faces).total
        due: list[tuple[Track, _Candidate]] = []
        for i, track in enumerate(matched):
            state = self.states[track.track_id]
            if not self._wants_embedding(state, track.track_id):
                continue
            if total[i] > state.candidate.quality:
                state.candidate = _Candidate(float(total[i]), rgb, faces[i])
            waited = index - state.window_start >= self.patience_frames
            if index - state.last_embed_frame >= self.min_gap_frames and (
                    state.candidate.quality >= self.good_quality or waited):
                due.append((track, state.candidate))
                state.candidate, state.window_start, state.last_embed_frame = _Candidate(), index, index
        if due:
            self._embed(due)
        return {t.track_id: float(q) for t, q in zip(matched, total)}

    def _embed(self, due: list[tuple[Track, _Candidate]]) -> None:
        chips = [self.aligner.align(c.rgb, c.face).chips for _, c in due]
        emb = self.embedder.embed(AlignedFaces(np.concatenate(chips), self.aligner.template))
        self.stats["embeddings"] += len(due)
        names = self.identifier.identify(emb) if self.identifier is not None else [(None, 0.0)] * len(due)
        for (track, cand), (name, conf) in zip(due, names):
            state = self.states[track.track_id]
            state.embedded += 1
            state.best_quality = max(state.best_quality, cand.quality)
            if self.identifier is not None:
                state.vote.add(name, conf, cand.quality)

    def _view(self, track: Track, time_s: float, quality: float | None = None) -> TrackView:
        state = self.states[track.track_id]
        return TrackView(track.track_id, track.xyxy.copy(), track.current_landmarks.copy(), state.vote.decision(),
                         self.liveness.status(track.track_id),
                         state.best_quality if quality is None else quality, state.embedded, state.first_time_s,
                         state.last_seen_s)


__all__ = ["FrameResult", "Identifier", "TrackState", "TrackView", "VideoRecognizer"]
