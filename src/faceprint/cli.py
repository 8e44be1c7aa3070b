"""``faceprint`` command line: a thin layer over the library.

Every command takes ``--json``. Failures print one line to stderr and exit non-zero
(``faceprint --debug ...`` prints the traceback too).
"""

from __future__ import annotations

import json
import math
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from .errors import FaceprintError
from .registry import DEFAULT_DETECTOR, DEFAULT_EMBEDDER
from .progress import progress_bar

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Face detection, embedding and verification on ONNX Runtime.")
_state = {"debug": False}


def _hide_flag_types() -> None:
    """Help lists a flag without a value type (Typer's Rich help shows ``<bool>`` on ``--json``,
    ``--help`` and every other flag, which take no value)."""
    try:
        from typer.core import TyperOption
    except ImportError:  # pragma: no cover - another Typer layout: its help is left as it is
        return
    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "_faceprint", False):
        return

    def display_type_rich(self: Any, ctx: Any) -> Any:
        return None if getattr(self, "is_flag", False) and not getattr(self, "count", False) else shown(self, ctx)

    display_type_rich._faceprint = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_hide_flag_types()

JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")
DetectorOpt = typer.Option(DEFAULT_DETECTOR, "--detector", help="Detector name (see `faceprint models`) or .onnx path.")
ModelOpt = typer.Option(DEFAULT_EMBEDDER, "--model", help="Embedder name (see `faceprint models`) or .onnx path.")


def positive_threshold(value: Optional[float]) -> Optional[float]:
    """A ``--threshold`` callback: a finite distance > 0, as the service accepts (``gt=0``)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"a distance threshold must be a number > 0, got {value:g}")
    return value
FlipOpt = typer.Option(False, "--flip", help="Test-time augmentation: average each face's embedding with its "
                                            "mirror image's (about 2x embedding time).")
JitterOpt = typer.Option(0, "--jitter", min=0, help="Test-time augmentation: also average N fixed jittered copies "
                                                   "of each face (about N+1 times the embedding time).")


def _show_own_warning(message: Any, category: Any, filename: str, *_a: Any, **_k: Any) -> None:
    """faceprint's own warnings as one line without a source path; a dependency's (pkg_resources'
    deprecation, Pillow's EXIF notes, scikit-learn's FutureWarnings) are dropped (``--debug`` shows them)."""
    if (Path(filename).resolve().is_relative_to(Path(__file__).resolve().parent)
            and not issubclass(category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning))):
        typer.echo(f"warning: {' '.join(str(message).split())}", err=True)


def _version(show: bool) -> None:
    if show:
        from . import __version__

        typer.echo(f"faceprint {__version__}")
        raise typer.Exit()


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors, and dependencies' warnings."),
          _show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                             help="Print the version and exit.")) -> None:
    _state["debug"] = debug
    if not debug:
        import warnings

        warnings.showwarning = _show_own_warning


#: Optional modules: ``{module: (PyPI package, {command: extra}, default extra)}`` for the message
#: a command prints when the base install lacks them.
OPTIONAL_MODULES: dict[str, tuple[str, dict[str, str], str]] = {
    "sklearn": ("scikit-learn", {"cluster": "collections", "train": "train"}, "eval"),
    "scipy": ("scipy", {"cluster": "collections"}, "eval"),
    "matplotlib": ("matplotlib", {"train": "train"}, "eval"),
    "torch": ("torch", {}, "train"),
    "fastapi": ("fastapi", {}, "service"),
    "uvicorn": ("uvicorn", {}, "service"),
    "multipart": ("python-multipart", {}, "service"),
    "prometheus_client": ("prometheus-client", {}, "service"),
    "usearch": ("usearch", {"cluster": "collections", "index": "collections"}, "scale"),
    "pymilvus": ("pymilvus", {}, "scale"),
    "milvus_lite": ("milvus-lite", {}, "scale"),
    "psycopg": ("psycopg", {}, "postgres"),
    "pgvector": ("pgvector", {}, "postgres"),
    "ray": ("ray", {}, "ray"),
}

#: Exit code when a command needs an optional extra that is not installed.
EXIT_MISSING_EXTRA = 8


def missing_extra_message(module: str | None, command: str | None) -> str | None:
    """``"<command> needs <package>: pip install 'faceprint[<extra>]'"`` for an optional module, else
    None; ``command`` is the command path after the program name (``"eval cluster"``)."""
    entry = OPTIONAL_MODULES.get((module or "").split(".")[0])
    if entry is None:
        return None
    package, by_command, default = entry
    extra = by_command.get((command or "").split(" ")[-1], default)
    who = f"`faceprint {command}`" if command else "this command"
    return f"{who} needs {package}, which the base install leaves out: pip install 'faceprint[{extra}]'"


def _command_name() -> str | None:
    """The running command's path after the program name (``"eval cluster"``), from the CLI
    framework's context (Typer >= 0.20 vendors click as ``typer._click``)."""
    import importlib

    for module in ("typer._click.globals", "click"):
        try:
            ctx = importlib.import_module(module).get_current_context(silent=True)
        except (ImportError, AttributeError):
            continue
        if ctx is not None:
            return " ".join(ctx.command_path.split(" ")[1:]) or None
    return None


