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
from bench_user_path import compile_sources  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"

_STAGES = r"""
import json, sys, time
t = [(time.perf_counter(), time.process_time())]
marks = []
def mark(name):
    t.append((time.perf_counter(), time.process_time()))
    marks.append((name, t[-1][0] - t[-2][0], t[-1][1] - t[-2][1]))
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


def stage_breakdown(src: Path, a: Path, b: Path, runs: int) -> list[tuple[str, float, float]]:
    """Median wall and CPU ms (all threads of the process) per stage over ``runs`` fresh processes."""
    per: dict[str, list[tuple[float, float]]] = {}
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _STAGES, str(a), str(b)], capture_output=True, text=True,
                             env=_env(src), check=True).stdout
        for name, wall, cpu in json.loads(out.strip().splitlines()[-1]):
            per.setdefault(name, []).append((wall * 1e3, cpu * 1e3))
    return [(name, statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for name, v in per.items()]


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
    parser.add_argument("--src", type=Path, action="append",
                        help="a checkout's src/ (repeat to compare side by side; default: this one)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    a, b = DATA / "people" / "obama.jpg", DATA / "people" / "biden.jpg"
    srcs = args.src or [SRC]
    load_before = os.getloadavg()[0]
    columns = []
    for src in srcs:  # alternate checkouts run by run would be fairer still; load is reported
        compile_sources(src)  # as pip install does
        stages = stage_breakdown(src, a, b, args.runs)
        wall, cpu = command_wall(src, a, b, args.runs)
        cells = {name: f"{w:.0f} ({c:.0f})" for name, w, c in stages}
        cells["sum of stages"] = f"{sum(w for _, w, _ in stages):.0f} ({sum(c for _, _, c in stages):.0f})"
        cells["`faceprint verify`, whole process"] = f"{wall * 1e3:.0f} ({cpu * 1e3:.0f})"
        columns.append(cells)
    print(f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; median of {args.runs} processes")
    header = ("stage, wall ms (CPU ms)", *[str(s) for s in srcs])
    rows = [(name, *[c.get(name, "-") for c in columns]) for name in columns[0]]
    print_table(header, rows, args.markdown)


if __name__ == "__main__":
    main()
