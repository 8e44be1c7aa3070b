"""MTCNN on ONNX Runtime: the weight conversion against a numpy port of the Keras layers, and
detection behaviour on real photos from the shared data folder."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from faceprint.detectors import mtcnn as mt
from faceprint.errors import ConfigError
from faceprint.evaluation.detection import recall_on_boxes, recall_on_noses
from faceprint.image import load_image
from faceprint.onnx_graph import open_session
from faceprint.types import Faces

from .conftest import shared as data

pytestmark = pytest.mark.skipif(find_spec("mtcnn") is None,
                                reason="the MTCNN weights come from the 'mtcnn' package (pip install mtcnn)")
@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private FACEPRINT_CACHE_DIR for this module: conversions never touch the user cache."""
    path = tmp_path_factory.mktemp("mtcnn-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEPRINT_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="module")
def detector(cache: Path) -> mt.MtcnnDetector:
    return mt.MtcnnDetector().load()


# ----------------------------------------------------------------------------- conversion


def test_converted_models_are_cached_with_versioned_names(detector: mt.MtcnnDetector, cache: Path) -> None:
    for net in mt.NETS:
        assert (cache / f"mtcnn_{net}-v{mt.GRAPH_VERSION}.onnx").is_file()
        assert mt.converted_model(net) == cache / f"mtcnn_{net}-v{mt.GRAPH_VERSION}.onnx"


def test_constructor_only_stores_parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEPRINT_CACHE_DIR", str(tmp_path))
    det = mt.MtcnnDetector(min_face_size=30, thresholds=(0.5, 0.6, 0.8), max_side=800)
    assert list(tmp_path.iterdir()) == []
    assert det.describe() == {"name": "mtcnn", "min_face_size": 30.0, "thresholds": [0.5, 0.6, 0.8],
                              "scale_factor": 0.709, "max_side": 800, "threads": 0}


# numpy port of the Keras layers, written from the Keras semantics (NHWC, HWIO kernels), with
# none of the transposes or folds the ONNX conversion uses


def k_conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    kh, kw = kernel.shape[:2]
    ho, wo = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], ho, wo, kernel.shape[3]))
    for dy in range(kh):
        for dx in range(kw):
            out += np.einsum("nhwc,co->nhwo", x[:, dy:dy + ho, dx:dx + wo], kernel[dy, dx])
    return out + bias


def k_prelu(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, alpha * x)  # alpha (1, 1, C) or (C,) broadcasts over the last axis


def k_maxpool(x: np.ndarray, size: int, padding: str) -> np.ndarray:
    n, h, w, c = x.shape
    if padding == "same":  # TensorFlow: out = ceil(in / 2), the odd padding pixel goes at the end
        ho, wo = -(-h // 2), -(-w // 2)
        ph, pw = max((ho - 1) * 2 + size - h, 0), max((wo - 1) * 2 + size - w, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), constant_values=-np.inf)
    else:
        ho, wo = (h - size) // 2 + 1, (w - size) // 2 + 1
    out = np.full((n, ho, wo, c), -np.inf)
    for dy in range(size):
        for dx in range(size):
            out = np.maximum(out, x[:, dy:dy + 2 * ho:2, dx:dx + 2 * wo:2][:, :ho, :wo])
    return out


def k_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def k_flatten(x: np.ndarray) -> np.ndarray:
    return x.transpose(0, 2, 1, 3).reshape(len(x), -1)  # Permute((2, 1, 3)) then Flatten


