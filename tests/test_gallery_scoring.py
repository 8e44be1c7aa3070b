"""Open-set scores against a plain loop: symmetric (query and enrolled face) and query-side
cohort normalisation with the model's phantoms, centroid owners, the threshold by gallery size,
and the one-person fallback to the verification threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faceprint import ConfigError
from faceprint.embedders.dlib_resnet import SPEC
from faceprint.gallery import OpenSetPolicy
from faceprint.gallery.scoring import default_threshold, phantom_faces, ratio_threshold

from .test_gallery_store import MODEL, emb, gallery  # noqa: F401  (the gallery fixture)


def crowded_people(n_people: int, per: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Identities 0.4-0.75 apart (crowded, some more than others), samples ~0.17 from their
    centre: nearest impostors fall on both sides of the pad, so every term of the scores counts."""
    centres = rng.normal(0, 1, (n_people, 128)) * rng.uniform(0.025, 0.045, (n_people, 1))
    vecs = np.concatenate([c + rng.normal(0, 0.015, (per, 128)) for c in centres])
    return vecs.astype(np.float32), [f"p{i:03d}" for i in range(n_people) for _ in range(per)]


def phantom_people(n_people: int, per: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """People drawn from the model's own Gaussian (another seed than the phantoms'), samples
    ~0.2 from their centre: the shipped phantoms are among their nearest impostors."""
    import faceprint.embedders as pkg
    from importlib import resources

    with resources.files(pkg).joinpath(SPEC.openset["stats"]).open("rb") as fh, np.load(fh) as data:
        mean, between = data["mean"], data["between"]
    centres = mean + rng.standard_normal((n_people, 128)) @ between.T
    vecs = np.concatenate([c + rng.normal(0, 0.018, (per, 128)) for c in centres])
    return vecs.astype(np.float32), [f"q{i:03d}" for i in range(n_people) for _ in range(per)]


def reference_threshold(people: int) -> float:
    """The spec's size table, interpolated in log(people) by hand."""
    table = sorted(SPEC.openset["ratio_thresholds"])
    if people <= table[0][0]:
        return table[0][1]
    for (n0, t0), (n1, t1) in zip(table, table[1:]):
        if people <= n1:
            w = (math.log(people) - math.log(n0)) / (math.log(n1) - math.log(n0))
            return t0 + w * (t1 - t0)
    return table[-1][1]


def reference_scores(vecs: np.ndarray, names: list[str], cohort: np.ndarray, queries: np.ndarray,
                     policy: OpenSetPolicy) -> list[float]:
    """The module docstring of faceprint.gallery.scoring, one query and one face at a time."""
    k, pad = policy.cohort_k, SPEC.openset["pad"]
    cohort = np.concatenate([cohort, phantom_faces(MODEL, SPEC.openset["phantoms"])])
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
@pytest.mark.parametrize("people", [crowded_people, phantom_people], ids=["crowded", "among-phantoms"])
def test_normalised_scores_match_a_plain_loop(gallery, policy, people) -> None:  # noqa: F811
    rng = np.random.default_rng(5)
    vecs, names = people(12, 3, rng)
    for name in dict.fromkeys(names):
        gallery.add_faces(name, emb(vecs[[i for i, n in enumerate(names) if n == name]]))
    cohort, _ = people(20, 1, rng)
    gallery.add_cohort(emb(cohort))
    strangers, _ = people(6, 1, rng)
    queries = np.concatenate([vecs[::4] + rng.normal(0, 0.015, vecs[::4].shape), strangers]).astype(np.float32)
    got = gallery.identify(emb(queries), policy=policy, top_k=2)
    ref = reference_scores(vecs, names, cohort, queries, policy)
    assert np.allclose([r.score for r in got], ref, rtol=2e-4)
    thr = reference_threshold(12)
    for r, s in zip(got, ref):
        assert r.threshold == pytest.approx(thr)
        assert (r.name is not None) == (s <= thr)
    assert sum(r.name is not None for r in got[:9]) >= 7 and sum(r.name is None for r in got[9:]) >= 5


def test_phantoms_enter_the_impostor_pool_of_faces_that_look_like_the_models(gallery) -> None:  # noqa: F811
    """Among the model's own kind of vectors the phantoms are near impostors: switching them off
    changes the scores (so the among-phantoms case above tests them); far from them it does not."""
    rng = np.random.default_rng(9)
    for people, moved in ((phantom_people, True), (crowded_people, False)):
        vecs, names = people(12, 1, rng)
        for v, n in zip(vecs, names):
            gallery.add_faces(f"{people.__name__}-{n}", emb(v[None]))
        q = emb(vecs + rng.normal(0, 0.01, vecs.shape))
        with_ = [r.score for r in gallery.identify(q)]
        without = [r.score for r in gallery.identify(q, policy=OpenSetPolicy(phantoms=0))]
        assert (not np.allclose(with_, without)) == moved


def test_ratio_threshold_follows_the_size_table() -> None:
    table = SPEC.openset["ratio_thresholds"]
    assert [t for _n, t in table] == sorted((t for _n, t in table), reverse=True)  # stricter as galleries grow
    for people in (1, 10, 12, 55, 100, 299, 1000, 50_000):
        assert ratio_threshold(OpenSetPolicy(), MODEL, people) == pytest.approx(reference_threshold(people))
    assert ratio_threshold(OpenSetPolicy(ratio_threshold=0.9), MODEL, 500) == 0.9
    assert ratio_threshold(OpenSetPolicy(), "unregistered", 500) == 0.86


def test_phantoms_are_deterministic_and_shaped_like_the_model() -> None:
    a = phantom_faces(MODEL, 300)
    phantom_faces.cache_clear()
    b = phantom_faces(MODEL, 300)
    assert a.shape == (300, 128) and a.dtype == np.float32 and np.array_equal(a, b)
    d = np.linalg.norm(a[:150] - a[150:], axis=1)  # two phantoms are two different people
    assert 0.6 < float(np.median(d)) < 1.2


def test_one_person_without_cohort_or_phantoms_falls_back_to_the_verification_threshold(gallery) -> None:  # noqa: F811
    gallery.add_faces("solo", emb(np.zeros((1, 128))))
    far = default_threshold(MODEL)  # the model's FAR 1e-3 distance
    policy = OpenSetPolicy(phantoms=0, ratio_threshold=0.86)
    assert SPEC.openset["pad"] == pytest.approx(far / 0.86, abs=1e-4)
    for d in (far - 0.02, far + 0.02):
        q = np.zeros((1, 128), np.float32)
        q[0, 0] = d
        res = gallery.identify(emb(q), policy=policy)[0]
        assert res.score == pytest.approx(d / SPEC.openset["pad"], rel=1e-5)
        assert (res.name == "solo") == (d <= far)


def test_policy_validates_normalize() -> None:
    with pytest.raises(ConfigError, match="normalize must be one of"):
        OpenSetPolicy(normalize="znorm")
