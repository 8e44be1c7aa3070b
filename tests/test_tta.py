"""Test-time augmentation (flip averaging) and the calibrated thresholds in the model spec."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint import ConfigError, FacePipeline, create_embedder
from faceprint.cli import app
from faceprint.embedders.base import OnnxEmbedder
from faceprint.embedders.dlib_resnet import DLIB_RESNET_SPEC
from faceprint.embedders.tta import jitter_transforms
from faceprint.spec import ModelSpec

from .conftest import shared

IMAGES = ["lfw-view1/images/Hans_Blix/Hans_Blix_0002.jpg", "lfw-view1/images/Paul_Wolfowitz/Paul_Wolfowitz_0002.jpg",
          "people/obama.jpg", "people/biden.jpg", "people/two_people.jpg"]


@pytest.fixture(scope="module")
def chips() -> np.ndarray:
    """Real aligned 150x150 chips (6 faces from 5 images) plus two random ones."""
    pipe = FacePipeline()
    real = np.concatenate([pipe.align(shared(*path.split("/"))).chips for path in IMAGES])
    noise = np.random.default_rng(0).integers(0, 256, (2, 150, 150, 3), dtype=np.uint8)
    return np.concatenate([real, noise])


@pytest.fixture(scope="module")
def plain() -> Any:
    return create_embedder("dlib_resnet")


@pytest.fixture(scope="module")
def flipped() -> Any:
    return create_embedder("dlib_resnet", flip=True)


# -- flip averaging ----------------------------------------------------------------------------

def test_flip_equals_mean_of_chip_and_mirror(chips: np.ndarray, plain: Any, flipped: Any) -> None:
    reference = (plain.embed(chips).vectors.astype(np.float64) + plain.embed(chips[:, :, ::-1]).vectors) / 2
    got = flipped.embed(chips)
    np.testing.assert_allclose(got.vectors, reference, atol=1e-5)
    assert got.model_id == plain.embed(chips[:1]).model_id == "dlib_resnet_v1"
    assert not np.allclose(got.vectors, plain.embed(chips).vectors, atol=1e-3)  # it does change the vectors


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 64])
def test_flip_batch_consistency(chips: np.ndarray, flipped: Any, batch_size: int) -> None:
    small = create_embedder("dlib_resnet", flip=True, batch_size=batch_size)
    np.testing.assert_allclose(small.embed(chips).vectors, flipped.embed(chips).vectors, atol=1e-5)
    one_by_one = np.concatenate([flipped.embed(chips[i : i + 1]).vectors for i in range(len(chips))])
    np.testing.assert_allclose(one_by_one, flipped.embed(chips).vectors, atol=1e-5)


def test_flip_of_mirror_is_the_same(chips: np.ndarray, flipped: Any) -> None:
    np.testing.assert_allclose(flipped.embed(chips[:, :, ::-1]).vectors, flipped.embed(chips).vectors, atol=1e-5)


def test_flip_empty_batch(flipped: Any) -> None:
    out = flipped.embed(np.zeros((0, 150, 150, 3), np.uint8))
    assert out.vectors.shape == (0, 128)


def test_flip_recorded_in_describe(plain: Any, flipped: Any) -> None:
    assert plain.describe()["flip"] is False and flipped.describe()["flip"] is True
    assert flipped.spec is plain.spec is DLIB_RESNET_SPEC


def test_pipeline_with_flip_embedder(flipped: Any) -> None:
    pipe = FacePipeline(embedder=flipped)
    img = shared("people", "obama.jpg")
    chip = pipe.align(img).chips
    np.testing.assert_allclose(pipe.embed(img).embeddings.vectors, flipped.embed(chip).vectors, atol=1e-6)


class _LinearSession:
    """A fake ONNX Runtime session: ``output = W @ mean_over_pixels(input) + b`` (asymmetric in x)."""

    def __init__(self, dim: int, size: int) -> None:
        rng = np.random.default_rng(1)
        self.w = rng.normal(size=(dim, 3 * size * size)).astype(np.float32)
        self.calls: list[int] = []

    def get_inputs(self) -> list[Any]:
        class _In:
            name = "input"
            shape = ["N", 3, 112, 112]
        return [_In()]

    def run(self, _outputs: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = feeds["input"]
        self.calls.append(len(x))
        return [x.reshape(len(x), -1) @ self.w.T + 1.0]


def test_flip_averages_before_normalisation() -> None:
    spec = ModelSpec("fake", 112, (127.5,) * 3, (127.5,) * 3, "arcface_112", 4, "cosine", 0.4, normalize=True)
    emb = OnnxEmbedder(None, spec, batch_size=4, flip=True, threads=1)  # one thread: whole calls
    session = _LinearSession(4, 112)
    emb._session = session
    chips = np.random.default_rng(2).integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)

    def raw(c: np.ndarray) -> np.ndarray:
        return session.run(None, {"input": emb.preprocess(c)})[0].astype(np.float64)

    mean = (raw(chips) + raw(chips[:, :, ::-1])) / 2
    expected = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    session.calls.clear()
    np.testing.assert_allclose(emb.embed(chips).vectors, expected, atol=1e-5)
    assert session.calls == [4, 4, 2]  # chips and mirrors share a call, batch_size per call


# -- jitter averaging -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jittered() -> Any:
    return create_embedder("dlib_resnet", jitter=3)


def test_jitter_equals_mean_over_jittered_copies(chips: np.ndarray, plain: Any, jittered: Any) -> None:
    """Reference: every jittered copy warped one by one with a plain cv2 call, embedded plainly."""
    import cv2

    maps, mirror = jitter_transforms(3, 150, seed=0)
    views = [plain.embed(chips).vectors.astype(np.float64)]
    for m, flip in zip(maps, mirror):
        copies = []
        for chip in chips:
            warped = cv2.warpAffine(chip, m, (150, 150), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_REFLECT_101)
            copies.append(warped[:, ::-1] if flip else warped)
        views.append(plain.embed(np.stack(copies)).vectors)
    np.testing.assert_allclose(jittered.embed(chips).vectors, np.mean(views, axis=0), atol=1e-5)
    assert jittered.describe()["jitter"] == 3


def test_jitter_is_deterministic_and_batch_consistent(chips: np.ndarray, jittered: Any) -> None:
    again = create_embedder("dlib_resnet", jitter=3, batch_size=3)  # one chip per call with its 3 copies
    np.testing.assert_allclose(again.embed(chips).vectors, jittered.embed(chips).vectors, atol=1e-5)
    other_seed = create_embedder("dlib_resnet", jitter=3, seed=1)
    assert not np.allclose(other_seed.embed(chips[:2]).vectors, jittered.embed(chips[:2]).vectors, atol=1e-4)


def test_with_views_shares_the_model_and_matches_a_fresh_embedder(chips: np.ndarray, plain: Any,
                                                                  jittered: Any) -> None:
    twin = plain.with_views(jitter=3)
    assert twin._session is plain.session and (twin.jitter, twin.flip) == (3, False) and plain.jitter == 0
    np.testing.assert_allclose(twin.embed(chips).vectors, jittered.embed(chips).vectors, atol=1e-6)
    assert plain.with_views(flip=True).with_views(jitter=0).flip  # None keeps the current setting
    with pytest.raises(ConfigError, match="jitter must be >= 0"):
        plain.with_views(jitter=-1)


def test_jitter_transforms_stay_small() -> None:
    maps, mirror = jitter_transforms(200, 150, seed=5)
    scale = np.hypot(maps[:, 0, 0], maps[:, 1, 0])  # jittered -> source: 1 / zoom
    angle = np.degrees(np.arctan2(maps[:, 1, 0], maps[:, 0, 0]))
    centre = np.full(2, 74.5)
    moved = np.einsum("nij,j->ni", maps[:, :, :2], centre) + maps[:, :, 2] - centre
    assert ((1 / scale >= 1.01) & (1 / scale <= 1.03)).all() and (np.abs(angle) <= 3).all()
    assert (np.abs(moved) <= 0.02 * 150 + 1e-9).all() and 0.3 < mirror.mean() < 0.7
    with pytest.raises(ConfigError, match="jitter must be >= 0"):
        create_embedder("dlib_resnet", jitter=-1)


# -- calibrated thresholds in the spec -----------------------------------------------------------

def test_default_spec_has_ordered_calibrated_thresholds() -> None:
    t = DLIB_RESNET_SPEC.thresholds
    assert {"accuracy", "far_1e-2", "far_1e-3"} <= set(t)
    assert 0 < t["far_1e-3"] <= t["far_1e-2"]
    assert 0.5 < t["accuracy"] < 0.7
    assert "DevTrain" in DLIB_RESNET_SPEC.thresholds_source
    assert DLIB_RESNET_SPEC.threshold_for("far_1e-3") == t["far_1e-3"]
    with pytest.raises(ConfigError, match="no calibrated threshold 'far_1e-6'"):
        DLIB_RESNET_SPEC.threshold_for("far_1e-6")
    hash(DLIB_RESNET_SPEC)  # the dict field does not make the spec unhashable


@pytest.mark.parametrize("thresholds, fragment", [
    ({"far_1e-3": 0.7, "far_1e-2": 0.5}, "out of order"),
    ({"far_0.5x": 0.5}, "keys are 'accuracy' or 'far_<rate>'"),
    ({"eer": 0.5}, "keys are 'accuracy' or 'far_<rate>'"),
    ({"accuracy": -1.0}, "positive number"),
    ({"far_1e-3": float("nan")}, "positive number"),
])
def test_spec_rejects_bad_thresholds(thresholds: dict[str, float], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        ModelSpec("x", 112, (0.0,) * 3, (1.0,) * 3, "arcface_112", 8, "cosine", 0.4, thresholds=thresholds)


# -- CLI -------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_models_shows_calibrated_thresholds() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert "calibrated thresholds: accuracy" in result.stdout and "FAR 1e-3" in result.stdout
    result = runner.invoke(app, ["models", "--json"])
    (spec,) = [e["spec"] for e in json.loads(result.stdout)["embedders"] if e["name"] == "dlib_resnet"]
    assert spec["thresholds"] == DLIB_RESNET_SPEC.thresholds


def test_cli_embed_and_verify_flip(flipped: Any) -> None:
    obama = shared("people", "obama.jpg")
    result = runner.invoke(app, ["embed", "--flip", str(obama), "--json"])
    assert result.exit_code == 0
    (record,) = json.loads(result.stdout)
    expected = FacePipeline(embedder=flipped).embed(obama).embeddings.vectors[0]
    np.testing.assert_allclose(record["faces"][0]["embedding"], expected, atol=1e-5)
    train = shared("people", "knn_examples", "train")
    a, b = sorted((train / "biden").glob("*.jpg"))[:2]
    result = runner.invoke(app, ["verify", "--flip", str(a), str(b), "--json"])
    assert result.exit_code == 0
    verdict = json.loads(result.stdout)
    assert verdict["match"] is True and verdict["model"] == "dlib_resnet_v1"
    assert abs(verdict["distance"] - FacePipeline(embedder=flipped).verify(a, b).distance) < 1e-4
