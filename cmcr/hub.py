"""The project's one door to the Hugging Face Hub: downloads that survive a missing network, pushes.

Downloads go through huggingface_hub into the standard HF cache. What this module adds:
- an offline path that is fast: a bounded reachability probe first, because when the Hub cannot
  be reached and nothing is cached, the client itself backs off for about 20 s before failing;
- bounded retries of transient failures the client does not retry itself (a 5xx answer to the file
  GET or to the snapshot's revision lookup), within a fixed time budget;
- cache fallback, and a `HubUnavailableError` that says what was asked, why it failed, what to do;
- integrity: the client checks sizes only, so every file handed out is checked against the Hub's
  ETag (sha256 for LFS files, git blob sha1 otherwise) and re-fetched when the cached copy is corrupt.

Tokens come from the argument, else HF_TOKEN, else the cached login (huggingface_hub's own order),
and are never logged or put into messages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx2
from huggingface_hub import HfApi, RepoFile, constants, hf_hub_download, snapshot_download
from huggingface_hub.file_download import http_get
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import get_session

from cmcr.atomic import replacing, write_text
from cmcr.errors import CheckpointError, FileNotOnHubError, HubUnavailableError, InputError
from cmcr.models.registry import ENV_RAW_ENDPOINT, ReleaseFile, raw_endpoint

logger = logging.getLogger(__name__)

SPACE_FILES = ("config.json", "model.safetensors", "README.md")
REQUIRED_SPACE_FILES = ("config.json", "model.safetensors")
PROBE_TIMEOUT_S = 2.0
MAX_ATTEMPTS = 3
FIRST_BACKOFF_S = 0.5
RETRY_BUDGET_S = 15.0
TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)
HASH_CHUNK = 16 * 1024 * 1024
# A file modified less than RACY_S ago is re-hashed every time (no record is kept), so a change
# landing within one timestamp tick of its verification is still seen.
RACY_S = 2.0

_NOT_FOUND = (RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError)
_ONLINE_FAILURES = (httpx2.TransportError, HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled)


@dataclass(frozen=True)
class _Request:
    """What was asked for, in the words error messages need."""

    repo_id: str
    repo_type: str
    revision: str | None
    what: str
    cache_dir: Path | None
    endpoint: str
    token: str | None

    def describe(self) -> str:
        return f"{self.what} of {self.repo_type} repo '{self.repo_id}' (revision '{self.revision or 'main'}')"

    def client_args(self) -> dict:
        return {"repo_type": self.repo_type, "cache_dir": self.cache_dir, "endpoint": self.endpoint,
                "token": self.token}


def _endpoint(endpoint: str | None) -> str:
    return (endpoint or constants.ENDPOINT).rstrip("/")


def is_offline(endpoint: str | None = None, *, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when HF_HUB_OFFLINE is set or the Hub does not answer within `timeout` seconds.

    Any HTTP answer counts as reachable: the probe asks whether to try the network at all, not
    whether a given repo exists. It goes through huggingface_hub's HTTP session, so proxies apply.
    """
    if constants.is_offline_mode():
        return True
    try:
        get_session().head(_endpoint(endpoint), timeout=timeout, follow_redirects=False)
    except (httpx2.TransportError, OfflineModeIsEnabled):
        return True
    return False


def download_file(repo_id: str, filename: str, *, revision: str | None = None, repo_type: str = "model",
                  cache_dir: str | Path | None = None, endpoint: str | None = None,
                  token: str | None = None, local_files_only: bool = False) -> Path:
    """Path of `filename` from the Hub (or the cache when the Hub is unreachable), verified."""
    request = _Request(repo_id, repo_type, revision, f"'{filename}'", _as_path(cache_dir), _endpoint(endpoint),
                       token)

    def fetch(**options) -> str:
        return hf_hub_download(repo_id, filename, revision=revision, **request.client_args(), **options)

    return _obtain(request, fetch, local_files_only=local_files_only)


def download_snapshot(repo_id: str, *, revision: str | None = None, repo_type: str = "model",
                      allow_patterns: list[str] | str | None = None, cache_dir: str | Path | None = None,
                      endpoint: str | None = None, token: str | None = None, local_files_only: bool = False) -> Path:
    """Folder holding the repo's files at one commit (those matching `allow_patterns`), verified."""
    what = "the files" if allow_patterns is None else f"the files matching {allow_patterns}"
    request = _Request(repo_id, repo_type, revision, what, _as_path(cache_dir), _endpoint(endpoint), token)

    def fetch(**options) -> str:
        return snapshot_download(repo_id, revision=revision, allow_patterns=allow_patterns,
                                 **request.client_args(), **options)

    return _obtain(request, fetch, local_files_only=local_files_only)


