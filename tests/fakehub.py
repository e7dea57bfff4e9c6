"""A loopback fake Hugging Face Hub for tests, in stdlib `http.server`.

The real `huggingface_hub` client (downloads, snapshots, repo creation, branches, commits) talks
to it exactly as it talks to huggingface.co, so our Hub code is tested without mocks and without a
network. It implements only what the client needs (see huggingface_hub's file_download.py,
_snapshot_download.py, hf_api.py, _commit_api.py), with real commits: every commit gets a 40-hex
sha, branches point at commits, and old revisions stay downloadable. Every upload is answered
`uploadMode: "regular"` and no response carries Xet headers, so the client never tries Xet.

Faults can be injected (HTTP errors, bodies cut off mid-way, slow answers) to test retry and
offline paths. Authorization headers are recorded so tests can check that a token was sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

REPO_TYPES = ("model", "dataset", "space")
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
# Files the real Hub stores with Git LFS: their HEAD answers carry the sha256 as X-Linked-Etag.
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npy", ".npz", ".h5", ".onnx", ".parquet",
                ".tar", ".arrow")
LFS_MIN_SIZE = 10 * 1024 * 1024
API_ACTIONS = ("revision", "tree", "preupload", "commit", "branch", "refs")
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.pt filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha1(content: bytes) -> str:
    """The git object id of a file: what the Hub sends as ETag for files not stored in LFS."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def is_lfs(path: str, size: int) -> bool:
    return path.endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class HubError(Exception):
    """An error answer: status, X-Error-Code and a message."""

    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None):
        super().__init__(message)
        self.status, self.code, self.commit = status, code, commit


class RepoStore:
    """Repositories on disk: content-addressed blobs, commit records and branch refs.

    Layout: `blobs/<sha256>`, `<type>s/<repo_id>/{meta.json, refs.json, commits/<sha>.json}`.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self._lock = threading.RLock()

    def _dir(self, repo_type: str, repo_id: str) -> Path:
        return self.root / f"{repo_type}s" / repo_id

    def _read(self, path: Path) -> dict:
        return json.loads(path.read_text())

    def exists(self, repo_type: str, repo_id: str) -> bool:
        return (self._dir(repo_type, repo_id) / "meta.json").is_file()

    def meta(self, repo_type: str, repo_id: str) -> dict:
        if not self.exists(repo_type, repo_id):
            raise HubError(404, "RepoNotFound", f"Repository {repo_id} not found")
        return self._read(self._dir(repo_type, repo_id) / "meta.json")

    def refs(self, repo_type: str, repo_id: str) -> dict[str, str]:
        self.meta(repo_type, repo_id)
        return self._read(self._dir(repo_type, repo_id) / "refs.json")

    def create(self, repo_type: str, repo_id: str, *, private: bool = False, initial: bool = True) -> bool:
        """Create a repo (with the Hub's initial `.gitattributes` commit); False if it exists."""
        with self._lock:
            if self.exists(repo_type, repo_id):
                return False
            repo_dir = self._dir(repo_type, repo_id)
            (repo_dir / "commits").mkdir(parents=True)
            (repo_dir / "refs.json").write_text(json.dumps({}))
            (repo_dir / "meta.json").write_text(json.dumps({"private": private, "created": _now()}))
            if initial:
                self.commit(repo_type, repo_id, "main", "initial commit", {".gitattributes": GITATTRIBUTES})
            return True

    def resolve(self, repo_type: str, repo_id: str, revision: str) -> str:
        refs = self.refs(repo_type, repo_id)
        name = revision.removeprefix("refs/heads/")
        if name in refs:
            return refs[name]
        if re.fullmatch(r"[0-9a-f]{40}", revision) and self._commit_path(repo_type, repo_id, revision).is_file():
            return revision
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    def _commit_path(self, repo_type: str, repo_id: str, sha: str) -> Path:
        return self._dir(repo_type, repo_id) / "commits" / f"{sha}.json"

    def commit_record(self, repo_type: str, repo_id: str, sha: str) -> dict:
        return self._read(self._commit_path(repo_type, repo_id, sha))

    def files(self, repo_type: str, repo_id: str, sha: str) -> dict[str, str]:
        """Path -> sha256 of every file at a commit."""
        return self.commit_record(repo_type, repo_id, sha)["files"]

    def blob(self, sha256: str) -> bytes:
        return (self.root / "blobs" / sha256).read_bytes()

    def commit(self, repo_type: str, repo_id: str, branch: str, message: str, additions: dict[str, bytes],
               deletions: tuple[str, ...] = (), parent: str | None = None) -> str:
        """Write one commit on `branch` (created when the repo has no commit yet) and return its sha."""
        with self._lock:
            refs = self.refs(repo_type, repo_id)
            if refs and branch not in refs:
                raise HubError(404, "RevisionNotFound", f"Invalid rev id: {branch}")
            head = refs.get(branch)
            if parent is not None and parent != head:
                raise HubError(412, None, f"Parent commit {parent} is not the head of {branch}")
            files = dict(self.files(repo_type, repo_id, head)) if head else {}
            for path in deletions:
                files = {p: s for p, s in files.items() if p != path and not p.startswith(path.rstrip("/") + "/")}
            for path, content in additions.items():
                digest = hashlib.sha256(content).hexdigest()
                (self.root / "blobs").mkdir(parents=True, exist_ok=True)
                (self.root / "blobs" / digest).write_bytes(content)
                files[path] = digest
            record = {"parent": head, "message": message, "files": files, "date": _now()}
            sha = hashlib.sha1(json.dumps([record, time.time_ns()]).encode()).hexdigest()
            self._commit_path(repo_type, repo_id, sha).write_text(json.dumps(record))
            self._write_ref(repo_type, repo_id, branch, sha)
            return sha

    def create_branch(self, repo_type: str, repo_id: str, branch: str, start: str | None) -> None:
        with self._lock:
            if branch in self.refs(repo_type, repo_id):
                raise HubError(409, None, f"Reference refs/heads/{branch} already exists")
            self._write_ref(repo_type, repo_id, branch, self.resolve(repo_type, repo_id, start or "main"))

    def _write_ref(self, repo_type: str, repo_id: str, branch: str, sha: str) -> None:
        refs = self.refs(repo_type, repo_id)
        refs[branch] = sha
        (self._dir(repo_type, repo_id) / "refs.json").write_text(json.dumps(refs))

    def history(self, repo_type: str, repo_id: str, revision: str = "main") -> list[dict]:
        """Commits reachable from `revision`, newest first, each with its `sha`."""
        sha, commits = self.resolve(repo_type, repo_id, revision), []
        while sha:
            record = self.commit_record(repo_type, repo_id, sha)
            commits.append({"sha": sha, **record})
            sha = record["parent"]
        return commits


@dataclass
class Fault:
    """One armed fault: applies to the next `count` requests matching `method` and `path`."""

    kind: str  # "status" | "cut" | "delay"
    count: float
    value: float
    method: str | None = None
    path: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method in (None, method)) and (self.path is None or self.path in path)


