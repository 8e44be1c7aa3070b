"""Passive anti-spoofing (MiniFASNet on the shared real/spoof photos, smoke level), the
head-turn challenge, how checks combine, and --require-live gating identification."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint.errors import ConfigError, ModelLoadError
from faceprint.types import AlignedFaces, Embeddings, Faces
from faceprint.video.headturn import HeadTurnLiveness
from faceprint.video.liveness import LIVE, PENDING, SPOOF, UNAVAILABLE, AllOf, LivenessStatus, NoLiveness
from faceprint.video.recognizer import VideoRecognizer

from .conftest import shared

MODELS = ("2.7_80x80_MiniFASNetV2.pth", "4_0_0_80x80_MiniFASNetV1SE.pth")


@pytest.fixture(scope="module")
def spoof_photos() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import faceprint
    from faceprint.image import load_image

    det = faceprint.create_detector("mtcnn")
    out = {}
    for name in ("image_T1.jpg", "image_F1.jpg", "image_F2.jpg"):
        rgb = load_image(shared("antispoof", name))
        out[name] = (rgb, det.detect(rgb).by_size().xyxy[:1])
    return out


@pytest.fixture(scope="module")
def models() -> list:
    pytest.importorskip("torch", reason="MiniFASNet .pth files need the train extra (PyTorch)")
    from faceprint.video.antispoof import AntiSpoofModel

    return [AntiSpoofModel(shared("models", "minifasnet", m)) for m in MODELS]


def test_minifasnet_tells_real_from_spoof(models, spoof_photos) -> None:
    assert [m.scale for m in models] == [2.7, 4.0]
    for name, (rgb, box) in spoof_photos.items():
        p = np.mean([m.real_probability(rgb, box)[0] for m in models])
        assert (p > 0.5) == name.startswith("image_T"), (name, p)


def test_passive_check_per_track(models, spoof_photos) -> None:
    from faceprint.video.antispoof import PassiveLiveness

    check = PassiveLiveness(models, samples=2, every_frames=2)
    lm = np.zeros((5, 2))
    for i in range(4):
        for tid, name in ((1, "image_T1.jpg"), (2, "image_F2.jpg")):
            rgb, box = spoof_photos[name]
            check.observe(tid, rgb, box[0], lm, i / 30)
        if i < 2:
            assert check.status(1).state == PENDING
    assert check.status(1).state == LIVE and check.status(1).score > 0.5
    assert check.status(2).state == SPOOF and check.status(2).score < 0.5
    with pytest.raises(ConfigError):
        PassiveLiveness([])


def test_onnx_model_from_a_path_matches_pth(models, spoof_photos, tmp_path) -> None:
    import shutil

    from faceprint.video.antispoof import AntiSpoofModel

    onnx = tmp_path / "v2.onnx"
    shutil.copy(models[0].onnx_path(), onnx)
    (tmp_path / "v2.onnx.json").write_text('{"scale": 2.7}')
    rgb, box = spoof_photos["image_F1.jpg"]
    np.testing.assert_allclose(AntiSpoofModel(onnx).real_probability(rgb, box),
                               models[0].real_probability(rgb, box), atol=1e-5)


def test_bad_models_raise(tmp_path) -> None:
    from faceprint.video.antispoof import AntiSpoofModel

    with pytest.raises(ModelLoadError, match="not found"):
        AntiSpoofModel(tmp_path / "none.onnx")
    (tmp_path / "m.tflite").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=".onnx"):
        AntiSpoofModel(tmp_path / "m.tflite")
    torch = pytest.importorskip("torch")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ModelLoadError, match="MiniFASNet"):
        AntiSpoofModel(tmp_path / "other.pth").onnx_path()


def _landmarks(yaw: float, squeeze: float = 1.0) -> np.ndarray:
    """5 points of a face whose nose sits ``yaw`` eye-distances off centre; ``squeeze``
    compresses x (a flat photo turned about the vertical axis)."""
    pts = np.array([[100, 100], [160, 100], [130 + 60 * yaw, 130], [108, 160], [152, 160]], float)
    pts[:, 0] = 130 + (pts[:, 0] - 130) * squeeze
    return pts


def test_head_turn_challenge() -> None:
    check = HeadTurnLiveness(min_yaw=0.25, within_s=5.0)
    frame, box = np.zeros((4, 4, 3), np.uint8), np.zeros(4)
    for t, yaw in enumerate([0.0, -0.1, -0.3, -0.1, 0.0]):
        check.observe(1, frame, box, _landmarks(yaw), float(t))
    assert check.status(1).state == PENDING and "right" in check.status(1).detail
    check.observe(1, frame, box, _landmarks(0.35), 5.0)
    assert check.status(1).state == LIVE
    # a flat photo tilted back and forth: foreshortening keeps the yaw ratio
    for t, squeeze in enumerate([1.0, 0.6, 0.3, 0.6, 1.0, 0.5]):
        check.observe(2, frame, box, _landmarks(0.05, squeeze), float(t))
    assert check.status(2).state == PENDING
    # turns too far apart in time do not count
    check.observe(3, frame, box, _landmarks(-0.4), 0.0)
    check.observe(3, frame, box, _landmarks(0.4), 9.0)
    assert check.status(3).state == PENDING
    check.forget(1)
    assert check.status(1).state == PENDING


class _Fixed:
    def __init__(self, name: str, state: str) -> None:
        self.name, self.state = name, state

    def observe(self, *args: object) -> None:
        return None

    def status(self, track_id: int) -> LivenessStatus:
        return LivenessStatus(self.state, None, self.name, self.state)

    def forget(self, track_id: int) -> None:
        return None


def test_checks_combine_and_none_is_unavailable() -> None:
    assert NoLiveness().status(1).state == UNAVAILABLE
    assert AllOf([]).status(1).state == UNAVAILABLE
    assert AllOf([_Fixed("a", LIVE), _Fixed("b", LIVE)]).status(1).state == LIVE
    assert AllOf([_Fixed("a", LIVE), _Fixed("b", PENDING)]).status(1).state == PENDING
    assert AllOf([_Fixed("a", LIVE), _Fixed("b", SPOOF)]).status(1).state == SPOOF


class _Detector:
    def detect(self, rgb: np.ndarray) -> Faces:
        lm = _landmarks(0.0)[None] + 50
        return Faces(np.array([[120, 120, 240, 240]]), np.array([0.99]), lm)


class _Embedder:
    calls = 0

    def embed(self, aligned: AlignedFaces) -> Embeddings:
        _Embedder.calls += len(aligned)
        return Embeddings(np.ones((len(aligned), 4)), "fake")


class _Aligner:
    template = "fake"

    def align(self, rgb: np.ndarray, faces: Faces) -> AlignedFaces:
        return AlignedFaces(np.zeros((len(faces), 8, 8, 3), np.uint8), self.template, faces)


class _Identifier:
    def identify(self, emb: Embeddings) -> list[tuple[str | None, float]]:
        return [("ada", 0.9)] * len(emb)


class _LiveAfter:
    name = "fake"

    def __init__(self, frames: int) -> None:
        self.frames, self.seen = frames, 0

    def observe(self, *args: object) -> None:
        self.seen += 1

    def status(self, track_id: int) -> LivenessStatus:
        return LivenessStatus(LIVE if self.seen >= self.frames else PENDING, None, self.name)

    def forget(self, track_id: int) -> None:
        return None


def test_require_live_holds_identification() -> None:
    with pytest.raises(ConfigError):
        VideoRecognizer(_Detector(), require_live=True)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (360, 480, 3), dtype=np.uint8)  # sharp texture: good quality
    _Embedder.calls = 0
    rec = VideoRecognizer(_Detector(), _Aligner(), _Embedder(), _Identifier(), liveness=_LiveAfter(20),
                          detect_every=1, require_live=True, max_embeddings=2)
    labels = [rec.process(frame, i, i / 30).tracks for i in range(40)]
    named = [i for i, views in enumerate(labels) if views and views[0].label == "ada"]
    assert _Embedder.calls == 2  # embedded a few times, not every frame
    assert named and named[0] >= 20  # only once live
    assert labels[5][0].label == "?" and labels[5][0].liveness.state == PENDING
