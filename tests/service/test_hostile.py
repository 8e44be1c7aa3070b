"""Hostile input to the service: no 5xx, bounded metrics, auth before the body, names, messages.

Each test is one attack of issue 17 through the HTTP API (in-process ASGI client unless the
attack needs a real socket, then a uvicorn server on 127.0.0.1 started as `faceprint serve`
does).
"""

from __future__ import annotations

import io
import json
import unicodedata
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

from ..conftest import shared
from .conftest import make_service


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["detail"]
    assert "Traceback" not in response.text and "object at 0x" not in response.text
    return body


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def test_deeply_nested_metadata_is_refused_before_it_is_stored(client, service) -> None:
    deep: dict = {}
    node = deep
    for _ in range(254):
        node["a"] = {}
        node = node["a"]
    r = client.post("/v1/people", json={"name": "deep", "metadata": deep}, headers=service.headers("enroll"))
    assert "nest" in _problem(r, 400)["detail"]
    big = {"blob": "x" * 20_000}
    assert "bytes" in _problem(client.post("/v1/people", json={"name": "big", "metadata": big},
                                           headers=service.headers("enroll")), 400)["detail"]
    r = client.get("/v1/people", headers=service.headers("read"))
    assert r.status_code == 200 and r.json() == []  # nothing was committed, listing still works
    ok = {"team": {"role": ["lead", {"since": 2020}]}}
    assert client.post("/v1/people", json={"name": "ok", "metadata": ok},
                       headers=service.headers("enroll")).status_code == 201
    assert client.get("/v1/people", headers=service.headers("read")).json()[0]["metadata"] == ok


def test_a_bad_row_stored_before_the_limits_does_not_break_listing(client, service) -> None:
    import sqlite3
    import time

    assert client.post("/v1/people", json={"name": "fine"}, headers=service.headers("enroll")).status_code == 201
    conn = sqlite3.connect(service.db)  # as an older faceprint would have stored it
    conn.execute("INSERT INTO people (name, metadata, created_at) VALUES (?, ?, ?)",
                 ("old", '{"a":' * 255 + "1" + "}" * 255, time.time()))
    conn.commit()
    conn.close()
    r = client.get("/v1/people", headers=service.headers("read"))
    assert r.status_code == 200 and [p["name"] for p in r.json()] == ["fine", "old"]
    assert "nest" in r.json()[1]["metadata"]["invalid_metadata"]
    assert client.delete("/v1/people/old", headers=service.headers("admin")).status_code == 200


def test_parse_errors_are_4xx_problems(client, service) -> None:
    h = service.headers("read")
    bad_multipart = {"Content-Type": "multipart/form-data; boundary=xyz", **h}
    for body in (b"--xyz\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc",  # never closed
                 b"garbage without any boundary", b"--xyz\r\n\x00\x01\x02\r\n\r\n--xyz--\r\n"):
        r = client.post("/v1/detect", content=body, headers=bad_multipart)
        assert 400 <= r.status_code < 500, (body, r.text)
        _problem(r, r.status_code)
    for path in ("/v1/detect", "/v1/people"):
        r = client.post(path, content=b"[" * 5000, headers={"Content-Type": "application/json",
                                                           **service.headers("enroll")})
        assert r.status_code in (400, 422), r.text
        _problem(r, r.status_code)
    r = client.post("/v1/detect", content=b'{"image": "' + b"A" * 10 + b'"', headers={
        "Content-Type": "application/json", **h})
    _problem(r, 400)


def test_metrics_series_stay_bounded_under_junk_methods(client, service) -> None:
    for i in range(100):  # 300 keyless junk requests (before: one new series per method)
        client.request(f"JUNK{i}", "/v1/detect")
        client.request(f"X{i}", "/healthz")
        client.get(f"/nope/{i}")
    text = client.get("/metrics", headers=service.headers("read")).text
    series = [line for line in text.splitlines() if line.startswith("faceprint_http_requests_total")]
    # (method, route, status) from bounded sets: OTHER/GET x unmatched//healthz x 401/404/405/429
    assert len(series) <= 10, series
    assert "JUNK" not in text and 'method="OTHER"' in text and "/nope/" not in text


