"""``faceprint`` command line: a thin layer over the library.

Every command takes ``--json``. Failures print one line to stderr and exit non-zero
(``faceprint --debug ...`` prints the traceback too).
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from .errors import FaceprintError
from .progress import progress_bar

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Face detection, embedding and verification on ONNX Runtime.")
_state = {"debug": False}

JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")
DetectorOpt = typer.Option("mtcnn", "--detector", help="Detector name (see `faceprint models`) or .onnx path.")
ModelOpt = typer.Option("dlib_resnet", "--model", help="Embedder name (see `faceprint models`) or .onnx path.")


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")) -> None:
    _state["debug"] = debug


def _run(fn: Callable[[], Any]) -> None:
    """Run a command body; map errors to one line on stderr and an exit code."""
    try:
        fn()
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
        if _state["debug"]:
            traceback.print_exc()
        typer.echo(f"error: unexpected {type(exc).__name__}: {exc} (use --debug for a traceback)", err=True)
        raise typer.Exit(1) from None


def _emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=None) + "\n")


def _pipeline(detector: str, model: str, need_detector: bool = True) -> Any:
    from .pipeline import FacePipeline
    from .registry import create_detector, create_embedder

    embedder = create_embedder(model)
    det = create_detector(detector) if need_detector else _NoDetector()
    return FacePipeline(detector=det, embedder=embedder)


class _NoDetector:
    """Placeholder for commands that never detect (``embed --aligned``)."""

    def detect(self, image: Any) -> Any:  # pragma: no cover - never called
        raise RuntimeError("no detector configured")


@app.command()
def detect(images: List[Path] = typer.Argument(..., help="Image files."),
           detector: str = DetectorOpt, as_json: bool = JsonOpt) -> None:
    """Find faces: boxes, scores and 5 landmarks per face."""

    def body() -> None:
        from .registry import create_detector

        det = create_detector(detector)
        records = []
        with progress_bar(len(images), "detect") as bar:
            task = bar.add_task("detect", total=len(images))
            for path in images:
                records.append({"image": str(path), "faces": det.detect(path).by_size().to_records()})
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
def embed(images: List[Path] = typer.Argument(..., help="Image files."),
          model: str = ModelOpt, detector: str = DetectorOpt,
          aligned: bool = typer.Option(False, "--aligned", help="Inputs are aligned chips of the model's input size."),
          batch_size: int = typer.Option(32, "--batch-size", min=1, help="Faces per inference call."),
          threads: int = typer.Option(0, "--threads", min=0, help="Inference threads (0 = all cores)."),
          as_json: bool = JsonOpt) -> None:
    """Embed every face of every image (in input order)."""

    def body() -> None:
        from .registry import create_detector, create_embedder
        from .pipeline import FacePipeline

        embedder = create_embedder(model, batch_size=batch_size, threads=threads)
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
           face: int = typer.Option(0, "--face", min=0, help="Which face of each image (0 = largest)."),
           threshold: Optional[float] = typer.Option(None, "--threshold", help="Override the model's threshold."),
           as_json: bool = JsonOpt) -> None:
    """Same person? Compares the largest face of each image (or face --face)."""

    def body() -> None:
        pipe = _pipeline(detector, model)
        result = pipe.verify(image_a, image_b, face=face, threshold=threshold)
        if as_json:
            _emit(result.to_dict())
            return
        verdict = "same person" if result.match else "different people"
        typer.echo(f"{verdict}: distance {result.distance:.4f} ({'<=' if result.match else '>'} threshold "
                   f"{result.threshold:g}, {result.metric}, model {result.model_id})")

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
        for kind in ("detectors", "embedders"):
            typer.echo(f"{kind}:")
            for item in listing[kind]:
                star = " (default)" if item["default"] else ""
                typer.echo(f"  {item['name']}{star}: {item['summary']}")
                spec = item.get("spec")
                if spec:
                    typer.echo(f"    input {spec['input_size']}px, template {spec['template']}, {spec['dim']}-d, "
                               f"{spec['metric']}, threshold {spec['threshold']}")

    _run(body)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
