"""Writes that a crash, a kill or a full disk can never leave half done: the project's one helper.

Everything the project saves for others to read (spaces, galleries, feature memories, caches,
downloads) is written beside its final name and renamed into place: a reader sees the old content
or the new, never a mixture, and an interrupted writer leaves at most a hidden temporary behind
(named `.<name>.*`, so folder scans skip it). Files are synced before the rename, so a power loss
cannot leave a renamed but empty file either.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cmcr.errors import InputError


@contextmanager
def replacing(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed over `path` when the block succeeds,
    removed when it fails. `suffix` keeps an extension for writers that dispatch on it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with replacing(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, value: Any, **dumps: Any) -> Path:
    """Strict JSON (no NaN), indented, newline-terminated unless `dumps` says otherwise."""
    options = {"indent": 2, "allow_nan": False, **dumps}
    return write_text(path, json.dumps(value, **options) + "\n")


def check_writable(folder: str | os.PathLike) -> Path:
    """Make sure `folder` can be created or written (tried in its nearest existing ancestor, which is
    where whole-folder swaps stage too), before long work that ends by writing there; an
    `InputError` that says so otherwise. Nothing is left behind."""
    folder = Path(folder).absolute()
    place = next(candidate for candidate in (folder, *folder.parents) if candidate.exists())
    try:
        if not place.is_dir():
            raise NotADirectoryError(20, f"'{place}' is a file")
        with tempfile.TemporaryFile(dir=place):
            pass
    except OSError as error:
        raise InputError(f"Cannot write to '{folder}' ({error.strerror or error}); choose an output folder "
                         "you can write to. Nothing was computed yet.") from None
    return folder


def replace_folder(folder: str | os.PathLike, build: Callable[[Path], None]) -> Path:
    """Build a folder's whole content in a hidden sibling, then swap it in for `folder`."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir()
        build(staging)
        if folder.exists():
            old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(folder, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