def _run(fn: Callable[[], Any]) -> None:
    """Run a command body; map errors to one line on stderr and an exit code."""
    try:
        fn()
    except ModuleNotFoundError as exc:
        message = missing_extra_message(exc.name, _command_name())
        if message is None:
            _unexpected(exc)
        if _state["debug"]:
            traceback.print_exc()
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(EXIT_MISSING_EXTRA) from None
    except FaceprintError as exc:
        if _state["debug"]:
            traceback.print_exc()
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        raise typer.Exit(130) from None
    except Exception as exc:  # unexpected: still one line unless --debug
        _unexpected(exc)


def _unexpected(exc: BaseException) -> None:
    if _state["debug"]:
        traceback.print_exc()
    typer.echo(f"error: unexpected {type(exc).__name__}: {exc} (use --debug for a traceback)", err=True)
    raise typer.Exit(1) from None


def _emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=None) + "\n")


def _embedder_options(flip: bool, jitter: int = 0) -> dict[str, Any]:
    """Constructor options for ``create_embedder`` (only those set, so any backend accepts them)."""
    return {**({"flip": True} if flip else {}), **({"jitter": jitter} if jitter else {})}


def _pipeline(detector: str, model: str, calibration: Optional[Path] = None, flip: bool = False,
              jitter: int = 0) -> Any:
    from .pipeline import FacePipeline
    from .registry import create_detector, create_embedder

    embedder = create_embedder(model, **_embedder_options(flip, jitter))
    return FacePipeline(detector=create_detector(detector), embedder=embedder, calibration=calibration)


class _NoDetector:
    """Placeholder for commands that never detect (``embed --aligned``)."""

    def detect(self, image: Any) -> Any:  # pragma: no cover - never called
        raise RuntimeError("no detector configured")


@app.command()
def detect(paths: List[Path] = typer.Argument(..., metavar="IMAGES", help="Image files or folders (their images)."),
           detector: str = DetectorOpt, as_json: bool = JsonOpt) -> None:
    """Find faces: boxes, scores and 5 landmarks per face."""

    def body() -> None:
        from .image import expand_images, load_image
        from .registry import create_detector
        from .stages import prefetch

        images = expand_images(paths)
        det = create_detector(detector)
        records = []
        with progress_bar(len(images), "detect") as bar:
            task = bar.add_task("detect", total=len(images))
            for path, rgb in prefetch(images, lambda p: (p, load_image(p))):  # the next photo decodes meanwhile
                records.append({"image": str(path), "faces": det.detect(rgb).by_size().to_records()})
                bar.advance(task)
        if as_json:
            _emit(records)
            return
        for rec in records:
            typer.echo(f"{rec['image']}: {len(rec['faces'])} face(s)")
            for i, face in enumerate(rec["faces"]):
                box = ", ".join(f"{v:.0f}" for v in face["box"])
                typer.echo(f"  #{i} box=[{box}] score={face['score']:.3f}")

    _run(body)


