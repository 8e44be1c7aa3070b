"""The web page's first-hour fixes (issue 19) in a real headless Chromium against a live server:
a failed upload clears the previous result, messages belong to their tab, errors name a file
once, an empty rename says what to do, and the page says how to get a key (that command works)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..conftest import shared
from .test_browser import KNOWN, browser, colour_pixels, enroll_photos, fake_camera, page, tab, use_key  # noqa: F401

SRC = Path(__file__).resolve().parents[2] / "src"


def test_a_failed_upload_clears_the_previous_photo_and_names(page: Any, live_server: Any, tmp_path: Path) -> None:
    use_key(page, live_server.service.keys["enroll"])
    train = shared("people", "knn_examples", "train", "obama")
    enroll_photos(page, "obama", [train / "obama.jpg"])
    tab(page, "identify")
    page.set_input_files("#identify-file", str(train / "obama2.jpg"))
    page.wait_for_selector("#identify-canvas[data-faces='1']")
    assert page.locator("#identify-result li").all_inner_texts()[0].startswith("obama (")
    assert colour_pixels(page.locator("#identify-canvas").screenshot(), KNOWN) > 500
    broken = tmp_path / "holiday.jpg"
    broken.write_bytes(b"this is not a photo")
    page.set_input_files("#identify-file", str(broken))
    page.wait_for_selector("#message.error")
    assert page.inner_text("#message").count("holiday.jpg") <= 1
    assert page.locator("#identify-result li").count() == 0
    assert page.get_attribute("#identify-canvas", "data-faces") is None
    assert colour_pixels(page.locator("#identify-canvas").screenshot(), KNOWN) == 0  # no box, no label left
    tab(page, "verify")  # the message was about the identify tab
    assert page.inner_text("#message") == ""
    tab(page, "identify")
    assert page.inner_text("#message") == ""


def test_an_enrollment_error_names_the_file_once(page: Any, live_server: Any) -> None:
    use_key(page, live_server.service.keys["enroll"])
    photo = shared("people", "knn_examples", "train", "obama", "obama.jpg")
    enroll_photos(page, "obama", [photo])
    page.set_input_files("#enroll-files", str(photo))
    page.click("#enroll-form button[type=submit]")
    page.wait_for_selector("#message:has-text('enrolled 0 of 1 photo(s) for obama')")
    rejected = page.locator("#enroll-log li.unknown").all_inner_texts()
    assert len(rejected) == 1 and "duplicate" in rejected[0] and rejected[0].count("obama.jpg") == 1, rejected


def test_an_empty_rename_says_what_to_do(page: Any, live_server: Any) -> None:
    use_key(page, live_server.service.keys["admin"])
    enroll_photos(page, "biden", [shared("people", "knn_examples", "train", "biden", "biden.jpg")])
    tab(page, "people")
    page.wait_for_selector("#people-table tr[data-name=biden]")
    for action in ("rename", "merge"):
        page.click(f"#people-table tr[data-name=biden] button.act-{action}")
        page.wait_for_selector("#message.error")
        text = page.inner_text("#message")
        assert text.startswith("type ") and "biden" in text and "validation" not in text, text
        tab(page, "people")  # clears the message (and refreshes the table)
        page.wait_for_selector("#message:has-text('people enrolled')")
    assert page.locator("#people-table tbody tr").count() == 1


def test_the_page_says_how_to_get_a_key_and_that_command_works(page: Any, live_server: Any) -> None:
    help_text = page.inner_text("#key-help")
    command = next(c for c in page.locator("#key-help code").all_inner_texts() if c.startswith("faceprint keys"))
    assert "faceprint serve" in help_text
    args = command.split()[1:]
    args[args.index("GALLERY")] = str(live_server.service.db)  # the --db the server was started with
    proc = subprocess.run([sys.executable, "-c", "import sys\nfrom faceprint.cli import main\nmain()\n", *args],
                          capture_output=True, text=True, check=False, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(SRC)))
    assert proc.returncode == 0, proc.stderr
    use_key(page, proc.stdout.strip().splitlines()[-1])  # "paste the key it prints last"
    enroll_photos(page, "obama", [shared("people", "knn_examples", "train", "obama", "obama.jpg")])
