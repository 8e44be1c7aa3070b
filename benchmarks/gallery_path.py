"""The SQLite gallery at scale on the user's path (issue 15), for ``bench_gallery.py path``.

Everything goes through ``open_gallery(db)`` with its defaults (float32 storage, ``ann="auto"``:
an int8 HNSW graph above 50,000 samples, re-ranked with the stored vectors) and the calls
``Recognizer`` makes (``Gallery.identify`` with the calibrated open-set policy; ``Gallery.search``
for recall@1). Each step runs in a fresh process:

1. ``enroll``: a new gallery, one person (4 dlib-shaped photos) per transaction, as ``enroll``
   writes; the index is in its default state (nothing searches during enrollment).
2. ``build``: the first search of a fresh process builds the graph; ``close`` persists it.
3. ``measure`` (on a copy of the cached database, so writes never reach the cache): the file's
   pages are dropped from the OS page cache first (``posix_fadvise DONTNEED``), then

   - the reported queries at the default ef, cold (the user's-path row);
   - the tuning queries at each ef: the smallest width with recall@1 >= 0.99 is chosen there;
   - the reported queries at the tuned ef, strangers (identities never enrolled) at both;
   - warm (the file read into the page cache): an extra row;
   - the time until a face written by another process is findable (the index sync);
   - searches while a writer process adds one person per transaction (random vectors);
   - in a last process, exact BLAS search over the float32 originals: the anchor.

Query sets: new photos of enrolled identities; the tuning and reported identities are disjoint
halves of a random draw; strangers are fresh identity centres from the same model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_gallery import percentiles as pct

MODEL = "dlib_resnet_v1"
PER = 4


def vectors(cache: Path, n: int, queries: int, model_fn: Any) -> dict[str, np.ndarray]:
    """Base ``(n, 128)``, ``tune``/``report``/``stranger`` queries and their person indices; cached."""
    path = cache / f"vectors_{n}_{queries}.npz"
    if path.is_file():
        return dict(np.load(path))
    model = model_fn()
    people = n // PER
    centres = model.centres(people, np.random.default_rng(0))
    base = model.photos(centres[np.arange(n) // PER], np.random.default_rng(2))
    rng = np.random.default_rng(1)
    pick = rng.permutation(people)[: 2 * queries]
    tune_p, report_p = pick[:queries], pick[queries:]
    out = {"base": base, "tune_p": tune_p, "report_p": report_p,
           "tune": model.photos(centres[tune_p], rng), "report": model.photos(centres[report_p], rng),
           "stranger": model.photos(model.centres(queries, np.random.default_rng(3)), rng),
           "fresh": model.photos(model.centres(64, np.random.default_rng(4)), rng)}
    out["truth_tune"], out["truth_report"] = exact_nearest(base, out["tune"]), exact_nearest(base, out["report"])
    np.savez(path, **out)
    return out


def exact_nearest(base: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Sample id (1-based, the gallery's) of each query's nearest base vector, by BLAS in chunks."""
    best_d = np.full(len(queries), np.inf)
    best_i = np.zeros(len(queries), np.int64)
    qq = (queries.astype(np.float64) ** 2).sum(1)
    for s in range(0, len(base), 100_000):
        b = base[s:s + 100_000].astype(np.float64)
        d = qq[:, None] - 2 * queries @ b.T + (b ** 2).sum(1)[None]
        j = d.argmin(1)
        better = d[np.arange(len(queries)), j] < best_d
        best_d[better], best_i[better] = d[np.arange(len(queries)), j][better], s + j[better]
    return best_i + 1


def enroll(db: Path, base: np.ndarray) -> dict[str, float]:
    """Fresh gallery with the defaults, one person per transaction; faces/s overall and per tenth."""
    from faceprint import Embeddings
    from faceprint.gallery import open_gallery

    g = open_gallery(db)
    t0 = time.perf_counter()
    marks = []
    for s in range(0, len(base), PER):
        g.add_faces(f"p{s // PER}", Embeddings(base[s:s + PER], MODEL))
        if (s + PER) % (len(base) // 10) == 0:
            marks.append(time.perf_counter())
    total = time.perf_counter() - t0
    g.close()
    tenth = len(base) / 10
    edges = [t0] + marks
    return {"enroll_s": total, "enroll_rate": len(base) / total,
            "enroll_rate_first_tenth": tenth / (edges[1] - edges[0]),
            "enroll_rate_last_tenth": tenth / (edges[-1] - edges[-2])}


def build(db: Path, q: np.ndarray) -> dict[str, float]:
    """The first search of a fresh process (loads the samples, builds the graph), then close (saves it)."""
    from faceprint import Embeddings
    from faceprint.gallery import open_gallery

    t = time.perf_counter()
    g = open_gallery(db)
    g.identify(Embeddings(q[:1], MODEL))
    first = time.perf_counter() - t
    t = time.perf_counter()
    g.close()
    return {"build_first_query_s": first, "build_save_s": time.perf_counter() - t,
            "graph_bytes": Path(str(db) + ".usearch").stat().st_size}


def drop_cache(*paths: Path) -> None:
    for p in paths:
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def cached_pages(path: Path) -> str:
    """``fincore``'s resident size of ``path`` (what is in the page cache)."""
    try:
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "-o", "RES", str(path)], check=False,
                             capture_output=True, text=True, timeout=30).stdout.strip()
        return f"{int(out) / 2**20:.0f} MiB"
    except (OSError, ValueError, subprocess.SubprocessError):
        return "?"


