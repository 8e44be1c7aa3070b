"""Looking at clusters: face crops, a paged review (people, every unclustered face, suggested merges),
a self-contained HTML contact sheet for small sets, per-person folders."""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import FaceprintError


def crop_face(rgb: np.ndarray, box: list[float], margin: float = 0.25, size: int | None = None) -> Any:
    """A PIL crop of ``box`` (xyxy) widened by ``margin`` of its size on each side, optionally
    resized so its longer side is ``size`` pixels."""
    from PIL import Image

    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    h, w = rgb.shape[:2]
    l, t = int(max(0, x1 - mx)), int(max(0, y1 - my))
    r, b = int(min(w, x2 + mx)), int(min(h, y2 + my))
    img = Image.fromarray(rgb[t:max(b, t + 1), l:max(r, l + 1)])
    if size is not None:
        img.thumbnail((size, size))
    return img


class _Photos:
    """Decodes each photo once while crops of its faces are cut (``None`` when unreadable)."""

    def __init__(self) -> None:
        self.cache: dict[str, np.ndarray | None] = {}

    def __call__(self, path: str) -> np.ndarray | None:
        from ..image import load_image

        if path not in self.cache:
            if len(self.cache) > 64:
                self.cache.clear()
            try:
                self.cache[path] = load_image(path)
            except FaceprintError:
                self.cache[path] = None
        return self.cache[path]


def _thumb_uri(rgb: np.ndarray | None, box: list[float], size: int) -> str:
    if rgb is None:
        return ""
    buf = io.BytesIO()
    crop_face(rgb, box, size=size).save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_CSS = """body{font-family:sans-serif;margin:1em;background:#fafafa}
section{background:#fff;border:1px solid #ddd;border-radius:6px;margin:0 0 1em;padding:.5em 1em}
h2{font-size:1.05em;margin:.3em 0} figure{display:inline-block;margin:3px;text-align:center}
figure img{display:block;border-radius:4px} figcaption{font-size:10px;color:#666;max-width:100px;
overflow:hidden;white-space:nowrap;text-overflow:ellipsis}"""


def _figure(face: dict[str, Any], photos: _Photos, size: int) -> str:
    uri = _thumb_uri(photos(face["photo"]), face["box"], size)
    name = html.escape(Path(face["photo"]).name)
    img = f'<img src="{uri}" alt="face {face["face_id"]}" width="{size}">' if uri else "(unreadable)"
    caption = f'<figcaption>#{face["face_id"]} {name}</figcaption>'
    return f'<figure title="{html.escape(face["photo"])}">{img}{caption}</figure>'


def write_html(result: dict[str, Any], path: str | Path, thumb_px: int = 96, max_faces: int = 60,
               on_cluster: Callable[[], None] | None = None) -> None:
    """Write a contact sheet: one ``<section class="cluster" id="cluster-ID">`` per cluster (its
    id, name and face count as the heading, up to ``max_faces`` thumbnails as embedded base64
    JPEGs) and a last ``<section class="noise">``. The file needs nothing else to open."""
    photos = _Photos()
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>faceprint clusters</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{len(result['clusters'])} clusters, {len(result['noise'])} unclustered faces</h1>"]
    for cluster in result["clusters"]:
        label = html.escape(cluster["name"]) if cluster["name"] else "unnamed"
        faces = cluster["faces"]
        more = f" (showing {max_faces})" if len(faces) > max_faces else ""
        parts.append(f'<section class="cluster" id="cluster-{cluster["id"]}"><h2>Cluster {cluster["id"]}: {label}, '
                     f'{len(faces)} faces{more}</h2>')
        parts.extend(_figure(face, photos, thumb_px) for face in faces[:max_faces])
        parts.append("</section>")
        if on_cluster is not None:
            on_cluster()
    if result["noise"]:
        parts.append(f'<section class="noise"><h2>Unclustered: {len(result["noise"])} faces</h2>')
        parts.extend(_figure(face, photos, thumb_px) for face in result["noise"][:max_faces])
        parts.append("</section>")
    parts.append("</body></html>")
    Path(path).write_text("\n".join(parts), encoding="utf-8")


_NAV_CSS = """nav{position:sticky;top:0;background:#fafafa;padding:.4em 0;border-bottom:1px solid #ddd;
margin-bottom:.6em;font-size:13px} nav a{margin-right:.5em} nav a.here{font-weight:bold;color:#000}"""


def _page_names(stem: str, kind: str, count: int) -> list[str]:
    return [f"{stem}.html" if kind == "people" and i == 0 else f"{stem}-{kind}-{i + 1}.html" for i in range(count)]


class _Thumbs:
    """Writes each face's thumbnail once into ``folder`` and returns its relative address."""

    def __init__(self, folder: Path, size: int) -> None:
        self.folder, self.size, self.photos = folder, size, _Photos()
        folder.mkdir(parents=True, exist_ok=True)

    def figure(self, face: dict[str, Any]) -> str:
        name = f"{face['face_id']}.jpg"
        target = self.folder / name
        rgb = None if target.exists() else self.photos(face["photo"])
        if rgb is not None:
            crop_face(rgb, face["box"], size=self.size).save(target, format="JPEG", quality=85)
        img = (f'<img src="{self.folder.name}/{name}" alt="face {face["face_id"]}" width="{self.size}" '
               f'loading="lazy">' if target.exists() else "(unreadable)")
        caption = f'<figcaption>#{face["face_id"]} {html.escape(Path(face["photo"]).name)}</figcaption>'
        return f'<figure data-face="{face["face_id"]}" title="{html.escape(face["photo"])}">{img}{caption}</figure>'


