"""Verification metrics from pair distances and labels.

Inputs are distances (``match when distance <= threshold``, the unit the model's spec uses) and
boolean labels (True = same identity). Internally scores are ``-distance`` so that the
"higher = closer" convention holds wherever scikit-learn is used; thresholds come back as
distances.

FAR (false accept rate) is the fraction of impostor (different) pairs accepted, TAR (true
accept rate) the fraction of genuine (same) pairs accepted, FRR = 1 - TAR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError


def _check(distances: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(distances, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).astype(bool).reshape(-1)
    if len(d) != len(y):
        raise ConfigError(f"distances and labels differ in length: {len(d)} vs {len(y)}")
    if not np.isfinite(d).all():
        raise ConfigError("distances contain NaN or inf")
    return d, y


def _check_both_classes(y: np.ndarray) -> None:
    if y.all() or not y.any():
        raise ConfigError(f"need both same and different pairs, "
                          f"got {int(y.sum())} same and {int((~y).sum())} different")


@dataclass(frozen=True)
class Roc:
    """ROC points, ordered by increasing threshold: ``far``, ``tar`` and distance ``thresholds``
    (accept when ``distance <= threshold``); the first point accepts nothing."""

    far: np.ndarray
    tar: np.ndarray
    thresholds: np.ndarray

    @property
    def frr(self) -> np.ndarray:
        return 1.0 - self.tar


def roc(distances: np.ndarray, labels: np.ndarray) -> Roc:
    """The full ROC (every distinct threshold kept), via ``sklearn.metrics.roc_curve``.

    Raises:
        ConfigError: lengths differ, non-finite distances, or only one class present.
    """
    from sklearn.metrics import roc_curve

    d, y = _check(distances, labels)
    _check_both_classes(y)
    fpr, tpr, thr = roc_curve(y, -d, drop_intermediate=False)
    return Roc(fpr, tpr, -thr)  # first threshold is -inf: accepts nothing


def auc(distances: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (probability a genuine pair is closer than an impostor pair)."""
    from sklearn.metrics import auc as sk_auc

    curve = roc(distances, labels)
    return float(sk_auc(curve.far, curve.tar))


