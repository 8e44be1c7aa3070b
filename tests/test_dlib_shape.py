"""The numpy port of dlib's shape predictor: the file reader, parity with dlib's points and
embeddings on real photos, its cache across processes, and the pipeline without dlib."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faceprint import ConfigError, ModelLoadError, load_image
from faceprint.align import DlibChipAligner
from faceprint.cache import package_file
from faceprint.dlibport.shape import ShapePredictor, count_parts, load_shape_model, read_shape_predictor
from faceprint.dlibport.fmt import DlibReader, doubles_from_details

from .conftest import shared

SRC = Path(__file__).resolve().parents[1] / "src"


def _dat(name: str) -> Path:
    return package_file("face_recognition_models", f"models/{name}", "face-recognition-models")


def _pack(value: int) -> bytes:
    """dlib's packed integer, written the plain way (reference for the vectorised reader)."""
    mag = abs(value)
    body = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


@pytest.fixture(scope="module")
def predictor() -> ShapePredictor:
    return ShapePredictor.from_file(_dat("shape_predictor_5_face_landmarks.dat"))


# -- the file reader -------------------------------------------------------------------------

def test_int_stream_equals_one_int_at_a_time() -> None:
    rng = np.random.default_rng(0)
    values = [0, 1, -1, 255, -256, 2**63 - 1, -(2**63 - 1)] + [int(v) for v in rng.integers(-2**40, 2**40, 3000)]
    data = b"".join(map(_pack, values))
    loop = DlibReader(data)
    expected = [loop.read_int() for _ in values]
    stream = DlibReader(data, 0)
    got = stream.read_int_stream()
    assert got.tolist() == expected == values and stream.at_end()
    tail = DlibReader(data, len(_pack(values[0])))  # starting mid-buffer, at a token
    assert tail.read_int_stream().tolist() == values[1:]


def test_doubles_from_details_equal_read_double() -> None:
    pairs = [(3, -2), (-7, 10), (0, 0), (123456789, -40), (1, 32000), (1, 32001), (1, 32002), (-5, -1074)]
    data = b"".join(_pack(m) + _pack(e) for m, e in pairs)
    r = DlibReader(data)
    expected = [r.read_double() for _ in pairs]
    got = doubles_from_details(*np.array(pairs).T)
    for g, e in zip(got, expected):
        assert (math.isnan(g) and math.isnan(e)) or g == e


def test_int_stream_rejects_bad_bytes() -> None:
    with pytest.raises(ModelLoadError, match="bad control byte"):
        DlibReader(_pack(5) + b"\x09" + bytes(9)).read_int_stream()
    with pytest.raises(ModelLoadError, match="end of file"):
        DlibReader(_pack(5) + b"\x04\x01").read_int_stream()


def test_truncated_or_foreign_files_raise(tmp_path: Path) -> None:
    data = _dat("shape_predictor_5_face_landmarks.dat").read_bytes()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError):
        read_shape_predictor(cut)
    with pytest.raises(ModelLoadError):
        read_shape_predictor(_dat("dlib_face_recognition_resnet_model_v1.dat"))
    with pytest.raises(ModelLoadError, match="not found"):
        load_shape_model(tmp_path / "missing.dat")


def test_model_shape_and_part_counts() -> None:
    m = read_shape_predictor(_dat("shape_predictor_5_face_landmarks.dat"))
    assert m.initial.shape == (5, 2) and m.idx1.shape == (15, 500, 15) and m.leaves.shape == (15, 500, 16, 10)
    assert m.anchor.shape == (15, 800) and m.deltas.shape == (15, 800, 2)
    assert count_parts(_dat("shape_predictor_5_face_landmarks.dat")) == 5
    assert count_parts(_dat("shape_predictor_68_face_landmarks.dat")) == 68


def test_bad_input(predictor: ShapePredictor) -> None:
    assert predictor.predict(np.zeros((20, 20, 3), np.uint8), np.zeros((0, 4))).shape == (0, 5, 2)
    with pytest.raises(ConfigError):
        predictor.predict(np.zeros((20, 20, 3), np.float32), [[0, 0, 10, 10]])
    with pytest.raises(ConfigError):
        predictor.predict(np.zeros((20, 20, 3), np.uint8), [0, 0, 10, 10])
    with pytest.raises(ConfigError, match="predictor_backend"):
        DlibChipAligner(predictor_backend="torch")
    with pytest.raises(ConfigError, match="predict_points"):
        DlibChipAligner().shapes(np.zeros((20, 20, 3), np.uint8), np.array([[0, 0, 10, 10]]))


# -- parity with dlib on real photos ---------------------------------------------------------

