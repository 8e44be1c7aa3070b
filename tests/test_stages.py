"""The threaded stages: read-ahead in order, errors in turn, the fan-out of independent calls, and
pipelined (and fanned-out) results equal to sequential ones."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from faceprint import FacePipeline, ImageDecodeError
from faceprint.embedders.dlib_resnet import DlibResnetEmbedder
from faceprint.stages import Fanout, opencv_one_thread, prefetch

from .conftest import shared


def test_prefetch_keeps_order_and_runs_on_another_thread() -> None:
    seen = []

    def slow_square(x: int) -> int:
        seen.append(threading.current_thread().name)
        time.sleep(0.001 * (x % 3))
        return x * x

    assert list(prefetch(range(50), slow_square, depth=3)) == [x * x for x in range(50)]
    assert set(seen) == {"faceprint-prefetch"}
    assert list(prefetch([], slow_square)) == []


def test_prefetch_raises_in_turn_and_reads_at_most_depth_ahead() -> None:
    started = []

    def fn(x: int) -> int:
        started.append(x)
        if x == 5:
            raise ValueError("bad item 5")
        return x

    out = []
    with pytest.raises(ValueError, match="bad item 5"):
        for x in prefetch(range(100), fn, depth=2):
            out.append(x)
    assert out == [0, 1, 2, 3, 4]
    assert max(started) <= 5  # the worker stopped at the failing item


def test_prefetch_stops_when_the_caller_stops() -> None:
    started = []
    gen = prefetch(range(1000), lambda x: started.append(x) or x, depth=2)
    assert next(gen) == 0
    gen.close()
    assert len(started) <= 4
    assert not [t for t in threading.enumerate() if t.name == "faceprint-prefetch"]
    with pytest.raises(ValueError):
        list(prefetch([1], lambda x: x, depth=0))


def test_generator_errors_reach_the_caller() -> None:
    def items():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(prefetch(items(), lambda x: x))


def test_fanout_keeps_order_and_the_caller_shares_the_work() -> None:
    seen = []

    def slow(x: int) -> int:
        seen.append(threading.current_thread().name)
        time.sleep(0.01)
        return 10 * x

    fan = Fanout(2)
    assert fan.map(slow, list(range(6))) == [10 * x for x in range(6)]
    assert threading.current_thread().name in seen and any(n.startswith("faceprint-fanout") for n in seen)
    assert fan.map(slow, []) == [] and fan.map(slow, [4]) == [40]
    seen.clear()
    assert Fanout(1).map(slow, [1, 2, 3]) == [10, 20, 30]
    assert set(seen) == {threading.current_thread().name}  # one worker: everything on the caller
    assert Fanout().workers >= 1
    import copy
    import pickle

    for twin in (pickle.loads(pickle.dumps(fan)), copy.deepcopy(fan)):  # e.g. an embedder sent to a process
        assert twin.workers == 2 and twin.map(slow, [1, 2]) == [10, 20]
    with pytest.raises(ValueError, match="workers must be >= 0"):
        Fanout(-1)


def test_fanout_caller_runs_the_parts_no_helper_has_started() -> None:
    fan = Fanout(2)
    release, busy = threading.Event(), threading.Event()

    def hold(x: int) -> int:
        if x == 0:
            return 0
        busy.set()
        release.wait(10)
        return x

    other = threading.Thread(target=lambda: fan.map(hold, [0, 1]))  # occupies the only helper
    other.start()
    assert busy.wait(10)
    start = time.monotonic()
    assert fan.map(lambda x: x * x, [1, 2, 3, 4]) == [1, 4, 9, 16]  # not queued behind the held part
    assert time.monotonic() - start < 5
    release.set()
    other.join(10)


def test_fanout_raises_the_first_error_after_every_started_part_finished() -> None:
    done = []

    def part(x: int) -> int:
        if x == 1:
            raise KeyError("part 1")
        time.sleep(0.05)
        done.append(x)
        return x

    with pytest.raises(KeyError, match="part 1"):
        Fanout(2).map(part, [0, 1, 2])
    assert sorted(done) == [0, 2]


@pytest.fixture(scope="module")
def pipe() -> FacePipeline:
    return FacePipeline()


def _photos() -> list:
    people = shared("people")
    group = shared("group")
    return ([people / "obama.jpg", people / "biden.jpg", people / "two_people.jpg"]
            + sorted((people / "knn_examples" / "train").glob("*/*.jpg"))[:6]
            + sorted(p for p in group.iterdir() if p.suffix.lower() in {".jpg", ".png"})[:3])


def test_opencv_runs_on_one_thread_inside_the_block_and_gets_its_setting_back(pipe: FacePipeline) -> None:
    """Blocks on two threads share one change; OpenCV's count comes back when the last ends,
    also after an error, and a pipelined embed_many leaves it as it found it."""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        inside, release = threading.Event(), threading.Event()
        seen = []

        def other() -> None:
            with opencv_one_thread():
                inside.set()
                release.wait(5)
                seen.append(cv2.getNumThreads())

        worker = threading.Thread(target=other)
        worker.start()
        assert inside.wait(5)
        with pytest.raises(RuntimeError), opencv_one_thread():
            assert cv2.getNumThreads() == 1
            raise RuntimeError("inside")
        assert cv2.getNumThreads() == 1  # the other block still runs
        release.set()
        worker.join(5)
        assert seen == [1] and cv2.getNumThreads() == 2
        counts = []
        real = pipe.detect
        pipe.detect = lambda image: (counts.append(cv2.getNumThreads()), real(image))[1]  # type: ignore[method-assign]
        try:
            pipe.embed_many(_photos()[:2])
        finally:
            del pipe.detect
        assert counts == [1, 1] and cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)


def test_pipelined_embed_many_equals_the_sequential_run_on_real_photos(pipe: FacePipeline) -> None:
    photos = _photos()
    threaded = pipe.embed_many(photos)
    sequential = pipe.embed_many(photos, pipelined=False)
    assert sum(len(r) for r in sequential) >= 12
    for a, b in zip(threaded, sequential, strict=True):
        assert np.array_equal(a.faces.xyxy, b.faces.xyxy) and np.array_equal(a.faces.landmarks, b.faces.landmarks)
        assert np.array_equal(a.embeddings.vectors, b.embeddings.vectors)
    # and each image on its own, through the plain per-stage calls (one image per embedder call)
    for path, r in zip(photos[:4], sequential):
        faces = pipe.detect(path)
        assert np.array_equal(faces.xyxy, r.faces.xyxy)
        alone = pipe.embedder.embed(pipe.aligner.align(path, faces))
        assert np.abs(alone.vectors - r.embeddings.vectors).max() < 1e-5


def test_pipelined_embed_many_streams_a_generator_and_reports_a_bad_image(pipe: FacePipeline, tmp_path) -> None:
    photos = _photos()[:3]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    done = []
    with pytest.raises(ImageDecodeError, match="broken.jpg"):
        pipe.embed_many((p for p in [*photos, bad, *photos]), on_image=done.append)
    assert done == [0, 1, 2]
    # only the idle Fanout helpers stay (kept for the next call, like ONNX Runtime's own pool)
    assert not [t for t in threading.enumerate()
                if t.name.startswith("faceprint-") and not t.name.startswith("faceprint-fanout")]


def test_embed_aligned_files_read_ahead_equal_one_call_on_the_stacked_chips(pipe: FacePipeline, tmp_path) -> None:
    from PIL import Image

    from faceprint import ConfigError

    chips = np.concatenate([pipe.align(p).chips for p in _photos()])
    chips = np.concatenate([chips, chips[:, :, ::-1], chips[:, ::-1]])  # past one batch of 32
    assert len(chips) > pipe.embedder.batch_size
    files = []
    for i, chip in enumerate(chips):
        files.append(tmp_path / f"chip{i:03d}.png")
        Image.fromarray(chip).save(files[-1])
    assert np.array_equal(pipe.embed_aligned(files).vectors, pipe.embed_aligned(chips).vectors)
    assert pipe.embed_aligned([]).vectors.shape == (0, pipe.spec.dim)
    Image.fromarray(chips[0][:100]).save(tmp_path / "small.png")
    with pytest.raises(ConfigError, match="small.png: expected an aligned 150x150 chip"):
        pipe.embed_aligned([*files[:40], tmp_path / "small.png"])


def test_embedder_threads_split_batches_with_the_same_vectors(pipe: FacePipeline) -> None:
    chips = np.concatenate([pipe.align(p).chips for p in _photos()])
    chips = np.concatenate([chips, chips[:, :, ::-1]])  # > 32: a full and a partial step
    one = DlibResnetEmbedder(threads=1)
    sizes: list[list[int]] = []
    real_map = Fanout.map

    def spied(self: Fanout, fn, items):  # type: ignore[no-untyped-def]
        sizes.append([len(i) for i in items])
        return real_map(self, fn, items)

    ref = one.embed(chips).vectors
    for threads, batch in ((2, 32), (3, 32), (2, 5)):
        emb = DlibResnetEmbedder(threads=threads, batch_size=batch)
        Fanout.map = spied  # type: ignore[method-assign]
        try:
            vectors = emb.embed(chips).vectors
        finally:
            Fanout.map = real_map  # type: ignore[method-assign]
        np.testing.assert_allclose(vectors, ref, rtol=0, atol=1e-6)
        assert max(len(s) for s in sizes) == threads and max(max(s) for s in sizes) <= -(-batch // threads)
        sizes.clear()
