"""Synthetic test clips: blinks painted onto real frames, still-image clips, and clips cut
and joined from real ones (``write_clip``).

A blink is synthesised by closing the eyes of a real face: each eye region (from dlib's
68 landmarks, slightly enlarged) is filled with the skin colour sampled just below the
eye and crossed by a dark lash line, blended with a soft mask. This reproduces what a
closed eye looks like to the landmark predictor (the lids meet), without any recording.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .blink import LEFT_EYE, RIGHT_EYE


def close_eyes(rgb: np.ndarray, points68: np.ndarray) -> np.ndarray:
    """A copy of the RGB ``(H, W, 3)`` frame with both eyes of the face ``(68, 2)`` shut."""
    import cv2

    out = rgb.astype(np.float32).copy()
    h, w = rgb.shape[:2]
    for eye in (LEFT_EYE, RIGHT_EYE):
        e = np.asarray(points68, np.float64)[list(eye)]
        centre = e.mean(0)
        width = np.linalg.norm(e[3] - e[0])
        axes = (int(round(width * 0.7)), int(round(width * 0.38)))
        angle = float(np.degrees(np.arctan2(e[3, 1] - e[0, 1], e[3, 0] - e[0, 0])))
        below = np.clip(np.round(centre + [0, width * 0.55]).astype(int), 0, [w - 1, h - 1])
        r = max(2, int(width * 0.15))
        patch = rgb[max(0, below[1] - r):below[1] + r, max(0, below[0] - 2 * r):below[0] + 2 * r]
        skin = np.median(patch.reshape(-1, 3), axis=0)
        mask = np.zeros((h, w), np.float32)
        c = (int(round(centre[0])), int(round(centre[1])))
        cv2.ellipse(mask, c, axes, angle, 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, width * 0.08))[..., None]
        out = out * (1 - mask) + skin[None, None, :] * 0.92 * mask
        lash = np.zeros((h, w), np.float32)
        cv2.ellipse(lash, (c[0], c[1] + int(width * 0.05)), (int(width * 0.55), max(1, int(width * 0.1))), angle,
                    0, 180, 1.0, max(1, int(round(width * 0.07))))
        lash = cv2.GaussianBlur(lash, (0, 0), 1.0)[..., None]
        out = out * (1 - 0.7 * lash) + 30.0 * 0.7 * lash
    return np.clip(out, 0, 255).astype(np.uint8)


def webcam_frame(rgb: np.ndarray, detector: Any, face_px: float = 200.0,
                 size: tuple[int, int] = (640, 480)) -> np.ndarray | None:
    """A ``size`` (width, height) frame cut from a photo, scaled so its largest face is
    ``face_px`` wide (a person about 60 cm from a webcam); ``None`` when no face is found or
    the scaled photo is smaller than ``size``."""
    import cv2

    faces = detector.detect(rgb).by_size()
    if not len(faces):
        return None
    box = faces.xyxy[0].astype(np.float64)
    s = face_px / max(box[2] - box[0], 1.0)
    scaled = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    w, h = size
    if scaled.shape[0] < h or scaled.shape[1] < w:
        return None
    cx, cy = (box[:2] + box[2:]) / 2 * s
    x0 = int(np.clip(cx - w / 2, 0, scaled.shape[1] - w))
    y0 = int(np.clip(cy - h / 2, 0, scaled.shape[0] - h))
    return np.ascontiguousarray(scaled[y0:y0 + h, x0:x0 + w])


def blink_clip(rgb: np.ndarray, points68: np.ndarray, n_frames: int, blink_starts: Sequence[int],
               blink_frames: int = 4, jitter_px: int = 1, seed: int = 0) -> list[np.ndarray]:
    """A clip of ``n_frames`` frames of one real image, with eyes shut for ``blink_frames``
    frames from each of ``blink_starts`` (about 130 ms at 30 fps, a normal blink). Every
    frame shifts by up to ``jitter_px`` pixels, like a hand-held camera, so frames differ."""
    import cv2

    rng = np.random.default_rng(seed)
    shut = close_eyes(rgb, points68)
    closed = {s + k for s in blink_starts for k in range(blink_frames)}
    frames = []
    for i in range(n_frames):
        base = shut if i in closed else rgb
        dx, dy = rng.integers(-jitter_px, jitter_px + 1, size=2) if jitter_px else (0, 0)
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        frames.append(cv2.warpAffine(base, m, (rgb.shape[1], rgb.shape[0]), borderMode=cv2.BORDER_REFLECT))
    return frames


def write_clip(parts: Sequence[tuple[str | Path, int, int | None]], out: str | Path,
               size: tuple[int, int] | None = None, fps: float | None = None) -> list[int]:
    """Write frames ``[start, end)`` of each ``(source, start, end)`` one after another to the
    mp4 ``out``, each frame resized to ``size`` (width, height; default: the first part's size),
    at ``fps`` (default: the first part's). Returns the frames written per part.

    Raises:
        VideoSourceError: a source cannot be read or ``out`` cannot be written.
    """
    import cv2

    from .source import VideoSink, VideoSource

    counts: list[int] = []
    sink = None
    try:
        for source, start, end in parts:
            n = 0
            with VideoSource(source) as video:
                if sink is None:
                    size = size or video.size
                    sink = VideoSink(out, fps or video.fps, size)
                for frame in video.frames(end):
                    if frame.index >= start:
                        rgb = frame.rgb if frame.rgb.shape[1::-1] == tuple(size) else cv2.resize(
                            frame.rgb, size, interpolation=cv2.INTER_AREA)
                        sink.write(rgb)
                        n += 1
            counts.append(n)
    finally:
        if sink is not None:
            sink.close()
    return counts


__all__ = ["blink_clip", "close_eyes", "webcam_frame", "write_clip"]
