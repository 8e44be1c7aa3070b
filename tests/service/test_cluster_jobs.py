"""/v1/cluster: jobs over a photo index filled by `faceprint index` on the same database."""

from __future__ import annotations

import time

import pytest

from ..conftest import shared


@pytest.fixture
def indexed(service, pipeline):
    """The knn_examples train photos (5 people, 9 photos) indexed into the service's database."""
    from faceprint.collections.index import index_folder
    from faceprint.collections.store import connect

    conn = connect(service.db)
    report = index_folder(conn, shared("people", "knn_examples", "train"))
    conn.close()
    assert report.faces == 9
    return service


def wait_job(client, headers, job_id: int, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/v1/cluster/{job_id}", headers=headers).json()
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def test_cluster_job_groups_the_indexed_people(client, indexed) -> None:
    r = client.post("/v1/cluster", headers=indexed.headers("admin"), json={"algorithm": "chinese_whispers"})
    assert r.status_code == 202 and r.headers["location"] == f"/v1/cluster/{r.json()['id']}"
    assert r.json()["status"] in ("queued", "running", "done")
    job = wait_job(client, indexed.headers("read"), r.json()["id"])
    assert job["status"] == "done", job
    people = [sorted({f["photo"].split("/")[-2] for f in c["faces"]}) for c in job["result"]["clusters"]]
    # every cluster holds one person, and the two-photo people are not split
    assert all(len(p) == 1 for p in people)
    for name in ("biden", "kit_harington", "obama", "rose_leslie"):
        assert sum(p == [name] for p in people) == 1, people
    assert job["summary"]["clusters"] == len(job["result"]["clusters"])
    listed = client.get("/v1/cluster", headers=indexed.headers("read")).json()
    assert [j["id"] for j in listed] == [job["id"]] and "result" not in listed[0]


def test_cluster_job_errors(client, indexed) -> None:
    admin = indexed.headers("admin")
    assert client.post("/v1/cluster", headers=indexed.headers("enroll"), json={}).status_code == 403
    assert client.get("/v1/cluster", headers=indexed.headers("read")).status_code == 200
    bad = client.post("/v1/cluster", headers=admin, json={"algorithm": "magic"})
    assert bad.status_code == 400 and "magic" in bad.json()["detail"]
    assert client.post("/v1/cluster", headers=admin, json={"algorithm": "kmeans"}).status_code == 400
    assert client.post("/v1/cluster", headers=admin, json={"threshold": -1}).status_code == 422
    assert client.get("/v1/cluster/999", headers=admin).status_code == 404


def test_cluster_job_on_an_empty_index(client, service) -> None:
    r = client.post("/v1/cluster", headers=service.headers("admin"), json={})
    job = wait_job(client, service.headers("read"), r.json()["id"])
    assert job["status"] == "done" and job["result"]["clusters"] == [] and job["result"]["noise"] == []


def test_cluster_job_defaults_to_the_cli_algorithm(client, indexed) -> None:
    """A job with no settings clusters like `faceprint cluster` with none (hdbscan)."""
    from faceprint.cli.collections import AlgorithmOpt

    r = client.post("/v1/cluster", headers=indexed.headers("admin"), json={})
    job = wait_job(client, indexed.headers("read"), r.json()["id"])
    assert job["status"] == "done", job
    assert job["params"]["algorithm"] == AlgorithmOpt.default == "hdbscan"
