"""Passive liveness: an anti-spoofing classifier (photo / screen / live) loaded from a path.

Accepted models:

- ``*.onnx`` taking ``(N, 3, S, S)`` float32 crops and returning class logits;
- ``*.pth`` MiniFASNet state dicts (Silent-Face anti-spoofing releases, e.g.
  ``2.7_80x80_MiniFASNetV2.pth``), rebuilt and exported to ONNX once (cached; needs PyTorch,
  ``pip install 'faceprint[train]'``), see :mod:`.minifasnet`.

Conventions (MiniFASNet's; a ``PATH.json`` sidecar may override any of them): the crop is the
face box scaled by ``scale`` about its centre (shifted to stay inside the frame), resized to
``input_size``, in BGR channel order with raw 0-255 values; class ``real_class`` (1) is
live. ``scale`` defaults to the number that starts the file name (``2.7_80x80_...`` -> 2.7,
``4_0_0_80x80_...`` -> 4.0). Several models are averaged, as their authors do.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, ModelLoadError
from .liveness import LIVE, PENDING, SPOOF, LivenessStatus


def _scale_from_name(name: str) -> float | None:
    m = re.match(r"^(\d+(?:\.\d+)?)((?:_\d+)*)_\d+x\d+", name)
    if m is None:
        return None
    if "." in m.group(1):
        return float(m.group(1))
    parts = m.group(2).strip("_").split("_")
    return float(f"{m.group(1)}.{parts[0]}") if parts and parts[0] else float(m.group(1))


def scaled_crop(rgb: np.ndarray, xyxy: np.ndarray, scale: float, size: int) -> np.ndarray:
    """``(size, size, 3)`` crop of the box scaled by ``scale`` about its centre, moved inside
    the frame (and scaled down when it cannot fit)."""
    import cv2

    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    s = min((h - 1) / bh, (w - 1) / bw, scale)
    nw, nh = bw * s, bh * s
    left, top = (x1 + x2) / 2 - nw / 2, (y1 + y2) / 2 - nh / 2
    left = min(max(left, 0.0), w - 1 - nw)
    top = min(max(top, 0.0), h - 1 - nh)
    crop = rgb[int(top):int(top + nh) + 1, int(left):int(left + nw) + 1]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)


class AntiSpoofModel:
    """``real_probability(rgb, xyxy) -> (N,)`` with one anti-spoofing network.

    Args:
        path: ``.onnx`` or MiniFASNet ``.pth`` file.
        scale, input_size, real_class, bgr: override the conventions (see the module docstring).

    Raises:
        ModelLoadError: the file is missing, of an unknown kind, or cannot be loaded.
    """

    def __init__(self, path: str | Path, scale: float | None = None, input_size: int | None = None,
                 real_class: int | None = None, bgr: bool | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelLoadError(f"anti-spoofing model not found: {self.path}")
        if self.path.suffix.lower() not in (".onnx", ".pth"):
            raise ModelLoadError(f"anti-spoofing model must be .onnx or a MiniFASNet .pth, got {self.path.name}")
        sidecar = self.path.with_suffix(self.path.suffix + ".json")
        spec = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        self.scale = float(scale or spec.get("scale") or _scale_from_name(self.path.name) or 2.7)
        self.input_size = int(input_size or spec.get("input_size", 80))
        self.real_class = int(real_class if real_class is not None else spec.get("real_class", 1))
        self.bgr = bool(bgr if bgr is not None else spec.get("bgr", True))
        self._session: Any = None

    def onnx_path(self) -> Path:
        """The ONNX file to run (for ``.pth``, the cached export)."""
        if self.path.suffix.lower() == ".onnx":
            return self.path
        from ..cache import cached_file
        from .minifasnet import export_onnx

        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]
        return cached_file(f"minifasnet-{self.path.stem}-{digest}.onnx",
                           lambda tmp: export_onnx(self.path, tmp, self.input_size))

    @property
    def session(self) -> Any:
        if self._session is None:
            from ..onnx_graph import open_session

            try:
                self._session = open_session(self.onnx_path(), 1, spinning=False, fixed_shapes=False)
            except ModelLoadError:
                raise
            except Exception as exc:
                raise ModelLoadError(f"cannot load anti-spoofing model {self.path}: {exc}") from exc
        return self._session

    def real_probability(self, rgb: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        """P(live) ``(N,)`` for each ``(N, 4)`` box of the RGB frame (softmax of the logits)."""
        boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
        if not len(boxes):
            return np.zeros(0)
        crops = np.stack([scaled_crop(rgb, b, self.scale, self.input_size) for b in boxes])
        if self.bgr:
            crops = crops[..., ::-1]
        x = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)
        session = self.session
        logits = session.run(None, {session.get_inputs()[0].name: x})[0].astype(np.float64)
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        return p[:, self.real_class]


class PassiveLiveness:
    """Passive liveness check: average P(live) of the models over a few frames of each track.

    Every ``every_frames``-th observed frame of a track is scored until ``samples`` frames are;
    the track is then ``"live"`` when the mean is >= ``threshold``, else ``"spoof"``.

    Raises:
        ConfigError: no model, or a parameter out of range.
    """

    name = "antispoof"

    def __init__(self, models: Sequence[AntiSpoofModel], samples: int = 3, every_frames: int = 5,
                 threshold: float = 0.5) -> None:
        if not models:
            raise ConfigError("passive liveness needs at least one anti-spoofing model")
        if samples < 1 or every_frames < 1 or not 0.0 < threshold < 1.0:
            raise ConfigError(f"need samples >= 1, every_frames >= 1, 0 < threshold < 1; "
                              f"got {samples}, {every_frames}, {threshold}")
        self.models = list(models)
        self.samples, self.every_frames, self.threshold = int(samples), int(every_frames), float(threshold)
        self._seen: dict[int, int] = {}
        self._scores: dict[int, list[float]] = {}

    def score(self, rgb: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        """Mean P(live) of the models, ``(N,)`` for ``(N, 4)`` boxes."""
        return np.mean([m.real_probability(rgb, xyxy) for m in self.models], axis=0)

    def observe(self, track_id: int, rgb: np.ndarray, xyxy: np.ndarray, landmarks: np.ndarray,
                time_s: float) -> None:
        seen = self._seen.get(track_id, 0)
        self._seen[track_id] = seen + 1
        scores = self._scores.setdefault(track_id, [])
        if len(scores) < self.samples and seen % self.every_frames == 0:
            scores.append(float(self.score(rgb, np.asarray(xyxy)[None])[0]))

    def status(self, track_id: int) -> LivenessStatus:
        scores = self._scores.get(track_id, [])
        if len(scores) < self.samples:
            return LivenessStatus(PENDING, None, self.name, f"{len(scores)}/{self.samples} frames scored")
        mean = float(np.mean(scores))
        return LivenessStatus(LIVE if mean >= self.threshold else SPOOF, mean, self.name, f"P(live) {mean:.2f}")

    def load(self) -> None:
        for model in self.models:
            _ = model.session

    def forget(self, track_id: int) -> None:
        self._seen.pop(track_id, None)
        self._scores.pop(track_id, None)


__all__ = ["AntiSpoofModel", "PassiveLiveness", "scaled_crop"]
