"""The web page in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

The webcam is Chromium's fake capture device fed from a Y4M file made at test time from
``shared/data/video``; screenshots are checked for the page's box colours and the DOM for names.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from ..conftest import shared

CHROMIUM = Path("/usr/bin/chromium")
KNOWN = (0, 255, 0)      # app.js KNOWN
UNKNOWN = (255, 0, 255)  # app.js UNKNOWN
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
#: Frames 100-159 of the Hamilton clip show one face, the same person throughout.
CLIP_FRAMES = (100, 160)


def write_y4m(video: Path, out: Path, frames: tuple[int, int]) -> Path:
    """Frames ``[start, stop)`` of ``video`` as a YUV 4:2:0 Y4M file (what Chromium's fake camera reads)."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, frames[0])
    with out.open("wb") as fh:
        for _ in range(frames[1] - frames[0]):
            ok, bgr = cap.read()
            if not ok:
                break
            h, w = bgr.shape[:2]
            if fh.tell() == 0:
                fh.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
            fh.write(b"FRAME\n" + cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes())
    cap.release()
    return out


@pytest.fixture(scope="module")
def fake_camera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    video = shared("video", "face_recognition_short_hamilton_clip.mp4")
    return write_y4m(video, tmp_path_factory.mktemp("camera") / "hamilton.y4m", CLIP_FRAMES)


@pytest.fixture(scope="module")
def browser(fake_camera: Path) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")),
                                    args=CHROMIUM_ARGS + [f"--use-file-for-fake-video-capture={fake_camera}"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 1000})
    context.grant_permissions(["camera"], origin=live_server.url)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(live_server.url + "/")
    yield page
    context.close()


def use_key(page: Any, key: str) -> None:
    page.fill("#api-key", key)
    page.click("#key-form button")
    page.wait_for_selector("#key-status:has-text('set')")


def tab(page: Any, name: str) -> None:
    page.click(f"#tabs button[data-tab={name}]")


def colour_pixels(png: bytes, rgb: tuple[int, int, int], tol: int = 40) -> int:
    """How many pixels of a screenshot are within ``tol`` of ``rgb`` in every channel."""
    from PIL import Image

    arr = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)
    return int((np.abs(arr - np.array(rgb)) <= tol).all(axis=2).sum())


def test_page_without_a_valid_key_shows_the_error(page: Any) -> None:
    use_key(page, "fp_wrong")
    page.set_input_files("#identify-file", str(shared("people", "obama.jpg")))
    page.wait_for_selector("#message.error")
    assert "unknown or revoked API key" in page.inner_text("#message")


def test_page_verifies_two_photos(page: Any, live_server: Any) -> None:
    use_key(page, live_server.service.keys["read"])
    tab(page, "verify")
    train = ("people", "knn_examples", "train", "obama")
    page.set_input_files("#verify-a", str(shared(*train, "obama.jpg")))
    page.set_input_files("#verify-b", str(shared(*train, "obama2.jpg")))
    page.click("#verify-form button")
    page.wait_for_selector("#verify-result:has-text('distance')")
    text = page.inner_text("#verify-result")
    assert text.startswith("Same person") and "match probability" in text
    page.set_input_files("#verify-b", str(shared("people", "biden.jpg")))
    page.click("#verify-form button")
    page.wait_for_selector("#verify-result:has-text('Different people')")


def wait_frames(page: Any, n: int, timeout_s: float = 60.0) -> None:
    """Until the live view has drawn ``n`` server answers (polled: the page's CSP forbids eval)."""
    import time

    deadline = time.monotonic() + timeout_s
    while int(page.get_attribute("#live-overlay", "data-frames") or 0) < n:
        assert time.monotonic() < deadline, f"live view drew fewer than {n} frames in {timeout_s:.0f} s"
        page.wait_for_timeout(200)


def photo_pixels(path: Path, rgb: tuple[int, int, int]) -> int:
    return colour_pixels(path.read_bytes(), rgb)


def enroll_photos(page: Any, name: str, photos: list[Path]) -> None:
    tab(page, "enroll")
    page.fill("#enroll-name", name)
    page.set_input_files("#enroll-files", [str(p) for p in photos])
    page.click("#enroll-form button[type=submit]")
    page.wait_for_selector(f"#message:has-text('enrolled {len(photos)} of {len(photos)} photo(s) for {name}')")


def test_page_enrolls_from_photos_and_identifies_an_upload(page: Any, live_server: Any) -> None:
    use_key(page, live_server.service.keys["enroll"])
    train = shared("people", "knn_examples", "train", "obama")
    enroll_photos(page, "obama", [train / "obama.jpg", train / "obama2.jpg"])
    assert page.locator("#enroll-log li.known").count() == 2
    tab(page, "identify")
    photo = shared("people", "knn_examples", "test", "obama_and_biden.jpg")
    page.set_input_files("#identify-file", str(photo))
    page.wait_for_selector("#identify-canvas[data-faces]")
    names = page.locator("#identify-result li").all_inner_texts()
    assert len(names) == 3 and sum(n.startswith("obama (") for n in names) == 1 and names.count("unknown") == 2
    shot = page.locator("#identify-canvas").screenshot()
    # the photo itself has (almost) none of the box colours; the drawn boxes and labels do
    assert photo_pixels(photo, KNOWN) < 50 and photo_pixels(photo, UNKNOWN) < 50
    assert colour_pixels(shot, KNOWN) > 500 and colour_pixels(shot, UNKNOWN) > 1000


