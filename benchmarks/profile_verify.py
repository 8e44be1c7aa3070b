"""Where a cold ``faceprint verify a.jpg b.jpg`` spends its time: a per-stage breakdown.

Each run is a fresh interpreter (warm model cache) that does what the command does, stage by
stage, with a stopwatch: importing the CLI, parsing the arguments, opening the models, decoding
the two photos, detecting, aligning and embedding. Prints the median of ``--runs`` processes
(wall ms), next to the median wall time of the real command in ``--runs`` fresh processes.

Run: ``python benchmarks/profile_verify.py [--runs N] [--src SRC_DIR] [--markdown]``; ``--src``
points at another checkout's ``src`` (a base commit exported with ``git archive``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import DATA, print_table  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"

_STAGES = r"""
import json, sys, time
t = [time.perf_counter()]
marks = []
def mark(name):
    t.append(time.perf_counter()); marks.append((name, t[-1] - t[-2]))
import faceprint.cli as cli
mark("import faceprint.cli")
from faceprint.pipeline import FacePipeline
from faceprint.image import load_image
mark("import pipeline")
pipe = FacePipeline()
mark("construct pipeline")
pipe.detector.load() if hasattr(pipe.detector, "load") else None
mark("open detector sessions")
pipe.embedder.session
mark("open embedder session")
if hasattr(pipe.aligner, "predictor"):
    pipe.aligner.predictor
mark("load shape predictor")
images = [load_image(p) for p in sys.argv[1:3]]
mark("decode 2 photos")
faces = [pipe.detect(rgb) for rgb in images]
mark("detect")
aligned = [pipe.aligner.align(rgb, f[0]) for rgb, f in zip(images, faces)]
mark("align")
emb = [pipe.embedder.embed(a) for a in aligned]
mark("embed")
print(json.dumps(marks))
"""


def _env(src: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(src))


def stage_breakdown(src: Path, a: Path, b: Path, runs: int) -> list[tuple[str, float]]:
    """Median ms per stage over ``runs`` fresh processes."""
    per: dict[str, list[float]] = {}
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _STAGES, str(a), str(b)], capture_output=True, text=True,
                             env=_env(src), check=True).stdout
        for name, sec in json.loads(out.strip().splitlines()[-1]):
            per.setdefault(name, []).append(sec * 1e3)
    return [(name, statistics.median(v)) for name, v in per.items()]


def command_wall(src: Path, a: Path, b: Path, runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds of the real ``faceprint verify`` in fresh processes."""
    walls, cpus = [], []
    code = "import sys; from faceprint.cli import main; sys.argv[0] = 'faceprint'; main()"
    for _ in range(runs):
        before = os.times()
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, "verify", str(a), str(b)], capture_output=True, env=_env(src),
                       check=True)
        walls.append(time.perf_counter() - t)
        after = os.times()
        cpus.append((after.children_user - before.children_user) + (after.children_system - before.children_system))
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--src", type=Path, default=SRC)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    a, b = DATA / "people" / "obama.jpg", DATA / "people" / "biden.jpg"
    stages = stage_breakdown(args.src, a, b, args.runs)
    wall, cpu = command_wall(args.src, a, b, args.runs)
    rows = [(name, f"{ms:.0f}") for name, ms in stages]
    rows.append(("sum of stages", f"{sum(ms for _, ms in stages):.0f}"))
    rows.append((f"`faceprint verify` wall (CPU), median of {args.runs}", f"{wall * 1e3:.0f} ({cpu * 1e3:.0f})"))
    print(f"load average {os.getloadavg()[0]:.2f}; src {args.src}")
    print_table(("stage", "ms"), rows, args.markdown)


if __name__ == "__main__":
    main()
