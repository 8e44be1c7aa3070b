"""The embedder interface and the ONNX Runtime embedder every backend builds on."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelLoadError
from ..spec import ModelSpec
from ..stages import Fanout
from ..types import AlignedFaces, Embeddings


class OnnxEmbedder:
    """Runs an ONNX embedding model on aligned chips, in batches.

    Args:
        path: the ``.onnx`` file (opened on first use).
        spec: the model's :class:`ModelSpec`; preprocessing follows it.
        batch_size: chips per :meth:`embed` step (with ``flip``, chips plus mirrors per step).
        threads: inference threads (0 = all cores). The session runs single-threaded and a
            step's chips are split into ``threads`` parts that run side by side
            (:class:`~faceprint.stages.Fanout`): ~30 % less CPU than ONNX Runtime's intra-op
            threads on the same batch, same vectors.
        flip: test-time augmentation: embed each chip and its horizontal mirror in the same
            batch and average the two raw outputs (before any L2 normalisation). Costs about
            twice the inference time. The model id is unchanged because flip-averaged vectors
            stay comparable with plain ones: for dlib_resnet on LFW View 1 DevTrain a face's
            plain and flip-averaged vectors lie 0.095 apart on average (max 0.21; threshold
            0.6), and pairs with one side of each kind score between plain-only and
            flip-only pairs (AUC 0.99950 vs 0.99938 and 0.99960; accuracy at 0.6: 0.9902 vs
            0.9882 and 0.9918). :meth:`describe` records the setting.
    """

    def __init__(self, path: str | Path | None, spec: ModelSpec, batch_size: int = 32, threads: int = 0,
                 flip: bool = False, jitter: int = 0, seed: int = 0) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if int(jitter) < 0:
            raise ConfigError(f"jitter must be >= 0, got {jitter}")
        if int(threads) < 0:
            raise ConfigError(f"threads must be >= 0 (0 = all cores), got {threads}")
        self.path = None if path is None else Path(path)
        self.spec = spec
        self.batch_size = int(batch_size)
        self.threads = int(threads)
        self.flip = bool(flip)
        self.jitter = int(jitter)
        self.seed = int(seed)
        self._jitters: tuple[np.ndarray, np.ndarray] | None = None
        self._session: Any = None
        self._layout = "NCHW"
        self._max_batch = self.batch_size
        self._fixed_batch = False
        self._fanout = Fanout(self.threads)  # helper threads start on first use

    def model_path(self) -> Path:
        """The ONNX file to open; subclasses that convert weights override this."""
        if self.path is None:
            raise ModelLoadError("no ONNX model path given")
        return self.path

    @property
    def session(self) -> Any:
        if self._session is None:
            from ..onnx_graph import open_session

            path = self.model_path()
            if not Path(path).is_file():
                raise ModelLoadError(f"ONNX model not found: {path}")
            # one intra-op thread: the parallelism is the Fanout's parts of each batch
            session = open_session(path, 1)
            shape = session.get_inputs()[0].shape
            if len(shape) != 4:
                raise ModelLoadError(f"{path}: expected a 4-D image input, got shape {shape}")
            self._layout = "NHWC" if shape[-1] == 3 and shape[1] != 3 else "NCHW"
            if isinstance(shape[0], int) and shape[0] > 0:  # a model exported with a fixed batch
                self._max_batch = min(self.batch_size, shape[0])
                self._fixed_batch = True
            self._session = session
        return self._session

    def preprocess(self, chips: np.ndarray) -> np.ndarray:
        """uint8 ``(N, S, S, 3)`` -> float32 tensor in the model's layout."""
        mean, std = np.asarray(self.spec.mean, np.float32), np.asarray(self.spec.std, np.float32)
        if self._layout == "NCHW":  # written straight into the layout: two passes instead of four
            chips, mean, std = chips.transpose(0, 3, 1, 2), mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
        x = np.empty(chips.shape, np.float32)
        np.subtract(chips, mean, out=x, dtype=np.float32)  # uint8 -> float32 is exact, as astype
        return np.divide(x, std, out=x)

    def _infer(self, chips: np.ndarray) -> np.ndarray:
        """Raw ``(N, dim)`` outputs for uint8 chips, in calls of at most the model's batch size,
        split over the inference threads (a fixed-batch model keeps whole calls)."""
        session = self.session
        name = session.get_inputs()[0].name
        size = self._max_batch
        if not self._fixed_batch:
            size = min(size, max(1, -(-len(chips) // self._fanout.workers)))

        def run(part: np.ndarray) -> np.ndarray:
            return session.run(None, {name: self.preprocess(part)})[0].reshape(len(part), -1)

        return np.concatenate(self._fanout.map(run, [chips[i : i + size] for i in range(0, len(chips), size)]))

    def embed(self, aligned: AlignedFaces | np.ndarray) -> Embeddings:
        """Embed aligned chips: :class:`AlignedFaces` or a uint8 ``(N, S, S, 3)`` array.

        Raises:
            ConfigError: chips are not of the model's input size or template.
        """
        if isinstance(aligned, AlignedFaces):
            if aligned.template != self.spec.template:
                raise ConfigError(f"chips follow template {aligned.template!r}, model expects {self.spec.template!r}")
            chips = aligned.chips
        else:
            chips = AlignedFaces(np.asarray(aligned), self.spec.template).chips
        size = self.spec.input_size
        if chips.shape[1:3] != (size, size):
            raise ConfigError(f"chips must be {size}x{size}, got {chips.shape[2]}x{chips.shape[1]}")
        self.session  # opening the session sets the model's batch limit (_max_batch)
        out = np.zeros((len(chips), self.spec.dim), dtype=np.float32)
        # each step runs its chips and all their views (mirror, jitters) together
        n_views = 1 + self.flip + self.jitter
        step = max(1, self._max_batch // n_views)
        for start in range(0, len(chips), step):
            part = chips[start : start + step]
            n = len(part)
            views = [part, part[:, :, ::-1]] if self.flip else [part]
            if self.jitter:
                views.append(self._jitter(part))
            raw = self._infer(np.concatenate(views)).astype(np.float64)
            out[start : start + n] = raw.reshape(n_views, n, -1).mean(0)
        if self.spec.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return Embeddings(out, self.spec.model_id, self.spec.metric)

    def with_views(self, *, flip: bool | None = None, jitter: int | None = None) -> OnnxEmbedder:
        """A copy with other test-time views (``None`` keeps this one's), sharing the loaded
        model: e.g. a jittered embedder for enrollment next to a plain one for queries.

        Raises:
            ConfigError: ``jitter`` is negative.
        """
        if jitter is not None and int(jitter) < 0:
            raise ConfigError(f"jitter must be >= 0, got {jitter}")
        twin = copy.copy(self)
        twin.flip = self.flip if flip is None else bool(flip)
        twin.jitter = self.jitter if jitter is None else int(jitter)
        if twin.jitter != self.jitter:
            twin._jitters = None
        return twin

    def _jitter(self, chips: np.ndarray) -> np.ndarray:
        from .tta import jitter_chips, jitter_transforms

        if self._jitters is None:
            self._jitters = jitter_transforms(self.jitter, self.spec.input_size, self.seed)
        return jitter_chips(chips, *self._jitters)

    def describe(self) -> dict[str, Any]:
        return {**self.spec.to_dict(), "batch_size": self.batch_size, "flip": self.flip, "jitter": self.jitter}
