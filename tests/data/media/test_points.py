"""3D loading: every format written and parsed back, geometry checked; bad input refused."""

from __future__ import annotations

import io

import numpy as np
import pytest

from cmcr import InputError
from cmcr.data.media import load_points, normalise_points
from cmcr.data.media import points as points_module
from tests.fixtures.media import (
    make_mesh_file,
    make_openshape_npy,
    make_points_file,
    random_cloud,
)

MESH_FORMATS = ["ply", "ply_ascii", "obj", "off", "off_modelnet", "stl", "stl_ascii", "glb", "gltf"]


def assert_normalised(cloud: np.ndarray, count: int = 8192) -> None:
    assert cloud.dtype == np.float32 and cloud.shape == (count, 3)
    assert np.allclose(cloud.mean(axis=0), 0, atol=1e-5)
    assert np.max(np.linalg.norm(cloud, axis=1)) == pytest.approx(1.0, abs=1e-5)


def spread(cloud: np.ndarray) -> np.ndarray:
    return cloud.max(axis=0) - cloud.min(axis=0)


def on_faces(cloud: np.ndarray) -> np.ndarray:
    """(N, 3) bool: which bounding-box faces (per axis) each point touches."""
    return np.isclose(cloud, cloud.min(axis=0), atol=1e-5) | np.isclose(
        cloud, cloud.max(axis=0), atol=1e-5
    )


def on_box_surface(cloud: np.ndarray, extents: np.ndarray) -> bool:
    """True when the cloud spans a box of `extents` (up to scale) and every point lies on a face."""
    size = spread(cloud)
    assert np.allclose(size / size.max(), extents / extents.max(), atol=0.01)
    return bool(on_faces(cloud).any(axis=1).all())


@pytest.mark.parametrize("fmt", MESH_FORMATS)
def test_meshes_are_sampled_on_their_surface(tmp_path, fmt):
    cloud = load_points(make_mesh_file(tmp_path, fmt=fmt))
    assert_normalised(cloud)
    rotated_by_scene = fmt in ("glb", "gltf")  # the node turns the 4x1x1 box to stand along Y
    extents = np.array([1.0, 4.0, 1.0]) if rotated_by_scene else np.array([4.0, 1.0, 1.0])
    assert on_box_surface(cloud, extents)


def test_surface_sampling_follows_area(tmp_path):
    cloud = load_points(make_mesh_file(tmp_path, fmt="ply"))
    on_end_caps = on_faces(cloud)[:, 0].mean()
    assert on_end_caps == pytest.approx(2 / 18, abs=0.015)  # 2 of 18 unit squares of area


def test_sampling_is_deterministic_and_count_follows_request(tmp_path):
    path = make_mesh_file(tmp_path, fmt="obj")
    assert np.array_equal(load_points(path), load_points(path.read_bytes(), format="obj"))
    assert load_points(path, num_points=100).shape == (100, 3)


@pytest.mark.parametrize(
    ("fmt", "delimiter", "columns"),
    [
        ("xyz", " ", 3),
        ("txt", "\t", 6),
        ("csv", ",", 6),
        ("npy", " ", 3),
        ("npz", " ", 6),
        ("ply", " ", 3),
    ],
)
def test_clouds_keep_their_points(tmp_path, fmt, delimiter, columns):
    points = random_cloud(300)
    with_extra = np.concatenate([points, np.full((300, columns - 3), 0.5)], axis=1)
    path = make_points_file(tmp_path, fmt=fmt, points=with_extra, delimiter=delimiter)
    cloud = load_points(path, num_points=300)
    assert_normalised(cloud, 300)
    expected = normalise_points(points, num_points=300)
    assert np.allclose(np.sort(cloud, axis=0), np.sort(expected, axis=0), atol=1e-4)
    assert np.argmax(spread(cloud)) == 0 and np.argmin(spread(cloud)) == 2  # 3 x 2 x 1 ellipsoid


def test_up_sampling_repeats_every_original_point(tmp_path):
    cloud = load_points(make_points_file(tmp_path, points=random_cloud(100)), num_points=1000)
    assert cloud.shape == (1000, 3)
    assert len(np.unique(cloud, axis=0)) == 100


def test_z_up_is_rotated_to_y_up():
    tall_in_z = random_cloud(400)[:, [1, 2, 0]]  # longest axis along Z
    y_up = normalise_points(tall_in_z, num_points=400, up_axis="z")
    assert np.argmax(spread(y_up)) == 1
    untouched = normalise_points(tall_in_z, num_points=400)
    assert np.argmax(spread(untouched)) == 2
    with pytest.raises(InputError, match="up_axis"):
        normalise_points(tall_in_z, up_axis="w")


@pytest.mark.parametrize("as_kind", ["bytes", "file object"])
def test_content_is_sniffed_without_a_name(tmp_path, as_kind):
    for fmt in ["ply", "off_modelnet", "stl", "stl_ascii", "glb", "obj", "gltf"]:
        data = make_mesh_file(tmp_path, fmt=fmt).read_bytes()
        cloud = load_points(data if as_kind == "bytes" else io.BytesIO(data), num_points=256)
        assert_normalised(cloud, 256)
    for fmt in ["xyz", "npy", "npz"]:
        data = make_points_file(tmp_path, fmt=fmt).read_bytes()
        assert_normalised(load_points(data, num_points=256), 256)


