"""Real-time recognition on a frame stream: detect every n-th frame, track, embed each track
on a few of its best frames, vote its identity, check its liveness.

Names are kept honest as a track goes on:

- a shot cut (:class:`~faceprint.video.shots.ShotCutDetector`) ends every track; faces after
  it start new, unnamed tracks;
- each track is re-embedded every ``recheck_frames`` frames (its best frame of that stretch),
  and at once when its face's colours jump (``appearance_jump``: a cheap trigger, not a
  decision); its vote keeps the latest few identifications only, and a name is shown only
  while the latest one, made by the same open-set decision photos get, gives that name;
- an embedding farther than the model's verification threshold from the track's own earlier
  embeddings means another face took the track over: its evidence is discarded (the name
  goes) and identification starts again;
- a lost track takes a detection back only when its face looks the same (the tracker's
  appearance check, with embeddings as the descriptor).

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
from .shots import ShotCutDetector, colour_histogram
from .tracker import FaceTracker, Track, detections_of
from .voting import Decision, IdentityVote

#: Why a track ended (``TrackView.end_reason``).
END_CUT, END_LOST, END_STREAM = "cut", "lost", "end"
#: Why a track's identity evidence was reset (``TrackView.identity_reason``).
FACE_CHANGED = "face changed"


class Identifier(Protocol):
    """Names embeddings: ``identify(emb) -> [(name or None, confidence in [0, 1])]`` per row
    (a third element, the distance to the best candidate, is optional)."""

    def identify(self, embeddings: Embeddings) -> list[tuple[Any, ...]]: ...


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
    vectors: list[np.ndarray] = field(default_factory=list)  # embeddings since the face last changed
    identity_reason: str | None = None
    last_distance: float | None = None
    last_score: tuple[float, float] | None = None  # (score, threshold) of the latest decision
    face_hist: np.ndarray | None = None  # running colour histogram of the face box


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
    identity_reason: str | None = None
    distance: float | None = None
    end_reason: str | None = None
    score: tuple[float, float] | None = None  # (score, threshold) of the latest identification

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
        aligner: as in :class:`~faceprint.pipeline.FacePipeline`; ``None`` (with ``embedder``)
            disables embedding (tracking only).
        embedder: as in :class:`~faceprint.pipeline.FacePipeline`; ``None`` disables embedding.
        identifier: names embeddings (e.g. a gallery); ``None`` leaves tracks undecided.
        tracker: defaults to :class:`FaceTracker` with the appearance check on re-attachment
            at the embedder's verification threshold.
        quality: defaults to :class:`FaceQuality`.
        liveness: a :class:`LivenessCheck`; defaults to :class:`NoLiveness` ("unavailable").
        shots: the shot cut detector (a cut ends every track); defaults to
            :class:`ShotCutDetector`; ``False`` turns cut detection off.
        detect_every: run the detector on every n-th frame (1 = every frame), and on every cut.
        detect_scale: downscale frames by this factor before detection (boxes are scaled back).
        max_embeddings: embeddings in a track's first stretch (frames ``min_gap_frames`` apart),
            before the slower re-checks.
        good_quality: a frame at least this good is embedded at once; otherwise the best frame
            of the last ``patience_frames`` frames is.
        min_gap_frames: frames between two embeddings of one track in its first stretch.
        recheck_frames: frames between re-checks afterwards (each embeds the best frame of the
            stretch); ``None`` never re-checks (names then rest on the first embeddings only).
        appearance_jump: a re-check is due at once when the face box's colour histogram moves
            this far (total variation) from the track's running histogram; ``None`` = never.
            0.35 lies above the 99th percentile of detection-to-detection changes inside the
            shared clips' tracks (0.37 max 0.53; median 0.08) and below Obama -> Biden (0.60).
        vote_window: identifications a track's vote keeps (the latest ones).
        same_face_distance: largest distance between a track's embeddings that still counts as
            one face (``None`` = the embedder's ``spec.threshold``).
        require_live: embed (so name) a track only once its liveness is ``"live"``.

    Raises:
        ConfigError: a parameter is out of range, or ``require_live`` without a liveness check.
    """

    def __init__(self, detector: Any, aligner: Any = None, embedder: Any = None, identifier: Identifier | None = None,
                 tracker: FaceTracker | None = None, quality: FaceQuality | None = None,
                 liveness: LivenessCheck | None = None, shots: ShotCutDetector | bool | None = None,
                 detect_every: int = 3, detect_scale: float = 1.0, max_embeddings: int = 3,
                 good_quality: float = 0.5, patience_frames: int = 15, min_gap_frames: int = 6,
                 recheck_frames: int | None = 15, vote_window: int = 4, same_face_distance: float | None = None,
                 appearance_jump: float | None = 0.35, require_live: bool = False) -> None:
        if detect_every < 1 or not 0.05 <= detect_scale <= 1.0 or max_embeddings < 0:
            raise ConfigError(f"need detect_every >= 1, 0.05 <= detect_scale <= 1, max_embeddings >= 0; "
                              f"got {detect_every}, {detect_scale}, {max_embeddings}")
        if (recheck_frames is not None and recheck_frames < 1) or vote_window < 1:
            raise ConfigError(f"need recheck_frames >= 1 (or None) and vote_window >= 1, got {recheck_frames}, "
                              f"{vote_window}")
        if (aligner is None) != (embedder is None):
            raise ConfigError("aligner and embedder go together: give both or neither")
        self.detector, self.aligner, self.embedder, self.identifier = detector, aligner, embedder, identifier
        self.same_face_distance = _same_face_distance(embedder, same_face_distance)
        self.tracker = tracker or FaceTracker(reattach_distance=self.same_face_distance)
        self.quality = quality or FaceQuality()
        self.liveness = liveness or NoLiveness()
        self.shots = None if shots is False else (shots if isinstance(shots, ShotCutDetector) else ShotCutDetector())
        if require_live and isinstance(self.liveness, NoLiveness):
            raise ConfigError("require_live needs a liveness check (blink, head turn or an anti-spoofing model)")
        self.detect_every, self.detect_scale = int(detect_every), float(detect_scale)
        self.max_embeddings, self.good_quality = int(max_embeddings), float(good_quality)
        self.patience_frames, self.min_gap_frames = int(patience_frames), int(min_gap_frames)
        self.recheck_frames = None if recheck_frames is None else int(recheck_frames)
        self.vote_window = int(vote_window)
        if appearance_jump is not None and not 0 < appearance_jump <= 1:
            raise ConfigError(f"appearance_jump must be in (0, 1] (or None), got {appearance_jump}")
        self.appearance_jump = None if appearance_jump is None else float(appearance_jump)
        self.require_live = bool(require_live)
        self.states: dict[int, TrackState] = {}
        self.stats = {"frames": 0, "detections": 0, "embeddings": 0, "cuts": 0, "face_changes": 0}

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
        ended: list[TrackView] = []
        cut = self.shots is not None and self.shots.update(rgb)
        if cut:
            self.stats["cuts"] += 1
            ended = self._end(self.tracker.end_all(), time_s, END_CUT)
        detected = cut or index % self.detect_every == 0
        faces = self._detect(rgb) if detected else None
        describe = self._describer(rgb, faces) if faces is not None else None
        ended += self._end(self.tracker.step(faces, describe), time_s, END_LOST)
        visible = self.tracker.visible()
        for track in visible:
            if track.track_id not in self.states:
                self.states[track.track_id] = TrackState(self._new_vote(), time_s, time_s, window_start=index)
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
        return self._end(self.tracker.end_all(), time_s, END_STREAM)

    # -----------------------------------------------------------------------------------------

    def _new_vote(self) -> IdentityVote:
        return IdentityVote(window=self.vote_window, latest_must_agree=True)

    def _end(self, tracks: list[Track], time_s: float, reason: str) -> list[TrackView]:
        views = [self._view(t, time_s, end_reason=reason) for t in tracks if t.track_id in self.states]
        for view in views:
            self.liveness.forget(view.track_id)
            del self.states[view.track_id]
        return views

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

    def _describer(self, rgb: np.ndarray, faces: Faces) -> Any:
        """The tracker's appearance descriptor for this frame's detections: their embeddings."""
        if self.embedder is None:
            return None

        def describe(indices: np.ndarray) -> np.ndarray:
            self.stats["embeddings"] += len(indices)
            return _unit(self._embed_faces([rgb] * len(indices), [faces[int(i)] for i in indices]))

        return describe

    def _embed_faces(self, frames: list[np.ndarray], faces: list[Faces]) -> Embeddings:
        chips = [self.aligner.align(rgb, face).chips for rgb, face in zip(frames, faces)]
        return self.embedder.embed(AlignedFaces(np.concatenate(chips), self.aligner.template))

    def _wants_embedding(self, state: TrackState, track_id: int) -> bool:
        if self.embedder is None:
            return False
        if self.require_live and self.liveness.status(track_id).state != LIVE:
            return False
        if state.embedded < self.max_embeddings:
            return True
        return self.recheck_frames is not None and self.identifier is not None

    def _choose_and_embed(self, rgb: np.ndarray, index: int, matched: list[Track]) -> dict[int, float]:
        """Score matched tracks' faces; embed those whose best recent frame is due."""
        faces = detections_of(matched)
        total = self.quality.score(rgb, faces).total
        due: list[tuple[Track, _Candidate]] = []
        for i, track in enumerate(matched):
            state = self.states[track.track_id]
            if not self._wants_embedding(state, track.track_id):
                continue
            jumped = self._appearance_jumped(state, rgb, faces.xyxy[i])
            if total[i] > state.candidate.quality or jumped:
                state.candidate = _Candidate(float(total[i]), rgb, faces[i])
            since = index - state.last_embed_frame
            if state.embedded >= self.max_embeddings:  # re-check: the best frame of the stretch
                ready = since >= (self.recheck_frames or 0) or (jumped and since > 0)
            else:
                waited = index - state.window_start >= self.patience_frames
                ready = since >= self.min_gap_frames and (state.candidate.quality >= self.good_quality or waited)
            if ready:
                due.append((track, state.candidate))
                state.candidate, state.window_start, state.last_embed_frame = _Candidate(), index, index
        if due:
            self._embed(due)
        return {t.track_id: float(q) for t, q in zip(matched, total)}

    def _appearance_jumped(self, state: TrackState, rgb: np.ndarray, xyxy: np.ndarray) -> bool:
        """Whether the face box's colours jumped from the track's running histogram (then reset to them)."""
        if self.appearance_jump is None:
            return False
        h, w = rgb.shape[:2]
        x1, y1, x2, y2 = np.round(xyxy).astype(int)
        crop = rgb[max(y1, 0):min(y2, h), max(x1, 0):min(x2, w)]
        if crop.shape[0] < 4 or crop.shape[1] < 4:
            return False
        hist = colour_histogram(np.ascontiguousarray(crop))
        ref = state.face_hist
        jumped = ref is not None and 0.5 * float(np.abs(hist - ref).sum()) >= self.appearance_jump
        state.face_hist = hist if ref is None or jumped else 0.7 * ref + 0.3 * hist
        return jumped

    def _embed(self, due: list[tuple[Track, _Candidate]]) -> None:
        emb = self._embed_faces([c.rgb for _, c in due], [c.face for _, c in due])
        self.stats["embeddings"] += len(due)
        names = self.identifier.identify(emb) if self.identifier is not None else [(None, 0.0)] * len(due)
        for (track, cand), vec, ident in zip(due, _unit(emb), names):
            state = self.states[track.track_id]
            state.embedded += 1
            state.best_quality = max(state.best_quality, cand.quality)
            before = state.vote.decision().name
            changed = bool(state.vectors) and np.linalg.norm(np.mean(state.vectors, 0) - vec) > self.same_face_distance
            if changed:  # another face took this track over: its earlier evidence is someone else's
                self.stats["face_changes"] += 1
                state.vote, state.vectors = self._new_vote(), []
            state.vectors = state.vectors[max(0, len(state.vectors) + 1 - self.vote_window):] + [vec]
            track.appearance = np.mean(state.vectors, 0)
            if self.identifier is None:
                continue
            state.vote.add(ident[0], ident[1], cand.quality)
            state.last_distance = float(ident[2]) if len(ident) > 2 else None
            state.last_score = (float(ident[3]), float(ident[4])) if len(ident) > 4 else None
            after = state.vote.decision().name
            if changed:
                state.identity_reason = FACE_CHANGED
            elif after != before:
                state.identity_reason = None if before is None else f"evidence no longer supports {before}"

    def _view(self, track: Track, time_s: float, quality: float | None = None,
              end_reason: str | None = None) -> TrackView:
        state = self.states[track.track_id]
        return TrackView(track.track_id, track.xyxy.copy(), track.current_landmarks.copy(), state.vote.decision(),
                         self.liveness.status(track.track_id),
                         state.best_quality if quality is None else quality, state.embedded, state.first_time_s,
                         state.last_seen_s, state.identity_reason, state.last_distance, end_reason,
                         state.last_score)


def _same_face_distance(embedder: Any, distance: float | None) -> float:
    """The distance two embeddings of one face stay within (Euclidean on the vectors as compared)."""
    if distance is not None:
        if not distance > 0:
            raise ConfigError(f"same_face_distance must be > 0, got {distance}")
        return float(distance)
    spec = getattr(embedder, "spec", None)
    threshold = float(getattr(spec, "threshold", 0.6))
    # a cosine distance d between unit vectors is a Euclidean distance sqrt(2 d)
    return float(np.sqrt(2 * threshold)) if getattr(spec, "metric", "euclidean") == "cosine" else threshold


def _unit(emb: Embeddings) -> np.ndarray:
    """The vectors as the model compares them by Euclidean distance (unit length for cosine)."""
    v = np.asarray(emb.vectors, np.float64)
    if emb.metric == "cosine":
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return v


__all__ = ["END_CUT", "END_LOST", "END_STREAM", "FACE_CHANGED", "FrameResult", "Identifier", "TrackState",
           "TrackView", "VideoRecognizer"]
