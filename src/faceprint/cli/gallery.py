"""Gallery commands: ``faceprint enroll``, ``faceprint identify`` and the ``faceprint people`` group.

``people_app`` is a Typer group other modules can extend (``@people_app.command(...)``);
its ``--db`` is available to subcommands as :func:`people_db`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from ..errors import ConfigError, EnrollmentError
from ..gallery.base import DEFAULT_TOP_K
from ..gallery.quality import QualityGate
from ..gallery.recognizer import ENROLL_JITTER
from ..progress import paused, progress_bar
from .common import (
    DbOpt,
    DetectorOpt,
    FlipOpt,
    JsonOpt,
    ModelOpt,
    ThresholdOpt,
    app,
    emit,
    make_pipeline,
    open_db,
    people_app,
    people_db,
    require_db,
    run_command,
)

TopKOpt = typer.Option(DEFAULT_TOP_K, "--top-k", min=1, help="Candidates listed per face.")


#: The gate's defaults, shared with the library and the service (the options below start from them).
GATE = QualityGate()


def _gate(min_face: float, min_score: float, min_blur: float, allow_multiple: bool) -> Any:
    return QualityGate(min_face_px=min_face, min_score=min_score, min_blur=min_blur, single_face=not allow_multiple)


def _print_report(rep: Any) -> None:
    if rep.already_enrolled:
        typer.echo(f"already enrolled {rep.name}: {len(rep.rejected)} photo(s) in the gallery, nothing new")
        sys.stdout.flush()
        return
    status = "enrolled" if rep.ok else "nothing enrolled for"
    typer.echo(f"{status} {rep.name}: {len(rep.enrolled)} photo(s), {len(rep.rejected)} rejected")
    for src, box, n in rep.taken:
        typer.echo(f"  {src}: {n} faces, took the clear subject at [{', '.join(f'{v:.0f}' for v in box)}]")
    for src, reason in rep.rejected:
        typer.echo(f"  rejected {src}: {reason}")
    sys.stdout.flush()


@app.command()
def enroll(name: Optional[str] = typer.Argument(None, help="Person to enroll (omit with --from-folders)."),
           images: Optional[List[Path]] = typer.Argument(None, help="Photos of that person (one face each)."),
           db: str = DbOpt,
           from_folders: Optional[Path] = typer.Option(None, "--from-folders",
                                                       help="Enroll DIR/<name>/<photos> for every sub-folder."),
           keep_crops: bool = typer.Option(False, "--keep-crops", help="Store aligned face crops (for reindex)."),
           min_face: float = typer.Option(GATE.min_face_px, "--min-face", min=0,
                                          help="Minimum face box side in pixels."),
           min_score: float = typer.Option(GATE.min_score, "--min-score", min=0, max=1,
                                           help="Minimum detection score."),
           min_blur: float = typer.Option(GATE.min_blur, "--min-blur", min=0,
                                          help="Minimum sharpness of the aligned chip (0 = off)."),
           allow_multiple: bool = typer.Option(False, "--allow-multiple",
                                               help="Enroll the largest face of a photo with several faces even when "
                                                    "it is not clearly the subject."),
           video: Optional[Path] = typer.Option(None, "--video", help="Enroll NAME from the best-quality frames "
                                                "of the main face track of this video."),
           video_frames: int = typer.Option(5, "--video-frames", min=1, help="Frames taken from --video."),
           jitter: int = typer.Option(ENROLL_JITTER, "--jitter", min=0,
                                      help="Jittered views averaged into each enrolled vector (0 = plain, fastest)."),
           model: str = ModelOpt, detector: str = DetectorOpt, flip: bool = FlipOpt, as_json: bool = JsonOpt) -> None:
    """Enroll one person's photos, or every DIR/<name>/ folder with --from-folders.

    Photos failing the quality gate (one face or a clear subject, size, detection score,
    sharpness) or already enrolled are reported, not stored. Each person is one transaction.
    """

    def body() -> None:
        from ..gallery import Recognizer
        from ..gallery.recognizer import person_folders

        if video is not None and (name is None or images or from_folders is not None):
            raise ConfigError("--video takes NAME and no IMAGE or --from-folders")
        if from_folders is None and video is None and (name is None or not images):
            raise ConfigError("give NAME and at least one IMAGE, or --from-folders DIR")
        if from_folders is not None and name is not None:
            raise ConfigError("give either NAME IMAGE... or --from-folders DIR, not both")
        pipe = make_pipeline(detector, model, flip=flip)
        names: Optional[list[str]] = None
        if video is not None:
            crops = _video_frames(video, pipe.detector, video_frames)
            jobs: list[tuple[Any, list[Any]]] = [(name, [c.rgb for c in crops])]
            names = [c.source(video) for c in crops]
        else:
            jobs = person_folders(from_folders) if from_folders is not None else [(name, list(images or []))]
        gallery = open_db(db, pipe)
        rec = Recognizer(pipe, gallery, gate=_gate(min_face, min_score, min_blur, allow_multiple), enroll_jitter=jitter)
        reports = []
        total = sum(len(files) for _n, files in jobs)
        try:
            with progress_bar(total, "enroll") as bar:
                task = bar.add_task("enroll", total=total)
                for person, files in jobs:
                    reports.append(rec.enroll(person, files, keep_crops=keep_crops, sources=names,
                                              on_image=lambda _i: bar.advance(task)))
                    if not as_json:  # each person's report once committed, off the bar's line
                        with paused(bar):
                            _print_report(reports[-1])
        finally:
            gallery.close()
        if as_json:
            emit([r.to_dict() for r in reports])
        if not any(r.ok for r in reports):
            if all(r.already_enrolled for r in reports):
                if not as_json:
                    typer.echo("already enrolled: every photo is in the gallery; nothing new")
                return
            raise EnrollmentError("no photo passed the quality gate; nothing was enrolled")

    run_command(body)


def _video_frames(video: Path, detector: Any, n: int) -> list[Any]:
    """The best ``n`` frames of the video's main track, with a progress bar over its frames."""
    from ..video.enroll import best_track_frames
    from ..video.source import VideoSource

    with VideoSource(video) as source:
        total = source.frame_count or 0
    with progress_bar(total, f"reading {video.name}", unit="frame") as bar:
        task = bar.add_task("read", total=total or None)
        return best_track_frames(video, detector, n=n, on_frame=lambda _i: bar.advance(task))


