"""Keys, scopes, rate limits, body and pixel limits, problem details, CORS, metrics."""

from __future__ import annotations

import io
import json
import sqlite3

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from faceprint.cli import app as cli_app
from faceprint.service.auth import RateLimiter
from faceprint.service.keys import KeyStore
from faceprint.service.problems import RateLimited

from ..conftest import shared
from .conftest import make_service

#: (method, path, scope needed) of every endpoint that needs a key.
def _endpoints() -> list[tuple[str, str, str]]:
    return [
        ("POST", "/v1/detect", "read"),
        ("POST", "/v1/embed", "read"),
        ("POST", "/v1/verify", "read"),
        ("GET", "/metrics", "read"),
        ("POST", "/v1/identify", "read"),
        ("GET", "/v1/people", "read"),
        ("POST", "/v1/people", "enroll"),
        ("POST", "/v1/people/someone/faces", "enroll"),
        ("PATCH", "/v1/people/someone", "admin"),
        ("POST", "/v1/people/someone/merge", "admin"),
        ("DELETE", "/v1/people/someone", "admin"),
        ("POST", "/v1/cluster", "admin"),
        ("GET", "/v1/cluster", "read"),
        ("GET", "/v1/cluster/1", "read"),
    ]


#: What an allowed key gets for a request with no body: 400 no multipart image, 422 no JSON body,
#: 404 nothing of that name, 200 a listing.
EMPTY_REQUEST_STATUS = {
    ("POST", "/v1/detect"): 400, ("POST", "/v1/embed"): 400, ("POST", "/v1/verify"): 400, ("GET", "/metrics"): 200,
    ("POST", "/v1/identify"): 400, ("GET", "/v1/people"): 200, ("POST", "/v1/people"): 422,
    ("POST", "/v1/people/someone/faces"): 400, ("PATCH", "/v1/people/someone"): 422,
    ("POST", "/v1/people/someone/merge"): 422, ("DELETE", "/v1/people/someone"): 404, ("POST", "/v1/cluster"): 422,
    ("GET", "/v1/cluster"): 200, ("GET", "/v1/cluster/1"): 404,
}


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body


