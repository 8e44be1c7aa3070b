"""Pair files, the LFW protocol math (against plain reference loops) and one real LFW run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from faceprint.cli import app
from faceprint.errors import FaceprintError, PairsFileError
from faceprint.evaluation import metrics
from faceprint.evaluation.lfw import centre_face, centre_fallback, paired_distances
from faceprint.evaluation.pairs import read_pairs
from faceprint.types import Embeddings, Faces

from .conftest import shared

runner = CliRunner()


# -- pair files ------------------------------------------------------------------------------

def make_lfw_root(root: Path, names: dict[str, int]) -> Path:
    """Empty placeholder images ``root/<name>/<name>_<NNNN>.jpg`` (readers only check existence)."""
    for name, count in names.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(1, count + 1):
            (root / name / f"{name}_{i:04d}.jpg").write_bytes(b"x")
    return root


PEOPLE = {"Ann_A": 3, "Bob_B": 2, "Cy_C": 1, "Di_D": 2}


def test_view1_layout(tmp_path: Path) -> None:
    root = make_lfw_root(tmp_path / "lfw", PEOPLE)
    f = tmp_path / "pairsDevTest.txt"
    f.write_text("2\nAnn_A\t1\t2\nBob_B 1 2\nAnn_A\t3\tCy_C\t1\nDi_D 2 Bob_B 1\n")
    pairs = read_pairs(f, root)
    assert pairs.layout == "lfw_view1" and pairs.n_folds == 1 and len(pairs) == 4
    assert pairs.labels.tolist() == [True, True, False, False]
    assert pairs.folds.tolist() == [0, 0, 0, 0]
    p = pairs.pairs[2]
    assert p.path_a == root / "Ann_A" / "Ann_A_0003.jpg" and p.path_b == root / "Cy_C" / "Cy_C_0001.jpg"
    assert [q.line for q in pairs.pairs] == [2, 3, 4, 5]
    paths, a, b = pairs.unique_images()
    assert len(paths) == len(set(paths)) == 7
    assert [paths[i] for i in a] == [q.path_a for q in pairs.pairs]
    assert [paths[i] for i in b] == [q.path_b for q in pairs.pairs]


def test_view2_layout(tmp_path: Path) -> None:
    root = make_lfw_root(tmp_path / "lfw", PEOPLE)
    f = tmp_path / "pairs.txt"
    f.write_text("2\t1\nAnn_A 1 2\nAnn_A 1 Bob_B 2\nDi_D 1 2\nCy_C 1 Di_D 1\n")
    pairs = read_pairs(f, root)
    assert pairs.layout == "lfw_view2" and pairs.n_folds == 2
    assert pairs.labels.tolist() == [True, False, True, False]
    assert pairs.folds.tolist() == [0, 0, 1, 1]


def test_lfw_root_defaults_to_the_pairs_folder(tmp_path: Path) -> None:
    make_lfw_root(tmp_path, PEOPLE)
    (tmp_path / "p.txt").write_text("1\nAnn_A 1 2\nAnn_A 1 Bob_B 2\n")
    assert read_pairs(tmp_path / "p.txt").pairs[0].path_a == tmp_path / "Ann_A" / "Ann_A_0001.jpg"


def test_lfw_root_defaults_to_an_images_subfolder(tmp_path: Path) -> None:
    """LFW's own layout (and ../shared/data/lfw-view1) keeps images beside the pairs files."""
    make_lfw_root(tmp_path / "images", PEOPLE)
    (tmp_path / "p.txt").write_text("1\nAnn_A 1 2\nAnn_A 1 Bob_B 2\n")
    assert read_pairs(tmp_path / "p.txt").pairs[1].path_b == tmp_path / "images" / "Bob_B" / "Bob_B_0002.jpg"


@pytest.mark.parametrize(("body", "line", "match"), [
    ("2\nAnn_A 1 2\nAnn_A 1 Bob_B 1\nAnn_A 1 Bob_B 1\nCy_C 1 Di_D 1\n", 3, "expected a matched pair"),
    ("2\nAnn_A 1 2\nBob_B 1 2\nAnn_A 1 Bob_B 1\nCy_C 1\n", 5, "expected a mismatched pair"),
    ("2\nAnn_A 1 2\nBob_B one 2\nAnn_A 1 Bob_B 1\nCy_C 1 Di_D 1\n", 3, "image number"),
    ("2\nAnn_A 1 2\nBob_B 1 2\nAnn_A 1 Bob_B 1\n", 4, "promises 4 pairs"),
    ("two\nAnn_A 1 2\n", 1, "LFW header"),
    ("2\nAnn_A 1 2\nBob_B 1 9\nAnn_A 1 Bob_B 1\nCy_C 1 Di_D 1\n", 3, "image not found"),
])
def test_bad_lfw_files_name_the_line(tmp_path: Path, body: str, line: int, match: str) -> None:
    root = make_lfw_root(tmp_path / "lfw", PEOPLE)
    f = tmp_path / "pairs.txt"
    f.write_text(body)
    with pytest.raises(PairsFileError, match=match) as info:
        read_pairs(f, root)
    assert f"{f}:{line}:" in str(info.value)
    assert isinstance(info.value, FaceprintError) and isinstance(info.value, ValueError)
    assert info.value.exit_code == 2