def test_page_webcam_enroll_and_live_recognition(page: Any, live_server: Any) -> None:
    use_key(page, live_server.service.keys["enroll"])
    tab(page, "enroll")
    page.fill("#enroll-name", "lin")
    page.click("#enroll-webcam")
    page.wait_for_selector("#message:has-text('enrolled a webcam frame for lin')")
    tab(page, "live")
    page.click("#live-start")
    wait_frames(page, 3)
    assert "frames/s" in page.inner_text("#live-fps")
    # the clip moves: a frame far from the enrolled one may be "unknown", so look at frames until
    # one is named (its box drawn in the known colour over the video)
    for _ in range(100):
        names = page.inner_text("#live-names")
        shot = page.locator(".video-stage").screenshot()
        if "lin" in names and colour_pixels(shot, KNOWN) > 300:
            break
        page.wait_for_timeout(100)
    else:
        pytest.fail(f"the live view never named the enrolled person (last: {names!r})")
    page.click("#live-stop")
    page.wait_for_selector("#message:has-text('stopped')")


def test_page_browses_renames_and_deletes_people(page: Any, live_server: Any) -> None:
    use_key(page, live_server.service.keys["admin"])
    train = shared("people", "knn_examples", "train")
    enroll_photos(page, "obama", [train / "obama" / "obama.jpg"])
    enroll_photos(page, "biden", [train / "biden" / "biden.jpg", train / "biden" / "biden2.jpg"])
    tab(page, "people")
    page.wait_for_selector("#people-table tr[data-name=biden]")
    assert page.inner_text("#people-table tr[data-name=biden] td:nth-child(2)") == "2"
    page.fill("#people-table tr[data-name=obama] input", "barack")
    page.click("#people-table tr[data-name=obama] button.act-rename")
    page.wait_for_selector("#people-table tr[data-name=barack]")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#people-table tr[data-name=biden] button.act-delete")
    page.wait_for_selector("#people-table tr[data-name=biden]", state="detached")
    rows = page.locator("#people-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.name)")
    assert rows == ["barack"]
    enroll_photos(page, "second", [train / "obama" / "obama2.jpg"])
    tab(page, "people")
    page.fill("#people-table tr[data-name=second] input", "barack")
    page.click("#people-table tr[data-name=second] button.act-merge")
    page.wait_for_selector("#people-table tr[data-name=second]", state="detached")
    assert page.inner_text("#people-table tr[data-name=barack] td:nth-child(2)") == "2"
    import httpx

    people = httpx.get(live_server.url + "/v1/people", headers=live_server.service.headers("read")).json()
    assert [(p["name"], p["samples"]) for p in people] == [("barack", 2)]


def test_api_docs_render_offline_from_this_server_only(browser: Any, live_server: Any) -> None:
    """/docs draws the OpenAPI description with Swagger UI served by faceprint itself: every
    request the page makes goes to this server (it used to fetch Swagger UI from a CDN)."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    hosts: list[str] = []
    failed: list[str] = []
    page.on("request", lambda r: hosts.append(r.url.split("/")[2]))
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 and "favicon" not in r.url else None)
    page.goto(live_server.url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title:has-text('faceprint')")
    page.wait_for_selector(".opblock-summary-path:has-text('/v1/identify')")
    assert set(hosts) == {live_server.url.split("/")[2]}, set(hosts)
    assert not failed, failed
    context.close()


def test_no_page_of_the_service_requests_another_host(browser: Any, live_server: Any) -> None:
    """The web page (every tab, with a key set) and the API docs load everything from this
    server: no CDN, font or analytics host is ever asked for."""
    context = browser.new_context(viewport={"width": 1100, "height": 1000})
    context.grant_permissions(["camera"], origin=live_server.url)
    page = context.new_page()
    page.set_default_timeout(30_000)
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    page.goto(live_server.url + "/")
    use_key(page, live_server.service.keys["admin"])
    for name in ("live", "enroll", "people", "verify", "identify"):
        tab(page, name)
        page.wait_for_selector(f"#tabs button[data-tab={name}].active")
    page.goto(live_server.url + "/docs")
    page.wait_for_selector(".opblock-summary-path:has-text('/v1/identify')")
    own = live_server.url.split("/")[2]
    assert {u.split("/")[2] for u in urls if u.startswith("http")} == {own}, sorted(set(urls))
    assert any("/ui/" in u for u in urls) and any("/docs/assets/" in u for u in urls)
    context.close()
