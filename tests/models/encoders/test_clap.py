"""CLAP: preprocessing against independent references, the tiny profile end to end, the full
profile's Hub loading on a toy checkpoint in the official layout, and the tokenizer guard."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from cmcr.errors import CheckpointError, HubUnavailableError, InputError
from cmcr.models.encoders import build_encoder
from cmcr.models.encoders.clap import (
    CHUNK_FRAMES,
    CLIP_SAMPLES,
    SAMPLE_RATE,
    build_clap_model,
    fusion_input,
    log_mel,
    repeat_pad,
)
from cmcr.models.encoders.profiles import CLAP_PROFILES

OFFICIAL_REPO, OFFICIAL_FILE = "lukewys/laion_clap", "630k-fusion-best.pt"
TOKENIZER_REPO = "FacebookAI/roberta-base"
TINY = CLAP_PROFILES["tiny"]
TINY_ARCHITECTURE = {
    "htsat_embed_dim": TINY.htsat_embed_dim,
    "htsat_depths": TINY.htsat_depths,
    "htsat_num_heads": TINY.htsat_num_heads,
    "text_layers": TINY.text_layers,
    "text_intermediate_size": TINY.text_intermediate_size,
    "text_vocab_size": TINY.text_vocab_size,
}
CAPTIONS = ["a dog barking", "rain on a tin roof", "a violin melody", "traffic noise"]


def clip_of(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = 0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t * (1 + t / 20))
    return (tone + 0.05 * rng.normal(size=t.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_clap():
    return build_encoder("clap", "tiny", device="cpu").load()


@pytest.mark.slow  # librosa's first mel filterbank call takes seconds (lazy imports, numba)
def test_log_mel_matches_librosa_htk_power_mel_in_decibels():
    import librosa

    waveform = clip_of(1.0, seed=0)
    expected = librosa.power_to_db(
        librosa.feature.melspectrogram(
            y=waveform, sr=SAMPLE_RATE, n_fft=1024, hop_length=480, win_length=1024, center=True,
            pad_mode="reflect", power=2.0, n_mels=64, fmin=50, fmax=14000, htk=True, norm=None,
        ),
        ref=1.0, amin=1e-10, top_db=None,
    ).T
    actual = log_mel(torch.from_numpy(waveform)[None])[0].numpy()
    assert actual.shape == expected.shape == (101, 64)
    np.testing.assert_allclose(actual, expected, atol=2e-3)


def test_short_clips_are_tiled_whole_then_zero_padded_to_ten_seconds():
    clip = torch.arange(1, 300_001, dtype=torch.float32)
    padded = repeat_pad(clip)
    assert padded.shape == (CLIP_SAMPLES,)
    assert torch.equal(padded[:300_000], clip) and torch.all(padded[300_000:] == 0)
    half_second = torch.ones(24_000)
    assert torch.all(repeat_pad(half_second) == 1)  # exactly 20 copies, no padding


def test_long_clips_fuse_the_shrunk_whole_with_centre_crops_of_each_third():
    total = CHUNK_FRAMES + 600
    mel = torch.arange(total, dtype=torch.float32)[:, None].repeat(1, 64)
    stack, longer = fusion_input(mel)
    assert longer and stack.shape == (4, CHUNK_FRAMES, 64)
    # starts 0..600 split in thirds [0..200], [201..400], [401..600] -> centres 100, 301, 501
    for channel, start in zip((1, 2, 3), (100, 301, 501), strict=True):
        assert stack[channel, 0, 0] == start and stack[channel, -1, 0] == start + CHUNK_FRAMES - 1
    assert stack[0, 0, 0] < 5 and stack[0, -1, 0] > total - 5  # the whole clip, resized


def test_a_clip_just_over_ten_seconds_is_not_treated_as_longer():
    mel = torch.randn(CHUNK_FRAMES, 64)
    stack, longer = fusion_input(mel)
    assert not longer and all(torch.equal(stack[i], mel) for i in range(4))


@pytest.mark.parametrize("seconds", [0.5, 10.0, 25.0])
def test_tiny_audio_embeddings_are_unit_rows_and_deterministic(tiny_clap, seconds):
    clip = clip_of(seconds, seed=1)
    first = tiny_clap.embed("audio", [clip])
    again = build_encoder("clap", "tiny", device="cpu").embed("audio", [clip.copy()])
    assert first.shape == (1, 512) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(first, again)


def test_tiny_audio_batch_of_mixed_lengths_equals_single_clips(tiny_clap):
    clips = [clip_of(seconds, seed) for seed, seconds in enumerate([0.5, 10.0, 25.0, 3.0])]
    together = tiny_clap.embed("audio", clips)
    singles = np.concatenate([tiny_clap.embed("audio", [clip]) for clip in clips])
    np.testing.assert_allclose(together, singles, atol=1e-5)
    assert np.abs(together[0] - together[3]).max() > 1e-4


def test_tiny_text_embeddings_are_unit_rows_independent_of_batching(tiny_clap):
    together = tiny_clap.embed("text", CAPTIONS)
    singles = np.concatenate([tiny_clap.embed("text", [caption]) for caption in CAPTIONS])
    assert together.shape == (4, 512) and together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(together, singles, atol=1e-5)
    assert np.abs(together[0] - together[1]).max() > 1e-3


@pytest.mark.parametrize("clip", [np.zeros((2, 4800), np.float32), np.zeros(0, np.float32), [0.0] * 10])
def test_audio_that_is_not_a_mono_waveform_is_refused(tiny_clap, clip):
    with pytest.raises(InputError, match="mono"):
        tiny_clap.embed("audio", [clip])


@pytest.mark.slow  # a fresh interpreter pays the torch/transformers imports again
def test_tiny_profile_builds_offline_with_an_empty_cache_without_importing_laion_clap(tmp_path, offline_hub):
    script = (
        "import sys, numpy as np\n"
        "from cmcr.models.encoders import build_encoder\n"
        "encoder = build_encoder('clap', 'tiny', device='cpu')\n"
        "print(encoder.embed('text', ['a dog']).shape, encoder.embed('audio', [np.ones(4800, np.float32)]).shape)\n"
        "print('laion_clap' in sys.modules)\n"
    )
    hf_home = tmp_path / "hf-home"
    env = dict(os.environ, HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", HF_ENDPOINT=offline_hub)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1] == "False"
    assert "(1, 512) (1, 512)" in result.stdout
    assert not hf_home.exists() or not any(path.is_file() for path in hf_home.rglob("*"))


def official_checkpoint(model: torch.nn.Module) -> bytes:
    """The layout of laion_clap's released training checkpoints (see its `load_state_dict`)."""
    state = {f"module.{name}": tensor for name, tensor in model.state_dict().items()}
    state["module.text_branch.embeddings.position_ids"] = torch.arange(514)[None]
    buffer = io.BytesIO()
    torch.save({"epoch": 45, "name": "630k-fusion", "state_dict": state,
                "optimizer": {"state": {}, "param_groups": [{"lr": np.float64(1e-4), "params": [0]}]}}, buffer)
    return buffer.getvalue()


