"""The load script's sanity on a tiny run: it starts a server, loads it, enrolls during the load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import shared

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_service.py"


def test_bench_service_tiny_run() -> None:
    shared("lfw-view1", "images")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SCRIPT.parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, str(SCRIPT), "--clients", "2", "--requests", "2", "--enroll", "2",
                          "--photos", "3", "--no-anchor", "--json"], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    http, local = result["http"], result["inprocess"]
    assert http["requests"] == 4 and http["errors"] == 0 and local["errors"] == 0
    assert http["ok"] + http["rate_limited"] + http["other"] == 4 and http["faces"] >= 0
    # enrollment photos are not pre-filtered: the gate may refuse some, each one is reported
    assert http["enrolled"] + len(http["enroll_refused"]) == 2 and http["lost"] == 0
    assert 0 < http["p50_ms"] <= http["p99_ms"] and http["throughput"] > 0
    assert result["config"]["photos"] == 3


@pytest.mark.parametrize("values,q,expected", [([0.1, 0.2, 0.3], 50, 200.0), ([], 50, None)])
def test_percentile_ms(values, q, expected) -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    from bench_service import percentile_ms

    got = percentile_ms(values, q)
    assert (got != got) if expected is None else got == pytest.approx(expected)
