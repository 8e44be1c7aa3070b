"""Gallery benchmarks: open-set identification on real photos, and search at scale.

``openset``: LFW View 1 (:mod:`faceprint.evaluation.openset`): people with 2+ images enrolled
with one photo, their other photos as queries, single-image people as strangers. The people
are split in halves by name hash; the ratio threshold and ``cohort_k`` were chosen on half 0
(with half of its strangers as the cohort, the other half as strangers) and this reports half
1 only, with the tuning cohort (half 0's even-numbered strangers) as the gallery's cohort.
face_recognition (HOG + dlib, plain nearest neighbour, 0.6) runs on the same half side by side.
Writes the DIR-vs-FAR curves to ``--plot``.

``scale``: synthetic 128-d galleries (identity centres + per-photo noise at dlib's scale):
exact (BLAS) and usearch HNSW query latency p50/p99 (one query at a time, 1 thread), ANN
recall@1 against exact, bytes per face (float32 and int8 HNSW), index build rate, and SQLite
enrollment rate (faces/s through ``Gallery.add_faces``).

Run: ``python benchmarks/bench_gallery.py openset [--cache F.npz] [--anchor-cache F.npz] [--plot P.png]``
and ``python benchmarks/bench_gallery.py scale [--sizes 10000,100000,1000000]``.
The machine running these may be shared: compare rows of one run, not absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# one query on one thread: a multi-threaded BLAS only spins on a shared machine
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import DATA, print_table  # noqa: E402,I001

LFW = DATA / "lfw-view1" / "images"


# ---- open set -----------------------------------------------------------------------------------
def faceprint_vectors(paths: list[Path], cache: Path | None) -> dict[str, np.ndarray]:
    """Plain and flip-averaged vectors of every image (centre face), cached in ``cache``."""
    if cache is not None and cache.is_file():
        data = np.load(cache)
        return {"plain": data["plain"], "flip": data["flip"]}
    from faceprint import FacePipeline, create_embedder
    from faceprint.evaluation.lfw import embed_images

    out = {"plain": embed_images(FacePipeline(), paths)[0].vectors,
           "flip": embed_images(FacePipeline(embedder=create_embedder("dlib_resnet", flip=True)), paths)[0].vectors}
    if cache is not None:
        np.savez(cache, **out)
    return out


def anchor_vectors(paths: list[Path], idx: np.ndarray, cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """face_recognition's vectors for images ``idx`` (centre face) and whether a face was found."""
    if cache is not None and cache.is_file():
        data = np.load(cache)
        return data["vectors"], data["found"]
    import face_recognition

    vec, found = np.zeros((len(paths), 128), np.float32), np.zeros(len(paths), bool)
    for i in idx:
        img = face_recognition.load_image_file(str(paths[i]))
        locs = face_recognition.face_locations(img)
        if locs:
            h, w = img.shape[:2]
            c = min(locs, key=lambda l: ((l[1] + l[3]) / 2 - w / 2) ** 2 + ((l[0] + l[2]) / 2 - h / 2) ** 2)
            vec[i], found[i] = face_recognition.face_encodings(img, [c])[0], True
    if cache is not None:
        np.savez(cache, vectors=vec, found=found)
    return vec, found


