"""The detect -> align -> embed pipeline and 1:1 verification."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .errors import ConfigError, ModelMismatchError, NoFaceError
from .image import ImageInput, describe, load_image
from .types import AlignedFaces, Embeddings, Faces, Verification


@dataclass
class FaceEmbeddings:
    """The faces of one image and their embeddings, row for row (largest face first)."""

    faces: Faces
    embeddings: Embeddings

    def __len__(self) -> int:
        return len(self.faces)

    def to_records(self) -> list[dict[str, Any]]:
        """JSON-ready dicts with ``box``, ``score``, ``landmarks`` and ``embedding``."""
        records = self.faces.to_records()
        for record, vector in zip(records, self.embeddings.vectors):
            record["embedding"] = [round(float(v), 7) for v in vector]
        return records


def verify_embeddings(a: Embeddings, b: Embeddings, threshold: float) -> Verification:
    """Compare the first vector of ``a`` with the first of ``b``: match when distance <= threshold.

    Raises:
        ModelMismatchError: the embeddings come from different models.
        NoFaceError: either batch is empty.
    """
    if len(a) == 0 or len(b) == 0:
        raise NoFaceError("verify needs one embedding on each side, got an empty batch")
    d = float(a[0].distance(b[0])[0, 0])
    return Verification(bool(d <= threshold), d, float(threshold), a.model_id, a.metric)


def _load_calibration(calibration: Any, spec: Any) -> Any:
    """``None``, a Calibration, or a path to one; checked against the embedder's model id."""
    if calibration is None:
        return None
    from .calibration import Calibration

    calib = calibration if isinstance(calibration, Calibration) else Calibration.load(calibration)
    if calib.model_id != spec.model_id or calib.metric != spec.metric:
        raise ModelMismatchError(f"calibration is for model {calib.model_id!r} ({calib.metric}), "
                                 f"but the pipeline's embedder is {spec.model_id!r} ({spec.metric})")
    return calib


#: Images whose faces :meth:`FacePipeline.embed_many` aligns together (one shape-predictor pass),
#: and the most pixel values (height x width x channels) such a group may hold: a few
#: megapixel photos are aligned one by one, LFW's 250x250 images sixteen at a time.
ALIGN_GROUP = 16
ALIGN_GROUP_VALUES = 3 * 2_000_000


