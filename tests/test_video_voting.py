"""Per-track identity voting, checked against a plain reference count."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint.errors import ConfigError
from faceprint.video.voting import IdentityVote


def _reference_winner(votes: list[tuple[str | None, float, float]], unknown_conf: float) -> str | None:
    totals: dict[str | None, float] = {}
    for name, conf, quality in votes:
        totals[name] = totals.get(name, 0.0) + quality * (conf if name is not None else unknown_conf)
    return max(totals.items(), key=lambda kv: kv[1])[0]


def test_majority_of_named_votes_wins() -> None:
    vote = IdentityVote()
    assert not vote.decision().decided and vote.decision().label() == "?"
    for name in ("alice", "bob", "alice"):
        vote.add(name, 0.8)
    d = vote.decision()
    assert d.decided and d.name == "alice" and d.votes == 2
    assert d.confidence == pytest.approx(2 / 3 * 0.8, abs=1e-4)


def test_unknown_majority_gives_unknown() -> None:
    vote = IdentityVote()
    vote.add("alice", 0.6)
    vote.add(None, 0.0)
    vote.add(None, 0.0)
    d = vote.decision()
    assert d.decided and d.name is None and d.label() == "unknown"


def test_low_quality_frames_weigh_less() -> None:
    vote = IdentityVote()
    vote.add("bob", 0.9, quality=0.1)
    vote.add("bob", 0.9, quality=0.1)
    vote.add("alice", 0.9, quality=0.9)
    assert vote.decision().name == "alice"


def test_split_vote_below_share_is_unknown() -> None:
    vote = IdentityVote(min_share=0.6)
    for name in ("a", "b", "c"):
        vote.add(name, 0.9)
    assert vote.decision().name is None


def test_min_votes_waits() -> None:
    vote = IdentityVote(min_votes=2)
    vote.add("alice", 0.9)
    assert not vote.decision().decided
    vote.add("alice", 0.9)
    assert vote.decision().name == "alice" and vote.settled is False
    vote.add("alice", 0.9)
    assert vote.settled


def test_random_votes_match_reference_loop() -> None:
    rng = np.random.default_rng(0)
    names = ["a", "b", "c", None]
    for _ in range(300):
        n = int(rng.integers(1, 8))
        vote = IdentityVote(min_share=1e-9)  # no share rule: the heaviest name wins
        votes = [(names[int(rng.integers(0, 4))], float(rng.uniform(0.1, 1)), float(rng.uniform(0.1, 1)))
                 for _ in range(n)]
        for v in votes:
            vote.add(*v)
        d = vote.decision()
        assert d.decided and d.name == _reference_winner(votes, vote.unknown_confidence)
        assert 0.0 <= d.confidence <= 1.0


def test_bad_parameters_raise() -> None:
    with pytest.raises(ConfigError):
        IdentityVote(min_votes=0)
    with pytest.raises(ConfigError):
        IdentityVote(min_share=0.0)
