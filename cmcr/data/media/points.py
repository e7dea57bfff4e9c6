"""3D files and bytes -> a normalised point cloud for the ULIP encoder.

Accepted: PLY (ascii/binary, with or without faces), OBJ, OFF (incl. ModelNet's `OFF490 518 0`
header), STL (ascii/binary), GLB/glTF (buffers embedded; node transforms applied), XYZ/TXT/CSV
(whitespace or comma separated, 3 or more numeric columns, xyz first), NPY/NPZ plain numeric
arrays of shape (N, 3+) (xyz first; colours/normals ignored). The file name's suffix picks the
parser when there is one; otherwise the content is sniffed.

Policy, and why:
- Nothing user-supplied is unpickled with a full unpickler: plain `.npy` files are read with
  `allow_pickle=False`; pickled OpenShape records (a dict with an `xyz` array, as the official
  C-MCR samples are) go through `cmcr.data.media.safe_npy`, which admits numpy arrays and nothing else.
- Bounded work: over `max_bytes` is refused unread; vertex and face counts stated by PLY/OFF/STL
  headers and glTF scene instancing are checked against `MAX_VERTICES`/`MAX_FACES` before the
  geometry is built; glTF scenes of more than `MAX_SCENE_NODES` nodes are refused unparsed.
- Meshes are sampled on their surface, uniformly by area; clouds are sub- or up-sampled (up by
  repeating points). Both use a fixed seed, so the same file always gives the same cloud.
- A file holding both surfaces and loose points (a glTF scene) is sampled on its surfaces.
- Rows with NaN/inf are dropped (depth-camera scans mark missing pixels that way); what is left
  must hold at least `MIN_DISTINCT_POINTS` distinct points, so 3 points or a cloud of one repeated
  point is refused with a message.
- Output: centred on the centroid, scaled so the farthest point is at radius 1, Y up. `up_axis="z"`
  rotates Z-up data (ModelNet, ShapeNet exports from CAD tools) to Y-up.
"""

from __future__ import annotations

import io
import json
import re
import zipfile

import numpy as np
import trimesh

from cmcr.errors import InputError
from cmcr.data.media.safe_npy import NPY_MAGIC, read_npy
from cmcr.data.media.source import Source, SourceBytes, decoder_reason, read_source

MAX_BYTES = 50_000_000
MAX_VERTICES = 3_000_000
MAX_FACES = 3_000_000
MAX_SCENE_NODES = 5_000  # trimesh's scene graph is quadratic in depth: 20,000 nested nodes take 2-15 s
MIN_DISTINCT_POINTS = 16
SEED = 0
ACCEPTED = "PLY, OBJ, OFF, STL, GLB/glTF, XYZ/TXT/CSV, or NPY/NPZ arrays of shape (N, 3)"

MESH_FORMATS = ("ply", "obj", "off", "stl", "glb", "gltf")
TEXT_CLOUD_ALIASES = {"xyz": "xyz", "txt": "xyz", "csv": "xyz", "pts": "xyz"}
# What a file picker should offer: every suffix read by name (anything else is sniffed).
FILE_SUFFIXES = tuple(f".{name}" for name in (*MESH_FORMATS, "npy", "npz", *TEXT_CLOUD_ALIASES))
UNSUPPORTED = {
    "pcd": "PCD",
    "las": "LAS",
    "laz": "LAZ",
    "fbx": "FBX",
    "3ds": "3DS",
    "dae": "COLLADA",
    "usd": "USD",
    "usdz": "USDZ",
    "blend": "Blender",
    "e57": "E57",
    "pkl": "pickle",
    "pickle": "pickle",
    "pt": "PyTorch",
    "pth": "PyTorch",
    "h5": "HDF5",
}
_OFF_HEADER = re.compile(rb"^\s*(ST)?C?N?4?OFF")
_UP_AXIS_TO_Y = {"y": np.eye(3), "z": np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])}


