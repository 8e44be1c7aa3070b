"""Model specs: the metadata that travels with an embedder.

Preprocessing, alignment and default thresholds are derived from the spec and never copied
elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ConfigError

#: Alignment templates an aligner can produce, with their chip sizes.
TEMPLATES: dict[str, int] = {"dlib_150": 150, "arcface_112": 112}


@dataclass(frozen=True)
class ModelSpec:
    """Everything a pipeline needs to know about an embedder.

    Attributes:
        model_id: stable id stored next to every vector the model produces.
        input_size: chip side in pixels (square chips).
        mean: per-channel RGB values subtracted from the uint8 chip.
        std: per-channel RGB divisors applied after the subtraction.
        template: alignment template name (a key of :data:`TEMPLATES`).
        dim: embedding size.
        metric: ``"euclidean"`` or ``"cosine"``.
        threshold: default decision threshold in ``metric`` units (match when distance <= it).
        normalize: L2-normalise outputs.
        thresholds: calibrated thresholds in ``metric`` units, measured on labelled pairs with
            the default pipeline: ``"accuracy"`` (the threshold of best accuracy) and
            ``"far_1e-2"``, ``"far_1e-3"``, ... (the largest threshold whose false accept rate
            is at most that FAR). Stricter FARs never get larger thresholds. Empty when the
            model was never calibrated. Where they were measured is in ``thresholds_source``;
            they are measurements on one data set, not guarantees for another (``faceprint
            calibrate`` measures your own).
        thresholds_source: the pairs and pipeline ``thresholds`` were measured on.
        openset: model-level statistics for the gallery's open-set decision
            (:mod:`faceprint.gallery.scoring`): ``"ratio_thresholds"`` (``[[people, threshold],
            ...]``, the normalised-score threshold by gallery size), ``"pad"`` (the impostor
            distance assumed where fewer are known), ``"phantoms"`` (how many synthetic
            impostor faces to draw) and ``"stats"`` (an ``.npz`` beside the model's module
            with the Gaussian they are drawn from: ``mean``, ``between``, ``within`` roots),
            ``"source"`` (what they were fitted and chosen on). Empty: the policy's defaults.
    """

    model_id: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    template: str
    dim: int
    metric: str
    threshold: float
    normalize: bool = False
    thresholds: dict[str, float] = field(default_factory=dict, hash=False)
    thresholds_source: str = ""
    openset: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise ConfigError(f"unknown template {self.template!r}; expected one of {sorted(TEMPLATES)}")
        if TEMPLATES[self.template] != self.input_size:
            raise ConfigError(
                f"template {self.template!r} makes {TEMPLATES[self.template]}px chips, "
                f"but input_size is {self.input_size}"
            )
        if self.metric not in ("euclidean", "cosine"):
            raise ConfigError(f"metric must be 'euclidean' or 'cosine', got {self.metric!r}")
        if self.dim <= 0 or self.threshold <= 0:
            raise ConfigError(f"dim and threshold must be positive, got {self.dim}, {self.threshold}")
        self._check_thresholds()

    def _check_thresholds(self) -> None:
        """Keys ``"accuracy"`` or ``"far_<rate>"``, positive finite values, ordered by FAR."""
        fars: list[tuple[float, float]] = []
        for key, value in self.thresholds.items():
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"calibrated threshold {key!r} must be a positive number, got {value!r}")
            if key == "accuracy":
                continue
            rate = None
            if key.startswith("far_"):
                try:
                    rate = float(key[4:])
                except ValueError:
                    rate = None
            if rate is None or not 0 < rate < 1:
                raise ConfigError(f"calibrated threshold keys are 'accuracy' or 'far_<rate>' (e.g. 'far_1e-3'), "
                                  f"got {key!r}")
            fars.append((rate, float(value)))
        fars.sort()
        for (rate_lo, t_lo), (rate_hi, t_hi) in zip(fars, fars[1:]):
            if t_lo > t_hi:
                raise ConfigError(f"calibrated thresholds out of order: FAR {rate_lo:g} has {t_lo:g}, "
                                  f"more than FAR {rate_hi:g}'s {t_hi:g}")

    def threshold_for(self, key: str) -> float:
        """The calibrated threshold ``key`` (``"accuracy"``, ``"far_1e-3"``, ...).

        Raises:
            ConfigError: the spec has no such calibrated threshold.
        """
        if key not in self.thresholds:
            known = ", ".join(sorted(self.thresholds)) or "none"
            raise ConfigError(f"model {self.model_id!r} has no calibrated threshold {key!r} (has: {known})")
        return float(self.thresholds[key])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
