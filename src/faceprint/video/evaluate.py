"""Identification in video, scored against hand labels: who each track really was, frame by frame.

Labels (see ``tests/data/video_labels.json``) give a clip's shots as ``[first, end)`` frame
ranges and, per shot, the people whose faces show with a face centre each (``None``: the
only face of the shot). A shown face is the labelled person nearest its box centre within
``reach`` box heights, else somebody unlabelled (never enrolled).

Per track (only its scored frames count):

- ``named correctly``: a name was shown, and on every frame it was shown it was that
  person's enrolled name;
- ``named wrongly``: on some frame a name was shown on someone else (or on someone not
  enrolled);
- ``unnamed``: no name was ever shown;
- ``named across a cut``: a name was shown and the track lived in more than one shot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

UNLABELLED = "(not labelled)"


@dataclass(frozen=True)
class Shot:
    """A shot ``[start, end)`` and its people: ``(who, centre (x, y) or None)``."""

    start: int
    end: int
    people: tuple[tuple[str, tuple[float, float] | None], ...]


def clip_shots(labels: Mapping[str, Any], offset: int = 0, scale: float = 1.0) -> list[Shot]:
    """Shots of one clip's label record, frames shifted by ``offset`` and centres scaled by ``scale``
    (for a clip joined after another, or resized)."""
    out = []
    for shot in labels["shots"]:
        people = tuple((p["who"], None if p["centre"] is None else (p["centre"][0] * scale, p["centre"][1] * scale))
                       for p in shot["people"])
        out.append(Shot(shot["frames"][0] + offset, shot["frames"][1] + offset, people))
    return out


def who_is(shots: Sequence[Shot], frame: int, xyxy: np.ndarray, reach: float = 1.5) -> tuple[int, str]:
    """``(shot number, who)`` for a face box on a frame (``who`` = :data:`UNLABELLED` if nobody fits).

    Raises:
        ValueError: the frame lies in no labelled shot.
    """
    for k, shot in enumerate(shots):
        if shot.start <= frame < shot.end:
            break
    else:
        raise ValueError(f"frame {frame} is in no labelled shot")
    if len(shot.people) == 1 and shot.people[0][1] is None:
        return k, shot.people[0][0]
    centre = (np.asarray(xyxy[:2], np.float64) + np.asarray(xyxy[2:], np.float64)) / 2
    height = max(float(xyxy[3] - xyxy[1]), 1.0)
    best, best_d = UNLABELLED, reach * height
    for who, c in shot.people:
        if c is not None and (d := float(np.hypot(*(centre - c)))) <= best_d:
            best, best_d = who, d
    return k, best


@dataclass
class TrackScore:
    """One track's scored frames: ``shown`` (frame, shown name or None, true person, shot)."""

    track_id: int
    shown: list[tuple[int, str | None, str, int]] = field(default_factory=list)

    def verdict(self, enrolled: Mapping[str, str]) -> str:
        """``"named correctly"``, ``"named wrongly"`` or ``"unnamed"``; ``enrolled`` maps a
        labelled person to their gallery name."""
        named = [(name, who) for _, name, who, _ in self.shown if name is not None]
        if not named:
            return "unnamed"
        return "named correctly" if all(enrolled.get(who) == name for name, who in named) else "named wrongly"

    @property
    def named_across_cut(self) -> bool:
        return any(name is not None for _, name, _, _ in self.shown) and len({s for *_, s in self.shown}) > 1


def score_views(frames: Sequence[tuple[int, Sequence[Any]]], shots: Sequence[Shot], enrolled: Mapping[str, str],
                scored: Any = None) -> dict[str, Any]:
    """Score a run: ``frames`` is ``[(frame index, that frame's TrackViews)]``.

    Args:
        frames: every processed frame with its visible tracks.
        shots: the clip's labels (:func:`clip_shots`).
        enrolled: labelled person -> gallery name, for those enrolled.
        scored: ``scored(frame) -> bool``, the frames that count (e.g. not those enrolled from).

    Returns:
        ``{"tracks", "named correctly", "named wrongly", "unnamed", "named across a cut",
        "frames named wrongly", "frames named", "enrolled frames named"}`` and ``"per_track"``
        (track id -> verdict). "frames named wrongly" counts face-frames where a name was shown
        on someone it does not belong to; "enrolled frames named" maps each enrolled person
        seen to the share of their face-frames shown with their name.
    """
    tracks: dict[int, TrackScore] = {}
    named = wrong = 0
    per_person: dict[str, list[int]] = {}  # enrolled person -> [face-frames, shown with their name]
    for index, views in frames:
        if scored is not None and not scored(index):
            continue
        for view in views:
            shot, who = who_is(shots, index, view.xyxy)
            d = view.decision
            name = d.name if d.decided and d.name is not None and view.label == d.name else None
            tracks.setdefault(view.track_id, TrackScore(view.track_id)).shown.append((index, name, who, shot))
            if who in enrolled:
                counts = per_person.setdefault(who, [0, 0])
                counts[0] += 1
                counts[1] += int(name == enrolled[who])
            if name is not None:
                named += 1
                wrong += int(enrolled.get(who) != name)
    verdicts = {tid: t.verdict(enrolled) for tid, t in tracks.items()}
    out: dict[str, Any] = {"tracks": len(tracks)}
    for kind in ("named correctly", "named wrongly", "unnamed"):
        out[kind] = sum(v == kind for v in verdicts.values())
    out["named across a cut"] = sum(t.named_across_cut for t in tracks.values())
    out["frames named"], out["frames named wrongly"] = named, wrong
    out["enrolled frames named"] = {who: round(n / total, 3) for who, (total, n) in sorted(per_person.items())}
    out["per_track"] = verdicts
    return out


__all__ = ["UNLABELLED", "Shot", "TrackScore", "clip_shots", "score_views", "who_is"]
