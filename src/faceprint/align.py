"""Alignment: warp detected faces onto an embedder's template.

Two templates:

- ``"dlib_150"``: the 150x150 chip dlib's ResNet was trained on. dlib's 5-point shape
  predictor runs on each detected box and dlib's chip extractor
  (``get_face_chip(img, shape, 150, 0.25)``) cuts the chip, both ported (no dlib import), so
  points equal dlib's and chips dlib's but for rare off-by-one values.
- ``"arcface_112"``: a 5-point similarity transform from the detector's landmarks onto the
  112x112 ArcFace template, used by most ONNX embedders.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from .dlibport.native import import_dlib
from .errors import ConfigError
from .image import ImageInput, load_image
from .spec import TEMPLATES
from .types import AlignedFaces, Faces

#: The ArcFace/InsightFace 112x112 template in :data:`~faceprint.types.LANDMARK_ORDER`.
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation) src -> dst.

    Umeyama's method, without reflection. ``src`` and ``dst`` are ``(K, 2)`` with K >= 2.
    Returns the ``(2, 3)`` matrix ``M`` with ``dst ~= src @ M[:, :2].T + M[:, 2]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s * s).sum() / len(src)
    if var_s < 1e-12:
        raise ConfigError("similarity_transform: source points are degenerate")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    scale = (sig * sign).sum() / var_s
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre ``(N, 2)`` (midpoint of eye-centre and mouth-centre) and scale ``(N,)``
    (eye-centre to mouth-centre distance) of ``(N, 5, 2)`` landmarks."""
    eyes = landmarks[:, :2].mean(1)
    mouth = landmarks[:, 3:].mean(1)
    return (eyes + mouth) / 2, np.linalg.norm(mouth - eyes, axis=1)


#: HOG-box centre offset and side in units of :func:`face_frame`'s scale, measured on LFW
#: View 1 DevTrain with MTCNN landmarks by ``tools/fit_dlib_box.py``.
DLIB_BOX_DX, DLIB_BOX_DY, DLIB_BOX_SIDE = -0.0877, -0.0417, 2.3358


def dlib_box_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """``(N, 4)`` xyxy boxes like dlib's HOG detector draws, from ``(N, 5, 2)`` landmarks.

    dlib's shape predictor was trained on HOG boxes; feeding it boxes of the same geometry
    makes its points (and so the chips) independent of which detector found the face.
    """
    centre, scale = face_frame(np.asarray(landmarks, dtype=np.float64))
    cx = centre[:, 0] + DLIB_BOX_DX * scale
    cy = centre[:, 1] + DLIB_BOX_DY * scale
    half = DLIB_BOX_SIDE * scale / 2
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1).astype(np.float32)


class Aligner(ABC):
    """``align(image, faces) -> AlignedFaces`` for one template."""

    template: str

    def align(self, image: ImageInput, faces: Faces) -> AlignedFaces:
        """Cut one chip per face, in the order of ``faces``.

        Raises:
            ImageDecodeError: the image cannot be read.
        """
        rgb = load_image(image)
        size = TEMPLATES[self.template]
        if len(faces) == 0:
            return AlignedFaces(np.zeros((0, size, size, 3), np.uint8), self.template, faces,
                                np.zeros((0, 2, 3), np.float32))
        return self._align(rgb, faces)

    def align_many(self, images: Sequence[ImageInput], faces: Sequence[Faces]) -> list[AlignedFaces]:
        """:meth:`align` for each image and its faces: the same chips, with the per-image work
        shared where the aligner can (the dlib aligner runs its shape predictor once for all).

        Raises:
            ImageDecodeError: an image cannot be read.
            ConfigError: the two lists differ in length.
        """
        if len(images) != len(faces):
            raise ConfigError(f"got {len(images)} images but {len(faces)} face lists")
        return self._align_many([load_image(image) for image in images], faces)

    def _align_many(self, rgbs: list[np.ndarray], faces: Sequence[Faces]) -> list[AlignedFaces]:
        return [self.align(rgb, f) for rgb, f in zip(rgbs, faces)]

    @abstractmethod
    def _align(self, rgb: np.ndarray, faces: Faces) -> AlignedFaces: ...

    def describe(self) -> dict[str, Any]:
        return {"template": self.template}