def test_csv_pairs(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    for n in "abcd":
        (tmp_path / "img" / f"{n}.jpg").write_bytes(b"x")
    f = tmp_path / "pairs.csv"
    f.write_text("path_a,path_b,same\nimg/a.jpg,img/b.jpg,1\nimg/a.jpg, img/c.jpg ,No\n\nimg/c.jpg,img/d.jpg,TRUE\n"
                 f"{tmp_path / 'img' / 'b.jpg'},img/d.jpg,false\n")
    pairs = read_pairs(f)
    assert pairs.layout == "csv" and pairs.n_folds == 1
    assert pairs.labels.tolist() == [True, False, True, False]
    assert pairs.pairs[1].path_b == tmp_path / "img" / "c.jpg"
    assert [p.line for p in pairs.pairs] == [2, 3, 5, 6]
    # no header, paths relative to --root
    g = tmp_path / "other" / "p.txt"
    g.parent.mkdir()
    g.write_text("a.jpg,b.jpg,yes\nc.jpg,d.jpg,0\n")
    assert read_pairs(g, tmp_path / "img").labels.tolist() == [True, False]


@pytest.mark.parametrize(("body", "line", "match"), [
    ("a.jpg,b.jpg,1\na.jpg,b.jpg,maybe\n", 2, "'same' must be"),
    ("a.jpg,b.jpg,1\na.jpg,b.jpg\n", 2, "expected 3 fields"),
    ("a.jpg,b.jpg,1\na.jpg,zzz.jpg,0\n", 2, "image not found"),
    ("path_a,path_b,same\n", 1, "no pairs"),
])
def test_bad_csv_files_name_the_line(tmp_path: Path, body: str, line: int, match: str) -> None:
    for n in "ab":
        (tmp_path / f"{n}.jpg").write_bytes(b"x")
    f = tmp_path / "pairs.csv"
    f.write_text(body)
    with pytest.raises(PairsFileError, match=match) as info:
        read_pairs(f)
    assert f"{f}:{line}:" in str(info.value)


def test_missing_pairs_file_is_a_pairs_error(tmp_path: Path) -> None:
    with pytest.raises(PairsFileError, match="not found"):
        read_pairs(tmp_path / "nope.txt")


def test_deepface_master_csv_reads() -> None:
    pairs = read_pairs(shared("people", "deepface_pairs", "master.csv"))
    assert len(pairs) > 250 and 0 < pairs.labels.sum() < len(pairs)


# -- metrics against reference loops ---------------------------------------------------------

def synthetic(seed: int, n: int = 200, folds: int = 1, ties: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.5
    y[:2] = [True, False]
    d = np.where(y, rng.normal(0.45, 0.1, n), rng.normal(0.75, 0.1, n))
    if ties:
        d = np.round(d, 2)
    return d, y, np.arange(n) % folds


def ref_best(d: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    best_t, best_acc = None, -1.0
    for t in metrics.candidate_thresholds(d):
        acc = sum(1 for di, yi in zip(d, y) if (di <= t) == yi) / len(d)
        if acc > best_acc:
            best_t, best_acc = t, acc
    return best_t, best_acc


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_best_threshold_matches_reference_loop(seed: int, ties: bool) -> None:
    d, y, _ = synthetic(seed, ties=ties)
    t, acc = metrics.best_threshold(d, y)
    ref_t, ref_acc = ref_best(d, y)
    assert acc == pytest.approx(ref_acc) and t == pytest.approx(ref_t)
    assert metrics.accuracy_at(d, y, t) == pytest.approx(acc)


@pytest.mark.parametrize("seed", range(3))
def test_kfold_matches_reference_loop(seed: int) -> None:
    d, y, folds = synthetic(seed, n=300, folds=10, ties=seed == 2)
    result = metrics.kfold_accuracy(d, y, folds)
    ref_accs = []
    for k in range(10):
        train = [i for i in range(len(d)) if folds[i] != k]
        t, _ = ref_best(d[train], y[train])
        held = [i for i in range(len(d)) if folds[i] == k]
        ref_accs.append(sum(1 for i in held if (d[i] <= t) == y[i]) / len(held))
    np.testing.assert_allclose(result.accuracies, ref_accs)
    assert result.mean == pytest.approx(np.mean(ref_accs)) and result.std == pytest.approx(np.std(ref_accs))


def test_single_fold_tunes_on_itself() -> None:
    d, y, folds = synthetic(5)
    result = metrics.kfold_accuracy(d, y, folds)
    assert result.accuracies.tolist() == [pytest.approx(metrics.best_threshold(d, y)[1])]
    assert result.std == 0.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.booleans()), min_size=2, max_size=40))
