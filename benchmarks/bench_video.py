"""Video recognition speed: faceprint's tracker pipeline vs face_recognition's per-frame loop.

Both read the same clip from disk (default: ``shared/data/video/face_recognition_short_hamilton_clip.mp4``,
640x360, 275 frames) in one run and name faces against the same people (the
``people/knn_examples/train`` photos):

- anchor: face_recognition's loop from its examples: every frame ``face_locations`` (HOG) +
  ``face_encodings`` + ``compare_faces``;
- faceprint: ``VideoRecognizer`` as ``faceprint video`` builds it (MTCNN every n-th frame,
  Kalman/IoU tracks between, each track embedded on a few of its best frames and re-checked
  every 15 frames, gallery identification, per-track voting, shot cuts), with and without
  drawing + writing the annotated video, without the identity checks (the behaviour before
  them), and variants.

fps = frames / wall time of the whole loop (decode included, model loading excluded); each
faceprint variant is run ``--repeat`` times, in rounds of every variant in turn, and the fastest
run kept (the anchor, ~2 minutes, runs once).
Run: ``python benchmarks/bench_video.py [--frames N] [--markdown]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import DATA, print_table  # noqa: E402

CLIP = DATA / "video" / "face_recognition_short_hamilton_clip.mp4"
KNOWN = DATA / "people" / "knn_examples" / "train"


def anchor_loop(clip: Path, frames: int) -> dict[str, Any]:
    import cv2
    import face_recognition

    known = [(p.parent.name, face_recognition.face_encodings(face_recognition.load_image_file(p)))
             for p in sorted(KNOWN.glob("*/*.jpg"))]
    names = [n for n, enc in known if enc]
    encodings = [enc[0] for _n, enc in known if enc]
    cap = cv2.VideoCapture(str(clip))
    n = faces = 0
    start = time.perf_counter()
    while n < frames:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        boxes = face_recognition.face_locations(rgb)
        for enc in face_recognition.face_encodings(rgb, boxes):
            face_recognition.compare_faces(encodings, enc, tolerance=0.6)
        n, faces = n + 1, faces + len(boxes)
    seconds = time.perf_counter() - start
    cap.release()
    return {"frames": n, "seconds": seconds, "note": f"{faces} faces found and encoded (every frame); {len(names)} known"}


def faceprint_loop(clip: Path, frames: int, gallery: Any, pipe: Any, out: Path | None, **options: Any) -> dict[str, Any]:
    from faceprint.video import FaceTracker
    from faceprint.video.annotate import draw_tracks
    from faceprint.video.identify import video_recognizer
    from faceprint.video.source import VideoSink, VideoSource

    if options.pop("iou_only_tracker", False):
        options["tracker"] = FaceTracker()  # a fresh one per run
    rec = video_recognizer(pipe, gallery, **options).load()
    tracks: set[int] = set()
    with VideoSource(clip) as src:
        sink = VideoSink(out, src.fps, src.size) if out is not None else None
        start = time.perf_counter()
        n = 0
        for frame in src.frames(frames):
            result = rec.process(frame.rgb, frame.index, frame.time_s)
            tracks.update(v.track_id for v in result.tracks)
            n += 1
            if sink is not None:
                sink.write(draw_tracks(frame.rgb, result.tracks, n / (time.perf_counter() - start)))
        seconds = time.perf_counter() - start
        if sink is not None:
            sink.close()
    s = rec.stats
    return {"frames": n, "seconds": seconds,
            "note": f"{len(tracks)} tracks; detector on {s['detections']} frames; {s['embeddings']} embeddings"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--frames", type=int, default=10 ** 9, help="stop after this many frames")
    parser.add_argument("--repeat", type=int, default=3, help="runs per faceprint variant (the fastest is kept: "
                                                               "the machine is shared)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table for the README")
    args = parser.parse_args()
    if not args.clip.exists():
        sys.exit(f"clip not found: {args.clip}")

    import faceprint
    from faceprint.gallery import Recognizer, open_gallery
    from faceprint.gallery.quality import PERMISSIVE
    from faceprint.video.blink import BlinkLiveness

    pipe = faceprint.FacePipeline()
    pipe.detector.load()
    gallery = open_gallery(":memory:", model_id=pipe.spec.model_id, metric=pipe.spec.metric)
    rec = Recognizer(pipe, gallery)
    for person in sorted(KNOWN.iterdir()):
        rec.enroll(person.name, sorted(person.glob("*.jpg")), gate=PERMISSIVE)
    faceprint_loop(args.clip, 10, gallery, pipe, None)  # warm up sessions and caches

    runs: list[tuple[str, dict[str, Any]]] = []
    runs.append(("face_recognition: HOG detect + encode every frame (anchor)", anchor_loop(args.clip, args.frames)))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "annotated.mp4"
        variants: list[tuple[str, Path | None, dict[str, Any]]] = [
            ("faceprint: detect every 3rd frame, track, embed best frames (default)", None, {}),
            ("faceprint: default without the identity checks (no shot cuts, re-checks, re-attach check)", None,
             {"shots": False, "recheck_frames": None, "appearance_jump": None, "iou_only_tracker": True}),
            ("faceprint: same + draw and write annotated mp4 (the `video` command)", out, {}),
            ("faceprint: same + blink liveness (68 landmarks every frame)", out,
             {"liveness": BlinkLiveness(blinks_required=10 ** 6)}),
            ("faceprint: detect every 2nd frame", None, {"detect_every": 2}),
            ("faceprint: detect every frame", None, {"detect_every": 1}),
        ]
        # rounds of every variant in turn, so a burst of load from other jobs hits all rows alike
        tries: list[list[dict[str, Any]]] = [[] for _ in variants]
        for _ in range(args.repeat):
            for k, (_label, path, options) in enumerate(variants):
                tries[k].append(faceprint_loop(args.clip, args.frames, gallery, pipe, path, **dict(options)))
        runs += [(label, min(t, key=lambda r: r["seconds"])) for (label, _, _), t in zip(variants, tries)]
    base = runs[0][1]["frames"] / runs[0][1]["seconds"]
    rows = []
    for label, r in runs:
        fps = r["frames"] / r["seconds"]
        rows.append((label, str(r["frames"]), f"{r['seconds']:.2f}", f"{fps:.1f}", f"{fps / base:.1f}x", r["note"]))
    print(f"clip: {args.clip.name}; 2-core machine shared with other jobs; fps include decoding")
    print_table(("loop", "frames", "seconds", "fps", "vs anchor", "note"), rows, args.markdown)


if __name__ == "__main__":
    main()