def _photos() -> list[Path]:
    """Single, two-person and group photos, varied deepface portraits and LFW images."""
    people = shared("people")
    lfw = sorted((shared("lfw-view1", "images")).glob("A*/*_0001.jpg"))[:40]
    return ([people / "obama.jpg", people / "biden.jpg", people / "two_people.jpg"]
            + sorted((people / "deepface_pairs").glob("*.jpg"))[:30]
            + sorted(shared("group").glob("*.jpg"))[:3] + lfw)


@pytest.fixture(scope="module")
def hog_faces() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(image, dlib ltrb boxes, dlib's 5 points) for every HOG face of :func:`_photos`."""
    dlib = pytest.importorskip("dlib", reason="parity tests compare with dlib itself (pip install 'faceprint[dlib]')")
    sp = dlib.shape_predictor(str(_dat("shape_predictor_5_face_landmarks.dat")))
    det = dlib.get_frontal_face_detector()
    out = []
    for path in _photos():
        rgb = load_image(path)
        rects = det(rgb, 1 if max(rgb.shape) < 400 else 0)
        if len(rects):
            ltrb = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects])
            pts = np.array([[(p.x, p.y) for p in sp(rgb, r).parts()] for r in rects], np.float32)
            out.append((rgb, ltrb, pts))
    return out


