"""Identification in video, against hand labels: per clip the tracks named correctly, named
wrongly and left unnamed, named tracks living across a shot cut, and the events logged.

Clips: the shared Hamilton clip (640x360, 275 frames, 3 hard cuts), the facenet-pytorch clip
(1920x1080, 105 frames, pedestrians) and the two joined (the second resized to 640x360).
Labels: ``tests/data/video_labels.json`` (who is who per shot, by looking at frames).

The singer is enrolled the way a user would, ``faceprint enroll --video`` in a fresh process,
from a clip of the Hamilton frames 82-145 only (the first half of his close-up shot); those
frames are not scored, so the singer is named on frames he was not enrolled from (146-210 and
the far shot 0-19). The five people of ``people/knn_examples/train`` are enrolled from their
photos (``faceprint enroll --from-folders``): among them Barack Obama (in the Hamilton audience) and Alex
Lacamoire (the pianist in profile); nobody in the facenet clip is enrolled.

Rows: ``default`` is ``faceprint video``'s recognizer (``video_recognizer`` with the defaults);
``checks off`` is the same with no shot cuts, no re-checks (names rest on the first 3
embeddings) and no appearance check on re-attachment: the behaviour before these checks.
Events come from ``faceprint video --json`` run in a fresh process with the defaults.
The cut detector's threshold was chosen on the Hamilton clip; the facenet and joined rows are
the held-out check.

Run: ``python benchmarks/bench_video_identity.py [--markdown]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import DATA, print_table  # noqa: E402

LABELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "video_labels.json"
HAMILTON = DATA / "video" / "face_recognition_short_hamilton_clip.mp4"
FACENET = DATA / "video" / "facenet_pytorch_video.mp4"
KNOWN = DATA / "people" / "knn_examples" / "train"
ENROLLED = {"singer": "singer", "Barack Obama": "obama", "Alex Lacamoire": "alex_lacamoire"}  # label -> gallery name
ENROLL_FRAMES = (82, 146)  # the singer's close-up, first half: enrolled from, never scored
SIZE = (640, 360)


def cli(*args: Any) -> str:
    """Run ``faceprint ARGS`` in a fresh process (the user's path); stdout."""
    code = "from faceprint.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"faceprint {' '.join(map(str, args))} failed: {done.stderr.strip()}")
    return done.stdout


def run_views(clip: Path, pipe: Any, gallery: Any, **options: Any) -> list[tuple[int, list[Any]]]:
    from faceprint.video.identify import video_recognizer
    from faceprint.video.source import VideoSource

    rec = video_recognizer(pipe, gallery, **options).load()
    frames = []
    with VideoSource(clip) as src:
        for frame in src.frames():
            frames.append((frame.index, rec.process(frame.rgb, frame.index, frame.time_s).tracks))
    return frames


def event_counts(clip: Path, db: Path, tmp: Path) -> tuple[str, list[dict[str, Any]]]:
    path = tmp / f"{clip.stem}.jsonl"
    cli("video", clip, "--db", db, "--json", path)
    events = [json.loads(line) for line in path.read_text().splitlines()]
    kinds = collections.Counter(e["event"] for e in events)
    ends = collections.Counter(e["reason"] for e in events if e["event"] == "left")
    dropped = sum(1 for e in events if e["event"] == "identified" and e.get("reason"))
    text = (f"appeared {kinds['appeared']}, identified {kinds['identified']} ({dropped} with a reason), left "
            f"{kinds['left']} ({', '.join(f'{k} {v}' for k, v in sorted(ends.items()))})")
    return text, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    for path in (HAMILTON, FACENET, LABELS):
        if not path.exists():
            sys.exit(f"not found: {path}")

    import faceprint
    from faceprint.gallery import open_gallery
    from faceprint.video import FaceTracker
    from faceprint.video.evaluate import clip_shots, score_views
    from faceprint.video.synth import write_clip

    labels = json.loads(LABELS.read_text())["clips"]
    ham_labels, fn_labels = labels[HAMILTON.name], labels[FACENET.name]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        enroll_clip, joined = tmp / "enroll.mp4", tmp / "joined.mp4"
        write_clip([(HAMILTON, *ENROLL_FRAMES)], enroll_clip)
        n_ham, _ = write_clip([(HAMILTON, 0, None), (FACENET, 0, None)], joined, size=SIZE)
        db = tmp / "people.db"
        cli("enroll", "--db", db, "singer", "--video", enroll_clip)
        cli("enroll", "--db", db, "--from-folders", KNOWN)

        ham_shots = clip_shots(ham_labels)
        fn_scale = SIZE[0] / fn_labels["size"][0]
        clips = [
            ("hamilton", HAMILTON, ham_shots),
            ("facenet", FACENET, clip_shots(fn_labels)),
            ("joined", joined, ham_shots + clip_shots(fn_labels, offset=n_ham, scale=fn_scale)),
        ]

        def scored(index: int) -> bool:
            return not ENROLL_FRAMES[0] <= index < ENROLL_FRAMES[1]

        pipe = faceprint.FacePipeline()
        gallery = open_gallery(db)
        rows, events_rows, junction = [], [], []
        settings = [("default", {}),
                    ("checks off", {"shots": False, "recheck_frames": None, "appearance_jump": None,
                                    "tracker": FaceTracker()})]
        for name, clip, shots in clips:
            for setting, options in settings:
                result = score_views(run_views(clip, pipe, gallery, **options), shots, ENROLLED,
                                     scored if name != "facenet" else None)
                share = ", ".join(f"{ENROLLED[who]} {v:.0%}" for who, v in result["enrolled frames named"].items())
                rows.append((name, setting, str(result["tracks"]), str(result["named correctly"]),
                             str(result["named wrongly"]), str(result["unnamed"]),
                             str(result["named across a cut"]), str(result["frames named wrongly"]),
                             share or "-"))
            text, events = event_counts(clip, db, tmp)
            events_rows.append((name, text))
            if name == "joined":
                junction = [e for e in events if e["frame"] >= n_ham and e["name"] is not None]
        gallery.close()
    print("singer enrolled with `faceprint enroll --video` from Hamilton frames 82-145 (not scored); "
          "knn_examples/train people from their photos")
    print_table(("clip", "setting", "tracks", "named correctly", "named wrongly", "unnamed", "named across a cut",
                 "face-frames named wrongly", "enrolled people's face-frames named"), rows, args.markdown)
    print()
    print_table(("clip", "events of `faceprint video --json` (defaults)"), events_rows, args.markdown)
    print(f"\njoined clip: {len(junction)} events with a name after the junction (frame {n_ham})")


if __name__ == "__main__":
    main()