def keras_pnet(img: np.ndarray, w: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    x = (img.astype(np.float64) - 127.5) / 128.0
    x = k_maxpool(k_prelu(k_conv(x, w[0], w[1]), w[2]), 2, "same")
    x = k_prelu(k_conv(x, w[3], w[4]), w[5])
    x = k_prelu(k_conv(x, w[6], w[7]), w[8])
    return k_conv(x, w[9], w[10]), k_softmax(k_conv(x, w[11], w[12]))


def keras_rnet(img: np.ndarray, w: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    x = (img.astype(np.float64) - 127.5) / 128.0
    x = k_maxpool(k_prelu(k_conv(x, w[0], w[1]), w[2]), 3, "same")
    x = k_maxpool(k_prelu(k_conv(x, w[3], w[4]), w[5]), 3, "valid")
    x = k_flatten(k_prelu(k_conv(x, w[6], w[7]), w[8]))
    x = k_prelu(x @ w[9] + w[10], w[11])
    return x @ w[12] + w[13], k_softmax(x @ w[14] + w[15])


def keras_onet(img: np.ndarray, w: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = (img.astype(np.float64) - 127.5) / 128.0
    x = k_maxpool(k_prelu(k_conv(x, w[0], w[1]), w[2]), 3, "same")
    x = k_maxpool(k_prelu(k_conv(x, w[3], w[4]), w[5]), 3, "valid")
    x = k_maxpool(k_prelu(k_conv(x, w[6], w[7]), w[8]), 2, "same")
    x = k_flatten(k_prelu(k_conv(x, w[9], w[10]), w[11]))
    x = k_prelu(x @ w[12] + w[13], w[14])
    return x @ w[15] + w[16], x @ w[17] + w[18], k_softmax(x @ w[19] + w[20])


def run_net(net: str, x: np.ndarray) -> list[np.ndarray]:
    return open_session(mt.converted_model(net), 1).run(None, {"image": x.astype(np.float32)})


@pytest.mark.parametrize("shape", [(1, 12, 12, 3), (1, 31, 26, 3), (1, 40, 57, 3)])
def test_onnx_pnet_equals_numpy_port_of_keras_weights(detector: mt.MtcnnDetector, shape: tuple[int, ...]) -> None:
    img = np.random.default_rng(sum(shape)).integers(0, 256, shape).astype(np.float64)
    reg_ref, cls_ref = keras_pnet(img, mt.load_keras_weights("pnet"))
    reg, prob = run_net("pnet", img)
    assert reg.shape == (1, 4, *reg_ref.shape[1:3]) and prob.shape == (1, 1, *reg_ref.shape[1:3])
    np.testing.assert_allclose(reg, reg_ref.transpose(0, 3, 1, 2), rtol=0, atol=1e-4)
    np.testing.assert_allclose(prob[:, 0], cls_ref[..., 1], rtol=0, atol=1e-4)


def test_onnx_rnet_and_onet_equal_numpy_port_of_keras_weights(detector: mt.MtcnnDetector) -> None:
    rng = np.random.default_rng(3)
    img24 = rng.integers(0, 256, (5, 24, 24, 3)).astype(np.float64)
    reg_ref, cls_ref = keras_rnet(img24, mt.load_keras_weights("rnet"))
    reg, prob = run_net("rnet", img24)
    np.testing.assert_allclose(reg, reg_ref, rtol=0, atol=1e-4)
    np.testing.assert_allclose(prob[:, 0], cls_ref[:, 1], rtol=0, atol=1e-4)
    img48 = rng.integers(0, 256, (4, 48, 48, 3)).astype(np.float64)
    reg_ref, pts_ref, cls_ref = keras_onet(img48, mt.load_keras_weights("onet"))
    reg, pts, prob = run_net("onet", img48)
    np.testing.assert_allclose(reg, reg_ref, rtol=0, atol=1e-4)
    np.testing.assert_allclose(pts, pts_ref, rtol=0, atol=1e-4)
    np.testing.assert_allclose(prob[:, 0], cls_ref[:, 1], rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------- detection


def test_recall_on_dlib_faces(detector: mt.MtcnnDetector) -> None:
    report = recall_on_boxes(detector, data("detection", "dlib_faces"))
    print("\n".join(["", *report.lines, report.summary()]))
    assert report.total >= 40
    assert report.recall >= 0.95, report.summary()  # measured 42/43: one blurred 37-px face is missed
    assert report.extra <= 2, report.summary()  # measured 0


def test_face_counts_on_compreface_samples(cache: Path) -> None:
    # six of these photos are 12-36 Mpx with one big face: max_side keeps them to ~0.3 s each
    report = recall_on_noses(mt.MtcnnDetector(max_side=1600), data("detection", "compreface_samples"))
    print("\n".join(["", *report.lines, report.summary()]))
    assert report.found == report.total == 46, report.summary()
    assert report.extra <= 2, report.summary()  # measured 1


def test_obama_one_face_with_ordered_landmarks(detector: mt.MtcnnDetector) -> None:
    faces = detector.detect(data("people", "obama.jpg"))
    assert len(faces) == 1
    (x1, y1, x2, y2), pts = faces.xyxy[0], faces.landmarks[0]
    assert faces.score[0] > 0.95
    assert ((pts[:, 0] > x1) & (pts[:, 0] < x2) & (pts[:, 1] > y1) & (pts[:, 1] < y2)).all()
    left_eye, right_eye, nose, mouth_left, mouth_right = pts
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]  # "left" = image left
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert left_eye[0] < nose[0] < right_eye[0]


def test_group_photo_boxes_sorted_and_inside_image(detector: mt.MtcnnDetector) -> None:
    rgb = load_image(data("group", "insightface_t1.jpg"))
    faces = detector.detect(rgb)
    h, w = rgb.shape[:2]
    assert len(faces) == 6  # the six people at the table
    assert faces.xyxy.dtype == np.float32 and faces.landmarks.shape == (6, 5, 2)
    assert (np.diff(faces.score) <= 0).all()
    assert ((faces.score > 0.7) & (faces.score <= 1)).all()
    assert (faces.xyxy >= 0).all() and (faces.xyxy[:, [0, 2]] <= w).all() and (faces.xyxy[:, [1, 3]] <= h).all()
    assert (faces.xyxy[:, 2:] > faces.xyxy[:, :2]).all()


@pytest.mark.parametrize("shape", [(480, 640, 3), (8, 9, 3)])
def test_no_face_gives_empty_faces(detector: mt.MtcnnDetector, shape: tuple[int, int, int]) -> None:
    faces = detector.detect(np.full(shape, 128, np.uint8))
    assert isinstance(faces, Faces) and len(faces) == 0
    assert faces.xyxy.shape == (0, 4) and faces.score.shape == (0,) and faces.landmarks.shape == (0, 5, 2)


def test_pyramid_scales_follow_min_face_size_and_max_side() -> None:
    scales = mt.pyramid_scales(886, 1280, 20, 0.709)
    assert scales[0] == pytest.approx(12 / 20)
    assert np.allclose(np.diff(np.log(scales)), np.log(0.709))
    assert 886 * scales[-1] >= 12 > 886 * scales[-1] * 0.709
    capped = mt.pyramid_scales(4000, 6000, 20, 0.709, max_side=1600)
    assert 6000 * capped[0] == pytest.approx(1600 * 12 / 20)
    assert mt.pyramid_scales(10, 10, 20, 0.709) == []


def test_crops_sample_pixel_centres_and_read_black_outside() -> None:
    rgb = np.random.default_rng(5).integers(0, 256, (24, 24, 3)).astype(np.uint8)
    pyramid = mt._Pyramid(rgb, [], 0.709)
    crops = pyramid.crops(np.array([[0.0, 0.0, 24.0, 24.0], [-12.0, 0.0, 12.0, 24.0]]), 24)
    assert crops.shape == (2, 24, 24, 3) and crops.dtype == np.float32
    np.testing.assert_array_equal(crops[0], rgb)
    np.testing.assert_array_equal(crops[1][:, :12], 0)
    np.testing.assert_array_equal(crops[1][:, 12:], rgb[:, :12])


@pytest.mark.parametrize("kwargs", [
    {"min_face_size": 11},
    {"min_face_size": 0},
    {"thresholds": (0.0, 0.7, 0.7)},
    {"thresholds": (0.6, 1.0, 0.7)},
    {"thresholds": (0.6, 0.7, -0.1)},
    {"thresholds": (0.6, 0.7)},
    {"scale_factor": 1.0},
    {"scale_factor": 0.0},
    {"threads": -1},
    {"max_side": 8},
])
def test_bad_parameters_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        mt.MtcnnDetector(**kwargs)  # type: ignore[arg-type]


def test_fanned_out_levels_and_batches_equal_one_thread(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """threads=2 runs big photos' P-Net levels and R-Net/O-Net batches side by side: the same
    faces, bit for bit, as threads=1 (everything on the caller)."""
    from faceprint.stages import Fanout

    calls: list[int] = []
    real_map = Fanout.map

    def spied(self: Fanout, fn, items):  # type: ignore[no-untyped-def]
        calls.append(len(items))
        return real_map(self, fn, items)

    photos = [data("group", "insightface_t1.jpg"), data("people", "obama.jpg"),
              data("lfw-view1", "images", "Hans_Blix", "Hans_Blix_0002.jpg")]
    one = mt.MtcnnDetector(threads=1)
    two = mt.MtcnnDetector(threads=2)
    for path in photos:
        rgb = load_image(path)
        ref = one.detect(rgb)
        monkeypatch.setattr(Fanout, "map", spied)
        faces = two.detect(rgb)
        monkeypatch.setattr(Fanout, "map", real_map)
        assert len(faces) == len(ref) >= 1
        for name in ("xyxy", "score", "landmarks"):
            assert np.array_equal(getattr(faces, name), getattr(ref, name)), f"{path.name}: {name} differs"
    # the group photo's 10 P-Net levels and its R-Net batch (> 2 x 16 candidates) were fanned out
    assert 10 in calls and 2 in calls
