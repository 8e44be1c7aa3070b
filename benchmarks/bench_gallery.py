"""Gallery benchmarks: open-set identification on real photos, and search at scale.

``openset``: open-set identification on LFW View 1 through ``Recognizer`` with the defaults, by
gallery size (see :mod:`openset_path`: the protocol, ``--tune`` and ``--gate``).

``scale``: synthetic 128-d galleries, 4 photos per identity, of two kinds: ``dlib`` (a
Gaussian model of real dlib embeddings, fitted on LFW View 1: mean, identity-centre covariance
and within-identity covariance; a query is a new photo of an enrolled identity) and ``iid``
(isotropic centres; a query is a stored vector plus noise: graph search's worst case). Exact
(BLAS) and raw usearch HNSW query latency p50/p99 (one query at a time, 1 thread), recall@1
against exact, bytes per face (float32 and int8 HNSW), index build rate, and SQLite
enrollment rate (faces/s through ``Gallery.add_faces``).

``gallery``: the same through the real SQLite gallery (``Gallery.search``: int8 graph
shortlist re-ranked with the stored vectors), with recall against exact search over the
stored vectors and over the float32 originals, graph bytes and process memory per face.

``path``: the same gallery on the user's path (:mod:`gallery_path`): ``open_gallery(db)`` with
its defaults, ``Gallery.identify``, a cold page cache, strangers, ef tuned on a separate query
set, the time until another process's write is findable, and searches under a writer.

Run: ``python benchmarks/bench_gallery.py openset [--anchor [--anchor-cache F.pkl]] [--plot P.png]``
(``--tune [--write-stats F.npz]`` / ``--gate [--records F.pkl]`` on the tuning part),
``python benchmarks/bench_gallery.py scale [--data dlib,iid] [--sizes 10000,100000,1000000]`` and
``python benchmarks/bench_gallery.py gallery --sizes 1000000 --ef 256 [--dtype float32]`` and
``python benchmarks/bench_gallery.py path [--cache-dir D] [--size 1000000]``.
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
    """Vectors of every image (centre face): ``plain`` (the query pipeline), ``flip``
    (flip-averaged) and ``enroll`` (what :class:`Recognizer` enrolls: ``ENROLL_JITTER`` jittered
    views). Cached in ``cache``; only missing kinds are computed."""
    from faceprint.gallery.recognizer import ENROLL_JITTER

    kinds = {"plain": {}, "flip": {"flip": True}, "enroll": {"jitter": ENROLL_JITTER}}
    out = dict(np.load(cache)) if cache is not None and cache.is_file() else {}
    missing = [k for k in kinds if k not in out]
    if missing:
        from faceprint import FacePipeline, create_embedder
        from faceprint.evaluation.lfw import embed_images

        for kind in missing:
            pipe = FacePipeline(embedder=create_embedder("dlib_resnet", **kinds[kind]))
            out[kind] = embed_images(pipe, paths)[0].vectors
        if cache is not None:
            np.savez(cache, **out)
    return out


def openset(args: argparse.Namespace) -> None:
    """Open set on the user's path (:mod:`openset_path`): the report part, or ``--tune`` / ``--gate``
    on the tuning part."""
    import openset_path as op
    from faceprint.evaluation.openset import lfw_images

    paths, names = lfw_images(args.root)
    if args.tune or args.gate:
        records = op.photo_records(paths, args.records)
        if args.gate:
            op.gate_report(paths, names, records, print_table, args.markdown)
        if args.tune:
            op.tune(paths, names, records, print_table, args.markdown, args.write_stats)
        return
    op.report(paths, names, print_table, args.markdown, args.plot, args.anchor, args.anchor_cache)


# ---- scale --------------------------------------------------------------------------------------
def synthetic(n: int, seed: int = 0, per: int = 4) -> np.ndarray:
    """``n`` iid vectors: ``n // per`` isotropic identity centres, samples 0.3-0.4 apart within one."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 0.085, (n // per + 1, 128)).astype(np.float32)
    out = centres[np.arange(n) // per] + rng.normal(0, 0.02, (n, 128)).astype(np.float32)
    return out


class DlibShaped:
    """Gaussian model of real dlib embeddings: the mean, the covariance of identity centres and
    the within-identity covariance, fitted on LFW View 1 (faceprint's own vectors).

    Real embeddings are anisotropic (the centres' covariance has a participation ratio of about
    22 dimensions, not 128), which is what graph search relies on; iid isotropic vectors are
    the hardest case for it.
    """

    def __init__(self, vectors: np.ndarray, names: list[str]) -> None:
        from faceprint.evaluation.openset import fit_identity_gaussian

        fit = fit_identity_gaussian(vectors, names)
        self.mean, self._lb, self._lw = fit["mean"], fit["between"], fit["within"]

    def centres(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.mean + rng.standard_normal((n, len(self.mean))) @ self._lb.T

    def photos(self, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return (centres + rng.standard_normal(centres.shape) @ self._lw.T).astype(np.float32)


def scale_data(kind: str, n: int, queries: int, model: DlibShaped | None, per: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``(base (n, 128), queries)``: iid (a query is a stored vector plus noise) or dlib-shaped
    (a query is a new photo of a stored identity)."""
    rng = np.random.default_rng(1)
    if kind == "iid":
        base = synthetic(n)
        return base, base[rng.integers(0, n, queries)] + rng.normal(0, 0.02, (queries, 128)).astype(np.float32)
    centres = model.centres(n // per + 1, np.random.default_rng(0))
    base = model.photos(centres[np.arange(n) // per], np.random.default_rng(2))
    return base, model.photos(centres[rng.integers(0, n // per, queries)], rng)


def fitted_model(args: argparse.Namespace) -> DlibShaped:
    from faceprint.evaluation.openset import lfw_images

    paths, names = lfw_images(args.root)
    cached = dict(np.load(args.cache)) if args.cache is not None and args.cache.is_file() else {}
    plain = cached["plain"] if "plain" in cached else faceprint_vectors(paths, args.cache)["plain"]
    return DlibShaped(plain, names)


def percentiles(times: list[float]) -> tuple[float, float]:
    ms = np.array(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def exact_truth(base: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Nearest stored vector of every query by exact search, and its p50/p99 ms (one query at a time)."""
    from faceprint.gallery.index import ExactIndex

    exact = ExactIndex(128)
    exact.add(np.arange(len(base), dtype=np.int64), base)
    times, truth = [], []
    for q in queries:
        t = time.perf_counter()
        truth.append(exact.search(q[None], 1)[1][0, 0])
        times.append(time.perf_counter() - t)
    return np.array(truth), *percentiles(times)


def scale(args: argparse.Namespace) -> None:
    from faceprint.gallery.index import UsearchIndex

    model = fitted_model(args) if "dlib" in args.data else None
    rows = []
    for kind in args.data.split(","):
        for n in [int(s) for s in args.sizes.split(",")]:
            base, queries = scale_data(kind, n, args.queries, model)
            ids = np.arange(n, dtype=np.int64)
            truth, e50, e99 = exact_truth(base, queries[: args.exact_queries])
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
                    rows.append((kind, f"{n:,}", dtype, str(ef), f"{e50:.2f}", f"{e99:.2f}", f"{a50:.3f}", f"{a99:.3f}",
                                 f"{e50 / a50:.0f}x", f"{hits / len(truth):.4f}", f"{ann.serialized_bytes / n:.0f}",
                                 f"{build:,.0f}"))
                    print(rows[-1], flush=True)
                del ann
    print_table(("data", "faces", "ANN dtype", "ef", "exact p50 ms", "exact p99 ms", "ANN p50 ms", "ANN p99 ms",
                 "speed-up", "recall@1", "ANN bytes/face", "ANN adds/s"), rows, args.markdown)
    if not args.no_sqlite:
        sqlite_rates(args.markdown)


def rss_bytes() -> int:
    """Resident bytes of this process after returning freed heap pages to the system."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def gallery_scale(args: argparse.Namespace) -> None:
    """The SQLite gallery end to end: enroll ``n`` dlib-shaped faces (4 per person; stored as
    ``--dtype``), let ``ann="on"`` build its int8 HNSW graph, then time ``Gallery.search``
    (graph shortlist + exact re-ranking from the file) against exact search over the same
    stored vectors and over the float32 originals."""
    import tempfile

    from faceprint import Embeddings
    from faceprint.gallery import open_gallery

    model = fitted_model(args)
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        base, queries = scale_data("dlib", n, args.queries, model)
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            db = Path(tmp) / "g.db"
            g = open_gallery(db, dtype=args.dtype, ann="off")
            t = time.perf_counter()
            for s in range(0, n, 4):  # one person (4 photos) per transaction
                g.add_faces(f"p{s // 4}", Embeddings(base[s:s + 4], "dlib_resnet_v1"))
            enroll = n / (time.perf_counter() - t)
            g.close()
            stored = open_gallery(db, ann="off")  # exact search over the stored (int8) vectors
            stored_truth = [m[0].sample_id for m in stored.search(Embeddings(queries, "dlib_resnet_v1"), k=1)]
            stored.close()
            float_truth = exact_truth(base, queries)[0] + 1  # sample ids start at 1
            rss0 = rss_bytes()
            t = time.perf_counter()
            g = open_gallery(db, ann="on")
            g.search(Embeddings(queries[:1], "dlib_resnet_v1"), k=1)  # loads and builds the HNSW index
            build = time.perf_counter() - t
            rss = (rss_bytes() - rss0) / n
            ann_bytes = g._index.serialized_bytes / n
            with open(db, "rb") as f:  # the file in the OS page cache, as on a server that has run a while
                while f.read(1 << 24):
                    pass
            for ef in (int(e) for e in str(args.ef).split(",")):
                g._index.expansion_search = ef
                times, got = [], []
                for q in queries:
                    t = time.perf_counter()
                    got.append(g.search(Embeddings(q[None], "dlib_resnet_v1"), k=1)[0][0].sample_id)
                    times.append(time.perf_counter() - t)
                p50, p99 = percentiles(times)
                got = np.array(got)
                same_person = np.mean((got - 1) // 4 == (float_truth - 1) // 4)
                rows.append((f"{n:,}", args.dtype, str(ef), f"{p50:.3f}", f"{p99:.3f}", f"{np.mean(got == stored_truth):.4f}",
                             f"{np.mean(got == float_truth):.4f}", f"{same_person:.4f}", f"{ann_bytes:.0f}", f"{rss:.0f}",
                             f"{enroll:,.0f}", f"{build:.0f}"))
                print(rows[-1], flush=True)
            g.close()
    print_table(("faces", "stored as", "ef", "search p50 ms", "search p99 ms", "recall@1 vs exact (stored)",
                 "recall@1 vs exact (float32)", "same person as float32 exact", "HNSW bytes/face", "process RSS bytes/face", "enrolled faces/s",
                 "index build s"), rows, args.markdown)


def gallery_path(args: argparse.Namespace) -> None:
    """The SQLite gallery on the user's path (:mod:`gallery_path`): each step in a fresh process,
    the vectors, the enrolled database and its graph cached in ``--cache-dir``."""
    import json
    import shutil
    import subprocess

    import gallery_path as gp

    cache = args.cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    db, res = cache / f"g{args.size}.db", cache / f"path{args.size}.json"

    def step(name: str) -> dict:
        cmd = [sys.executable, __file__, "path", "--step", name] + sys.argv[sys.argv.index("path") + 1:]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        print(out.stdout, out.stderr[-2000:], flush=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    if args.step:
        data = gp.vectors(cache, args.size, args.queries, lambda: fitted_model(args))
        if args.step == "vectors":
            got = {"vectors": len(data["base"])}
        elif args.step == "enroll":
            got = gp.enroll(db, data["base"])
        elif args.step == "build":
            got = gp.build(db, data["stranger"])
        elif args.step == "anchor":
            got = gp.exact_anchor(data, 200)
        else:
            run = cache / "run.db"
            for f in (run, Path(str(run) + ".usearch"), Path(str(run) + "-wal"), Path(str(run) + "-shm")):
                f.unlink(missing_ok=True)
            shutil.copyfile(db, run)
            shutil.copyfile(str(db) + ".usearch", str(run) + ".usearch")
            got = gp.measure(run, data, [int(e) for e in args.efs.split(",")],
                             [float(r) for r in args.write_rates.split(",")], args.write_s)
        print(json.dumps(got), flush=True)
        return
    meta = json.loads(res.read_text()) if res.is_file() else {}
    step("vectors")
    if not db.is_file():
        meta["enroll"] = step("enroll")
    if not Path(str(db) + ".usearch").is_file():
        meta["build"] = step("build")
    res.write_text(json.dumps(meta))
    meta["load_before"] = os.getloadavg()
    meta["measure"] = step("measure")
    meta["anchor"] = step("anchor")
    meta["load_after"] = os.getloadavg()
    res.with_name(f"measured{args.size}_{time.strftime('%H%M%S')}.json").write_text(json.dumps(meta, indent=1))
    res.write_text(json.dumps({k: meta[k] for k in ("enroll", "build") if k in meta}))
    m = meta["measure"]
    fmt = lambda v, f: "-" if v is None else format(v, f)
    rows = [(r["row"], str(r["ef"]), f"{r['p50']:.2f}", f"{r['p99']:.2f}", fmt(r.get("search_p50"), ".2f"),
             fmt(r.get("search_p99"), ".2f"), fmt(r["recall"], ".3f"), fmt(r["known_right"], ".3f"),
             fmt(r["unknown"], ".3f"), f"{r['load']:.1f}") for r in m["rows"] + [meta["anchor"]]]
    print_table(("row", "ef", "identify p50 ms", "identify p99 ms", "search p50 ms", "search p99 ms", "recall@1",
                 "identified right", "unknown", "load avg"), rows, args.markdown)
    print_table(("tuning set: ef", "recall@1", "search p50 ms"),
                [(str(t["ef"]), f"{t['recall']:.3f}", f"{t['p50']:.2f}") for t in m["tune"]], args.markdown)
    print(json.dumps({k: v for k, v in meta.items() if k not in ("measure",)}, indent=1))
    print(json.dumps({k: v for k, v in m.items() if k != "rows"}, indent=1))


def sqlite_rates(markdown: bool) -> None:
    """Enrollment rate, file size and first-query (load) time of float32 and int8 SQLite galleries."""
    import tempfile

    from faceprint import Embeddings
    from faceprint.gallery import open_gallery

    rows = []
    for n in (1000, 20000):
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
                rows, markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("openset")
    o.add_argument("--root", type=Path, default=LFW)
    o.add_argument("--records", type=Path, default=None, help="pickle of per-photo pipeline outputs (--tune, --gate)")
    o.add_argument("--anchor", action="store_true", help="face_recognition side by side (slow: HOG + dlib)")
    o.add_argument("--anchor-cache", type=Path, default=None, help="pickle of face_recognition outputs")
    o.add_argument("--plot", type=Path, default=None)
    o.add_argument("--markdown", action="store_true")
    o.add_argument("--tune", action="store_true",
                   help="only the tuning part: the threshold-by-size table and the rule that chose it")
    o.add_argument("--write-stats", type=Path, default=None,
                   help="with --tune: fit the phantoms' Gaussian on the tuning part and write it here first")
    o.add_argument("--gate", action="store_true", help="only the tuning part: what each gate rule refuses")
    s = sub.add_parser("scale")
    s.add_argument("--data", default="dlib,iid",
                   help="synthetic vectors: dlib (Gaussian fitted to LFW embeddings) and/or iid (isotropic)")
    s.add_argument("--root", type=Path, default=LFW, help="LFW View 1 images the dlib-shaped model is fitted on")
    s.add_argument("--cache", type=Path, default=None, help="npz of faceprint LFW vectors (as openset)")
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
    gs = sub.add_parser("gallery", help="int8 SQLite gallery end to end (HNSW shortlist + exact re-ranking)")
    gs.add_argument("--root", type=Path, default=LFW)
    gs.add_argument("--cache", type=Path, default=None)
    gs.add_argument("--sizes", default="100000")
    gs.add_argument("--queries", type=int, default=200)
    gs.add_argument("--ef", default="128")
    gs.add_argument("--dtype", default="int8", help="the gallery's vector storage (float32, float16, int8)")
    gs.add_argument("--tmp", type=Path, default=None, help="folder for the temporary database")
    gs.add_argument("--markdown", action="store_true")
    up = sub.add_parser("path", help="SQLite gallery on the user's path: open_gallery(db) defaults, cold cache, "
                        "strangers, ef tuned on separate queries, writes during searches")
    up.add_argument("--root", type=Path, default=LFW)
    up.add_argument("--cache", type=Path, default=None, help="npz of faceprint LFW vectors (as openset)")
    up.add_argument("--cache-dir", type=Path, default=Path("/tmp/faceprint-gallery-path"),
                    help="vectors, the enrolled database and its graph (reused by the next run)")
    up.add_argument("--size", type=int, default=1_000_000)
    up.add_argument("--queries", type=int, default=1000, help="per set: tuning, reported, strangers")
    up.add_argument("--efs", default="128,192,256,320,384,512", help="widths tried on the tuning set")
    up.add_argument("--write-rates", default="1,0", help="writer persons/s while searching (0: flat out)")
    up.add_argument("--write-s", type=float, default=30.0, help="seconds of searching under each writer")
    up.add_argument("--step", default=None, help=argparse.SUPPRESS)
    up.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    {"openset": openset, "scale": scale, "gallery": gallery_scale, "path": gallery_path}[args.cmd](args)


if __name__ == "__main__":
    main()
