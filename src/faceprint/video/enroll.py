"""Enrollment from video: the best-quality frames of the clip's main track."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import NoFaceError
from .quality import FaceQuality
from .source import VideoSource
from .tracker import FaceTracker, detections_of


@dataclass(frozen=True)
class FrameCrop:
    """A face crop cut from one frame: ``rgb`` (the face box enlarged by ``margin``),
    ``frame`` index, the face's ``quality``, the ``track_id`` it belongs to and the frame's
    ``time_s`` in the video."""

    rgb: np.ndarray
    frame: int
    quality: float
    track_id: int
    time_s: float = 0.0

    def source(self, video: str | Path) -> str:
        """``clip.mp4@3.2s``: how an enrollment names the sample taken from this frame."""
        return f"{Path(str(video)).name}@{self.time_s:.1f}s"


def best_track_frames(source: str | Path, detector: Any, n: int = 5, min_gap_frames: int = 10,
                      margin: float = 0.4, max_frames: int | None = None, quality: FaceQuality | None = None,
                      on_frame: Callable[[int], None] | None = None) -> list[FrameCrop]:
    """The ``n`` best-quality crops of the main track (the one detected most often), at least
    ``min_gap_frames`` apart, best first. Each crop holds one face with a margin, so an
    enrollment that re-detects it finds that face and no other.

    Raises:
        VideoSourceError: the video cannot be read.
        NoFaceError: no face was tracked in the video.
    """
    quality = quality or FaceQuality()
    tracker = FaceTracker()
    cap = max(10 * n, 50)  # windows kept per track (the best ones), so memory stays bounded
    windows: dict[int, dict[int, FrameCrop]] = {}  # track -> window of min_gap_frames -> its best crop
    counts: dict[int, int] = {}
    with VideoSource(source) as video:
        for frame in video.frames(max_frames):
            tracker.step(detector.detect(frame.rgb))
            matched = [t for t in tracker.visible() if t.frames_since_update == 0]
            scores = quality.score(frame.rgb, detections_of(matched)).total if matched else []
            for t, q in zip(matched, scores):
                counts[t.track_id] = counts.get(t.track_id, 0) + 1
                best = windows.setdefault(t.track_id, {})
                key = frame.index // max(min_gap_frames, 1)
                if key not in best or q > best[key].quality:
                    best[key] = FrameCrop(_crop(frame.rgb, t.det_xyxy, margin), frame.index, float(q), t.track_id,
                                          float(frame.time_s))
                    if len(best) > cap:
                        del best[min(best, key=lambda k: best[k].quality)]
            if on_frame is not None:
                on_frame(frame.index)
    crops = {tid: list(best.values()) for tid, best in windows.items()}
    if not crops:
        raise NoFaceError(f"{source}: no face was tracked in the video")
    main = crops[max(counts, key=lambda tid: counts[tid])]
    chosen: list[FrameCrop] = []
    for c in sorted(main, key=lambda c: -c.quality):
        if all(abs(c.frame - k.frame) >= min_gap_frames for k in chosen):
            chosen.append(c)
        if len(chosen) == n:
            break
    return chosen


def _crop(rgb: np.ndarray, xyxy: np.ndarray, margin: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = xyxy.astype(np.float64)
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    a, b = int(max(0, x1 - mx)), int(max(0, y1 - my))
    c, d = int(min(w, x2 + mx)), int(min(h, y2 + my))
    return np.ascontiguousarray(rgb[b:d, a:c])


__all__ = ["FrameCrop", "best_track_frames"]
