"""Screenshots of the service's web page for the README.

Starts ``faceprint serve`` on 127.0.0.1 with a temporary database, enrolls the knn_examples
people (and the Hamilton clip's actor from one frame) through the API, then drives Debian's
chromium (Playwright): identify ``obama_and_biden.jpg`` (``--out``), and run the live webcam
view on Chromium's fake camera fed from the clip (``--live-out``).

Run: ``python tools/service_screenshot.py [--out docs/service_page.png] [--live-out docs/service_live.png]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_service import DATA, Server, enroll_known, free_port  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.service.test_browser import CHROMIUM_ARGS, CLIP_FRAMES, write_y4m  # noqa: E402

CLIP = DATA / "video" / "face_recognition_short_hamilton_clip.mp4"


def clip_frame_jpeg(index: int) -> bytes:
    import cv2

    cap = cv2.VideoCapture(str(CLIP))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, bgr = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"cannot read frame {index} of {CLIP}")
    return cv2.imencode(".jpg", bgr)[1].tobytes()


def shrink(png: bytes, out: Path) -> None:
    """Save with a 128-colour palette (a quarter of the size, no visible loss for a UI shot)."""
    import io

    from PIL import Image

    Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128, dither=Image.Dither.NONE).save(out, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/service_page.png"))
    parser.add_argument("--live-out", type=Path, default=Path("docs/service_live.png"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "demo.db", free_port())
        try:
            server.wait()
            with server.client() as http:
                enroll_known(http)
                http.post("/v1/people", json={"name": "lin"}).raise_for_status()
                for index in (CLIP_FRAMES[0], CLIP_FRAMES[0] + 18, CLIP_FRAMES[0] + 54):
                    http.post("/v1/people/lin/faces", files={"image": (f"{index}.jpg", clip_frame_jpeg(index))})
            camera = write_y4m(CLIP, Path(tmp) / "clip.y4m", CLIP_FRAMES)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                            args=CHROMIUM_ARGS + [f"--use-file-for-fake-video-capture={camera}"])
                page = browser.new_page(viewport={"width": 1000, "height": 820})
                page.goto(server.url + "/")
                page.fill("#api-key", server.key)
                page.click("#key-form button")
                page.set_input_files("#identify-file", str(DATA / "people" / "knn_examples" / "test" / "obama_and_biden.jpg"))
                page.wait_for_selector("#identify-canvas[data-faces]")
                shrink(page.screenshot(full_page=True), args.out)
                page.click("#tabs button[data-tab=live]")
                page.click("#live-start")
                while "lin" not in page.inner_text("#live-names"):
                    page.wait_for_timeout(50)
                shrink(page.screenshot(full_page=True), args.live_out)
                browser.close()
        finally:
            server.stop()
    print(f"wrote {args.out} and {args.live_out}")


if __name__ == "__main__":
    main()