@app.command()
def identify(images: List[Path] = typer.Argument(..., help="Photos (or folders of them) to identify, every face "
                                                       "in each."),
             db: Optional[str] = typer.Option(None, "--db", help="Gallery database to search."),
             known: Optional[Path] = typer.Option(None, "--known", help="No database: enroll DIR/<name>/ "
                                                  "folders (or DIR/<name>.jpg files) in memory and print file,name CSV."),
             threshold: Optional[float] = ThresholdOpt, top_k: int = TopKOpt,
             model: str = ModelOpt, detector: str = DetectorOpt, flip: bool = FlipOpt, as_json: bool = JsonOpt) -> None:
    """Who is in each photo? Every face gets a name, or null/unknown_person when nobody matches."""

    def body() -> None:
        from ..gallery import Recognizer

        if (db is None) == (known is None):
            raise ConfigError("give exactly one of --db PATH or --known DIR")
        from ..collections.store import indexed_results
        from ..gallery.recognizer import known_people
        from ..image import expand_images

        if db is not None:
            require_db(db)
        photos = expand_images(images)
        pipe = make_pipeline(detector, model, flip=flip)
        gallery = open_db(db if db is not None else ":memory:", pipe)
        rec = Recognizer(pipe, gallery, threshold=threshold)
        try:
            if known is not None:
                for person, files in known_people(known):
                    rec.enroll(person, files, dedupe=False)
            records = []
            indexed = {} if db is None or flip else indexed_results(db, photos, pipe.spec)
            with progress_bar(len(photos), "identify") as bar:
                task = bar.add_task("identify", total=len(photos))
                for path in photos:
                    found = (rec.identify(path, top_k=top_k) if str(path) not in indexed
                             else rec.identify_faces(*indexed[str(path)], top_k=top_k))
                    records.append({"image": str(path), "faces": [f.to_record() for f in found]})
                    bar.advance(task)
        finally:
            gallery.close()
        if as_json:
            emit(records)
        elif known is not None:
            for rec_ in records:
                names = [f["name"] or "unknown_person" for f in rec_["faces"]] or ["no_persons_found"]
                for person in names:
                    typer.echo(f"{rec_['image']},{person}")
        else:
            for rec_ in records:
                typer.echo(f"{rec_['image']}: {len(rec_['faces'])} face(s)")
                for face in rec_["faces"]:
                    box = ", ".join(f"{v:.0f}" for v in face["box"])
                    dist = "-" if face["distance"] is None else f"{face['distance']:.3f}"
                    typer.echo(f"  [{box}] {face['name'] or 'unknown'} (distance {dist})")

    run_command(body)


