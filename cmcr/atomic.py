"""Writes that a crash, a kill or a full disk can never leave half done.

Everything the project saves for others to read (spaces, galleries, feature memories, caches) is
written beside its final name and renamed into place: a reader sees the old content or the new,
never a mixture, and an interrupted writer leaves at most a hidden temporary to clean up.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path


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
