"""The user's path, side by side with face_recognition / dlib (run through ``bench_core.py --user-path``).

Every faceprint row runs what users run (the CLI in a fresh process, or the evaluation's
public embedding step) with the defaults; every anchor row runs face_recognition the way its
README shows (its library in a fresh process, or its console scripts). Wall and CPU seconds
(user + system of the child processes, or of this process in-process) are medians of ``runs``.

The checkout's sources are byte-compiled first (:func:`compile_sources`), as ``pip install``
does: a process that compiles faceprint's modules from source (an editable install under
``PYTHONDONTWRITEBYTECODE=1``, as on the development machine) pays ~0.1 s CPU per start that
users do not.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Callable, Sequence

from bench_core import DATA, print_table

SRC = Path(__file__).resolve().parents[1] / "src"
CACHE = Path(os.environ.get("FACEPRINT_BENCH_CACHE", "/tmp/faceprint-bench"))
SCRIPTS = Path(sysconfig.get_path("scripts"))
_ENV = dict(os.environ, PYTHONPATH=str(SRC), PYTHONWARNINGS="ignore")


def compile_sources(src: Path) -> None:
    """Byte-compile ``src`` into its ``__pycache__`` folders (what ``pip install`` does)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], capture_output=True, check=False)


def _faceprint(*args: str) -> list[str]:
    """The installed ``faceprint`` console script (run by this interpreter, no shell shim), on this checkout."""
    return [sys.executable, str(SCRIPTS / "faceprint"), *args]


def _script(name: str, *args: str) -> list[str]:
    return [sys.executable, str(SCRIPTS / name), *args]


def _python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def process_time(cmd: list[str], runs: int, warmup: bool = True) -> tuple[float, float]:
    """Median (wall s, CPU s) of ``runs`` fresh processes; one untimed run first (page cache)
    unless ``warmup`` is false (slow anchors whose files an earlier row has just read)."""
    if warmup:
        subprocess.run(cmd, env=_ENV, capture_output=True, check=True, cwd=CACHE)
    walls, cpus = [], []
    for _ in range(runs):
        before, start = os.times(), time.perf_counter()
        subprocess.run(cmd, env=_ENV, capture_output=True, check=True, cwd=CACHE)
        walls.append(time.perf_counter() - start)
        after = os.times()
        cpus.append(after.children_user - before.children_user + after.children_system - before.children_system)
    return statistics.median(walls), statistics.median(cpus)


def inprocess_time(fn: Callable[[], object], runs: int, warmup: Callable[[], object] | None = None) -> tuple[float, float]:
    (warmup or fn)()  # models loaded, caches filled
    walls, cpus = [], []
    for _ in range(runs):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def forty_photos() -> list[Path]:
    """40 real photos with 0-30 faces: group/, detection/ and people/ (longer side <= 2300 px: the
    six 4000-7000 px CompreFace photos take face_recognition minutes each), then deepface_pairs/."""
    from PIL import Image

    folders = [DATA / "group", DATA / "detection" / "dlib_faces", DATA / "detection" / "compreface_samples", DATA / "people"]
    photos = [p for f in folders for p in sorted(f.iterdir()) if p.suffix.lower() in {".jpg", ".png"}]
    photos = [p for p in photos if max(Image.open(p).size) <= 2300]
    photos += sorted((DATA / "people" / "deepface_pairs").glob("*.jpg"))
    return photos[:40]


def lfw_images(n: int) -> list[Path]:
    """The first ``n`` unique images of LFW View 1 DevTest, in pair order."""
    sys.path.insert(0, str(SRC))
    from faceprint.evaluation.pairs import read_pairs

    paths, _, _ = read_pairs(DATA / "lfw-view1" / "pairsDevTest.txt").unique_images()
    return [Path(p) for p in paths[:n]]


def chip_files(n: int = 200) -> list[Path]:
    """``n`` 150x150 LFW chips cut by dlib (HOG box, 5-point shape, ``get_face_chip``), cached as PNG."""
    folder = CACHE / f"chips{n}"
    files = sorted(folder.glob("*.png"))
    if len(files) >= n:
        return files[:n]
    from PIL import Image

    from bench_core import lfw_chips

    folder.mkdir(parents=True, exist_ok=True)
    for i, chip in enumerate(lfw_chips(n)):
        Image.fromarray(chip).save(folder / f"chip{i:04d}.png")
    return sorted(folder.glob("*.png"))[:n]


def _folder_of(photos: Sequence[Path], name: str) -> Path:
    """A folder of symlinks (the face_recognition CLIs take folders)."""
    folder = CACHE / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for i, p in enumerate(photos):
        (folder / f"{i:03d}_{p.name}").symlink_to(p)
    return folder


_FR_VERIFY = ("import sys, face_recognition as fr\n"
              "a, b = (fr.face_encodings(fr.load_image_file(p))[0] for p in sys.argv[1:3])\n"
              "print(fr.face_distance([a], b)[0] <= 0.6)\n")
