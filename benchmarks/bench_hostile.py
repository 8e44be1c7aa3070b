"""Hostile clients against ``faceprint serve`` with its defaults, on loopback (issue 17).

Starts the server as users do (a fresh process, a temporary database, one API key), then,
one attack at a time, records the status and the server's resident memory above idle
(sampled every 2 ms from outside the process, ``psutil``), above the idle server and above
its RSS just before that request (the allocator keeps freed memory, so later rows start higher):

- images at the default limit (a 5000x4000 PNG, a 5000x4000 JPEG of a real photo) and past
  it (an 8000x6000 JPEG photo, decoded at half size; a zero-filled 6300x6300 PNG of 115 KB;
  a 10000x10000 PNG), a JPEG whose header claims 4400x4400 over 3 KB of data, an EPS file;
- N connections that never finish their headers: seconds until the server closed the last;
- J junk-method requests without a key: metric series and exposition size afterwards.

Run: ``python benchmarks/bench_hostile.py [--slow 200] [--junk 3000] [--json]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import DATA, print_table  # noqa: E402

CLI = [sys.executable, "-c", "from faceprint.cli import main; main()"]


def _encode(img: Any, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def payloads() -> list[tuple[str, bytes]]:
    from PIL import Image

    photo = Image.open(DATA / "people" / "obama.jpg").convert("RGB").resize((5000, 4000))
    small = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "JPEG")
    sof = small.find(b"\xff\xc0")
    liar = small[:sof + 5] + (4400).to_bytes(2, "big") + (4400).to_bytes(2, "big") + small[sof + 9:]
    return [("PNG 5000x4000 (limit)", _encode(Image.new("RGB", (5000, 4000), (90, 90, 90)), "PNG")),
            ("JPEG 5000x4000 photo (limit)", _encode(photo, "JPEG", quality=90)),
            ("JPEG 8000x6000 photo (decoded at 1/2)", _encode(photo.resize((8000, 6000)), "JPEG", quality=90)),
            ("PNG 6300x6300 zeros", _encode(Image.new("RGB", (6300, 6300)), "PNG")),
            ("PNG 10000x10000 zeros", _encode(Image.new("L", (10000, 10000)), "PNG")),
            ("JPEG header 4400x4400, 3 KB data", liar),
            ("EPS", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")]


class Peak:
    """Highest RSS of ``pid`` while the block runs."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.peak = 0

    def __enter__(self) -> Peak:
        self._stop = threading.Event()
        self.peak = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.05)
        self._stop.set()
        self._thread.join()


def slow_clients(host: str, port: int, n: int, limit_s: float = 45.0) -> str:
    """Open ``n`` connections that never finish their headers; when the server closed the last."""
    socks = [socket.create_connection((host, port), timeout=limit_s) for _ in range(n)]
    start = time.monotonic()
    for s in socks:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    still_open = 0
    for s in socks:
        s.settimeout(max(0.01, limit_s - (time.monotonic() - start)))
        try:
            while s.recv(4096):
                pass
        except socket.timeout:
            still_open += 1
        except ConnectionResetError:
            pass
        s.close()
    if still_open:
        return f"{still_open} still open after {limit_s:.0f} s"
    return f"last closed after {time.monotonic() - start:.1f} s"


def main() -> None:
    import httpx

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slow", type=int, default=200)
    ap.add_argument("--junk", type=int, default=3000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    db = tmp / "g.db"
    key = subprocess.run([*CLI, "keys", "create", "--db", str(db), "--scope", "read", "--rate-limit", "0"],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    port = 18000 + os.getpid() % 1000
    server = subprocess.Popen([*CLI, "serve", "--db", str(db), "--port", str(port)], stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        headers = {"Authorization": f"Bearer {key}"}
        client = httpx.Client(timeout=120)
        client.post(f"{url}/v1/detect", headers=headers, files={"image": ("w.jpg", (DATA / "people" / "obama.jpg").read_bytes())})
        time.sleep(1.0)
        import psutil

        idle = psutil.Process(server.pid).memory_info().rss
        rows = []
        for label, data in payloads():
            before = psutil.Process(server.pid).memory_info().rss
            with Peak(server.pid) as peak:
                r = client.post(f"{url}/v1/detect", headers=headers, files={"image": ("x", data)})
            rows.append({"attack": label, "bytes": len(data), "status": r.status_code,
                         "peak_mb_above_idle": round((peak.peak - idle) / 2**20, 1),
                         "peak_mb_above_before": round((peak.peak - before) / 2**20, 1),
                         "detail": (r.json().get("detail", "") if r.status_code >= 400 else "")[:70]})
        closed = slow_clients("127.0.0.1", port, args.slow)
        rows.append({"attack": f"{args.slow} connections, unfinished headers", "bytes": 0, "status": "closed",
                     "peak_mb_above_idle": "", "peak_mb_above_before": "", "detail": closed})
        for i in range(args.junk):
            client.request(f"JUNK{i}", f"{url}/v1/detect")
        text = client.get(f"{url}/metrics", headers=headers).text
        series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        rows.append({"attack": f"{args.junk} junk methods without a key", "bytes": 0, "status": "",
                     "peak_mb_above_idle": "", "peak_mb_above_before": "", "detail": f"{series} series, {len(text) / 1024:.0f} KB exposition"})
    finally:
        server.terminate()
        server.wait(timeout=30)
    if args.json:
        print(json.dumps({"idle_mb": round(idle / 2**20, 1), "rows": rows}))
        return
    print(f"server idle RSS {idle / 2**20:.0f} MB (defaults: --max-pixels 20000000, --max-decode-mb 256)")
    keys = ("attack", "bytes", "status", "peak_mb_above_idle", "peak_mb_above_before", "detail")
    print_table(keys, [tuple(str(r[k]) for k in keys) for r in rows], markdown=True)


if __name__ == "__main__":
    main()