def download_space(repo_id: str, revision: str | None = None, *, cache_dir: str | Path | None = None,
                   endpoint: str | None = None, token: str | bool | None = None,
                   local_files_only: bool = False) -> Path:
    """Folder with a trained space's config.json, model.safetensors and README.md, all of one commit.

    Only those files are fetched: a space repo may hold other things (plots, pickles) that loading
    must never touch.
    """
    folder = download_snapshot(repo_id, revision=revision, allow_patterns=list(SPACE_FILES), cache_dir=cache_dir,
                               endpoint=endpoint, token=token, local_files_only=local_files_only)
    missing = [name for name in REQUIRED_SPACE_FILES if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"Hub repo '{repo_id}' (revision '{revision or 'main'}') is not a C-MCR space: "
                              f"it has no {' or '.join(missing)}. Check the repo id, or push a space saved with "
                              "UnifiedSpace.save_pretrained.")
    return folder


@dataclass(frozen=True)
class RepoListing:
    """The files of a repo folder at the commit a revision resolved to (a branch moves; a commit
    does not, so everything read from the listing is pinned to `commit`)."""

    repo_id: str
    repo_type: str
    revision: str
    commit: str
    files: tuple[tuple[str, int], ...]  # (path in the repo, size in bytes), sorted by path


def list_repo_files(repo_id: str, *, revision: str | None = None, folder: str = "", repo_type: str = "dataset",
                    endpoint: str | None = None, token: str | None = None) -> RepoListing:
    """Resolve `revision` to its commit and list every file under `folder` at that commit.

    A listing is never cached: it needs the Hub, and an unreachable Hub is a HubUnavailableError
    that says so (the probe answers in seconds, where the client would back off for a minute).
    """
    request = _Request(repo_id, repo_type, revision, "the file listing", None, _endpoint(endpoint), token)
    if is_offline(request.endpoint):
        raise HubUnavailableError(_listing_unavailable(request, ConnectionError(
            "HF_HUB_OFFLINE is set" if constants.is_offline_mode() else
            f"{request.endpoint} failed a {PROBE_TIMEOUT_S:.0f}-second reachability check")))
    api = HfApi(endpoint=request.endpoint, token=token)

    def tree(path: str, commit: str, recursive: bool) -> list[tuple[str, int]]:
        entries = api.list_repo_tree(repo_id, path or None, recursive=recursive, revision=commit, repo_type=repo_type)
        return sorted((entry.path, entry.size) for entry in entries if isinstance(entry, RepoFile))

    def listing() -> RepoListing:
        commit = api.repo_info(repo_id, revision=revision, repo_type=repo_type).sha
        try:
            files = tree(folder, commit, recursive=True)
        except RemoteEntryNotFoundError:  # not a folder: perhaps a file, listed in its parent folder
            files = [entry for entry in tree(folder.rpartition("/")[0], commit, recursive=False) if entry[0] == folder]
            if not files:
                raise
        return RepoListing(repo_id, repo_type, revision or constants.DEFAULT_REVISION, commit, tuple(files))

    try:
        return _with_retries(listing, request.describe())
    except RemoteEntryNotFoundError as error:
        raise InputError(f"{repo_type} repo '{repo_id}' (revision '{request.revision or 'main'}') has no file or "
                         f"folder '{folder}'.") from error
    except _NOT_FOUND as error:
        raise InputError(_not_found_message(request, error).replace("Cannot download", "Cannot list")) from error
    except _ONLINE_FAILURES as error:
        raise HubUnavailableError(_listing_unavailable(request, error)) from error


def _listing_unavailable(request: _Request, error: BaseException) -> str:
    return (f"Cannot list the files of {request.repo_type} repo '{request.repo_id}' (revision "
            f"'{request.revision or 'main'}'): the Hugging Face Hub at {request.endpoint} is unavailable "
            f"({_reason(error)}), and a dataset source needs it to list its files when a run starts. To fix: "
            "check the network connection or set HF_ENDPOINT to a reachable Hub mirror; for a private or gated "
            "repo log in (`hf auth login`) or set HF_TOKEN; or download the files where the Hub is reachable "
            f"(`hf download {request.repo_id} --repo-type {request.repo_type}`) and give their local folder instead.")