def test_landmarks_equal_dlib_on_real_faces(predictor: ShapePredictor,
                                            hog_faces: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    faces = sum(len(b) for _, b, _ in hog_faces)
    assert faces >= 80, faces
    for rgb, ltrb, expected in hog_faces:
        got = predictor.predict(rgb, ltrb)
        assert np.abs(got - expected).max() <= 0.01, (np.abs(got - expected).max(axis=(1, 2)), ltrb)


def test_landmarks_equal_dlib_on_shifted_and_border_boxes(predictor: ShapePredictor,
                                                         hog_faces: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
                                                         ) -> None:
    """Boxes off the face and past the image border (feature pixels outside read 0)."""
    dlib = pytest.importorskip("dlib")
    sp = dlib.shape_predictor(str(_dat("shape_predictor_5_face_landmarks.dat")))
    rng = np.random.default_rng(1)
    for rgb, ltrb, _ in hog_faces[:12]:
        h, w = rgb.shape[:2]
        side = (ltrb[:, 2] - ltrb[:, 0])[:, None]
        moved = ltrb + (rng.uniform(-0.4, 0.4, ltrb.shape) * side).astype(int)
        moved = np.concatenate([moved, [[-40, -30, w // 3, h // 3], [w // 2, h // 2, w + 50, h + 60]]])
        expected = np.array([[(p.x, p.y) for p in sp(rgb, dlib.rectangle(*map(int, b))).parts()] for b in moved])
        assert np.abs(predictor.predict(rgb, moved) - expected).max() <= 0.01


def test_many_images_in_one_pass_equal_dlib(predictor: ShapePredictor,
                                            hog_faces: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """predict_many over images of different sizes (a grey one, one without boxes among
    them): each image's points are dlib's, as one call per image gives."""
    dlib = pytest.importorskip("dlib")
    sp = dlib.shape_predictor(str(_dat("shape_predictor_5_face_landmarks.dat")))
    group = hog_faces[:10]
    assert len({rgb.shape for rgb, _, _ in group}) > 1  # flat offsets and widths differ per image
    grey = np.ascontiguousarray(group[0][0][..., 1])
    grey_pts = np.array([[(p.x, p.y) for p in sp(grey, dlib.rectangle(*map(int, b))).parts()] for b in group[0][1]])
    images = [rgb for rgb, _, _ in group] + [grey, group[1][0]]
    boxes = [ltrb for _, ltrb, _ in group] + [group[0][1], np.zeros((0, 4))]
    got = predictor.predict_many(images, boxes)
    assert len(got) == len(images) and got[-1].shape == (0, 5, 2)
    for (_, _, expected), pts in zip(group, got):
        assert np.abs(pts - expected).max() <= 0.01
    assert np.abs(got[len(group)] - grey_pts).max() <= 0.01
    with pytest.raises(ConfigError, match="2 images but 1 box"):
        predictor.predict_many(images[:2], boxes[:1])


def test_tree_walk_without_the_leaf_table_gives_the_same_points(hog_faces: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
                                                                ) -> None:
    """Trees of more than 16 splits have no word table and are walked node by node; forced
    onto the 5-point file's trees, the walk finds the same leaves."""
    walker = ShapePredictor(load_shape_model(_dat("shape_predictor_5_face_landmarks.dat")))
    walker._table = None
    for rgb, ltrb, expected in hog_faces[:8]:
        assert np.abs(walker.predict_many([rgb, rgb], [ltrb, ltrb[:1]])[0] - expected).max() <= 0.01


def test_aligner_groups_equal_one_image_at_a_time() -> None:
    """align_many (one predictor pass for several images) cuts the chips align cuts, keeps
    points the detector already gave, and passes images without faces through."""
    from faceprint import FacePipeline
    from faceprint.types import Faces

    pipe = FacePipeline()
    images = [load_image(p) for p in _photos()[:6]]
    faces = [pipe.detect(rgb) for rgb in images]
    faces[2] = Faces.empty()
    given = pipe.aligner.points(images[3], faces[3])
    faces[3] = Faces(faces[3].xyxy, faces[3].score, faces[3].landmarks, faces[3].track_id,
                     dict(faces[3].extras, dlib_shape5=given + 1))  # not what the predictor would say
    one = [pipe.aligner.align(rgb, f) for rgb, f in zip(images, faces)]
    many = pipe.aligner.align_many(images, faces)
    assert sum(len(a.chips) for a in many) >= 6 and len(many[2].chips) == 0
    for a, b in zip(one, many):
        assert np.array_equal(a.chips, b.chips)
        assert np.array_equal(a.faces.extras.get("dlib_shape5", np.zeros(0)), b.faces.extras.get("dlib_shape5", np.zeros(0)))
    assert np.array_equal(many[3].faces.extras["dlib_shape5"], given + 1)
    with pytest.raises(ConfigError, match="2 images but 1 face"):
        pipe.aligner.align_many(images[:2], faces[:1])


def test_embeddings_match_dlib_end_to_end() -> None:
    """The default pipeline (MTCNN, ported predictor and chips, ResNet on ONNX Runtime) against
    dlib's predictor, ``get_face_chip`` and ResNet on the same predictor boxes: within 0.02."""
    dlib = pytest.importorskip("dlib", reason="parity tests compare with dlib itself (pip install 'faceprint[dlib]')")
    from faceprint import FacePipeline

    sp = dlib.shape_predictor(str(_dat("shape_predictor_5_face_landmarks.dat")))
    net = dlib.face_recognition_model_v1(str(_dat("dlib_face_recognition_resnet_model_v1.dat")))
    pipe = FacePipeline()
    people = shared("people")
    photos = [people / "obama.jpg", people / "two_people.jpg", *sorted((people / "deepface_pairs").glob("*.jpg"))[:8],
              *sorted(shared("lfw-view1", "images").glob("B*/*_0001.jpg"))[:6]]
    dists, point_diffs = [], []
    for path in photos:
        rgb = load_image(path)
        faces = pipe.detect(rgb)
        aligned = pipe.aligner.align(rgb, faces)
        ours = pipe.embedder.embed(aligned).vectors
        for i, box in enumerate(pipe.aligner._ltrb(pipe.aligner.predictor_boxes(faces))):
            shape = sp(rgb, dlib.rectangle(*map(int, box)))
            point_diffs.append(np.abs(np.array([(p.x, p.y) for p in shape.parts()]) - aligned.faces.extras["dlib_shape5"][i]).max())
            ref = np.array(net.compute_face_descriptor(dlib.get_face_chip(rgb, shape, 150, 0.25)))
            dists.append(float(np.linalg.norm(ours[i] - ref)))
    assert len(dists) >= 15
    assert max(point_diffs) <= 0.01
    assert max(dists) < 0.02, sorted(dists)[-5:]


# -- across processes, and without dlib ------------------------------------------------------

#: Installed in the child before anything else: a meta-path finder that refuses dlib and its
#: extension module (as if dlib-bin were not installed), and, at exit, a check that neither was
#: imported by another route (exit code 97).
_HIDE_DLIB = """
import atexit, os, sys
class _NoDlib:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('dlib', '_dlib_pybind11'):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoDlib())
for _m in [m for m in sys.modules if m.split('.')[0] in ('dlib', '_dlib_pybind11')]:
    del sys.modules[_m]
def _check():
    if any(m.split('.')[0] in ('dlib', '_dlib_pybind11') for m in sys.modules):
        sys.stderr.flush(); os._exit(97)
atexit.register(_check)
"""


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    """Python ``code`` in a fresh process with ``import dlib`` failing (as without the extra)."""
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.run([sys.executable, "-c", _HIDE_DLIB + code, *args], capture_output=True, text=True, env=env,
                          check=False, timeout=600)


def test_the_blocker_hides_dlib() -> None:
    proc = _run("import dlib\n")
    assert proc.returncode == 1 and "No module named 'dlib'" in proc.stderr


def test_converted_model_is_reused_by_a_new_process(predictor: ShapePredictor) -> None:
    rgb_path = shared("people", "obama.jpg")
    boxes = np.array([[300, 250, 700, 650], [350, 200, 800, 700]])
    expected = predictor.predict(load_image(rgb_path), boxes)
    cached = list(Path(os.environ["FACEPRINT_CACHE_DIR"]).glob("shape_predictor_5_face_landmarks-*.npz"))
    assert len(cached) == 1
    code = ("import json, sys\n"
            "import faceprint.dlibport.shape as ds\n"
            "ds.read_shape_predictor = None  # the cache must be used, not the .dat\n"
            "from faceprint import load_image\n"
            "from faceprint.align import DlibChipAligner\n"
            "pts = DlibChipAligner().predictor.predict(load_image(sys.argv[1]), json.loads(sys.argv[2]))\n"
            "print(json.dumps(pts.tolist()))\n")
    proc = _run(code, str(rgb_path), json.dumps(boxes.tolist()))
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(np.array(json.loads(proc.stdout)), expected)


def test_verify_runs_without_dlib() -> None:
    people = shared("people")
    cli = "from faceprint.cli import main\nsys.argv[0] = 'faceprint'\nmain()\n"
    same = _run(cli, "verify", "--json", str(people / "knn_examples" / "train" / "biden" / "biden.jpg"),
                str(people / "knn_examples" / "train" / "biden" / "biden2.jpg"))
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["match"] is True
    other = _run(cli, "verify", "--json", str(people / "obama.jpg"), str(people / "biden.jpg"))
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["match"] is False


def test_enroll_and_identify_without_dlib(tmp_path: Path) -> None:
    """Enroll in one process and identify in another (the gallery reopened), dlib hidden in both."""
    knn = shared("people", "knn_examples")
    cli = "from faceprint.cli import main\nsys.argv[0] = 'faceprint'\nmain()\n"
    db = str(tmp_path / "gallery.db")
    enroll = _run(cli, "enroll", "--db", db, "--from-folders", str(knn / "train"))
    assert enroll.returncode == 0, enroll.stderr
    found = _run(cli, "identify", "--json", "--db", db, str(knn / "test" / "obama_and_biden.jpg"))
    assert found.returncode == 0, found.stderr
    names = [f["name"] for f in json.loads(found.stdout)[0]["faces"]]
    assert {"obama", "biden"} <= set(names), names


def test_dlib_stays_out_of_the_core_dependencies() -> None:
    import tomllib

    project = tomllib.loads((SRC.parent / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("dlib")]
    extras = project["optional-dependencies"]
    assert any(d.startswith("dlib-bin") for d in extras["dlib"]) and any(d.startswith("dlib-bin") for d in extras["test"])


def test_dlib_only_features_name_the_extra_without_dlib() -> None:
    cli = "from faceprint.cli import main\nsys.argv[0] = 'faceprint'\nmain()\n"
    proc = _run(cli, "detect", "--detector", "hog", str(shared("people", "obama.jpg")))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "faceprint[dlib]" in lines[0] and "HOG" in lines[0], proc.stderr
    lib = _run("from faceprint.align import DlibChipAligner\n"
               "from faceprint import Faces, ModelLoadError\n"
               "import numpy as np\n"
               "try:\n"
               "    DlibChipAligner(chip_backend='dlib').align(np.zeros((200, 200, 3), np.uint8),"
               " Faces([[50, 50, 150, 150]], [1.0], np.zeros((1, 5, 2))))\n"
               "except ModelLoadError as exc:\n"
               "    print(exc)\n")
    assert lib.returncode == 0 and "faceprint[dlib]" in lib.stdout, lib.stderr


def test_aligner_backends_give_the_same_points() -> None:
    pytest.importorskip("dlib", reason="compares with dlib's backend (pip install 'faceprint[dlib]')")
    rgb = load_image(shared("people", "two_people.jpg"))
    boxes = np.array([[100, 80, 400, 380], [600, 120, 850, 370]], np.float32)
    port, theirs = DlibChipAligner(), DlibChipAligner(predictor_backend="dlib")
    assert port._backend() == "numpy" and theirs._backend() == "dlib"
    np.testing.assert_array_equal(port.predict_points(rgb, boxes), theirs.predict_points(rgb, boxes))
    for aligner in (port, theirs):
        assert aligner.predict_points(rgb, np.zeros((0, 4))).shape == (0, 5, 2)


def test_leaf_sum_is_dlibs_sequential_float32_sum() -> None:
    """The predictor adds each cascade's leaves with ``np.add.reduce`` along the middle axis of
    ``(N, trees + 1, 2P)``; dlib adds them one tree at a time in float32. Checked against a plain
    loop on values where the order changes the float32 result (pairwise summation differs)."""
    rng = np.random.default_rng(3)
    terms = (rng.standard_normal((3, 501, 10)) * np.logspace(0, 7, 501)[None, :, None]).astype(np.float32)
    loop = terms[:, 0].copy()
    for t in range(1, terms.shape[1]):
        loop = (loop + terms[:, t]).astype(np.float32)
    assert np.array_equal(np.add.reduce(terms, axis=1), loop)
    pairwise = np.ascontiguousarray(terms.transpose(0, 2, 1)).sum(axis=2)
    assert not np.array_equal(pairwise, loop)  # the check can tell the orders apart
