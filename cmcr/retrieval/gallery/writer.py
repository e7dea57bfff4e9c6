"""One writer per gallery folder, across processes.

Two `build_gallery.py --add` runs on one folder would each save a version built from what they
read, and the second save (and its clean-up of "stale" previews) would silently drop the first
one's items. So a writer takes an exclusive lock for as long as it changes the folder; a second
writer is refused at once with a message that names the holder, rather than waiting an unknown time.
The lock file sits beside the gallery (`.<name>.writer-lock`), so it survives a pull or a copy that
replaces the folder whole and is never pushed with it. It is an OS file lock (`fcntl.flock`): a
killed writer releases it with its process, so a stale lock file never blocks anyone.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cmcr.errors import InputError

@contextmanager
def gallery_writer(root: str | os.PathLike) -> Iterator[None]:
    """Hold the gallery's writer lock for the block, or refuse with the holder's process id."""
    folder = Path(root).absolute()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path(folder), "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise InputError(f"The gallery at '{folder}' is being changed by {holder}; run this again once it "
                             "has finished (two writers at once would lose items).") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_path(root: str | os.PathLike) -> Path:
    folder = Path(root).absolute()
    return folder.parent / f".{folder.name}.writer-lock"