def full_encoder(hub_cache, **overrides):
    settings = dict(TINY_ARCHITECTURE, cache_dir=str(hub_cache), **overrides)
    return build_encoder("clap", "full", device="cpu", **settings)


def test_full_profile_loads_the_official_checkpoint_and_tokenizer_from_the_hub(
    fake_hub, hub_cache, roberta_tokenizer_files
):
    reference = build_clap_model(TINY.__class__(**{**TINY.__dict__, "seed": 5}))
    fake_hub.add_repo(OFFICIAL_REPO, {OFFICIAL_FILE: official_checkpoint(reference)})
    fake_hub.add_repo(TOKENIZER_REPO, roberta_tokenizer_files)
    encoder = full_encoder(hub_cache)

    rows = encoder.embed("text", CAPTIONS[:2])

    fetched = {seen.path.rsplit("/", 1)[-1] for seen in fake_hub.seen if "/resolve/" in seen.path}
    assert {OFFICIAL_FILE, "vocab.json", "merges.txt"} <= fetched
    for name, tensor in reference.state_dict().items():
        assert torch.equal(encoder.model.state_dict()[name], tensor), name
    tokens = encoder.tokenizer(CAPTIONS[:2], padding="max_length", truncation=True, max_length=77,
                               return_tensors="pt")
    with torch.no_grad():
        expected = reference.get_text_embedding(dict(tokens)).numpy()  # laion_clap's own method
    np.testing.assert_allclose(rows, expected, atol=1e-5)

    clips = [clip_of(2.0, seed=4), clip_of(14.0, seed=5)]
    inputs = encoder._fusion_inputs(clips)
    per_clip = [{"mel_fusion": inputs["mel_fusion"][i], "longer": inputs["longer"][i : i + 1]} for i in range(2)]
    with torch.no_grad():
        expected_audio = torch.cat([reference.get_audio_embedding([item]) for item in per_clip]).numpy()
    np.testing.assert_allclose(encoder.embed("audio", clips), expected_audio, atol=1e-5)


