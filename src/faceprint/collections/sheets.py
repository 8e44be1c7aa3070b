"""Looking at clusters: face crops, a self-contained HTML contact sheet, per-person folders."""

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


__all__ = ["crop_face", "export_crops", "folder_name", "write_html"]
