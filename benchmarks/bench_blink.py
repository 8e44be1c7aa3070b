"""Blink liveness: two hand-annotated real clips, synthesised blinks, stills and replay attacks.

How the clips are made (:mod:`faceprint.video.synth`): each real photo is cut to a 640x480
webcam-like frame with the face 200 px wide; a clip repeats it for 90 frames (3 s at 30 fps)
with a random 1-pixel shake, and at frames 15, 45 and 75 both eyes are painted shut for
4 frames (~130 ms, a normal blink): the eye regions from dlib's 68 landmarks are filled with
skin colour sampled under the eye and crossed by a dark lash line. Still clips repeat the
photo unchanged (a printed photo on a stand) or with a 2-pixel shake (held in a hand).

**Replay attack** (made here, :func:`replay_clip`): the same still frame shown as a held-up
phone would show it, 90 frames in which the photo plane turns (yaw up to 12 deg, pitch up to
8 deg, roll up to 4 deg, slow sinusoids of different periods), drifts up to 25 px and moves
5% nearer and farther (a perspective warp per frame, ``cv2.warpPerspective`` with the plane's
homography ``K (R + (I - R) e3 e3^T) K^-1``, turning about its centre, plus the shift, dark
grey beyond the photo's edge), with 1-px hand tremor. No eye ever closes, so any
"live" is a false accept.

**Real clips**, looked at by hand (``benchmarks/blink_annotations.json``, written from the
enlarged eye crops that ``--eye-crops DIR`` dumps: one PNG sheet per track, every observed
frame): ``video/facenet_pytorch_video.mp4`` (105 frames, 1920x1080, 25 fps, people walking
towards the camera; faces 40-97 px, eyes 6-21 px) and
``video/face_recognition_short_hamilton_clip.mp4`` (275 frames, 640x360). Neither holds a
blink a person can confirm. Facenet: the boy in front, the red-haired man and the
white-haired woman look down while walking (lids lowered: a blink can't be told from the
downcast eye), with open eyes at 51-79 (boy) and 24-29 (red-haired man); the man with
glasses has open eyes in every frame; the rest are too small. Hamilton: frames 4-11
frontal with the eyes open; 21-44 a profile after a cut; the singer's close-up (84-210) has
his eyes closed in the first frames after the cut at 82 (82-85: the end of a blink or a look
down, with no open eye before it in the shot) and open in every frame from 87; from 213 a
smiling audience in three-quarter and profile view whose eyes are slits in every frame.
So every blink reported on these clips is a false one. The eye gate's limits
(:class:`faceprint.video.blink.EyeGate`) were chosen on the synthesised clips and the
facenet clip; the Hamilton clip is held out.

The first rows are the user's path: ``faceprint video CLIP --blink --db DB --json -`` in a
fresh process (a one-person gallery), tracks whose liveness became "live". Then every blink
the check counts on all tracks (``blinks_required`` unbounded), scored against the
annotation, with the gate and with it off (any frame's EAR counts, as before the gate).

The recognizer runs as in ``faceprint video --blink`` (MTCNN every 3rd frame, tracking, dlib
68-point EAR on every frame whose eyes pass the gate; the 68-point model is trained on iBUG
300-W and is not for commercial use). Run: ``python benchmarks/bench_blink.py [--markdown]
[--eye-crops DIR] [--tune] [--face-sizes 100,130,200]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import DATA, print_table  # noqa: E402
from bench_video_identity import cli  # noqa: E402

BLINKS = (15, 45, 75)
PHOTOS = sorted((DATA / "people" / "knn_examples" / "train").glob("*/*.jpg")) + [
    DATA / "people" / "obama.jpg", DATA / "people" / "biden.jpg"] + sorted(
    (DATA / "people" / "facenet_pytorch" / "test_images").glob("*/*.jpg"))
ANNOTATIONS = Path(__file__).with_name("blink_annotations.json")
REAL = (("facenet_pytorch_video.mp4", "tuning"), ("face_recognition_short_hamilton_clip.mp4", "held out"))
SHORT = {"facenet_pytorch_video.mp4": "facenet", "face_recognition_short_hamilton_clip.mp4": "Hamilton"}
INF = float("inf")


def open_gate() -> Any:
    """A gate that reads every frame (the check as it was before the gate)."""
    from faceprint.video.blink import EyeGate

    return EyeGate(max_yaw=INF, pitch_range=(-INF, INF), min_eye_px=1e-9, max_eye_offset=INF)


class _Recording:
    """Wraps a :class:`BlinkLiveness`; keeps each observation (track, time, box, 5 and 68
    points, why the gate refused it, whether it completed a blink) for :func:`eye_crops` and
    :func:`replay`."""

    def __init__(self, check: Any) -> None:
        self.check, self.name, self.rows = check, check.name, []

    def observe(self, track_id: int, rgb: np.ndarray, xyxy: np.ndarray, landmarks: np.ndarray, time_s: float) -> None:
        before = len(self.check._tracks[track_id].blinks) if track_id in self.check._tracks else 0
        self.check.observe(track_id, rgb, xyxy, landmarks, time_s)
        self.rows.append((track_id, time_s, np.array(xyxy), np.array(landmarks),
                          self.check.landmarks68.points(rgb, landmarks), self.check._unreadable.get(track_id),
                          len(self.check._tracks[track_id].blinks) > before))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.check, name)


def replay(rows: list, gate: Any, fps: float) -> list[tuple[int, int]]:
    """The blinks :class:`BlinkLiveness` with ``gate`` counts on recorded observations (the
    tracks and 68 points do not depend on the gate), as ``(track, start frame)``."""
    from faceprint.video.blink import BlinkDetector, eye_aspect_ratio

    detectors: dict[int, Any] = {}
    for track, time_s, _, lm5, points, _, _ in rows:
        readable = gate.pose_problem(lm5) is None and gate.eye_problem(points, lm5) is None
        detectors.setdefault(track, BlinkDetector()).update(float(eye_aspect_ratio(points)[0]) if readable else None,
                                                            time_s)
    return sorted((t, round(b * fps)) for t, d in detectors.items() for b in d.blinks)


def tune_rows(det: Any, synthetic: list[list[np.ndarray]]) -> list[tuple[str, ...]]:
    """Each gate limit swept alone (the others open) and inside the default gate, scored on the
    tuning data only: the synthesised blink clips (which must keep 21/21) and the facenet clip
    (no real blink: every one counted is false)."""
    from dataclasses import replace

    from faceprint.video.blink import EyeGate

    frames, times = read_clip(DATA / "video" / REAL[0][0])
    street = run_clip(frames, det, open_gate(), times, record=True)[2]
    clips = [run_clip(clip, det, open_gate(), record=True)[2] for clip in synthetic]
    sweeps = {"max_yaw": (0.15, 0.2, 0.25, 0.3, 0.4), "pitch_range": ((0.3, 0.6), (0.3, 0.62), (0.3, 0.65), (0.3, 0.7)),
              "min_eye_px": (10.0, 14.0, 16.0, 18.0, 20.0, 24.0), "max_eye_offset": (0.15, 0.2, 0.25, 0.3, 0.4)}
    rows = []
    for field, values in sweeps.items():
        for value in values:
            for label, base in (("alone", open_gate()), ("in the default gate", EyeGate())):
                gate = replace(base, **{field: value})
                found = [[f for _, f in replay(c, gate, 30.0)] for c in clips]
                caught = sum(any(abs(f - b) <= 2 for f in fs) for fs in found for b in BLINKS)
                false = sum(all(abs(f - b) > 2 for b in BLINKS) for fs in found for f in fs)
                rows.append((f"{field}={value} ({label})", f"{caught}/{len(BLINKS) * len(clips)}", str(false),
                             str(len(replay(street, gate, 25.0)))))
    return rows


def run_clip(frames: list, detector: object, gate: Any = None, times: list[float] | None = None,
             record: bool = False) -> tuple[list[tuple[int, int]], str, list]:
    """Every blink on every track as ``(track, start frame)``, the first track's final
    liveness state, and (with ``record``) the observations for :func:`eye_crops`."""
    from faceprint.video import VideoRecognizer
    from faceprint.video.blink import BlinkLiveness

    check = BlinkLiveness(blinks_required=10 ** 6, gate=gate)  # count every blink
    observer = _Recording(check) if record else check
    rec = VideoRecognizer(detector, liveness=observer, detect_every=3)
    times = times or [i / 30.0 for i in range(len(frames))]
    state = "none"
    for i, rgb in enumerate(frames):
        views = rec.process(rgb, i, times[i]).tracks
        if views:
            state = "live" if len(check._tracks[views[0].track_id].blinks) else views[0].liveness.state
    fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 30.0
    starts = sorted((t, round(b * fps)) for t, det in check._tracks.items() for b in det.blinks)
    return starts, state, observer.rows if record else []


def write_frames(frames: list[np.ndarray], path: Path, fps: float = 30.0) -> Path:
    """Write RGB frames to the mp4 ``path`` (OpenCV's mp4v, as ``faceprint video --out`` does)."""
    from faceprint.video.source import VideoSink

    sink = VideoSink(path, fps, (frames[0].shape[1], frames[0].shape[0]))
    for rgb in frames:
        sink.write(rgb)
    sink.close()
    return path


def read_clip(path: Path) -> tuple[list[np.ndarray], list[float]]:
    from faceprint.video.source import VideoSource

    frames, times = [], []
    with VideoSource(path) as src:
        for frame in src.frames():
            frames.append(frame.rgb)
            times.append(frame.time_s)
    return frames, times


def eye_crops(frames: list[np.ndarray], rows: list, fps: float, out: Path, min_face_px: float = 45.0) -> list[Path]:
    """One PNG sheet per track (faces at least ``min_face_px`` wide): the eye band of every
    observed frame, enlarged, labelled with the frame, EAR, ``B`` where a blink starts counting
    and ``x`` where the gate refused the frame."""
    import cv2

    from faceprint.video.blink import eye_aspect_ratio

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for track in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == track]
        if np.median([r[2][2] - r[2][0] for r in mine]) < min_face_px:
            continue
        tiles = []
        for _, time_s, xyxy, lm5, points, problem, blink in mine:
            ear = float(eye_aspect_ratio(points)[0])
            w = xyxy[2] - xyxy[0]
            cx, cy = lm5[:2].mean(0)
            x0, y0 = int(round(cx - 0.65 * w)), int(round(cy - 0.25 * w))
            pad = int(w) + 1
            padded = cv2.copyMakeBorder(frames[round(time_s * fps)], pad, pad, pad, pad, cv2.BORDER_CONSTANT)
            crop = padded[y0 + pad:y0 + pad + int(0.55 * w), x0 + pad:x0 + pad + int(1.3 * w)]
            tile = cv2.copyMakeBorder(cv2.resize(crop, (240, 100), interpolation=cv2.INTER_CUBIC), 16, 2, 2, 2,
                                      cv2.BORDER_CONSTANT)
            label = f"{round(time_s * fps)} {ear:.2f}" + (" B" if blink else "") + (" x" if problem else "")
            colour = (255, 255, 0) if blink else (255, 255, 255)
            cv2.putText(tile, label, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour)
            tiles.append(tile)
        for k in range(0, len(tiles), 48):
            chunk = tiles[k:k + 48] + [np.zeros_like(tiles[0])] * (-len(tiles[k:k + 48]) % 6)
            sheet = np.vstack([np.hstack(chunk[i:i + 6]) for i in range(0, len(chunk), 6)])
            path = out / f"track{track}_{k // 48}.png"
            cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
            written.append(path)
    return written


