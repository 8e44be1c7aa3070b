"""`faceprint train` end to end on CPU (a few steps): log, curves, checkpoints, resume, export,
and the exported model used through `--model` by `embed` and `verify`."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from faceprint.cli import app  # noqa: E402

from .conftest import shared  # noqa: E402

runner = CliRunner()
#: a few steps of a small net on 112x112 chips (CPU)
SMALL = ["--backbone", "small_resnet", "--dim", "32", "--batch-p", "3", "--batch-k", "2", "--steps-per-epoch", "1",
         "--val-fraction", "0.3", "--lr", "0.01", "--template", "arcface_112"]
TINY = [*SMALL, "--loss", "triplet", "--miner", "batch_hard"]


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """12 LFW View 1 people with 3+ images each (links to the real photos)."""
    root = shared("lfw-view1", "images")
    out = tmp_path_factory.mktemp("people")
    chosen = [d for d in sorted(root.iterdir()) if len(list(d.glob("*.jpg"))) >= 3][:12]
    for person in chosen:
        (out / person.name).mkdir()
        for img in sorted(person.glob("*.jpg"))[:3]:
            (out / person.name / img.name).symlink_to(img)
    return out


def log_rows(path) -> list[dict]:
    with open(path / "log.csv") as fh:
        return list(csv.DictReader(fh))


def test_train_resume_export_and_use(people, tmp_path) -> None:
    # an uninterrupted 2-epoch run ...
    straight = tmp_path / "straight"
    code, out, err = run("train", "--data", people, *TINY, "--epochs", "2", "--out", straight, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["epochs_run"] == 2 and summary["device"] == "cpu"
    assert summary["train_identities"] + summary["val_identities"] == 12
    for name in ("last.pt", "best.pt", "log.csv", "curves.png", "model.onnx", "model.onnx.json", "summary.json"):
        assert (straight / name).is_file(), name
    rows = log_rows(straight)
    assert [r["epoch"] for r in rows] == ["0", "1", "2"] and rows[0]["train_loss"] == ""
    assert all(0 <= float(r["tar_far_1e-2"]) <= 1 and float(r["train_loss"]) > 0 for r in rows[1:])

    # ... equals 1 epoch, then --resume to 2
    resumed = tmp_path / "resumed"
    assert run("train", "--data", people, *TINY, "--epochs", "1", "--out", resumed)[0] == 0
    assert len(log_rows(resumed)) == 2
    code, _, err = run("train", "--data", people, *TINY, "--epochs", "2", "--out", resumed, "--resume")
    assert code == 0, err
    assert [r["epoch"] for r in log_rows(resumed)] == ["0", "1", "2"]
    for a, b in zip(log_rows(straight), log_rows(resumed)):
        assert a["tar_far_1e-2"] == b["tar_far_1e-2"] and a["train_loss"] == b["train_loss"]
    w_straight = torch.load(straight / "last.pt", weights_only=False)["model"]
    w_resumed = torch.load(resumed / "last.pt", weights_only=False)["model"]
    for key in w_straight:
        torch.testing.assert_close(w_straight[key], w_resumed[key], rtol=0, atol=1e-5)

    # a resume with another loss is refused
    code, _, err = run("train", "--data", people, *SMALL, "--loss", "contrastive", "--epochs", "4", "--out", resumed,
                       "--resume")
    assert code == 2 and "loss='triplet'" in err and len(err.strip().splitlines()) == 1

    # the export carries the spec and works as --model (folder or .onnx) everywhere
    spec = json.loads((straight / "model.onnx.json").read_text())
    assert spec["dim"] == 32 and spec["template"] == "arcface_112" and spec["metric"] == "euclidean"
    assert spec["normalize"] is True and set(spec["thresholds"]) == {"accuracy", "far_1e-2", "far_1e-3"}
    assert spec["threshold"] == spec["thresholds"]["accuracy"]
    from faceprint.registry import create_embedder

    for ref in (straight, straight / "model.onnx"):
        emb = create_embedder(str(ref))
        assert emb.spec.model_id == spec["model_id"] and emb.spec.thresholds == spec["thresholds"]

    photo = sorted(people.glob("*/*.jpg"))[0]
    from faceprint.pipeline import FacePipeline

    chip = FacePipeline(embedder=create_embedder(str(straight))).align(photo).chips[:1]
    assert chip.shape == (1, 112, 112, 3)
    chip_path = tmp_path / "chip.png"
    from PIL import Image

    Image.fromarray(chip[0]).save(chip_path)
    code, out, err = run("embed", "--model", straight, "--aligned", chip_path, "--json")
    assert code == 0, err
    vector = np.array(json.loads(out)[0]["faces"][0]["embedding"])
    from faceprint.training.backbones import SmallResNet
    from faceprint.training.validate import embed_chips

    model = SmallResNet(dim=32, template="arcface_112")
    model.load_state_dict(torch.load(straight / "best.pt", weights_only=False)["model"])
    expected = embed_chips(model, chip, model.mean, model.std)[0]
    np.testing.assert_allclose(vector, expected / np.linalg.norm(expected), atol=1e-4)

    other = sorted(people.glob("*/*.jpg"))[1]
    code, out, err = run("verify", photo, other, "--model", straight / "model.onnx", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["model"] == spec["model_id"] and result["threshold"] == pytest.approx(spec["threshold"])


def test_bad_training_data_gives_one_line_errors(tmp_path) -> None:
    photos = sorted(shared("lfw-view1", "images").glob("*/*_0001.jpg"))[:4]
    singles = tmp_path / "singles"
    for p in photos:  # one image per identity
        (singles / p.parent.name).mkdir(parents=True)
        (singles / p.parent.name / p.name).symlink_to(p)
    code, _, err = run("train", "--data", singles, *TINY, "--epochs", "1", "--out", tmp_path / "o")
    assert code == 2 and "at least 2 images" in err and len(err.strip().splitlines()) == 1
    (singles / "nobody").mkdir()
    code, _, err = run("train", "--data", singles, *TINY, "--epochs", "1", "--out", tmp_path / "o")
    assert code == 2 and "nobody holds no image" in err and len(err.strip().splitlines()) == 1
    code, _, err = run("train", "--data", tmp_path / "missing", *TINY, "--epochs", "1", "--out", tmp_path / "o")
    assert code == 2 and "not found" in err
    code, _, err = run("train", "--data", singles, "--loss", "nope", "--epochs", "1", "--out", tmp_path / "o")
    assert code == 5 and "unknown loss 'nope'" in err
    code, _, err = run("train", "--data", singles, "--backbone", "small_resnet", "--init", "dlib_resnet",
                       "--epochs", "1", "--out", tmp_path / "o")
    assert code == 2 and "--backbone dlib_resnet" in err
