"""Open-set identification on the user's path (``bench_gallery.py openset``), its tuning and the gate.

Protocol (:func:`faceprint.evaluation.openset.openset_parts`): LFW View 1 split afresh by a
salted hash of the name into a tuning part (0) and a report part (1). In each part, people with
2+ photos are enrolled with their first photo and queried with the rest; single-photo people are
either enrolled distractors (never queried) or strangers.

- ``report`` (the default): part 1 only, once. People are enrolled one photo each through
  ``Recognizer.enroll`` with every default (the quality gate, jittered views, duplicate checks)
  into a SQLite gallery file, queried people first (in a seeded random order), then the
  distractors; at each gallery size (10, 30, 100, 300, 1,000 and all) every query photo of an
  enrolled person and every stranger photo goes through ``Recognizer.identify_faces`` on the
  pipeline's faces of that photo (``Recognizer.identify`` is ``pipeline.embed`` + this; each
  photo is embedded once and reused across sizes). The face scored is the one nearest the photo's
  centre (the labelled person in LFW). DIR counts correct names over all queries of enrolled
  people (a query without a face is a miss), wrong names over the same, FAR strangers given any
  name. face_recognition (HOG + dlib, nearest enrolled face within 0.6) runs side by side with
  ``--anchor``.
- ``--tune``: part 0 only. Fits the model-level Gaussian the phantoms are drawn from (written
  with ``--write-stats``), then for each gallery size and 8 random gallery compositions
  measures the scores, and prints the threshold table chosen by the stated rule: per size the
  largest threshold (0.0025 steps) whose mean FAR is <= 1.5% and whose FAR is <= 2% in 90% of
  the compositions (16 of them below 1,000 people), made non-increasing with size. (The first
  rule, mean FAR <= 1.5% over 8 compositions, gave 2.3-2.9% on the report part's 10-100 people:
  one small gallery's FAR depends on which faces it holds.)
- ``--gate``: part 0 only. Every enrollment photo enrolled permissively (largest face); for each
  gate rule the DIR, rank-1 and strangers attracted of the photos it refuses vs those it accepts.
"""

from __future__ import annotations

import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SIZES = (10, 30, 100, 300, 1000)
MODEL = "dlib_resnet_v1"


def photo_records(paths: list[Path], cache: Path | None) -> list[dict[str, Any]]:
    """Per photo, what the default pipeline sees: face boxes, scores, the image shape, each face's
    plain vector (queries), its enrollment vector (``Recognizer``'s jittered views) and chip
    sharpness. Pickled to ``cache``. For ``--tune`` and ``--gate`` only: the report re-runs the path."""
    if cache is not None and cache.is_file():
        return pickle.loads(cache.read_bytes())
    from faceprint import FacePipeline
    from faceprint.gallery.quality import blur_score
    from faceprint.gallery.recognizer import enrollment_embedder
    from faceprint.image import load_image
    from faceprint.progress import progress_bar

    pipe = FacePipeline()
    enroll = enrollment_embedder(pipe.embedder)
    out = []
    with progress_bar(len(paths), "embed") as bar:
        task = bar.add_task("embed", total=len(paths))
        for p in paths:
            rgb = load_image(p)
            faces = pipe.detect(rgb)
            rec: dict[str, Any] = {"faces": faces, "shape": rgb.shape}
            if len(faces):
                al = pipe.aligner.align(rgb, faces)
                rec.update(plain=pipe.embedder.embed(al).vectors, enroll=enroll.embed(al).vectors,
                           blur=np.array([blur_score(c) for c in al.chips]))
            out.append(rec)
            bar.advance(task)
    if cache is not None:
        cache.write_bytes(pickle.dumps(out))
    return out


def centre_index(faces: Any, shape: tuple[int, ...]) -> int | None:
    from faceprint.gallery.quality import nearest_centre

    return nearest_centre(faces, shape) if len(faces) else None


def gate_choice(rec: dict[str, Any], gate: Any) -> tuple[int | None, str | None]:
    """The face ``gate`` would enroll from a cached photo record, or why it refuses."""
    idx, reason = gate.subject(rec["faces"], rec["shape"])
    if idx is None:
        return None, reason
    reason = gate.check(rec["faces"], None, idx)  # the cached blur is the chip's blur_score
    if reason is None and gate.min_blur > 0 and rec["blur"][idx] < gate.min_blur:
        reason = "too blurry"
    return (idx, None) if reason is None else (None, reason)