# Names in the released checkpoints (after `module.`), written out rather than read from our model:
# a rename in transformers or laion_clap would otherwise go unnoticed by the round-trip tests.
OFFICIAL_KEYS = [
    "text_branch.embeddings.word_embeddings.weight",
    "text_branch.embeddings.position_embeddings.weight",
    "text_branch.encoder.layer.0.attention.self.query.weight",
    "text_branch.encoder.layer.0.attention.output.LayerNorm.bias",
    "text_branch.encoder.layer.0.intermediate.dense.weight",
    "text_branch.pooler.dense.weight",
    "text_projection.0.weight",
    "audio_branch.bn0.running_mean",
    "audio_branch.patch_embed.proj.weight",
    "audio_branch.patch_embed.mel_conv2d.weight",
    "audio_branch.layers.0.blocks.0.attn.relative_position_bias_table",
    "audio_projection.2.bias",
    "logit_scale_a",
]


def test_the_model_has_the_official_parameter_names():
    names = set(build_clap_model(TINY).state_dict())
    assert [key for key in OFFICIAL_KEYS if key not in names] == []


def test_a_checkpoint_of_another_architecture_is_a_checkpoint_error(
    tmp_path, fake_hub, roberta_tokenizer_files, hub_cache
):
    fake_hub.add_repo(TOKENIZER_REPO, roberta_tokenizer_files)
    path = tmp_path / "other.pt"
    other = build_clap_model(TINY.__class__(**{**TINY.__dict__, "htsat_embed_dim": 16}))
    path.write_bytes(official_checkpoint(other))
    with pytest.raises(CheckpointError, match="other.pt"):
        full_encoder(hub_cache, checkpoint=str(path)).load()


def test_a_stub_tokenizer_is_refused_not_used(fake_hub, hub_cache, stub_tokenizer_files):
    fake_hub.add_repo("test-clap/roberta-stub", stub_tokenizer_files)
    encoder = full_encoder(hub_cache, tokenizer_repo="test-clap/roberta-stub", hub_filename=None)
    with pytest.raises(CheckpointError, match="only 5 tokens"):
        encoder.embed("text", CAPTIONS)


def test_an_unreachable_hub_fails_fast_with_hub_unavailable(offline_hub, hub_cache):
    encoder = full_encoder(hub_cache, endpoint=offline_hub)
    started = time.monotonic()
    with pytest.raises(HubUnavailableError):
        encoder.load()
    assert time.monotonic() - started < 15
    assert not encoder.loaded
