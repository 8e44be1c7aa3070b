"""Names become objects here, and only here.

``create_detector("mtcnn")``, ``create_embedder("dlib_resnet")``, ``list_models()``. A name
that is not registered but is the path of an ``.onnx`` file loads that file with the ONNX
backend of the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from .errors import UnknownModelError


@dataclass(frozen=True)
class Entry:
    target: str  # "module:Class", relative to the faceprint package
    summary: str
    licence: str = "that of the model file you give"
    cache_prefix: str = ""  # converted files in the cache start with this (see `faceprint info`)

    def load(self) -> Any:
        module, _, name = self.target.partition(":")
        return getattr(import_module(module, __package__), name)


DETECTORS: dict[str, Entry] = {
    "mtcnn": Entry(".detectors.mtcnn:MtcnnDetector",
                   "MTCNN cascade (weights from the mtcnn package) on ONNX Runtime; 5 landmarks",
                   "MIT (weights from the mtcnn package)", "mtcnn_"),
    "hog": Entry(".detectors.hog:HogDetector",
                 "dlib HOG + linear SVM (face_recognition's default); landmarks from dlib's 5-point predictor",
                 "Boost Software Licence (dlib); 5-point landmarks public domain (CC0, face-recognition-models)",
                 "shape_predictor_5_"),
}
EMBEDDERS: dict[str, Entry] = {
    "dlib_resnet": Entry(".embedders.dlib_resnet:DlibResnetEmbedder",
                         "dlib's 128-d ResNet (face-recognition-models) ported to ONNX Runtime",
                         "public domain (CC0, dlib's model shipped by face-recognition-models)", "dlib_resnet_"),
}
#: Landmark models the pipeline loads on its own (alignment, blink liveness); listed for their licences.
LANDMARKS: dict[str, Entry] = {
    "shape_predictor_5": Entry(".align:DlibChipAligner", "dlib's 5-point landmarks (face chips for dlib_resnet, hog)",
                               "public domain (CC0, face-recognition-models)", "shape_predictor_5_"),
    "shape_predictor_68": Entry(".video.blink:Landmarks68", "dlib's 68-point landmarks (video --blink liveness)",
                                "trained on iBUG 300-W, whose licence excludes commercial use: not for commercial "
                                "products"),
}
#: One line printed wherever the 68-point model is used.
LANDMARKS_68_NOTICE = ("blink liveness uses dlib's 68-point landmark model, trained on iBUG 300-W: "
                       "not licensed for commercial use")
#: The ONNX backends used when a path is given instead of a name.
ONNX_DETECTOR = Entry(".detectors.onnx_yunet:OnnxYunetDetector", "YuNet-style ONNX detector from a path")
ONNX_EMBEDDER = Entry(".embedders.onnx_path:OnnxPathEmbedder", "ONNX embedder from a path with a spec")

DEFAULT_DETECTOR = "mtcnn"
DEFAULT_EMBEDDER = "dlib_resnet"


def _model_in_folder(folder: Path) -> Path | None:
    """The model of an exported folder (``faceprint train --out``): its ``model.onnx``, or its
    only ``.onnx`` file; None when neither exists."""
    if (folder / "model.onnx").is_file():
        return folder / "model.onnx"
    found = sorted(folder.glob("*.onnx"))
    return found[0] if len(found) == 1 else None


def _resolve(kind: str, table: dict[str, Entry], onnx: Entry, name: str | Path, kwargs: dict[str, Any]) -> Any:
    key = str(name)
    if key not in table and Path(key).is_dir():
        found = _model_in_folder(Path(key))
        if found is None:
            raise UnknownModelError(f"{kind} folder {key} holds no model.onnx (nor a single .onnx file)")
        key = str(found)
    if key in table:
        return table[key].load()(**kwargs)
    if key == "onnx" and "path" in kwargs:
        return onnx.load()(**kwargs)
    if key.endswith(".onnx") or Path(key).is_file():
        if not Path(key).is_file():
            raise UnknownModelError(f"{kind} model file not found: {key}")
        return onnx.load()(key, **kwargs)
    raise UnknownModelError(f"unknown {kind} {key!r}; choose one of {sorted(table)} or give the path of an .onnx file")


def create_detector(name: str | Path = DEFAULT_DETECTOR, **kwargs: Any) -> Any:
    """A :class:`~faceprint.detectors.base.Detector` by registered name or ``.onnx`` path.

    Raises:
        UnknownModelError: neither a registered name nor an existing file.
    """
    return _resolve("detector", DETECTORS, ONNX_DETECTOR, name, kwargs)


def create_embedder(name: str | Path = DEFAULT_EMBEDDER, **kwargs: Any) -> Any:
    """An embedder by registered name, ``.onnx`` path, or a folder holding ``model.onnx`` (what
    ``faceprint train`` exports, with its ``model.onnx.json`` spec); extra kwargs go to its
    constructor.

    Raises:
        UnknownModelError: neither a registered name nor an existing file.
    """
    return _resolve("embedder", EMBEDDERS, ONNX_EMBEDDER, name, kwargs)


def list_models() -> dict[str, list[dict[str, Any]]]:
    """Registered detectors, embedders and landmark models with their summaries and licences (and
    specs for embedders)."""
    detectors = [{"name": n, "summary": e.summary, "default": n == DEFAULT_DETECTOR, "licence": e.licence}
                 for n, e in DETECTORS.items()]
    detectors.append({"name": "onnx", "summary": ONNX_DETECTOR.summary, "default": False,
                      "licence": ONNX_DETECTOR.licence})
    embedders = []
    for n, e in EMBEDDERS.items():
        spec = getattr(import_module(e.target.split(":")[0], __package__), "SPEC", None)
        embedders.append({"name": n, "summary": e.summary, "default": n == DEFAULT_EMBEDDER, "licence": e.licence,
                          "spec": spec.to_dict() if spec is not None else None})
    embedders.append({"name": "onnx", "summary": ONNX_EMBEDDER.summary, "default": False,
                      "licence": ONNX_EMBEDDER.licence, "spec": None})
    landmarks = [{"name": n, "summary": e.summary, "default": False, "licence": e.licence} for n, e in LANDMARKS.items()]
    return {"detectors": detectors, "embedders": embedders, "landmarks": landmarks}