def cli_live_tracks(clip: Path, db: Path) -> list[tuple[int, int]]:
    """``faceprint video CLIP --blink`` in a fresh process: ``(track, frame)`` where each track went live."""
    events = [json.loads(line) for line in cli("video", clip, "--db", db, "--blink", "--json", "-").splitlines()
              if line.strip()]
    live: dict[int, int] = {}
    for e in events:
        if e["liveness"] == "live":
            live.setdefault(e["track_id"], e["frame"])
    return sorted(live.items())


def score_real(found: list[tuple[int, int]], truth: list[int]) -> tuple[str, str]:
    """``caught/real`` and the blinks reported more than 2 frames from any real one."""
    caught = sum(any(abs(f - b) <= 2 for _, f in found) for b in truth)
    false = sum(all(abs(f - b) > 2 for b in truth) for _, f in found)
    return f"{caught}/{len(truth)}", str(false)


def replay_clip(frame: "np.ndarray", n: int, seed: int) -> list:
    """``n`` frames of ``frame`` warped as a photo on a held-up phone (see the module text)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    h, w = frame.shape[:2]
    k = np.array([[700.0, 0, w / 2], [0, 700.0, h / 2], [0, 0, 1]])
    phase = rng.uniform(0, 2 * np.pi, 6)
    out = []
    for i in range(n):
        t = i / 30.0
        yaw, pitch, roll = (np.radians(a) * np.sin(2 * np.pi * t / p + ph)
                            for a, p, ph in zip((12, 8, 4), (2.9, 2.3, 3.7), phase))
        rot = cv2.Rodrigues(np.array([pitch, yaw, roll]))[0]
        rot = rot + (np.eye(3) - rot) @ np.diag([0.0, 0.0, 1.0])  # turn about the photo's centre
        scale = 1 + 0.05 * np.sin(2 * np.pi * t / 3.1 + phase[3])
        shift = 25 * np.array([np.sin(2 * np.pi * t / 2.7 + phase[4]), np.sin(2 * np.pi * t / 3.3 + phase[5])])
        shift += rng.normal(0, 1, 2)
        move = np.array([[scale, 0, (1 - scale) * w / 2 + shift[0]], [0, scale, (1 - scale) * h / 2 + shift[1]],
                         [0, 0, 1]])
        out.append(cv2.warpPerspective(frame, move @ k @ rot @ np.linalg.inv(k), (w, h),
                                       borderMode=cv2.BORDER_CONSTANT, borderValue=(40, 40, 40)))
    return out


def size_rows(det: Any, sizes: list[float]) -> list[tuple[str, ...]]:
    """Synthesised blinks (3 per clip) on the same photos cut with faces ``sizes`` px wide
    (frame scaled to keep the 640x480 framing), with the default gate and with it off."""
    from faceprint.image import load_image
    from faceprint.video.blink import LEFT_EYE, RIGHT_EYE, Landmarks68
    from faceprint.video.synth import blink_clip, webcam_frame

    l68 = Landmarks68()
    rows = []
    for face_px in sizes:
        size = (round(640 * face_px / 200), round(480 * face_px / 200))
        frames = [f for f in (webcam_frame(load_image(p), det, face_px, size) for p in PHOTOS) if f is not None]
        points = [l68.points(f, det.detect(f).by_size().landmarks[0]) for f in frames]
        widths = [min(np.linalg.norm(p[e[0]] - p[e[3]]) for e in (LEFT_EYE, RIGHT_EYE)) for p in points]
        scores = []
        for gate in (None, open_gate()):
            caught = false = 0
            for k, (frame, pts) in enumerate(zip(frames, points)):
                found = [f for _, f in run_clip(blink_clip(frame, pts, 90, BLINKS, 4, 1, seed=k), det, gate)[0]]
                caught += sum(any(abs(f - b) <= 2 for f in found) for b in BLINKS)
                false += sum(all(abs(f - b) > 2 for b in BLINKS) for f in found)
            scores.append(f"{caught}/{len(BLINKS) * len(frames)}, {false} extra")
        rows.append((f"{face_px:g} px", f"{min(widths):.0f}-{max(widths):.0f}", *scores))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--eye-crops", type=Path, help="write the real clips' eye-crop sheets (PNG) under this folder")
    parser.add_argument("--tune", action="store_true", help="also print the gate limits swept on the tuning data "
                        "(synthesised clips and the facenet clip)")
    parser.add_argument("--face-sizes", help="also run the synthesised blinks with faces this wide, e.g. 100,130,200")
    args = parser.parse_args()

    import faceprint
    from faceprint.image import load_image
    from faceprint.video.blink import Landmarks68
    from faceprint.video.synth import blink_clip, webcam_frame

    det = faceprint.create_detector("mtcnn")
    l68 = Landmarks68()
    notes = json.loads(ANNOTATIONS.read_text())
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "one.db"
        cli("enroll", "obama", DATA / "people" / "obama.jpg", "--db", db)
        for name, role in REAL:
            live = cli_live_tracks(DATA / "video" / name, db)
            rows.append((f"**`faceprint video --blink`, {SHORT[name]} clip ({role}, real)**: tracks live",
                         str(len(live)), f"(track, frame) {live}" if live else "none"))
        photo = DATA / "people" / "biden.jpg"
        frame = webcam_frame(load_image(photo), det)
        points = l68.points(frame, det.detect(frame).by_size().landmarks[0])
        for label, starts in (("synthesised blinks at 15, 45, 75", BLINKS), ("the same photo, still (2-px shake)", [])):
            jitter = 1 if starts else 2
            clip = write_frames(blink_clip(frame, points, 90, starts, 4, jitter), Path(tmp) / "clip.mp4")
            live = cli_live_tracks(clip, db)
            rows.append((f"**`faceprint video --blink`, {photo.name} mp4, {label}**: tracks live", str(len(live)),
                         f"(track, frame) {live}" if live else "none"))
    for name, role in REAL:
        frames, times = read_clip(DATA / "video" / name)
        truth = notes[name]["blinks"]
        for label, gate in (("eye gate (default)", None), ("gate off (every frame's EAR counts)", open_gate())):
            found, _, observed = run_clip(frames, det, gate, times, record=args.eye_crops is not None and gate is None)
            caught, false = score_real(found, truth)
            rows.append((f"{SHORT[name]} clip ({role}, {len(frames)} frames), {label}: real blinks caught",
                         caught, f"blinks where there is none: {false}"
                         + (f", (track, frame) {found}" if found else "")))
            if observed:
                sheets = eye_crops(frames, observed, notes[name]["fps"], args.eye_crops / Path(name).stem)
                print(f"{name}: {len(sheets)} eye-crop sheets in {args.eye_crops / Path(name).stem}", file=sys.stderr)
    caught = total = false_blinks = clips = still_live = stills = replay_live = replays = 0
    synthetic: list[list[np.ndarray]] = []
    for path in PHOTOS:
        frame = webcam_frame(load_image(path), det)
        if frame is None:
            continue
        points = l68.points(frame, det.detect(frame).by_size().landmarks[0])
        synthetic.append(blink_clip(frame, points, 90, BLINKS, 4, 1, seed=clips))
        found = [f for _, f in run_clip(synthetic[-1], det)[0]]
        print(f"{path.name}: blinks found at frames {found} (true: {list(BLINKS)})", file=sys.stderr)
        hits = {b for b in BLINKS if any(abs(f - b) <= 2 for f in found)}
        caught, total = caught + len(hits), total + len(BLINKS)
        false_blinks += sum(1 for f in found if all(abs(f - b) > 2 for b in BLINKS))
        clips += 1
        for jitter in (0, 2):
            found, state, _ = run_clip(blink_clip(frame, points, 90, [], 4, jitter, seed=clips), det)
            stills += 1
            still_live += state == "live" or bool(found)
        found, state, _ = run_clip(replay_clip(frame, 90, seed=clips), det)
        replays += 1
        replay_live += state == "live" or bool(found)
        print(f"{path.name}: replay attack blinks {found}, state {state}", file=sys.stderr)
    rows += [("synthesised blinks caught", f"{caught}/{total}", f"{clips} clips of 3 s, 3 blinks each"),
             ("extra (false) blinks in blink clips", str(false_blinks), ""),
             ("still-image clips reported live", f"{still_live}/{stills}", "unchanged frames and 2-px hand shake"),
             ("replay attacks (still photo, phone-like warp) reported live", f"{replay_live}/{replays}",
              "3 s, turning up to 12 deg, drifting 25 px")]
    print_table(("measurement", "result", "note"), rows, args.markdown)
    if args.tune:
        print()
        print_table(("gate limit (tuning data only)", "synthesised blinks caught", "extra blinks in them",
                     "facenet blinks (all false)"), tune_rows(det, synthetic), args.markdown)
    if args.face_sizes:
        print()
        print_table(("face width", "eye width px", "blinks caught, gate (default)", "blinks caught, gate off"),
                    size_rows(det, [float(v) for v in args.face_sizes.split(",")]), args.markdown)


if __name__ == "__main__":
    main()