def test_healthz_needs_no_key(client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


@pytest.mark.parametrize("method,path,scope", _endpoints())
def test_every_endpoint_refuses_missing_and_unknown_keys(client, method: str, path: str, scope: str) -> None:
    body = _problem(client.request(method, path), 401)
    assert "API key is required" in body["detail"]
    _problem(client.request(method, path, headers={"Authorization": "Bearer fp_not-a-real-key"}), 401)
    _problem(client.request(method, path, headers={"X-API-Key": "fp_not-a-real-key"}), 401)
    _problem(client.request(method, path, headers={"Authorization": "Basic dXNlcjpwdw=="}), 401)


@pytest.mark.parametrize("method,path,scope", _endpoints())
def test_every_endpoint_checks_the_scope(client, service, method: str, path: str, scope: str) -> None:
    order = ["read", "enroll", "admin"]
    for granted in order:
        r = client.request(method, path, headers=service.headers(granted))
        if order.index(granted) < order.index(scope):
            assert "needs an API key with scope" in _problem(r, 403)["detail"]
        elif EMPTY_REQUEST_STATUS[method, path] == 200:  # allowed: the exact answer to an empty request
            assert r.status_code == 200, r.text
        else:  # allowed, and the request is refused for what it lacks (never a 500 or an auth error)
            _problem(r, EMPTY_REQUEST_STATUS[method, path])


def test_both_header_styles_work(client, service) -> None:
    key = service.keys["read"]
    assert client.get("/metrics", headers={"X-API-Key": key}).status_code == 200
    assert client.get("/metrics", headers={"Authorization": f"bearer {key}"}).status_code == 200


def test_revoked_key_is_refused(client, service) -> None:
    store = KeyStore(service.db)
    record, key = store.create("read")
    assert client.get("/metrics", headers={"X-API-Key": key}).status_code == 200
    store.revoke(record.id)
    _problem(client.get("/metrics", headers={"X-API-Key": key}), 401)


def test_rate_limit_per_key(tmp_path, pipeline) -> None:
    from fastapi.testclient import TestClient

    svc = make_service(tmp_path / "g.db", pipeline, rate_per_minute=6, burst=3)
    store = KeyStore(svc.db)
    _, unlimited = store.create("read", rate_per_minute=0)
    with TestClient(svc.app) as c:
        codes = [c.get("/metrics", headers=svc.headers("read")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = c.get("/metrics", headers=svc.headers("read"))
        body = _problem(r, 429)
        assert "rate limit of 6 requests/minute" in body["detail"] and 1 <= int(r.headers["retry-after"]) <= 10
        # other keys have their own buckets; a key's own rate (0 = unlimited) beats the server default
        assert c.get("/metrics", headers=svc.headers("admin")).status_code == 200
        assert all(c.get("/metrics", headers={"X-API-Key": unlimited}).status_code == 200 for _ in range(10))
        assert c.get("/healthz").status_code == 200  # never limited


def test_rate_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(burst=2, clock=lambda: now[0])
    limiter.take(1, 60)
    limiter.take(1, 60)
    with pytest.raises(RateLimited) as info:
        limiter.take(1, 60)
    assert info.value.retry_after == pytest.approx(1.0)
    now[0] = 1.0  # one token back after 1 s at 60/min
    limiter.take(1, 60)
    with pytest.raises(RateLimited):
        limiter.take(1, 60)


def test_oversized_body_is_413(tmp_path, pipeline) -> None:
    from fastapi.testclient import TestClient

    svc = make_service(tmp_path / "g.db", pipeline, max_request_bytes=50_000, rate_per_minute=0)
    data = shared("people", "obama.jpg").read_bytes()
    assert len(data) > 50_000
    with TestClient(svc.app) as c:
        r = c.post("/v1/detect", headers=svc.headers("read"), files={"image": ("big.jpg", data, "image/jpeg")})
        assert "byte limit" in _problem(r, 413)["detail"]

        def chunks():  # no Content-Length: the limit applies while streaming
            for i in range(0, len(data), 8192):
                yield data[i:i + 8192]

        r = c.post("/v1/detect", headers={**svc.headers("read"), "Content-Type": "application/json"}, content=chunks())
        _problem(r, 413)


def test_too_many_pixels_is_413_before_decoding(tmp_path, pipeline) -> None:
    from fastapi.testclient import TestClient

    svc = make_service(tmp_path / "g.db", pipeline, max_pixels=100 * 100, rate_per_minute=0)
    with TestClient(svc.app) as c:
        r = c.post("/v1/detect", headers=svc.headers("read"), files={"image": ("wide.png", _png(101, 100), "image/png")})
        assert "wide.png: 101x100 exceeds the 10000 pixel limit" in _problem(r, 413)["detail"]
        r = c.post("/v1/detect", headers=svc.headers("read"), files={"image": ("ok.png", _png(100, 100), "image/png")})
        assert r.status_code == 200 and r.json()["faces"] == []


@pytest.mark.parametrize("payload,status,needle", [
    ({"files": {"image": ("broken.jpg", b"\xff\xd8\xff\xe0garbage", "image/jpeg")}}, 422, "broken.jpg"),
    ({"files": {"image": ("empty.jpg", b"", "image/jpeg")}}, 422, "no data"),
    ({"files": {"photo": ("x.jpg", b"abc", "image/jpeg")}}, 400, "field 'image'"),
    ({"data": {"image": "not a file"}, "files": {"other": ("x.jpg", b"abc")}}, 400, "must be a file upload"),
    ({"json": {"image": "%%% not base64"}}, 400, "not valid base64"),
    ({"json": {"picture": "AAAA"}}, 400, "field 'image'"),
    ({"json": ["image"]}, 400, "must be an object"),
    ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "not valid JSON"),
    ({"content": b"raw", "headers": {"Content-Type": "image/jpeg"}}, 400, "content type 'image/jpeg'"),
])
def test_bad_uploads_are_problem_details(client, service, payload, status, needle) -> None:
    headers = {**service.headers("read"), **payload.pop("headers", {})}
    body = _problem(client.post("/v1/detect", headers=headers, **payload), status)
    assert needle in body["detail"]


def test_truncated_image_is_422(client, service) -> None:
    data = shared("people", "obama.jpg").read_bytes()
    r = client.post("/v1/embed", headers=service.headers("read"), files={"image": ("cut.jpg", data[: len(data) // 3])})
    assert "cut.jpg" in _problem(r, 422)["detail"]


def test_unexpected_errors_are_500_without_internals(tmp_path, pipeline) -> None:
    from fastapi.testclient import TestClient

    class Exploding:
        spec = pipeline.spec

        def detect(self, image):
            raise RuntimeError("secret internal path /srv/x")

    svc = make_service(tmp_path / "g.db", Exploding(), rate_per_minute=0)
    with TestClient(svc.app, raise_server_exceptions=False) as c:
        r = c.post("/v1/detect", headers=svc.headers("read"), files={"image": ("a.png", _png(20, 20))})
        body = _problem(r, 500)
        assert "secret" not in r.text and "RuntimeError" not in r.text and "internal error" in body["detail"]


def test_unknown_route_is_problem_404(client) -> None:
    _problem(client.get("/v1/nope"), 404)


def test_cors_is_off_by_default_and_opt_in(tmp_path, pipeline, client) -> None:
    from fastapi.testclient import TestClient

    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization"}
    r = client.options("/v1/detect", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    svc = make_service(tmp_path / "g.db", pipeline, cors_origins=("https://app.example",))
    with TestClient(svc.app) as c:
        ok = c.options("/v1/detect", headers={**preflight, "Origin": "https://app.example"})
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        bad = c.options("/v1/detect", headers=preflight)
        assert "access-control-allow-origin" not in bad.headers


def test_metrics_count_requests(client, service) -> None:
    client.post("/v1/detect")
    text = client.get("/metrics", headers=service.headers("read")).text
    assert 'faceprint_http_requests_total{method="POST",route="/v1/detect",status="401"} 1.0' in text
    assert "faceprint_http_request_duration_seconds_bucket" in text
    assert 'faceprint_gallery_size{what="people"} 0.0' in text
    client.post("/v1/people", headers=service.headers("enroll"), json={"name": "ada"})
    text = client.get("/metrics", headers=service.headers("read")).text
    assert 'faceprint_gallery_size{what="people"} 1.0' in text and 'faceprint_gallery_size{what="samples"} 0.0' in text


def test_openapi_describes_endpoints_and_key_schemes(client) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/v1/detect", "/v1/embed", "/v1/verify", "/v1/identify", "/v1/people", "/v1/people/{name}",
            "/v1/people/{name}/faces", "/v1/people/{name}/merge", "/v1/cluster", "/v1/cluster/{job_id}", "/healthz",
            "/metrics"} <= set(spec["paths"])
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "apiKeyHeader"}
    body = spec["paths"]["/v1/verify"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}


def test_page_is_served_with_a_strict_csp(client) -> None:
    r = client.get("/ui/")
    assert r.status_code == 200 and "faceprint" in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert client.get("/ui/app.js").status_code == 200
    _problem(client.get("/ui/../keys.py"), 404)


runner = CliRunner()


def test_keys_cli_prints_the_key_last_and_stores_only_its_hash(tmp_path) -> None:
    db = tmp_path / "keys.db"
    result = runner.invoke(cli_app, ["keys", "create", "--db", str(db), "--scope", "enroll", "--name", "kiosk"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("fp_") and len(key) > 40
    record = KeyStore(db).lookup(key)
    assert record is not None and record.scope == "enroll" and record.name == "kiosk"
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert key.encode() not in raw and key[3:].encode() not in raw
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version FROM schema_versions WHERE component='service'").fetchone() == (1,)
    listed = runner.invoke(cli_app, ["keys", "list", "--db", str(db), "--json"])
    assert json.loads(listed.stdout)[0]["scope"] == "enroll" and key not in listed.stdout
    revoked = runner.invoke(cli_app, ["keys", "revoke", "1", "--db", str(db), "--json"])
    assert json.loads(revoked.stdout)["revoked"] is True and KeyStore(db).lookup(key) is None


def test_serve_refuses_a_wildcard_cors_origin_in_one_line(tmp_path) -> None:
    result = runner.invoke(cli_app, ["serve", "--db", str(tmp_path / "s.db"), "--cors-origin", "*"])
    assert result.exit_code == 2 and "CORS origin '*' is refused" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_keys_cli_rejects_a_bad_scope_in_one_line(tmp_path) -> None:
    result = runner.invoke(cli_app, ["keys", "create", "--db", str(tmp_path / "k.db"), "--scope", "root"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "scope must be one of read, enroll, admin" in result.stderr