def test_auth_comes_before_the_body(client, service) -> None:
    r = client.post("/v1/people", content=b"{not json", headers={"Content-Type": "application/json"})
    _problem(r, 401)
    r = client.post("/v1/detect", content=b"[" * 5000, headers={"Content-Type": "application/json"})
    _problem(r, 401)


def test_keyless_clients_are_rate_limited(tmp_path, pipeline) -> None:
    from fastapi.testclient import TestClient

    svc = make_service(tmp_path / "g.db", pipeline, rate_per_minute=0, anonymous_rate_per_minute=30, burst=10)
    with TestClient(svc.app, raise_server_exceptions=False) as c:
        codes = [c.get("/v1/people").status_code for _ in range(15)]
        assert codes[:10] == [401] * 10 and set(codes[10:]) == {429}
        r = c.get("/v1/people")
        assert int(_problem(r, 429) and r.headers["Retry-After"]) >= 1
        assert c.get("/healthz").status_code == 200  # health probes are not limited
        assert c.get("/v1/people", headers=svc.headers("read")).status_code == 200  # keyed clients unaffected


@pytest.mark.parametrize("name", ["a/b", ".", "..", "zero\u200bwidth", "bidi\u202eevil", "esc\x1b[31m", "nul\x00",
                                  "x" * 201])
def test_unaddressable_and_invisible_names_are_refused(client, service, name: str) -> None:
    r = client.post("/v1/people", json={"name": name}, headers=service.headers("enroll"))
    assert r.status_code in (400, 422), r.text
    _problem(r, r.status_code)
    assert client.get("/v1/people", headers=service.headers("read")).json() == []


def test_names_are_nfc_and_every_accepted_name_is_addressable(client, service) -> None:
    nfc, nfd = unicodedata.normalize("NFC", "José"), unicodedata.normalize("NFD", "José")
    assert nfc != nfd
    assert client.post("/v1/people", json={"name": nfc}, headers=service.headers("enroll")).status_code == 201
    _problem(client.post("/v1/people", json={"name": nfd}, headers=service.headers("enroll")), 409)
    odd = "100% sure? #1 & ;x"
    assert client.post("/v1/people", json={"name": odd}, headers=service.headers("enroll")).json()["name"] == odd
    photo = shared("people", "obama.jpg").read_bytes()
    for name in (nfd, odd):  # the decomposed spelling reaches the NFC person
        r = client.post(f"/v1/people/{quote(name, safe='')}/faces", files={"image": ("o.jpg", photo)},
                        headers=service.headers("enroll"))
        assert r.status_code in (201, 422), r.text
    r = client.patch(f"/v1/people/{quote(odd, safe='')}", json={"name": "renamed"}, headers=service.headers("admin"))
    assert r.status_code == 200 and r.json()["name"] == "renamed"
    assert client.delete(f"/v1/people/{quote(nfd, safe='')}", headers=service.headers("admin")).status_code == 200
    assert [p["name"] for p in client.get("/v1/people", headers=service.headers("read")).json()] == ["renamed"]


def test_messages_name_the_upload_and_refuse_infinite_thresholds(client, service) -> None:
    face = shared("people", "obama.jpg").read_bytes()
    blank = _png(np.full((120, 100, 3), 200, np.uint8))
    r = client.post("/v1/verify", files={"image_a": ("me.jpg", face), "image_b": ("blank.png", blank)},
                    headers=service.headers("read"))
    detail = _problem(r, 422)["detail"]
    assert "blank.png" in detail and "<array" not in detail
    r = client.post("/v1/detect", files={"image": ("notes.txt", b"hello, not an image")},
                    headers=service.headers("read"))
    detail = _problem(r, 422)["detail"]
    assert detail.startswith("notes.txt:") and "BytesIO" not in detail
    for value in ("inf", "nan", "-1"):
        r = client.post(f"/v1/verify?threshold={value}", files={"image_a": ("a.jpg", face), "image_b": ("b.jpg", face)},
                        headers=service.headers("read"))
        _problem(r, 422)
        r = client.post(f"/v1/identify?threshold={value}", files={"image": ("a.jpg", face)},
                        headers=service.headers("read"))
        _problem(r, 422)