def release_cache_dir() -> Path:
    """Where release files (the official projectors) are kept: beside the Hub cache in HF_HOME, so
    one setting (a Space's persistent /data, a shared disk) covers every download."""
    return Path(constants.HF_HOME) / "cmcr" / "releases"


def download_release_file(file: ReleaseFile, *, cache_dir: str | Path | None = None,
                          endpoint: str | None = None) -> Path:
    """Path of a pinned git file (e.g. an official projector), downloaded once and verified.

    The file is kept under `<cache>/<repo>/<commit>/<path>` and handed out only while it hashes to
    its git blob id; a damaged copy is fetched again. Offline (HF_HUB_OFFLINE, or the host fails a
    reachability check) a verified copy is used, else HubUnavailableError says how to fetch it.
    """
    endpoint = (endpoint or raw_endpoint()).rstrip("/")
    target = Path(cache_dir or release_cache_dir()) / file.repo / file.commit / file.path
    if target.is_file() and _blob_id(target) == file.blob:
        return target
    url = file.url(endpoint)
    if is_offline(endpoint):
        state = "the cached copy is damaged" if target.exists() else "nothing is cached"
        reason = "HF_HUB_OFFLINE is set" if constants.is_offline_mode() else f"{endpoint} is unreachable"
        raise HubUnavailableError(f"Cannot get {file.name} ({file.repo} @ {file.commit[:7]}): {reason} and "
                                  f"{state} in {target.parent}. {_release_advice(file, target)}")
    try:
        _with_retries(lambda: _fetch_release(url, target, file), f"download of {url}", transient=_is_server_error)
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status in (401, 403, 404, 410):
            raise CheckpointError(f"{url} answered HTTP {status}: the pinned file {file.path} of {file.repo} @ "
                                  f"{file.commit} is not there. If you use a mirror ({ENV_RAW_ENDPOINT}), check "
                                  "that it holds it.") from error
        raise HubUnavailableError(f"Downloading {url} failed: {_reason(error)}. {_release_advice(file, target)}") \
            from error
    except (httpx2.TransportError, OSError) as error:
        raise HubUnavailableError(f"Downloading {url} failed: {_reason(error)}. {_release_advice(file, target)}") \
            from error
    return target


def _fetch_release(url: str, target: Path, file: ReleaseFile) -> str:
    """Stream `url` into a temporary file beside `target`, check its blob id, then swap it in."""
    with replacing(target, suffix=".part") as partial:
        with partial.open("wb") as stream:
            http_get(url, stream, displayed_filename=file.name)
        got = _blob_id(partial)
        if got != file.blob:
            raise CheckpointError(f"{url} served a file whose git blob id is {got}, not the pinned {file.blob}: "
                                  "the host or a proxy is serving other bytes. Nothing was kept; try again later.")
    return str(target)


def _blob_id(path: Path) -> str:
    """git's object id of a file (what the Hub sends as ETag for non-LFS files): sha1 over
    `blob <size>` and a NUL byte, then the content."""
    return _file_digest(path, hashlib.sha1(b"blob %d\0" % path.stat().st_size))


def _file_digest(path: Path, digest) -> str:
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _release_advice(file: ReleaseFile, target: Path) -> str:
    return (f"To fix: check the network connection, or set {ENV_RAW_ENDPOINT} to a mirror of "
            f"raw.githubusercontent.com, or download {file.page()} yourself (e.g. `curl -L -o {target} "
            f"{file.url()}`) where it is reachable.")


