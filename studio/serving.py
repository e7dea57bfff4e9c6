"""How the page is served, beyond its layout: one limit on model work for the whole app, the REST
shortcut closed, disk reclaimed, and an upload Gradio cannot parse answered with a 400.

- Concurrency: Gradio limits each event listener separately (`default_concurrency_limit` is per
  listener), so every queued listener joins one concurrency group, `MODEL_WORK`: at most
  `--concurrency` requests are computed at once whichever tabs they come from. `Studio.work`
  holds the same limit inside the service.
- REST: `POST /gradio_api/run/<api_name>` skips the queue when `api_open` is on (Gradio's default
  off Spaces); it is off, so that route answers 404 and every request waits in the one queue
  (gradio_client and the browser use the queue anyway).
- Disk: Gradio's cached uploads and served copies are swept on a schedule (`CACHE_SWEEP`: every
  10 min, files older than an hour; all of them at shutdown). A visitor's gallery is deleted when
  their session ends (the browser's heartbeat stops), together with the copies of its files that
  Gradio served and the uploads it was made from; a session without a heartbeat (an API client)
  loses its gallery `Studio.session_ttl_s` after its last addition.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import Request
from fastapi.responses import JSONResponse
from gradio import processing_utils
from gradio.utils import get_upload_folder
from gradio_client.utils import strip_invalid_filename_characters

from studio.session import SessionGallery

log = logging.getLogger("studio.serving")

MODEL_WORK = "model-work"
CACHE_SWEEP = (600, 3600)  # (every how many seconds, files older than how many seconds)


def share_one_limit(demo: gr.Blocks) -> int:
    """Put every queued listener into the `MODEL_WORK` group under the queue's default limit;
    how many joined. Call after the layout is built and before launch."""
    joined = 0
    for fn in demo.fns.values():
        if fn.queue:
            fn.concurrency_id, fn.concurrency_limit = MODEL_WORK, "default"
            joined += 1
    return joined


def served_copies(files: Iterable[Path], cache: Path | None = None) -> list[Path]:
    """Where Gradio's cache holds the copies it served of `files`; only those that exist."""
    copies = []
    for path in files:
        try:
            copy = _copy_path(path, cache)
        except OSError:
            continue
        if copy.is_file():
            copies.append(copy)
    return copies


@functools.lru_cache(maxsize=8)
def shared_copies(folder: Path, cache: Path | None = None) -> frozenset[Path]:
    """Where Gradio serves, or will serve, the files under `folder` (the examples and the default
    gallery every visitor sees). A visitor's upload of one of those files lands on that very path,
    and an example's path is fixed in every page, so a session's clean-up must leave them alone."""
    return frozenset(_copy_path(path, cache) for path in sorted(folder.rglob("*")) if path.is_file())


def _copy_path(path: Path, cache: Path | None) -> Path:
    """Gradio names a cached copy by the content's hash and the file's name."""
    cache = Path(cache or get_upload_folder()).resolve()
    return cache / processing_utils.hash_file(path) / strip_invalid_filename_characters(path.name)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()  # Gradio keeps one file per hash folder; leave a shared one
    except OSError:
        pass


def close_session(gallery: SessionGallery | None, cache: Path | None = None,
                  keep: frozenset[Path] = frozenset()) -> None:
    """Delete a visitor's gallery, the copies of its files Gradio served and the uploads it was
    made from (those in Gradio's upload folder, nothing else), except the paths in `keep`
    (`shared_copies`: what every visitor is served too)."""
    if gallery is None or gallery.closed:
        return
    cache = Path(cache or get_upload_folder()).resolve()
    uploads = [path for path in gallery.sources() if path.resolve().is_relative_to(cache)]
    for path in served_copies(gallery.files(), cache) + uploads:
        if path.resolve() not in keep:
            _remove(path)
    gallery.close()


def close_session_soon(gallery: SessionGallery | None, keep: frozenset[Path] = frozenset()) -> None:
    """`close_session` on a thread of its own: Gradio calls a State's delete callback from its event
    loop, which hashing a gallery's files would hold up for every visitor."""
    if gallery is not None and not gallery.closed:
        threading.Thread(target=close_session, args=(gallery, None, keep), name="close-session", daemon=True).start()


def end_sessions_with_their_visitors(demo: gr.Blocks, studio: Any) -> None:
    """When a browser session ends (its heartbeat stops), delete its gallery at once rather than
    after Gradio's hour for closed sessions."""

    def end(request: gr.Request) -> None:
        gallery = studio.end_session(request.session_hash)
        try:
            close_session(gallery, keep=shared_copies(studio.assets))
        except OSError:
            log.exception("could not delete the gallery of an ended session")
        if gallery is not None:
            log.info("a session ended; its gallery of %d item(s) was deleted", len(gallery))

    demo.unload(end)


async def _unreadable_upload(request: Request, error: TypeError) -> JSONResponse:
    """Gradio's upload route raises TypeError for a multipart part that is not a file (an empty
    file name makes the parser treat it as a plain field): a 400 with a reason, not a 500."""
    if request.url.path.rstrip("/").endswith("/upload"):
        return JSONResponse({"error": "Each uploaded part must be a file with a file name."}, status_code=400)
    log.error("request to %s failed", request.url.path, exc_info=error)
    return JSONResponse({"error": "Internal Server Error"}, status_code=500)


APP_KWARGS = {"exception_handlers": {TypeError: _unreadable_upload}}


def exit_cleanly_on_sigterm() -> None:
    """A stopped Space or container gets SIGTERM: end as on Ctrl-C, so the server closes and the
    exit handlers remove the work folder (Python's default for SIGTERM skips them)."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
