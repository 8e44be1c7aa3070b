"""ONNX Runtime sessions opened from the cached, already optimised graph give the same outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faceprint import load_image
from faceprint.detectors.mtcnn import converted_model
from faceprint.onnx_graph import open_session, optimized_model_path

from .conftest import shared

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture()
def pnet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MTCNN's P-Net converted into a private cache (no optimised copy yet)."""
    monkeypatch.setenv("FACEPRINT_CACHE_DIR", str(tmp_path))
    return converted_model("pnet")


def _pixels() -> np.ndarray:
    rgb = load_image(shared("people", "obama.jpg"))
    return np.ascontiguousarray(rgb[::4, ::4][None].astype(np.float32))


def _reference(model: Path, x: np.ndarray) -> list[np.ndarray]:
    """Outputs of a session that ORT optimises in memory, the way sessions were opened before."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"]).run(None, {"image": x})


def test_first_session_writes_the_optimised_graph_and_a_new_process_loads_it(pnet: Path) -> None:
    x = _pixels()
    optimized = optimized_model_path(pnet)
    assert optimized is not None and not optimized.exists()
    first = open_session(pnet, spinning=False, fixed_shapes=False).run(None, {"image": x})
    assert optimized.is_file() and not list(optimized.parent.glob("*.part"))
    code = ("import json, sys\nimport numpy as np\nimport onnxruntime as ort\n"
            "opened = []\n_real = ort.InferenceSession\n"
            "def spy(path, sess_options=None, **kw):\n"
            "    opened.append((path, int(sess_options.graph_optimization_level)))\n"
            "    return _real(path, sess_options=sess_options, **kw)\n"
            "ort.InferenceSession = spy\n"
            "from faceprint.onnx_graph import open_session\n"
            "x = np.load(sys.argv[2])\n"
            "out = open_session(sys.argv[1], spinning=False, fixed_shapes=False).run(None, {'image': x})\n"
            "np.savez(sys.argv[3], *out)\nprint(json.dumps(opened))\n")
    np.save(pnet.parent / "x.npy", x)
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.run([sys.executable, "-c", code, str(pnet), str(pnet.parent / "x.npy"), str(pnet.parent / "y.npz")],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    import onnxruntime as ort

    assert json.loads(proc.stdout) == [[str(optimized), int(ort.GraphOptimizationLevel.ORT_DISABLE_ALL)]]
    again = np.load(pnet.parent / "y.npz")
    reference = _reference(pnet, x)
    for a, b, r in zip(first, [again[k] for k in again.files], reference):
        assert np.array_equal(a, r) and np.array_equal(b, r)


def test_a_damaged_optimised_file_is_rebuilt(pnet: Path) -> None:
    x = _pixels()
    optimized = optimized_model_path(pnet)
    optimized.write_bytes(b"not an onnx model")
    out = open_session(pnet).run(None, {"image": x})
    assert optimized.stat().st_size > 1000
    for a, r in zip(out, _reference(pnet, x)):
        assert np.array_equal(a, r)
    for a, r in zip(open_session(pnet).run(None, {"image": x}), out):
        assert np.array_equal(a, r)


def test_a_changed_model_file_gets_a_new_optimised_copy(pnet: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model.onnx"
    copy.write_bytes(pnet.read_bytes())
    before = optimized_model_path(copy)
    os.utime(copy, ns=(1, 1))
    assert optimized_model_path(copy) != before
    assert optimized_model_path(tmp_path / "missing.onnx") is None


def test_a_missing_or_bad_model_is_a_model_load_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from faceprint.errors import ModelLoadError

    monkeypatch.setenv("FACEPRINT_CACHE_DIR", str(tmp_path / "cache"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ModelLoadError):
        open_session(bad)
    with pytest.raises(ModelLoadError):
        open_session(tmp_path / "missing.onnx")
    assert not list((tmp_path / "cache").glob("*.part"))
