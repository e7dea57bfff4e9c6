"""Turn whatever a caller hands us (path, bytes, binary file object) into bounded bytes.

Every loader reads its input through `read_source` so that the size limit is enforced before any
decoder sees the data: a path is checked with `stat`, a file object is read at most one byte past
the limit, and nothing is ever decoded from a source we have not bounded first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cmcr.errors import InputError

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


@dataclass(frozen=True)
class SourceBytes:
    """The raw content of one input plus the lower-case format hint taken from its name, if any."""

    data: bytes
    hint: str | None
    label: str


def decoder_reason(error: Exception) -> str:
    """One short line from a decoder's exception, for the "(...)" detail of an InputError: enough
    for a person to report, never a traceback."""
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__


def format_hint(name: str | None) -> str | None:
    """The lower-case suffix of a file name without the dot ('.PLY' -> 'ply'), or None."""
    if not name:
        return None
    suffix = Path(str(name)).suffix.lower().lstrip(".")
    return suffix or None


def _describe_bytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 1e5 else f"{count} bytes"


def _too_big(label: str, size: int, max_bytes: int) -> InputError:
    return InputError(
        f"{label} is {_describe_bytes(size)}; the limit is {_describe_bytes(max_bytes)}. "
        "Please upload a smaller file."
    )


def _read_path(path: Path, max_bytes: int, kind: str) -> bytes:
    if not path.is_file():
        raise InputError(f"No {kind} file found at '{path}'.")
    size = path.stat().st_size
    if size > max_bytes:
        raise _too_big(f"The {kind} file '{path.name}'", size, max_bytes)
    return path.read_bytes()


def _read_stream(stream: BinaryIO, max_bytes: int, kind: str) -> bytes:
    data = stream.read(max_bytes + 1)
    if not isinstance(data, (bytes, bytearray)):
        raise InputError(f"The {kind} must be opened in binary mode ('rb'), not as text.")
    if len(data) > max_bytes:
        raise _too_big(f"The {kind} file", len(data), max_bytes)
    return bytes(data)


def read_source(
    source: Source, *, max_bytes: int, kind: str, format: str | None = None
) -> SourceBytes:
    """Read `source` into memory, refusing anything over `max_bytes` before decoding starts.

    `kind` ("audio", "image", "3D") only words the messages. `format` overrides the name hint.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > max_bytes:
            raise _too_big(f"The {kind} data", len(data), max_bytes)
        name = None
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        data = _read_path(path, max_bytes, kind)
        name = path.name
    elif hasattr(source, "read"):
        data = _read_stream(source, max_bytes, kind)
        name = getattr(source, "name", None)
        name = name if isinstance(name, str) else None
    else:
        raise InputError(
            f"Cannot read {kind} from a {type(source).__name__}; "
            "give a file path, raw bytes or a binary file object."
        )
    if not data:
        raise InputError(f"The {kind} file is empty.")
    hint = format.lower().lstrip(".") if format else format_hint(name)
    label = f"'{name}'" if name else f"the {kind} data"
    return SourceBytes(data=data, hint=hint, label=label)
