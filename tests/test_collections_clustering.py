"""Clustering algorithms on synthetic embeddings, against scikit-learn and dlib; metrics by hand."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from faceprint.collections.clustering import CLUSTERERS, create_clusterer
from faceprint.collections.metrics import cluster_scores
from faceprint.errors import ConfigError, UnknownModelError
from faceprint.types import Embeddings

sklearn_cluster = pytest.importorskip("sklearn.cluster")
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score  # noqa: E402


def blobs(spread: float, n_people: int = 8, per: int = 12, dim: int = 32,
          seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Faces of ``n_people`` around centres ~1.0 apart (like face embeddings), noise ``spread`` per axis."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, dim)) / np.sqrt(dim) * 0.75
    truth = np.repeat(np.arange(n_people), per)
    return (centres[truth] + rng.normal(scale=spread, size=(len(truth), dim))).astype(np.float32), truth


SEPARATED = blobs(0.02)
OVERLAPPING = blobs(0.065)
PARAMS = {"threshold": 0.5, "min_cluster_size": 2}


def params(name: str) -> dict[str, float]:
    """Threshold 0.5 for the threshold algorithms; k-means gets the true number of people; plain HDBSCAN."""
    if name == "kmeans":
        return {"n_clusters": 8}
    return {"min_cluster_size": 2} if name == "hdbscan" else PARAMS


@pytest.mark.parametrize("name", sorted(CLUSTERERS))
def test_every_algorithm_recovers_well_separated_people(name: str) -> None:
    X, truth = SEPARATED
    model = create_clusterer(name, **params(name))
    assert model.fit(X) is model
    assert model.labels_.shape == (len(X),) and model.labels_.dtype == np.int64
    assert cluster_scores(truth, model.labels_).f1 == 1.0


@pytest.mark.parametrize("name", sorted(CLUSTERERS))
def test_empty_and_single_inputs(name: str) -> None:
    assert create_clusterer(name, **params(name)).fit(np.zeros((0, 4))).labels_.shape == (0,)
    assert create_clusterer(name, **params(name)).fit(np.ones((1, 4))).labels_.shape == (1,)


def _distances(X: np.ndarray) -> list[list[float]]:
    """Euclidean distances by a plain loop (the reference every check below starts from)."""
    rows = [[float(x) for x in r] for r in X]
    return [[math.sqrt(sum((a - b) ** 2 for a, b in zip(p, q))) for q in rows] for p in rows]


def _dbscan_loop(D: list[list[float]], eps: float, min_samples: int) -> list[int]:
    """Textbook DBSCAN: a core point has >= min_samples points (itself included) within eps."""
    n = len(D)
    near = [[j for j in range(n) if D[i][j] <= eps] for i in range(n)]
    core = [len(nb) >= min_samples for nb in near]
    labels, cluster = [-1] * n, 0
    for i in range(n):
        if labels[i] != -1 or not core[i]:
            continue
        labels[i], stack = cluster, [i]
        while stack:
            p = stack.pop()
            if core[p]:
                for q in near[p]:
                    if labels[q] == -1:
                        labels[q] = cluster
                        stack.append(q)
        cluster += 1
    return labels


def _average_linkage_loop(D: list[list[float]], threshold: float | None = None, k: int | None = None) -> list[int]:
    """UPGMA by hand: merge the two clusters of smallest mean pairwise distance while it is below
    ``threshold`` (or until ``k`` clusters remain)."""
    clusters = [[i] for i in range(len(D))]
    while len(clusters) > (k or 1):
        best, pair = math.inf, (0, 0)
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                d = sum(D[i][j] for i in clusters[a] for j in clusters[b]) / (len(clusters[a]) * len(clusters[b]))
                if d < best:
                    best, pair = d, (a, b)
        if threshold is not None and best >= threshold:
            break
        clusters[pair[0]] += clusters.pop(pair[1])
    labels = [0] * len(D)
    for c, members in enumerate(clusters):
        for i in members:
            labels[i] = c
    return labels


def _partition(labels: Any) -> tuple[set[frozenset[int]], set[int]]:
    """The groups (as sets of row indices) and the noise rows: label values themselves do not matter."""
    groups: dict[int, set[int]] = {}
    for i, lab in enumerate(labels):
        groups.setdefault(int(lab), set()).add(i)
    noise = groups.pop(-1, set())
    return {frozenset(g) for g in groups.values()}, noise


@pytest.mark.parametrize("data", [SEPARATED, OVERLAPPING], ids=["separated", "overlapping"])
def test_dbscan_matches_a_plain_loop(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = data
    ours = create_clusterer("dbscan", threshold=0.5, min_samples=2).fit(X).labels_
    assert _partition(ours) == _partition(_dbscan_loop(_distances(X), 0.5, 2))
    three = create_clusterer("dbscan", threshold=0.5, min_samples=3).fit(X).labels_
    assert _partition(three) == _partition(_dbscan_loop(_distances(X), 0.5, 3))


@pytest.mark.parametrize("data", [SEPARATED, OVERLAPPING], ids=["separated", "overlapping"])
def test_agglomerative_matches_a_plain_average_linkage_loop(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = data
    D = _distances(X)
    ours = create_clusterer("agglomerative", threshold=0.5).fit(X).labels_
    assert _partition(ours) == _partition(_average_linkage_loop(D, threshold=0.5))
    at_k = create_clusterer("agglomerative", n_clusters=8).fit(X).labels_
    assert _partition(at_k) == _partition(_average_linkage_loop(D, k=8)) and len(set(at_k)) == 8


def test_kmeans_is_a_lloyd_fixed_point_no_worse_than_a_plain_lloyd_loop() -> None:
    X, truth = OVERLAPPING
    labels = create_clusterer("kmeans", n_clusters=8).fit(X).labels_
    assert len(set(labels)) == 8

    def centres_of(lab: Any) -> list[np.ndarray]:
        return [np.mean([X[i] for i in range(len(X)) if lab[i] == c], axis=0) for c in sorted(set(lab))]

    def inertia(lab: Any) -> float:
        cs = dict(zip(sorted(set(lab)), centres_of(lab)))
        return sum(float(np.sum((X[i] - cs[lab[i]]) ** 2)) for i in range(len(X)))

    cs = dict(zip(sorted(set(labels)), centres_of(labels)))
    for i in range(len(X)):  # every face is nearest its own cluster's mean
        d = {c: float(np.sum((X[i] - m) ** 2)) for c, m in cs.items()}
        assert d[labels[i]] <= min(d.values()) + 1e-9
    ref = list(truth)  # Lloyd's iterations by hand from the true grouping
    for _ in range(50):
        means = centres_of(ref)
        new = [int(np.argmin([np.sum((x - m) ** 2) for m in means])) for x in X]
        if new == ref:
            break
        ref = new
    assert inertia(labels) <= inertia(ref) + 1e-6


def _hdbscan_ground_truth() -> tuple[np.ndarray, list[int]]:
    """Five people of different sizes and spreads, far apart, and four lone faces far from all."""
    rng = np.random.default_rng(7)
    centres = np.eye(5, 16) * 3.0
    truth: list[int] = []
    parts = []
    for p, (size, spread) in enumerate(zip((3, 5, 8, 12, 20), (0.01, 0.03, 0.02, 0.04, 0.05))):
        parts.append(centres[p] + rng.normal(scale=spread, size=(size, 16)))
        truth += [p] * size
    loners = np.eye(4, 16, k=5) * (10.0 * np.arange(1, 5))[:, None]  # 10, 20, 30, 40 away, each on its own axis
    return np.concatenate(parts + [loners]), truth + [-1] * 4


def test_hdbscan_finds_constructed_people_and_leaves_loners_as_noise() -> None:
    X, truth = _hdbscan_ground_truth()
    ours = create_clusterer("hdbscan", min_cluster_size=2).fit(X).labels_
    assert _partition(ours) == _partition(truth)


def test_hdbscan_threshold_cuts_clusters_by_average_linkage() -> None:
    X, truth = OVERLAPPING
    plain = create_clusterer("hdbscan").fit(X).labels_
    cut = create_clusterer("hdbscan", threshold=0.4).fit(X).labels_
    assert len(set(cut)) > len(set(plain))  # the cut splits something on this data
    for lab in np.unique(plain[plain >= 0]):  # each HDBSCAN cluster, cut by the plain average-linkage loop
        rows = np.flatnonzero(plain == lab)
        ref = _average_linkage_loop(_distances(X[rows]), threshold=0.4)
        assert _partition(cut[rows]) == _partition(ref)
    assert np.array_equal(cut < 0, plain < 0)
    # two tight people only: HDBSCAN alone has no scale and may join them; the threshold keeps them apart
    two = np.concatenate([np.zeros((3, 4)), np.full((3, 4), 0.5)]) + np.arange(6)[:, None] * 1e-3
    assert len(set(create_clusterer("hdbscan", threshold=0.6).fit(two).labels_)) == 2


def test_overlapping_clusters_are_harder() -> None:
    X, truth = OVERLAPPING
    f1 = {name: cluster_scores(truth, create_clusterer(name, **params(name)).fit(X).labels_).f1
          for name in ("dbscan", "chinese_whispers")}
    assert all(0.3 < v < 1.0 for v in f1.values()), f1  # single-link style chaining merges some people


@pytest.mark.parametrize("data", [SEPARATED, OVERLAPPING], ids=["separated", "overlapping"])
def test_chinese_whispers_agrees_with_dlib(data: tuple[np.ndarray, np.ndarray]) -> None:
    dlib = pytest.importorskip("dlib")
    X, truth = data
    ours = create_clusterer("chinese_whispers", threshold=0.5).fit(X).labels_
    theirs = np.array(dlib.chinese_whispers_clustering([dlib.vector(v.astype(float)) for v in X], 0.5))
    if data is SEPARATED:
        assert adjusted_rand_score(theirs, ours) == 1.0
    else:  # random update orders differ (dlib's too): compare the quality over seeds
        ours_f1 = np.mean([cluster_scores(truth, create_clusterer("chinese_whispers", threshold=0.5, seed=seed)
                                          .fit(X).labels_).f1 for seed in range(5)])
        assert abs(ours_f1 - cluster_scores(truth, theirs).f1) < 0.05
        assert adjusted_rand_score(theirs, ours) > 0.85


def test_chinese_whispers_is_reproducible_and_uses_the_threshold() -> None:
    X, _ = OVERLAPPING
    a = create_clusterer("chinese_whispers", threshold=0.5, seed=3).fit(X).labels_
    b = create_clusterer("chinese_whispers", threshold=0.5, seed=3).fit(X).labels_
    assert np.array_equal(a, b)
    tiny = create_clusterer("chinese_whispers", threshold=1e-6).fit(X).labels_
    assert len(set(tiny)) == len(X)  # no edges: every face alone


def test_cosine_metric_from_embeddings() -> None:
    X, truth = SEPARATED
    scaled = X * np.linspace(1, 5, len(X))[:, None]  # cosine ignores vector length
    emb = Embeddings(scaled, "synthetic", "cosine")
    labels = create_clusterer("agglomerative", threshold=0.3).fit(emb).labels_
    assert cluster_scores(truth, labels).f1 == 1.0


def test_bad_input_raises_typed_errors() -> None:
    with pytest.raises(UnknownModelError):
        create_clusterer("spectral")
    with pytest.raises(ConfigError):
        create_clusterer("kmeans").fit(np.ones((4, 3)))
    with pytest.raises(ConfigError):
        create_clusterer("chinese_whispers").fit(np.full((3, 2), np.nan))
    with pytest.raises(ConfigError):
        create_clusterer("dbscan", threshold=-1.0).fit(np.ones((3, 2)))


def test_metrics_by_hand() -> None:
    truth = ["a", "a", "a", "b", "b"]
    pred = [0, 0, 1, 1, 1]
    s = cluster_scores(truth, pred)
    # pairs together: 1 + 3 = 4; same person: 3 + 1 = 4; both: (a,0) 1 + (b,1) 1 = 2
    assert (s.precision, s.recall, s.f1) == (0.5, 0.5, 0.5)
    # BCubed precision per face: 1, 1, 1/3, 2/3, 2/3; recall: 2/3, 2/3, 1/3, 1, 1
    assert s.bcubed_precision == pytest.approx(11 / 15) and s.bcubed_recall == pytest.approx(11 / 15)
    assert s.bcubed_f == pytest.approx(11 / 15)
    assert s.nmi == pytest.approx(normalized_mutual_info_score(truth, pred))
    assert (s.n_clusters, s.n_people, s.n_noise) == (2, 2, 0)


def test_noise_counts_as_singletons() -> None:
    s = cluster_scores(["a", "a", "b"], [-1, -1, 0])
    assert (s.precision, s.recall, s.f1) == (1.0, 0.0, 0.0)
    assert (s.n_clusters, s.n_noise) == (1, 2)
    perfect = cluster_scores(["x", "y", "y"], [5, 2, 2])
    assert perfect.f1 == perfect.bcubed_f == pytest.approx(1.0) and perfect.nmi == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        cluster_scores(["a"], [0, 1])


def test_metrics_match_a_plain_loop_over_pairs_and_faces() -> None:
    rng = np.random.default_rng(4)
    truth = [f"p{x}" for x in rng.integers(0, 15, 120)]
    pred = rng.integers(-1, 25, 120).tolist()
    s = cluster_scores(truth, pred)
    pid = [c if c >= 0 else 1000 + i for i, c in enumerate(pred)]  # noise: a cluster of its own
    n = len(truth)
    together = same = both = 0
    for i in range(n):
        for j in range(i + 1, n):
            together += pid[i] == pid[j]
            same += truth[i] == truth[j]
            both += pid[i] == pid[j] and truth[i] == truth[j]
    assert (s.precision, s.recall) == pytest.approx((both / together, both / same))
    bp = np.mean([sum(pid[j] == pid[i] and truth[j] == truth[i] for j in range(n)) / pid.count(pid[i])
                  for i in range(n)])
    br = np.mean([sum(pid[j] == pid[i] and truth[j] == truth[i] for j in range(n)) / truth.count(truth[i])
                  for i in range(n)])
    assert (s.bcubed_precision, s.bcubed_recall) == pytest.approx((bp, br))
    assert s.nmi == pytest.approx(normalized_mutual_info_score(truth, pid))


def test_merge_close_joins_clusters_only_when_every_pair_is_within_the_bound() -> None:
    from faceprint.collections.clustering import merge_close

    rng = np.random.default_rng(5)
    a, b, c = rng.normal(0, 0.05, (3, 4)), rng.normal(0, 0.05, (2, 4)) + 0.2, rng.normal(0, 0.05, (3, 4)) + 5.0
    v = np.concatenate([a, b, c])
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    union = max(float(np.linalg.norm(v[i] - v[j])) for i in range(5) for j in range(5))  # plain loop over A+B
    got = merge_close(v, labels, union * 1.01, "euclidean")
    assert len(set(got[:5])) == 1 and set(got[5:]) == {2}  # A and B merged, C (far) kept apart
    assert merge_close(v, labels, union * 0.99, "euclidean").tolist() == labels.tolist()
    noisy = np.append(labels, -1)
    assert merge_close(np.concatenate([v, v[:1]]), noisy, union * 1.01, "euclidean")[-1] == -1  # noise stays noise
    # an incremental run seeds the rule with the clusters it touched; frozen (named) clusters and
    # cannot-links are never merged; the larger cluster keeps its label
    assert merge_close(v, labels, union * 1.01, "euclidean", seeds={2}).tolist() == labels.tolist()
    assert merge_close(v, labels, union * 1.01, "euclidean", seeds={1}).tolist() == [0] * 5 + [2] * 3
    for frozen in ({0}, {1}):
        assert merge_close(v, labels, union * 1.01, "euclidean", seeds={1}, frozen=frozen).tolist() == labels.tolist()
    assert merge_close(v, labels, union * 1.01, "euclidean", cannot_link=[(4, 0)]).tolist() == labels.tolist()


def test_nearest_centres_within_a_radius_match_a_plain_loop() -> None:
    from faceprint.collections.clustering import _nearest_centres

    c = np.random.default_rng(2).normal(size=(60, 5))
    query = np.array([3, 17, 40])
    idx, dist = _nearest_centres(c, query, 4, within=2.5)
    for q, row, drow in zip(query, idx, dist):
        plain = sorted((float(np.linalg.norm(c[q] - c[j])), j) for j in range(len(c)) if j != q)
        plain = [(d, j) for d, j in plain if d < 2.5][:4]
        assert row[:len(plain)].tolist() == [j for _, j in plain] and (row[len(plain):] == -1).all()
        assert drow[:len(plain)] == pytest.approx([d for d, _ in plain], abs=1e-4)
