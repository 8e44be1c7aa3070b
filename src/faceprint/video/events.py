"""Track events as JSON lines: a person appeared, was identified, changed liveness, left."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import numpy as np

from .recognizer import FrameResult, TrackView


def _identity(view: TrackView) -> dict[str, Any]:
    d = view.decision
    return {"name": d.name if d.decided else None, "decided": d.decided, "confidence": round(d.confidence, 4),
            "votes": d.votes}


class EventLog:
    """Turns :class:`FrameResult` streams into events; optionally writes them as JSON lines.

    Events (one dict each, ``event`` names the kind; every one has ``track_id``, ``frame``,
    ``time_s``, ``name``, ``decided``, ``confidence``, ``votes`` and ``liveness``):

    - ``appeared``: a track is confirmed (its first frame);
    - ``identified``: its identity decision changed (name or unknown); ``reason`` says why a
      name was withdrawn or changed (``"evidence no longer supports NAME"``, or
      ``"face changed"`` when another face took the track over; ``null`` otherwise) and
      ``distance`` is the latest identification's distance to its best candidate, ``score``
      and ``threshold`` what its open-set decision compared (named when ``score <= threshold``);
    - ``liveness``: its liveness state changed;
    - ``left``: the track ended; ``time_s`` is when it was last seen, ``duration_s`` how long
      it was seen, ``reason`` why it ended (``"cut"``: a shot cut, ``"lost"``: no face for a
      while, ``"end"``: the stream ended).

    Args:
        path: JSON-lines file to write (``None`` keeps events in memory only, in :attr:`events`).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self._file: IO[str] | None = None if path is None else open(path, "w", encoding="utf-8")
        self._last: dict[int, tuple[Any, str]] = {}

    def update(self, result: FrameResult) -> list[dict[str, Any]]:
        """Events of one frame (also appended to :attr:`events` and written)."""
        new: list[dict[str, Any]] = []
        for view in result.tracks:
            key = (_identity(view)["name"], view.decision.decided)
            state = (key, view.liveness.state)
            last = self._last.get(view.track_id)
            if last is None:
                new.append(self._event("appeared", view, result.index, result.time_s))
            else:
                if last[0] != key and view.decision.decided:
                    distance = None if view.distance is None else round(view.distance, 4)
                    score, thr = (None, None) if view.score is None else (_finite(view.score[0]), _finite(view.score[1]))
                    new.append(self._event("identified", view, result.index, result.time_s,
                                           reason=view.identity_reason, distance=distance, score=score, threshold=thr))
                if last[1] != view.liveness.state:
                    new.append(self._event("liveness", view, result.index, result.time_s))
            self._last[view.track_id] = state
        new += self.close_tracks(result.ended, result.index)
        return new

    def close_tracks(self, views: list[TrackView], frame: int) -> list[dict[str, Any]]:
        """``left`` events for ended tracks (also called at the end of the stream)."""
        new = []
        for view in views:
            if self._last.pop(view.track_id, None) is not None:
                new.append(self._event("left", view, frame, view.last_seen_s,
                                       duration_s=round(view.last_seen_s - view.first_time_s, 3),
                                       reason=view.end_reason))
        return new

    def _event(self, kind: str, view: TrackView, frame: int, time_s: float, **extra: Any) -> dict[str, Any]:
        event = {"event": kind, "track_id": view.track_id, "frame": frame, "time_s": round(time_s, 3),
                 **_identity(view), "liveness": view.liveness.state, **extra}
        self.events.append(event)
        if self._file is not None:
            self._file.write(json.dumps(event) + "\n")
        return event

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _finite(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None


__all__ = ["EventLog"]
