"""UnifiedSpace as a Hub model: an nn.Module with PyTorchModelHubMixin's push_to_hub, a card the Hub
understands, and from_pretrained with the Hub client's revision / token / cache_dir / local_files_only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin
from torch import nn

from cmcr.errors import HubUnavailableError
from cmcr.models.heads import CMCRProjector
from cmcr.models.space import UnifiedSpace

TOKEN = "hf_space_hub_test_token"


@pytest.fixture
def space() -> UnifiedSpace:
    torch.manual_seed(0)
    heads = {"clap": CMCRProjector(16, 32, 8).eval(), "clip": CMCRProjector(12, 32, 8).eval()}
    return UnifiedSpace.build("c-mcr", heads, encoders={"clap": {"profile": "full"}, "clip": {"profile": "full"}},
                              metrics={"evaluation": {}})


def _rows(n: int, dim: int) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, dim)).astype(np.float32)


def test_a_space_is_a_module_and_a_hub_mixin(space):
    assert isinstance(space, nn.Module) and isinstance(space, PyTorchModelHubMixin)
    assert space.to("cpu") is space and not space.training
    assert not any(parameter.requires_grad for parameter in space.parameters())
    assert sorted({key.split(".")[1] for key in space.state_dict()}) == ["clap", "clip"]
    np.testing.assert_array_equal(space("clap", "audio", _rows(3, 16)), space.project("clap", "audio", _rows(3, 16)))


def test_push_to_hub_through_the_mixin_then_from_pretrained_with_the_clients_options(space, fake_hub, hub_cache,
                                                                                   offline_hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    space.push_to_hub("mixin/pushed-space", commit_message="via the mixin")
    files = fake_hub.files("mixin/pushed-space")
    assert {"config.json", "model.safetensors", "README.md"} <= set(files)
    card = ModelCard(files["README.md"].decode())
    assert card.data.library_name == "cmcr" and card.data.pipeline_tag == "feature-extraction"
    assert card.data.base_model == ["lukewys/laion_clap", "openai/clip-vit-base-patch32"]
    assert fake_hub.commits("mixin/pushed-space")[0]["message"] == "via the mixin"

    with pytest.raises(HubUnavailableError, match="local_files_only"):
        UnifiedSpace.from_pretrained("mixin/pushed-space", cache_dir=hub_cache, local_files_only=True)
    commit = fake_hub.commits("mixin/pushed-space")[0]["sha"]
    loaded = UnifiedSpace.from_pretrained("mixin/pushed-space", revision=commit, token=TOKEN, cache_dir=hub_cache)
    np.testing.assert_array_equal(loaded.project("clip", "image", _rows(4, 12)),
                                  space.project("clip", "image", _rows(4, 12)))
    monkeypatch.setattr(constants, "ENDPOINT", offline_hub)
    again = UnifiedSpace.from_pretrained("mixin/pushed-space", revision=commit, cache_dir=hub_cache,
                                         local_files_only=True)
    assert again.config == loaded.config


def test_the_card_carries_held_out_results_as_model_index(space, tmp_path):
    evaluation = {"clap→clip": {
        "text → text": {"R@1": 41.5, "R@5": 70.0, "R@10": 80.0, "mAP": 50.0, "MedR": 2.0},
        "chance (40 items)": {"R@1": 2.5, "R@5": 12.5, "R@10": 25.0, "mAP": 10.0, "MedR": 20.0}}}
    folder = space.save_pretrained(tmp_path / "space", model_card_kwargs={"evaluation": evaluation, "repo_id": "me/s"})
    card = ModelCard.load(folder / "README.md")
    results = card.data.eval_results
    assert [(r.metric_name, r.metric_value) for r in results] == [("R@1", 41.5), ("R@5", 70.0), ("R@10", 80.0),
                                                                  ("mAP", 50.0)]
    assert card.data.model_name == "me/s" and "| text → text | 41.50" in card.text


def test_a_tiny_profile_space_names_no_base_model(tmp_path):
    heads = {"clap": CMCRProjector(8, 16, 8).eval(), "clip": CMCRProjector(8, 16, 8).eval()}
    tiny = UnifiedSpace.build("c-mcr", heads, encoders={"clap": {"profile": "tiny"}, "clip": {"profile": "tiny"}})
    card = ModelCard.load(tiny.save_pretrained(tmp_path / "tiny") / "README.md")
    assert card.data.base_model is None and card.data.license == "apache-2.0"


def test_an_existing_card_is_kept_when_saving_again(space, tmp_path):
    folder = space.save_pretrained(tmp_path / "space")
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# my own card\n")
    space.save_pretrained(folder)
    assert (folder / "README.md").read_text().endswith("# my own card\n")