def timed_identify(g: Any, qs: np.ndarray) -> tuple[list[float], list[Any]]:
    from faceprint import Embeddings

    times, got = [], []
    for q in qs:
        t = time.perf_counter()
        got.append(g.identify(Embeddings(q[None], MODEL))[0])
        times.append(time.perf_counter() - t)
    return times, got


def recall(g: Any, qs: np.ndarray, truth: np.ndarray) -> tuple[float, list[float]]:
    from faceprint import Embeddings

    times, hits = [], 0
    for q, want in zip(qs, truth):
        t = time.perf_counter()
        hits += int(g.search(Embeddings(q[None], MODEL), k=1)[0][0].sample_id == want)
        times.append(time.perf_counter() - t)
    return hits / len(qs), times


def row(label: str, ef: Any, times: list[float], rec: Any, known: Any, unknown: Any) -> dict[str, Any]:
    p50, p99 = pct(times)
    r = {"row": label, "ef": ef, "p50": p50, "p99": p99, "recall": rec, "known_right": known, "unknown": unknown,
         "n": len(times), "load": os.getloadavg()[0]}
    print(json.dumps(r), flush=True)
    return r


def enrolled_row(label: str, ef: Any, g: Any, qs: np.ndarray, persons: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """identify latency and accepted-as-the-right-person rate, plus recall@1 of ``search``."""
    times, got = timed_identify(g, qs)
    right = np.mean([i.name == f"p{p}" for i, p in zip(got, persons)])
    unknown = np.mean([i.name is None for i in got])
    rec, search_times = recall(g, qs, truth)
    r = row(label, ef, times, rec, float(right), float(unknown))
    r["search_p50"], r["search_p99"] = pct(search_times)
    return r


def stranger_row(label: str, ef: Any, g: Any, qs: np.ndarray) -> dict[str, Any]:
    times, got = timed_identify(g, qs)
    return row(label, ef, times, None, None, float(np.mean([i.name is None for i in got])))


def writer(db: str, start: int, rate: float, seconds: float, seed: int) -> None:
    """Another process: one person (4 faces) per transaction, ``rate`` per second (0: flat out)."""
    from faceprint import Embeddings
    from faceprint.gallery import open_gallery

    rng = np.random.default_rng(seed)
    g = open_gallery(db)
    t0, done, lat = time.time(), 0, []
    while time.time() - t0 < seconds:
        t = time.perf_counter()
        g.add_faces(f"w{start + done}", Embeddings(rng.normal(0, 0.1, (PER, 128)).astype(np.float32), MODEL))
        lat.append(time.perf_counter() - t)
        done += 1
        if rate > 0:
            time.sleep(max(0.0, t0 + done / rate - time.time()))
    g.close()
    p50, p99 = pct(lat)
    print(json.dumps({"writes": done, "write_p50": p50, "write_p99": p99, "per_s": done / (time.time() - t0)}),
          flush=True)


def spawn_writer(db: Path, start: int, rate: float, seconds: float) -> subprocess.Popen:
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import gallery_path as g; "
            f"g.writer({str(db)!r}, {start}, {rate}, {seconds}, {start})")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def findable(g: Any, db: Path, fresh: np.ndarray, tries: int, give_up_s: float = 30.0) -> dict[str, Any]:
    """Time from another process's commit of one person until this process's search returns them
    (``None``: still not found after ``give_up_s``), and the duration of the searches (the first
    pays the sync of the in-memory index)."""
    from faceprint import Embeddings

    waits, syncs, others, missed = [], [], [], []
    for k in range(tries):
        vec = fresh[k * PER:(k + 1) * PER]
        code = ("import sys, time, numpy as np; from faceprint import Embeddings; "
                "from faceprint.gallery import open_gallery; "
                f"g = open_gallery({str(db)!r}); v = np.load(sys.argv[1]); "
                f"g.add_faces('fresh{k}', Embeddings(v, {MODEL!r})); print(time.time()); g.close()")
        tmp = db.with_name(f"fresh{k}.npy")
        np.save(tmp, vec)
        committed = float(subprocess.run([sys.executable, "-c", code, str(tmp)], capture_output=True, text=True,
                                         check=True).stdout.split()[-1])
        while True:
            t = time.perf_counter()
            hit = g.search(Embeddings(vec[:1], MODEL), k=1)[0][0].name == f"fresh{k}"
            syncs.append(time.perf_counter() - t)
            if hit or time.time() - committed > give_up_s:
                waits.append(time.time() - committed if hit else None)
                if not hit:
                    top = g.search(Embeddings(vec[:1], MODEL), k=1)[0][0]
                    missed.append({"want": f"fresh{k}", "top": top.name, "sample": top.sample_id,
                                   "distance": round(top.distance, 4), "index_size": len(g._index),
                                   "seen_version": g._seen_version,
                                   "data_version": g._conn.execute("PRAGMA data_version").fetchone()[0]})
                break
        t = time.perf_counter()
        g.search(Embeddings(vec[:1], MODEL), k=1)
        others.append(time.perf_counter() - t)
    r = {"findable_after_s": [None if w is None else round(w, 3) for w in waits],
         "searches": len(syncs), "sync_search_ms": [round(s * 1000, 1) for s in syncs[:20]],
         "next_search_ms": [round(s * 1000, 2) for s in others], "missed": missed}
    print(json.dumps(r), flush=True)
    return r