def eer(distances: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Equal error rate and its distance threshold, linearly interpolated where FAR crosses FRR."""
    curve = roc(distances, labels)
    diff = curve.far - curve.frr  # increases from -1 to +1 along the curve
    i = int(np.argmax(diff >= 0))
    if i == 0 or diff[i] == 0:
        return float(curve.far[i]), float(curve.thresholds[i] if np.isfinite(curve.thresholds[i]) else 0.0)
    w = -diff[i - 1] / (diff[i] - diff[i - 1])
    rate = curve.far[i - 1] + w * (curve.far[i] - curve.far[i - 1])
    t0 = curve.thresholds[i - 1] if np.isfinite(curve.thresholds[i - 1]) else curve.thresholds[i]
    return float(rate), float(t0 + w * (curve.thresholds[i] - t0))


def candidate_thresholds(distances: np.ndarray) -> np.ndarray:
    """Midpoints between consecutive distinct distances, plus one below the smallest and one
    above the largest: every distinct decision on this data, with a margin on both sides."""
    u = np.unique(np.asarray(distances, dtype=np.float64))
    if len(u) == 0:
        return np.zeros(1)
    gap = max(float(u[-1] - u[0]), 1.0) * 1e-6
    return np.concatenate([[u[0] - gap], (u[:-1] + u[1:]) / 2, [u[-1] + gap]])


def accuracy_at(distances: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Fraction of pairs decided correctly by ``distance <= threshold``."""
    d, y = _check(distances, labels)
    if len(d) == 0:
        raise ConfigError("accuracy of zero pairs is undefined")
    return float(np.mean((d <= threshold) == y))


def _accept_counts(d: np.ndarray, y: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accepted genuine and accepted impostor counts at each threshold."""
    genuine = np.sort(d[y])
    impostor = np.sort(d[~y])
    return (np.searchsorted(genuine, thresholds, side="right"), np.searchsorted(impostor, thresholds, side="right"))


def best_threshold(distances: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The threshold (among :func:`candidate_thresholds`) with the highest accuracy, and that
    accuracy; ties go to the smallest threshold."""
    d, y = _check(distances, labels)
    if len(d) == 0:
        raise ConfigError("cannot choose a threshold from zero pairs")
    cand = candidate_thresholds(d)
    tp, fp = _accept_counts(d, y, cand)
    correct = tp + (int((~y).sum()) - fp)
    i = int(np.argmax(correct))
    return float(cand[i]), float(correct[i] / len(d))


@dataclass(frozen=True)
class FoldResult:
    """Per-fold accuracies and the thresholds they were measured at."""

    accuracies: np.ndarray
    thresholds: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.accuracies.mean())

    @property
    def std(self) -> float:
        return float(self.accuracies.std())


def kfold_accuracy(distances: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> FoldResult:
    """LFW-protocol accuracy: for each fold, choose the best threshold on the other folds and
    measure accuracy on the held fold. With a single fold the threshold is chosen on that same
    fold (an optimistic, "self-tuned" accuracy).

    Raises:
        ConfigError: lengths differ.
    """
    d, y = _check(distances, labels)
    f = np.asarray(folds).reshape(-1)
    if len(f) != len(d):
        raise ConfigError(f"folds and distances differ in length: {len(f)} vs {len(d)}")
    ids = np.unique(f)
    accs, thrs = [], []
    for k in ids:
        held = f == k
        train = ~held if len(ids) > 1 else held
        t, _ = best_threshold(d[train], y[train])
        thrs.append(t)
        accs.append(accuracy_at(d[held], y[held], t))
    return FoldResult(np.array(accs), np.array(thrs))


def threshold_at_far(distances: np.ndarray, labels: np.ndarray, far: float) -> tuple[float, float, float]:
    """The largest candidate threshold whose empirical FAR is ``<= far``.

    Candidates are :func:`candidate_thresholds` of all distances, so the threshold sits halfway
    between the last accepted and the first rejected pair. Returns ``(threshold, far_at_it,
    tar_at_it)``.

    Raises:
        ConfigError: ``far`` outside ``[0, 1]`` or a class is missing.
    """
    if not 0.0 <= far <= 1.0:
        raise ConfigError(f"far must be in [0, 1], got {far}")
    d, y = _check(distances, labels)
    _check_both_classes(y)
    cand = candidate_thresholds(d)
    tp, fp = _accept_counts(d, y, cand)
    rates = fp / int((~y).sum())
    ok = np.flatnonzero(rates <= far + 1e-12)  # rates[0] == 0, so never empty
    i = int(ok[-1])
    return float(cand[i]), float(rates[i]), float(tp[i] / int(y.sum()))


def tar_at_far(distances: np.ndarray, labels: np.ndarray, far: float) -> float:
    """TAR at the largest threshold keeping FAR ``<= far`` (see :func:`threshold_at_far`)."""
    return threshold_at_far(distances, labels, far)[2]


def far_interval(false_accepts: int, impostors: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) binomial interval on a FAR of ``false_accepts / impostors``."""
    from scipy.stats import beta

    if impostors <= 0:
        raise ConfigError("a FAR interval needs at least one impostor pair")
    alpha = 1.0 - confidence
    x, n = int(false_accepts), int(impostors)
    lo = 0.0 if x == 0 else float(beta.ppf(alpha / 2, x, n - x + 1))
    hi = 1.0 if x == n else float(beta.ppf(1 - alpha / 2, x + 1, n - x))
    return lo, hi


def far_key(far: float) -> str:
    """``1e-3`` -> ``"1e-3"`` (the key used in reports)."""
    mantissa, exponent = f"{far:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


__all__ = [
    "FoldResult",
    "Roc",
    "accuracy_at",
    "auc",
    "best_threshold",
    "candidate_thresholds",
    "eer",
    "far_interval",
    "far_key",
    "kfold_accuracy",
    "roc",
    "tar_at_far",
    "threshold_at_far",
]
