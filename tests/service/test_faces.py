"""/v1/detect, /v1/embed, /v1/verify on real photos: the CLI's records, multipart and base64 alike."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from ..conftest import shared


def _upload(name: str, *parts: str) -> dict:
    path = shared("people", *parts)
    return {"files": {name: (path.name, path.read_bytes(), "image/jpeg")}}


def test_detect_returns_the_cli_record(client, service, pipeline) -> None:
    r = client.post("/v1/detect", headers=service.headers("read"), **_upload("image", "two_people.jpg"))
    assert r.status_code == 200
    body = r.json()
    assert body["image"] == "two_people.jpg"
    assert body["faces"] == pipeline.detect(shared("people", "two_people.jpg")).to_records()
    assert len(body["faces"]) == 2 and set(body["faces"][0]) == {"box", "score", "landmarks"}


def test_embed_multipart_and_base64_agree_with_the_library(client, service, pipeline) -> None:
    path = shared("people", "obama.jpg")
    multi = client.post("/v1/embed", headers=service.headers("read"), **_upload("image", "obama.jpg")).json()
    b64 = base64.b64encode(path.read_bytes()).decode()
    as_json = client.post("/v1/embed", headers=service.headers("read"),
                          json={"image": f"data:image/jpeg;base64,{b64}", "image_name": "o.jpg"}).json()
    assert multi["faces"] == as_json["faces"] and as_json["image"] == "o.jpg"
    assert multi["model"] == pipeline.spec.model_id
    face = multi["faces"][0]
    assert set(face) == {"box", "score", "embedding"} and len(face["embedding"]) == pipeline.spec.dim
    expected = pipeline.embed(path).embeddings.vectors[0]
    np.testing.assert_allclose(face["embedding"], expected, atol=1e-6)


def test_verify_same_and_different_people(client, service, pipeline) -> None:
    a, b = shared("people", "knn_examples", "train", "obama", "obama.jpg"), shared("people", "knn_examples", "train", "obama", "obama2.jpg")
    files = {"image_a": (a.name, a.read_bytes()), "image_b": (b.name, b.read_bytes())}
    same = client.post("/v1/verify", headers=service.headers("read"), files=files).json()
    expected = pipeline.verify(a, b).to_dict()
    assert same == expected and same["match"] is True and "probability" not in same
    biden = shared("people", "biden.jpg")
    files["image_b"] = (biden.name, biden.read_bytes())
    diff = client.post("/v1/verify", headers=service.headers("read"), files=files).json()
    assert diff["match"] is False and diff["distance"] > diff["threshold"]
    strict = client.post("/v1/verify?threshold=0.01", headers=service.headers("read"),
                         files={"image_a": (a.name, a.read_bytes()), "image_b": (b.name, b.read_bytes())}).json()
    assert strict["threshold"] == 0.01 and strict["match"] is False


def test_verify_chooses_a_face_per_image_as_the_cli(client, service, pipeline) -> None:
    two = shared("people", "two_people.jpg")
    files = {"image_a": (two.name, two.read_bytes()), "image_b": (two.name, two.read_bytes())}

    def distance(query: str) -> float:
        r = client.post(f"/v1/verify?{query}", headers=service.headers("read"), files=files)
        assert r.status_code == 200, r.text
        return r.json()["distance"]

    apart = distance("face_a=0&face_b=1")
    assert distance("face=1") < 1e-6 and apart > 0.6
    assert abs(apart - pipeline.verify(two, two, face=0, face_b=1).distance) < 1e-4
    assert abs(distance("face=1&face_a=0") - apart) < 1e-6  # face_b falls back to face
    assert client.post("/v1/verify?face_b=-1", headers=service.headers("read"), files=files).status_code == 422


def test_verify_reports_probability_with_a_calibration(tmp_path, pipeline) -> None:
    from fastapi.testclient import TestClient

    from faceprint.calibration import Calibration
    from faceprint.pipeline import FacePipeline

    from .conftest import make_service

    calib = Calibration(model_id=pipeline.spec.model_id, metric=pipeline.spec.metric, threshold=0.55, target_far=1e-3,
                        far=1e-3, far_ci=(0.0, 0.01), threshold_ci=(0.5, 0.6), confidence=0.95, tar=0.9,
                        n_impostor=1000, n_genuine=1000, logistic_intercept=12.0, logistic_coef=-20.0)
    calibrated = FacePipeline(detector=pipeline.detector, embedder=pipeline.embedder, aligner=pipeline.aligner,
                              calibration=calib)
    svc = make_service(tmp_path / "g.db", calibrated, rate_per_minute=0)
    a, b = shared("people", "obama.jpg"), shared("people", "biden.jpg")
    with TestClient(svc.app) as c:
        r = c.post("/v1/verify", headers=svc.headers("read"),
                   files={"image_a": (a.name, a.read_bytes()), "image_b": (b.name, b.read_bytes())}).json()
    assert r["threshold"] == 0.55
    assert r["probability"] == pytest.approx(calib.probability(r["distance"]), abs=1e-6)


def test_verify_missing_face_is_422(client, service) -> None:
    a = shared("people", "obama.jpg")
    files = {"image_a": (a.name, a.read_bytes()), "image_b": (a.name, a.read_bytes())}
    r = client.post("/v1/verify?face=3", headers=service.headers("read"), files=files)
    assert r.status_code == 422 and "face #3 requested" in r.json()["detail"]
    r = client.post("/v1/verify?face=-1", headers=service.headers("read"), files=files)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "face"]
