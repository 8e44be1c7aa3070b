"""Threshold-for-FAR calibration, the match probability, and their use by pipeline and CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint.calibration import Calibration
from faceprint.cli import app
from faceprint.errors import ConfigError, ModelMismatchError
from faceprint.evaluation import metrics
from faceprint.evaluation.calibrate import calibrate, fit_logistic

from .conftest import shared
from .test_evaluation import trimmed_view1

runner = CliRunner()


def synthetic(seed: int, n_gen: int = 400, n_imp: int = 2000, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = np.concatenate([rng.normal(0.4, 0.08, n_gen), rng.normal(0.8, 0.08, n_imp)])
    if ties:
        d = np.round(d, 2)
    return d, np.concatenate([np.ones(n_gen, bool), np.zeros(n_imp, bool)])


def brute_force(d: np.ndarray, y: np.ndarray, far: float) -> tuple[float, float, float]:
    """Largest threshold (over every midpoint of the data) with FAR <= far; its FAR and TAR."""
    best = None
    for t in metrics.candidate_thresholds(d):
        fa = sum(1 for di, yi in zip(d, y) if not yi and di <= t) / int((~y).sum())
        if fa <= far and (best is None or t > best[0]):
            ta = sum(1 for di, yi in zip(d, y) if yi and di <= t) / int(y.sum())
            best = (t, fa, ta)
    assert best is not None
    return best


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("far", [1e-3, 1e-2, 0.1])
def test_threshold_matches_brute_force_search(seed: int, far: float) -> None:
    d, y = synthetic(seed, n_gen=150, n_imp=600, ties=seed == 2)
    calib = calibrate(d, y, "m", "euclidean", far=far, n_boot=50)
    t, fa, ta = brute_force(d, y, far)
    assert calib.threshold == pytest.approx(t) and calib.far == pytest.approx(fa) and calib.tar == pytest.approx(ta)
    assert calib.far <= far and calib.n_impostor == 600 and calib.n_genuine == 150
    # the next distance above the threshold is an impostor that would break the FAR target
    above = d[d > calib.threshold]
    if len(above):
        nxt = above.min()
        assert np.mean(d[~y] <= nxt) > far


def test_intervals() -> None:
    d, y = synthetic(0)
    calib = calibrate(d, y, "m", "euclidean", far=1e-2, confidence=0.95)
    fa = int(np.sum(d[~y] <= calib.threshold))
    assert calib.extras["false_accepts"] == fa
    assert calib.far_ci == pytest.approx(metrics.far_interval(fa, 2000, 0.95))
    assert calib.far_ci[0] <= calib.far <= calib.far_ci[1]
    lo, hi = calib.threshold_ci
    assert lo < calib.threshold < hi and hi - lo < 0.2
    assert calib.extras["resolvable"]
    few = calibrate(d[:500], y[:500], "m", "euclidean", far=1e-3)  # 100 impostors cannot resolve 1e-3
    assert not few.extras["resolvable"] and few.far == 0.0 and few.far_ci[1] > 0.02


def test_logistic_probability_is_monotone_and_half_at_the_boundary() -> None:
    rng = np.random.default_rng(1)  # overlapping classes, symmetric about 0.6
    d = np.concatenate([rng.normal(0.5, 0.1, 1000), rng.normal(0.7, 0.1, 1000)])
    y = np.arange(2000) < 1000
    calib = calibrate(d, y, "m", "euclidean")
    grid = np.linspace(0.0, 1.2, 61)
    p = calib.probability(grid)
    assert np.all(np.diff(p) < 0) and p[0] > 0.99 and p[-1] < 0.01
    assert calib.logistic_coef < 0
    assert abs(calib.boundary - 0.6) < 0.03  # symmetric classes: the midpoint
    assert calib.probability(0.6) == pytest.approx(0.5, abs=0.1)
    assert isinstance(calib.probability(0.3), float)
    intercept, coef = fit_logistic(d, y)
    assert (intercept, coef) == (calib.logistic_intercept, calib.logistic_coef)


def _newton_logistic(d: np.ndarray, y: np.ndarray, steps: int = 50) -> tuple[float, float]:
    """Unregularised maximum-likelihood logistic fit of y on d by Newton's method, written out."""
    b0, b1 = 0.0, 0.0
    for _ in range(steps):
        g0 = g1 = h00 = h01 = h11 = 0.0
        for di, yi in zip(d.tolist(), y.tolist()):
            p = 1.0 / (1.0 + np.exp(-(b0 + b1 * di)))
            w = p * (1.0 - p)
            g0, g1 = g0 + (yi - p), g1 + (yi - p) * di
            h00, h01, h11 = h00 + w, h01 + w * di, h11 + w * di * di
        det = h00 * h11 - h01 * h01
        b0, b1 = b0 + (h11 * g0 - h01 * g1) / det, b1 + (h00 * g1 - h01 * g0) / det
    return b0, b1


