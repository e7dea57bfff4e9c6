"""The app's working folder (default gallery, previews, session galleries): one per process,
removed when the process ends, and the folders of earlier runs that died without removing theirs
(killed, out of memory) removed when the next one starts.

Each folder holds an `owner` file naming its process by pid and start time (a pid alone can be
reused by an unrelated process). A folder whose owner is gone is stale; a folder without an owner
file (written by an older version, or by a run that died within its first instant) is stale once
it is older than `UNOWNED_GRACE_S`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

PREFIX = "cmcr-studio-"
OWNER_FILE = "owner"
UNOWNED_GRACE_S = 600


def _started(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot), None when it does not run."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 of proc(5), counted after the name


def _owner_alive(folder: Path) -> bool:
    try:
        pid, started = (folder / OWNER_FILE).read_text().split()
        return _started(int(pid)) == started
    except (OSError, ValueError):
        return time.time() - folder.stat().st_mtime < UNOWNED_GRACE_S


def remove_stale(parent: Path) -> list[Path]:
    """Remove the work folders under `parent` whose process is gone; the ones removed."""
    removed = []
    for folder in parent.glob(PREFIX + "*"):
        try:
            if folder.is_dir() and not folder.is_symlink() and not _owner_alive(folder):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        except OSError:
            continue  # removed by another starting process meanwhile
    return removed


def claim(parent: Path | None = None) -> Path:
    """A new work folder owned by this process (after removing stale ones beside it)."""
    parent = Path(parent or tempfile.gettempdir())
    remove_stale(parent)
    folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
    (folder / OWNER_FILE).write_text(f"{os.getpid()} {_started(os.getpid())}\n")
    return folder


def keep_newest(folder: Path, count: int) -> None:
    """Delete all but the `count` most recently written files of `folder` (a cache of previews
    that would otherwise grow with every distinct upload)."""
    files = sorted((path for path in folder.iterdir() if path.is_file()), key=_written, reverse=True)
    for path in files[count:]:
        path.unlink(missing_ok=True)


def _written(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0  # deleted meanwhile: first to go