def test_formats_outside_the_allowlist_never_reach_a_decoder(client, service) -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    for name, data in (("x.eps", eps), ("x.pdf", b"%PDF-1.4\n"), ("x.svg", b"<svg xmlns='x'/>"),
                       ("x.ico", b"\x00\x00\x01\x00" + b"\x00" * 40)):
        r = client.post("/v1/detect", files={"image": (name, data)}, headers=service.headers("read"))
        assert "not a readable image" in _problem(r, 422)["detail"]


def test_decode_budget_refuses_a_zero_filled_png_bomb(client, service) -> None:
    bomb = _png(np.zeros((6300, 6300, 3), np.uint8))  # ~115 KB on the wire, 119 MB of pixels
    r = client.post("/v1/detect", files={"image": ("bomb.png", bomb)}, headers=service.headers("read"))
    detail = _problem(r, 413)["detail"]
    assert detail.startswith("bomb.png:") and "pixel limit" in detail


def test_enrolling_over_http_after_a_cli_enrollment_on_a_fresh_database(tmp_path, pipeline) -> None:
    """The service opened the file first (its model bound, no dimension yet); a CLI enrollment
    then stores the first vectors; the service's next enrollment must read the new dimension."""
    import subprocess
    import sys
    from fastapi.testclient import TestClient

    svc = make_service(tmp_path / "g.db", pipeline, rate_per_minute=0)
    train = shared("people", "knn_examples", "train")
    with TestClient(svc.app, raise_server_exceptions=False) as c:
        assert c.get("/v1/people", headers=svc.headers("read")).json() == []
        done = subprocess.run([sys.executable, "-c", "from faceprint.cli import main; main()", "enroll", "--db",
                               str(svc.db), "biden", str(train / "biden" / "biden.jpg")],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        r = c.post("/v1/people/biden/faces", files={"image": ("b2.jpg", (train / "biden" / "biden2.jpg").read_bytes())},
                   headers=svc.headers("enroll"))
        assert r.status_code == 201 and r.json()["samples"] == 2, r.text
        r = c.post("/v1/people/biden/faces", files={"image": ("again.jpg", (train / "biden" / "biden.jpg").read_bytes())},
                   headers=svc.headers("enroll"))
        assert "duplicate" in _problem(r, 422)["detail"]


def test_a_jpeg_over_the_pixel_limit_is_decoded_reduced_with_boxes_in_its_own_pixels(tmp_path, pipeline) -> None:
    """A 4x upscaled photo over the server's pixel limit: detected at 1/4 size, boxes and
    landmarks answered in the upload's pixels (4x those of the original photo)."""
    from fastapi.testclient import TestClient

    photo = Image.open(shared("people", "obama.jpg")).convert("RGB")
    big = photo.resize((photo.width * 4, photo.height * 4))
    svc = make_service(tmp_path / "g.db", pipeline, rate_per_minute=0,
                       max_pixels=photo.width * photo.height * 2)  # the upscaled photo is 16x that
    with TestClient(svc.app, raise_server_exceptions=False) as c:
        def detect(img: Image.Image) -> dict:
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=95)
            r = c.post("/v1/detect", files={"image": ("p.jpg", buf.getvalue())}, headers=svc.headers("read"))
            assert r.status_code == 200, r.text
            return r.json()["faces"][0]

        small, large = detect(photo), detect(big)
        assert np.allclose(np.array(large["box"]) / 4, small["box"], atol=6)
        assert np.allclose(np.array(large["landmarks"]) / 4, small["landmarks"], atol=4)
        buf = io.BytesIO()
        big.save(buf, "PNG")  # no reduced decode for PNG: refused from its header
        r = c.post("/v1/detect", files={"image": ("p.png", buf.getvalue())}, headers=svc.headers("read"))
        assert "pixel limit" in _problem(r, 413)["detail"]


def test_docs_assets_are_an_allowlist(client) -> None:
    assert client.get("/docs").status_code == 200 and "swagger-ui-bundle.js" in client.get("/docs").text
    assert client.get("/docs/assets/swagger-ui.css").status_code == 200
    for name in ("index.css", "..%2F..%2Fsecrets", "swagger-ui.js.map"):
        assert client.get(f"/docs/assets/{name}").status_code == 404
