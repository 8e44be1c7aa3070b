"""Model specs: the metadata that travels with an embedder.

Preprocessing, alignment and default thresholds are derived from the spec and never copied
elsewhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
