"""``faceprint detect``, ``embed``, ``verify`` and ``models``: the pipeline on files."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..progress import progress_bar
from .common import (
    DetectorOpt,
    FlipOpt,
    JitterOpt,
    JsonOpt,
    ModelOpt,
    NoDetector,
    app,
    embedder_options,
    emit,
    make_pipeline,
    positive_threshold,
    run_command,
)


@app.command()
def detect(paths: List[Path] = typer.Argument(..., metavar="IMAGES", help="Image files or folders (their images)."),
           detector: str = DetectorOpt, as_json: bool = JsonOpt) -> None:
    """Find faces: boxes, scores and 5 landmarks per face."""

    def body() -> None:
        from ..image import expand_images, load_image
        from ..registry import create_detector
        from ..stages import prefetch

        images = expand_images(paths)
        det = create_detector(detector)
        records = []
        with progress_bar(len(images), "detect") as bar:
            task = bar.add_task("detect", total=len(images))
            for path, rgb in prefetch(images, lambda p: (p, load_image(p))):  # the next photo decodes meanwhile
                records.append({"image": str(path), "faces": det.detect(rgb).by_size().to_records()})
                bar.advance(task)
        if as_json:
            emit(records)
            return
        for rec in records:
            typer.echo(f"{rec['image']}: {len(rec['faces'])} face(s)")
            for i, face in enumerate(rec["faces"]):
                box = ", ".join(f"{v:.0f}" for v in face["box"])
                typer.echo(f"  #{i} box=[{box}] score={face['score']:.3f}")

    run_command(body)


@app.command()
def embed(paths: List[Path] = typer.Argument(..., metavar="IMAGES", help="Image files or folders (their images)."),
          model: str = ModelOpt, detector: str = DetectorOpt,
          aligned: bool = typer.Option(False, "--aligned", help="Inputs are aligned chips of the model's input size."),
          batch_size: int = typer.Option(32, "--batch-size", min=1, help="Faces per inference call."),
          threads: int = typer.Option(0, "--threads", min=0, help="Inference threads (0 = all cores)."),
          flip: bool = FlipOpt, jitter: int = JitterOpt, as_json: bool = JsonOpt) -> None:
    """Embed every face of every image (in input order)."""

    def body() -> None:
        from ..image import expand_images
        from ..pipeline import FacePipeline
        from ..registry import create_detector, create_embedder

        images = expand_images(paths)
        embedder = create_embedder(model, batch_size=batch_size, threads=threads, **embedder_options(flip, jitter))
        pipe = FacePipeline(detector=NoDetector() if aligned else create_detector(detector), embedder=embedder)
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
            emit(records)
            return
        for rec in records:
            typer.echo(f"{rec['image']}: {len(rec['faces'])} face(s), model {pipe.spec.model_id} ({pipe.spec.dim}-d)")

    run_command(body)


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
        pipe = make_pipeline(detector, model, calibration=calibration, flip=flip, jitter=jitter)
        result = pipe.verify(image_a, image_b, face=face if face_a is None else face_a, threshold=threshold,
                             face_b=face if face_b is None else face_b)
        probability = pipe.match_probability(result.distance)
        if as_json:
            data = result.to_dict()
            if probability is not None:
                data["probability"] = round(probability, 6)
            emit(data)
            return
        verdict = "same person" if result.match else "different people"
        extra = "" if probability is None else f"; match probability {probability:.3f}"
        typer.echo(f"{verdict}: distance {result.distance:.4f} ({'<=' if result.match else '>'} threshold "
                   f"{result.threshold:g}, {result.metric}, model {result.model_id}){extra}")

    run_command(body)


@app.command()
def models(as_json: bool = JsonOpt) -> None:
    """List detectors and embedders with their specs."""

    def body() -> None:
        from ..registry import list_models

        listing = list_models()
        if as_json:
            emit(listing)
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

    run_command(body)


def _format_thresholds(thresholds: dict[str, float]) -> str:
    """``accuracy 0.6133, FAR 1e-2 0.5..., FAR 1e-3 0.4...`` (stricter FARs last)."""
    parts = [f"accuracy {thresholds['accuracy']:.4f}"] if "accuracy" in thresholds else []
    fars = sorted((k for k in thresholds if k.startswith("far_")), key=lambda k: -float(k[4:]))
    parts += [f"FAR {k[4:]} {thresholds[k]:.4f}" for k in fars]
    return ", ".join(parts)