def test_roc_auc_eer_tar_against_loops(rows: list[tuple[int, bool]]) -> None:
    d = np.array([r[0] / 10 for r in rows])
    y = np.array([r[1] for r in rows])
    if y.all() or not y.any():
        with pytest.raises(FaceprintError, match="both same and different"):
            metrics.roc(d, y)
        return
    gen, imp = d[y], d[~y]
    # AUC: P(genuine closer than impostor), ties count half
    ref_auc = np.mean([[1.0 if g < i else 0.5 if g == i else 0.0 for i in imp] for g in gen])
    assert metrics.auc(d, y) == pytest.approx(ref_auc)
    # TAR@FAR: best TAR over thresholds with FAR <= target
    for far in (0.0, 0.1, 0.5):
        ref = max(np.mean(gen <= t) for t in metrics.candidate_thresholds(d) if np.mean(imp <= t) <= far)
        assert metrics.tar_at_far(d, y, far) == pytest.approx(ref)
    # EER lies between the FAR and FRR of the ROC points around the crossing
    rate, _ = metrics.eer(d, y)
    curve = metrics.roc(d, y)
    assert 0.0 <= rate <= 1.0
    assert min(np.maximum(curve.far, curve.frr)) >= rate - 1e-9
    assert max(np.minimum(curve.far, curve.frr)) <= rate + 1e-9


def test_eer_on_symmetric_data_is_near_the_crossing() -> None:
    d, y, _ = synthetic(0, n=4000)
    rate, t = metrics.eer(d, y)
    assert abs(t - 0.6) < 0.02 and abs(rate - np.mean(d[~y] <= t)) < 0.01 and abs(rate - np.mean(d[y] > t)) < 0.01


def test_far_key_and_interval() -> None:
    assert metrics.far_key(1e-2) == "1e-2" and metrics.far_key(1e-3) == "1e-3" and metrics.far_key(5e-4) == "5e-4"
    lo, hi = metrics.far_interval(0, 1000)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 1000), rel=1e-6)
    lo, hi = metrics.far_interval(10, 1000)
    assert lo < 0.01 < hi


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(FaceprintError, match="differ in length"):
        metrics.best_threshold(np.zeros(3), np.zeros(2, bool))


# -- runner pieces -----------------------------------------------------------------------------

def test_centre_face_and_fallback() -> None:
    faces = Faces(np.array([[0, 0, 100, 100], [90, 90, 160, 160], [200, 200, 250, 250]]), np.ones(3),
                  np.zeros((3, 5, 2)))
    assert faces.by_size()[0].xyxy.tolist() == [[0, 0, 100, 100]]
    assert centre_face(faces, (250, 250)) == 1
    fb = centre_fallback((250, 250))
    assert fb.xyxy.tolist() == [[62.5, 62.5, 187.5, 187.5]]
    lm = fb.landmarks[0]
    assert (lm >= 62.5).all() and (lm <= 187.5).all() and lm[0, 0] < lm[1, 0] and lm[0, 1] < lm[3, 1]


def test_paired_distances_match_embeddings_distance() -> None:
    rng = np.random.default_rng(0)
    for metric in ("euclidean", "cosine"):
        emb = Embeddings(rng.normal(size=(6, 8)), "m", metric)
        a, b = np.array([0, 1, 2, 5]), np.array([3, 3, 4, 0])
        ref = [emb[i].distance(emb[j])[0, 0] for i, j in zip(a, b)]
        np.testing.assert_allclose(paired_distances(emb, a, b), ref, rtol=1e-5, atol=1e-6)


def test_blank_image_uses_the_fallback() -> None:
    from faceprint import FacePipeline
    from faceprint.evaluation.lfw import embed_images

    pipe = FacePipeline()
    blank = np.full((250, 250, 3), 128, np.uint8)
    emb, no_face = embed_images(pipe, [blank, str(shared("people", "obama.jpg"))])
    assert no_face.tolist() == [True, False]
    assert emb.vectors.shape == (2, 128) and np.isfinite(emb.vectors).all() and np.abs(emb.vectors[0]).sum() > 0