def detect_points_format(source: SourceBytes) -> str:
    """The parser to use: the name's suffix when it has one, else what the content looks like."""
    if source.hint in UNSUPPORTED:
        raise InputError(
            f"{source.label} is a {UNSUPPORTED[source.hint]} file, which is not accepted. "
            f"Accepted: {ACCEPTED}."
        )
    if source.hint in MESH_FORMATS or source.hint in ("npy", "npz"):
        return source.hint
    if source.hint in TEXT_CLOUD_ALIASES:
        return TEXT_CLOUD_ALIASES[source.hint]
    sniffed = _sniff(source.data)
    if sniffed is None:
        raise InputError(f"{source.label} is not a recognised 3D file. Accepted: {ACCEPTED}.")
    return sniffed


def _sniff(data: bytes) -> str | None:
    magic = {b"ply": "ply", b"glTF": "glb", NPY_MAGIC: "npy", b"PK\x03\x04": "npz"}
    for prefix, name in magic.items():
        if data.startswith(prefix):
            return name
    if _is_binary_stl(data):
        return "stl"
    text = data[:4096].lstrip()
    if _OFF_HEADER.match(text):
        return "off"
    if text.startswith(b"solid"):
        return "stl"
    if text.startswith(b"{"):
        return "gltf"
    if re.search(rb"^\s*(v|f|vn|vt|o|g)\s", text, re.MULTILINE):
        return "obj"
    if re.match(rb"^[\s#]*[-+.\d]", text):
        return "xyz"
    return None


def _is_binary_stl(data: bytes) -> bool:
    if len(data) < 84:
        return False
    triangles = int.from_bytes(data[80:84], "little")
    return len(data) == 84 + 50 * triangles


# ----------------------------------------------------------------------------- header bounds


def _check_counts(source: SourceBytes, vertices: int, faces: int) -> None:
    if vertices > MAX_VERTICES or faces > MAX_FACES:
        raise InputError(
            f"{source.label} has {vertices:,} vertices and {faces:,} faces; at most "
            f"{MAX_VERTICES:,} vertices and {MAX_FACES:,} faces are accepted. Please simplify it."
        )


def _check_header_counts(source: SourceBytes, fmt: str) -> None:
    """Refuse from the header what would be too big to build, before trimesh allocates it."""
    data = source.data
    if fmt == "ply":
        header = data[:65536].split(b"end_header", 1)[0]
        counts = dict(re.findall(rb"element\s+(\w+)\s+(\d+)", header))
        _check_counts(source, int(counts.get(b"vertex", 0)), int(counts.get(b"face", 0)))
    elif fmt == "off":
        numbers = re.findall(rb"\d+", _OFF_HEADER.sub(b"", data[:4096].lstrip(), count=1))[:2]
        if len(numbers) == 2:
            _check_counts(source, int(numbers[0]), int(numbers[1]))
    elif fmt == "stl" and _is_binary_stl(data):
        _check_counts(source, 0, int.from_bytes(data[80:84], "little"))
    elif fmt == "obj":
        _check_counts(source, data.count(b"\nv "), data.count(b"\nf "))
    elif fmt in ("glb", "gltf"):
        nodes = _gltf_document(data, fmt).get("nodes")
        if isinstance(nodes, list) and len(nodes) > MAX_SCENE_NODES:
            raise InputError(
                f"{source.label} has {len(nodes):,} scene nodes; at most {MAX_SCENE_NODES:,} are accepted. "
                "Please merge or simplify the scene."
            )
        if isinstance(nodes, list) and _has_node_cycle(nodes):
            raise InputError(f"{source.label} is not a valid glTF scene: its nodes are their own ancestors "
                             "(the node hierarchy forms a cycle). Re-export it from your 3D tool.")


def _has_node_cycle(nodes: list) -> bool:
    """Whether glTF `children` links loop back (iterative, linear in nodes and links)."""
    children = [[c for c in (node.get("children") or []) if isinstance(c, int) and 0 <= c < len(nodes)]
                if isinstance(node, dict) and isinstance(node.get("children") or [], list) else []
                for node in nodes]
    state = [0] * len(nodes)  # 0 unseen, 1 on the current path, 2 done
    for root in range(len(nodes)):
        if state[root]:
            continue
        stack = [(root, iter(children[root]))]
        state[root] = 1
        while stack:
            node, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state[child] == 1:
                return True
            elif state[child] == 0:
                state[child] = 1
                stack.append((child, iter(children[child])))
    return False


