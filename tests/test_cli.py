"""The CLI contract: JSON shapes, input order, one-line errors with typed exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from faceprint.cli import app

from .conftest import shared

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_detect_json_contract() -> None:
    obama, two = shared("people", "obama.jpg"), shared("people", "two_people.jpg")
    code, out, _ = run("detect", str(obama), str(two), "--json")
    assert code == 0
    records = json.loads(out)
    assert [r["image"] for r in records] == [str(obama), str(two)]
    assert len(records[0]["faces"]) == 1 and len(records[1]["faces"]) == 2
    face = records[0]["faces"][0]
    assert set(face) == {"box", "score", "landmarks"}
    x1, y1, x2, y2 = face["box"]
    assert x1 < x2 and y1 < y2 and 0 < face["score"] <= 1
    assert len(face["landmarks"]) == 5 and all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in face["landmarks"])


def test_embed_json_contract_keeps_input_order() -> None:
    biden, obama = shared("people", "biden.jpg"), shared("people", "obama.jpg")
    code, out, _ = run("embed", str(biden), str(obama), "--json")
    assert code == 0
    records = json.loads(out)
    assert [r["image"] for r in records] == [str(biden), str(obama)]
    vecs = [np.array(r["faces"][0]["embedding"]) for r in records]
    assert all(v.shape == (128,) for v in vecs)
    assert np.linalg.norm(vecs[0] - vecs[1]) > 0.6  # two different people


def test_embed_aligned_chip(tmp_path) -> None:
    from faceprint import FacePipeline

    pipe = FacePipeline()
    img = shared("people", "obama.jpg")
    chip = pipe.align(img).chips[0]
    path = tmp_path / "chip.png"
    Image.fromarray(chip).save(path)
    code, out, _ = run("embed", "--aligned", str(path), "--json")
    assert code == 0
    (record,) = json.loads(out)
    assert len(record["faces"]) == 1
    np.testing.assert_allclose(record["faces"][0]["embedding"], pipe.embed(img).embeddings.vectors[0], atol=1e-5)
    wrong = tmp_path / "wrong.png"
    Image.fromarray(np.zeros((100, 80, 3), np.uint8)).save(wrong)
    code, _, err = run("embed", "--aligned", str(wrong), "--json")
    assert code == 2 and "expected an aligned 150x150 chip" in err


def test_verify_json_contract() -> None:
    train = shared("people", "knn_examples", "train")
    a, b = sorted((train / "biden").glob("*.jpg"))[:2]
    code, out, _ = run("verify", str(a), str(b), "--json")
    assert code == 0
    result = json.loads(out)
    assert set(result) == {"match", "distance", "threshold", "model"}
    assert result["match"] is True and result["threshold"] == 0.6 and result["model"] == "dlib_resnet_v1"
    code, out, _ = run("verify", str(a), str(shared("people", "obama.jpg")), "--json")
    assert code == 0 and json.loads(out)["match"] is False


def test_models_json_lists_specs() -> None:
    code, out, _ = run("models", "--json")
    assert code == 0
    listing = json.loads(out)
    assert {"mtcnn", "hog", "onnx"} <= {d["name"] for d in listing["detectors"]}


@pytest.mark.parametrize(
    "args, exit_code, fragment",
    [
        (["detect", "/no/such.jpg"], 3, "no such file"),
        (["detect", "--detector", "nope", "x.jpg"], 5, "unknown detector 'nope'"),
        (["embed", "--model", "/missing/model.onnx", "x.jpg"], 5, "not found"),
    ],
)
def test_errors_are_one_line_with_typed_exit_codes(args: list[str], exit_code: int, fragment: str) -> None:
    code, out, err = run(*args)
    assert code == exit_code
    assert fragment in err and err.count("\n") == 1 and err.startswith("error: ")
    assert out == ""


def test_verify_without_face_exits_4(tmp_path) -> None:
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(blank)
    code, _, err = run("verify", str(blank), str(shared("people", "obama.jpg")))
    assert code == 4 and "no face found" in err
    code, _, err = run("verify", str(shared("people", "obama.jpg")), str(shared("people", "obama.jpg")), "--face", "3")
    assert code == 4 and "only 1 face(s) found, face #3 requested" in err


def test_corrupt_file_exits_3(tmp_path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    code, _, err = run("embed", str(bad), "--json")
    assert code == 3 and "bad.jpg" in err


def test_debug_prints_traceback() -> None:
    result = runner.invoke(app, ["--debug", "detect", "/no/such.jpg"])
    assert result.exit_code == 3 and "Traceback" in result.stderr
