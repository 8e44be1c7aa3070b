"""Load test of ``faceprint serve`` on loopback: N concurrent clients x M identify requests.

Starts the server as a subprocess on 127.0.0.1 with its defaults (a temporary database, one
admin key created with the **default rate limit**: 1,200 requests/minute, a burst of 60),
enrolls the five ``knn_examples`` people over HTTP, then has N client threads (one keep-alive
HTTP connection each, all on that key) send M ``POST /v1/identify`` requests with the real
photos of ``people/`` (knn_examples, deepface_pairs, facenet_pytorch), **unfiltered** (any
number of faces), each padded to 640x480 JPEG. While the load runs, another client enrolls E
new people with the first photo of the first E LFW people, **not pre-filtered** by the quality
gate; refusals are counted and shown, and every accepted one must be in the gallery ("lost").

Printed side by side, measured in one run on the same photos and the same number of threads:
- the service over HTTP (request encoding, upload parsing, auth, JSON included);
- faceprint in-process (``Recognizer.identify`` on the same gallery, no HTTP);
- the anchor, face_recognition in-process (HOG ``face_locations`` + ``face_encodings`` +
  ``face_distance`` to the enrolled encodings), unless ``--no-anchor``.

Every answer is counted by outcome: HTTP 200, 429 (rate limited) and other statuses; the
faces found in the 200 answers are shown as a total (the anchor: its HOG faces). "errors" =
answers that are not 200. One round per path, no best-of-N (``--rounds N`` prints each).

Throughput = requests / wall time; p50/p99 = per-request latency. The machine's CPU may be
shared with other work: compare the rows of one run, not numbers across runs.

Run: ``python benchmarks/bench_service.py [--clients 8] [--requests 25] [--enroll 10] [--json]``.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import DATA, print_table  # noqa: E402

HOST = "127.0.0.1"
SIZE = (640, 480)


def padded_photos(limit: int) -> list[tuple[str, bytes]]:
    """The first ``limit`` real photos of ``people/`` (any face count), padded to 640x480 JPEG."""
    from PIL import Image, ImageOps

    roots = [DATA / "people" / "knn_examples", DATA / "people" / "deepface_pairs", DATA / "people" / "facenet_pytorch"]
    out: list[tuple[str, bytes]] = []
    for path in sorted(p for root in roots for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        with Image.open(path) as img:
            frame = ImageOps.pad(ImageOps.exif_transpose(img).convert("RGB"), SIZE)
        buf = io.BytesIO()
        frame.save(buf, "JPEG", quality=90)
        out.append((path.name, buf.getvalue()))
        if len(out) >= limit:
            break
    return out


def lfw_photos(n: int) -> list[tuple[str, bytes]]:
    """The first photo of each of the first ``n`` LFW people, as they are (no gate applied here)."""
    out: list[tuple[str, bytes]] = []
    for person in sorted(d for d in (DATA / "lfw-view1" / "images").iterdir() if d.is_dir()):
        photo = sorted(person.iterdir())[0]
        out.append((person.name, photo.read_bytes()))
        if len(out) >= n:
            break
    return out


def percentile_ms(latencies: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(latencies) * 1e3, q)) if latencies else float("nan")


def run_load(clients: int, requests: int, call: Callable[[int, int], tuple[int, int]]) -> dict[str, Any]:
    """``clients`` threads each calling ``call(client, i)`` ``requests`` times; each call
    returns ``(HTTP status, faces found)`` (0 = the request failed before an answer)."""
    latencies: list[float] = []
    status: collections.Counter[int] = collections.Counter()
    faces = [0]
    lock = threading.Lock()

    def client(c: int) -> None:
        for i in range(requests):
            t = time.perf_counter()
            try:
                code, n = call(c, i)
            except Exception:  # a failed request is counted, never fatal
                code, n = 0, 0
            dt = time.perf_counter() - t
            with lock:
                latencies.append(dt)
                status[code] += 1
                faces[0] += n

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - start
    return {"requests": clients * requests, "wall_s": round(wall, 3), "throughput": round(clients * requests / wall, 2),
            "p50_ms": round(percentile_ms(latencies, 50), 1), "p99_ms": round(percentile_ms(latencies, 99), 1),
            "ok": status[200], "rate_limited": status[429], "other": sum(v for k, v in status.items() if k not in (200, 429)),
            "errors": sum(v for k, v in status.items() if k != 200), "faces": faces[0]}


class Server:
    """``faceprint serve`` in a subprocess on 127.0.0.1, with an admin key at the default rate limit."""

    def __init__(self, db: Path, port: int) -> None:
        from faceprint.service.keys import KeyStore

        store = KeyStore(db)
        self.key = store.create("admin", name="bench_service")[1]
        store.close()
        self.url = f"http://{HOST}:{port}"
        self.proc = subprocess.Popen([sys.executable, "-c", "from faceprint.cli import main; main()", "serve", "--db", str(db), "--host", HOST,
                                      "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait(self, timeout: float = 120.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:] if self.proc.stderr else ''}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def client(self) -> Any:
        import httpx

        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=60.0)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def enroll_known(http: Any) -> None:
    for person in sorted((DATA / "people" / "knn_examples" / "train").iterdir()):
        http.post("/v1/people", json={"name": person.name}).raise_for_status()
        for photo in sorted(person.iterdir()):
            http.post(f"/v1/people/{person.name}/faces", files={"image": (photo.name, photo.read_bytes())})


def enroll_during_load(server: Server, photos: list[tuple[str, bytes]], done: threading.Event,
                       report: dict[str, Any]) -> None:
    """Enroll one new person per photo, spread over the load (every photo, even if the load ends first)."""
    with server.client() as http:
        for name, data in photos:
            person = f"load_{name}"
            report["during_load"] += 0 if done.is_set() else 1
            r = http.post("/v1/people", json={"name": person})
            if r.status_code == 201:
                r = http.post(f"/v1/people/{person}/faces", files={"image": (f"{name}.jpg", data)})
            if r.status_code == 201:
                report["accepted"].append(person)
            else:
                report["refused"].append(f"{person}: {r.json().get('detail')}")
            done.wait(0.2)


def bench_http(server: Server, photos: list[tuple[str, bytes]], clients: int, requests: int,
               extra: list[tuple[str, bytes]]) -> dict[str, Any]:
    sessions = [server.client() for _ in range(clients)]

    def call(c: int, i: int) -> tuple[int, int]:
        name, data = photos[(c * requests + i) % len(photos)]
        r = sessions[c].post("/v1/identify", files={"image": (name, data, "image/jpeg")})
        return r.status_code, len(r.json()["faces"]) if r.status_code == 200 else 0

    for c in range(clients):  # warm-up: one request per connection
        call(c, 0)
    enrolled: dict[str, Any] = {"accepted": [], "refused": [], "during_load": 0}
    done = threading.Event()
    writer = threading.Thread(target=enroll_during_load, args=(server, extra, done, enrolled))
    writer.start()
    result = run_load(clients, requests, call)
    done.set()
    writer.join()
    with server.client() as http:
        stored = {p["name"]: p["samples"] for p in http.get("/v1/people").json()}
    for s in sessions:
        s.close()
    result["enrolled"] = len(enrolled["accepted"])
    result["enroll_refused"] = enrolled["refused"]
    result["enroll_started_during_load"] = enrolled["during_load"]
    result["lost"] = sum(1 for p in enrolled["accepted"] if stored.get(p, 0) < 1)
    return result


def inprocess_runner(db: Path, photos: list[tuple[str, bytes]], clients: int,
                     requests: int) -> Callable[[], dict[str, Any]]:
    """A load run of ``Recognizer.identify`` on the server's gallery, the way the server calls it:
    a FIFO pool of one worker per core, one ONNX thread each."""
    from faceprint.gallery import Recognizer, open_gallery
    from faceprint.service import ServiceSettings
    from faceprint.service.app import build_pipeline

    rec = Recognizer(build_pipeline(ServiceSettings(db=db)), open_gallery(db))

    def run() -> dict[str, Any]:
        with ThreadPoolExecutor(os.cpu_count() or 1) as workers:

            def call(c: int, i: int) -> tuple[int, int]:
                data = photos[(c * requests + i) % len(photos)][1]
                return 200, len(workers.submit(rec.identify, data).result())

            call(0, 0)
            return run_load(clients, requests, call)

    return run


def bench_anchor(photos: list[tuple[str, bytes]], clients: int, requests: int) -> dict[str, Any]:
    import face_recognition

    known = []
    for person in sorted((DATA / "people" / "knn_examples" / "train").iterdir()):
        for photo in sorted(person.iterdir()):
            known += face_recognition.face_encodings(face_recognition.load_image_file(str(photo)))[:1]
    known_arr = np.asarray(known)

    def call(c: int, i: int) -> tuple[int, int]:
        rgb = face_recognition.load_image_file(io.BytesIO(photos[(c * requests + i) % len(photos)][1]))
        encodings = face_recognition.face_encodings(rgb, face_recognition.face_locations(rgb))
        for enc in encodings:
            face_recognition.face_distance(known_arr, enc)
        return 200, len(encodings)

    call(0, 0)
    return run_load(clients, requests, call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (threads)")
    parser.add_argument("--requests", type=int, default=25, help="identify requests per client")
    parser.add_argument("--enroll", type=int, default=10, help="people enrolled over HTTP during the load")
    parser.add_argument("--photos", type=int, default=24, help="distinct photos to cycle through (the first N)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating HTTP / in-process rounds (each shown)")
    parser.add_argument("--no-anchor", action="store_true", help="skip the face_recognition row")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"shared data not found at {DATA}")
    photos = padded_photos(args.photos)
    extra = lfw_photos(args.enroll)
    rounds: dict[str, list[dict[str, Any]]] = {"http": [], "inprocess": [], "anchor": []}
    with tempfile.TemporaryDirectory(prefix="bench_service_") as tmp:
        db = Path(tmp) / "bench.db"
        server = Server(db, free_port())
        try:
            server.wait()
            with server.client() as http:
                enroll_known(http)
            local = inprocess_runner(db, photos, args.clients, args.requests)
            # alternate the paths so that a burst of outside load hits both; every round is shown
            for r in range(args.rounds):
                rounds["http"].append(bench_http(server, photos, args.clients, args.requests, extra if r == 0 else []))
                rounds["inprocess"].append(local())
        finally:
            server.stop()
    if not args.no_anchor:
        rounds["anchor"].append(bench_anchor(photos, args.clients, args.requests))
    h = rounds["http"][0]
    results: dict[str, Any] = {**{k: v[0] for k, v in rounds.items() if v}, "rounds": rounds, "config": {
        "clients": args.clients, "requests_per_client": args.requests, "photos": len(photos), "rounds": args.rounds,
        "image": f"{SIZE[0]}x{SIZE[1]} JPEG, unfiltered", "cpus": os.cpu_count(), "key": "default rate limit"}}
    if args.json:
        print(json.dumps(results))
        return
    names = {"http": "faceprint serve, HTTP /v1/identify, default-limit key",
             "anchor": "face_recognition (HOG + dlib), in-process (anchor)",
             "inprocess": "extra: faceprint Recognizer.identify, in-process"}
    rows = []
    for key in ("http", "anchor", "inprocess"):
        for r, run in enumerate(rounds[key]):
            label = names[key] + (f", round {r + 1}" if len(rounds[key]) > 1 else "")
            label += f" ({args.enroll} people enrolled meanwhile)" if key == "http" and r == 0 else ""
            rows.append((label, str(run["requests"]), f"{run['throughput']:.1f}", f"{run['p50_ms']:.0f}",
                         f"{run['p99_ms']:.0f}", str(run["ok"]), str(run["rate_limited"]), str(run["other"]),
                         str(run["faces"])))
    print(f"{args.clients} clients x {args.requests} identify requests, {len(photos)} distinct 640x480 photos "
          f"(unfiltered), {os.cpu_count()} CPUs, one key at the default rate limit (shared machine: compare rows, not runs)")
    print_table(("path", "requests", "req/s", "p50 ms", "p99 ms", "200", "429", "other", "faces"), rows, args.markdown)
    if rounds["anchor"]:
        print(f"HTTP / face_recognition throughput: {h['throughput'] / rounds['anchor'][0]['throughput']:.2f}")
    print(f"HTTP / in-process throughput: {h['throughput'] / rounds['inprocess'][0]['throughput']:.2f}")
    print(f"enrolled over HTTP: {h['enrolled']} of {args.enroll} ({h['enroll_started_during_load']} started during the "
          f"load, {len(h['enroll_refused'])} refused), lost: {h['lost']}")
    for line in h["enroll_refused"]:
        print(f"  refused {line}")
    target = h["throughput"] >= 20 and h["p99_ms"] < 500 and h["errors"] == 0 and h["lost"] == 0
    print(f"target (>= 20 req/s, p99 < 500 ms at 8 clients, every answer 200, nothing lost): "
          f"{'met' if target else 'NOT met'}")


if __name__ == "__main__":
    main()