def run_gallery(vectors: np.ndarray, split: object, cohort: np.ndarray | None, found: np.ndarray | None = None,
                threshold: float | None = None) -> dict[str, np.ndarray]:
    """Enroll, identify queries and strangers through the real Gallery; scores and correctness.

    ``threshold=None`` runs the default policy (ratio scores); a number runs plain distances.
    Images without a face (``found`` false) are not enrolled and score ``inf`` as queries.
    """
    from faceprint import Embeddings
    from faceprint.gallery import open_gallery

    found = np.ones(len(vectors), bool) if found is None else found
    g = open_gallery(":memory:")
    for i, name in zip(split.enroll, split.enroll_names):
        if found[i]:
            g.add_faces(name, Embeddings(vectors[i], "dlib_resnet_v1"))
    if cohort is not None and len(cohort):
        g.add_cohort(Embeddings(vectors[cohort], "dlib_resnet_v1"))

    def scores(idx: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
        res = g.identify(Embeddings(vectors[idx], "dlib_resnet_v1"), threshold=threshold, top_k=1)
        s = np.array([r.score if f else np.inf for r, f in zip(res, found[idx])])
        return s, [r.candidates[0].name if r.candidates else None for r in res]

    ks, best = scores(split.queries)
    ss, _ = scores(split.strangers)
    g.close()
    return {"known": ks, "correct": np.array([b == n for b, n in zip(best, split.query_names)]), "strangers": ss}


def openset(args: argparse.Namespace) -> None:
    from faceprint.evaluation.openset import dir_at_far, dir_far_curve, lfw_images, openset_split, plot_dir_far
    from faceprint.gallery.scoring import OpenSetPolicy

    paths, names = lfw_images(args.root)
    test, dev = openset_split(names, half=1), openset_split(names, half=0)
    cohort = dev.strangers[::2]  # the cohort used while tuning on half 0; never a half-1 stranger
    print(f"report half: {len(test.enroll)} enrolled, {len(test.queries)} queries, {len(test.strangers)} strangers; "
          f"cohort {len(cohort)} faces from the tuning half")
    t0 = time.perf_counter()
    vec = faceprint_vectors(paths, args.cache)
    idx = np.concatenate([test.enroll, test.queries, test.strangers])
    fr_vec, fr_found = anchor_vectors(paths, idx, args.anchor_cache)
    print(f"embeddings ready in {time.perf_counter() - t0:.0f} s")
    default_ratio = OpenSetPolicy().ratio_threshold
    runs = {
        "face_recognition, NN distance": (run_gallery(fr_vec, test, None, fr_found, threshold=1e9), 0.6),
        "faceprint, NN distance": (run_gallery(vec["plain"], test, None, threshold=1e9), 0.6),
        "faceprint, ratio, no cohort": (run_gallery(vec["plain"], test, None), default_ratio),
        "faceprint, ratio + cohort (default)": (run_gallery(vec["plain"], test, cohort), default_ratio),
        "faceprint flip, ratio + cohort": (run_gallery(vec["flip"], test, cohort), default_ratio),
    }
    rows, curves, points = [], {}, {}
    for label, (r, thr) in runs.items():
        dir_ = float(np.mean((r["known"] <= thr) & r["correct"]))
        far = float(np.mean(r["strangers"] <= thr))
        _t, d, f = dir_far_curve(r["known"], r["correct"], r["strangers"])
        curves[label] = (f, d)
        points[f"{label} @ {thr:g}"] = (far, dir_)
        rows.append((label, f"{thr:g}", f"{dir_:.3f}", f"{far:.3f}",
                     f"{dir_at_far(r['known'], r['correct'], r['strangers'], 0.02):.3f}",
                     f"{np.mean(r['correct']):.3f}"))
    print_table(("method", "threshold", "DIR", "FAR", "DIR @ FAR<=2% (oracle)", "rank-1"), rows, args.markdown)
    if args.plot:
        plot_dir_far(curves, args.plot, f"LFW View 1 open set (report half): {len(test.enroll)} enrolled, "
                     f"{len(test.strangers)} strangers", points)
        print(f"wrote {args.plot}")


# ---- scale ------------------------------------------------------------------------------------------------
def synthetic(n: int, seed: int = 0, per: int = 4) -> np.ndarray:
    """``n`` dlib-scale vectors: ``n // per`` identities, samples 0.3-0.4 apart within one."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 0.085, (n // per + 1, 128)).astype(np.float32)
    out = centres[np.arange(n) // per] + rng.normal(0, 0.02, (n, 128)).astype(np.float32)
    return out


def percentiles(times: list[float]) -> tuple[float, float]:
    ms = np.array(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def scale(args: argparse.Namespace) -> None:
    from faceprint.gallery.index import ExactIndex, UsearchIndex

    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        base = synthetic(n)
        rng = np.random.default_rng(1)
        pick = rng.integers(0, n, args.queries)
        queries = base[pick] + rng.normal(0, 0.02, (args.queries, 128)).astype(np.float32)
        ids = np.arange(n, dtype=np.int64)
        exact = ExactIndex(128)
        exact.add(ids, base)
        times, truth = [], []
        for q in queries[: min(args.queries, args.exact_queries)]:
            t = time.perf_counter()
            truth.append(exact.search(q[None], 1)[1][0, 0])
            times.append(time.perf_counter() - t)
        e50, e99 = percentiles(times)
        del exact
        for dtype in args.dtypes.split(","):
            ann = UsearchIndex(128, dtype=dtype, connectivity=args.m, expansion_add=args.ef_add)
            t = time.perf_counter()
            ann.add(ids, base, threads=args.threads)
            build = n / (time.perf_counter() - t)
            for ef in (int(e) for e in str(args.ef).split(",")):  # one build, several search widths
                ann.expansion_search = ef
                times, hits = [], 0
                for j, q in enumerate(queries[: len(truth)]):
                    t = time.perf_counter()
                    got = ann.search(q[None], 1, threads=1)[1][0, 0]
                    times.append(time.perf_counter() - t)
                    hits += int(got == truth[j])
                a50, a99 = percentiles(times)
                rows.append((f"{n:,}", dtype, str(ef), f"{e50:.2f}", f"{e99:.2f}", f"{a50:.3f}", f"{a99:.3f}",
                             f"{e50 / a50:.0f}x", f"{hits / len(truth):.4f}", f"{ann.serialized_bytes / n:.0f}",
                             f"{build:,.0f}"))
                print(rows[-1], flush=True)
            del ann
    print_table(("faces", "ANN dtype", "ef", "exact p50 ms", "exact p99 ms", "ANN p50 ms", "ANN p99 ms", "speed-up",
                 "recall@1", "ANN bytes/face", "ANN adds/s"), rows, args.markdown)
    if args.no_sqlite:
        return
    rows = []
    for n in (1000, 20000):
        from faceprint import Embeddings
        from faceprint.gallery import open_gallery

        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            vecs = synthetic(n, seed=2)
            for dtype in ("float32", "int8"):
                g = open_gallery(Path(tmp) / f"{dtype}.db", dtype=dtype)
                t = time.perf_counter()
                for s in range(0, n, 4):  # one person (4 photos) per transaction
                    g.add_faces(f"p{s}", Embeddings(vecs[s:s + 4], "dlib_resnet_v1"))
                rate = n / (time.perf_counter() - t)
                t = time.perf_counter()
                g.identify(Embeddings(vecs[:1], "dlib_resnet_v1"))
                load = time.perf_counter() - t
                g.close()
                size = (Path(tmp) / f"{dtype}.db").stat().st_size
                rows.append((f"{n:,}", dtype, f"{rate:,.0f}", f"{size / n:.0f}", f"{load * 1000:.0f}"))
    print_table(("faces", "SQLite dtype", "enrolled faces/s (4 per txn)", "file bytes/face", "first query ms (load)"),
                rows, args.markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("openset")
    o.add_argument("--root", type=Path, default=LFW)
    o.add_argument("--cache", type=Path, default=None, help="npz of faceprint vectors (written if missing)")
    o.add_argument("--anchor-cache", type=Path, default=None, help="npz of face_recognition vectors")
    o.add_argument("--plot", type=Path, default=None)
    o.add_argument("--markdown", action="store_true")
    s = sub.add_parser("scale")
    s.add_argument("--sizes", default="10000,100000")
    s.add_argument("--queries", type=int, default=200)
    s.add_argument("--dtypes", default="f32,i8", help="HNSW storage types to build")
    s.add_argument("--no-sqlite", action="store_true", help="skip the SQLite enrollment-rate table")
    s.add_argument("--m", type=int, default=16, help="HNSW connectivity")
    s.add_argument("--exact-queries", type=int, default=200, help="queries timed on the exact index (recall truth)")
    s.add_argument("--ef", default="64", help="HNSW expansion_search; a comma list measures each on one build")
    s.add_argument("--ef-add", type=int, default=128, help="HNSW expansion_add")
    s.add_argument("--threads", type=int, default=0)
    s.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    openset(args) if args.cmd == "openset" else scale(args)


if __name__ == "__main__":
    main()