_FR_DETECT = ("import sys, face_recognition as fr\n"
              "for p in sys.argv[1:]:\n    print(p, len(fr.face_locations(fr.load_image_file(p))))\n")
_DLIB_EMBED = ("import sys, dlib, numpy as np, face_recognition_models as m\n"
               "from PIL import Image\n"
               "net = dlib.face_recognition_model_v1(m.face_recognition_model_location())\n"
               "out = [np.array(net.compute_face_descriptor(np.asarray(Image.open(p).convert('RGB')))) for p in sys.argv[1:]]\n"
               "print(len(out))\n")


def user_path_rows(only: Sequence[str], runs: int, lfw_n: int) -> list[tuple[str, str, tuple[float, float], tuple[float, float]]]:
    """``(measurement, anchor name, (anchor wall, cpu), (faceprint wall, cpu))`` rows; the slow
    anchors of the detect, embed and LFW rows run ``max(1, runs // 2)`` times."""
    slow = max(1, runs // 2)
    CACHE.mkdir(parents=True, exist_ok=True)
    compile_sources(SRC)
    rows = []
    a, b = str(DATA / "people" / "obama.jpg"), str(DATA / "people" / "biden.jpg")
    if "verify" in only:
        ours = process_time(_faceprint("verify", a, b), runs)
        rows.append(("verify 2 photos, whole process (s)", "face_recognition library",
                     process_time(_python(_FR_VERIFY, a, b), runs), ours))
        known = _folder_of([Path(a)], "known")
        rows.append(("verify 2 photos, whole process (s)", "`face_recognition` CLI",
                     process_time(_script("face_recognition", str(known), b), runs), ours))
    if "detect" in only:
        photos = [str(p) for p in forty_photos()]
        ours = process_time(_faceprint("detect", *photos), runs)
        rows.append((f"detect {len(photos)} photos, whole process (s)", "face_recognition library (upsample 1)",
                     process_time(_python(_FR_DETECT, *photos), slow, warmup=False), ours))
        rows.append((f"detect {len(photos)} photos, whole process (s)", "`face_detection` CLI (upsample 0)",
                     process_time(_script("face_detection", str(_folder_of([Path(p) for p in photos], "forty"))), slow,
                                  warmup=False), ours))
    if "embed" in only:
        chips = [str(p) for p in chip_files(200)]
        rows.append((f"embed --aligned {len(chips)} chips, whole process (s)", "dlib loop",
                     process_time(_python(_DLIB_EMBED, *chips), slow, warmup=False),
                     process_time(_faceprint("embed", "--aligned", *chips), runs)))
    if "lfw" in only:
        rows.append(lfw_row(lfw_n, runs))
    return rows


def lfw_row(n: int, runs: int) -> tuple[str, str, tuple[float, float], tuple[float, float]]:
    """In-process LFW View 1 DevTest pipeline on ``n`` images: faceprint's evaluation embedding
    step (defaults) against face_recognition's ``load_image_file`` + ``face_encodings`` loop."""
    import face_recognition as fr

    from faceprint import FacePipeline
    from faceprint.evaluation.lfw import embed_images

    paths = lfw_images(n)
    pipe = FacePipeline()
    ours = inprocess_time(lambda: embed_images(pipe, paths), runs)
    theirs = inprocess_time(lambda: [fr.face_encodings(fr.load_image_file(p)) for p in paths], max(1, runs // 2),
                            warmup=lambda: [fr.face_encodings(fr.load_image_file(p)) for p in paths[:5]])
    return (f"LFW DevTest pipeline, {n} images, in-process (s)", "face_recognition loop", theirs, ours)


def user_path_table(only: Sequence[str], runs: int, lfw_n: int, markdown: bool) -> None:
    load_before = os.getloadavg()
    rows = user_path_rows(only, runs, lfw_n)
    load_after = os.getloadavg()
    header = ("measurement", "anchor", "anchor wall (CPU)", "faceprint wall (CPU)", "ratio wall", "ratio CPU")
    lines = []
    for name, anchor, (aw, ac), (fw, fc) in rows:
        extra = ""
        if name.startswith("LFW"):
            n = int(name.split(",")[1].split()[0])
            extra = f"; {n / aw:.1f} vs {n / fw:.1f} img/s"
        lines.append((name, anchor, f"{aw:.2f} ({ac:.2f})", f"{fw:.2f} ({fc:.2f})", f"{aw / fw:.1f}x{extra}",
                      f"{ac / fc:.1f}x"))
    print(f"{os.cpu_count()} CPUs; load average (1/5/15 min) before {' '.join(f'{v:.2f}' for v in load_before)}, "
          f"after {' '.join(f'{v:.2f}' for v in load_after)}; median of {runs}")
    print_table(header, lines, markdown)
