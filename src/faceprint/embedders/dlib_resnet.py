"""dlib's 128-d face recognition ResNet as an embedder on ONNX Runtime (dlib is not used at run time).

The network is converted from dlib's ``.dat`` file by :mod:`faceprint.dlibport.resnet` on first
use and cached; this module holds the model's spec (thresholds, open-set statistics) and the
:class:`DlibResnetEmbedder` the registry creates.
"""

from __future__ import annotations

from pathlib import Path

from ..dlibport.resnet import CONVERTER_VERSION, convert_resnet, default_dat_path
from ..errors import ModelLoadError
from ..spec import ModelSpec
from .base import OnnxEmbedder

DLIB_RESNET_SPEC = ModelSpec(
    model_id="dlib_resnet_v1",
    input_size=150,
    mean=(122.782, 117.001, 104.298),
    std=(256.0, 256.0, 256.0),
    template="dlib_150",
    dim=128,
    metric="euclidean",
    threshold=0.6,
    normalize=False,
    # Measured with the default pipeline (mtcnn + dlib_resnet, no flip, centre face per image,
    # as `faceprint eval lfw`) on LFW View 1 pairsDevTrain.txt (1100 same, 1100 different
    # pairs); DevTest was never used to choose them. "accuracy" is the best-accuracy threshold
    # (0.9905 there, vs 0.9882 at 0.6; 10-fold cross-validated inside DevTrain the tuned
    # threshold gains only 0.09 points, so the decision default stays dlib's 0.6). FAR 1e-3 on
    # 1100 impostor pairs allows one false accept: a coarse estimate.
    thresholds={"accuracy": 0.6133, "far_1e-2": 0.6156, "far_1e-3": 0.5472},
    thresholds_source="LFW View 1 pairsDevTrain.txt (2200 pairs), mtcnn + dlib_resnet, no flip",
    # The gallery's open-set decision (faceprint.gallery.scoring): phantoms drawn from a Gaussian of
    # this model's embeddings, and the normalised-score threshold by gallery size, both fitted and
    # chosen on the tuning part of LFW View 1 only (`bench_gallery.py openset --tune`: per size the
    # largest threshold whose mean FAR over 16 gallery compositions is <= 1.5% and whose FAR is <= 2%
    # in 90% of them, non-increasing with size).
    openset={"pad": 0.6363, "phantoms": 2000, "stats": "dlib_resnet_v1_openset.npz",
             "ratio_thresholds": [[10, 0.895], [30, 0.8725], [100, 0.8625], [300, 0.8525], [1000, 0.8525]],
             "source": "LFW View 1 tuning part (openset_parts part 0), Recognizer defaults"},
)
#: The registry reads a module's ``SPEC``.
SPEC = DLIB_RESNET_SPEC


class DlibResnetEmbedder(OnnxEmbedder):
    """dlib's 128-d face ResNet on ONNX Runtime (Euclidean distance, threshold 0.6).

    Chips must follow dlib's ``get_face_chip(img, shape5, 150, 0.25)`` alignment
    (template ``"dlib_150"``). The ``.dat`` file is converted to ONNX on first use and cached.

    Args:
        batch_size: chips per ONNX Runtime call.
        threads: inference threads (0 = all cores; see :class:`OnnxEmbedder`).
        dat_path: dlib's ``.dat`` file; default: the one in ``face-recognition-models``.
        flip: average each chip's raw 128-d output with its mirror's (test-time augmentation;
            see :class:`OnnxEmbedder`). Same model id: the vectors stay comparable.
        jitter: also average this many fixed jittered copies of each chip (see
            :class:`OnnxEmbedder`); ``seed`` picks the jitters.
    """

    def __init__(self, batch_size: int = 32, threads: int = 0, dat_path: str | Path | None = None,
                 flip: bool = False, jitter: int = 0, seed: int = 0) -> None:
        super().__init__(None, DLIB_RESNET_SPEC, batch_size=batch_size, threads=threads, flip=flip, jitter=jitter,
                         seed=seed)
        self.dat_path = None if dat_path is None else Path(dat_path)

    def model_path(self) -> Path:
        """The cached ONNX conversion of the ``.dat`` file (converted now if missing).

        Raises:
            ModelLoadError: the ``.dat`` file is missing, or the conversion failed.
        """
        from ..cache import cached_file, file_digest

        dat = self.dat_path or default_dat_path()
        if not dat.is_file():
            raise ModelLoadError(f"dlib ResNet weights not found: {dat}")
        digest = file_digest(dat, f"converter-{CONVERTER_VERSION}:", 12)
        return cached_file(f"dlib_resnet_v1-{digest}.onnx", lambda tmp: convert_resnet(dat, tmp))


__all__ = ["DLIB_RESNET_SPEC", "DlibResnetEmbedder"]