def test_logistic_fit_matches_a_newton_reference_and_the_closed_form() -> None:
    rng = np.random.default_rng(2)
    # equal-variance normal classes with equal priors: P(same | d) is exactly logistic with
    # coef = -(mu_diff - mu_same) / sigma^2 = -20 and intercept = 20 * 0.6 = 12
    d = np.concatenate([rng.normal(0.5, 0.1, 3000), rng.normal(0.7, 0.1, 3000)])
    y = np.arange(6000) < 3000
    intercept, coef = fit_logistic(d, y)
    ref0, ref1 = _newton_logistic(d, y)
    assert intercept == pytest.approx(ref0, rel=1e-3) and coef == pytest.approx(ref1, rel=1e-3)
    assert coef == pytest.approx(-20.0, rel=0.1) and intercept == pytest.approx(12.0, rel=0.1)


def test_save_load_roundtrip_and_bad_files(tmp_path: Path) -> None:
    d, y = synthetic(2)
    calib = calibrate(d, y, "dlib_resnet_v1", "euclidean", source="x.csv")
    path = calib.save(tmp_path / "calib.json")
    loaded = Calibration.load(path)
    assert loaded == calib
    data = json.loads(path.read_text())
    assert data["model_id"] == "dlib_resnet_v1" and data["format"] == "faceprint-calibration"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        Calibration.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"threshold": 0.5}')
    with pytest.raises(ConfigError, match="not a faceprint calibration"):
        Calibration.load(tmp_path / "other.json")
    del data["logistic_coef"]
    (tmp_path / "partial.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="logistic_coef"):
        Calibration.load(tmp_path / "partial.json")
    with pytest.raises(ConfigError, match="cannot read"):
        Calibration.load(tmp_path / "missing.json")


def test_pipeline_uses_the_calibration(tmp_path: Path) -> None:
    from faceprint import FacePipeline

    d, y = synthetic(3)
    calib = calibrate(d, y, "dlib_resnet_v1", "euclidean", far=1e-2)
    pipe = FacePipeline(calibration=calib)
    assert pipe.threshold == calib.threshold != pipe.spec.threshold
    assert pipe.match_probability(0.3) == pytest.approx(calib.probability(0.3))
    assert FacePipeline(calibration=calib, threshold=0.5).threshold == 0.5
    assert FacePipeline(calibration=calib.save(tmp_path / "c.json")).threshold == calib.threshold
    assert FacePipeline().match_probability(0.3) is None
    with pytest.raises(ModelMismatchError, match="other_model"):
        FacePipeline(calibration=replace(calib, model_id="other_model"))


def test_calibrate_and_verify_cli(tmp_path: Path) -> None:
    pairs, root = trimmed_view1(tmp_path, 20, 20)
    out = tmp_path / "calib.json"
    result = runner.invoke(app, ["calibrate", "--pairs", str(pairs), "--root", str(root), "--far", "0.05",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "threshold" in result.stdout
    calib = Calibration.load(out)
    assert calib.model_id == "dlib_resnet_v1" and calib.n_impostor == 20 and calib.n_genuine == 20
    assert 0.3 < calib.threshold < 0.8 and calib.far <= 0.05
    assert calib.probability(0.2) > 0.5 > calib.probability(1.0)

    obama, biden = shared("people", "obama.jpg"), shared("people", "biden.jpg")
    plain = runner.invoke(app, ["verify", str(obama), str(biden), "--json"])
    assert plain.exit_code == 0 and set(json.loads(plain.stdout)) == {"match", "distance", "threshold", "model"}
    result = runner.invoke(app, ["verify", str(obama), str(biden), "--json", "--calibration", str(out)])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"match", "distance", "threshold", "model", "probability"}
    assert data["threshold"] == calib.threshold and data["match"] is False and data["probability"] < 0.5

    wrong = replace(calib, model_id="someone_else").save(tmp_path / "wrong.json")
    result = runner.invoke(app, ["verify", str(obama), str(biden), "--calibration", str(wrong)])
    assert result.exit_code == ModelMismatchError.exit_code and "someone_else" in result.stderr
