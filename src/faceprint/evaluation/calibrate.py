"""Fit a :class:`~faceprint.calibration.Calibration` from labelled pair distances."""

from __future__ import annotations

import numpy as np

from ..calibration import Calibration
from ..errors import ConfigError
from .metrics import _check, _check_both_classes, far_interval, threshold_at_far


def bootstrap_threshold_interval(distances: np.ndarray, labels: np.ndarray, far: float, confidence: float = 0.95,
                                 n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile interval on the FAR threshold, resampling impostor pairs with replacement.

    In each resample the threshold is the ``k+1``-th smallest impostor distance
    (``k = floor(far * n_impostor)``), the edge :func:`threshold_at_far` stays below.
    """
    d, y = _check(distances, labels)
    imp = d[~y]
    n = len(imp)
    k = min(int(np.floor(far * n + 1e-9)), n - 1)
    rng = np.random.default_rng(seed)
    stats = []
    chunk = max(1, 2_000_000 // max(n, 1))
    for start in range(0, n_boot, chunk):
        sample = imp[rng.integers(0, n, size=(min(chunk, n_boot - start), n))]
        stats.append(np.partition(sample, k, axis=1)[:, k])
    values = np.concatenate(stats)
    alpha = 1.0 - confidence
    return float(np.quantile(values, alpha / 2)), float(np.quantile(values, 1 - alpha / 2))


def fit_logistic(distances: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """``(intercept, coef)`` of a logistic regression of ``same`` on distance (almost unregularised)."""
    from sklearn.linear_model import LogisticRegression

    d, y = _check(distances, labels)
    _check_both_classes(y)
    model = LogisticRegression(C=1e6, max_iter=1000).fit(d[:, None], y.astype(int))
    return float(model.intercept_[0]), float(model.coef_[0, 0])


def calibrate(distances: np.ndarray, labels: np.ndarray, model_id: str, metric: str, far: float = 1e-3,
              confidence: float = 0.95, source: str = "", n_boot: int = 1000, seed: int = 0) -> Calibration:
    """Choose the threshold for a target FAR and fit the match-probability curve.

    The threshold is the largest one whose empirical FAR on these pairs is ``<= far`` (see
    :func:`~faceprint.evaluation.metrics.threshold_at_far`); ``far_ci`` is the exact binomial
    interval on the FAR there and ``threshold_ci`` a bootstrap interval over impostor pairs.
    With fewer than ``1 / far`` impostor pairs the target cannot be resolved: the empirical
    FAR is 0 and ``far_ci``'s upper end shows how little that says.

    Raises:
        ConfigError: a class is missing, ``far`` or ``confidence`` out of range.
    """
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    d, y = _check(distances, labels)
    _check_both_classes(y)
    threshold, far_emp, tar = threshold_at_far(d, y, far)
    n_imp, n_gen = int((~y).sum()), int(y.sum())
    false_accepts = int(np.sum(d[~y] <= threshold))
    intercept, coef = fit_logistic(d, y)
    return Calibration(
        model_id=model_id, metric=metric, threshold=threshold, target_far=float(far), far=far_emp,
        far_ci=far_interval(false_accepts, n_imp, confidence),
        threshold_ci=bootstrap_threshold_interval(d, y, far, confidence, n_boot, seed),
        confidence=float(confidence), tar=tar, n_impostor=n_imp, n_genuine=n_gen,
        logistic_intercept=intercept, logistic_coef=coef, source=source,
        extras={"false_accepts": false_accepts, "resolvable": bool(n_imp * far >= 1.0)},
    )


__all__ = ["bootstrap_threshold_interval", "calibrate", "fit_logistic"]