def push_folder(folder: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
                repo_type: str = "model", commit_message: str = "Upload C-MCR space", token: str | None = None,
                endpoint: str | None = None, retry_command: str | None = None,
                delete_patterns: list[str] | None = None, ignore_patterns: list[str] | None = None) -> str:
    """Upload every file of `folder` as one commit; returns the commit URL (it ends with the sha).

    Creates the repo (with `private`, ignored if it exists) and the branch `revision` when missing.
    Remote files matching `delete_patterns` that `folder` does not hold are deleted in the same
    commit, so a repo can mirror a folder whose file names change from one version to the next;
    files matching `ignore_patterns` stay local.
    Uploading only reads `folder`, so a failure leaves it intact; the error names `retry_command`
    (the caller's CLI line) or, by default, the Python call that retries.
    """
    folder = Path(folder)
    if not folder.is_dir() or not any(p.is_file() for p in folder.rglob("*")):
        raise InputError(f"Nothing to push: '{folder}' is not a folder with files in it.")
    api = HfApi(endpoint=_endpoint(endpoint), token=token)
    retry_command = retry_command or (f"cmcr.hub.push_folder({str(folder)!r}, {repo_id!r}, revision={revision!r}, "
                                      f"repo_type={repo_type!r})")

    def push() -> str:
        api.create_repo(repo_id, private=private, repo_type=repo_type, exist_ok=True)
        if revision not in (None, constants.DEFAULT_REVISION):
            api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
        commit = api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type=repo_type, revision=revision,
                                   commit_message=commit_message, delete_patterns=delete_patterns,
                                   ignore_patterns=ignore_patterns)
        return commit.commit_url

    try:
        return _with_retries(push, f"push of {folder} to '{repo_id}'")
    except _ONLINE_FAILURES as error:
        raise HubUnavailableError(
            f"Pushing {folder} to {repo_type} repo '{repo_id}' (branch '{revision or 'main'}') on "
            f"{_endpoint(endpoint)} failed: {_reason(error)}. {_push_advice(error)} Your local files in {folder} "
            f"are untouched. Retry with: {retry_command}") from error


def _obtain(request: _Request, fetch: Callable[..., str], *, local_files_only: bool = False) -> Path:
    """Online with bounded retries when the Hub answers the probe, else (or after failing) the cache."""
    online_error: BaseException | None = None
    if local_files_only:
        online_error = ConnectionError("local_files_only=True was asked for")
    elif is_offline(request.endpoint):
        online_error = ConnectionError("HF_HUB_OFFLINE is set" if constants.is_offline_mode() else
                                       f"{request.endpoint} failed a {PROBE_TIMEOUT_S:.0f}-second reachability check")
    else:
        try:
            return _verified(request, Path(_with_retries(fetch, request.describe())), online=True)
        except _NOT_FOUND as error:
            kind = FileNotOnHubError if isinstance(error, RemoteEntryNotFoundError) else CheckpointError
            raise kind(_not_found_message(request, error)) from error
        except _ONLINE_FAILURES as error:
            online_error = error
    logger.warning("Hub unavailable (%s); looking for %s in the local cache.", _reason(online_error),
                   request.describe())
    try:
        path = Path(fetch(local_files_only=True))
    except LocalEntryNotFoundError as error:
        raise HubUnavailableError(_unavailable_message(request, online_error, "nothing usable is cached")) from error
    return _verified(request, path, online=False)


def _with_retries(call: Callable[[], str], what: str,
                  transient: Callable[[BaseException], bool] | None = None) -> str:
    """Retry transient Hub failures with exponential backoff, within RETRY_BUDGET_S overall."""
    transient = transient or _is_transient
    deadline = time.monotonic() + RETRY_BUDGET_S
    attempt = 1
    while True:
        try:
            return call()
        except _ONLINE_FAILURES as error:
            if not transient(error) or attempt == MAX_ATTEMPTS or time.monotonic() > deadline:
                raise
            wait = FIRST_BACKOFF_S * 2 ** (attempt - 1)
            logger.warning("Transient Hub failure during %s (%s); retry %d in %.1f s.", what, _reason(error),
                           attempt, wait)
            time.sleep(wait)
            attempt += 1


def _is_server_error(error: BaseException) -> bool:
    """For plain-file downloads, whose client already resumes after network failures itself."""
    return isinstance(error, HfHubHTTPError) and error.response is not None \
        and error.response.status_code in TRANSIENT_STATUS


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, _NOT_FOUND):
        return False
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        return error.response.status_code in TRANSIENT_STATUS
    return isinstance(error, (httpx2.TransportError, LocalEntryNotFoundError))


