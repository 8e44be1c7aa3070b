"""The open-set protocol and DIR/FAR metrics against plain loops."""

from __future__ import annotations

import numpy as np

from faceprint.evaluation.openset import dir_at_far, dir_far_curve, openset_split, person_half


def test_openset_split_protocol() -> None:
    names = ["a", "a", "a", "b", "c", "c", "d"]
    sp = openset_split(names)
    assert list(sp.enroll) == [0, 4] and sp.enroll_names == ["a", "c"]
    assert list(sp.queries) == [1, 2, 5] and sp.query_names == ["a", "a", "c"]
    assert list(sp.strangers) == [3, 6]
    halves = {n: person_half(n) for n in "abcd"}
    half0 = openset_split(names, half=0)
    assert all(halves[names[i]] == 0 for i in np.concatenate([half0.enroll, half0.queries, half0.strangers]))


def test_dir_far_curve_matches_a_loop() -> None:
    rng = np.random.default_rng(0)
    ks, ok, ss = rng.random(50), rng.random(50) > 0.2, rng.random(40) + 0.3
    t, d, f = dir_far_curve(ks, ok, ss)
    for thr, dv, fv in zip(t[::7], d[::7], f[::7]):
        assert dv == np.mean((ks <= thr) & ok) and fv == np.mean(ss <= thr)
    ref = max(np.mean((ks <= x) & ok) for x in np.concatenate([ks, ss]) if np.mean(ss <= x) <= 0.1)
    assert dir_at_far(ks, ok, ss, 0.1) == ref
