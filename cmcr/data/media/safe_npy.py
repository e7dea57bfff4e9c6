""".npy files read without running code, including the pickled OpenShape records.

OpenShape / ULIP-2 clouds (the official C-MCR samples among them) are `.npy` files holding a
pickled dict: `xyz`, `rgb`, feature arrays, captions. `np.load(allow_pickle=True)` would run
whatever a file's pickle asks for, so it is never used on files we did not write. This reader
parses the .npy header itself and, when the payload is a pickle, unpickles it with an allow-list:
numpy arrays and dtypes (the three globals numpy's own array pickles name) plus the containers and
scalars that pickle builds without naming any global (dict, list, str, numbers). Every other
global (`os.system`, `builtins.open`, any class) is refused before it is looked up, so nothing in
the file can run. Array sizes are checked before allocation, so a pickle cannot claim terabytes.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

from cmcr.errors import InputError

NPY_MAGIC = b"\x93NUMPY"
# numpy's pickles name `_reconstruct` from numpy.core (numpy 1) or numpy._core (numpy 2); the
# function itself is whatever this numpy's arrays reduce to.
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]
_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


class _Refused(pickle.UnpicklingError):
    """The pickle asks for something outside the allow-list (as opposed to being damaged)."""


class _ArrayClass:
    """Stands in for `numpy.ndarray` inside the pickle: `_reconstruct` takes the class as an
    argument, but handing a pickle the real class would let it call `ndarray(shape)` and
    allocate whatever it claims."""


def _bounded_reconstruct(max_bytes: int):
    def reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not _ArrayClass:
            raise _Refused("only plain numpy arrays are admitted")
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if size > max_bytes:
            raise _Refused(f"an array claims {size:,} bytes")
        return _RECONSTRUCT(np.ndarray, shape, dtype)

    return reconstruct


class _ArraysOnly(pickle.Unpickler):
    """An unpickler whose globals are numpy's array and dtype builders and nothing else."""

    def __init__(self, stream: io.BytesIO, max_bytes: int) -> None:
        super().__init__(stream)
        self._globals = {("numpy", "ndarray"): _ArrayClass, ("numpy", "dtype"): np.dtype,
                         **{(module, "_reconstruct"): _bounded_reconstruct(max_bytes) for module in _NUMPY_MODULES}}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._globals[(module, name)]
        except KeyError:
            raise _Refused(f"refused global {module}.{name}") from None


def read_npy(data: bytes, label: str, *, max_bytes: int) -> Any:
    """A plain array, or the object an OpenShape-style pickled `.npy` holds (usually a dict).

    Raises InputError for damaged files and for pickles that name anything but numpy arrays.
    """
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version not in _HEADER_READERS:
            raise ValueError(f"format version {version} is not supported")
        shape, _, dtype = _HEADER_READERS[version](stream)
    except (ValueError, OSError, SyntaxError) as error:
        raise _damaged(label, error) from None
    if not dtype.hasobject:
        claimed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        held = len(data) - stream.tell()
        if claimed > held:  # numpy would allocate the claimed size before reading a byte
            raise _damaged(label, ValueError(f"the header claims {claimed:,} bytes of data, the file holds {held:,}"))
        stream.seek(0)
        try:
            return np.load(stream, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise _damaged(label, error) from None
    try:
        payload = _ArraysOnly(stream, max_bytes).load()
    except _Refused as error:
        raise InputError(
            f"{label} holds a pickled Python object that is not plain numpy data ({error}); it is never "
            "loaded (it could run code). Save a plain float array of shape (N, 3) with numpy.save instead."
        ) from None
    except Exception as error:  # noqa: BLE001 - a damaged pickle raises many types
        raise _damaged(label, error) from None
    if isinstance(payload, np.ndarray) and payload.dtype.hasobject and payload.ndim == 0:
        return payload.item()
    return payload


def _damaged(label: str, error: BaseException) -> InputError:
    reason = (str(error).splitlines() or [""])[0][:120] or type(error).__name__
    return InputError(f"{label} could not be read as NPY ({reason}); the file may be damaged.")
