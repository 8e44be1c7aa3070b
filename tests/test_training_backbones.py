"""Backbones: dlib's ResNet in PyTorch equals the ONNX embedder; sizes and bad weights."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from faceprint.errors import ConfigError, ModelLoadError, UnknownModelError  # noqa: E402
from faceprint.training.backbones import DlibResNet, SmallResNet  # noqa: E402
from faceprint.training.factory import create_backbone  # noqa: E402

from .conftest import shared  # noqa: E402


@pytest.fixture(scope="module")
def lfw_chips() -> np.ndarray:
    """Real chips cut by the default pipeline from 6 LFW View 1 images."""
    from faceprint.pipeline import FacePipeline

    root = shared("lfw-view1", "images")
    paths = sorted(root.glob("*/*_0001.jpg"))[:6]
    pipe = FacePipeline()
    return np.stack([pipe.align(p).chips[0] for p in paths])


def test_dlib_resnet_equals_the_onnx_embedder_on_real_chips(lfw_chips: np.ndarray) -> None:
    from faceprint.embedders.dlib_resnet import DlibResnetEmbedder

    onnx = DlibResnetEmbedder()
    expected = onnx.embed(lfw_chips).vectors
    model = DlibResNet().load_dlib().eval()
    with torch.no_grad():
        got = model(torch.from_numpy(onnx.preprocess(lfw_chips))).numpy()
    assert got.shape == (6, 128)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert np.linalg.norm(expected[0] - expected[1]) > 0.3  # different people: the check is not trivial


def test_embedding_size_is_a_parameter(lfw_chips: np.ndarray) -> None:
    x = torch.zeros(2, 3, 150, 150)
    model = DlibResNet(dim=64).load_dlib()  # the trunk loads, the new final layer stays random
    assert model(x).shape == (2, 64)
    full = DlibResNet().load_dlib()
    assert torch.equal(model.blocks[-1].conv2.weight, full.blocks[-1].conv2.weight)
    for template, size in (("dlib_150", 150), ("arcface_112", 112)):
        net = SmallResNet(dim=32, template=template).eval()
        assert net(torch.zeros(3, 3, size, size)).shape == (3, 32)
        assert net.input_size == size
    assert create_backbone("small_resnet", 16).dim == 16
    assert sum(p.numel() for p in DlibResNet().parameters()) == 5_614_592  # dlib's count
    with pytest.raises(UnknownModelError, match="unknown backbone"):
        create_backbone("resnet1000")
    with pytest.raises(ConfigError):
        SmallResNet(template="nope")


def test_bad_weights_file_is_a_model_load_error(tmp_path) -> None:
    from faceprint.dlibport.resnet import default_dat_path

    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(default_dat_path().read_bytes()[:100_000])
    with pytest.raises(ModelLoadError):
        DlibResNet().load_dlib(truncated)
    with pytest.raises(ModelLoadError):
        DlibResNet().load_dlib(tmp_path / "missing.dat")
