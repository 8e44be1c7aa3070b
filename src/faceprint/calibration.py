"""A model's decision threshold and match probability, calibrated on labelled pairs.

``faceprint calibrate`` (see :func:`faceprint.evaluation.calibrate.calibrate`) writes a JSON
file; ``FacePipeline(calibration=...)`` reads it, uses its threshold instead of the spec's and
can turn a distance into a match probability with :meth:`Calibration.probability`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Calibration:
    """A threshold chosen for a target FAR, plus a logistic distance -> P(same) fit.

    Attributes:
        model_id: the embedder the distances came from; pipelines of other models refuse it.
        metric: the distance (``"euclidean"`` or ``"cosine"``).
        threshold: match when ``distance <= threshold``.
        target_far: the FAR the threshold was chosen for.
        far: empirical FAR at ``threshold`` on the calibration pairs.
        far_ci: ``(low, high)`` exact binomial interval on ``far`` at ``confidence``.
        threshold_ci: ``(low, high)`` bootstrap interval (impostor pairs resampled) on the threshold.
        confidence: level of both intervals.
        tar: empirical TAR at ``threshold``.
        n_impostor: impostor (different) pairs behind ``far``.
        n_genuine: genuine (same) pairs behind ``tar``.
        logistic_intercept, logistic_coef: ``P(same | d) = 1 / (1 + exp(-(intercept + coef * d)))``.
        source: the pairs file used.
    """

    model_id: str
    metric: str
    threshold: float
    target_far: float
    far: float
    far_ci: tuple[float, float]
    threshold_ci: tuple[float, float]
    confidence: float
    tar: float
    n_impostor: int
    n_genuine: int
    logistic_intercept: float
    logistic_coef: float
    source: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.metric not in ("euclidean", "cosine"):
            raise ConfigError(f"calibration metric must be 'euclidean' or 'cosine', got {self.metric!r}")
        if not math.isfinite(self.threshold):
            raise ConfigError(f"calibration threshold must be finite, got {self.threshold}")

    def probability(self, distance: float | np.ndarray) -> float | np.ndarray:
        """Match probability ``P(same)`` for a distance (scalar or array), from the logistic fit."""
        z = self.logistic_intercept + self.logistic_coef * np.asarray(distance, dtype=np.float64)
        p = 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow
        return float(p) if np.ndim(p) == 0 else p

    @property
    def boundary(self) -> float:
        """The distance where the match probability is 0.5."""
        return -self.logistic_intercept / self.logistic_coef if self.logistic_coef else float("nan")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["far_ci"] = list(self.far_ci)
        data["threshold_ci"] = list(self.threshold_ci)
        return {"format": "faceprint-calibration", "version": FORMAT_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> Calibration:
        """Raises :class:`ConfigError` when keys are missing or of the wrong type."""
        if not isinstance(data, dict) or data.get("format") != "faceprint-calibration":
            raise ConfigError(f"{source}: not a faceprint calibration file "
                              "(expected \"format\": \"faceprint-calibration\")")
        try:
            return cls(
                model_id=str(data["model_id"]), metric=str(data["metric"]), threshold=float(data["threshold"]),
                target_far=float(data["target_far"]), far=float(data["far"]),
                far_ci=(float(data["far_ci"][0]), float(data["far_ci"][1])),
                threshold_ci=(float(data["threshold_ci"][0]), float(data["threshold_ci"][1])),
                confidence=float(data["confidence"]), tar=float(data["tar"]),
                n_impostor=int(data["n_impostor"]), n_genuine=int(data["n_genuine"]),
                logistic_intercept=float(data["logistic_intercept"]), logistic_coef=float(data["logistic_coef"]),
                source=str(data.get("source", "")), extras=dict(data.get("extras", {})),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ConfigError(f"{source}: bad calibration file ({type(exc).__name__}: {exc})") from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Raises :class:`ConfigError` when the file is missing, not JSON or not a calibration."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read calibration file ({exc.strerror or exc})") from None
        except ValueError as exc:
            raise ConfigError(f"{path}: calibration file is not JSON ({exc})") from None
        return cls.from_dict(data, str(path))


__all__ = ["Calibration"]
