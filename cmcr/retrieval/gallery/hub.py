"""Galleries on the Hub: a dataset repo mirrors a gallery folder, and a pull fetches only its live
version, so neither side piles up old embeddings."""

from __future__ import annotations

import os

from cmcr.hub import download_file, download_snapshot, push_folder
from cmcr.retrieval.gallery.index import INDEX_FILES
from cmcr.retrieval.gallery.store import Gallery
from cmcr.retrieval.gallery.versions import CURRENT, PREVIEWS, checked_version_name


def push_gallery(root: str | os.PathLike, repo_id: str, *, revision: str | None = None,
                 private: bool = False, endpoint: str | None = None, token: str | None = None) -> str:
    """Upload a saved gallery to a Hub dataset repo; returns the commit URL.

    The repo mirrors the folder: version folders and previews from earlier pushes are deleted in
    the same commit, so repeated pushes do not pile up old embeddings for every pull to download.
    """
    gallery = Gallery.open(root)
    return push_folder(gallery.root, repo_id, private=private, revision=revision, repo_type="dataset",
                       commit_message=f"Upload gallery ({len(gallery)} items)", token=token,
                       endpoint=endpoint, delete_patterns=["v-*", f"{PREVIEWS}/*"],
                       ignore_patterns=[f"v-*/{INDEX_FILES}"],  # local caches, never read from a pull
                       retry_command=f"python scripts/build_gallery.py --out {root} --push-to-hub {repo_id}")


def pull_gallery(repo_id: str, destination: str | os.PathLike, *, revision: str | None = None,
                 cache_dir: str | os.PathLike | None = None, endpoint: str | None = None,
                 token: str | None = None) -> Gallery:
    """Download a gallery from a Hub dataset repo into `destination` (a new folder).

    Only the live version is fetched: `CURRENT` first, then its folder and the previews at the
    same commit, so a push landing in between cannot mix two versions.
    """
    hub = {"repo_type": "dataset", "cache_dir": cache_dir, "endpoint": endpoint, "token": token}
    pointer = download_file(repo_id, CURRENT, revision=revision, **hub)
    version = checked_version_name(pointer.read_text().strip(), repo_id)
    commit = pointer.parent.name  # the cache keeps files under snapshots/<commit sha>/
    snapshot = download_snapshot(repo_id, revision=commit, allow_patterns=[CURRENT, f"{version}/*", f"{PREVIEWS}/*"],
                                 **hub)
    return Gallery.open(snapshot).copy_to(destination)
