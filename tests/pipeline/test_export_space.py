"""scripts/export_space.py: released weights become an ordinary Hub model with their attribution,
and the app's loader reads them back from the Hub."""

from __future__ import annotations

import numpy as np
import pytest

from cmcr.models.space import UnifiedSpace
from tests.fixtures.official import git_blob_id
from tests.scripts import load_script

TOKEN = "hf_export_test_token"


def test_the_official_release_is_pushed_as_a_normal_model_with_its_credit(official_release, fake_hub, tmp_path,
                                                                        monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    export = load_script("export_space")
    output = tmp_path / "official-ex-mcr"
    assert export.main(["official-ex-mcr", "--output", str(output), "--push-to-hub", "pub/official-ex-mcr"]) == 0
    printed = capsys.readouterr().out
    assert f"saved: {output}" in printed and "pushed: " in printed
    assert sorted(fake_hub.files("pub/official-ex-mcr")) == [".gitattributes", "README.md", "config.json",
                                                             "model.safetensors"]
    card = fake_hub.files("pub/official-ex-mcr")["README.md"].decode()
    assert "license: cc-by-4.0" in card and "the Ex-MCR authors" in card and "CC BY 4.0" in card
    assert git_blob_id(official_release["ex_clap.pt"]) in card and "checkpoints/ex_clap.pt" in card  # pinned source
    assert "scripts/check_official.py" in card
    assert "Apache-2.0" not in card.split("## License and credits")[1].split("- **C-MCR**")[0]

    local, remote = UnifiedSpace.from_pretrained("official-ex-mcr"), UnifiedSpace.from_pretrained("pub/official-ex-mcr")
    assert remote.provenance == local.provenance and remote.provenance["name"] == "official-ex-mcr"
    rows = np.random.default_rng(0).normal(size=(5, 512)).astype(np.float32)
    for encoder, modality in (("clap", "audio"), ("ulip", "points"), ("clip", "image")):
        np.testing.assert_array_equal(remote.project(encoder, modality, rows), local.project(encoder, modality, rows))


def test_a_group_name_says_which_spaces_to_export(capsys):
    assert load_script("export_space").main(["official-c-mcr"]) == 2
    assert "official-c-mcr-clap-clip, official-c-mcr-ulip-clip" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["official-c-mcr-clap-clip", "official-c-mcr-ulip-clip"])
def test_each_c_mcr_pair_exports_on_its_own(official_release, tmp_path, name):
    assert load_script("export_space").main([name, "--output", str(tmp_path / name)]) == 0
    assert UnifiedSpace.from_pretrained(tmp_path / name).provenance["name"] == name
    assert "the C-MCR authors" in (tmp_path / name / "README.md").read_text()
