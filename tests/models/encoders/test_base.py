"""BaseEncoder machinery and the registry, on a small real torch encoder defined here."""

from __future__ import annotations

import pickle
import threading
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from cmcr.errors import CheckpointError, InputError
from cmcr.models.encoders import (
    BaseEncoder,
    Encoder,
    EncoderConfig,
    build_encoder,
    encoder_config,
)
from cmcr.models.encoders.base import (
    load_torch_file,
    resolve_autocast_dtype,
    resolve_device,
)


@dataclass(frozen=True)
class LinearConfig(EncoderConfig):
    in_features: int = 3
    out_dim: int | None = None  # the width the model really produces (default: dim)


class LinearEncoder(BaseEncoder):
    """Embeds 3-vectors ("vector") or strings ("text", by their character codes) linearly."""

    name = "test-linear"
    modalities = ("vector", "text")
    profiles = {"tiny": LinearConfig(dim=4, batch_size=3)}

    def __init__(self, config: LinearConfig, device=None) -> None:
        super().__init__(config, device)
        self.load_calls = 0
        self.batch_sizes: list[int] = []

    def _load(self) -> None:
        self.load_calls += 1
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(self.config.in_features, self.config.out_dim or self.dim)

    def _forward(self, modality, items) -> torch.Tensor:
        self.batch_sizes.append(len(items))
        if modality == "text":
            items = [[float(ord(c)) for c in text[:3].ljust(3)] for text in items]
        return self.layer(torch.as_tensor(np.asarray(items, dtype=np.float32))) * 10


def make(**overrides) -> LinearEncoder:
    return LinearEncoder(LinearConfig(dim=4, batch_size=3, **overrides), device="cpu")


def test_embed_returns_float32_unit_rows_and_satisfies_the_protocol():
    encoder = make()
    rows = encoder.embed("vector", np.random.default_rng(0).normal(size=(5, 3)))
    assert isinstance(encoder, Encoder)
    assert rows.shape == (5, 4) and rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-6)


def test_batches_are_split_and_results_do_not_depend_on_the_split():
    encoder = make()
    vectors = np.random.default_rng(1).normal(size=(7, 3))
    default = encoder.embed("vector", vectors)
    assert encoder.batch_sizes == [3, 3, 1]
    singles = encoder.embed("vector", vectors, batch_size=1)
    assert encoder.batch_sizes[3:] == [1] * 7
    np.testing.assert_allclose(default, singles, atol=1e-6)
    assert not np.allclose(default[0], default[1])


def test_weights_load_lazily_and_once_even_from_many_threads():
    encoder = make()
    assert not encoder.loaded and encoder.load_calls == 0
    threads = [threading.Thread(target=encoder.embed, args=("text", ["abc"])) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert encoder.loaded and encoder.load_calls == 1
    assert encoder.load() is encoder and encoder.load_calls == 1


@pytest.mark.parametrize(
    ("modality", "batch", "message"),
    [
        ("audio", [[1.0, 2.0, 3.0]], "not 'audio'"),
        ("vector", [], "empty"),
        ("text", "a single caption", "not a single string"),
        ("text", (text for text in ["abc"]), "not generator"),
    ],
)
def test_unusable_requests_raise_input_error_before_loading(modality, batch, message):
    encoder = make()
    with pytest.raises(InputError, match=message):
        encoder.embed(modality, batch)
    assert encoder.load_calls == 0


@pytest.mark.parametrize("batch_size", [0, -2, 1.5])
def test_batch_size_must_be_a_positive_integer(batch_size):
    with pytest.raises(InputError, match="batch_size"):
        make().embed("text", ["abc"], batch_size=batch_size)


def test_an_output_of_the_wrong_width_is_a_checkpoint_error():
    with pytest.raises(CheckpointError, match=r"expected \(1, 4\)"):
        make(out_dim=6).embed("text", ["abc"])


def test_device_and_precision_choices():
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_autocast_dtype("auto", torch.device("cpu")) is None
    assert resolve_autocast_dtype("auto", torch.device("cuda")) is torch.bfloat16
    assert resolve_autocast_dtype("float16", torch.device("cuda")) is torch.float16
    assert resolve_autocast_dtype("float32", torch.device("cuda")) is None
    with pytest.raises(InputError, match="Unknown dtype"):
        resolve_autocast_dtype("int8", torch.device("cpu"))


def test_bfloat16_autocast_on_cpu_still_returns_float32_unit_rows():
    encoder = make(dtype="bfloat16")
    assert encoder.autocast_dtype is torch.bfloat16
    rows = encoder.embed("vector", np.eye(3))
    assert rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(rows, make().embed("vector", np.eye(3)), atol=0.05)


def test_registry_builds_lazily_with_profile_and_overrides():
    encoder = build_encoder("clip", "tiny", device="cpu", batch_size=5)
    assert encoder.name == "clip" and encoder.modalities == ("text", "image")
    assert encoder.config.batch_size == 5 and encoder.config.pretrained is None
    assert not encoder.loaded
    assert encoder_config("clip", "full").model_name == "ViT-B-32"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: build_encoder("whisper"), "Unknown encoder 'whisper'"),
        (lambda: build_encoder("clip", profile="huge"), "Unknown profile 'huge'"),
        (lambda: build_encoder("clip", "tiny", widht=3), r"Unknown clip settings \['widht'\]"),
    ],
)
def test_registry_rejects_unknown_names(call, message):
    with pytest.raises(InputError, match=message):
        call()


def test_load_torch_file_reads_weights_and_refuses_code_and_garbage(tmp_path):
    weights = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": np.int64(3), "lr": np.float64(0.1)}, weights)
    loaded = load_torch_file(weights)
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(2)) and loaded["epoch"] == 3

    code = tmp_path / "code.pt"
    torch.save({"callback": pickle.loads}, code)  # a global function: never unpickled
    with pytest.raises(CheckpointError, match="code.pt"):
        load_torch_file(code)

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_torch_file(garbage)
    with pytest.raises(CheckpointError, match="not found"):
        load_torch_file(tmp_path / "missing.pt")
