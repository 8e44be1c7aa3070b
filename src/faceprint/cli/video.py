"""``faceprint video``: recognition on a video file, camera or stream, with tracking."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, List, Optional

import typer

from ..progress import progress_bar
from .common import DetectorOpt, ModelOpt, ThresholdOpt, app, emit, make_pipeline, open_db, run_command


def _liveness(blink: bool, head_turn: bool, antispoof: List[Path]) -> Any:
    from ..video.liveness import AllOf

    checks: list[Any] = []
    if blink:
        from ..video.blink import BlinkLiveness

        checks.append(BlinkLiveness())
    if head_turn:
        from ..video.headturn import HeadTurnLiveness

        checks.append(HeadTurnLiveness())
    if antispoof:
        from ..video.antispoof import AntiSpoofModel, PassiveLiveness

        checks.append(PassiveLiveness([AntiSpoofModel(p) for p in antispoof]))
    return AllOf(checks) if checks else None


def _open_gallery(db: str, pipe: Any) -> Any:
    from ..dburi import parse_db
    from ..errors import GalleryError

    local = parse_db(db).path
    if local is not None and not local.exists():
        raise GalleryError(f"gallery {db} does not exist (enroll people first: faceprint enroll --db {db} NAME ...)")
    return open_db(db, pipe)


def _summary(views: list[Any], frames: int, seconds: float, stats: dict[str, int]) -> list[str]:
    fps = frames / seconds if seconds > 0 else 0.0
    lines = [f"{frames} frames in {seconds:.2f} s: {fps:.1f} fps (detector on {stats['detections']} frames, "
             f"{stats['embeddings']} face embeddings, {stats['cuts']} shot cuts)"]
    for v in views:
        conf = f" {v.decision.confidence:.2f}" if v.decision.decided and v.decision.name else ""
        lines.append(f"  track #{v.track_id}: {v.label}{conf}, seen {v.first_time_s:.2f}-{v.last_seen_s:.2f} s, "
                     f"liveness {v.liveness.state}, ended: {v.end_reason}")
    return lines


@app.command()
def video(source: str = typer.Argument(..., help="Video file, camera index (0, 1, ...) or rtsp://, http:// URL."),
          db: str = typer.Option(..., "--db", help="Gallery database with the enrolled people."),
          out: Optional[Path] = typer.Option(None, "--out", help="Write the annotated video here (mp4v)."),
          events: Optional[Path] = typer.Option(None, "--json", help="Write JSON-lines events (appeared, "
                                                "identified, liveness, left) here; '-' = stdout."),
          detect_every: int = typer.Option(3, "--detect-every", min=1, help="Run the detector on every n-th frame; "
                                           "tracks follow their motion model between."),
          detect_scale: float = typer.Option(1.0, "--detect-scale", min=0.05, max=1.0,
                                             help="Downscale frames by this factor for detection."),
          max_embeddings: int = typer.Option(3, "--max-embeddings", min=1, help="Embeddings in a track's first "
                                             "stretch, before the slower re-checks."),
          recheck_every: int = typer.Option(15, "--recheck-every", min=1, help="Frames between re-checks of a "
                                            "track's identity (each embeds its best frame of the stretch)."),
          threshold: Optional[float] = ThresholdOpt,
          blink: bool = typer.Option(False, "--blink", help="Active liveness: a track is live after a blink. "
                                     "Uses dlib's 68-point landmarks (iBUG 300-W): not licensed for commercial use."),
          head_turn: bool = typer.Option(False, "--head-turn", help="Active liveness challenge: turn the head "
                                         "both ways."),
          antispoof: Optional[List[Path]] = typer.Option(None, "--antispoof", help="Passive liveness model "
                                                         "(.onnx, or MiniFASNet .pth with the train extra); repeatable."),
          require_live: bool = typer.Option(False, "--require-live", help="Identify a track only once it is live "
                                            "(needs --blink, --head-turn or --antispoof)."),
          max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Stop after this many frames."),
          model: str = ModelOpt, detector: str = DetectorOpt) -> None:
    """Track and identify faces in a video, camera or stream; draw them and log events.

    Prints the processing speed and one line per track. Without --blink/--head-turn/--antispoof,
    liveness is reported as "unavailable" (never as live).
    """

    def body() -> None:
        from ..video.annotate import draw_tracks
        from ..video.events import EventLog
        from ..video.identify import video_recognizer
        from ..video.source import VideoSink, VideoSource

        liveness = _liveness(blink, head_turn, antispoof or [])
        src = VideoSource(source).open()  # fail fast on a bad source, before loading models
        pipe = make_pipeline(detector, model)
        gallery = _open_gallery(db, pipe)
        rec = video_recognizer(pipe, gallery, threshold, liveness=liveness, detect_every=detect_every,
                               detect_scale=detect_scale, max_embeddings=max_embeddings, recheck_frames=recheck_every,
                               require_live=require_live).load()
        to_stdout = events is not None and str(events) == "-"
        log = EventLog(None if events is None or to_stdout else events)
        sink = VideoSink(out, src.fps, src.size) if out is not None else None
        ended: list[Any] = []
        frames, last_t, start = 0, 0.0, time.perf_counter()
        try:
            total = src.frame_count or 0
            with progress_bar(total, "video", unit="frame") as bar:
                task = bar.add_task("video", total=total or None)
                for frame in src.frames(max_frames):
                    result = rec.process(frame.rgb, frame.index, frame.time_s)
                    new = log.update(result)
                    ended += result.ended
                    frames, last_t = frames + 1, frame.time_s
                    if sink is not None:
                        sink.write(draw_tracks(frame.rgb, result.tracks, frames / (time.perf_counter() - start)))
                    if to_stdout:
                        for event in new:
                            emit(event)
                    bar.advance(task)
            final = rec.finish(last_t)
            new = log.close_tracks(final, max(frames - 1, 0))
            if to_stdout:
                for event in new:
                    emit(event)
        finally:
            seconds = time.perf_counter() - start
            src.close()
            log.close()
            gallery.close()
            if sink is not None:
                sink.close()
        lines = _summary(sorted(ended + final, key=lambda v: v.track_id), frames, seconds, rec.stats)
        stream = sys.stderr if to_stdout else sys.stdout
        for line in lines:
            print(line, file=stream)
        for label, path in (("video", out), ("events", None if to_stdout else events)):
            if path is not None:
                print(f"wrote {label} to {path}", file=stream)

    run_command(body)

