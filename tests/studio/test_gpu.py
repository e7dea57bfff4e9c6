"""What crosses into a GPU call crosses as ZeroGPU carries it: pickled there and back.

ZeroGPU runs each `spaces.GPU` function in a forked worker and pickles its arguments and its
result; an argument holding a lock (as a visitor's gallery does) fails there, and only there.
Here every GPU-decorated function found in the app's source is wrapped in that round trip, and
every action of the app (each tab, zero-shot naming, a visitor's gallery, loading the default
gallery) is run through it.
"""

from __future__ import annotations

import ast
import importlib
import pickle

import numpy as np
import pytest

from studio import gpu
from studio.answers import Query
from studio.service import Studio
from studio.settings import StudioSettings
from tests.paths import REPO

SOURCES = [*sorted((REPO / "studio").glob("*.py")), REPO / "app.py"]


def _is_gpu_decorator(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    return isinstance(target, ast.Attribute) and target.attr == "GPU" and getattr(target.value, "id", None) == "spaces"


def gpu_functions() -> set[tuple[str, str]]:
    """(module, function) of every function the app decorates with `spaces.GPU`."""
    found = set()
    for path in SOURCES:
        module = "app" if path.name == "app.py" else f"studio.{path.stem}"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(map(_is_gpu_decorator, node.decorator_list)):
                found.add((module, node.name))
    return found


def test_the_only_gpu_work_is_embedding_and_it_says_how_long_it_needs():
    assert gpu_functions() == {("studio.gpu", "embed_on_gpu")}
    query = gpu.gpu_seconds("space", "points", [None])
    uploads = gpu.gpu_seconds("space", "image", [None] * 32)
    assert query <= 10 < gpu.gpu_seconds("space", "audio", [None] * 32) <= 60  # not ZeroGPU's 60 s default
    assert query < gpu.gpu_seconds("space", "points", [None] * 8) and uploads <= 10
    assert gpu.gpu_seconds("space", "text", [None] * 100_000) == gpu.MAX_SECONDS


@pytest.fixture
def crossings(monkeypatch) -> list[tuple[str, str, int]]:
    """Wrap every GPU function in ZeroGPU's pickle round trip; record (function, modality, batch size)."""
    calls = []
    for module_name, name in gpu_functions():
        module = importlib.import_module(module_name)
        function = getattr(module, name)

        def crossing(*args, _function=function, _name=name, **kwargs):
            args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))
            result = pickle.loads(pickle.dumps(_function(*args, **kwargs)))
            calls.append((_name, args[1], len(args[2])))
            return result

        monkeypatch.setattr(module, name, crossing)
    return calls


def test_every_tab_crosses_only_picklable_values(studio, uploads, crossings):
    value = {"audio": str(uploads["audio"]), "image": str(uploads["image"]), "text": "a wooden chair",
             "points": str(uploads["points"])}
    for source, target in [("audio", "image"), ("text", "points"), ("audio", "points"), ("image", "audio"),
                           ("image", None)]:
        assert studio.answer(Query(source, value[source]), target, k=3).hits
    assert studio.answer(Query("points", value["points"]), "text").labels
    assert len(studio.answer(Query("points", value["points"]), "text", labels="chair, lamp").labels) == 2
    assert {modality for _, modality, _ in crossings} == {"audio", "image", "text", "points"}


def test_a_visitors_gallery_never_crosses_only_its_items_do(studio, uploads, crossings):
    gallery = studio.new_session_gallery()
    try:
        with pytest.raises(TypeError, match="pickle"):
            pickle.dumps(gallery)  # what ZeroGPU refused when the gallery was a GPU call's argument
        studio.add_to_session_gallery(gallery, [str(uploads["image"]), str(uploads["mesh"])])
        hits = studio.answer_own(Query("text", "a chair"), gallery, k=2).hits
        assert len(hits) == 2 and {modality for _, modality, _ in crossings} >= {"image", "points", "text"}
    finally:
        gallery.close()


def test_the_default_gallery_is_embedded_in_gpu_calls_at_start(crossings):
    studio = Studio.load(StudioSettings(profile="tiny", device="cpu"))
    try:
        embedded = sum(size for _, _, size in crossings)
        assert embedded == len(studio.default_items) > 40
        assert max(size for _, _, size in crossings) > 1  # in batches, not one call per item
    finally:
        studio.close()


def test_embeddings_are_the_same_after_the_round_trip(studio, uploads, crossings):
    served = studio.served[0]
    decoded = served.embedder.decode("points", str(uploads["points"]))
    crossed = served.embedder.embed("points", [decoded])
    direct = gpu._ON_DEVICE[served.embedder.space_id].embed("points", [decoded])
    assert crossings and np.allclose(crossed, direct, atol=1e-5)
