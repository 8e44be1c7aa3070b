"""Any ONNX embedder from a user-given path, described by a :class:`ModelSpec`.

The spec comes from the caller, from a JSON sidecar next to the model (``model.onnx.json``
or ``model.json`` with :class:`ModelSpec` fields), or, for what neither gives, from the
model's input shape and the common ArcFace conventions (112x112 ArcFace template,
``(x - 127.5) / 127.5``, cosine metric). An uncalibrated threshold is only a starting point:
``faceprint calibrate`` measures one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelLoadError
from ..spec import TEMPLATES, ModelSpec
from .base import OnnxEmbedder

#: Cosine distance used when a model comes with no threshold (cos similarity 0.6).
UNCALIBRATED_COSINE_THRESHOLD = 0.4


def _sidecar(path: Path) -> dict[str, Any]:
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{candidate}: not a valid JSON model spec ({exc})") from exc
    return {}


def spec_for_onnx(path: str | Path, overrides: dict[str, Any] | None = None) -> ModelSpec:
    """Build the spec of an ONNX embedder from its sidecar, ``overrides`` and its shapes.

    Raises:
        ModelLoadError: the file is missing or not an image-embedding model.
        ConfigError: the resulting spec is inconsistent.
    """
    from ..onnx_graph import open_session

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"ONNX model not found: {path}")
    fields: dict[str, Any] = {**_sidecar(path), **(overrides or {})}
    session = open_session(path, threads=1)
    in_shape = session.get_inputs()[0].shape
    out_shape = session.get_outputs()[0].shape
    if len(in_shape) != 4:
        raise ModelLoadError(f"{path}: expected a 4-D image input, got {in_shape}")
    side = next((d for d in in_shape[1:] if isinstance(d, int) and d > 3), None)
    size = int(fields.get("input_size") or side or 112)
    template = fields.get("template") or next((t for t, s in TEMPLATES.items() if s == size), None)
    if template is None:
        raise ConfigError(f"{path}: no alignment template makes {size}px chips; give 'template' in the spec")
    dim = fields.get("dim") or (out_shape[-1] if isinstance(out_shape[-1], int) else None)
    if not dim:
        raise ConfigError(f"{path}: output size unknown; give 'dim' in the spec")
    digest = hashlib.sha1(path.read_bytes()).hexdigest()[:10]
    metric = fields.get("metric", "cosine")
    default_threshold = UNCALIBRATED_COSINE_THRESHOLD if metric == "cosine" else 1.0
    return ModelSpec(
        model_id=fields.get("model_id", f"onnx:{path.stem}:{digest}"),
        input_size=size,
        mean=tuple(fields.get("mean", (127.5, 127.5, 127.5))),
        std=tuple(fields.get("std", (127.5, 127.5, 127.5))),
        template=template,
        dim=int(dim),
        metric=metric,
        threshold=float(fields.get("threshold", default_threshold)),
        normalize=bool(fields.get("normalize", metric == "cosine")),
        thresholds={str(k): float(v) for k, v in (fields.get("thresholds") or {}).items()},
        thresholds_source=str(fields.get("thresholds_source", "")),
    )


class OnnxPathEmbedder(OnnxEmbedder):
    """An ONNX embedder from ``path``; see :func:`spec_for_onnx` for where its spec comes from."""

    def __init__(self, path: str | Path, spec: ModelSpec | dict[str, Any] | None = None,
                 batch_size: int = 32, threads: int = 0, flip: bool = False, jitter: int = 0, seed: int = 0) -> None:
        if not isinstance(spec, ModelSpec):
            spec = spec_for_onnx(path, spec)
        super().__init__(path, spec, batch_size=batch_size, threads=threads, flip=flip, jitter=jitter, seed=seed)
