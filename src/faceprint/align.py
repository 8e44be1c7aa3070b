"""Alignment: warp detected faces onto an embedder's template.

Two templates:

- ``"dlib_150"``: the 150x150 chip dlib's ResNet was trained on. dlib's 5-point shape
  predictor runs on each detected box, and dlib's own chip extractor
  (``get_face_chip(img, shape, 150, 0.25)``) cuts the chip, so chips are identical to dlib's.
- ``"arcface_112"``: a 5-point similarity transform from the detector's landmarks onto the
  112x112 ArcFace template, used by most ONNX embedders.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

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

    The predictor's points are stored in ``faces.extras["dlib_shape5"]`` of the result.

    Args:
        predictor_path: a dlib 5-point ``.dat``; defaults to the one shipped in
            ``face-recognition-models``.
        padding: dlib's chip padding (0.25 is what the ResNet was trained with).
        box_from_landmarks: give the predictor HOG-like boxes built from the detector's
            landmarks rather than the detector's own boxes (see :func:`dlib_box_from_landmarks`).
        chip_backend: ``"opencv"`` (default) cuts the chips with :mod:`faceprint.dlib_chip`
            (dlib's geometry and pyramid, OpenCV sampling, no GIL held; equal to dlib's chips
            but for about 1 value in 20,000 off by one); ``"dlib"`` calls
            ``dlib.get_face_chips`` (bit-identical, ~0.3 ms more per image on LFW).

    Raises:
        ConfigError: unknown ``chip_backend``.
    """

    template = "dlib_150"
    CHIP_BACKENDS = ("opencv", "dlib")

    def __init__(self, predictor_path: str | None = None, padding: float = 0.25, box_from_landmarks: bool = True,
                 chip_backend: str = "opencv") -> None:
        if chip_backend not in self.CHIP_BACKENDS:
            raise ConfigError(f"chip_backend must be one of {self.CHIP_BACKENDS}, got {chip_backend!r}")
        self.predictor_path = predictor_path
        self.padding = float(padding)
        self.box_from_landmarks = bool(box_from_landmarks)
        self.chip_backend = chip_backend
        self._predictor: Any = None

    @property
    def predictor(self) -> Any:
        if self._predictor is None:
            import dlib

            from .cache import package_file

            path = self.predictor_path or package_file(
                "face_recognition_models", "models/shape_predictor_5_face_landmarks.dat", "face-recognition-models")
            self._predictor = dlib.shape_predictor(str(path))
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

    def shapes(self, rgb: np.ndarray, boxes_xyxy: np.ndarray) -> list[Any]:
        """dlib ``full_object_detection`` (5 points) for each ``xyxy`` box."""
        import dlib

        out = []
        for x1, y1, x2, y2 in np.round(boxes_xyxy).astype(int):
            out.append(self.predictor(rgb, dlib.rectangle(int(x1), int(y1), int(x2) - 1, int(y2) - 1)))
        return out

    def points(self, rgb: np.ndarray, faces: Faces) -> np.ndarray:
        """``(N, 5, 2)`` predictor points; reused from ``faces.extras["dlib_shape5"]`` when
        present (e.g. the HOG detector already ran the predictor)."""
        if "dlib_shape5" in faces.extras:
            return np.asarray(faces.extras["dlib_shape5"], np.float32)
        shapes = self.shapes(rgb, self.predictor_boxes(faces))
        return np.array([[(p.x, p.y) for p in s.parts()] for s in shapes], dtype=np.float32).reshape(-1, 5, 2)

    def _align(self, rgb: np.ndarray, faces: Faces) -> AlignedFaces:
        from .dlib_chip import chip_rects, cut_chips, image_to_chip

        points = self.points(rgb, faces)
        rects = chip_rects(points, TEMPLATES[self.template], self.padding)
        if self.chip_backend == "dlib":
            import dlib

            shapes = [dlib.full_object_detection(dlib.rectangle(0, 0, 1, 1), [dlib.point(*map(round, p)) for p in pts])
                      for pts in points]
            chips = np.stack([np.asarray(c) for c in dlib.get_face_chips(rgb, dlib.full_object_detections(shapes),
                                                                        TEMPLATES[self.template], self.padding)])
        else:
            chips = cut_chips(rgb, rects)
        extras = dict(faces.extras, dlib_shape5=points)
        out_faces = Faces(faces.xyxy, faces.score, faces.landmarks, faces.track_id, extras)
        return AlignedFaces(chips.astype(np.uint8), self.template, out_faces, image_to_chip(rects.maps()))

    def describe(self) -> dict[str, Any]:
        return {"template": self.template, "padding": self.padding, "chip_backend": self.chip_backend}


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
