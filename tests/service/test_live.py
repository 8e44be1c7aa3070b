"""/v1/live/{session}: the page's live webcam runs the video recognizer per session, so a shot
cut ends the singer's track and the audience after it is never shown with his name."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ..conftest import shared

CLIP = ("video", "face_recognition_short_hamilton_clip.mp4")
CUT = 211  # the hand-labelled cut from the singer's close-up to the audience


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _frames(first: int, end: int) -> dict[int, bytes]:
    from faceprint.video.source import VideoSource

    with VideoSource(shared(*CLIP)) as src:
        return {f.index: _jpeg(f.rgb) for f in src.frames(end) if f.index >= first}


def test_live_session_tracks_names_and_ends_names_at_a_cut(client, service) -> None:
    enroll, read = service.headers("enroll"), service.headers("read")
    frames = _frames(90, CUT + 25)
    assert client.post("/v1/people", headers=enroll, json={"name": "singer"}).status_code == 201
    for i in (90, 100, 110):  # enrolled from these frames; the stream below starts after them
        r = client.post("/v1/people/singer/faces", headers=enroll, files={"image": (f"{i}.jpg", frames[i])})
        assert r.status_code == 201, r.text
    answers = []
    for i in range(170, CUT + 25):
        r = client.post("/v1/live/cam-1/frames", headers=read, files={"image": (f"{i}.jpg", frames[i])})
        assert r.status_code == 200, r.text
        answers.append((i, r.json()))
    assert [a["frame"] for _, a in answers] == list(range(len(answers)))
    before = [f for i, a in answers if i < CUT for f in a["faces"]]
    after = [f for i, a in answers if i >= CUT for f in a["faces"]]
    assert sum(f["name"] == "singer" for f in before) >= 0.8 * (CUT - 170)
    assert after and all(f["name"] is None for f in after)
    singer_ids = {f["track_id"] for f in before}
    assert singer_ids.isdisjoint(f["track_id"] for f in after)
    events = [e for _, a in answers for e in a["events"]]
    cut_left = [e for e in events if e["event"] == "left"]
    assert cut_left and all(e["reason"] == "cut" and e["track_id"] in singer_ids for e in cut_left)
    assert {"box", "track_id", "name", "decided", "confidence", "distance"} <= set(after[0])
    # another session (or key) is another stream: its tracks start afresh
    other = client.post("/v1/live/cam-2/frames", headers=read, files={"image": ("x.jpg", frames[CUT + 24])}).json()
    assert other["frame"] == 0 and other["faces"] == []  # a track needs two detections to show
    done = client.delete("/v1/live/cam-1", headers=read)
    assert done.status_code == 200 and done.json()["frames"] == len(answers)
    assert {e["reason"] for e in done.json()["events"]} == {"end"}
    assert client.delete("/v1/live/cam-1", headers=read).status_code == 404


def test_live_bad_requests(client, service) -> None:
    read = service.headers("read")
    jpg = _jpeg(np.zeros((48, 64, 3), np.uint8))
    assert client.post("/v1/live/cam/frames", files={"image": ("a.jpg", jpg)}).status_code == 401
    r = client.post("/v1/live/bad%20id!/frames", headers=read, files={"image": ("a.jpg", jpg)})
    assert r.status_code == 400 and "session id" in r.json()["detail"]
    r = client.post("/v1/live/cam/frames", headers=read, files={"image": ("a.jpg", b"not an image")})
    assert r.status_code == 422
    assert client.delete("/v1/live/never", headers=read).status_code == 404
