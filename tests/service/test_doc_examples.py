"""The curl examples of the README and the service page, run as written (bash + curl) against a
real server on real photos: the person is created and enrolled, identified, verified, and a
multi-megabyte photo goes through both the multipart and the JSON-from-a-file examples."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ..conftest import shared

ROOT = Path(__file__).resolve().parents[2]


def curl_lines(markdown: Path) -> list[str]:
    """Every shell command of ``markdown``'s bash blocks that runs curl (continuations joined;
    comments and anything before the curl, like the JSON body's file, kept in order)."""
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", markdown.read_text(encoding="utf-8"), flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line.startswith("curl ") or line.startswith("{ printf"):
                commands.append(line)
    return commands


def run(command: str, url: str, key: str, cwd: Path) -> subprocess.CompletedProcess:
    command = command.replace("http://127.0.0.1:8000", url)
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=dict(os.environ, KEY=key), capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_documented_curl_examples_work_on_real_photos(live_server, tmp_path: Path) -> None:
    people = shared("people")
    big = shared("detection", "compreface_samples", "001_A.jpg")  # 2.4 MB: its base64 passes ARG_MAX
    shutil.copy(people / "knn_examples" / "train" / "obama" / "obama.jpg", tmp_path / "ada1.jpg")
    shutil.copy(people / "obama.jpg", tmp_path / "photo.jpg")
    shutil.copy(people / "knn_examples" / "train" / "biden" / "biden2.jpg", tmp_path / "a.jpg")
    shutil.copy(people / "biden.jpg", tmp_path / "b.jpg")
    key = live_server.service.keys["admin"]

    readme, service_page = curl_lines(ROOT / "README.md"), curl_lines(ROOT / "docs" / "service.md")
    assert any("-F image=@photo.jpg" in c for c in readme) and not any("base64" in c for c in readme)

    def answer(command: str) -> dict:
        proc = run(command, live_server.url, key, tmp_path)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    by_route = {}
    for command in service_page:
        route = re.search(r"/v1/[\w/]+", command)
        by_route.setdefault(route.group(0) if route else "body", []).append(command)
    assert answer(by_route["/v1/people"][0])["name"] == "ada"
    assert answer(by_route["/v1/people/ada/faces"][0])["enrolled"] == ["ada1.jpg"]

    identify = [c for c in readme if "/v1/identify" in c]
    verify = [c for c in readme if "/v1/verify" in c]
    assert identify and verify
    assert [f["name"] for f in answer(identify[0])["faces"]] == ["ada"]
    assert answer(verify[0])["match"] is True

    # the JSON example: body written to a file, then posted with --data-binary @body.json
    shutil.copy(big, tmp_path / "photo.jpg")
    assert run(by_route["body"][0], live_server.url, key, tmp_path).returncode == 0
    assert (tmp_path / "body.json").stat().st_size > 2_000_000
    assert len(answer(by_route["/v1/embed"][0])["faces"]) >= 1
    assert answer(identify[0])["faces"]  # and the same large photo as a multipart upload
