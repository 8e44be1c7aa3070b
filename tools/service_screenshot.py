"""Screenshot the service's web page for the README: people enrolled, a group photo identified.

Starts ``faceprint serve`` on 127.0.0.1 with a temporary database, enrolls the knn_examples
people through the API, then drives Debian's chromium (Playwright) through the page: enter the
key, identify ``obama_and_biden.jpg``, and save a PNG.

Run: ``python tools/service_screenshot.py [--out docs/service_page.png]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_service import DATA, Server, enroll_known, free_port  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def shrink(png: bytes, out: Path) -> None:
    """Save with a 128-colour palette (a quarter of the size, no visible loss for a UI shot)."""
    import io

    from PIL import Image

    Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128, dither=Image.Dither.NONE).save(out, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/service_page.png"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "demo.db", free_port())
        try:
            server.wait()
            with server.client() as http:
                enroll_known(http)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 1000, "height": 820})
                page.goto(server.url + "/")
                page.fill("#api-key", server.key)
                page.click("#key-form button")
                page.set_input_files("#identify-file", str(DATA / "people" / "knn_examples" / "test" / "obama_and_biden.jpg"))
                page.wait_for_selector("#identify-canvas[data-faces]")
                args.out.parent.mkdir(parents=True, exist_ok=True)
                png = page.screenshot(full_page=True)
                browser.close()
            shrink(png, args.out)
        finally:
            server.stop()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