def _rates(res: list[Any], truth: list[str | None]) -> tuple[float, float, float]:
    """(named correctly, named wrongly, rank-1) fractions; ``None`` results are misses."""
    right = sum(r is not None and r.name == t for r, t in zip(res, truth))
    wrong = sum(r is not None and r.name is not None and r.name != t for r, t in zip(res, truth))
    rank1 = sum(r is not None and bool(r.candidates) and r.candidates[0].name == t for r, t in zip(res, truth))
    n = max(len(truth), 1)
    return right / n, wrong / n, rank1 / n


# ---- the gate --------------------------------------------------------------------------------------
def gate_report(paths: list[Path], names: list[str], records: list[dict[str, Any]], print_table: Any,
                markdown: bool) -> None:
    from faceprint import Embeddings
    from faceprint.evaluation.openset import openset_parts
    from faceprint.gallery import QualityGate, open_gallery

    part = openset_parts(names, 0)
    old = QualityGate(min_blur=20.0)
    rules = {
        "several faces, no clear subject": lambda r: QualityGate().subject(r["faces"], r["shape"])[0] is None,
        "several faces (old rule)": lambda r: len(r["faces"]) > 1,
        "sharpness < 20 (old rule)": lambda r: r["blur"][0] < old.min_blur,
        f"sharpness < {QualityGate().min_blur:g}": lambda r: r["blur"][0] < QualityGate().min_blur,
        "detection score < 0.9": lambda r: r["faces"].score[0] < 0.9,
        "face < 40 px": lambda r: float((r["faces"].xyxy[0, 2:] - r["faces"].xyxy[0, :2]).min()) < 40,
    }
    people = [(n, i) for n, i in zip(part.enroll_names, part.enroll) if len(records[i]["faces"])]
    g = open_gallery(":memory:")
    for n, i in people:
        g.add_faces(n, Embeddings(records[i]["enroll"][0], MODEL))

    def ident(idx: np.ndarray) -> list[Any]:
        rows = [(k, records[i]) for k, i in enumerate(idx) if len(records[i]["faces"])]
        vec = np.stack([r["plain"][centre_index(r["faces"], r["shape"])] for _k, r in rows])
        res: list[Any] = [None] * len(idx)
        for (k, _r), out in zip(rows, g.identify(Embeddings(vec, MODEL), top_k=2)):
            res[k] = out
        return res

    q, s = ident(part.queries), ident(part.strangers)
    rows = []
    for label, rule in rules.items():
        for refused in (True, False):
            who = {n for n, i in people if bool(rule(records[i])) == refused}
            sel = [k for k, n in enumerate(part.query_names) if n in who]
            right, _w, rank1 = _rates([q[k] for k in sel], [part.query_names[k] for k in sel])
            attracted = sum(r is not None and r.name in who for r in s)
            rows.append((label, "refused" if refused else "accepted", str(len(who)), str(len(sel)),
                         f"{right:.3f}" if sel else "-", f"{rank1:.3f}" if sel else "-",
                         f"{attracted / max(len(who), 1):.3f}"))
    print_table(("rule", "photos", "people", "queries", "DIR", "rank-1", "strangers named as them / person"),
                rows, markdown)
    refused = sum(gate_choice(records[i], QualityGate())[0] is None for i in part.enroll)
    print(f"tuning part: the default gate refuses {refused} of {len(part.enroll)} one-shot photos "
          f"({refused / len(part.enroll):.1%})")


