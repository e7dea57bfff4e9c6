"""The allow-listed reader of pickled `.npy` records: numpy data in, nothing else runs."""

from __future__ import annotations

import io
import pickle
import pickletools

import numpy as np
import pytest

from cmcr import InputError
from cmcr.data.media import load_points
from cmcr.data.media.safe_npy import read_npy
from tests.fixtures.media import make_openshape_npy, random_cloud

LIMIT = 10_000_000


def _npy_of_pickle(payload: bytes) -> bytes:
    """A .npy header for a 0-d object array followed by an arbitrary pickle stream."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": ()})
    return buffer.getvalue() + payload


def test_an_openshape_record_reads_as_its_dict(tmp_path):
    cloud = random_cloud(500)
    record = read_npy(make_openshape_npy(tmp_path, cloud).read_bytes(), "rec.npy", max_bytes=LIMIT)
    assert set(record) == {"id", "xyz", "rgb"} and record["id"] == "test"
    np.testing.assert_array_equal(record["xyz"], cloud.astype(np.float16))
    assert load_points(tmp_path / "openshape.npy", num_points=256).shape == (256, 3)


def test_nested_containers_strings_and_numbers_are_admitted():
    record = {"feats": [{"original": np.ones((1, 4), np.float32)}], "caption": "a chair", "n": 3, "f": 0.5,
              "tuple": (1, 2), "xyz": np.zeros((20, 3), np.float16)}
    buffer = io.BytesIO()
    np.save(buffer, np.array(record, dtype=object), allow_pickle=True)
    read = read_npy(buffer.getvalue(), "r.npy", max_bytes=LIMIT)
    assert read["caption"] == "a chair" and read["tuple"] == (1, 2) and read["feats"][0]["original"].shape == (1, 4)


def test_plain_arrays_never_reach_the_unpickler():
    buffer = io.BytesIO()
    np.save(buffer, np.arange(12, dtype=np.float32).reshape(4, 3))
    np.testing.assert_array_equal(read_npy(buffer.getvalue(), "a.npy", max_bytes=LIMIT),
                                  np.arange(12, dtype=np.float32).reshape(4, 3))


@pytest.mark.parametrize("module, name", [("os", "system"), ("builtins", "eval"), ("builtins", "open"),
                                          ("numpy", "load"), ("numpy.testing", "assert_equal"),
                                          ("numpy.core.multiarray", "scalar"), ("subprocess", "Popen")])
@pytest.mark.parametrize("opcode", ["GLOBAL", "STACK_GLOBAL"])
def test_every_other_global_is_refused_before_lookup(module, name, opcode):
    if opcode == "GLOBAL":
        stream = b"c" + module.encode() + b"\n" + name.encode() + b"\n" + b"(S'x'\ntR."
    else:
        stream = (b"\x80\x04" + pickle.dumps(module, 4)[2:-1] + pickle.dumps(name, 4)[2:-1]
                  + b"\x93" + b"(X\x01\x00\x00\x00xtR.")
    pickletools.dis(stream, out=io.StringIO())  # a well-formed pickle: the refusal is ours, not a parse error
    with pytest.raises(InputError, match=f"not plain numpy data.*{module}.{name}"):
        read_npy(_npy_of_pickle(stream), "evil.npy", max_bytes=LIMIT)


def test_an_array_claiming_more_than_the_limit_is_refused_before_allocation():
    # _reconstruct(ndarray, (10**12,), b'b'): what numpy's own pickles call, with a lying shape
    stream = (b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I1000000000000\n"
              b"tC\x01btR.")
    with pytest.raises(InputError, match="claims 1,000,000,000,000 bytes"):
        read_npy(_npy_of_pickle(stream), "huge.npy", max_bytes=LIMIT)


def test_the_array_class_cannot_be_called_to_allocate():
    # ndarray((10**12,), b'b') called directly by REDUCE would allocate 1 TB of address space
    stream = b"cnumpy\nndarray\n((I1000000000000\ntC\x01btR."
    with pytest.raises(InputError, match="could not be read as NPY"):
        read_npy(_npy_of_pickle(stream), "call.npy", max_bytes=LIMIT)


@pytest.mark.parametrize("data", [b"\x93NUMPY\x01\x00", b"\x93NUMPY\x09\x00\x10\x00{}", b"not npy at all"])
def test_damaged_headers_are_input_errors(data):
    with pytest.raises(InputError, match="could not be read as NPY"):
        read_npy(data, "bad.npy", max_bytes=LIMIT)


def test_a_truncated_pickle_is_an_input_error(tmp_path):
    data = make_openshape_npy(tmp_path).read_bytes()
    with pytest.raises(InputError, match="could not be read as NPY"):
        read_npy(data[: len(data) // 2], "cut.npy", max_bytes=LIMIT)