@app.command()
def embed(paths: List[Path] = typer.Argument(..., metavar="IMAGES", help="Image files or folders (their images)."),
          model: str = ModelOpt, detector: str = DetectorOpt,
          aligned: bool = typer.Option(False, "--aligned", help="Inputs are aligned chips of the model's input size."),
          batch_size: int = typer.Option(32, "--batch-size", min=1, help="Faces per inference call."),
          threads: int = typer.Option(0, "--threads", min=0, help="Inference threads (0 = all cores)."),
          flip: bool = FlipOpt, jitter: int = JitterOpt, as_json: bool = JsonOpt) -> None:
    """Embed every face of every image (in input order)."""

    def body() -> None:
        from .image import expand_images
        from .registry import create_detector, create_embedder
        from .pipeline import FacePipeline

        images = expand_images(paths)
        embedder = create_embedder(model, batch_size=batch_size, threads=threads, **_embedder_options(flip, jitter))
        pipe = FacePipeline(detector=_NoDetector() if aligned else create_detector(detector), embedder=embedder)
        if aligned:
            vectors = pipe.embed_aligned(images)
            size = pipe.spec.input_size
            records = [{"image": str(p), "faces": [{"box": [0.0, 0.0, float(size), float(size)],
                                                     "embedding": [round(float(v), 7) for v in vectors.vectors[i]]}]}
                       for i, p in enumerate(images)]
        else:
            with progress_bar(len(images), "embed") as bar:
                task = bar.add_task("embed", total=len(images))
                results = pipe.embed_many(images, on_image=lambda _i: bar.advance(task))
            records = [{"image": str(p), "faces": [{"box": f["box"], "score": f["score"], "embedding": f["embedding"]}
                                                   for f in r.to_records()]}
                       for p, r in zip(images, results)]
        if as_json:
            _emit(records)
            return
        for rec in records:
            typer.echo(f"{rec['image']}: {len(rec['faces'])} face(s), model {pipe.spec.model_id} ({pipe.spec.dim}-d)")

    _run(body)


@app.command()
def verify(image_a: Path = typer.Argument(..., help="First image."),
           image_b: Path = typer.Argument(..., help="Second image."),
           model: str = ModelOpt, detector: str = DetectorOpt,
           face: int = typer.Option(0, "--face", min=0, help="Which face of both images (0 = largest); "
                                                         "--face-a / --face-b choose per image."),
           face_a: Optional[int] = typer.Option(None, "--face-a", min=0,
                                                help="Which face of IMAGE_A (default: --face)."),
           face_b: Optional[int] = typer.Option(None, "--face-b", min=0,
                                                help="Which face of IMAGE_B (default: --face)."),
           threshold: Optional[float] = typer.Option(None, "--threshold", callback=positive_threshold,
                                                     help="Override the model's distance threshold."),
           calibration: Optional[Path] = typer.Option(
               None, "--calibration",
               help="Calibration JSON from `faceprint calibrate`: its threshold, plus a match probability."),
           flip: bool = FlipOpt, jitter: int = JitterOpt, as_json: bool = JsonOpt) -> None:
    """Same person? Compares the largest face of each image (or the faces --face, --face-a, --face-b)."""

    def body() -> None:
        pipe = _pipeline(detector, model, calibration=calibration, flip=flip, jitter=jitter)
        result = pipe.verify(image_a, image_b, face=face if face_a is None else face_a, threshold=threshold,
                             face_b=face if face_b is None else face_b)
        probability = pipe.match_probability(result.distance)
        if as_json:
            data = result.to_dict()
            if probability is not None:
                data["probability"] = round(probability, 6)
            _emit(data)
            return
        verdict = "same person" if result.match else "different people"
        extra = "" if probability is None else f"; match probability {probability:.3f}"
        typer.echo(f"{verdict}: distance {result.distance:.4f} ({'<=' if result.match else '>'} threshold "
                   f"{result.threshold:g}, {result.metric}, model {result.model_id}){extra}")

    _run(body)


@app.command()
def models(as_json: bool = JsonOpt) -> None:
    """List detectors and embedders with their specs."""

    def body() -> None:
        from .registry import list_models

        listing = list_models()
        if as_json:
            _emit(listing)
            return
        for kind in ("detectors", "embedders", "landmarks"):
            typer.echo(f"{kind}:")
            for item in listing[kind]:
                star = " (default)" if item["default"] else ""
                typer.echo(f"  {item['name']}{star}: {item['summary']}")
                typer.echo(f"    licence: {item['licence']}")
                spec = item.get("spec")
                if spec:
                    typer.echo(f"    input {spec['input_size']}px, template {spec['template']}, {spec['dim']}-d, "
                               f"{spec['metric']}, threshold {spec['threshold']}")
                    if spec.get("thresholds"):
                        typer.echo(f"    calibrated thresholds: {_format_thresholds(spec['thresholds'])}")
                        if spec.get("thresholds_source"):
                            typer.echo(f"      (measured on {spec['thresholds_source']})")

    _run(body)


