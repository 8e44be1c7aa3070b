"""The public surface: a curated __all__, a light import, the registry."""

from __future__ import annotations

import subprocess
import sys

import pytest

import faceprint
from faceprint import UnknownModelError, create_detector, create_embedder, list_models


def test_all_is_curated_importable_and_documented() -> None:
    assert sorted(faceprint.__all__) == faceprint.__all__ and len(set(faceprint.__all__)) == len(faceprint.__all__)
    # a fresh interpreter: `from faceprint import *` binds exactly these names, each importable by name
    code = ("import faceprint; ns = {}; exec('from faceprint import *', ns); ns.pop('__builtins__'); "
            "print(sorted(ns) == sorted(faceprint.__all__)); "
            "exec('from faceprint import ' + ', '.join(faceprint.__all__)); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "ok"]
    import re

    assert re.fullmatch(r"\d+\.\d+(\.\d+)?([ab]|rc|\.dev|\.post)?\d*", faceprint.__version__)
    for name in faceprint.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(faceprint, name)
        assert obj.__module__.startswith("faceprint."), (name, obj.__module__)  # ours, not a re-export
        doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else obj.__doc__  # its own, not inherited
        # (a dataclass without one gets the generated "Name(field: type, ...)")
        assert doc and doc.strip() and not doc.startswith(f"{name}("), f"{name} has no docstring"


def test_import_is_light() -> None:
    code = (
        "import sys; import faceprint; "
        "heavy = [m for m in ('onnxruntime', 'cv2', 'torch', 'dlib', 'onnx', 'PIL') if m in sys.modules]; "
        "print('imported', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert out[1].strip() == "[]"
    # (how long the import takes is a benchmark, not a test: benchmarks/ tracks the 0.3 s target)


def test_unknown_names_raise_typed_errors() -> None:
    with pytest.raises(UnknownModelError, match="unknown detector 'nope'"):
        create_detector("nope")
    with pytest.raises(UnknownModelError, match="not found"):
        create_embedder("/no/such/model.onnx")


def test_list_models_names_the_defaults() -> None:
    listing = list_models()
    assert [d["name"] for d in listing["detectors"] if d["default"]] == ["mtcnn"]
    default = [e for e in listing["embedders"] if e["default"]]
    assert default[0]["name"] == "dlib_resnet"
    assert default[0]["spec"]["dim"] == 128 and default[0]["spec"]["threshold"] == 0.6
