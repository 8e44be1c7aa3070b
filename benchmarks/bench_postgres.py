"""The PostgreSQL + pgvector gallery at scale, side by side with the SQLite + usearch gallery.

Both galleries are filled through ``Gallery.add_faces`` (one person of 4 photos per call, as
enrollment does) with dlib-shaped synthetic faces (``bench_gallery``'s Gaussian model fitted on
faceprint's LFW View 1 vectors), then searched one query at a time through ``Gallery.search``
(k=1, what identify asks for first). Recall@1 is against exact search over the same vectors
(numpy). The queries are split in halves: pgvector's ``ef_search`` is chosen on the tuning half
(the smallest width of ``--ef`` whose recall@1 reaches 0.99) and every row reports the other
half. Postgres runs on the ``pgserver`` wheel (PostgreSQL 16 + pgvector) over a Unix socket, on
this machine. Every Postgres row also prints the server backend's CPU time per query (its
``/proc/PID/stat``) and the client's, which hold better than wall time on a shared machine.

``--ivfflat LISTS`` builds pgvector's IVFFlat index (``lists`` k-means cells) instead of HNSW on
the bulk-filled galleries (``--bulk-from``; a database of its own, ``bench{N}_ivfflat``, whose
index is rebuilt when a later run asks for other ``lists``). The number of cells scanned per
query, ``ivfflat.probes``, is then chosen on the tuning half from ``--probes`` (the smallest
reaching 0.99) and set through the connection URI (``options=-c ivfflat.probes=P``), so the
search is still ``Gallery.search``.

Every size also gets the rows of the in-process graph (``local_index``, the default search of a
Postgres gallery from 50,000 faces; ``--no-local`` skips them): the graph is built from the
server's rows in this process (timed) and saved, then a new process loads it (timed), tunes
its width on the tuning half and searches the report half at the default width and the chosen
one. ``--no-hnsw`` makes bulk fills build no pgvector index (its 1M build takes ~15 minutes):
only the graph and exact rows. ``--sqlite-up-to N`` leaves the SQLite rows out above N faces.

``--replicas`` also measures how soon a face enrolled through one process is found by another
process polling the same Postgres gallery (the two-replica service case): by its photo hash
(a SQL lookup), and by ``search`` on the in-process graph of the last size's gallery.

``--pgdata DIR`` keeps the server's data folder: a later run with the same folder searches a
database that already holds the faces instead of filling it again (a 1M fill and index build
takes tens of minutes). ``--pg-setting shared_buffers=2GB`` changes a server setting (``ALTER
SYSTEM``, then a restart) before the runs; every run prints the settings, the HNSW index's size
and one query's ``EXPLAIN (ANALYZE, BUFFERS)`` so the buffer hits and reads can be read off.

Run: ``python benchmarks/bench_postgres.py --sizes 100000[,1000000] [--lfw-cache F.npz] [--markdown]``.
The machine running these may be shared: compare rows of one run, not absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import print_table  # noqa: E402,I001
from bench_gallery import LFW, DlibShaped, exact_truth, percentiles, scale_data  # noqa: E402

MODEL = "dlib_resnet_v1"
PER = 4


def lfw_model(root: Path, cache: Path | None) -> DlibShaped:
    """The Gaussian model of faceprint's vectors of LFW View 1 (plain pipeline; cached)."""
    from faceprint.evaluation.openset import lfw_images

    paths, names = lfw_images(root)
    if cache is not None and cache.is_file():
        vectors = np.load(cache)["plain"]
    else:
        from faceprint import FacePipeline
        from faceprint.evaluation.lfw import embed_images

        vectors = embed_images(FacePipeline(), paths)[0].vectors
        if cache is not None:
            np.savez(cache, plain=vectors)
    return DlibShaped(vectors, names)


def enroll(gallery, base: np.ndarray) -> tuple[np.ndarray, float]:
    """Every face through ``add_faces`` (4 per person); the sample ids in ``base`` order and faces/s."""
    from faceprint import Embeddings

    ids = []
    t = time.perf_counter()
    for s in range(0, len(base), PER):
        ids += gallery.add_faces(f"p{s // PER}", Embeddings(base[s:s + PER], MODEL))
        if s and s % 100_000 == 0:
            print(f"  {s:,} faces, {s / (time.perf_counter() - t):,.0f}/s", flush=True)
    return np.array(ids, np.int64), len(base) / (time.perf_counter() - t)