def _gltf_document(data: bytes, fmt: str) -> dict:
    """The JSON part of a glTF or GLB file; {} when unreadable (trimesh then says why)."""
    text = data[20:20 + int.from_bytes(data[12:16], "little")] if fmt == "glb" else data
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return document if isinstance(document, dict) else {}


# ----------------------------------------------------------------------------- parsers


def _load_scene(source: SourceBytes, fmt: str):
    _check_header_counts(source, fmt)
    try:  # no resolver: a file cannot make us read other files; no materials: no texture decoding
        scene = trimesh.load_scene(
            io.BytesIO(source.data), file_type=fmt, process=False, skip_materials=True
        )
        # walking the scene graph is parsing too: nodes that form a cycle fail here, not above
        instances = [scene.geometry[scene.graph[node][1]] for node in scene.graph.nodes_geometry]
    except InputError:
        raise
    except Exception as error:  # trimesh's parsers raise many types for damaged files
        raise _damaged(source, fmt, error) from None
    _check_counts(
        source,
        sum(len(getattr(geometry, "vertices", ())) for geometry in instances),
        sum(len(getattr(geometry, "faces", ())) for geometry in instances),
    )
    return scene


def _damaged(source: SourceBytes, fmt: str, error: Exception) -> InputError:
    reason = decoder_reason(error)
    extra = " A .gltf must embed its buffers; upload a .glb instead." if fmt == "gltf" else ""
    return InputError(
        f"{source.label} could not be read as {fmt.upper()} ({reason}); the file may be damaged."
        f"{extra} Accepted: {ACCEPTED}."
    )


def _scene_geometry(source: SourceBytes, fmt: str) -> tuple[list, list]:
    """(triangles per mesh, vertex arrays of clouds) in world coordinates."""
    scene = _load_scene(source, fmt)
    try:
        parts = scene.dump()
    except Exception as error:
        raise _damaged(source, fmt, error) from None
    triangles, clouds = [], []
    for part in parts:
        vertices = np.asarray(getattr(part, "vertices", np.empty((0, 3))), dtype=np.float64)
        faces = np.asarray(getattr(part, "faces", np.empty((0, 3))), dtype=np.int64)
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise InputError(f"{source.label} has vertices without three coordinates each.")
        if isinstance(part, trimesh.Trimesh) and len(faces):
            if (
                faces.ndim != 2
                or faces.shape[1] != 3
                or faces.min() < 0
                or faces.max() >= len(vertices)
            ):
                raise InputError(
                    f"{source.label} has faces that refer to vertices it does not contain."
                )
            triangles.append(vertices[faces])
        elif len(vertices):
            clouds.append(vertices)
    if not triangles and not clouds:
        raise InputError(f"{source.label} contains no points or surfaces.")
    return triangles, clouds


def _numeric_columns(source: SourceBytes, array: np.ndarray) -> np.ndarray:
    if array.dtype.kind not in "fiu" or array.ndim != 2 or array.shape[1] < 3:
        raise InputError(
            f"{source.label} holds an array of shape {array.shape} and type {array.dtype}; "
            "a numeric array of shape (N, 3) (xyz) or (N, 6) (xyz + colour or normal) is needed."
        )
    if array.shape[0] > MAX_VERTICES:
        _check_counts(source, array.shape[0], 0)
    return array[:, :3].astype(np.float64)


def _require_magic(source: SourceBytes, magic: bytes, fmt: str) -> None:
    """np.load picks its reader from the content (and falls back to pickle): pin it to `fmt`."""
    if not source.data.startswith(magic):
        raise InputError(f"{source.label} is not a valid .{fmt} file. Accepted: {ACCEPTED}.")


def _load_npy(source: SourceBytes) -> np.ndarray:
    _require_magic(source, NPY_MAGIC, "npy")
    content = read_npy(source.data, source.label, max_bytes=MAX_BYTES * 4)
    if isinstance(content, dict):  # an OpenShape / ULIP-2 record, as the official samples are
        return _openshape_xyz(source, content)
    if not isinstance(content, np.ndarray):
        raise InputError(f"{source.label} holds a {type(content).__name__}, not an array of points.")
    return content


