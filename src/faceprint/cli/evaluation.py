"""``faceprint eval lfw`` and ``faceprint calibrate``: accuracy and thresholds on labelled pairs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from ..progress import progress_bar
from .common import DetectorOpt, FlipOpt, JitterOpt, JsonOpt, ModelOpt, app, emit, eval_app, make_pipeline, run_command

PairsOpt = typer.Option(..., "--pairs", help="LFW pairs file (pairs.txt, pairsDevTrain.txt, pairsDevTest.txt) "
                                             "or a CSV 'path_a,path_b,same'.")
RootOpt = typer.Option(None, "--root", help="LFW image folder (<root>/<Name>/<Name>_0001.jpg); for a CSV, the "
                                            "folder its relative paths start from. Default: the pairs file's folder, or its images/ subfolder.")
ChunkOpt = typer.Option(512, "--chunk", min=1, help="Images per embed_many call (images stream through it).")


def _distances(pipe: Any, pairs: Any, chunk: int, choice: str = "centre") -> Any:
    from ..evaluation.lfw import pair_distances

    n_images = len(pairs.unique_images()[0])
    with progress_bar(n_images, "embed") as bar:
        task = bar.add_task("embed", total=n_images)
        return pair_distances(pipe, pairs, chunk, on_image=lambda _i: bar.advance(task), choice=choice)


@eval_app.command("lfw")
def eval_lfw(pairs_file: Path = PairsOpt, root: Optional[Path] = RootOpt,
             json_out: Optional[Path] = typer.Option(None, "--json", help="Write the JSON report here ('-' = stdout)."),
             plot: Optional[Path] = typer.Option(None, "--plot", help="Write a ROC + DET plot (PNG) here."),
             model: str = ModelOpt, detector: str = DetectorOpt, chunk: int = ChunkOpt,
             flip: bool = FlipOpt, jitter: int = JitterOpt,
             face_choice: str = typer.Option("centre", "--face-choice",
                                             help="centre: the protocol's face nearest the centre, with a centre "
                                                  "fallback; largest: `verify`'s face, a faceless pair decided different.")) -> None:
    """LFW-protocol verification benchmark: accuracy, AUC, EER, TAR@FAR, speed.

    View 2 (pairs.txt) reports 10-fold accuracy; View 1 and CSV files have one split, so the
    accuracy uses a threshold tuned on the same pairs and accuracy_at_default_threshold is given too.
    """

    def body() -> None:
        from ..evaluation.lfw import format_report, report
        from ..evaluation.pairs import read_pairs

        pairs = read_pairs(pairs_file, root)
        pipe = make_pipeline(detector, model, flip=flip, jitter=jitter)
        rep = report(_distances(pipe, pairs, chunk, face_choice), pairs, pipe.spec.model_id, detector,
                     pipe.spec.metric, pipe.threshold, flip=flip, jitter=jitter, face_choice=face_choice)
        if plot is not None:
            from ..evaluation.plots import plot_roc_det

            plot_roc_det(rep.distances, rep.labels, plot, f"{rep.model_id} on {pairs_file.name}")
        if json_out is not None and str(json_out) == "-":
            emit(rep.to_dict())
            return
        if json_out is not None:
            json_out.write_text(json.dumps(rep.to_dict(), indent=2) + "\n", encoding="utf-8")
        typer.echo(format_report(rep))
        for label, path in (("report", json_out), ("plot", plot)):
            if path is not None:
                typer.echo(f"wrote {label} to {path}")

    run_command(body)


@app.command()
def calibrate(pairs_file: Path = PairsOpt, root: Optional[Path] = RootOpt,
              far: float = typer.Option(1e-3, "--far", min=1e-9, max=1.0, help="Target false accept rate."),
              out: Path = typer.Option(..., "--out", help="Calibration JSON to write."),
              confidence: float = typer.Option(0.95, "--confidence", min=0.5, max=0.999,
                                               help="Level of the FAR and threshold intervals."),
              model: str = ModelOpt, detector: str = DetectorOpt, chunk: int = ChunkOpt,
              as_json: bool = JsonOpt) -> None:
    """Choose the threshold for a target FAR on labelled pairs and fit a match probability."""

    def body() -> None:
        from ..evaluation.calibrate import calibrate as fit
        from ..evaluation.pairs import read_pairs

        pairs = read_pairs(pairs_file, root)
        pipe = make_pipeline(detector, model)
        dist = _distances(pipe, pairs, chunk)
        calib = fit(dist.distances, dist.labels, pipe.spec.model_id, pipe.spec.metric, far=far,
                    confidence=confidence, source=str(pairs_file))
        calib.save(out)
        if as_json:
            emit(calib.to_dict())
            return
        pct = f"{calib.confidence:.0%}"
        typer.echo(f"threshold {calib.threshold:.4f} for FAR <= {far:g} (model {calib.model_id}, {calib.metric}); "
                   f"{pct} interval {calib.threshold_ci[0]:.4f}..{calib.threshold_ci[1]:.4f}")
        typer.echo(f"FAR {calib.far:.5f} ({calib.extras['false_accepts']} of {calib.n_impostor} impostor pairs; "
                   f"{pct} interval {calib.far_ci[0]:.5f}..{calib.far_ci[1]:.5f}), TAR {calib.tar:.4f} "
                   f"({calib.n_genuine} genuine pairs)")
        typer.echo(f"match probability 0.5 at distance {calib.boundary:.4f}; "
                   f"no face (fallback) in {dist.no_face} image(s)")
        if not calib.extras["resolvable"]:
            typer.echo(f"note: {calib.n_impostor} impostor pairs cannot resolve FAR {far:g} "
                       f"(need >= {int(round(1 / far))}); see the FAR interval", err=True)
        typer.echo(f"wrote {out}")

    run_command(body)
