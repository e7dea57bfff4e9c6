"""Every parser under hard caps: crafted headers that lie, and structure-aware fuzzing.

tests/media/test_fuzz.py throws mutated bytes at the media loaders in-process and checks that only
InputError comes out. This module adds what that cannot see: how much memory and time each input
costs. Every case runs in a forked child capped at 512 MB of extra address space and 15 s of
CPU (tests/reliability/sandbox.py, `run_contained` in conftest.py); a case passes when it ends by
itself with a result or one of our own errors, under the caps. The generators build *valid
structure with hostile numbers* (counts, shapes, rates, offsets), which reaches the allocation
paths that random bytes rarely do.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.reliability import bombs
from tests.reliability.conftest import fuzz_settings, run_contained

CLAIM_PEAK_MB = 400  # the largest accepted input here (a 36 MP image) decodes to ~110 MB of RGB
CLAIM_CPU_S = 5  # CPU seconds, not wall time: a refusal must stay cheap whatever the machine's load




# ---- headers that lie -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", list(bombs.CLAIMS))
def test_header_claims_are_refused_or_bounded(sandbox, record, real, name):
    target, build, right = bombs.CLAIMS[name]
    data, fmt = build(real)
    options = {"format": fmt} if fmt else {}
    if target == bombs.POINTS:
        options["num_points"] = 1024
    outcome = run_contained(sandbox, record, "header claims", target, data, seconds=CLAIM_CPU_S, **options)
    assert outcome.peak_mb < CLAIM_PEAK_MB, f"{name}: peak {outcome.peak_mb:.0f} MB"
    assert outcome.kind in right, f"{name}: {outcome}"


# ---- structure-aware generators ---------------------------------------------------------------

HOSTILE_COUNTS = st.one_of(
    st.integers(0, 64), st.sampled_from([2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 10**8, 3_000_001]),
    st.integers(0, 2**64),
)
BODIES = st.binary(max_size=2048)


@st.composite
def ply_files(draw) -> bytes:
    encoding = draw(st.sampled_from(["ascii", "binary_little_endian", "binary_big_endian", "nonsense"]))
    kinds = st.sampled_from(["float", "double", "uchar", "int", "short", "uint", "float64", "bogus"])
    vertex_props = draw(st.lists(st.sampled_from(["x", "y", "z", "nx", "red", "w"]), min_size=0, max_size=6))
    lines = ["ply", f"format {encoding} 1.0", f"element vertex {draw(HOSTILE_COUNTS)}"]
    lines += [f"property {draw(kinds)} {name}" for name in vertex_props]
    if draw(st.booleans()):
        lines += [f"element face {draw(HOSTILE_COUNTS)}",
                  f"property list {draw(kinds)} {draw(kinds)} vertex_indices"]
    lines.append("end_header")
    if encoding == "ascii":
        numbers = st.one_of(st.integers(-(2**40), 2**40), st.floats(allow_nan=True, allow_infinity=True))
        rows = draw(st.lists(st.lists(numbers, max_size=8), max_size=40))
        body = "\n".join(" ".join(str(v) for v in row) for row in rows).encode()
    else:
        body = draw(BODIES)
    return ("\n".join(lines) + "\n").encode() + body


@st.composite
def off_files(draw) -> bytes:
    numbers = st.one_of(st.integers(-5, 2**40), st.floats(allow_nan=True, allow_infinity=True))
    head = f"OFF\n{draw(HOSTILE_COUNTS)} {draw(HOSTILE_COUNTS)} 0\n"
    rows = draw(st.lists(st.lists(numbers, min_size=1, max_size=6), max_size=40))
    return (head + "\n".join(" ".join(str(v) for v in row) for row in rows) + "\n").encode()


@st.composite
def stl_files(draw) -> bytes:
    triangles = draw(st.integers(0, 40))
    claimed = draw(st.one_of(st.just(triangles), HOSTILE_COUNTS.map(lambda n: n % 2**32)))
    floats = draw(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True),
                           min_size=12 * triangles, max_size=12 * triangles))
    body = b"".join(struct.pack("<12fH", *floats[12 * i:12 * i + 12], 0) for i in range(triangles))
    return bytes(80) + struct.pack("<I", claimed) + body


@st.composite
def npy_files(draw) -> bytes:
    shape = tuple(draw(st.lists(st.one_of(st.integers(-2, 64), HOSTILE_COUNTS.map(lambda n: n % 2**63)),
                                max_size=3)))
    descr = draw(st.sampled_from(["<f8", "<f4", "<f2", ">f8", "<i8", "|u1", "|b1", "<c16", "|O", "|V8",
                                  "<U10", "<M8[s]", "bogus"]))
    return bombs.npy_header(shape, descr, draw(st.booleans())) + draw(BODIES)


@st.composite
def wav_files(draw) -> bytes:
    header = bombs.wav_header(
        channels=draw(st.one_of(st.integers(0, 8), st.integers(0, 65535))),
        rate=draw(st.one_of(st.sampled_from([8000, 44100, 48000, 1, 0, 999, 768_001]), st.integers(0, 2**32 - 1))),
        bits=draw(st.sampled_from([0, 1, 4, 8, 12, 16, 24, 32, 64])),
        data_bytes=draw(HOSTILE_COUNTS.map(lambda n: n % 2**32)),
        tag=draw(st.sampled_from([1, 3, 6, 7, 0xFFFE, 0, 2, 17, 85, 0x55])),
    )
    return header + draw(BODIES)


@st.composite
def glb_files(draw) -> bytes:
    count = draw(HOSTILE_COUNTS)
    accessor = {"bufferView": draw(st.integers(-1, 2)), "componentType": draw(st.sampled_from(
        [5120, 5121, 5122, 5123, 5125, 5126, 0, 9999])), "count": count,
        "type": draw(st.sampled_from(["SCALAR", "VEC2", "VEC3", "VEC4", "MAT4", "X"])),
        "byteOffset": draw(st.one_of(st.integers(0, 64), HOSTILE_COUNTS))}
    view = {"buffer": 0, "byteLength": draw(st.one_of(st.integers(0, 96), HOSTILE_COUNTS)),
            "byteStride": draw(st.sampled_from([None, 0, 4, 12, 252, 2**31]))}
    matrix = draw(st.one_of(st.none(), st.lists(st.floats(allow_nan=True, allow_infinity=True),
                                                min_size=16, max_size=16)))
    node = {"mesh": 0, **({"matrix": matrix} if matrix else {})}
    primitive = {"attributes": {"POSITION": 0}, "mode": draw(st.sampled_from([0, 4, 7, 99]))}
    if draw(st.booleans()):
        primitive["indices"] = 0
    document = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0] * draw(st.integers(1, 50))}],
        "nodes": [node], "meshes": [{"primitives": [primitive]}], "accessors": [accessor],
        "bufferViews": [{k: v for k, v in view.items() if v is not None}], "buffers": [{"byteLength": 96}],
    }
    floats = draw(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=24, max_size=24))
    return bombs.glb(document, struct.pack("<24f", *floats))


COORDINATES = st.floats(allow_nan=True, allow_infinity=True, width=64)
CLOUDS = hnp.arrays(np.float64, st.tuples(st.integers(0, 300), st.integers(3, 4)),
                    elements=st.one_of(COORDINATES, st.floats(-1e3, 1e3), st.sampled_from([0.0, 1e308, -1e308])))


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.slow
@fuzz_settings(25)
@given(data=ply_files())
def test_ply_headers(sandbox, record, data):
    run_contained(sandbox, record, "ply headers", "tests.reliability.targets:points_are_sane", data, "ply")


@pytest.mark.slow
@fuzz_settings(25)
@given(data=off_files())
def test_off_headers(sandbox, record, data):
    run_contained(sandbox, record, "off headers", "tests.reliability.targets:points_are_sane", data, "off")


@pytest.mark.slow
@fuzz_settings(25)
@given(data=stl_files())
def test_binary_stl_counts(sandbox, record, data):
    run_contained(sandbox, record, "stl counts", "tests.reliability.targets:points_are_sane", data, "stl")


@pytest.mark.slow
@fuzz_settings(25)
@given(data=npy_files())
def test_npy_headers(sandbox, record, data):
    run_contained(sandbox, record, "npy headers", "tests.reliability.targets:points_are_sane", data, "npy")


@pytest.mark.slow
@fuzz_settings(25)
@given(data=glb_files())
def test_glb_documents(sandbox, record, data):
    run_contained(sandbox, record, "glb documents", "tests.reliability.targets:points_are_sane", data, "glb")


@pytest.mark.slow
@fuzz_settings(25)
@given(data=wav_files())
def test_wav_headers(sandbox, record, data):
    run_contained(sandbox, record, "wav headers", "tests.reliability.targets:audio_is_sane", data)


@pytest.mark.slow
@fuzz_settings(25)
@given(cloud=CLOUDS, as_file=st.sampled_from(["npy", "xyz", "array"]))
def test_nan_inf_and_huge_coordinates(sandbox, record, cloud, as_file):
    if as_file == "array":
        run_contained(sandbox, record, "NaN/inf clouds", "tests.reliability.targets:array_is_normalised", _npy(cloud))
        return
    data = _npy(cloud) if as_file == "npy" else "\n".join(" ".join(repr(v) for v in row) for row in cloud).encode()
    run_contained(sandbox, record, "NaN/inf clouds", "tests.reliability.targets:points_are_sane", data, as_file)
