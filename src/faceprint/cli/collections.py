"""Photo collection commands: ``faceprint index``, ``faceprint cluster``, ``faceprint sheet``,
``faceprint merge``, ``faceprint people name`` and ``faceprint eval cluster``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

import typer

from ..collections.clustering import DEFAULT_CLUSTERER
from ..errors import CollectionError, ConfigError, FaceprintError
from ..progress import progress_bar
from .common import (
    DetectorOpt,
    JsonOpt,
    ModelOpt,
    app,
    emit,
    eval_app,
    make_pipeline,
    people_app,
    people_db,
    people_db_uri,
    positive_threshold,
    run_command,
)

IndexDbOpt = typer.Option(..., "--db", help="SQLite database of the photo index (shared with the gallery).")
AlgorithmOpt = typer.Option(DEFAULT_CLUSTERER, "--algorithm",
                            help="hdbscan (default), chinese_whispers, agglomerative, dbscan or kmeans.")
ThresholdOpt = typer.Option(None, "--threshold", callback=positive_threshold,
                            help="Distance threshold (default: chosen per algorithm and model, see the README, "
                                 "Photo collections).")
KOpt = typer.Option(None, "--k", min=1,
                    help="Number of people (kmeans; agglomerative cuts at k instead of a threshold).")
MinSizeOpt = typer.Option(2, "--min-cluster-size", min=2, help="hdbscan: smallest cluster.")


@app.command()
def index(folder: Path = typer.Argument(..., help="Folder tree of photos."), db: str = IndexDbOpt,
          workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Processes (or Ray actors) detecting "
                                                                               "in parallel (default: one per core)."),
          ray: Optional[str] = typer.Option(None, "--ray", help="Ray cluster address ('auto', 'ray://HOST:PORT', or "
                                                                 "'local' to start one here); needs faceprint[ray]."),
          chunk: int = typer.Option(16, "--chunk", min=1, help="Photos per work unit."),
          detector: str = DetectorOpt, model: str = ModelOpt, as_json: bool = JsonOpt) -> None:
    """Detect and embed every face under FOLDER into --db; later runs process only new or changed files."""

    def body() -> None:
        import os

        from ..collections.index import index_folder
        from ..collections.store import connect
        from ..collections.workers import PipelineConfig, threads_per_worker

        nonlocal workers
        workers = workers or (os.cpu_count() or 1)
        config = PipelineConfig(detector, model, threads=threads_per_worker(workers) if ray is None else 1)
        conn = connect(db)
        with progress_bar(1_000_000, "index") as bar:
            task = bar.add_task("index", total=None)
            rep = index_folder(conn, folder, config, workers=workers, ray_address=ray, chunk=chunk,
                               on_plan=lambda n: bar.update(task, total=n),
                               on_chunk=lambda n: bar.advance(task, n))
        if as_json:
            emit(rep.to_dict())
            return
        typer.echo(f"{rep.files} photos: {rep.new} new, {rep.changed} changed, {rep.unchanged} unchanged, "
                   f"{rep.removed} removed; indexed {rep.processed} ({rep.faces} faces, {rep.errors} unreadable) "
                   f"in {rep.seconds:.1f} s ({rep.images_per_s:.1f} photos/s)")
        if rep.unreadable:
            shown = "; ".join(f"{path} ({why})" for path, why in rep.unreadable[:UNREADABLE_SHOWN])
            more = len(rep.unreadable) - UNREADABLE_SHOWN
            typer.echo(f"unreadable: {shown}" + (f"; and {more} more (see --json)" if more > 0 else ""))

    run_command(body)


#: Unreadable photos named by ``faceprint index`` (the rest are counted; ``--json`` lists all).
UNREADABLE_SHOWN = 5


def _require_index(db: str) -> None:
    """Raise CollectionError, saying to run ``faceprint index``, when ``db`` holds no indexed face."""
    from ..collections.store import connect
    from ..dburi import parse_db

    uri = parse_db(db)
    if uri.path is not None and not uri.path.exists():
        raise CollectionError(f"{db}: no such photo index; run `faceprint index FOLDER --db {db}` first")
    conn = connect(db)
    try:
        empty = conn.execute("SELECT count(*) FROM faces").fetchone()[0] == 0
    finally:
        conn.close()
    if empty:
        raise CollectionError(f"{db} holds no indexed faces; run `faceprint index FOLDER --db {db}` first")


def _pairs(values: List[str], flag: str) -> list[tuple[int, int]]:
    out = []
    for value in values:
        parts = value.replace(":", ",").split(",")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ConfigError(f"{flag} expects two face ids like 12,34, got {value!r}")
        out.append((int(parts[0]), int(parts[1])))
    return out


@app.command()
def cluster(db: str = IndexDbOpt, algorithm: str = AlgorithmOpt, threshold: Optional[float] = ThresholdOpt,
            k: Optional[int] = KOpt, min_cluster_size: int = MinSizeOpt,
            full: bool = typer.Option(False, "--full", help="Re-cluster every face (default: new faces join "
                                                            "existing clusters when the settings are unchanged)."),
            must_link: List[str] = typer.Option([], "--must-link", help="Correction: faces A,B are one person "
                                                                       "(repeatable; kept for later runs)."),
            cannot_link: List[str] = typer.Option([], "--cannot-link", help="Correction: faces A,B are different "
                                                                           "people (repeatable; kept)."),
            json_out: Optional[Path] = typer.Option(None, "--json",
                                                    help="Write the clusters JSON here ('-' = stdout)."),
            html_out: Optional[Path] = typer.Option(None, "--html", help="Write the paged review (people, every "
                                                                          "unclustered face, suggested merges) here."),
            export: Optional[Path] = typer.Option(None, "--export", help="Write DIR/<person>/<face_id>.jpg crops.")
            ) -> None:
    """Group the indexed faces by person (faces of one photo are never grouped together)."""

    def body() -> None:
        from ..collections.assign import cluster_index
        from ..collections.naming import gallery_decision
        from ..collections.store import add_links, connect

        _require_index(db)
        conn = connect(db)
        add_links(conn, _pairs(must_link, "--must-link"), "must")
        add_links(conn, _pairs(cannot_link, "--cannot-link"), "cannot")
        params: dict[str, Any] = {"n_clusters": k,
                                  "min_cluster_size": min_cluster_size if algorithm == "hdbscan" else None}
        result = cluster_index(conn, algorithm, full=full, threshold=threshold, identify=gallery_decision(db),
                               **{key: v for key, v in params.items() if v is not None})
        if json_out is not None or html_out is not None or export is not None:  # 2 s of records at 100k faces
            data = result.to_dict()
            _write_views(conn, result, data, html_out, export)
            if json_out is not None and str(json_out) == "-":
                emit(data)
                return
            if json_out is not None:
                json_out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        ids = result.cluster_id
        how = "joined new faces to existing clusters" if result.incremental else "clustered all faces"
        typer.echo(f"{len(set(ids[ids >= 0].tolist()))} clusters, {int((ids < 0).sum())} faces without a cluster "
                   f"({how}, {algorithm})")
        for label, path in (("clusters", json_out), ("contact sheet", html_out), ("crops", export)):
            if path is not None:
                typer.echo(f"wrote {label} to {path}")

    run_command(body)


def _write_views(conn: Any, result: Any, data: dict[str, Any], html_out: Optional[Path],
                 export: Optional[Path]) -> None:
    from ..collections.review import merge_threshold, suggest_merges
    from ..collections.sheets import export_crops, write_review

    for path, fn in ((html_out, write_review), (export, export_crops)):
        if path is None:
            continue
        extra = {}
        if fn is write_review:
            extra["suggestions"] = suggest_merges(result.faces, result.cluster_id, merge_threshold(result.faces))
        with progress_bar(len(data["clusters"]), "crops", unit="cluster") as bar:
            task = bar.add_task("crops", total=len(data["clusters"]))
            fn(data, path, on_cluster=lambda: bar.advance(task), **extra)


@app.command()
def sheet(db: str = IndexDbOpt,
          html_out: Path = typer.Option(..., "--html", help="The review's first page (others are written beside it)."),
          faces_per_page: int = typer.Option(300, "--faces-per-page", min=1, help="Unclustered faces per page."),
          clusters_per_page: int = typer.Option(40, "--clusters-per-page", min=1, help="Clusters per page.")) -> None:
    """Write the paged review of the stored clusters (nothing is re-clustered)."""

    def body() -> None:
        from ..collections.assign import stored_clustering
        from ..collections.review import merge_threshold, suggest_merges
        from ..collections.sheets import write_review
        from ..collections.store import connect

        result = stored_clustering(connect(db))
        data = result.to_dict()
        pages = write_review(data, html_out, suggest_merges(result.faces, result.cluster_id,
                                                            merge_threshold(result.faces)),
                             clusters_per_page=clusters_per_page, faces_per_page=faces_per_page)
        typer.echo(f"wrote {len(pages)} pages ({len(data['clusters'])} clusters, {len(data['noise'])} unclustered "
                   f"faces) starting at {html_out}")

    run_command(body)


@app.command()
def merge(clusters: List[int] = typer.Argument(..., help="Cluster ids: the first keeps its id and the others' faces."),
          db: str = IndexDbOpt, as_json: bool = JsonOpt) -> None:
    """Merge clusters that are one person (kept by later `cluster` runs, --full included)."""

    def body() -> None:
        from ..collections.review import merge_clusters
        from ..collections.store import connect

        if len(clusters) < 2:
            raise ConfigError(f"merge needs at least two cluster ids, got {len(clusters)}")
        result = merge_clusters(connect(db), clusters[0], clusters[1:])
        if as_json:
            emit(result)
            return
        typer.echo(f"merged {result['moved']} face(s) into cluster {result['cluster']}"
                   + (f" ({result['name']})" if result["name"] else ""))

    run_command(body)


@people_app.command("name")
def people_name(cluster_id: int = typer.Argument(..., help="Cluster id from `faceprint cluster`."),
                name: str = typer.Argument(..., help="The person's name."),
                index_db: Optional[Path] = typer.Option(None, "--index-db", help="The photo index, when it is not the "
                                                                                 "people --db file."),
                yes: bool = typer.Option(False, "--yes", help="Also add the close unclustered faces and clusters "
                                                              "offered, without asking."),
                as_json: bool = JsonOpt) -> None:
    """Name a photo-index cluster: its faces are enrolled into the gallery under NAME.

    Unclustered faces and other clusters close to it are offered; on confirmation (or --yes)
    they join it first and are enrolled too.
    """

    def body() -> None:
        import sys

        from ..collections.assign import stored_clustering
        from ..collections.naming import name_cluster
        from ..collections.review import adopt_faces, close_to, merge_clusters, merge_threshold
        from ..collections.store import connect

        conn = connect(index_db or people_db_uri())
        result = stored_clustering(conn)
        offer = {"faces": [], "clusters": []}
        if (result.cluster_id == cluster_id).any():
            offer = close_to(result.faces, result.cluster_id, cluster_id, merge_threshold(result.faces))
        accept = yes
        if (offer["faces"] or offer["clusters"]) and not yes and not as_json and sys.stdin.isatty():
            accept = typer.confirm(f"{len(offer['faces'])} unclustered face(s) {offer['faces'][:20]} and "
                                   f"{len(offer['clusters'])} cluster(s) {offer['clusters'][:20]} look like "
                                   f"{name}: add them?")
        added = {"faces": 0, "clusters": 0}
        if accept:
            for other in offer["clusters"]:
                try:
                    merge_clusters(conn, cluster_id, [other])
                    added["clusters"] += 1
                except FaceprintError:  # e.g. a fragment named as someone else: leave it
                    continue
            added["faces"] = adopt_faces(conn, cluster_id, offer["faces"]) if offer["faces"] else 0
        with people_db() as gallery:
            out = name_cluster(conn, gallery, cluster_id, name)
        out = {**out, "offered": offer, "added": added}
        if as_json:
            emit(out)
            return
        typer.echo(f"cluster {cluster_id} is {name}: enrolled {out['enrolled']} face(s) "
                   f"({out['already']} enrolled before)")
        if offer["faces"] or offer["clusters"]:
            verb = "added" if accept else "not added (re-run with --yes to add)"
            typer.echo(f"close to {name}: {len(offer['faces'])} unclustered face(s), clusters {offer['clusters']}: "
                       f"{verb}")

    run_command(body)


@eval_app.command("cluster")
def eval_cluster(root: Path = typer.Option(..., "--root", help="Labelled photos: ROOT/<person>/*.jpg."),
                 algorithm: str = AlgorithmOpt, threshold: Optional[float] = ThresholdOpt, k: Optional[int] = KOpt,
                 min_cluster_size: int = MinSizeOpt, model: str = ModelOpt, detector: str = DetectorOpt,
                 as_json: bool = JsonOpt) -> None:
    """Clustering quality on labelled photos: pairwise P/R/F1, BCubed F, NMI, clusters vs people, time."""

    def body() -> None:
        from ..collections.clustering import default_threshold
        from ..collections.evaluate import embed_labelled, score_clustering

        pipe = make_pipeline(detector, model)
        with progress_bar(1_000_000, "embed") as bar:
            task = bar.add_task("embed", total=None)
            data = embed_labelled(root, pipe, on_image=lambda _i: bar.advance(task))
        th = threshold if threshold is not None else default_threshold(pipe.spec, algorithm)
        scores, seconds = score_clustering(data, algorithm, threshold=th, n_clusters=k,
                                           min_cluster_size=min_cluster_size)
        report = {"algorithm": algorithm, "threshold": th, "photos": len(data.photos),
                  "no_face": int((~data.found).sum()), **scores.to_dict(), "cluster_seconds": round(seconds, 4),
                  "embed_seconds": round(data.embed_seconds, 3), "model": pipe.spec.model_id}
        if as_json:
            emit(report)
            return
        typer.echo(f"{algorithm} (threshold {th:g}) on {report['photos']} photos of {scores.n_people} people: "
                   f"{scores.n_clusters} clusters, {scores.n_noise} noise")
        typer.echo(f"pairwise P {scores.precision:.4f} R {scores.recall:.4f} F1 {scores.f1:.4f}; "
                   f"BCubed F {scores.bcubed_f:.4f}; NMI {scores.nmi:.4f}")
        typer.echo(f"time: embed {data.embed_seconds:.1f} s, cluster {seconds:.3f} s")

    run_command(body)