def hnsw_ddl(graph: tuple[int, int]) -> str:
    """The gallery's HNSW index with ``graph`` = (m, ef_construction)."""
    return (f"CREATE INDEX samples_hnsw ON samples USING hnsw (vector vector_l2_ops) "
            f"WITH (m = {graph[0]}, ef_construction = {graph[1]})")


def ivfflat_ddl(lists: int) -> str:
    """An IVFFlat index of ``lists`` cells in place of the gallery's HNSW index."""
    return f"CREATE INDEX samples_ivfflat ON samples USING ivfflat (vector vector_l2_ops) WITH (lists = {lists})"


def build_index(conn, ddl: str) -> float:
    """Run the ``CREATE INDEX`` statement ``ddl`` with build memory; seconds taken."""
    conn.execute("SET maintenance_work_mem = '4GB'")
    conn.execute("SET max_parallel_maintenance_workers = 2")
    t = time.perf_counter()
    conn.execute(ddl)
    return time.perf_counter() - t


def bulk_load(uri: str, base: np.ndarray, ddl: str) -> tuple[np.ndarray, float]:
    """Fill the gallery's tables with ``COPY`` and build the index (``ddl``, a ``CREATE INDEX``)
    afterwards (what a migration of an existing collection would do; not the ``add_faces``
    path): sample ids in ``base`` order and the index build seconds."""
    import psycopg
    from pgvector.psycopg import register_vector

    from faceprint import Embeddings
    from faceprint.gallery import open_gallery

    with open_gallery(uri) as g:  # creates and binds the tables (dimension, index)
        g.add_faces("p0", Embeddings(base[:PER], MODEL))
    with psycopg.connect(uri, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("DROP INDEX samples_hnsw")
        # a writer of samples counts its write, as add_faces does (in-process graphs follow it)
        conn.execute("UPDATE gallery_meta SET value = (value::bigint + 1)::text WHERE key = 'version'")
        with conn.cursor().copy("COPY people (id, name, metadata, created_at) FROM STDIN") as cp:
            for p in range(1, len(base) // PER):
                cp.write_row((p + 1, f"p{p}", "{}", 0.0))
        with conn.cursor().copy("COPY samples (id, person_id, model_id, vector, created_at) FROM STDIN "
                                "WITH (FORMAT BINARY)") as cp:
            cp.set_types(["int8", "int8", "text", "vector", "float8"])
            for i in range(PER, len(base)):
                cp.write_row((i + 1, i // PER + 1, MODEL, base[i], 0.0))
        conn.execute("SELECT setval('samples_id_seq', %s), setval('people_id_seq', %s)",
                     (len(base), len(base) // PER))
        build = build_index(conn, ddl) if ddl else 0.0
        conn.execute("VACUUM ANALYZE samples")  # hint bits and statistics, as autovacuum would leave them
    return np.arange(1, len(base) + 1, dtype=np.int64), build


def filled(uri: str, base: np.ndarray) -> bool:
    """True when the database already holds exactly ``base`` as samples ``1..n`` (a kept ``--pgdata``)."""
    import psycopg
    from pgvector.psycopg import register_vector

    with psycopg.connect(uri, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('samples')").fetchone()[0] is None:
            return False
        register_vector(conn)
        if conn.execute("SELECT count(*) FROM samples").fetchone()[0] != len(base):
            return False
        probe = [1, len(base) // 2, len(base)]
        got = dict(conn.execute("SELECT id, vector FROM samples WHERE id = ANY(%s)", (probe,)).fetchall())
    return all(i in got and np.allclose(got[i].to_numpy(), base[i - 1]) for i in probe)


def ivfflat_lists(uri: str) -> int | None:
    """The ``lists`` of the database's IVFFlat index, ``None`` without one."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        row = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'samples_ivfflat'").fetchone()
    return None if row is None else int(row[0].split("lists='")[1].split("'")[0])


def rebuild_ivfflat(uri: str, lists: int) -> float:
    """Replace the database's vector index by an IVFFlat index of ``lists`` cells; build seconds."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("DROP INDEX IF EXISTS samples_hnsw")
        conn.execute("DROP INDEX IF EXISTS samples_ivfflat")
        return build_index(conn, ivfflat_ddl(lists))


def with_probes(uri: str, probes: int) -> str:
    """``uri`` with ``ivfflat.probes`` set on every connection (libpq ``options``)."""
    return f"{uri}{'&' if '?' in uri else '?'}options=-c%20ivfflat.probes%3D{probes}"


def backend_cpu_s(pid: int) -> float:
    """User + system CPU seconds of the server process ``pid`` (same machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def diagnose(uri: str, query: np.ndarray, index: str, setting: str) -> None:
    """Print the server's memory settings, the vector ``index``'s size and definition, and the
    buffers one search touches after ``SET LOCAL setting`` (e.g. ``hnsw.ef_search = 400``;
    shared hit = in PostgreSQL's buffers, read = from the OS)."""
    import psycopg
    from pgvector.psycopg import register_vector

    with psycopg.connect(uri, autocommit=True) as conn:
        register_vector(conn)
        for name in ("shared_buffers", "effective_cache_size", "jit", "max_parallel_workers_per_gather"):
            print(f"  {name} = {conn.execute(f'SHOW {name}').fetchone()[0]}")
        size, definition = conn.execute(f"SELECT pg_size_pretty(pg_relation_size('{index}')), indexdef "
                                        f"FROM pg_indexes WHERE indexname = '{index}'").fetchone()
        print(f"  {index}: {size}; {definition}")
        with conn.transaction():
            conn.execute(f"SET LOCAL {setting}")
            plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) SELECT id, person_id FROM samples "
                                "ORDER BY vector <-> %s LIMIT 1", (query,)).fetchall()
        for (line,) in plan:
            print(f"    {line[:100]}")


def smallest_reaching(tuned: list[tuple[int, float]], recall: float = 0.99) -> int:
    """The first (smallest) width of ``tuned`` ``(width, recall@1)`` pairs reaching ``recall``,
    else the last (widest) one."""
    return next((w for w, r in tuned if r >= recall), tuned[-1][0])


def timed_search(gallery, queries: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Sample id of the nearest stored face per query (one query per call), p50 and p99 ms."""
    from faceprint import Embeddings

    got, times = [], []
    for q in queries:
        t = time.perf_counter()
        got.append(gallery.search(Embeddings(q[None], MODEL), k=1)[0][0].sample_id)
        times.append(time.perf_counter() - t)
    return np.array(got), *percentiles(times)


def cpu_search(uri: str, options: dict, queries: np.ndarray) -> tuple[np.ndarray, float, float, float, float]:
    """:func:`timed_search` through a fresh ``open_gallery(uri, **options)``, plus the server
    backend's and this process's CPU ms per query."""
    from faceprint.gallery import open_gallery

    with open_gallery(uri, **options) as g:
        return measured_search(g, queries)


def measured_search(g, queries: np.ndarray) -> tuple[np.ndarray, float, float, float, float]:
    """:func:`timed_search` on an open gallery, plus the server backend's and this process's CPU ms per query."""
    pid = g._conn.info.backend_pid  # the gallery's one connection (a benchmark may look inside)
    server, client = backend_cpu_s(pid), time.process_time()
    got, p50, p99 = timed_search(g, queries)
    server, client = backend_cpu_s(pid) - server, time.process_time() - client
    return got, p50, p99, server * 1000 / len(queries), client * 1000 / len(queries)


def measured_row(uri: str, options: dict, queries: np.ndarray, truth_ids: np.ndarray, n: int, label: str,
                 rate_text: str) -> tuple:
    """One table row: ``queries`` searched through :func:`cpu_search`, recall@1 against
    ``truth_ids``; printed with the server's and client's CPU per query."""
    got, p50, p99, server_ms, client_ms = cpu_search(uri, options, queries)
    row = ("PostgreSQL + pgvector", f"{n:,}", label, f"{p50:.2f}", f"{p99:.2f}", f"{np.mean(got == truth_ids):.4f}",
           str(len(queries)), rate_text)
    print(row, f"server CPU {server_ms:.2f} ms/query, client CPU {client_ms:.2f} ms/query", flush=True)
    return row


def postgres_rows(uri: str, n: int, base: np.ndarray, tune_q: np.ndarray, tune_truth: np.ndarray,
                  report_q: np.ndarray, report_truth: np.ndarray, efs: list[int], exact_queries: int,
                  bulk: bool, graph: tuple[int, int], ivfflat: int = 0, probes: list[int] | None = None,
                  local: bool = True, hnsw: bool = True) -> list[tuple]:
    """The Postgres rows of one size: the in-process graph (``local``, see :func:`local_rows`),
    HNSW (``ef_search`` tuned over ``efs``; not built with a bulk fill when ``hnsw`` is false) or,
    with ``ivfflat`` lists, IVFFlat (``ivfflat.probes`` tuned over ``probes``); then exact search."""
    from faceprint.gallery import open_gallery
    from faceprint.gallery.postgres import auto_ef_search

    kept = filled(uri, base)
    if kept:
        ids, rate_text = np.arange(1, len(base) + 1, dtype=np.int64), "kept from an earlier run"
        print(f"  {uri.split('?')[0]}: {n:,} faces kept from an earlier run", flush=True)
        if ivfflat and ivfflat_lists(uri) != ivfflat:
            build = rebuild_ivfflat(uri, ivfflat)
            rate_text = f"kept faces; IVFFlat build {build:.0f} s"
            print(f"  IVFFlat index of {ivfflat} lists built in {build:.0f} s", flush=True)
    elif bulk:
        ids, build = bulk_load(uri, base, ivfflat_ddl(ivfflat) if ivfflat else hnsw_ddl(graph) if hnsw else "")
        rate_text = f"bulk COPY; {'IVFFlat' if ivfflat else 'HNSW'} build {build:.0f} s" if ivfflat or hnsw \
            else "bulk COPY, no server index"
        print(f"  {rate_text}", flush=True)
    else:
        g = open_gallery(uri)
        ids, rate = enroll(g, base)
        g.close()
        rate_text = f"{rate:,.0f}"
    if ivfflat:
        return ivfflat_rows(uri, n, ids, tune_q, tune_truth, report_q, report_truth, exact_queries, ivfflat,
                            probes or [1], rate_text)
    server_only = {"local_index": "off"}  # pgvector's HNSW on the server, not the in-process graph
    rows = local_rows(uri, n, tune_q, ids[tune_truth], report_q, ids[report_truth], rate_text) if local else []
    if not hnsw:
        return rows + [measured_row(uri, {"exact": True}, report_q[:exact_queries], ids[report_truth[:exact_queries]],
                                    n, "exact (exact=True)", rate_text)]
    timed_search(open_gallery(uri, **server_only), report_q[:50])  # warm the server's caches
    tuned = []
    for ef in efs:
        with open_gallery(uri, ef_search=ef, **server_only) as g:
            got, _, _ = timed_search(g, tune_q)
        tuned.append((ef, float(np.mean(got == ids[tune_truth]))))
        print(f"  tuning half: ef_search {ef}: recall@1 {tuned[-1][1]:.4f}", flush=True)
    chosen = smallest_reaching(tuned)
    diagnose(uri, report_q[0], "samples_hnsw", f"hnsw.ef_search = {chosen}")
    for label, options, q, truth in ((f"HNSW, ef_search {chosen} (chosen on the tuning half)",
                                      {"ef_search": chosen, **server_only}, report_q, report_truth),
                                     (f"HNSW, ef_search auto = {auto_ef_search(n)}", server_only, report_q,
                                      report_truth),
                                     ("exact (exact=True)", {"exact": True}, report_q[:exact_queries],
                                      report_truth[:exact_queries])):
        if "auto" in label and auto_ef_search(n) == chosen:
            continue
        rows.append(measured_row(uri, options, q, ids[truth], n, label, rate_text))
    return rows


def ivfflat_rows(uri: str, n: int, ids: np.ndarray, tune_q: np.ndarray, tune_truth: np.ndarray,
                 report_q: np.ndarray, report_truth: np.ndarray, exact_queries: int, lists: int,
                 probes: list[int], rate_text: str) -> list[tuple]:
    """IVFFlat rows: ``ivfflat.probes`` chosen on the tuning half (smallest of ``probes`` reaching
    recall@1 0.99), pgvector's default of 1 probe, and exact search, all on the report half."""
    from faceprint.gallery import open_gallery

    server_only = {"local_index": "off"}
    timed_search(open_gallery(with_probes(uri, probes[-1]), **server_only), report_q[:50])  # warm the caches
    tuned = []
    for p in probes:
        got, p50, _, server_ms, _ = cpu_search(with_probes(uri, p), server_only, tune_q)
        tuned.append((p, float(np.mean(got == ids[tune_truth]))))
        print(f"  tuning half: ivfflat.probes {p}: recall@1 {tuned[-1][1]:.4f} (p50 {p50:.2f} ms, "
              f"server CPU {server_ms:.2f} ms/query)", flush=True)
    chosen = smallest_reaching(tuned)
    how = "chosen on the tuning half" if dict(tuned)[chosen] >= 0.99 else "the widest tried: none reached 0.99 on tuning"
    diagnose(uri, report_q[0], "samples_ivfflat", f"ivfflat.probes = {chosen}")
    rows = []
    for label, target, options, q, truth in (
            (f"IVFFlat, lists {lists}, probes {chosen} ({how})", with_probes(uri, chosen), server_only,
             report_q, report_truth),
            (f"IVFFlat, lists {lists}, probes 1 (pgvector's default)", uri, server_only, report_q, report_truth),
            ("exact (exact=True)", uri, {"exact": True}, report_q[:exact_queries], report_truth[:exact_queries])):
        if "default" in label and chosen == 1:
            continue
        rows.append(measured_row(target, options, q, ids[truth], n, label, rate_text))
    return rows


LOCAL_SEARCHER = """
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[3])
from bench_postgres import MODEL, measured_search, smallest_reaching, timed_search
from faceprint import Embeddings
from faceprint.gallery import open_gallery
from faceprint.gallery.pglocal import EF
data = np.load(sys.argv[2])
t = time.perf_counter()
g = open_gallery(sys.argv[1], **json.loads(sys.argv[4]))
g.search(Embeddings(data["report_q"][:1], MODEL), k=1)  # loads the saved graph and catches up
out = {"first_s": time.perf_counter() - t, "kind": type(g._local).__name__, "tuning": {}, "rows": {}}
for ef in data["efs"]:
    g._local.index.expansion_search = int(ef)
    got = timed_search(g, data["tune_q"])[0]
    out["tuning"][int(ef)] = float(np.mean(got == data["tune_ids"]))
chosen = smallest_reaching(list(out["tuning"].items()))
for ef in dict.fromkeys([EF, chosen]):
    g._local.index.expansion_search = ef
    got, p50, p99, server_ms, client_ms = measured_search(g, data["report_q"])
    out["rows"][ef] = {"recall": float(np.mean(got == data["report_ids"])), "p50": p50, "p99": p99,
                       "server_ms": server_ms, "client_ms": client_ms}
g.close()
out["chosen"] = chosen
print(json.dumps(out))
"""


def local_rows(uri: str, n: int, tune_q: np.ndarray, tune_ids: np.ndarray, report_q: np.ndarray,
               report_ids: np.ndarray, rate_text: str) -> list[tuple]:
    """The in-process graph (``local_index``): built from the server's rows in this process
    (timed, then saved), then searched by a fresh process that loads the saved graph, as a
    second replica or a CLI call would (the defaults from 50,000 faces). Its search width is
    also tuned there on the tuning half; the rows report the other half at the default width
    and, when it differs, the chosen one."""
    import json

    from faceprint import Embeddings
    from faceprint.gallery import open_gallery
    from faceprint.gallery.pglocal import EF
    from faceprint.gallery.postgres import LOCAL_INDEX_THRESHOLD

    t = time.perf_counter()
    with open_gallery(uri, local_index="on") as g:
        g.search(Embeddings(report_q[:1], MODEL), k=1)
        build = time.perf_counter() - t
        size = g._local.index.serialized_bytes
    print(f"  in-process graph: built from the server's rows in {build:.1f} s ({size / n:.0f} bytes/face)", flush=True)
    default = n >= LOCAL_INDEX_THRESHOLD
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "q.npz", tune_q=tune_q, tune_ids=tune_ids, report_q=report_q, report_ids=report_ids,
                 efs=np.array([160, 256, 320, 400, 512]))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        out = subprocess.run([sys.executable, "-c", LOCAL_SEARCHER, uri, str(Path(tmp) / "q.npz"),
                              str(Path(__file__).resolve().parent), json.dumps({} if default else {"local_index": "on"})],
                             env=env, capture_output=True, text=True, check=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    print("  in-process graph, tuning half:", ", ".join(f"ef {ef} -> {r:.4f}" for ef, r in got["tuning"].items()),
          f"(opened by a new process as {got['kind']}, first search {got['first_s']:.2f} s)", flush=True)
    rows = []
    for ef, m in got["rows"].items():
        how = ("the default" if default else "local_index=on") if int(ef) == EF else "chosen on the tuning half"
        rows.append(("PostgreSQL + in-process usearch graph", f"{n:,}", f"int8 graph, ef {ef} ({how}), re-ranked exactly",
                     f"{m['p50']:.2f}", f"{m['p99']:.2f}", f"{m['recall']:.4f}", str(len(report_q)),
                     f"{rate_text}; graph build {build:.0f} s, load in a new process {got['first_s']:.2f} s"))
        print(rows[-1], f"server CPU {m['server_ms']:.2f} ms/query, client CPU {m['client_ms']:.2f} ms/query",
              flush=True)
    return rows


def sqlite_rows(tmp: Path, n: int, base: np.ndarray, report_q: np.ndarray, report_truth: np.ndarray) -> list[tuple]:
    from faceprint.gallery import open_gallery

    db = tmp / f"g{n}.db"
    g = open_gallery(db)
    ids, rate = enroll(g, base)
    g.close()
    with open_gallery(db) as g:  # defaults: the int8 usearch graph (ann="auto") re-ranked exactly
        timed_search(g, report_q[:50])  # builds or loads the graph
        got, p50, p99 = timed_search(g, report_q)
        kind = type(g._index).__name__
    return [("SQLite + usearch (default)", f"{n:,}", kind, f"{p50:.2f}", f"{p99:.2f}",
             f"{np.mean(got == ids[report_truth]):.4f}", str(len(report_q)), f"{rate:,.0f}")]


WATCHER = """
import sys, time
from faceprint.gallery import open_gallery
g = open_gallery(sys.argv[1])
print("ready", flush=True)
for line in sys.stdin:
    digest = line.strip()
    while g.find_photo(digest) is None:
        pass
    print(time.time(), flush=True)
"""


SEARCH_WATCHER = """
import sys, time
import numpy as np
from faceprint import Embeddings
from faceprint.gallery import open_gallery
g = open_gallery(sys.argv[1], local_index="on")  # the default ("auto") from 50,000 faces
g.search(Embeddings(np.zeros((1, 128), np.float32), sys.argv[2]), k=1)  # loads the graph
print("ready", flush=True)
for line in sys.stdin:
    v = np.array([float(x) for x in line.split(",")], np.float32)[None]
    while True:
        hit = g.search(Embeddings(v, sys.argv[2]), k=1)[0]
        if hit and hit[0].distance < 1e-4:
            break
    print(time.time(), flush=True)
"""


def local_replica_rows(uri: str, rounds: int, n: int) -> list[tuple]:
    """Seconds from ``add_faces`` returning in this process to another process's ``search``
    (the defaults: the in-process graph at this size) returning the new face; the faces are
    removed again afterwards."""
    from faceprint import Embeddings
    from faceprint.gallery import open_gallery

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    watcher = subprocess.Popen([sys.executable, "-c", SEARCH_WATCHER, uri, MODEL], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=env)
    assert watcher.stdout.readline().strip() == "ready"
    lags = []
    rng = np.random.default_rng(6)
    with open_gallery(uri) as g:
        for i in range(rounds):
            v = rng.normal(0, 0.09, 128).astype(np.float32)
            watcher.stdin.write(",".join(f"{x:.9g}" for x in v) + "\n")
            watcher.stdin.flush()
            time.sleep(0.05)
            g.add_faces(f"replica-{i}", Embeddings(v[None], MODEL))
            done = time.time()
            lags.append(float(watcher.stdout.readline()) - done)
        for i in range(rounds):
            g.remove(f"replica-{i}")
    watcher.stdin.close()
    watcher.wait(timeout=60)
    lags_ms = np.array(lags) * 1000
    return [(f"enrollment found by another process's search (in-process graph, {n:,} faces)",
             f"{rounds} enrollments", f"{np.percentile(lags_ms, 50):.2f}", f"{lags_ms.max():.2f}")]


def replica_rows(uri: str, rounds: int) -> list[tuple]:
    """Seconds from ``add_faces`` returning in this process to another process finding the face
    by its photo hash (a SQL lookup)."""
    from faceprint import Embeddings
    from faceprint.gallery import open_gallery

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    watcher = subprocess.Popen([sys.executable, "-c", WATCHER, uri], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, env=env)
    assert watcher.stdout.readline().strip() == "ready"
    lags = []
    rng = np.random.default_rng(5)
    with open_gallery(uri) as g:
        for i in range(rounds):
            digest = f"{i:064x}"
            watcher.stdin.write(digest + "\n")
            watcher.stdin.flush()
            time.sleep(0.05)
            g.add_faces(f"replica-{i}", Embeddings(rng.normal(0, 0.09, (1, 128)), MODEL), hashes=[digest])
            done = time.time()
            lags.append(float(watcher.stdout.readline()) - done)
    watcher.stdin.close()
    watcher.wait(timeout=30)
    lags_ms = np.array(lags) * 1000
    return [("enrollment seen by another process (photo hash lookup)", f"{rounds} enrollments", f"{np.percentile(lags_ms, 50):.2f}",
             f"{lags_ms.max():.2f}")]


def configure(server, settings: list[str]) -> None:
    """Apply ``NAME=VALUE`` server settings (``ALTER SYSTEM``) and restart the server when any."""
    from pgserver._commands import pg_ctl
    from pgserver.utils import PostmasterInfo

    for setting in settings:
        name, _, value = setting.partition("=")
        server.psql(f"ALTER SYSTEM RESET {name};" if value == "default" else f"ALTER SYSTEM SET {name} = '{value}';")
    if settings:
        pg_ctl(["-w", "restart"], pgdata=server.pgdata, user=server.system_user, timeout=60)
        server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)  # the new pid, so cleanup() stops it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--queries", type=int, default=400, help="split in a tuning and a report half")
    parser.add_argument("--ef", default="40,64,100,160,250,400", help="ef_search widths tried on the tuning half")
    parser.add_argument("--exact-queries", type=int, default=50, help="report queries timed with exact search")
    parser.add_argument("--data", default="dlib", choices=("dlib", "iid"),
                        help="dlib-shaped faces (default) or iid vectors (graph search's worst case; no LFW needed)")
    parser.add_argument("--root", type=Path, default=LFW)
    parser.add_argument("--lfw-cache", type=Path, default=None,
                        help="npz of faceprint's LFW vectors (written if missing)")
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the server's data and the SQLite files")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--sqlite-up-to", type=int, default=0,
                        help="SQLite rows only for sizes up to this (0 = every size; its 1M fill takes ~30 min)")
    parser.add_argument("--bulk-from", type=int, default=0,
                        help="fill galleries of at least this many faces with COPY + one index build instead of "
                             "add_faces (0 = never); their enrollment column shows the build time")
    parser.add_argument("--replicas", type=int, default=20, help="enrollments timed across processes (0 = skip)")
    parser.add_argument("--pgdata", type=Path, default=None,
                        help="the server's data folder, kept after the run; a database that already holds the "
                             "faces of a size is searched again instead of filled (default: a temporary folder)")
    parser.add_argument("--pg-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="server setting applied with ALTER SYSTEM and a restart before the runs, e.g. "
                             "shared_buffers=2GB (VALUE 'default' resets it); repeatable")
    parser.add_argument("--graph", default=None, metavar="M,EF_CONSTRUCTION",
                        help="HNSW graph of the bulk-filled galleries (default: the gallery's HNSW_M, "
                             "HNSW_EF_CONSTRUCTION); another graph gets a database of its own")
    parser.add_argument("--ivfflat", type=int, default=0, metavar="LISTS",
                        help="an IVFFlat index of LISTS cells instead of HNSW on the bulk-filled galleries "
                             "(database bench{N}_ivfflat; needs --bulk-from)")
    parser.add_argument("--probes", default="1,5,10,20,40,80",
                        help="ivfflat.probes tried on the tuning half (with --ivfflat)")
    parser.add_argument("--no-local", action="store_true", help="skip the in-process graph rows")
    parser.add_argument("--no-hnsw", action="store_true",
                        help="bulk fills build no pgvector index: only the in-process graph and exact rows")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    import pgserver

    model = lfw_model(args.root, args.lfw_cache) if args.data == "dlib" else None
    efs = [int(e) for e in args.ef.split(",")]
    from faceprint.gallery.postgres import HNSW_EF_CONSTRUCTION, HNSW_M

    default_graph = (HNSW_M, HNSW_EF_CONSTRUCTION)
    graph = default_graph if args.graph is None else tuple(int(v) for v in args.graph.split(","))
    rows: list[tuple] = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        os.environ["FACEPRINT_CACHE_DIR"] = str(Path(tmp) / "cache")  # every run builds the graph it times
        server = pgserver.get_server(args.pgdata or Path(tmp) / "pgdata",
                                     cleanup_mode="stop" if args.pgdata else "delete")
        configure(server, args.pg_setting)
        head, _, query = server.get_uri().partition("?")
        try:
            for n in [int(s) for s in args.sizes.split(",")]:
                base, queries = scale_data(args.data, n, args.queries, model, per=PER)
                truth = exact_truth(base, queries)[0]
                tune, report = np.arange(0, len(queries), 2), np.arange(1, len(queries), 2)
                bulk = bool(args.bulk_from) and n >= args.bulk_from
                if args.ivfflat and not bulk:
                    parser.error(f"--ivfflat needs --bulk-from at most {n} (the index is built after the fill)")
                name = (f"bench{n}_ivfflat" if args.ivfflat else
                        f"bench{n}" if not bulk or graph == default_graph else f"bench{n}_m{graph[0]}_efc{graph[1]}")
                if name not in server.psql("SELECT datname FROM pg_database;").split():
                    server.psql(f"CREATE DATABASE {name};")
                uri = f"{head.rsplit('/', 1)[0]}/{name}?{query}"
                rows += postgres_rows(uri, n, base, queries[tune], truth[tune], queries[report], truth[report], efs,
                                      args.exact_queries, bulk, graph, args.ivfflat,
                                      [int(p) for p in args.probes.split(",")], not args.no_local,
                                      not (args.no_hnsw and bulk))
                if not args.no_sqlite and (not args.sqlite_up_to or n <= args.sqlite_up_to):
                    rows += sqlite_rows(Path(tmp), n, base, queries[report], truth[report])
                    print(rows[-1], flush=True)
            print_table(("gallery", "faces", "search", "search p50 ms", "search p99 ms", "recall@1 vs exact",
                         "report queries", "enrolled faces/s"), rows, args.markdown)
            if args.replicas:
                server.psql("DROP DATABASE IF EXISTS replicas; CREATE DATABASE replicas;")
                lag = replica_rows(f"{head.rsplit('/', 1)[0]}/replicas?{query}", args.replicas)
                if not args.no_local:
                    lag += local_replica_rows(uri, args.replicas, n)
                print_table(("PostgreSQL", "rounds", "lag p50 ms", "lag max ms"), lag, args.markdown)
        finally:
            server.cleanup()


if __name__ == "__main__":
    main()
