"""Security properties, each checked against the real code path rather than taken on trust.

- Nothing a visitor uploads is unpickled: a pickled .npy/.npz whose payload would create a marker
  file is refused through every door (loader, app endpoint, session gallery) and the marker never
  appears; the payload is shown to be live first, so the test cannot pass vacuously.
- Deserialisers in our source tree are safe by construction: an ast scan finds every torch.load
  (whole tree, tests included) and every pickle, numpy and yaml load in shipped code (cmcr/,
  scripts/, app.py) and checks its arguments; full unpickling exists exactly once, for the pinned
  official ULIP checkpoint.
- Upload names cannot escape their folder; the app serves files from its own folders only.
- A Hub token never reaches logs or output, even at DEBUG and through retries.
"""

from __future__ import annotations

import ast
import io
import logging
import os
import tempfile
from pathlib import Path

import httpx
import numpy as np
import pytest

from cmcr import InputError
from cmcr.data.media import load_points
from tests.paths import REPO

TOKEN = "hf_reliability_secret_token_4f7c2"


class _CreatesMarker:
    """Unpickling this calls open(marker, "w"): a harmless payload whose effect is visible."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickled_npy(marker: Path, openshape: bool = False) -> bytes:
    payload = {"xyz": _CreatesMarker(marker)} if openshape else [_CreatesMarker(marker)] * 3
    buffer = io.BytesIO()
    np.save(buffer, np.array(payload, dtype=object), allow_pickle=True)
    return buffer.getvalue()


def pickled_npz(marker: Path) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, xyz=np.array([_CreatesMarker(marker)], dtype=object))
    return buffer.getvalue()


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "payload-ran"


def test_the_payload_is_live(marker):
    """The control: unpickling these bytes does run the payload."""
    np.load(io.BytesIO(pickled_npy(marker)), allow_pickle=True)
    assert marker.exists()


@pytest.mark.parametrize("build", [pickled_npy, lambda m: pickled_npy(m, openshape=True), pickled_npz],
                         ids=["object-array npy", "openshape-dict npy", "object-array npz"])
@pytest.mark.parametrize("name", ["cloud.npy", "cloud.npz", "cloud.xyz", "cloud", "cloud.pkl"])
def test_pickled_uploads_are_refused_and_never_run(tmp_path, marker, build, name):
    upload = tmp_path / name
    upload.write_bytes(build(marker))
    with pytest.raises(InputError) as refused:
        load_points(upload)
    assert str(refused.value)
    assert not marker.exists()


@pytest.mark.slow  # launches the app (the tiny studio takes ~15 s to build)
def test_pickled_upload_through_the_app_and_the_session_gallery(launched, studio, tmp_path, marker):
    from gradio_client import Client, handle_file

    upload = tmp_path / "pickled.npy"
    upload.write_bytes(pickled_npy(marker, openshape=True))
    client = Client(launched[1], verbose=False, download_files=False)
    with pytest.raises(Exception, match="pickled Python object"):
        client.predict(handle_file(str(upload)), "", api_name="/classify_3d")
    summary, *_ = client.predict([handle_file(str(upload))], api_name="/add_to_gallery")
    assert "Added **0**" in summary and "pickled" in summary
    gallery = studio.new_session_gallery()
    try:
        assert "Skipped `pickled.npy`" in studio.add_to_session_gallery(gallery, [str(upload)])
    finally:
        gallery.close()
    assert not marker.exists()


# ---- deserialisers in the source tree ----------------------------------------------------------

FULL_UNPICKLING_ALLOWED = {("cmcr/models/encoders/ulip.py", "read_official_checkpoint")}


def _source_files() -> list[Path]:
    skip = {".git", ".venv", "venv", "node_modules", "build", "runs", ".hypothesis"}
    return [p for p in REPO.rglob("*.py") if not skip & set(p.relative_to(REPO).parts)]


def _calls(path: Path):
    """(dotted callee name, call node, enclosing function name) for every call in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function, parent = None, parents.get(node)
            while parent is not None and function is None:
                if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    function = parent.name
                parent = parents.get(parent)
            yield ast.unparse(node.func), node, function


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def _is_constant(node, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def test_every_deserialiser_call_in_the_tree_is_safe():
    problems, full_unpickling = [], set()
    files = _source_files()
    assert len(files) > 50, "the scan must see the project"
    for path in files:
        relative = path.relative_to(REPO).as_posix()
        shipped = not relative.startswith("tests/")  # tests may unpickle their own reference files
        for callee, call, function in _calls(path):
            where = f"{relative}:{call.lineno} {callee}"
            if callee == "torch.load":
                weights_only = _keyword(call, "weights_only")
                if _is_constant(weights_only, False):
                    full_unpickling.add((relative, function))
                elif not _is_constant(weights_only, True):
                    problems.append(f"{where} without weights_only=True")
            elif not shipped:
                continue
            elif callee.split(".")[-1] in ("load", "loads", "Unpickler") and callee.split(".")[0] in (
                    "pickle", "cPickle", "dill", "joblib", "cloudpickle"):
                problems.append(f"{where}: pickle")
            elif callee in ("np.load", "numpy.load") and _is_constant(_keyword(call, "allow_pickle"), True):
                problems.append(f"{where} with allow_pickle=True")
            elif callee in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all"):
                problems.append(f"{where}: use yaml.safe_load")
            elif callee.endswith("load_checkpoint") and _keyword(call, "weights_only") is not None \
                    and not _is_constant(_keyword(call, "weights_only"), True):
                problems.append(f"{where} without weights_only=True")
    assert not problems, problems
    assert full_unpickling == FULL_UNPICKLING_ALLOWED


RESTRICTED_UNPICKLERS = {("cmcr/data/media/safe_npy.py", "_ArraysOnly")}


def test_the_only_unpickler_subclass_is_the_allow_listed_reader():
    """Subclassing pickle.Unpickler is how a restricted reader is written, and how a full one could
    hide from the call scan above: there is exactly one, and it overrides find_class."""
    found = set()
    for path in _source_files():
        relative = path.relative_to(REPO).as_posix()
        if relative.startswith("tests/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any("Unpickler" in ast.unparse(base) for base in node.bases):
                assert any(isinstance(item, ast.FunctionDef) and item.name == "find_class" for item in node.body)
                found.add((relative, node.name))
    assert found == RESTRICTED_UNPICKLERS


def test_full_unpickling_is_reachable_only_for_the_pinned_release():
    """Only the ULIP encoder calls read_official_checkpoint, and it passes pinned_release=True only
    when repo, file and revision are the pinned constants."""
    from cmcr.models.encoders import ulip

    callers = [(path.relative_to(REPO).as_posix(), function)
               for path in _source_files() if "tests" not in path.relative_to(REPO).parts
               for callee, call, function in _calls(path) if callee.endswith("read_official_checkpoint")]
    assert callers == [("cmcr/models/encoders/ulip.py", "_pretrained_model")]
    source = ast.unparse(ast.parse(Path(ulip.__file__).read_text()))
    assert "== (ULIP_REPO_ID, ULIP_CHECKPOINT_FILE, ULIP_CHECKPOINT_REVISION)" in source


# ---- file names and served paths ----------------------------------------------------------------

TRAVERSAL_NAMES = ["../../../../tmp/cmcr-escape.png", "..\\..\\cmcr-escape.png", "/etc/cmcr-escape.png",
                   "%2e%2e%2fcmcr-escape.png", "....//....//cmcr-escape.png"]


@pytest.mark.slow
@pytest.mark.parametrize("name", TRAVERSAL_NAMES)
def test_upload_names_cannot_leave_the_upload_folder(launched, studio, name):
    from gradio_client import Client

    url = launched[1]
    image = (studio.assets / "images" / "dog.png").read_bytes()
    answer = httpx.post(url + "gradio_api/upload", files={"files": (name, image, "image/png")}, timeout=30)
    assert answer.status_code == 200, answer.text
    stored = Path(answer.json()[0]).resolve()
    upload_root = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()
    assert stored.is_relative_to(upload_root) and stored.is_file() and ".." not in stored.parts
    for escaped in (Path("/tmp/cmcr-escape.png"), Path("/etc/cmcr-escape.png"), upload_root.parent / "cmcr-escape.png"):
        assert not escaped.exists()
    before = set(Path(tempfile.gettempdir()).iterdir())
    client = Client(url, verbose=False, download_files=False)
    file_data = {"path": str(stored), "meta": {"_type": "gradio.FileData"}}
    summary, *_ = client.predict([file_data], api_name="/add_to_gallery")
    assert "Added **1**" in summary or "already" in summary
    assert {p for p in set(Path(tempfile.gettempdir()).iterdir()) - before if "escape" in p.name} == set()


def test_gallery_files_are_named_by_content_not_by_what_the_item_claims(tmp_path):
    from cmcr.retrieval.gallery import Gallery, NewItem

    root = tmp_path / "gallery"
    gallery = Gallery.create(root, "space-x", 4)
    hostile = "../../../outside"
    gallery.add([NewItem("points", hostile + ".ply", hostile, "ab" * 32, np.random.default_rng(0).random((64, 3)))],
                np.eye(1, 4))
    gallery.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gallery"]
    assert all(p.resolve().is_relative_to(root.resolve()) for p in root.rglob("*"))
    assert gallery.items[0].preview == f"previews/{'ab' * 32}.glb"


@pytest.mark.slow
def test_the_app_serves_only_its_own_folders(launched, studio):
    demo, url = launched
    allowed = [Path(p).resolve() for p in demo.allowed_paths]
    assert sorted(allowed) == sorted(Path(p).resolve() for p in studio.allowed_paths)
    too_wide = {Path("/").resolve(), Path.home().resolve(), REPO.resolve(), Path(tempfile.gettempdir()).resolve(),
                Path.cwd().resolve()}
    assert not set(allowed) & too_wide
    assert all(path == (REPO / "assets").resolve() or path.name.startswith("cmcr-studio-") for path in allowed)

    def status(path: Path | str) -> int:
        return httpx.get(f"{url}gradio_api/file={path}", timeout=30).status_code

    assert status(studio.assets / "images" / "dog.png") == 200  # the control: the probe can succeed
    for outside in (REPO / "app.py", REPO / "cmcr" / "hub.py", "/etc/passwd", f"{studio.assets}/../app.py",
                    Path(os.environ["HF_HOME"]) / "token"):
        assert status(outside) in (403, 404), outside


# ---- tokens -----------------------------------------------------------------------------------


@pytest.fixture
def everything_at_debug():
    """Every logger at DEBUG into one buffer, whatever its propagation setting."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    saved = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    yield buffer
    for logger, level in saved:
        logger.setLevel(level)
        logger.removeHandler(handler)


def test_a_token_never_reaches_logs_or_output(fake_hub, hub_cache, tmp_path, everything_at_debug, capfd):
    from cmcr.hub import download_file, push_folder

    folder = tmp_path / "space"
    folder.mkdir()
    (folder / "config.json").write_text('{"method": "ex-mcr"}')
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 4)
    fake_hub.fail_next(1, 500, path="/commit/")  # a retried failure logs a warning mid-push
    url = push_folder(folder, "rel/token-push", private=True, token=TOKEN)
    assert "rel/token-push" in url
    assert download_file("rel/token-push", "config.json", token=TOKEN, cache_dir=hub_cache).read_text()
    assert any(TOKEN in header for header in fake_hub.authorizations())  # the control: it was sent
    fake_hub.fail_next(5, 401)
    with pytest.raises(Exception) as refused:
        push_folder(folder, "rel/token-push", token=TOKEN)
    captured = capfd.readouterr()
    logged = everything_at_debug.getvalue()
    # the control: DEBUG records of the HTTP stack were captured (not "connect_tcp": a connection
    # pooled by an earlier test in this process makes no new one)
    assert "send_request_headers" in logged
    assert sum("/commit/" in request.path for request in fake_hub.seen) >= 2  # the 500 was retried
    for text in (logged, captured.out, captured.err, str(refused.value), repr(refused.value)):
        assert TOKEN not in text


@pytest.mark.slow
def test_uploads_over_the_size_limit_are_refused_by_the_server(launched):
    """An upload past the app's limit (MAX_UPLOAD_SIZE, "50mb" = 50 MiB to Gradio) never reaches our
    parsers: the server answers 413 while streaming it."""
    url = launched[1]
    giant = b"\x00" * (50 * 1024 * 1024 + 1)
    answer = httpx.post(url + "gradio_api/upload", files={"files": ("giant.ply", giant, "application/octet-stream")},
                        timeout=120)
    assert answer.status_code == 413, answer.status_code
    assert "maximum allowed size" in answer.text


# ---- hostile files through the app ------------------------------------------------------------

GENERIC_FAILURE = "Something went wrong on our side"
SUFFIXES = {"audio": [".wav", ".mp3", ".flac", ".ogg"], "image": [".png", ".jpg", ".gif", ".webp"],
            "points": [".ply", ".obj", ".glb", ".npy", ".npz", ".xyz", ".stl", ".off"]}


@pytest.mark.slow
def test_hostile_files_through_the_app_get_our_messages_never_a_generic_failure(launched, real, tmp_path, record):
    """Damaged and mislabelled files sent to /any_to_any: each either works or ends in one of our
    InputError messages. The app's catch-all ("Something went wrong on our side") would mean an
    exception nobody anticipated, so it must never show."""
    from gradio_client import Client, handle_file
    from hypothesis import given
    from hypothesis import strategies as st

    from tests.reliability.conftest import fuzz_settings

    client = Client(launched[1], verbose=False, download_files=False, httpx_kwargs={"timeout": 60})
    samples = {"audio": ["wav", "flac", "ogg", "mp3"], "image": ["jpeg", "png", "gif", "webp", "tiff"],
               "points": ["ply", "obj", "off", "stl", "glb", "xyz", "npy", "npz"]}
    outcomes = {"ok": 0, "refused": 0}

    @fuzz_settings(30)
    @given(source=st.sampled_from(sorted(samples)), data=st.data())
    def send(source, data):
        original = real[data.draw(st.sampled_from(samples[source]))]
        cut = data.draw(st.integers(0, len(original)))
        position = data.draw(st.integers(0, max(0, cut - 1)))
        noise = data.draw(st.binary(min_size=1, max_size=16))
        content = (original[:position] + noise + original[position + len(noise):])[: max(cut, 1)]
        upload = tmp_path / f"upload{data.draw(st.sampled_from(SUFFIXES[source]))}"
        upload.write_bytes(content)
        inputs = {"audio": None, "image": None, "text": "", "points": None, source: handle_file(str(upload))}
        target = data.draw(st.sampled_from(["image", "audio", "points", "text"]))
        try:
            client.predict(source, *inputs.values(), target, 3, api_name="/any_to_any")
            outcomes["ok"] += 1
        except Exception as error:  # noqa: BLE001 - the message is what is checked
            assert GENERIC_FAILURE not in str(error), f"{source} {upload.suffix}: {error}"
            outcomes["refused"] += 1

    send()
    record.figure("app: damaged files to /any_to_any", outcomes)
    assert outcomes["refused"] > 0  # the generator does reach the error paths
