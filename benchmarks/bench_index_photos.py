"""Indexing multi-megapixel photos: ``faceprint index`` (defaults) vs face_recognition's loop.

The photos: the 8 group photos of ``../shared/data/group`` (0.4-3.6 Mpx) and the 18 CompreFace
samples (0.2-36 Mpx; identity A's six are 12-36 Mpx), 26 files, linked ``--repeat`` times
(default 8: 208 files) into a temporary folder under distinct names.

- user's path: ``faceprint index DIR --db DB --json`` in a fresh process with its defaults
  (MTCNN ``max_side=1920``, one worker per core), timed around the process (start-up included);
- anchor: face_recognition's load + ``face_locations`` (HOG, upsample 1) + ``face_encodings``
  on the raw photo. Its cost per file does not depend on the copy, and one pass over a 36 Mpx
  photo takes tens of seconds, so the loop runs once over the 26 distinct photos and its
  photos/s is that of the whole set (labelled "one pass, scaled"); cached in ``--cache``.

Run: ``python benchmarks/bench_index_photos.py [--repeat N] [--markdown]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_collections import face_recognition_run, index_cli  # noqa: E402
from bench_core import DATA, print_table  # noqa: E402


def photos() -> list[Path]:
    """The 26 distinct photos, in a fixed order."""
    return sorted((DATA / "group").glob("*.*")) + sorted((DATA / "detection" / "compreface_samples").glob("*.jpg"))


def main() -> None:
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/s2-15b-cache"))
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    distinct = photos()
    megapixels = [Image.open(p).size[0] * Image.open(p).size[1] / 1e6 for p in distinct]
    print(f"{len(distinct)} distinct photos, {min(megapixels):.1f}-{max(megapixels):.1f} Mpx "
          f"(median {sorted(megapixels)[len(megapixels) // 2]:.1f}), x{args.repeat} = {len(distinct) * args.repeat} files")
    fr_seconds, fr_faces = face_recognition_run(distinct, args.cache / "fr_big_photos.npz")
    fr_rate = len(distinct) / fr_seconds
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        for r in range(args.repeat):
            (root / f"copy{r}").mkdir(parents=True)
            for p in distinct:
                (root / f"copy{r}" / p.name).symlink_to(p)
        wall, rep = index_cli(root, Path(tmp) / "index.db")
    n = len(distinct) * args.repeat
    rows = [("faceprint index (defaults; process wall time)", str(n), f"{n / wall:.2f}", f"{n / wall / fr_rate:.1f}x",
             str(rep["faces"] // args.repeat), str(rep["errors"])),
            ("face_recognition load+HOG+encode loop (anchor; one pass, scaled)", str(len(distinct)), f"{fr_rate:.2f}",
             "1.0x", str(sum(len(f) for f in fr_faces)), "0")]
    print_table(("indexing", "files", "photos/s", "vs face_recognition", "faces per copy", "unreadable"), rows,
                args.markdown)
    print(json.dumps({"faceprint_seconds": round(wall, 1), "face_recognition_seconds_per_pass": round(fr_seconds, 1)}))


if __name__ == "__main__":
    main()