def measure(db: Path, data: dict[str, np.ndarray], efs: list[int], write_rates: list[float],
            write_s: float) -> dict[str, Any]:
    from faceprint import Embeddings
    from faceprint.gallery import open_gallery
    from faceprint.gallery.sqlite import ANN_EF

    ann = Path(str(db) + ".usearch")
    drop_cache(db, ann)
    out: dict[str, Any] = {"file_mib": db.stat().st_size / 2**20, "graph_mib": ann.stat().st_size / 2**20,
                           "cached_before": cached_pages(db), "ram_gib": os.sysconf("SC_PHYS_PAGES")
                           * os.sysconf("SC_PAGE_SIZE") / 2**30, "rows": []}
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}), flush=True)
    rows = out["rows"]
    t = time.perf_counter()
    g = open_gallery(db)
    g.identify(Embeddings(data["stranger"][:1], MODEL))
    out["first_query_s"] = time.perf_counter() - t
    out["cached_after_load"] = cached_pages(db)
    print(json.dumps({"first_query_s": out["first_query_s"], "cached_after_load": out["cached_after_load"]}),
          flush=True)
    idx = g._index  # the width is not an option of open_gallery: set on the loaded index
    rows.append(enrolled_row("enrolled, cold cache (user's path)", ANN_EF, g, data["report"], data["report_p"],
                             data["truth_report"]))
    rows.append(stranger_row("strangers, cold cache", ANN_EF, g, data["stranger"]))
    out["cached_after_cold"] = cached_pages(db)
    tune = []
    for ef in efs:
        idx.expansion_search = ef
        rec, times = recall(g, data["tune"], data["truth_tune"])
        tune.append({"ef": ef, "recall": rec, "p50": pct(times)[0]})
        print(json.dumps(tune[-1]), flush=True)
    out["tune"] = tune
    ok = [r["ef"] for r in tune if r["recall"] >= 0.99]
    tuned = min(ok) if ok else max(efs)
    out["tuned_ef"] = tuned
    idx.expansion_search = tuned
    rows.append(enrolled_row("enrolled, tuned ef", tuned, g, data["report"], data["report_p"], data["truth_report"]))
    rows.append(stranger_row("strangers, tuned ef", tuned, g, data["stranger"]))
    idx.expansion_search = ANN_EF
    # warm: the file in the page cache, as on a server that has run a while. Read by another
    # process: closing a descriptor of an open SQLite file drops this process's locks on it
    subprocess.run(["cat", str(db), str(db) + "-wal"], stdout=subprocess.DEVNULL, check=False)
    rows.append(enrolled_row("extra: enrolled, warm cache", ANN_EF, g, data["report"], data["report_p"],
                             data["truth_report"]))
    out["findable"] = findable(g, db, data["fresh"], 5)
    for n, rate in enumerate(write_rates):
        w = spawn_writer(db, 1_000_000 * (n + 1), rate, write_s)
        t0, times = time.time(), []
        qs = data["report"]
        while time.time() - t0 < write_s - 1:
            q = qs[len(times) % len(qs)]
            t = time.perf_counter()
            g.identify(Embeddings(q[None], MODEL))
            times.append(time.perf_counter() - t)
        wres = json.loads(w.communicate()[0].strip().splitlines()[-1])
        r = row(f"enrolled, writer {'flat out' if rate == 0 else f'{rate:g} person/s'}", ANN_EF, times, None, None,
                None)
        r.update(wres, over_100ms=int(np.sum(np.array(times) > 0.1)), max_ms=max(times) * 1000)
        rows.append(r)
    t = time.perf_counter()  # the writers' last faces, synced outside every row
    g.search(Embeddings(data["report"][:1], MODEL), k=1)
    out["sync_after_writers_s"] = time.perf_counter() - t
    g.close()
    return out


def exact_anchor(data: dict[str, np.ndarray], queries: int) -> dict[str, Any]:
    from faceprint.gallery.index import ExactIndex

    ex = ExactIndex(128)
    ex.add(np.arange(1, len(data["base"]) + 1, dtype=np.int64), data["base"])
    times, hits = [], 0
    for q, want in zip(data["report"][:queries], data["truth_report"]):
        t = time.perf_counter()
        hits += int(ex.search(q[None], 1)[1][0, 0] == want)
        times.append(time.perf_counter() - t)
    r = row("anchor: exact BLAS (ExactIndex, float32 in memory)", "-", times, hits / len(times), None, None)
    r["search_p50"], r["search_p99"] = r["p50"], r["p99"]
    return r