def write_review(result: dict[str, Any], path: str | Path, suggestions: list[dict[str, Any]] | None = None,
                 clusters_per_page: int = 40, faces_per_page: int = 300, faces_per_cluster: int = 24,
                 thumb_px: int = 96, on_cluster: Callable[[], None] | None = None) -> list[Path]:
    """Write a paged review of ``result`` (``Clustering.to_dict()``); returns the pages written.

    ``path`` is the first people page (``STEM.html``); the others are ``STEM-people-N.html``,
    ``STEM-unclustered-N.html`` (every unclustered face, ``faces_per_page`` a page, each a
    ``<figure data-face=ID>``) and ``STEM-merges.html`` (``suggestions`` from
    :func:`~faceprint.collections.review.suggest_merges`: "these two clusters may be one
    person"), thumbnails as JPEG files in ``STEM_faces/``. Every page carries the same
    navigation. A cluster shows ``faces_per_cluster`` faces and its size.
    """
    path = Path(path)
    stem, folder = path.stem, path.parent
    clusters, noise = result["clusters"], result["noise"]
    suggestions = suggestions or []
    people = _page_names(stem, "people", max(1, -(-len(clusters) // clusters_per_page)))
    loose = _page_names(stem, "unclustered", -(-len(noise) // faces_per_page))
    merges = f"{stem}-merges.html"
    thumbs = _Thumbs(folder / f"{stem}_faces", thumb_px)
    by_id = {c["id"]: c for c in clusters}
    written = []

    def nav(here: str) -> str:
        links = [("People " + str(i + 1), p) for i, p in enumerate(people)]
        links += [("Unclustered " + str(i + 1), p) for i, p in enumerate(loose)]
        links.append((f"Suggested merges ({len(suggestions)})", merges))
        items = (f'<a href="{p}"{" class=here" if p == here else ""}>{t}</a>' for t, p in links)
        return "<nav>" + " ".join(items) + "</nav>"

    def page(name: str, title: str, body: list[str]) -> None:
        text = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<style>{_CSS}\n{_NAV_CSS}</style></head><body>{nav(name)}<h1>{html.escape(title)}</h1>"
                + "\n".join(body) + "</body></html>")
        (folder / name).write_text(text, encoding="utf-8")
        written.append(folder / name)

    def heading(c: dict[str, Any]) -> str:
        label = html.escape(c["name"]) if c["name"] else "unnamed"
        more = f" (showing {faces_per_cluster})" if len(c["faces"]) > faces_per_cluster else ""
        return f'Cluster {c["id"]}: {label}, {len(c["faces"])} faces{more}'

    summary = f"{len(clusters)} clusters, {len(noise)} unclustered faces"
    for i, name in enumerate(people):
        body = []
        for c in clusters[i * clusters_per_page:(i + 1) * clusters_per_page]:
            body.append(f'<section class="cluster" id="cluster-{c["id"]}"><h2>{heading(c)}</h2>')
            body.extend(thumbs.figure(f) for f in c["faces"][:faces_per_cluster])
            body.append("</section>")
            if on_cluster is not None:
                on_cluster()
        page(name, f"{summary}: people, page {i + 1} of {len(people)}", body)
    for i, name in enumerate(loose):
        part = noise[i * faces_per_page:(i + 1) * faces_per_page]
        body = [f'<section class="noise"><h2>Unclustered faces {i * faces_per_page + 1}-'
                f'{i * faces_per_page + len(part)} of {len(noise)}</h2>']
        body.extend(thumbs.figure(f) for f in part)
        page(name, f"{summary}: unclustered, page {i + 1} of {len(loose)}", body + ["</section>"])
    body = []
    for s in suggestions:
        a, b = by_id.get(s["a"]), by_id.get(s["b"])
        if a is None or b is None:
            continue
        body.append(f'<section class="merge" data-a="{a["id"]}" data-b="{b["id"]}"><h2>These two clusters may be '
                    f'one person (average distance {s["distance"]:.3f}): <code>faceprint merge --db DB {a["id"]} '
                    f'{b["id"]}</code></h2>')
        for c in (a, b):
            body.append(f"<div>{heading(c)}</div>")
            body.extend(thumbs.figure(f) for f in c["faces"][:6])
        body.append("</section>")
    page(merges, f"{summary}: suggested merges", body)
    return written


def folder_name(cluster: dict[str, Any]) -> str:
    """``<name>`` (made safe for a file system) or ``cluster_<id>``."""
    if cluster.get("name"):
        safe = re.sub(r"[^\w.\- ]+", "_", cluster["name"]).strip(" .")
        if safe:
            return safe
    return f"cluster_{cluster['id']}"


def export_crops(result: dict[str, Any], out_dir: str | Path, margin: float = 0.25,
                 on_cluster: Callable[[], None] | None = None) -> int:
    """Write ``out_dir/<person or cluster_ID>/<face_id>.jpg`` crops for every cluster; returns files written."""
    photos = _Photos()
    out_dir = Path(out_dir)
    written = 0
    for cluster in result["clusters"]:
        folder = out_dir / folder_name(cluster)
        folder.mkdir(parents=True, exist_ok=True)
        for face in cluster["faces"]:
            rgb = photos(face["photo"])
            if rgb is not None:
                crop_face(rgb, face["box"], margin).save(folder / f"{face['face_id']}.jpg", quality=92)
                written += 1
        if on_cluster is not None:
            on_cluster()
    return written


__all__ = ["crop_face", "export_crops", "folder_name", "write_html", "write_review"]
