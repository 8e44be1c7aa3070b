"""Open-set scores against a plain loop: symmetric (query and enrolled face) and query-side
cohort normalisation, centroid owners, and the one-person fallback to the verification
threshold."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint import ConfigError
from faceprint.gallery import OpenSetPolicy
from faceprint.gallery.scoring import default_threshold

from .test_gallery_store import MODEL, emb, gallery  # noqa: F401  (the gallery fixture)


def crowded_people(n_people: int, per: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Identities 0.4-0.75 apart (crowded, some more than others), samples ~0.17 from their
    centre: nearest impostors fall on both sides of the pad, so every term of the scores counts."""
    centres = rng.normal(0, 1, (n_people, 128)) * rng.uniform(0.025, 0.045, (n_people, 1))
    vecs = np.concatenate([c + rng.normal(0, 0.015, (per, 128)) for c in centres])
    return vecs.astype(np.float32), [f"p{i:03d}" for i in range(n_people) for _ in range(per)]


def reference_scores(vecs: np.ndarray, names: list[str], cohort: np.ndarray, queries: np.ndarray,
                     policy: OpenSetPolicy) -> list[float]:
    """The module docstring of faceprint.gallery.scoring, one query and one face at a time."""
    k, pad = policy.cohort_k, default_threshold(MODEL) / policy.ratio_threshold
    people = list(dict.fromkeys(names))
    samples = {n: [v for v, m in zip(vecs, names) if m == n] for n in people}

    def nearest_sample(x: np.ndarray, n: str) -> float:
        return min(float(np.linalg.norm(x - v)) for v in samples[n])

    def impostor_mean(x: np.ndarray, per_identity: dict[str, float], owner: str) -> float:
        pool = [d for n, d in per_identity.items() if n != owner]
        pool += [float(np.linalg.norm(x - c)) for c in cohort] + [pad] * k
        return sum(sorted(pool)[:k]) / k

    out = []
    for q in queries:
        if policy.aggregation == "centroid":
            per = {n: float(np.linalg.norm(q - np.mean(samples[n], 0))) for n in people}
        else:
            per = {n: nearest_sample(q, n) for n in people}
        best = min(per, key=lambda n: per[n])
        query_side = impostor_mean(q, per, best)
        if policy.normalize == "ratio":
            out.append(per[best] / query_side)
            continue
        if policy.aggregation == "centroid":
            own = np.mean(samples[best], 0)
        else:
            own = min(samples[best], key=lambda v: float(np.linalg.norm(q - v)))
        owner_side = impostor_mean(own, {n: nearest_sample(own, n) for n in people}, best)
        out.append(per[best] / np.sqrt(query_side * owner_side))
    return out


@pytest.mark.parametrize("policy", [OpenSetPolicy(), OpenSetPolicy(normalize="ratio"),
                                    OpenSetPolicy(aggregation="centroid"), OpenSetPolicy(cohort_k=3)],
                         ids=["symmetric", "ratio", "symmetric-centroid", "symmetric-k3"])
def test_normalised_scores_match_a_plain_loop(gallery, policy) -> None:  # noqa: F811
    rng = np.random.default_rng(5)
    vecs, names = crowded_people(12, 3, rng)
    for name in dict.fromkeys(names):
        gallery.add_faces(name, emb(vecs[[i for i, n in enumerate(names) if n == name]]))
    cohort, _ = crowded_people(20, 1, rng)
    gallery.add_cohort(emb(cohort))
    strangers, _ = crowded_people(6, 1, rng)
    queries = np.concatenate([vecs[::4] + rng.normal(0, 0.015, vecs[::4].shape), strangers]).astype(np.float32)
    got = gallery.identify(emb(queries), policy=policy, top_k=2)
    ref = reference_scores(vecs, names, cohort, queries, policy)
    assert np.allclose([r.score for r in got], ref, rtol=2e-4)
    for r, s in zip(got, ref):
        assert (r.name is not None) == (s <= policy.ratio_threshold)
    assert sum(r.name is not None for r in got[:9]) >= 7 and all(r.name is None for r in got[9:])


def test_one_person_without_cohort_falls_back_to_the_verification_threshold(gallery) -> None:  # noqa: F811
    gallery.add_faces("solo", emb(np.zeros((1, 128))))
    far = default_threshold(MODEL)  # the model's FAR 1e-3 distance
    for d in (far - 0.02, far + 0.02):
        q = np.zeros((1, 128), np.float32)
        q[0, 0] = d
        res = gallery.identify(emb(q))[0]
        assert res.score == pytest.approx(d / far * OpenSetPolicy().ratio_threshold, rel=1e-5)
        assert (res.name == "solo") == (d <= far)


def test_policy_validates_normalize() -> None:
    with pytest.raises(ConfigError, match="normalize must be one of"):
        OpenSetPolicy(normalize="znorm")