@app.command()
def reindex(db: str = DbOpt, out: str = typer.Option(..., "--out", help="New gallery to write (must not hold people yet)."),
            model: str = ModelOpt, detector: str = DetectorOpt, flip: bool = FlipOpt, as_json: bool = JsonOpt) -> None:
    """Re-embed a gallery with another model (or --flip) into a new gallery, from stored crops
    (enroll --keep-crops) or else the source photos. The old gallery is left untouched."""

    def body() -> None:
        from ..gallery.reindex import reindex as run

        pipe = make_pipeline(detector, model, flip=flip)
        with open_db(db) as src, open_db(out, pipe) as dst:
            if len(dst):
                raise ConfigError(f"{out} already holds {len(dst)} people; reindex into a new gallery")
            report = run(src, pipe, dst)
        if as_json:
            emit(report.to_dict())
            return
        typer.echo(f"reindexed {report.people} people: {report.reembedded['crop']} from crops, "
                   f"{report.reembedded['photo']} from photos; {len(report.skipped)} skipped")
        for person, why in report.skipped:
            typer.echo(f"  skipped {person}: {why}")

    run_command(body)


@people_app.command("list")
def people_list(as_json: bool = JsonOpt) -> None:
    """Every enrolled person with their number of samples."""

    def body() -> None:
        with people_db() as g:  # --json lists each person's sources, as `show` does
            people = [g.person(p.name) for p in g.people()] if as_json else g.people()
        if as_json:
            emit([p.to_dict() for p in people])
            return
        for p in people:
            typer.echo(f"{p.name}\t{p.samples} sample(s)")

    run_command(body)


@people_app.command("show")
def people_show(name: str = typer.Argument(...), as_json: bool = JsonOpt) -> None:
    """One person: samples, metadata, the photos they came from."""

    def body() -> None:
        with people_db() as g:
            p = g.person(name)
        if as_json:
            emit(p.to_dict())
            return
        typer.echo(f"{p.name}: {p.samples} sample(s)")
        if p.metadata:
            typer.echo(f"  metadata: {p.metadata}")
        for src in p.sources:
            typer.echo(f"  {src}")

    run_command(body)


def _edit(action: str, fn: Any, as_json: bool, create: bool = False) -> None:
    def body() -> None:
        with people_db(create) as g:
            result = fn(g)
        if as_json:
            emit({"action": action, "result": result})
        else:
            typer.echo(f"{action}: {result}")

    run_command(body)


@people_app.command("rename")
def people_rename(old: str = typer.Argument(...), new: str = typer.Argument(...), as_json: bool = JsonOpt) -> None:
    """Rename a person."""
    _edit("renamed", lambda g: (g.rename(old, new), f"{old} -> {new}")[1], as_json)


@people_app.command("merge")
def people_merge(src: str = typer.Argument(..., help="Person merged away."),
                 dst: str = typer.Argument(..., help="Person kept."), as_json: bool = JsonOpt) -> None:
    """Move every sample of A into B and delete A."""
    _edit("merged", lambda g: f"{g.merge(src, dst)} sample(s) of {src} into {dst}", as_json)


@people_app.command("remove")
def people_remove(name: str = typer.Argument(...), as_json: bool = JsonOpt) -> None:
    """Delete a person with every vector and crop."""
    _edit("removed", lambda g: f"{name} ({g.remove(name)} sample(s))", as_json)


@people_app.command("cohort")
def people_cohort(images: List[Path] = typer.Argument(..., help="Photos of people who will never be enrolled."),
                  model: str = ModelOpt, detector: str = DetectorOpt, flip: bool = FlipOpt,
                  as_json: bool = JsonOpt) -> None:
    """Add every face of these photos to the cohort used to reject strangers more reliably."""

    def body() -> None:
        from ..gallery import Recognizer

        pipe = make_pipeline(detector, model, flip=flip)
        with people_db(create=True) as g:
            n = Recognizer(pipe, g).add_cohort(images)
        emit({"action": "cohort", "result": n}) if as_json else typer.echo(f"added {n} cohort face(s)")

    run_command(body)


@people_app.command("export")
def people_export(file: Path = typer.Argument(..., help="Export file (.npz) to write."), as_json: bool = JsonOpt) -> None:
    """Write every person and vector to a portable file."""
    _edit("exported", lambda g: f"{g.export(file)} sample(s) to {file}", as_json)


@people_app.command("import")
def people_import(file: Path = typer.Argument(..., help="Export file to read."), as_json: bool = JsonOpt) -> None:
    """Add the people of an export file (fails, importing nothing, if a name exists)."""
    _edit("imported", lambda g: f"{g.import_(file)} sample(s) from {file}", as_json, create=True)
