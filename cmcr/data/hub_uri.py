"""`hf://datasets/OWNER/NAME[@REVISION][/PATH]`: how a Hub dataset is named wherever a folder or
file is accepted.

PATH is a folder of the repo, one file, or a glob (`cc3m-train-*.tar`, `data/*bal_train/*`).
REVISION is a branch, tag or commit; the `refs/convert/parquet` and `refs/pr/N` revisions contain
slashes and are recognised as the Hub writes them (or URL-encoded, `refs%2Fconvert%2Fparquet`).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from urllib.parse import unquote

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from cmcr.errors import InputError

PREFIX = "hf://"
DATASETS = "hf://datasets/"
SYNTAX = "hf://datasets/OWNER/NAME[@REVISION][/FOLDER, FILE or GLOB]"
GLOB_CHARACTERS = "*?["


@dataclass(frozen=True)
class HubURI:
    """One dataset source on the Hub, as the user wrote it."""

    repo_id: str
    revision: str | None
    path: str  # "" for the whole repo

    @property
    def folder(self) -> str:
        """The deepest folder that holds every file the path can match (what to list)."""
        parts = self.path.split("/") if self.path else []
        fixed = []
        for part in parts:
            if any(char in part for char in GLOB_CHARACTERS):
                return "/".join(fixed)
            fixed.append(part)
        return "/".join(fixed)

    def matches(self, path: str) -> bool:
        """Whether a file of the repo is inside this source: under the folder, the file itself,
        or matched by the glob."""
        if not self.path:
            return True
        if any(char in self.path for char in GLOB_CHARACTERS):
            return fnmatch.fnmatchcase(path, self.path)
        return path == self.path or path.startswith(self.path.rstrip("/") + "/")

    def pinned(self, commit: str) -> str:
        """The URI at a commit: what a run actually read."""
        return f"{DATASETS}{self.repo_id}@{commit}" + (f"/{self.path}" if self.path else "")


def is_hub_uri(text: object) -> bool:
    return isinstance(text, str) and text.startswith(PREFIX)


def parse_hub_uri(text: str) -> HubURI:
    """The parts of `hf://datasets/...`; anything else under hf:// is an InputError naming the syntax."""
    if not text.startswith(DATASETS):
        raise InputError(f"{text!r}: only dataset repos can be read as sources; write {SYNTAX}")
    segments = [segment for segment in text[len(DATASETS):].split("/")]
    if len(segments) < 2 or not segments[0] or not segments[1]:
        raise InputError(f"{text!r} names no repo; write {SYNTAX}")
    owner, name = segments[0], segments[1]
    rest = segments[2:]
    revision = None
    if "@" in name:
        name, revision = name.split("@", 1)
        revision = unquote(revision)
        if revision == "refs" and len(rest) >= 2:  # refs/convert/parquet, refs/pr/1
            revision, rest = "/".join([revision, *rest[:2]]), rest[2:]
        if not revision:
            raise InputError(f"{text!r} has an empty revision after '@'; write {SYNTAX}")
    repo_id = f"{owner}/{name}"
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise InputError(f"{text!r}: {repo_id!r} is not a valid repo id ({error})") from None
    return HubURI(repo_id, revision, "/".join(part for part in rest if part))