def _openshape_xyz(source: SourceBytes, record: dict) -> np.ndarray:
    xyz = record.get("xyz")
    if not isinstance(xyz, np.ndarray):
        raise InputError(f"{source.label} holds a record without an 'xyz' array of points.")
    return xyz


def _load_npz(source: SourceBytes) -> np.ndarray:
    _require_magic(source, b"PK\x03\x04", "npz")
    try:
        with zipfile.ZipFile(io.BytesIO(source.data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > MAX_BYTES * 4:
            raise InputError(
                f"{source.label} unpacks to {unpacked / 1e6:.0f} MB; at most "
                f"{MAX_BYTES * 4 / 1e6:.0f} MB is accepted."
            )
        with np.load(io.BytesIO(source.data), allow_pickle=False) as arrays:
            return arrays[_pick_npz_key(source, list(arrays.keys()))]
    except InputError:
        raise
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise InputError(
                f"{source.label} holds pickled Python objects, which are never loaded from an "
                "upload. Save plain float arrays with numpy.savez instead."
            ) from None
        raise _damaged(source, "npz", error) from None
    except Exception as error:
        raise _damaged(source, "npz", error) from None


def _pick_npz_key(source: SourceBytes, keys: list[str]) -> str:
    for preferred in ("xyz", "points", "pos", "vertices"):
        if preferred in keys:
            return preferred
    if len(keys) == 1:
        return keys[0]
    raise InputError(
        f"{source.label} holds arrays {keys}; name the point array 'xyz' or 'points' "
        "(or save only one array)."
    )


def _load_text(source: SourceBytes) -> np.ndarray:
    try:
        text = source.data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(
            f"{source.label} is not a text point list. Accepted: {ACCEPTED}."
        ) from None
    cleaned = re.sub(r"[,;]", " ", text)
    try:
        array = np.loadtxt(io.StringIO(cleaned), dtype=np.float64, comments="#", ndmin=2)
    except Exception as error:
        raise InputError(
            f"{source.label} is not a list of numbers with the same count on every line "
            f"({str(error).strip()[:160]}). Write one point per line: x y z [r g b]."
        ) from None
    return array


def _read_geometry(source: SourceBytes, fmt: str) -> tuple[list, list]:
    """(triangles per mesh, point arrays) for every accepted format."""
    if fmt in MESH_FORMATS:
        return _scene_geometry(source, fmt)
    if fmt == "npy":
        array = _load_npy(source)
    elif fmt == "npz":
        array = _load_npz(source)
    else:
        array = _load_text(source)
    return [], [_numeric_columns(source, np.asarray(array))]


# ----------------------------------------------------------------------------- sampling


def _finite_triangles(triangles: list[np.ndarray]) -> np.ndarray:
    stacked = np.concatenate(triangles) if triangles else np.empty((0, 3, 3))
    return stacked[np.isfinite(stacked).all(axis=(1, 2))]


def _prenormalise(coordinates: np.ndarray) -> np.ndarray:
    """Shift and scale (..., 3) coordinates into [-1, 1], so that areas and means cannot overflow
    for huge coordinates; the exact centring and scaling happen at the end."""
    flat = coordinates.reshape(-1, 3)
    low, high = flat.min(axis=0), flat.max(axis=0)
    extent = float(np.max(high - low))
    return (coordinates - (low + high) / 2) / (extent if extent > 0 else 1.0)


def sample_surface(triangles: np.ndarray, count: int, seed: int = SEED) -> np.ndarray | None:
    """`count` points uniformly by area on (F, 3, 3) triangles; None when the area is zero."""
    corner, edge_b, edge_c = (
        triangles[:, 0],
        triangles[:, 1] - triangles[:, 0],
        triangles[:, 2] - triangles[:, 0],
    )
    areas = 0.5 * np.linalg.norm(np.cross(edge_b, edge_c), axis=1)
    total = float(areas.sum())
    if not np.isfinite(total) or total <= 0:
        return None
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(triangles), size=count, p=areas / total)
    u, v = rng.random((2, count, 1))
    outside = (u + v) > 1
    u, v = np.where(outside, 1 - u, u), np.where(outside, 1 - v, v)
    return corner[chosen] + u * edge_b[chosen] + v * edge_c[chosen]


def resample_cloud(points: np.ndarray, count: int, seed: int = SEED) -> np.ndarray:
    """Exactly `count` rows: a seeded subset, or every point plus seeded repeats."""
    rng = np.random.default_rng(seed)
    if len(points) >= count:
        return points[np.sort(rng.choice(len(points), size=count, replace=False))]
    extra = rng.choice(len(points), size=count - len(points), replace=True)
    return np.concatenate([points, points[extra]])


def _distinct_count(points: np.ndarray, enough: int) -> int:
    """Distinct rows, counted exactly but only until `enough` are known to exist."""
    head = np.unique(points[: enough * 64], axis=0)
    return len(head) if len(head) >= enough else _count_up_to(points, enough)


def _count_up_to(points: np.ndarray, enough: int) -> int:
    """Distinct rows, at most `enough`: each pass drops every copy of one row. Linear, where
    np.unique's sort of millions of identical rows took 2-10 s for a 65 KB .npz upload."""
    left = np.ones(len(points), dtype=bool)
    count = 0
    while count < enough and left.any():
        left &= (points != points[np.argmax(left)]).any(axis=1)
        count += 1
    return count


def normalise_points(
    points: np.ndarray, *, num_points: int = 8192, up_axis: str = "y", label: str = "the cloud"
) -> np.ndarray:
    """(N, 3+) coordinates -> float32 (num_points, 3), centred, unit sphere, Y up.

    Also the entry point for arrays that did not come from a file (e.g. a dataset already in
    memory), so every cloud the encoder sees passed the same checks.
    """
    if up_axis not in _UP_AXIS_TO_Y:
        raise InputError(f"up_axis must be 'y' or 'z', not {up_axis!r}.")
    if not isinstance(num_points, (int, np.integer)) or num_points < 1:
        raise InputError(f"num_points must be a positive integer, not {num_points!r}.")
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] < 3:
        raise InputError(f"{label} must be an array of shape (N, 3); got {points.shape}.")
    finite = points[:, :3][np.isfinite(points[:, :3]).all(axis=1)]
    _require_distinct(finite, len(points) - len(finite), label)
    cloud = resample_cloud(_prenormalise(finite), num_points)
    return _centre_and_scale(cloud @ _UP_AXIS_TO_Y[up_axis].T, label)


