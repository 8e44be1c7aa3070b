"""Drawing recognition results onto frames: boxes, names, track ids, liveness and fps."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .liveness import LIVE, SPOOF
from .recognizer import TrackView

_GREEN, _RED, _AMBER, _GREY = (40, 200, 60), (230, 40, 40), (240, 170, 20), (170, 170, 170)


def track_colour(view: TrackView) -> tuple[int, int, int]:
    """RGB colour of a track's box: red spoof, green named, amber unknown, grey undecided."""
    if view.liveness.state == SPOOF:
        return _RED
    if not view.decision.decided:
        return _GREY
    return _GREEN if view.decision.name is not None else _AMBER


def caption(view: TrackView) -> str:
    """``"#3 alice 0.87 live"``: track id, identity label, confidence, liveness when known."""
    text = f"#{view.track_id} {view.label}"
    if view.decision.decided and view.decision.name is not None:
        text += f" {view.decision.confidence:.2f}"
    if view.liveness.state in (LIVE, SPOOF) or view.liveness.method not in ("", "none"):
        text += f" {view.liveness.state}"
    return text


def draw_tracks(rgb: np.ndarray, views: Sequence[TrackView], fps: float | None = None) -> np.ndarray:
    """A copy of the RGB frame with each track's box and caption, and the processing fps.

    Args:
        rgb: ``(H, W, 3)`` uint8 frame.
        views: the frame's visible tracks.
        fps: processing speed to print in the corner (``None`` prints nothing).
    """
    import cv2

    out = np.ascontiguousarray(rgb.copy())
    scale = max(0.4, out.shape[0] / 720)
    thick = max(1, round(2 * scale))
    for view in views:
        colour = track_colour(view)
        x1, y1, x2, y2 = (int(round(v)) for v in view.xyxy)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick)
        text = caption(view)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, thick)
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else y2 + th + base + 4
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 4, ty + base // 2), colour, -1)
        cv2.putText(out, text, (x1 + 2, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0), thick,
                    cv2.LINE_AA)
    if fps is not None:
        cv2.putText(out, f"{fps:.1f} fps", (8, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale,
                    (255, 255, 255), thick + 1, cv2.LINE_AA)
    return out


__all__ = ["caption", "draw_tracks", "track_colour"]