def _format_thresholds(thresholds: dict[str, float]) -> str:
    """``accuracy 0.6133, FAR 1e-2 0.5..., FAR 1e-3 0.4...`` (stricter FARs last)."""
    parts = [f"accuracy {thresholds['accuracy']:.4f}"] if "accuracy" in thresholds else []
    fars = sorted((k for k in thresholds if k.startswith("far_")), key=lambda k: -float(k[4:]))
    parts += [f"FAR {k[4:]} {thresholds[k]:.4f}" for k in fars]
    return ", ".join(parts)


eval_app = typer.Typer(no_args_is_help=True, help="Benchmark a model on labelled face pairs.")
app.add_typer(eval_app, name="eval")

PairsOpt = typer.Option(..., "--pairs", help="LFW pairs file (pairs.txt, pairsDevTrain.txt, pairsDevTest.txt) "
                                             "or a CSV 'path_a,path_b,same'.")
RootOpt = typer.Option(None, "--root", help="LFW image folder (<root>/<Name>/<Name>_0001.jpg); for a CSV, the "
                                            "folder its relative paths start from. Default: the pairs file's folder, or its images/ subfolder.")
ChunkOpt = typer.Option(512, "--chunk", min=1, help="Images per embed_many call (images stream through it).")


def _distances(pipe: Any, pairs: Any, chunk: int, choice: str = "centre") -> Any:
    from .evaluation.lfw import pair_distances

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
        from .evaluation.lfw import format_report, report
        from .evaluation.pairs import read_pairs

        pairs = read_pairs(pairs_file, root)
        pipe = _pipeline(detector, model, flip=flip, jitter=jitter)
        rep = report(_distances(pipe, pairs, chunk, face_choice), pairs, pipe.spec.model_id, detector,
                     pipe.spec.metric, pipe.threshold, flip=flip, jitter=jitter, face_choice=face_choice)
        if plot is not None:
            from .evaluation.plots import plot_roc_det

            plot_roc_det(rep.distances, rep.labels, plot, f"{rep.model_id} on {pairs_file.name}")
        if json_out is not None and str(json_out) == "-":
            _emit(rep.to_dict())
            return
        if json_out is not None:
            json_out.write_text(json.dumps(rep.to_dict(), indent=2) + "\n", encoding="utf-8")
        typer.echo(format_report(rep))
        for label, path in (("report", json_out), ("plot", plot)):
            if path is not None:
                typer.echo(f"wrote {label} to {path}")

    _run(body)


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
        from .evaluation.calibrate import calibrate as fit
        from .evaluation.pairs import read_pairs

        pairs = read_pairs(pairs_file, root)
        pipe = _pipeline(detector, model)
        dist = _distances(pipe, pairs, chunk)
        calib = fit(dist.distances, dist.labels, pipe.spec.model_id, pipe.spec.metric, far=far,
                    confidence=confidence, source=str(pairs_file))
        calib.save(out)
        if as_json:
            _emit(calib.to_dict())
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

    _run(body)


from . import cli_gallery  # noqa: E402,F401  (registers enroll, identify, people)
from . import cli_collections  # noqa: E402,F401  (registers index, cluster, people name, eval cluster)
from . import cli_training  # noqa: E402,F401  (registers commands)
from . import cli_service  # noqa: E402,F401  (registers serve and keys)
from . import cli_video  # noqa: E402,F401  (registers video)
from . import cli_info  # noqa: E402,F401  (registers info)


def _click_exceptions() -> Any:
    """The CLI framework's exception module (Typer >= 0.20 vendors click as ``typer._click``)."""
    try:
        from typer._click import exceptions
    except ImportError:  # older Typer on click
        from click import exceptions
    return exceptions


def main() -> None:
    """The ``faceprint`` entry point: usage errors (a bad value, an unknown option) are one line
    on stderr too, with click's usage exit code (2)."""
    exceptions = _click_exceptions()
    try:
        code = app(standalone_mode=False)
    except exceptions.NoArgsIsHelpError as exc:
        exc.show()
        code = exc.exit_code
    except exceptions.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        typer.echo(f"error: {' '.join(exc.format_message().split())}{hint}", err=True)
        code = exc.exit_code
    except exceptions.Abort:
        typer.echo("error: aborted", err=True)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