def test_largest_choice_is_verifys_face_and_fails_faceless_pairs(tmp_path: Path) -> None:
    """``choice="largest"`` (``eval lfw --face-choice largest``) embeds what ``verify`` compares:
    the same vectors as ``FacePipeline.face_embedding(img, 0)``; a faceless image gets no
    fallback, so its pair is decided "different" at NO_FACE_DISTANCE."""
    from PIL import Image

    from faceprint import FacePipeline
    from faceprint.evaluation.lfw import NO_FACE_DISTANCE, embed_images, pair_distances

    pipe = FacePipeline()
    two, obama = shared("people", "two_people.jpg"), shared("people", "obama.jpg")
    Image.fromarray(np.full((250, 250, 3), 128, np.uint8)).save(tmp_path / "blank.png")
    emb, no_face = embed_images(pipe, [two, obama, tmp_path / "blank.png"], choice="largest")
    assert no_face.tolist() == [False, False, True] and np.isnan(emb.vectors[2]).all()
    for i, path in enumerate((two, obama)):
        np.testing.assert_allclose(emb.vectors[i], pipe.face_embedding(path, 0).vectors[0], atol=1e-5)
    f = tmp_path / "pairs.csv"
    f.write_text(f"{obama},{obama},1\n{obama},{tmp_path / 'blank.png'},1\n{two},{obama},0\n")
    largest = pair_distances(pipe, read_pairs(f), choice="largest")
    centre = pair_distances(pipe, read_pairs(f))
    assert largest.distances[0] < 1e-5 and largest.distances[1] == NO_FACE_DISTANCE
    assert largest.no_face == centre.no_face == 1 and centre.distances[1] < NO_FACE_DISTANCE
    with pytest.raises(FaceprintError, match="face choice"):
        embed_images(pipe, [obama], choice="nearest")


def test_import_stays_light() -> None:
    code = ("import sys, faceprint, faceprint.evaluation, faceprint.evaluation.lfw, faceprint.calibration; "
            "print([m for m in ('matplotlib', 'sklearn', 'scipy', 'cv2', 'onnxruntime') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- one real run ------------------------------------------------------------------------------

def trimmed_view1(tmp_path: Path, n_same: int, n_diff: int) -> tuple[Path, Path]:
    """The first ``n_same`` matched and ``n_diff`` mismatched pairs of View 1 DevTest, as a View 1 file."""
    lfw = shared("lfw-view1")
    lines = (lfw / "pairsDevTest.txt").read_text().splitlines()
    n = int(lines[0])
    same, diff = lines[1:1 + n][:n_same], lines[1 + n:1 + 2 * n][:n_diff]
    assert n_same == n_diff
    out = tmp_path / "pairsDevTest_small.txt"
    out.write_text("\n".join([str(n_same), *same, *diff]) + "\n")
    return out, lfw / "images"


def test_eval_lfw_cli_on_a_view1_subset(tmp_path: Path) -> None:
    pairs, root = trimmed_view1(tmp_path, 50, 50)
    out, png = tmp_path / "report.json", tmp_path / "roc.png"
    result = runner.invoke(app, ["eval", "lfw", "--root", str(root), "--pairs", str(pairs), "--json", str(out),
                                 "--plot", str(png)])
    assert result.exit_code == 0, result.stderr
    assert "accuracy" in result.stdout and "TAR @ FAR 1e-3" in result.stdout
    report = json.loads(out.read_text())
    for key in ("accuracy_mean", "accuracy_std", "auc", "eer", "tar_at_far", "thresholds", "no_face", "images_per_s",
                "model_id", "detector", "n_pairs", "accuracy_at_default_threshold"):
        assert key in report, key
    assert set(report["tar_at_far"]) == {"1e-2", "1e-3"}
    assert report["n_pairs"] == 100 and report["model_id"] == "dlib_resnet_v1" and report["detector"] == "mtcnn"
    assert report["accuracy_mean"] >= 0.97 and report["accuracy_at_default_threshold"] >= 0.95
    assert report["auc"] >= 0.98 and report["images_per_s"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_lfw_cli_reports_bad_files_in_one_line(tmp_path: Path) -> None:
    f = tmp_path / "pairs.txt"
    f.write_text("1\nAnn_A 1 2 3 4\nAnn_A 1 Bob_B 1\n")
    result = runner.invoke(app, ["eval", "lfw", "--root", str(tmp_path), "--pairs", str(f)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {f}:2: expected a matched pair 'name n1 n2' (fold 1), got 'Ann_A 1 2 3 4'"