def _verified(request: _Request, path: Path, *, online: bool) -> Path:
    """`path` once every file under it matches its ETag; corrupt files are re-fetched when online."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if _intact(file):
            continue
        failure: BaseException = ConnectionError("the Hub is unreachable")
        if online:
            logger.warning("Cached %s does not match the Hub's checksum; downloading it again.", file)
            try:
                _refetch(request, file)
                continue
            except (*_ONLINE_FAILURES, ValueError) as error:  # ValueError: the client's "force download failed"
                failure = error
        raise HubUnavailableError(_unavailable_message(request, failure,
                                                       f"the cached copy of {file.name} is corrupt"))
    return path


def _refetch(request: _Request, file: Path) -> None:
    snapshot = next(p for p in file.parents if p.parent.name == "snapshots")
    filename = file.relative_to(snapshot).as_posix()
    _with_retries(lambda: hf_hub_download(request.repo_id, filename, revision=snapshot.name, force_download=True,
                                          **request.client_args()), f"re-download of {filename}")
    if not _intact(file):
        raise CheckpointError(f"'{filename}' of Hub repo '{request.repo_id}' does not match the checksum the Hub "
                              "announces, even after downloading it again. The Hub or a proxy is serving a "
                              "damaged file; try again later or report it to the repo owner.")


def _intact(file: Path) -> bool:
    """Whether the cached blob behind `file` hashes to its name (the ETag the cache stored it under).

    A blob that hashed right is recorded (`verified_dir()`) with its path, size, mtime and inode, so
    later starts skip re-hashing multi-GB checkpoints until the file changes. Files the cache keeps
    as plain copies (no symlinks) or under another ETag format are trusted.
    """
    blob = file.resolve()
    etag = blob.name
    stat = blob.stat()
    stamp = json.dumps([str(blob), stat.st_size, stat.st_mtime_ns, stat.st_ino])
    record = verified_dir() / etag
    if record.is_file() and record.read_text() == stamp:
        return True
    if re.fullmatch(r"[0-9a-f]{64}", etag):
        digest = _file_digest(blob, hashlib.sha256())
    elif re.fullmatch(r"[0-9a-f]{40}", etag):
        digest = _blob_id(blob)
    else:
        return True
    if digest != etag:
        return False
    if time.time_ns() - stat.st_mtime_ns > RACY_S * 1e9:
        write_text(record, stamp)
    return True


def verified_dir() -> Path:
    """Where the records of verified cache blobs live (beside the Hub cache, in HF_HOME)."""
    return Path(constants.HF_HOME) / "cmcr" / "verified"


def _as_path(cache_dir: str | Path | None) -> Path | None:
    return Path(cache_dir) if cache_dir is not None else None


def _reason(error: BaseException | None) -> str:
    """One line about why the Hub failed; never contains request headers, so never a token."""
    if isinstance(error, (LocalEntryNotFoundError, ValueError)) and error.__cause__ is not None:
        return _reason(error.__cause__)  # the client wraps the real network failure
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        return f"the Hub answered HTTP {error.response.status_code}"
    if isinstance(error, httpx2.TransportError):
        return f"could not reach the Hub ({type(error).__name__}: {error})"
    return f"{type(error).__name__}: {error}".splitlines()[0]


def _push_advice(error: BaseException) -> str:
    status = error.response.status_code if isinstance(error, HfHubHTTPError) and error.response is not None else None
    if status in (401, 403):
        return ("The Hub refused the credentials: log in with `hf auth login` or set HF_TOKEN to a token with "
                "write access to this namespace.")
    if status is not None and status >= 500:
        return "The Hub had a server error; try again in a few minutes."
    return "Check your connection, or set HF_ENDPOINT to a reachable Hub."


def _not_found_message(request: _Request, error: BaseException) -> str:
    if isinstance(error, RemoteEntryNotFoundError):
        problem = f"the repo has no {request.what} at that revision"
    elif isinstance(error, RevisionNotFoundError):
        problem = "that revision (branch, tag or commit) does not exist"
    else:
        problem = ("the repo does not exist, or it is private or gated and no valid token was sent "
                   "(log in with `hf auth login` or set HF_TOKEN)")
    return f"Cannot download {request.describe()} from {request.endpoint}: {problem}."


def _unavailable_message(request: _Request, error: BaseException | None, cache_state: str) -> str:
    cache = request.cache_dir or Path(constants.HF_HUB_CACHE)
    return (f"Cannot get {request.describe()}: the Hugging Face Hub at {request.endpoint} is unavailable "
            f"({_reason(error)}) and {cache_state} in {cache}. To fix: check the network connection or set "
            f"HF_ENDPOINT to a reachable Hub mirror; for a private repo log in (`hf auth login`) or set HF_TOKEN; "
            f"or pre-download it where the Hub is reachable (`hf download {request.repo_id} --repo-type "
            f"{request.repo_type} --revision {request.revision or 'main'}`) and copy the cache folder here.")