class FacePipeline:
    """Detector, aligner and embedder composed; each can be injected.

    Args:
        detector: any object with ``detect(image) -> Faces`` (default: the registry default).
        embedder: any object with ``spec`` and ``embed(aligned) -> Embeddings``.
        aligner: defaults to the aligner for ``embedder.spec.template``.
        threshold: decision threshold for :meth:`verify`; defaults to the calibration's, else
            ``embedder.spec.threshold``.
        calibration: a :class:`~faceprint.calibration.Calibration` or the path of its JSON file
            (``faceprint calibrate``); its threshold replaces the spec's and it provides
            :meth:`match_probability`.

    Raises:
        ModelMismatchError: the calibration was made for another model.
        ConfigError: the calibration file cannot be read.
    """

    def __init__(self, detector: Any = None, embedder: Any = None, aligner: Any = None,
                 threshold: float | None = None, calibration: Any = None) -> None:
        from .align import create_aligner
        from .registry import create_detector, create_embedder

        self.detector = detector if detector is not None else create_detector()
        self.embedder = embedder if embedder is not None else create_embedder()
        self.aligner = aligner if aligner is not None else create_aligner(self.embedder.spec.template)
        if self.aligner.template != self.embedder.spec.template:
            raise ConfigError(f"aligner makes {self.aligner.template!r} chips, embedder needs {self.embedder.spec.template!r}")
        self.calibration = _load_calibration(calibration, self.embedder.spec)
        if threshold is not None:
            self.threshold = float(threshold)
        elif self.calibration is not None:
            self.threshold = float(self.calibration.threshold)
        else:
            self.threshold = self.embedder.spec.threshold

    @property
    def spec(self) -> Any:
        return self.embedder.spec

    def match_probability(self, distance: float) -> float | None:
        """P(same person) for a distance, from the calibration; ``None`` without one."""
        return None if self.calibration is None else float(self.calibration.probability(distance))

    def detect(self, image: ImageInput) -> Faces:
        """Faces in ``image``, largest first."""
        return self.detector.detect(image).by_size()

    def align(self, image: ImageInput, faces: Faces | None = None) -> AlignedFaces:
        """Chips for ``faces`` (detected when not given)."""
        rgb = load_image(image)
        return self.aligner.align(rgb, self.detect(rgb) if faces is None else faces)

    def embed(self, image: ImageInput, faces: Faces | None = None) -> FaceEmbeddings:
        """Detect (unless ``faces`` is given), align and embed every face of one image."""
        return self.embed_many([image], faces=None if faces is None else [faces])[0]

    def embed_many(self, images: Iterable[ImageInput], faces: Sequence[Faces] | None = None,
                   on_image: Callable[[int], None] | None = None, pipelined: bool = True) -> list[FaceEmbeddings]:
        """Embed every face of every image; chips of all images share embedder batches.

        Pipelined: four stages overlap on threads (decoding, ONNX Runtime and OpenCV release
        the GIL). A reader thread decodes up to two images ahead (:func:`~faceprint.stages.prefetch`;
        a generator of images is advanced there); a detector thread finds the faces of up to two
        decoded images ahead; the calling thread aligns them in groups of up to :data:`ALIGN_GROUP`
        images (one shape-predictor pass per group); whenever a full embedder batch of chips
        is ready it is embedded on a worker thread. OpenCV's own thread pool is off meanwhile
        (:func:`~faceprint.stages.opencv_one_thread`). The results are those of ``pipelined=False``
        (everything on the calling thread, the same batches).
        Each image is read when its turn comes and only its faces are kept once its group is aligned,
        not its pixels or chips.

        ``on_image(i)`` is called after image ``i`` is detected and aligned (for progress bars;
        a group's images are reported together).

        Raises:
            ImageDecodeError: an image cannot be read.
        """
        from concurrent.futures import Future, ThreadPoolExecutor
        from contextlib import closing, nullcontext

        from .stages import opencv_one_thread, prefetch

        class _Inline:  # the executor interface, run on the calling thread
            def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
                future: Future = Future()
                future.set_result(fn(*args))
                return future

        def detect(item: tuple[int, np.ndarray]) -> tuple[np.ndarray, Faces]:
            i, rgb = item
            return rgb, self.detect(rgb) if faces is None else faces[i]

        flush = max(1, int(getattr(self.embedder, "batch_size", 32)))
        found: list[Faces] = []
        pending: list[np.ndarray] = []
        batches = []
        decoded = prefetch(images, load_image) if pipelined else iter(map(load_image, images))
        detected = prefetch(enumerate(decoded), detect) if pipelined else map(detect, enumerate(decoded))
        # closed in reverse: the detector thread stops before the reader it pulls from
        with opencv_one_thread() if pipelined else nullcontext(), \
                closing(decoded) if pipelined else nullcontext(), closing(detected) if pipelined else nullcontext(), \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceprint-embed") as pool:
            worker = pool if pipelined else _Inline()
            group: list[tuple[np.ndarray, Faces]] = []

            def align_group() -> None:
                nonlocal pending
                for aligned in self.aligner.align_many([g[0] for g in group], [g[1] for g in group]):
                    found.append(aligned.faces)
                    pending.append(aligned.chips)
                    if sum(len(c) for c in pending) >= flush:
                        batches.append(worker.submit(self._embed_chips, np.concatenate(pending)))
                        pending = []
                    if on_image is not None:
                        on_image(len(found) - 1)
                group.clear()

            while True:
                try:
                    item = next(detected, None)
                except Exception:
                    align_group()  # the images before a bad one are aligned and reported, as one by one
                    raise
                if item is None:
                    break
                group.append(item)
                if len(group) >= ALIGN_GROUP or sum(g[0].size for g in group) >= ALIGN_GROUP_VALUES:
                    align_group()
            align_group()
            if pending or not batches:
                batches.append(worker.submit(self._embed_chips, self._stack_chips(pending)))
            parts = [b.result() for b in batches]
        vectors = Embeddings(np.concatenate([p.vectors for p in parts]), parts[0].model_id, parts[0].metric)
        out, start = [], 0
        for f in found:
            out.append(FaceEmbeddings(f, vectors[start:start + len(f)]))
            start += len(f)
        return out

    def _stack_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        size = self.spec.input_size
        return np.concatenate(chips) if chips else np.zeros((0, size, size, 3), np.uint8)

    def _embed_chips(self, chips: np.ndarray) -> Embeddings:
        return self.embedder.embed(AlignedFaces(chips, self.aligner.template))

    def embed_aligned(self, chips: np.ndarray | Iterable[ImageInput]) -> Embeddings:
        """Embed already aligned chips of the model's input size (array or images).

        Images are decoded one embedder batch ahead on a reader thread
        (:func:`~faceprint.stages.prefetch`) while the current batch is embedded; the vectors are
        those of one call on all chips (the embedder's batches are the same).

        Raises:
            ConfigError: a chip is not of the model's input size.
            ImageDecodeError: an image cannot be read.
        """
        if isinstance(chips, np.ndarray):
            return self.embedder.embed(AlignedFaces(chips, self.aligner.template))
        from .stages import prefetch

        size = self.spec.input_size

        def load_batch(items: Sequence[ImageInput]) -> np.ndarray:
            loaded = []
            for item in items:
                rgb = load_image(item)
                if rgb.shape[:2] != (size, size):
                    raise ConfigError(f"{describe(item)}: expected an aligned {size}x{size} chip, got {rgb.shape[1]}x{rgb.shape[0]}")
                loaded.append(rgb)
            return np.stack(loaded)

        items = list(chips)
        step = max(1, int(getattr(self.embedder, "batch_size", 32)))
        batches = [items[i:i + step] for i in range(0, len(items), step)]
        parts = [self.embedder.embed(AlignedFaces(c, self.aligner.template)) for c in prefetch(batches, load_batch)]
        if not parts:
            return self.embedder.embed(AlignedFaces(np.zeros((0, size, size, 3), np.uint8), self.aligner.template))
        return Embeddings(np.concatenate([e.vectors for e in parts]), parts[0].model_id, parts[0].metric)

    def face_embedding(self, image: ImageInput, face: int = 0) -> Embeddings:
        """The embedding of face number ``face`` (0 = largest) of ``image``.

        Raises:
            NoFaceError: the image has no face, or fewer than ``face + 1``.
        """
        rgb = load_image(image)
        faces = self.detect(rgb)
        if face < 0 or face >= len(faces):
            found = "no face" if len(faces) == 0 else f"only {len(faces)} face(s)"
            raise NoFaceError(f"{describe(image)}: {found} found, face #{face} requested")
        return self.embedder.embed(self.aligner.align(rgb, faces[face]))

    def verify(self, a: ImageInput | Embeddings, b: ImageInput | Embeddings, face: int = 0,
               threshold: float | None = None, face_b: int | None = None) -> Verification:
        """Same person? ``a`` and ``b`` are images (face ``face`` of ``a`` and face ``face_b``,
        default ``face``, of ``b``; largest first) or embeddings.

        Raises:
            NoFaceError: an image has no (such) face.
            ModelMismatchError: embeddings come from another model.
        """
        ea = a if isinstance(a, Embeddings) else self.face_embedding(a, face)
        eb = b if isinstance(b, Embeddings) else self.face_embedding(b, face if face_b is None else face_b)
        return verify_embeddings(ea, eb, self.threshold if threshold is None else threshold)
