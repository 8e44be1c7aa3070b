"""/v1/identify and /v1/people: enroll, identify, rename, merge, delete over HTTP on real photos."""

from __future__ import annotations

import base64
import io
import threading

import numpy as np
import pytest
from PIL import Image

from ..conftest import shared

KNN = ("people", "knn_examples")


def _file(*parts: str) -> tuple[str, bytes]:
    path = shared(*parts)
    return path.name, path.read_bytes()


def enroll_knn(client, headers) -> dict[str, int]:
    """Enroll the five knn_examples people over HTTP; their sample counts."""
    counts = {}
    for person in sorted(shared(*KNN, "train").iterdir()):
        assert client.post("/v1/people", headers=headers, json={"name": person.name}).status_code == 201
        for photo in sorted(person.iterdir()):
            r = client.post(f"/v1/people/{person.name}/faces", headers=headers,
                            files={"image": (photo.name, photo.read_bytes())})
            assert r.status_code == 201, r.text
            counts[person.name] = r.json()["samples"]
    return counts


def test_enroll_then_identify_matches_the_library(client, service, pipeline) -> None:
    counts = enroll_knn(client, service.headers("enroll"))
    assert counts == {"alex_lacamoire": 1, "biden": 2, "kit_harington": 2, "obama": 2, "rose_leslie": 2}
    listed = client.get("/v1/people", headers=service.headers("read")).json()
    assert {p["name"]: p["samples"] for p in listed} == counts
    r = client.post("/v1/identify", headers=service.headers("read"), files={"image": _file(*KNN, "test", "obama_and_biden.jpg")})
    body = r.json()
    assert r.status_code == 200 and body["image"] == "obama_and_biden.jpg"
    names = sorted(f["name"] for f in body["faces"] if f["name"])
    assert names == ["biden", "obama"]
    assert set(body["faces"][0]) == {"box", "name", "distance", "score", "threshold", "candidates"}
    # the same records as the library on the same gallery
    from faceprint.gallery import Recognizer, open_gallery

    with open_gallery(service.db) as gallery:
        expected = [f.to_record() for f in Recognizer(pipeline, gallery).identify(shared(*KNN, "test", "obama_and_biden.jpg"))]
    assert body["faces"] == expected
    for photo, who in (("obama1.jpg", "obama"), ("alex_lacamoire1.jpg", "alex_lacamoire"), ("johnsnow_test1.jpg", "kit_harington")):
        faces = client.post("/v1/identify", headers=service.headers("read"),
                            files={"image": _file(*KNN, "test", photo)}).json()["faces"]
        assert faces[0]["name"] == who, (photo, faces)


def test_identify_base64_and_unknown_faces(client, service) -> None:
    data = shared("people", "biden.jpg").read_bytes()
    body = {"image": base64.b64encode(data).decode()}
    empty = client.post("/v1/identify", headers=service.headers("read"), json=body).json()
    assert len(empty["faces"]) == 1 and empty["faces"][0]["name"] is None  # nobody enrolled yet
    assert empty["faces"][0]["distance"] is None and empty["faces"][0]["candidates"] == []
    # a person without faces yet (the page creates the person, then uploads): still unknown, no error
    client.post("/v1/people", headers=service.headers("enroll"), json={"name": "biden"})
    r = client.post("/v1/identify", headers=service.headers("read"), json=body)
    assert r.status_code == 200 and r.json() == empty
    obama = shared("people", "obama.jpg")
    client.post("/v1/people", headers=service.headers("enroll"), json={"name": "obama"})
    client.post("/v1/people/obama/faces", headers=service.headers("enroll"), files={"image": (obama.name, obama.read_bytes())})
    face = client.post("/v1/identify", headers=service.headers("read"), json=body).json()["faces"][0]
    assert face["name"] is None and face["candidates"][0]["name"] == "obama" and face["distance"] > 0.6