def _require_distinct(points: np.ndarray, dropped: int, label: str) -> None:
    distinct = _distinct_count(points, MIN_DISTINCT_POINTS) if len(points) else 0
    if distinct >= MIN_DISTINCT_POINTS:
        return
    note = f" ({dropped:,} rows with NaN/inf were dropped)" if dropped else ""
    if distinct == 1:
        raise InputError(f"All points in {label} are identical{note}; it has no shape.")
    raise InputError(
        f"{label} has {distinct} distinct points{note}; at least {MIN_DISTINCT_POINTS} are needed."
    )


def _centre_and_scale(points: np.ndarray, label: str) -> np.ndarray:
    centred = points - points.mean(axis=0)
    radius = float(np.max(np.linalg.norm(centred, axis=1)))
    if not radius > 1e-12:
        raise InputError(f"All points in {label} are identical; it has no shape.")
    return (centred / radius).astype(np.float32)


def load_points(
    source: Source,
    *,
    num_points: int = 8192,
    up_axis: str = "y",
    max_bytes: int = MAX_BYTES,
    format: str | None = None,
) -> np.ndarray:
    """A float32 (num_points, 3) cloud for the ULIP encoder (contract in docs/architecture.md)."""
    raw = read_source(source, max_bytes=max_bytes, kind="3D", format=format)
    fmt = detect_points_format(raw)
    triangles, clouds = _read_geometry(raw, fmt)
    surface = _finite_triangles(triangles)
    if len(surface):
        sampled = sample_surface(_prenormalise(surface), num_points)
        if sampled is not None:
            return normalise_points(
                sampled, num_points=num_points, up_axis=up_axis, label=raw.label
            )
    if not clouds:
        raise InputError(f"{raw.label} is a mesh with no surface area (all faces are degenerate).")
    return normalise_points(
        np.concatenate(clouds), num_points=num_points, up_axis=up_axis, label=raw.label
    )