# ---- tuning ----------------------------------------------------------------------------------------
def tune(paths: list[Path], names: list[str], records: list[dict[str, Any]], print_table: Any,
         markdown: bool, write_stats: Path | None, seeds: int = 16, far_mean: float = 0.015,
         far_p90: float = 0.02) -> None:
    from faceprint import Embeddings
    from faceprint.evaluation.openset import fit_identity_gaussian, openset_parts
    from faceprint.gallery import OpenSetPolicy, QualityGate, open_gallery
    from faceprint.gallery.scoring import phantom_faces

    part = openset_parts(names, 0)
    in_part = set(part.enroll) | set(part.queries) | set(part.strangers) | set(part.distractors)
    idx = [i for i in sorted(in_part) if len(records[i]["faces"])]
    if write_stats is not None:
        vec = np.stack([records[i]["plain"][centre_index(records[i]["faces"], records[i]["shape"])] for i in idx])
        fit = fit_identity_gaussian(vec, [names[i] for i in idx])
        np.savez(write_stats, **{k: v.astype(np.float32) for k, v in fit.items()})
        phantom_faces.cache_clear()
        print(f"wrote {write_stats} (fitted on {len(idx)} tuning-part photos)")
    gate = QualityGate()
    people = []
    for n, i in list(zip(part.enroll_names, part.enroll)) + [(names[i], i) for i in part.distractors]:
        face, _why = gate_choice(records[i], gate)
        if face is not None:
            people.append((n, records[i]["enroll"][face]))

    def query_rows(ids: np.ndarray) -> list[tuple[int, np.ndarray]]:
        return [(k, records[i]["plain"][centre_index(records[i]["faces"], records[i]["shape"])])
                for k, i in enumerate(ids) if len(records[i]["faces"])]

    qrows, srows = query_rows(part.queries), query_rows(part.strangers)
    grid = np.round(np.arange(0.70, 1.10001, 0.0025), 4)
    rows, table = [], []
    for size in list(SIZES) + [len(people)]:
        size = min(size, len(people))
        dirs, wrong = np.zeros(len(grid)), np.zeros(len(grid))
        runs = 1 if size >= len(people) else seeds if size < 1000 else 8
        fars = np.zeros((runs, len(grid)))
        for seed in range(runs):
            sel = np.random.default_rng(seed).permutation(len(people))[:size]
            g = open_gallery(":memory:", policy=OpenSetPolicy())
            for j in sel:
                g.add_faces(people[j][0], Embeddings(people[j][1], MODEL))
            who = {people[j][0] for j in sel}
            kq = [(k, v) for k, v in qrows if part.query_names[k] in who]
            nq = sum(n in who for n in part.query_names)
            if kq:
                res = g.identify(Embeddings(np.stack([v for _k, v in kq]), MODEL), top_k=1)
                sc = np.array([r.score for r in res])
                ok = np.array([r.candidates[0].name == part.query_names[k] for r, (k, _v) in zip(res, kq)])
                dirs += ((sc[None] <= grid[:, None]) & ok).sum(1) / max(nq, 1) / runs
                wrong += ((sc[None] <= grid[:, None]) & ~ok).sum(1) / max(nq, 1) / runs
            ss = np.array([r.score for r in g.identify(Embeddings(np.stack([v for _k, v in srows]), MODEL), top_k=1)])
            fars[seed] = (ss[None] <= grid[:, None]).sum(1) / len(part.strangers)
            g.close()
        far = fars.mean(0)
        ok_t = np.flatnonzero((far <= far_mean) & (np.quantile(fars, 0.9, axis=0) <= far_p90))
        j = int(ok_t.max()) if len(ok_t) else 0
        if table:
            j = min(j, int(np.searchsorted(grid, table[-1][1])))  # non-increasing with size
        table.append((size, float(grid[j])))
        rows.append((f"{size:,}", str(runs), f"{grid[j]:.4f}", f"{dirs[j]:.3f}", f"{far[j]:.4f}",
                     f"{np.quantile(fars[:, j], 0.9):.4f}", f"{fars[:, j].max():.4f}", f"{wrong[j]:.4f}"))
    print_table(("people", "compositions", "chosen threshold", "mean DIR", "mean FAR", "FAR p90", "FAR max",
                 "mean wrong names"),
                rows, markdown)
    print("ratio_thresholds =", [[n, t] for n, t in table])
    print(f"phantoms drawn: {OpenSetPolicy().phantoms or 'spec default'}; "
          f"{len(phantom_faces(MODEL, 2000))} available from the shipped statistics")


