"""Clustering algorithms on synthetic embeddings, against scikit-learn and dlib; metrics by hand."""

from __future__ import annotations

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


def _sklearn_labels(name: str, X: np.ndarray) -> np.ndarray:
    sk = sklearn_cluster
    ref = {
        "dbscan": sk.DBSCAN(eps=0.5, min_samples=2),
        "hdbscan": sk.HDBSCAN(min_cluster_size=2, min_samples=1),
        "agglomerative": sk.AgglomerativeClustering(n_clusters=None, distance_threshold=0.5, linkage="average"),
        "kmeans": sk.KMeans(n_clusters=8, n_init=10, random_state=0),
    }[name]
    return ref.fit(X.astype(np.float64)).labels_


@pytest.mark.parametrize("name", ["dbscan", "hdbscan", "agglomerative", "kmeans"])
@pytest.mark.parametrize("data", [SEPARATED, OVERLAPPING], ids=["separated", "overlapping"])
def test_matches_scikit_learn(name: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = data
    ours = create_clusterer(name, **params(name)).fit(X).labels_
    ref = _sklearn_labels(name, X)
    assert adjusted_rand_score(ref, ours) == 1.0
    assert np.array_equal(ours < 0, ref < 0)  # the same faces are noise


def test_hdbscan_threshold_cuts_clusters_by_average_linkage() -> None:
    X, truth = OVERLAPPING
    plain = create_clusterer("hdbscan").fit(X).labels_
    cut = create_clusterer("hdbscan", threshold=0.4).fit(X).labels_
    for lab in np.unique(plain[plain >= 0]):  # each HDBSCAN cluster, cut by scikit-learn's average linkage
        rows = np.flatnonzero(plain == lab)
        ref = (sklearn_cluster.AgglomerativeClustering(n_clusters=None, distance_threshold=0.4, linkage="average")
               .fit(X[rows].astype(np.float64)).labels_ if len(rows) > 1 else np.zeros(1))
        assert adjusted_rand_score(ref, cut[rows]) == 1.0
    assert np.array_equal(cut < 0, plain < 0)
    # two tight people only: HDBSCAN alone has no scale and may join them; the threshold keeps them apart
    two = np.concatenate([np.zeros((3, 4)), np.full((3, 4), 0.5)]) + np.arange(6)[:, None] * 1e-3
    assert len(set(create_clusterer("hdbscan", threshold=0.6).fit(two).labels_)) == 2


def test_agglomerative_cut_at_k_matches_scikit_learn() -> None:
    X, truth = OVERLAPPING
    ours = create_clusterer("agglomerative", n_clusters=8).fit(X).labels_
    ref = sklearn_cluster.AgglomerativeClustering(n_clusters=8, linkage="average").fit(X.astype(np.float64)).labels_
    assert adjusted_rand_score(ref, ours) == 1.0 and len(set(ours)) == 8


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
