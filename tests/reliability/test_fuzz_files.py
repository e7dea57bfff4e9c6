"""Feature memories, run configs and trained-space folders under the same caps as the media
parsers (tests/reliability/sandbox.py): generated content, only our own clear errors may come out.

Generators keep the real layout (manifest.json, <modality>/<encoder>.npy, items.jsonl; the real
option names of configs/*.yaml; config.json + model.safetensors) and fill it with hostile values,
so the checks behind the layout are reached rather than the first "not JSON" branch.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.paths import REPO
from tests.reliability import bombs
from tests.reliability.conftest import fuzz_settings, run_contained

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                    st.text(max_size=12))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
HOSTILE_INTS = st.one_of(st.integers(-2, 600), st.sampled_from([2**31, 2**63 - 1, 10**12]), SCALARS)


# ---- feature memories -------------------------------------------------------------------------


@st.composite
def manifests(draw) -> bytes:
    if draw(st.integers(0, 4)) == 0:
        return json.dumps(draw(JSON_VALUES)).encode()
    manifest = {
        "format_version": draw(st.one_of(st.just(1), SCALARS)),
        "encoders": {name: {"dim": draw(HOSTILE_INTS), "checkpoint": draw(SCALARS)}
                     for name in draw(st.lists(st.sampled_from(["clip", "clap", "ulip", "bogus"]), max_size=3))},
        "modalities": {name: {"count": draw(HOSTILE_INTS), "encoders": draw(st.one_of(
            st.lists(st.sampled_from(["clip", "clap", "ulip"]), max_size=3), SCALARS))}
            for name in draw(st.lists(st.sampled_from(["text", "image", "audio", "points", "smell"]), max_size=3))},
    }
    return json.dumps(manifest).encode()


@st.composite
def feature_arrays(draw) -> bytes:
    if draw(st.booleans()):
        shape = tuple(draw(st.lists(st.one_of(st.integers(0, 8), st.sampled_from([10**9, 2**40])), max_size=3)))
        descr = draw(st.sampled_from(["<f2", "<f4", "<f8", "|O", "<i4", "bogus"]))
        return bombs.npy_header(shape, descr) + draw(st.binary(max_size=512))
    rows = draw(st.integers(0, 6))
    values = draw(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.just(0.0)),
                           min_size=rows * 8, max_size=rows * 8))
    buffer = io.BytesIO()
    with np.errstate(over="ignore"):  # float16 overflow to inf is one of the cases wanted
        array = np.asarray(values, dtype=draw(st.sampled_from([np.float16, np.float32]))).reshape(rows, 8)
    np.save(buffer, array)
    return buffer.getvalue()


ITEMS_LINES = st.lists(st.one_of(JSON_VALUES.map(json.dumps), st.text(max_size=20),
                                 st.integers(-3, 10).map(lambda i: json.dumps({"id": i}))), max_size=8)


@pytest.mark.slow
@fuzz_settings(25)
@given(manifest=manifests(), arrays=st.lists(st.tuples(st.sampled_from(["text/clip.npy", "text/clap.npy",
                                                                          "image/clip.npy", "audio/clap.npy"]),
                                                         feature_arrays()), max_size=3),
       items=ITEMS_LINES.map(lambda lines: "\n".join(lines).encode()))
def test_feature_memories(sandbox, record, manifest, arrays, items):
    named = ["manifest.json", manifest, "text/items.jsonl", items]
    for name, data in arrays:
        named += [name, data]
    run_contained(sandbox, record, "feature memories", "tests.reliability.targets:open_memory", *named)


# ---- run configs ------------------------------------------------------------------------------


def _train_fields() -> list[str]:
    from cmcr.training.config import TrainConfig

    return [f.name for f in dataclasses.fields(TrainConfig)]


SECTION_KEYS = {
    "sources": ["text", "text_column", "text_rows", "corpus_size", "images", "image_column", "image_rows", "audio",
                "audio_rows", "points", "points_column", "points_rows", "seed"],
    "extract": ["shard_size", "batch_size", "num_workers", "device", "dtype", "num_points"],
    "evaluation": ["holdout_fraction", "max_rows", "seed"],
    "hub": ["repo_id", "private", "revision"],
}
YAML_KEYS = st.one_of(st.text(max_size=6), st.integers(-3, 3), st.none(), st.booleans())


@st.composite
def pipeline_configs(draw) -> dict:
    sections = {name: draw(st.dictionaries(st.one_of(st.sampled_from(keys), YAML_KEYS), JSON_VALUES, max_size=4))
                for name, keys in SECTION_KEYS.items() if draw(st.booleans())}
    top_keys = st.sampled_from(["profile", "output", "method", "connections", "overlap_ablation"])
    top = draw(st.dictionaries(st.one_of(top_keys, YAML_KEYS), JSON_VALUES, max_size=3))
    train = draw(st.dictionaries(st.one_of(st.sampled_from(_train_fields()), YAML_KEYS), JSON_VALUES, max_size=4))
    return {**top, **sections, **({"train": train} if draw(st.booleans()) else {})}


def _mutated_yaml(text: bytes, patches: list[tuple[int, bytes]]) -> bytes:
    data = bytearray(text)
    for position, replacement in patches:
        start = position % (len(data) + 1)
        data[start:start + len(replacement)] = replacement
    return bytes(data)


SHIPPED_CONFIG = (REPO / "configs" / "tiny.yaml").read_bytes()
CONFIG_TEXTS = st.one_of(
    pipeline_configs().map(lambda values: yaml.safe_dump(values, allow_unicode=True).encode()),
    st.builds(_mutated_yaml, st.just(SHIPPED_CONFIG),
              st.lists(st.tuples(st.integers(0, 4096), st.sampled_from(
                  [b":", b"-", b"[", b"{", b"&a", b"*a", b"!!python/object:os.system", b"\t", b"\x00", b"\xff",
                   b"null", b"1e999", b"-1", b"\n  deep:\n    deeper: 1\n"])), max_size=6)),
)
TRAIN_TEXTS = st.dictionaries(st.one_of(st.sampled_from(_train_fields()), YAML_KEYS), JSON_VALUES, max_size=5).map(
    lambda values: yaml.safe_dump(values).encode())


@pytest.mark.slow
@fuzz_settings(25)
@given(text=CONFIG_TEXTS)
def test_pipeline_configs(sandbox, record, text):
    run_contained(sandbox, record, "run configs", "tests.reliability.targets:parse_pipeline_config", text, ".yaml")


@pytest.mark.slow
@fuzz_settings(30)
@given(text=TRAIN_TEXTS, suffix=st.sampled_from([".yaml", ".toml"]))
def test_train_configs(sandbox, record, text, suffix):
    run_contained(sandbox, record, "run configs", "tests.reliability.targets:parse_train_config", text, suffix)


def _laughs(levels: int = 9) -> str:
    """`levels` YAML anchors, each a list of nine aliases of the one before: 9**levels leaves."""
    lists = ["&l0 [" + ", ".join(["lol"] * 9) + "]"]
    lists += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(lists) + "]"


YAML_BOMBS = {
    "billion laughs in sources.text": f"sources:\n  text: {_laughs()}\n",
    "billion laughs in train": f"train:\n  hidden: {_laughs()}\n",
    "nested 100000 deep": "train: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "python object tag": "train: !!python/object/apply:os.system ['touch /tmp/cmcr-yaml-pwned']\n",
}
TOML_BOMBS = {"nested 100000 deep": "x = " + "[" * 100_000 + "]" * 100_000 + "\n"}


@pytest.mark.parametrize(("suffix", "name"), [(".yaml", n) for n in YAML_BOMBS] + [(".toml", n) for n in TOML_BOMBS])
@pytest.mark.parametrize("parser", ["parse_pipeline_config", "parse_train_config"])
def test_config_bombs_are_refused_quickly(sandbox, record, parser, suffix, name):
    text = (YAML_BOMBS if suffix == ".yaml" else TOML_BOMBS)[name]
    target = f"tests.reliability.targets:{parser}"
    outcome = run_contained(sandbox, record, "config bombs", target, text.encode(), suffix, seconds=5)  # CPU s
    assert outcome.kind == "input_error" and outcome.peak_mb < 200, outcome
    assert not Path("/tmp/cmcr-yaml-pwned").exists()


# ---- trained-space folders (what the app downloads from the Hub) -------------------------------


def _head_spec(draw) -> dict:
    kind = draw(st.sampled_from(["ex-mcr", "c-mcr", "c-mcr-1layer", "bogus"]))
    sizes = st.one_of(st.integers(1, 8), st.sampled_from([0, -1, 100_000, 2**31, 10**9]), SCALARS)
    return {"kind": kind, "dim_in": draw(sizes), "hidden": draw(sizes), "dim_out": draw(sizes)}


@st.composite
def space_folders(draw) -> tuple[bytes, bytes]:
    import torch
    from safetensors.torch import save

    heads = {name: _head_spec(draw) for name in draw(st.lists(st.sampled_from(["clap", "ulip", "clip"]),
                                                              min_size=1, max_size=2, unique=True))}
    config = {"format_version": 1, "method": draw(st.sampled_from(["ex-mcr", "c-mcr", "x"])),
              "base": draw(st.sampled_from(["clip", None])), "dim": draw(HOSTILE_INTS), "heads": heads,
              "leaves": sorted(heads), "encoders": draw(JSON_VALUES)}
    tensors = {f"{name}.{key}": torch.zeros(draw(st.integers(0, 4)), draw(st.integers(1, 4)))
               for name in heads for key in draw(st.lists(st.sampled_from(
                   ["head1.weight", "head1.bias", "net1.0.weight", "mlp.net1.0.weight"]), max_size=2, unique=True))}
    weights = save(tensors) if draw(st.booleans()) else draw(st.binary(max_size=256))
    return json.dumps(config).encode(), weights


@pytest.mark.slow
@fuzz_settings(25)
@given(folder=space_folders())
def test_space_folders(sandbox, record, folder):
    run_contained(sandbox, record, "space folders", "tests.reliability.targets:load_space", *folder)


@pytest.mark.parametrize("dims", [(100_000, 100_000, 512), (2**31, 8, 8), (1, 1, 2**63)],
                         ids=["40 GB head", "overflowing head", "past int64"])
def test_a_space_config_cannot_make_the_loader_allocate_what_its_weights_do_not_hold(sandbox, record, dims):
    """config.json sizes the heads; the weights file (a few bytes here) must back them before any
    memory is spent (a Hub repo is someone else's file)."""
    import torch
    from safetensors.torch import save

    dim_in, hidden, dim_out = dims
    config = {"format_version": 1, "method": "ex-mcr", "base": "clip", "dim": dim_out, "leaves": ["clap"],
              "heads": {"clap": {"kind": "ex-mcr", "dim_in": dim_in, "hidden": hidden, "dim_out": dim_out}},
              "encoders": {}}
    outcome = run_contained(sandbox, record, "space folders", "tests.reliability.targets:load_space",
                    json.dumps(config).encode(), save({"clap.Head1.weight": torch.zeros(2, 2)}))
    assert outcome.kind == "checkpoint_error" and outcome.peak_mb < 300, outcome