# ---- the report ------------------------------------------------------------------------------------
def report(paths: list[Path], names: list[str], print_table: Any, markdown: bool, plot: Path | None,
           anchor: bool, anchor_cache: Path | None) -> None:
    from faceprint import FacePipeline
    from faceprint.evaluation.openset import openset_parts, plot_dir_far
    from faceprint.gallery import Recognizer, open_gallery
    from faceprint.image import load_image
    from faceprint.progress import progress_bar

    part = openset_parts(names, 1)
    rng = np.random.default_rng(0)
    order = [(part.enroll_names[k], part.enroll[k]) for k in rng.permutation(len(part.enroll))]
    order += [(names[i], i) for i in rng.permutation(part.distractors)]
    print(f"report part: {len(part.enroll)} people with 2+ photos ({len(part.queries)} queries), "
          f"{len(part.distractors)} distractors, {len(part.strangers)} strangers")
    pipe = FacePipeline()
    t0 = time.perf_counter()
    probe_ids = np.concatenate([part.queries, part.strangers])
    found: dict[int, tuple[Any, tuple[int, ...]]] = {}  # image index -> (its faces and embeddings, its shape)
    with progress_bar(len(probe_ids), "embed queries") as bar:
        task = bar.add_task("embed queries", total=len(probe_ids))
        for i in probe_ids:
            rgb = load_image(paths[i])
            found[int(i)] = (pipe.embed(rgb), rgb.shape)
            bar.advance(task)
    print(f"queries and strangers embedded in {time.perf_counter() - t0:.0f} s")
    with tempfile.TemporaryDirectory() as tmp:
        gallery = open_gallery(Path(tmp) / "people.db", model_id=pipe.spec.model_id, metric=pipe.spec.metric)
        rec = Recognizer(pipe, gallery)
        rows, curves = [], {}
        refused: dict[str, int] = {}
        attempted = 0
        checkpoints = [s for s in SIZES if s < len(order)] + [len(order)]
        enrolled_queried: set[str] = set()
        queried = set(part.enroll_names)
        t1 = time.perf_counter()
        for name, i in order:
            report_ = rec.enroll(name, [paths[i]])
            attempted += 1
            if report_.ok:
                if name in queried:
                    enrolled_queried.add(name)
            else:
                why = report_.rejected[0][1].split(" (")[0] if report_.rejected else "?"
                refused[why] = refused.get(why, 0) + 1
            if not checkpoints or attempted != checkpoints[0]:
                continue
            checkpoints.pop(0)
            row, curve = _evaluate(rec, found, part, enrolled_queried, attempted, len(gallery))
            rows.append(row)
            curves[f"{len(gallery):,} people"] = curve
        enroll_s = time.perf_counter() - t1
        gallery.close()
    print_table(("people tried", "enrolled", "refused", "queries", "DIR (named right)", "FAR (strangers named)",
                 "wrong names", "rank-1", "oracle DIR @ FAR<=2%", "threshold"), rows, markdown)
    print(f"gate: refused {sum(refused.values())} of {len(order)} one-shot photos "
          f"({sum(refused.values()) / len(order):.1%}): {refused}; enrollment {len(order) / enroll_s:.1f} people/s")
    if anchor:
        anchor_rows = _anchor(paths, names, part, order, anchor_cache)
        print_table(("people tried", "enrolled", "DIR (named right)", "FAR (strangers named)", "wrong names",
                     "rank-1"), anchor_rows, markdown)
    if plot is not None:
        plot_dir_far({k: (f, d) for k, (f, d, _p) in curves.items()}, plot,
                     "LFW View 1 report part, through Recognizer (defaults): DIR vs FAR by gallery size",
                     {f"{k} @ default": p for k, (_f, _d, p) in curves.items()})
        print(f"wrote {plot}")