def test_add_face_rejections_store_nothing(client, service) -> None:
    h = service.headers("enroll")
    assert client.post("/v1/people", headers=h, json={"name": "obama"}).status_code == 201
    problem = client.post("/v1/people", headers=h, json={"name": "obama"})
    assert problem.status_code == 409 and problem.json()["type"].endswith("PersonExistsError")
    assert str(service.db) not in problem.text  # the server's file layout stays private
    assert client.post("/v1/people", headers=h, json={"name": ""}).status_code == 422
    grey = io.BytesIO()
    Image.fromarray(np.full((200, 200, 3), 120, np.uint8)).save(grey, "PNG")
    r = client.post("/v1/people/obama/faces", headers=h, files={"image": ("wall.png", grey.getvalue())})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["report"]["rejected"][0]["source"] == "wall.png"
    r = client.post("/v1/people/obama/faces", headers=h, files={"image": _file("people", "two_people.jpg")})
    assert r.status_code == 422
    r = client.post("/v1/people/nobody/faces", headers=h, files={"image": _file("people", "obama.jpg")})
    assert r.status_code == 404 and "nobody" in r.json()["detail"]
    ok = client.post("/v1/people/obama/faces", headers=h,
                     json={"image": base64.b64encode(shared("people", "obama.jpg").read_bytes()).decode()})
    assert ok.status_code == 201 and ok.json()["samples"] == 1
    again = client.post("/v1/people/obama/faces", headers=h, files={"image": _file("people", "obama.jpg")})
    assert again.status_code == 422 and "duplicate" in again.json()["detail"]
    assert client.get("/v1/people", headers=h).json()[0]["samples"] == 1


def test_rename_merge_delete(client, service) -> None:
    enroll_knn(client, service.headers("admin"))
    admin, enroll = service.headers("admin"), service.headers("enroll")
    assert client.patch("/v1/people/obama", headers=enroll, json={"name": "barack"}).status_code == 403
    r = client.patch("/v1/people/obama", headers=admin, json={"name": "barack"})
    assert r.status_code == 200 and r.json()["name"] == "barack" and r.json()["samples"] == 2
    assert client.patch("/v1/people/barack", headers=admin, json={"name": "biden"}).status_code == 409
    assert client.patch("/v1/people/ghost", headers=admin, json={"name": "x"}).status_code == 404
    r = client.post("/v1/people/kit_harington/merge", headers=admin, json={"into": "rose_leslie"})
    assert r.json() == {"merged": "kit_harington", "into": "rose_leslie", "moved": 2}
    assert client.post("/v1/people/ghost/merge", headers=admin, json={"into": "biden"}).status_code == 404
    r = client.delete("/v1/people/biden", headers=admin)
    assert r.json() == {"name": "biden", "removed": 2}
    assert client.delete("/v1/people/biden", headers=admin).status_code == 404
    people = {p["name"]: p["samples"] for p in client.get("/v1/people", headers=admin).json()}
    assert people == {"alex_lacamoire": 1, "barack": 2, "rose_leslie": 4}
    faces = client.post("/v1/identify", headers=admin, files={"image": _file(*KNN, "test", "obama1.jpg")}).json()["faces"]
    assert faces[0]["name"] == "barack"


def test_enrollment_during_identify_load_loses_nothing(live_server) -> None:
    import httpx

    svc = live_server.service
    photos = [_file(*KNN, "test", "obama1.jpg"), _file(*KNN, "test", "alex_lacamoire1.jpg")]
    lfw = sorted(d for d in shared("lfw-view1", "images").iterdir() if d.is_dir())[:4]
    errors: list[str] = []

    def load(i: int) -> None:
        with httpx.Client(base_url=live_server.url, headers=svc.headers("read"), timeout=60) as http:
            for j in range(3):
                r = http.post("/v1/identify", files={"image": photos[(i + j) % 2]})
                if r.status_code != 200:
                    errors.append(r.text)

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    with httpx.Client(base_url=live_server.url, headers=svc.headers("enroll"), timeout=60) as http:
        for d in lfw:
            assert http.post("/v1/people", json={"name": d.name}).status_code == 201
            photo = sorted(d.iterdir())[0]
            r = http.post(f"/v1/people/{d.name}/faces", files={"image": (photo.name, photo.read_bytes())})
            assert r.status_code == 201, r.text
    for t in threads:
        t.join()
    assert errors == []
    with httpx.Client(base_url=live_server.url, headers=svc.headers("read")) as http:
        stored = {p["name"]: p["samples"] for p in http.get("/v1/people").json()}
    assert stored == {d.name: 1 for d in lfw}


# The CLI and a server sharing one database: tests/test_cli_subprocess.py, with a real `faceprint`
# process beside a real `faceprint serve` process (no CliRunner, no TestClient).