def test_openshape_records_load_through_the_allow_listed_reader(tmp_path):
    assert_normalised(load_points(make_openshape_npy(tmp_path)))


def test_non_finite_rows_are_dropped_when_enough_remain(tmp_path):
    points = random_cloud(200)
    points[::10] = np.nan
    points[5] = np.inf
    cloud = load_points(make_points_file(tmp_path, fmt="npy", points=points), num_points=179)
    assert_normalised(cloud, 179)
    assert len(np.unique(cloud, axis=0)) == 179


@pytest.mark.parametrize(
    ("points", "message"),
    [
        (random_cloud(3), "3 distinct points"),
        (np.ones((500, 3)), "identical"),
        (np.concatenate([random_cloud(10), np.full((90, 3), np.nan)]), "NaN/inf were dropped"),
        (np.full((50, 3), np.nan), "0 distinct points"),
    ],
)
def test_too_few_distinct_points_are_refused(tmp_path, points, message):
    with pytest.raises(InputError, match=message):
        load_points(make_points_file(tmp_path, fmt="npy", points=points))


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((10, 2)), r"shape \(10, 2\)"),
        (np.array(["a", "b", "c"]), "numeric array"),
        (np.zeros((4, 4, 3)), "shape"),
    ],
)
def test_wrong_arrays_are_refused(tmp_path, array, message):
    with pytest.raises(InputError, match=message):
        load_points(make_points_file(tmp_path, fmt="npy", points=array))


def test_pickled_npz_and_ambiguous_npz_are_refused():
    buffer = io.BytesIO()
    np.savez(buffer, a=np.array({"xyz": 1}, dtype=object))
    with pytest.raises(InputError, match="pickled"):
        load_points(buffer.getvalue())
    buffer = io.BytesIO()
    np.savez(buffer, a=random_cloud(), b=random_cloud())
    with pytest.raises(InputError, match="name the point array"):
        load_points(buffer.getvalue())


def test_degenerate_mesh_is_refused():
    flat = b"OFF\n3 1 0\n0 0 0\n1 1 1\n2 2 2\n3 0 1 2\n"
    with pytest.raises(InputError, match="no surface area"):
        load_points(flat, format="off")


def test_header_counts_are_bounded_before_parsing(monkeypatch):
    monkeypatch.setattr(points_module, "MAX_VERTICES", 1000)
    header = b"ply\nformat binary_little_endian 1.0\nelement vertex 999999999\nproperty float x\n"
    with pytest.raises(InputError, match="999,999,999 vertices"):
        load_points(header + b"property float y\nproperty float z\nend_header\n" + b"\0" * 64)
    with pytest.raises(InputError, match="vertices"):
        load_points(b"OFF\n5000 1 0\n0 0 0\n", format="off")
    buffer = io.BytesIO()
    np.save(buffer, random_cloud(2000))
    with pytest.raises(InputError, match="vertices"):
        load_points(buffer.getvalue())


def test_scene_instancing_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(points_module, "MAX_VERTICES", 5)
    with pytest.raises(InputError, match="vertices"):
        load_points(make_mesh_file(tmp_path, fmt="glb"))


@pytest.mark.parametrize(
    ("payload", "options", "message"),
    [
        (b"", {}, "empty"),
        (b"\x00\x01\x02 binary junk", {}, "not a recognised 3D file"),
        (b"ply\nformat ascii 1.0\nelement vertex 3\nend_header\n", {}, "could not be read as PLY"),
        (
            b'{"asset": {"version": "2.0"}, "buffers": [{"uri": "x.bin", "byteLength": 10}]}',
            {},
            "embed",
        ),
        (b"1 2 3\n4 5\n", {"format": "xyz"}, "same count on every line"),
        (b"x y z\n1 2 3\n", {"format": "txt"}, "list of numbers"),
        (b"\xff\xfe\x00binary", {"format": "xyz"}, "not a text point list"),
        (b"data", {"format": "pcd"}, "PCD"),
        (b"\x93NUMPY garbage", {}, "could not be read as NPY"),
        (b"PK\x03\x04 zip", {"format": "npy"}, "not a valid .npy"),
        (b"\x80\x04pickle", {"format": "npy"}, "not a valid .npy"),
    ],
)
def test_bad_bytes_are_refused_with_a_message(payload, options, message):
    with pytest.raises(InputError, match=message):
        load_points(payload, **options)


def test_byte_limit_and_bad_arguments(tmp_path):
    path = make_mesh_file(tmp_path, fmt="stl")
    with pytest.raises(InputError, match="limit"):
        load_points(path, max_bytes=100)
    with pytest.raises(InputError, match="num_points"):
        load_points(path, num_points=0)


@pytest.mark.parametrize("links", [{0: [0]}, {0: [1], 1: [0]}, {0: [1], 1: [2], 2: [0]}],
                         ids=["self", "pair", "triangle"])
def test_gltf_nodes_that_form_a_cycle_are_refused_with_a_message(tmp_path, links):
    import json

    document = json.loads(make_mesh_file(tmp_path, fmt="gltf").read_text())
    document["nodes"] += [{} for _ in range(max(links) + 1 - len(document["nodes"]))]
    for node, children in links.items():
        document["nodes"][node]["children"] = children
    path = tmp_path / "cyclic.gltf"
    path.write_text(json.dumps(document))
    with pytest.raises(InputError, match="forms a cycle"):
        load_points(path)
