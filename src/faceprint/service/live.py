"""Live webcam sessions: each session is one :class:`~faceprint.video.VideoRecognizer`, so the
page's live view gets the same tracking, shot cuts, identity re-checks and events as
``faceprint video``.

Sessions are keyed by (API key, session id); a session idle for ``idle_s`` seconds is dropped,
and at most ``max_sessions`` are kept (the least recently used goes first). Frames of one
session are processed one at a time, in arrival order.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .problems import BadRequest

_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass
class LiveSession:
    """One webcam stream: its recognizer, event log, frame counter and clock."""

    recognizer: Any
    events: Any
    started: float = field(default_factory=time.monotonic)
    used: float = field(default_factory=time.monotonic)
    frames: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class LiveSessions:
    """The open webcam sessions of one service.

    Args:
        pipeline, gallery: the service's models and gallery.
        max_sessions: sessions kept at once.
        idle_s: seconds without a frame after which a session is dropped.
    """

    def __init__(self, pipeline: Any, gallery: Any, max_sessions: int = 32, idle_s: float = 60.0) -> None:
        self.pipeline, self.gallery = pipeline, gallery
        self.max_sessions, self.idle_s = int(max_sessions), float(idle_s)
        self._sessions: dict[tuple[int, str], LiveSession] = {}
        self._lock = threading.Lock()

    def frame(self, key_id: int, session_id: str, rgb: Any, threshold: float | None = None) -> dict[str, Any]:
        """Process one frame of a session (started on its first frame); the frame's record."""
        session = self._get(key_id, session_id, threshold)
        with session.lock:
            now = time.monotonic()
            session.used = now
            result = session.recognizer.process(rgb, session.frames, now - session.started)
            session.frames += 1
            events = session.events.update(result)
        return {"session": session_id, "frame": result.index, "time_s": round(result.time_s, 3),
                "faces": [_face(v) for v in result.tracks], "events": events}

    def end(self, key_id: int, session_id: str) -> dict[str, Any] | None:
        """End a session; its ``left`` events, or ``None`` when there is no such session."""
        with self._lock:
            session = self._sessions.pop((key_id, _checked(session_id)), None)
        if session is None:
            return None
        with session.lock:
            views = session.recognizer.finish(time.monotonic() - session.started)
            events = session.events.close_tracks(views, max(session.frames - 1, 0))
        return {"session": session_id, "frames": session.frames, "events": events}

    def __len__(self) -> int:
        return len(self._sessions)

    def _get(self, key_id: int, session_id: str, threshold: float | None) -> LiveSession:
        from ..video.events import EventLog
        from ..video.identify import video_recognizer

        key = (key_id, _checked(session_id))
        now = time.monotonic()
        with self._lock:
            for k in [k for k, s in self._sessions.items() if now - s.used > self.idle_s]:
                del self._sessions[k]
            session = self._sessions.get(key)
            if session is None:
                while len(self._sessions) >= self.max_sessions:
                    del self._sessions[min(self._sessions, key=lambda k: self._sessions[k].used)]
                # every request is one webcam frame: detect on each (tracks only bridge missed faces)
                rec = video_recognizer(self.pipeline, self.gallery, threshold, detect_every=1)
                session = self._sessions[key] = LiveSession(rec, EventLog())
            return session


def _face(view: Any) -> dict[str, Any]:
    """A track as the page draws it: ``name`` is only set while the track shows that name."""
    d = view.decision
    shown = d.name if d.decided and d.name is not None and view.label == d.name else None
    return {"box": [round(float(v), 2) for v in view.xyxy], "track_id": view.track_id, "name": shown,
            "decided": d.decided, "confidence": round(d.confidence, 4),
            "distance": None if view.distance is None else round(view.distance, 4)}


def _checked(session_id: str) -> str:
    if not _SESSION_ID.match(session_id):
        raise BadRequest(f"session id must be 1-64 letters, digits, '-' or '_', got {session_id[:80]!r}")
    return session_id


__all__ = ["LiveSession", "LiveSessions"]