class TemplateAligner(Aligner):
    """Similarity-warps the detector's 5 landmarks onto the ArcFace 112x112 template."""

    template = "arcface_112"

    def _align(self, rgb: np.ndarray, faces: Faces) -> AlignedFaces:
        import cv2

        chips = np.zeros((len(faces), 112, 112, 3), np.uint8)
        mats = np.zeros((len(faces), 2, 3), np.float32)
        for i, pts in enumerate(faces.landmarks):
            m = similarity_transform(pts, ARCFACE_112)
            chips[i] = cv2.warpAffine(rgb, m, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            mats[i] = m
        return AlignedFaces(chips, self.template, faces, mats)


class DlibChipAligner(Aligner):
    """dlib's 5-point shape predictor on each box, then dlib's 150x150 face chip (padding 0.25).

    Neither step needs dlib by default: the predictor is :mod:`faceprint.dlibport.shape`'s port
    (read from the ``.dat`` file, points equal to dlib's) and the chips are cut by
    :mod:`faceprint.dlibport.chip`. The predictor's points are stored in
    ``faces.extras["dlib_shape5"]`` of the result.

    Args:
        predictor_path: a dlib shape predictor ``.dat``; defaults to the 5-point one shipped
            in ``face-recognition-models``.
        padding: dlib's chip padding (0.25 is what the ResNet was trained with).
        box_from_landmarks: give the predictor HOG-like boxes built from the detector's
            landmarks rather than the detector's own boxes (see :func:`dlib_box_from_landmarks`).
        chip_backend: ``"opencv"`` (default) cuts the chips with :mod:`faceprint.dlibport.chip`
            (dlib's geometry and pyramid, OpenCV sampling, no GIL held; equal to dlib's chips
            but for about 1 value in 20,000 off by one); ``"dlib"`` calls
            ``dlib.get_face_chip`` per face (bit-identical; needs the ``[dlib]`` extra).
        predictor_backend: ``"numpy"`` (the port), ``"dlib"`` (``dlib.shape_predictor``; needs
            the ``[dlib]`` extra) or ``"auto"`` (default): the port for 5-point files, dlib for
            others (the 68-point file is 100 MB of packed floats the port does not convert).

    Raises:
        ConfigError: unknown ``chip_backend`` or ``predictor_backend``.
    """

    template = "dlib_150"
    CHIP_BACKENDS = ("opencv", "dlib")
    PREDICTOR_BACKENDS = ("auto", "numpy", "dlib")

    def __init__(self, predictor_path: str | None = None, padding: float = 0.25, box_from_landmarks: bool = True,
                 chip_backend: str = "opencv", predictor_backend: str = "auto") -> None:
        if chip_backend not in self.CHIP_BACKENDS:
            raise ConfigError(f"chip_backend must be one of {self.CHIP_BACKENDS}, got {chip_backend!r}")
        if predictor_backend not in self.PREDICTOR_BACKENDS:
            raise ConfigError(f"predictor_backend must be one of {self.PREDICTOR_BACKENDS}, got {predictor_backend!r}")
        self.predictor_path = predictor_path
        self.padding = float(padding)
        self.box_from_landmarks = bool(box_from_landmarks)
        self.chip_backend = chip_backend
        self.predictor_backend = predictor_backend
        self._predictor: Any = None

    def _path(self) -> str:
        from .cache import package_file

        return str(self.predictor_path or package_file(
            "face_recognition_models", "models/shape_predictor_5_face_landmarks.dat", "face-recognition-models"))

    def _backend(self) -> str:
        """``predictor_backend`` with ``"auto"`` resolved from the file's part count."""
        if self.predictor_backend != "auto":
            return self.predictor_backend
        from .dlibport.shape import count_parts

        return "numpy" if count_parts(self._path()) == 5 else "dlib"

    @property
    def predictor(self) -> Any:
        """The loaded predictor: a :class:`~faceprint.dlibport.shape.ShapePredictor`, or a
        ``dlib.shape_predictor`` for the dlib backend.

        Raises:
            ModelLoadError: the file is missing or malformed, or the dlib backend is used
                without dlib installed.
        """
        if self._predictor is None:
            path = self._path()
            if self._backend() == "dlib":
                self._predictor = import_dlib("dlib's shape predictor").shape_predictor(path)
            else:
                from .dlibport.shape import ShapePredictor

                self._predictor = ShapePredictor.from_file(path)
        return self._predictor

    def predictor_boxes(self, faces: Faces) -> np.ndarray:
        """The boxes given to the shape predictor: HOG-like boxes built from the landmarks
        (see :func:`dlib_box_from_landmarks`) where a face has landmarks, else its own box."""
        boxes = faces.xyxy.copy()
        if self.box_from_landmarks:
            has = np.abs(faces.landmarks).reshape(len(faces), -1).sum(1) > 0
            if has.any():
                boxes[has] = dlib_box_from_landmarks(faces.landmarks[has])
        return boxes

    @staticmethod
    def _ltrb(boxes_xyxy: np.ndarray) -> np.ndarray:
        """Whole-pixel ``dlib.rectangle`` corners (right and bottom inclusive) of ``xyxy`` boxes."""
        ltrb = np.round(np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)).astype(np.int64)
        ltrb[:, 2:] -= 1
        return ltrb

    def predict_points(self, rgb: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        """``(N, P, 2)`` float32 predictor points (whole pixels) for each ``xyxy`` box."""
        predictor = self.predictor
        ltrb = self._ltrb(boxes_xyxy)
        if not hasattr(predictor, "predict"):  # dlib's
            pts = [[(p.x, p.y) for p in s.parts()] for s in self.shapes(rgb, boxes_xyxy)]
            if not pts:
                from .dlibport.shape import count_parts

                return np.zeros((0, count_parts(self._path()), 2), np.float32)
            return np.array(pts, dtype=np.float32)
        return predictor.predict(rgb, ltrb)

    def shapes(self, rgb: np.ndarray, boxes_xyxy: np.ndarray) -> list[Any]:
        """dlib ``full_object_detection`` for each ``xyxy`` box (dlib backend only).

        Raises:
            ConfigError: the predictor is the numpy port (use :meth:`predict_points`).
        """
        if hasattr(self.predictor, "predict"):
            raise ConfigError("shapes() returns dlib objects: use predictor_backend='dlib', or predict_points()")
        dlib = import_dlib("dlib's shape predictor")
        return [self.predictor(rgb, dlib.rectangle(*map(int, r))) for r in self._ltrb(boxes_xyxy)]

    def points(self, rgb: np.ndarray, faces: Faces) -> np.ndarray:
        """``(N, 5, 2)`` predictor points; reused from ``faces.extras["dlib_shape5"]`` when
        present (e.g. the HOG detector already ran the predictor)."""
        return self.points_many([rgb], [faces])[0]

    def points_many(self, rgbs: Sequence[np.ndarray], faces: Sequence[Faces]) -> list[np.ndarray]:
        """:meth:`points` for each image, with one pass of the port over every face still
        without points (:meth:`~faceprint.dlibport.shape.ShapePredictor.predict_many`); dlib's
        own predictor goes image by image."""
        out = [np.asarray(f.extras["dlib_shape5"], np.float32) if "dlib_shape5" in f.extras
               else np.zeros((0, 5, 2), np.float32) for f in faces]
        todo = [i for i, f in enumerate(faces) if len(f) and "dlib_shape5" not in f.extras]
        if todo and hasattr(self.predictor, "predict_many"):
            found = self.predictor.predict_many([rgbs[i] for i in todo],
                                                [self._ltrb(self.predictor_boxes(faces[i])) for i in todo])
        else:
            found = [self.predict_points(rgbs[i], self.predictor_boxes(faces[i])) for i in todo]
        for i, pts in zip(todo, found):
            out[i] = pts.reshape(-1, 5, 2)
        return out

    def _align_many(self, rgbs: list[np.ndarray], faces: Sequence[Faces]) -> list[AlignedFaces]:
        points = self.points_many(rgbs, faces)
        return [self._cut(rgb, f, pts) if len(f) else self.align(rgb, f) for rgb, f, pts in zip(rgbs, faces, points)]

    def _align(self, rgb: np.ndarray, faces: Faces) -> AlignedFaces:
        return self._cut(rgb, faces, self.points(rgb, faces))

    def _cut(self, rgb: np.ndarray, faces: Faces, points: np.ndarray) -> AlignedFaces:
        """The chips of ``faces`` from the predictor's ``points`` ``(N, 5, 2)``."""
        from .dlibport.chip import chip_rects, cut_chips, image_to_chip

        rects = chip_rects(points, TEMPLATES[self.template], self.padding)
        if self.chip_backend == "dlib":
            dlib = import_dlib("chip_backend='dlib'")
            shapes = [dlib.full_object_detection(dlib.rectangle(0, 0, 1, 1), [dlib.point(*map(round, p)) for p in pts])
                      for pts in points]
            chips = np.stack([np.asarray(dlib.get_face_chip(rgb, s, TEMPLATES[self.template], self.padding))
                              for s in shapes])  # one at a time: a face's chip never depends on the others
        else:
            chips = cut_chips(rgb, rects)
        extras = dict(faces.extras, dlib_shape5=points)
        out_faces = Faces(faces.xyxy, faces.score, faces.landmarks, faces.track_id, extras)
        return AlignedFaces(chips.astype(np.uint8), self.template, out_faces, image_to_chip(rects.maps()))

    def describe(self) -> dict[str, Any]:
        return {"template": self.template, "padding": self.padding, "chip_backend": self.chip_backend,
                "predictor_backend": self.predictor_backend}


def create_aligner(template: str) -> Aligner:
    """The aligner that produces chips for ``template`` (a key of ``spec.TEMPLATES``).

    Raises:
        ConfigError: unknown template.
    """
    if template == "dlib_150":
        return DlibChipAligner()
    if template == "arcface_112":
        return TemplateAligner()
    raise ConfigError(f"no aligner for template {template!r}; expected one of {sorted(TEMPLATES)}")
