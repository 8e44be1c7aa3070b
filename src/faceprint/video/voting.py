"""Per-track identity by weighted voting over the identifications of its embedded frames."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError

UNKNOWN = None  # the vote of an embedding that matched nobody in the gallery


@dataclass(frozen=True)
class Decision:
    """A track's identity: ``name`` (``None`` = unknown, or undecided while ``votes == 0``),
    ``confidence`` in ``[0, 1]`` (the winner's share of the vote weight, times its mean
    match confidence), and the number of votes behind it."""

    name: str | None
    confidence: float
    votes: int
    decided: bool

    def label(self) -> str:
        if not self.decided:
            return "?"
        return "unknown" if self.name is None else self.name


@dataclass
class IdentityVote:
    """Collects ``(name, match confidence, frame quality)`` votes for one track.

    Each vote weighs ``quality * (confidence if a name else unknown_confidence)``; the name
    with the largest total weight wins if it holds at least ``min_share`` of all weight and
    has ``min_votes`` votes; otherwise the track is ``unknown``. Until ``min_votes`` votes
    exist the track is undecided.

    With ``window`` only the latest ``window`` votes count (older evidence expires), and with
    ``latest_must_agree`` a name is given only while the latest vote names it too: one
    embedded frame that the gallery does not accept as that person withdraws the name until
    new evidence supports it again.

    Args:
        min_votes: votes before any decision (1 decides on the first embedded frame).
        min_share: share of the total weight the winner needs, in ``(0, 1]``.
        window: votes kept (the latest ones); ``None`` keeps all.
        latest_must_agree: withhold a name the latest vote does not give.

    Raises:
        ConfigError: a parameter is out of range.
    """

    min_votes: int = 1
    min_share: float = 0.5
    unknown_confidence: float = 0.5
    votes: list[tuple[str | None, float, float]] = field(default_factory=list)
    window: int | None = None
    latest_must_agree: bool = False

    def __post_init__(self) -> None:
        if self.min_votes < 1 or not 0.0 < self.min_share <= 1.0:
            raise ConfigError(f"need min_votes >= 1 and 0 < min_share <= 1, got {self.min_votes}, {self.min_share}")
        if self.window is not None and self.window < self.min_votes:
            raise ConfigError(f"window must hold min_votes ({self.min_votes}) votes, got {self.window}")

    def add(self, name: str | None, confidence: float, quality: float = 1.0) -> None:
        """One embedded frame's identification: gallery ``name`` (``None`` = no match),
        match ``confidence`` in ``[0, 1]`` and the frame's ``quality`` in ``[0, 1]``."""
        self.votes.append((name, float(min(max(confidence, 0.0), 1.0)), float(min(max(quality, 1e-3), 1.0))))
        if self.window is not None and len(self.votes) > self.window:
            del self.votes[:len(self.votes) - self.window]

    def decision(self) -> Decision:
        """The current identity (see the class docstring)."""
        if len(self.votes) < self.min_votes:
            return Decision(None, 0.0, len(self.votes), False)
        decision = self._weighted()
        if self.latest_must_agree and decision.name is not None and self.votes[-1][0] != decision.name:
            return Decision(None, 1.0, len(self.votes), True)
        return decision

    def _weighted(self) -> Decision:
        weight: dict[str | None, float] = {}
        conf: dict[str | None, list[float]] = {}
        for name, confidence, quality in self.votes:
            c = confidence if name is not None else self.unknown_confidence
            weight[name] = weight.get(name, 0.0) + quality * c
            conf.setdefault(name, []).append(confidence)
        total = sum(weight.values())
        # ties go to a named identity over unknown, then to the name voted first
        best = max(weight, key=lambda n: (weight[n], n is not None, -list(weight).index(n)))
        share = weight[best] / total if total > 0 else 0.0
        n_best = len(conf[best])
        if best is None or share < self.min_share or n_best < self.min_votes:
            unknown_share = weight.get(None, 0.0) / total if total > 0 else 0.0
            return Decision(None, round(max(unknown_share, 1.0 - share), 4), len(self.votes), True)
        mean_conf = sum(conf[best]) / n_best
        return Decision(best, round(share * mean_conf, 4), n_best, True)

    @property
    def settled(self) -> bool:
        """True once a name is backed by ``min_votes + 1`` votes at confidence >= 0.5."""
        d = self.decision()
        return d.decided and d.name is not None and d.votes >= self.min_votes + 1 and d.confidence >= 0.5


__all__ = ["UNKNOWN", "Decision", "IdentityVote"]