def _evaluate(rec: Any, found: dict[int, tuple[Any, tuple[int, ...]]], part: Any, enrolled: set[str], tried: int,
              people: int) -> tuple[tuple[Any, ...], tuple[np.ndarray, np.ndarray, tuple[float, float]]]:
    """One gallery size: identify every query of an enrolled person and every stranger."""
    from faceprint.evaluation.openset import dir_at_far, dir_far_curve

    def run(ids: list[int]) -> list[Any]:
        out = []
        for i in ids:
            f, shape = found[i]
            if not len(f):
                out.append(None)
                continue
            res = rec.identify_faces(f.faces, f.embeddings, top_k=2)
            out.append(res[centre_index(f.faces, shape)])
        return out

    qk = [(int(i), n) for i, n in zip(part.queries, part.query_names) if n in enrolled]
    q = run([i for i, _n in qk])
    s = run([int(i) for i in part.strangers])
    truth = [n for _i, n in qk]
    right, wrong, rank1 = _rates(q, truth)
    far = sum(r is not None and r.name is not None for r in s) / max(len(s), 1)
    ks = np.array([r.score if r is not None else np.inf for r in q])
    ok = np.array([r is not None and bool(r.candidates) and r.candidates[0].name == t for r, t in zip(q, truth)])
    ss = np.array([r.score if r is not None else np.inf for r in s])
    thr = next((r.threshold for r in q + s if r is not None), float("nan"))
    _t, d, f = dir_far_curve(ks, ok, ss)
    row = (f"{tried:,}", f"{people:,}", f"{tried - people:,}", f"{len(qk)}", f"{right:.3f}", f"{far:.3f}",
           f"{wrong:.4f}", f"{rank1:.3f}", f"{dir_at_far(ks, ok, ss, 0.02):.3f}", f"{thr:.4f}")
    return row, (f, d, (far, right))


def _anchor(paths: list[Path], names: list[str], part: Any, order: list[tuple[str, int]],
            cache: Path | None) -> list[tuple[Any, ...]]:
    """face_recognition as its users run it: HOG + dlib, the first face of each enrollment photo,
    every face of a query compared with the known encodings (``compare_faces``, tolerance 0.6),
    the best match taken; scored on the face nearest the centre."""
    if cache is not None and cache.is_file():
        data = pickle.loads(cache.read_bytes())
    else:
        import face_recognition

        data = {}
        ids = [i for _n, i in order] + [int(i) for i in part.queries] + [int(i) for i in part.strangers]
        for i in ids:
            img = face_recognition.load_image_file(str(paths[i]))
            locs = face_recognition.face_locations(img)
            data[int(i)] = (locs, face_recognition.face_encodings(img, locs), img.shape[:2])
        if cache is not None:
            cache.write_bytes(pickle.dumps(data))
    rows = []
    known_vecs: list[np.ndarray] = []
    known_names: list[str] = []
    tried = 0
    checkpoints = [s for s in SIZES if s < len(order)] + [len(order)]
    for name, i in order:
        tried += 1
        locs, encs, _shape = data[int(i)]
        if encs:
            known_vecs.append(encs[0])
            known_names.append(name)
        if tried != checkpoints[0]:
            continue
        checkpoints.pop(0)
        base = np.stack(known_vecs)
        enrolled = set(known_names)

        def best(i: int) -> tuple[str | None, str | None]:
            locs, encs, (h, w) = data[i]
            if not encs:
                return None, None
            c = min(range(len(locs)), key=lambda j: ((locs[j][1] + locs[j][3]) / 2 - w / 2) ** 2 +
                    ((locs[j][0] + locs[j][2]) / 2 - h / 2) ** 2)
            d = np.linalg.norm(base - encs[c], axis=1)
            top = known_names[int(np.argmin(d))]
            return (top if d.min() <= 0.6 else None), top

        qk = [(int(q), n) for q, n in zip(part.queries, part.query_names) if n in enrolled]
        res = [best(q) for q, _n in qk]
        right = sum(r[0] == n for r, (_q, n) in zip(res, qk)) / max(len(qk), 1)
        wrong = sum(r[0] is not None and r[0] != n for r, (_q, n) in zip(res, qk)) / max(len(qk), 1)
        rank1 = sum(r[1] == n for r, (_q, n) in zip(res, qk)) / max(len(qk), 1)
        far = sum(best(int(s))[0] is not None for s in part.strangers) / max(len(part.strangers), 1)
        rows.append((f"{tried:,}", f"{len(enrolled):,}", f"{right:.3f}", f"{far:.3f}", f"{wrong:.4f}", f"{rank1:.3f}"))
    return rows
