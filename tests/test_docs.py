"""The documentation: the MkDocs site builds with --strict, offline (a broken link or anchor fails
it), its API reference comes from the docstrings, and the README stays short with working links."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import faceprint

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _mkdocs_build(project: Path, site: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings-python is not installed")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(project / "src"))
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False)


def _copy_project(dest: Path) -> Path:
    shutil.copy2(ROOT / "mkdocs.yml", dest / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", dest / "docs")
    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = _mkdocs_build(ROOT, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    return out


def test_the_site_builds_strict_with_every_page_in_the_nav(site: Path) -> None:
    pages = {p.relative_to(ROOT / "docs").with_suffix("") for p in (ROOT / "docs").rglob("*.md")}
    for page in pages:
        html = site / (page.parent if page.name == "index" else page) / "index.html"  # directory URLs
        assert html.exists(), f"{page}.md was not built"
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in pages:  # "omitted_files: warn" fails a page left out of the nav; this names it
        assert f"{page.as_posix()}.md" in nav, f"docs/{page}.md is not in mkdocs.yml's nav"
    for png in (ROOT / "docs").glob("*.png"):
        assert (site / png.name).exists()


def test_the_site_fetches_nothing_from_other_hosts(site: Path) -> None:
    for html in site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        external = re.findall(r"""<(?:script|img|link)[^>]+(?:src|href)=["'](https?:)?//[^"']+["']""", text)
        stylesheets = re.findall(r"""<link[^>]+rel=["'](?:stylesheet|preconnect)["'][^>]+href=["']https?://""", text)
        assert not external and not stylesheets, (html, external, stylesheets)
        assert "fonts.googleapis.com" not in text and "fonts.gstatic.com" not in text, html


def test_the_api_reference_documents_the_public_api(site: Path) -> None:
    public = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in faceprint.__all__:
        if name == "__version__":
            continue
        module = getattr(faceprint, name).__module__
        assert f'id="{module}.{name}"' in public, f"{name} is missing from the API reference"
    gallery = (site / "api" / "gallery" / "index.html").read_text(encoding="utf-8")
    import faceprint.gallery as gallery_pkg

    for name in gallery_pkg.__all__:
        assert f'id="faceprint.gallery.{name}"' in gallery, f"faceprint.gallery.{name} is not documented"
    # the docstrings themselves are rendered, not just the names
    import html
    import inspect

    from faceprint.pipeline import FacePipeline

    for obj in (FacePipeline, FacePipeline.verify, faceprint.create_embedder):
        first_line = inspect.getdoc(obj).splitlines()[0]
        words = re.sub(r"[`*:]|\(|\)", "", first_line).split()[:4]
        text = re.sub(r"<[^>]+>", "", html.unescape(public))
        assert " ".join(words) in " ".join(text.split()), (obj, words)


def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    project = _copy_project(tmp_path / "project")
    page = project / "docs" / "quickstart.md"
    page.write_text(page.read_text() + "\nSee [the missing section](pipeline.md#no-such-heading).\n")
    proc = _mkdocs_build(project, tmp_path / "site")
    assert proc.returncode != 0
    assert "no-such-heading" in proc.stdout + proc.stderr


def test_readme_is_short_and_its_relative_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    targets = [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    assert targets, "the README links into the docs"
    for target in targets:
        path = (README.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"README links to {target}, which does not exist"
        assert path.is_relative_to(ROOT), target


def test_readme_keeps_the_two_set_up_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert ("python3 -m pip install -e . && faceprint verify ../shared/data/people/knn_examples/train/biden/biden2.jpg "
            "../shared/data/people/biden.jpg --json\n") in text
    assert 'python3 -m pip install -e ".[test]" && python3 -m pytest -q\n' in text
    # the curl example uploads the file (multipart), never a base64 string on the command line
    assert "-F image=@photo.jpg" in text and "base64 -w0" not in text