@dataclass
class SeenRequest:
    method: str
    path: str
    authorization: str | None


@dataclass
class FaultPlan:
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def take(self, kind: str, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.kind == kind and fault.count > 0 and fault.matches(method, path):
                    fault.count -= 1
                    return fault
        return None


class FakeHub(ThreadingHTTPServer):
    """The server: `FakeHub(storage_root, port).start()`; `url` is what HF_ENDPOINT should hold."""

    daemon_threads = True

    def __init__(self, storage_root: Path, port: int = 0):
        super().__init__(("127.0.0.1", port), _Handler)
        self.store = RepoStore(storage_root)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.plan = FaultPlan()
        self.seen: list[SeenRequest] = []
        self._thread: threading.Thread | None = None

    def start(self) -> FakeHub:
        self._thread = threading.Thread(target=self.serve_forever, name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    # -- fault injection ---------------------------------------------------------------------
    def fail_next(self, count: int = 1, status: int = 500, *, method: str | None = None,
                  path: str | None = None) -> None:
        """Answer the next `count` matching requests with `status` (e.g. 500, 503)."""
        self.plan.arm(Fault("status", count, status, method, path))

    def cut_next_download(self, count: int = 1, after_bytes: int = 16, *, path: str | None = None) -> None:
        """Close the connection after `after_bytes` of the next `count` file bodies (GET /resolve)."""
        self.plan.arm(Fault("cut", count, after_bytes, "GET", path))

    def slow_down(self, seconds: float, count: float = float("inf"), *, method: str | None = None,
                  path: str | None = None) -> None:
        """Wait `seconds` before answering each of the next `count` matching requests."""
        self.plan.arm(Fault("delay", count, seconds, method, path))

    def clear_faults(self) -> None:
        with self.plan.lock:
            self.plan.faults.clear()

    def authorizations(self) -> list[str]:
        """Every Authorization header received, in order (None-free)."""
        return [seen.authorization for seen in self.seen if seen.authorization]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeHub

    def log_message(self, format: str, *args) -> None:
        """Silence stderr: requests are recorded in `server.seen` instead."""

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        auth = self.headers.get("Authorization")
        self.server.seen.append(SeenRequest(self.command, url.path, auth))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        delay = self.server.plan.take("delay", self.command, url.path)
        if delay:
            time.sleep(delay.value)
        failure = self.server.plan.take("status", self.command, url.path)
        try:
            if failure:
                raise HubError(int(failure.value), None, "Injected failure")
            self._route(url.path, parse_qs(url.query), body, auth)
        except (KeyError, IndexError, ValueError) as error:  # a malformed request, as the Hub answers it
            self._send_json({"error": f"Bad request: {error!r}"}, 400)
        except HubError as error:
            self._send_json({"error": str(error)}, error.status, error.code, error.commit)

    def _route(self, path: str, query: dict, body: bytes, auth: str | None) -> None:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if self.command == "POST" and parts[:2] == ["api", "validate-yaml"]:
            return self._send_json({"errors": [], "warnings": []})
        if self.command == "POST" and parts[:3] == ["api", "repos", "create"]:
            return self._create_repo(json.loads(body or b"{}"), auth)
        if parts[0] == "api" and len(parts) >= 3 and parts[1].rstrip("s") in REPO_TYPES:
            return self._api(parts[1].rstrip("s"), parts[2:], query, body, auth)
        repo_type = {"datasets": "dataset", "spaces": "space"}.get(parts[0], "model")
        rest = parts[1:] if repo_type != "model" else parts
        if "resolve" in rest[1:3] and self.command in ("GET", "HEAD"):
            at = rest.index("resolve")
            return self._resolve(repo_type, "/".join(rest[:at]), rest[at + 1], "/".join(rest[at + 2:]), auth)
        raise HubError(404, None, f"No route for {self.command} {path}")

    def _api(self, repo_type: str, rest: list[str], query: dict, body: bytes, auth: str | None) -> None:
        split = 1 if len(rest) >= 2 and rest[1] in API_ACTIONS else 2
        repo_id, action, args = "/".join(rest[:split]), rest[split:split + 1], rest[split + 1:]
        self._check_read(repo_type, repo_id, auth)
        route = (self.command, action[0] if action else "")
        if route in (("GET", ""), ("GET", "revision")):
            return self._repo_info(repo_type, repo_id, args[0] if args else "main", "blobs" in query)
        if route == ("GET", "tree"):
            recursive = query.get("recursive", ["false"])[0].lower() in ("true", "1")
            return self._tree(repo_type, repo_id, args[0], "/".join(args[1:]), recursive)
        if route == ("GET", "refs"):
            branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": s}
                        for n, s in self.server.store.refs(repo_type, repo_id).items()]
            return self._send_json({"branches": branches, "tags": [], "converts": []})
        self._check_write(auth)
        if route == ("POST", "preupload"):
            return self._preupload(repo_type, repo_id, args[0], json.loads(body))
        if route == ("POST", "commit"):
            return self._commit(repo_type, repo_id, args[0], body)
        if route == ("POST", "branch"):
            start = json.loads(body or b"{}").get("startingPoint")
            self.server.store.create_branch(repo_type, repo_id, "/".join(args), start)
            return self._send_json({})
        raise HubError(404, None, f"No API route for {self.command} {action}")

    def _check_read(self, repo_type: str, repo_id: str, auth: str | None) -> None:
        if self.server.store.meta(repo_type, repo_id)["private"] and not auth:
            raise HubError(401, "RepoNotFound", f"Repository {repo_id} not found")

    def _check_write(self, auth: str | None) -> None:
        if not (auth or "").startswith("Bearer ") or len(auth) <= len("Bearer "):
            raise HubError(401, None, "Invalid credentials in Authorization header")

    def _create_repo(self, payload: dict, auth: str | None) -> None:
        self._check_write(auth)
        repo_type = payload.get("type") or "model"
        repo_id = "/".join(p for p in (payload.get("organization"), payload["name"]) if p)
        url = f"{self.server.url}/{URL_PREFIXES[repo_type]}{repo_id}"
        if not self.server.store.create(repo_type, repo_id, private=payload.get("visibility") == "private"):
            return self._send_json({"error": "You already created this repo", "url": url}, 409)
        self._send_json({"url": url, "name": repo_id})

    def _repo_info(self, repo_type: str, repo_id: str, revision: str, blobs: bool) -> None:
        store = self.server.store
        sha = store.resolve(repo_type, repo_id, revision)
        record = store.commit_record(repo_type, repo_id, sha)
        siblings = [{"rfilename": entry["path"], **({"size": entry["size"], "blobId": entry["oid"]} if blobs else {})}
                    for entry in self._file_entries(repo_type, repo_id, sha)]
        self._send_json({"id": repo_id, "sha": sha, "private": store.meta(repo_type, repo_id)["private"],
                         "lastModified": record["date"], "tags": [], "siblings": siblings})

    def _file_entries(self, repo_type: str, repo_id: str, sha: str) -> list[dict]:
        entries = []
        for path, digest in sorted(self.server.store.files(repo_type, repo_id, sha).items()):
            content = self.server.store.blob(digest)
            entry = {"type": "file", "path": path, "size": len(content), "oid": git_blob_sha1(content)}
            if is_lfs(path, len(content)):
                entry["lfs"] = {"oid": digest, "size": len(content), "pointerSize": 134}
            entries.append(entry)
        return entries

    def _tree(self, repo_type: str, repo_id: str, revision: str, folder: str, recursive: bool) -> None:
        sha = self.server.store.resolve(repo_type, repo_id, revision)
        prefix = f"{folder}/" if folder else ""
        listing: dict[str, dict] = {}
        for entry in self._file_entries(repo_type, repo_id, sha):
            if not entry["path"].startswith(prefix):
                continue
            parts = entry["path"][len(prefix):].split("/")
            depth = len(parts) if recursive else 1
            for i in range(1, min(depth, len(parts) - 1) + 1):
                directory = prefix + "/".join(parts[:i])
                listing[directory] = {"type": "directory", "path": directory, "oid": git_blob_sha1(directory.encode())}
            if recursive or len(parts) == 1:
                listing[entry["path"]] = entry
        if folder and not listing:
            raise HubError(404, "EntryNotFound", f"{folder} does not exist at {revision}", commit=sha)
        self._send_json(list(listing.values()))

    def _preupload(self, repo_type: str, repo_id: str, revision: str, payload: dict) -> None:
        store = self.server.store
        sha = store.resolve(repo_type, repo_id, revision)
        current = store.files(repo_type, repo_id, sha)
        files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                  "oid": git_blob_sha1(store.blob(current[f["path"]])) if f["path"] in current else None}
                 for f in payload["files"]]
        self._send_json({"files": files, "commitOid": sha})

    def _commit(self, repo_type: str, repo_id: str, revision: str, body: bytes) -> None:
        header, additions, deletions = {}, {}, []
        for line in body.decode().splitlines():
            item = json.loads(line)
            value = item["value"]
            if item["key"] == "header":
                header = value
            elif item["key"] == "file":
                additions[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] in ("deletedFile", "deletedFolder"):
                deletions.append(value["path"])
            else:
                raise HubError(422, None, f"The fake Hub does not support {item['key']} operations")
        self.server.store.resolve(repo_type, repo_id, revision)
        sha = self.server.store.commit(repo_type, repo_id, revision, header.get("summary", ""), additions,
                                       tuple(deletions), header.get("parentCommit"))
        url = f"{self.server.url}/{URL_PREFIXES[repo_type]}{repo_id}/commit/{sha}"
        self._send_json({"success": True, "commitOid": sha, "commitUrl": url, "pullRequestUrl": None})

    def _resolve(self, repo_type: str, repo_id: str, revision: str, filename: str, auth: str | None) -> None:
        store = self.server.store
        self._check_read(repo_type, repo_id, auth)
        sha = store.resolve(repo_type, repo_id, revision)
        files = store.files(repo_type, repo_id, sha)
        if filename not in files:
            raise HubError(404, "EntryNotFound", f"{filename} does not exist at {revision}", commit=sha)
        content = store.blob(files[filename])
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes", "ETag": f'"{git_blob_sha1(content)}"'}
        if is_lfs(filename, len(content)):
            headers.update({"ETag": f'"{files[filename]}"', "X-Linked-Etag": f'"{files[filename]}"',
                            "X-Linked-Size": str(len(content))})
        start = self._range_start(len(content))
        status = 206 if start else 200
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
        cut = self.server.plan.take("cut", self.command, self.path) if self.command == "GET" else None
        self._send(status, content[start:], "application/octet-stream", headers, cut_after=cut and int(cut.value))

    def _range_start(self, size: int) -> int:
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        return int(match.group(1)) if match and int(match.group(1)) < size else 0

    def _send_json(self, payload, status: int = 200, code: str | None = None, commit: str | None = None) -> None:
        headers = {k: v for k, v in (("X-Error-Code", code), ("X-Repo-Commit", commit)) if v}
        if status >= 400:
            headers["X-Error-Message"] = payload["error"]
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str],
              cut_after: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if cut_after is not None:  # an injected fault: promise the whole body, send a part, hang up
            self.wfile.write(body[:cut_after])
            self.close_connection = True
            return
        self.wfile.write(body)
