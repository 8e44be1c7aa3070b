"""The README's annotated video frame: the singer named in his close-up, and the audience
after the hard cut, as new, unnamed tracks (``docs/video_annotated.png``).

Runs what a user runs, in fresh processes: ``faceprint enroll --video`` on the Hamilton clip,
then ``faceprint video --out`` with the defaults, and puts two frames of the annotated video
side by side (``--frames``, default 180 and 240: before and after the cut at frame 211).

Run: ``python tools/video_screenshot.py [--out docs/video_annotated.png] [--frames 180 240]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "video" / "face_recognition_short_hamilton_clip.mp4"


def cli(*args: object) -> None:
    code = "from faceprint.cli import main; main()"
    subprocess.run([sys.executable, "-c", code, *map(str, args)], check=True)


def main() -> None:
    import cv2
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "video_annotated.png")
    parser.add_argument("--frames", type=int, nargs="+", default=[180, 240])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db, video = Path(tmp) / "people.db", Path(tmp) / "annotated.mp4"
        cli("enroll", "--db", db, "singer", "--video", CLIP)
        cli("video", CLIP, "--db", db, "--out", video)
        cap = cv2.VideoCapture(str(video))
        frames, index = {}, 0
        while len(frames) < len(args.frames):
            ok, bgr = cap.read()
            if not ok:
                sys.exit(f"the annotated video has no frame {max(args.frames)}")
            if index in args.frames:
                cv2.putText(bgr, f"frame {index}", (8, bgr.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                            (255, 255, 255), 2, cv2.LINE_AA)
                frames[index] = bgr
            index += 1
        cap.release()
    cv2.imwrite(str(args.out), np.hstack([frames[i] for i in args.frames]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
