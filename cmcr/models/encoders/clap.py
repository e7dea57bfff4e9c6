"""CLAP (text, audio) from laion_clap's model classes, without laion_clap's download side effects.

How laion_clap is used, and why:

- `import laion_clap` (or any `laion_clap.*` submodule, since the package `__init__` runs first)
  calls `from_pretrained` for the roberta-base, bert-base-uncased and bart-base tokenizers at
  import time: with no network it retries for minutes, and with `HF_HUB_OFFLINE=1` and no cache
  it silently yields 5-token tokenizers. We never import it. We load its model package
  `clap_module` straight from laion_clap's folder under a private name, as a bare package whose
  `__init__` does not run, so only the model submodules load; none downloads at import time.
- `CLAP.__init__` hard-codes `RobertaModel.from_pretrained('roberta-base')` (500 MB that the
  CLAP checkpoint then overwrites) and `create_htsat_model`'s fixed HTSAT sizes. While CLAP is
  constructed we substitute those two names in `clap_module.model` for builders driven by our
  config: a RoBERTa built from its config alone and an HTSAT with the configured widths. With
  the `full` values that is exactly the official architecture; the `tiny` values shrink it.
- The official checkpoint (`630k-fusion-best.pt`, a dict whose `state_dict` keys carry a
  `module.` prefix) comes through `cmcr.hub.download_file` into the HF cache, never through
  laion_clap's wget into site-packages, and loads with `weights_only=True`.
- The RoBERTa tokenizer is built from the `vocab.json`/`merges.txt` of `FacebookAI/roberta-base`
  (fetched by `cmcr.hub`). The tiny profile generates one instead: a byte-level BPE trained in a
  fraction of a second on a seeded synthetic corpus, so it builds with no network and no cache.
  Any tokenizer with an implausibly small vocabulary is refused (the 5-token trap above).
- Audio preprocessing reimplements laion_clap's `get_audio_features` for fusion models, batched
  and deterministic: shorter clips are repeat-padded to 10 s; longer ones give the resized full
  mel plus three 10 s crops, taken at the centre of the front, middle and back thirds where
  laion_clap picks random positions. The log-mel matches torchaudio's MelSpectrogram (HTK mel
  scale, no filter normalisation) followed by AmplitudeToDB, as laion_clap computes it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import random
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from tokenizers import ByteLevelBPETokenizer
from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

from cmcr.models.encoders.base import BaseEncoder, download, load_torch_file
from cmcr.models.encoders.profiles import CLAP_PROFILES, ClapConfig
from cmcr.errors import CheckpointError, InputError

SAMPLE_RATE = 48000
CLIP_SAMPLES = 480000  # 10 s: the window CLAP was trained on
MIN_TOKENIZER_VOCAB = 1000
AUDIO_CFG: dict[str, Any] = {  # laion_clap model_configs/HTSAT-tiny.json
    "audio_length": 1024,
    "clip_samples": CLIP_SAMPLES,
    "mel_bins": 64,
    "sample_rate": SAMPLE_RATE,
    "window_size": 1024,
    "hop_size": 480,
    "fmin": 50,
    "fmax": 14000,
    "class_num": 527,
    "model_type": "HTSAT",
    "model_name": "tiny",
}
CHUNK_FRAMES = CLIP_SAMPLES // AUDIO_CFG["hop_size"] + 1
# Keys the official checkpoint holds that current transformers no longer keep in a state dict.
_STALE_KEYS = {"text_branch.embeddings.position_ids", "text_branch.embeddings.token_type_ids"}
_CLAP_PACKAGE = "cmcr._laion_clap_module"  # private name: a later `import laion_clap` is unaffected
_BUILD_LOCK = threading.Lock()  # CLAP construction swaps module globals in clap_module.model


def import_clap_module() -> ModuleType:
    """laion_clap's `clap_module` folder as a bare package: its `__init__` (and laion_clap's)
    never runs, so only the submodules we import load (`model`, `htsat` and their imports)."""
    if _CLAP_PACKAGE in sys.modules:
        return sys.modules[_CLAP_PACKAGE]
    laion = importlib.util.find_spec("laion_clap")
    if laion is None or laion.origin is None:
        raise CheckpointError("laion_clap is not installed; install `laion_clap` to use the CLAP encoder.")
    package = ModuleType(_CLAP_PACKAGE)
    package.__path__ = [str(Path(laion.origin).parent / "clap_module")]
    package.__package__ = _CLAP_PACKAGE
    sys.modules[_CLAP_PACKAGE] = package
    return package


@contextlib.contextmanager
def _substituted(module: ModuleType, **names: Any) -> Iterator[None]:
    originals = {name: getattr(module, name) for name in names}
    for name, value in names.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in originals.items():
            setattr(module, name, value)


@contextlib.contextmanager
def _quiet_laion_warnings() -> Iterator[None]:
    """laion_clap's own deprecation noise (timm.models.layers, torch.meshgrid) says nothing to users."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"Importing from timm\.models\.layers", category=FutureWarning
        )
        warnings.filterwarnings("ignore", message=r"torch\.meshgrid", category=UserWarning)
        yield


def roberta_config(config: ClapConfig) -> Any:
    """roberta-base's architecture (hidden size 768 is what CLAP's text projection expects)."""
    return RobertaConfig(
        vocab_size=config.text_vocab_size,
        hidden_size=768,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.text_heads,
        intermediate_size=config.text_intermediate_size,
        max_position_embeddings=514,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )


class _RobertaFromConfig:
    """Stands in for `transformers.RobertaModel` inside `CLAP.__init__`: no download."""

    def __init__(self, config: ClapConfig) -> None:
        self.config = config

    def from_pretrained(self, _name: str) -> torch.nn.Module:
        return RobertaModel(roberta_config(self.config))


def _htsat_builder(config: ClapConfig, htsat_module: ModuleType) -> Any:
    def build(audio_cfg: Any, enable_fusion: bool, fusion_type: str) -> torch.nn.Module:
        return htsat_module.HTSAT_Swin_Transformer(
            spec_size=256,
            patch_size=4,
            patch_stride=(4, 4),
            num_classes=audio_cfg.class_num,
            embed_dim=config.htsat_embed_dim,
            depths=list(config.htsat_depths),
            num_heads=list(config.htsat_num_heads),
            window_size=8,
            config=audio_cfg,
            enable_fusion=enable_fusion,
            fusion_type=fusion_type,
        )

    return build


def build_clap_model(config: ClapConfig) -> torch.nn.Module:
    """laion_clap's fusion CLAP with the configured sizes and weights, in eval mode."""
    import_clap_module()
    with _quiet_laion_warnings():
        htsat_module = importlib.import_module(f"{_CLAP_PACKAGE}.htsat")
        model_module = importlib.import_module(f"{_CLAP_PACKAGE}.model")
    text_cfg = {
        "context_length": config.max_text_tokens,
        "vocab_size": config.text_vocab_size,
        "width": 768,
        "heads": config.text_heads,
        "layers": config.text_layers,
        "model_type": "roberta",
    }
    with (
        _BUILD_LOCK,
        torch.random.fork_rng(devices=[]),
        _quiet_laion_warnings(),
        _substituted(
            model_module,
            RobertaModel=_RobertaFromConfig(config),
            create_htsat_model=_htsat_builder(config, htsat_module),
        ),
    ):
        torch.manual_seed(config.seed)
        model = model_module.CLAP(
            embed_dim=config.htsat_embed_dim * 2 ** (len(config.htsat_depths) - 1),
            audio_cfg=dict(AUDIO_CFG),
            text_cfg=text_cfg,
            enable_fusion=True,
            fusion_type="aff_2d",
            joint_embed_shape=config.dim,
        )
    path = clap_checkpoint_path(config)
    if path is not None:
        load_clap_weights(model, path)
    return model.eval()


def clap_checkpoint_path(config: ClapConfig) -> Path | None:
    """Where the weights live on disk (downloading them if needed); None means random weights."""
    if config.checkpoint is not None:
        return Path(config.checkpoint)
    if config.hub_filename is None:
        return None
    return download(config, config.hub_repo, config.hub_filename, config.revision)


def load_clap_weights(model: torch.nn.Module, path: Path) -> None:
    """Load a laion_clap training checkpoint (`{"state_dict": {"module.…": …}, …}`) strictly."""
    checkpoint = load_torch_file(path)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path} holds no CLAP state dict.")
    state = {key.removeprefix("module."): value for key, value in state.items()}
    state = {key: value for key, value in state.items() if key not in _STALE_KEYS}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches
        raise CheckpointError(f"{path} does not fit the configured CLAP architecture: {error}") from error
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{path} does not fit the configured CLAP architecture: missing "
            f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}."
        )


def build_tokenizer(config: ClapConfig) -> Any:
    """The RoBERTa tokenizer CLAP was trained with (or a generated one), size-checked."""
    if config.tokenizer_repo is None:
        vocab, merges = generated_bpe_vocabulary(config.text_vocab_size)
        tokenizer, source = RobertaTokenizer(vocab=vocab, merges=merges), "the generated vocabulary"
    else:
        vocab_file = download(config, config.tokenizer_repo, "vocab.json")
        merges_file = download(config, config.tokenizer_repo, "merges.txt")
        tokenizer = RobertaTokenizer(vocab=str(vocab_file), merges=str(merges_file))
        source = config.tokenizer_repo
    check_tokenizer(tokenizer, source, config.text_vocab_size)
    return tokenizer


def check_tokenizer(tokenizer: Any, source: str, model_vocab_size: int) -> None:
    """Refuse tokenizers that would silently map every word to <unk> or past the embeddings."""
    size = len(tokenizer)
    if size < MIN_TOKENIZER_VOCAB:
        raise CheckpointError(
            f"The RoBERTa tokenizer from {source} has only {size} tokens: its vocabulary did not "
            "load (an empty or offline Hugging Face cache gives such a stub). Connect to the Hub "
            "once or point HF_HOME at a cache holding FacebookAI/roberta-base."
        )
    if size > model_vocab_size:
        raise CheckpointError(
            f"The tokenizer from {source} has {size} tokens but the CLAP text tower only {model_vocab_size}."
        )


@functools.lru_cache(maxsize=4)
def generated_bpe_vocabulary(vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE (RoBERTa's special tokens and ids) trained on seeded pseudo-words."""
    rng = random.Random(0)
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(4000)]
    corpus = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(3000)]
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(
        corpus,
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    model = json.loads(trainer._tokenizer.to_str())["model"]
    return model["vocab"], [tuple(pair) for pair in model["merges"]]


@functools.lru_cache(maxsize=4)
def mel_filterbank(device: torch.device) -> torch.Tensor:
    """(freq_bins, mel_bins) triangles on the HTK mel scale, unnormalised: the values of
    torchaudio's `melscale_fbanks` (and librosa's `filters.mel(htk=True, norm=None)`)."""
    freqs = torch.linspace(0, SAMPLE_RATE // 2, AUDIO_CFG["window_size"] // 2 + 1, dtype=torch.float64)
    low, high = (2595.0 * np.log10(1.0 + AUDIO_CFG[f] / 700.0) for f in ("fmin", "fmax"))
    mels = torch.linspace(low, high, AUDIO_CFG["mel_bins"] + 2, dtype=torch.float64)
    edges = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    widths = edges.diff()
    slopes = edges[None, :] - freqs[:, None]
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    return torch.minimum(rising, falling).clamp(min=0).float().to(device)


def log_mel(waveforms: torch.Tensor) -> torch.Tensor:
    """(B, T) waveforms -> (B, frames, mel_bins) dB power mel spectrogram, in float32."""
    window = torch.hann_window(AUDIO_CFG["window_size"], device=waveforms.device)
    spectrum = torch.stft(
        waveforms.float(),
        n_fft=AUDIO_CFG["window_size"],
        hop_length=AUDIO_CFG["hop_size"],
        window=window,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    power = spectrum.abs().pow(2).transpose(1, 2)
    mel = power @ mel_filterbank(waveforms.device)
    return 10.0 * torch.log10(mel.clamp(min=1e-10))


def repeat_pad(waveform: torch.Tensor) -> torch.Tensor:
    """Tile a clip shorter than 10 s as often as it fits whole, then zero-pad (laion 'repeatpad')."""
    repeats = CLIP_SAMPLES // len(waveform)
    return F.pad(waveform.repeat(repeats), (0, CLIP_SAMPLES - repeats * len(waveform)))


def fusion_input(mel: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(4, CHUNK_FRAMES, mel_bins) fusion stack for one long clip's mel, and its `longer` flag."""
    total_frames = mel.shape[0]
    if total_frames == CHUNK_FRAMES:
        return mel.expand(4, -1, -1), False
    thirds = np.array_split(np.arange(total_frames - CHUNK_FRAMES + 1), 3)
    starts = [int(third[len(third) // 2]) if len(third) else 0 for third in thirds]
    crops = [mel[start : start + CHUNK_FRAMES] for start in starts]
    shrunk = TF.resize(mel[None], [CHUNK_FRAMES, mel.shape[1]], antialias=True)[0]
    return torch.stack([shrunk, *crops]), True


def quantize(waveform: np.ndarray) -> np.ndarray:
    """Round to 16-bit levels, as laion_clap does before embedding."""
    return (np.clip(waveform, -1.0, 1.0) * 32767.0).astype(np.int16).astype(np.float32) / 32767.0


class ClapEncoder(BaseEncoder):
    """CLAP text and audio towers (48 kHz mono float32 audio of any length)."""

    name: ClassVar[str] = "clap"
    profiles: ClassVar[dict[str, ClapConfig]] = CLAP_PROFILES

    def _load(self) -> None:
        self.tokenizer = build_tokenizer(self.config)
        self.model = build_clap_model(self.config).to(self.device)

    def _forward(self, modality: str, items: Sequence) -> torch.Tensor:
        if modality == "text":
            return self._embed_text(list(items))
        return self._embed_audio(items)

    def _embed_text(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(
            texts,
            padding="max_length",
            truncation=True,
            max_length=self.config.max_text_tokens,
            return_tensors="pt",
        )
        return self.model.encode_text(dict(tokens), device=self.device)

    def _embed_audio(self, clips: Sequence) -> torch.Tensor:
        with torch.autocast(self.device.type, enabled=False):
            inputs = self._fusion_inputs(clips)
        embedding = self.model.encode_audio(inputs, device=self.device)["embedding"]
        return self.model.audio_projection(embedding)

    def _fusion_inputs(self, clips: Sequence) -> dict[str, torch.Tensor]:
        """HTSAT's fusion input: clips up to 10 s share one batched STFT, longer ones go alone."""
        waveforms = [torch.from_numpy(quantize(_mono_waveform(clip))).to(self.device) for clip in clips]
        short = [i for i, waveform in enumerate(waveforms) if len(waveform) <= CLIP_SAMPLES]
        stacks: list[torch.Tensor | None] = [None] * len(waveforms)
        longer = [False] * len(waveforms)
        if short:
            mels = log_mel(torch.stack([repeat_pad(waveforms[i]) for i in short]))
            for i, mel in zip(short, mels, strict=True):
                stacks[i] = mel.expand(4, -1, -1)
        for i in sorted(set(range(len(waveforms))) - set(short)):
            stacks[i], longer[i] = fusion_input(log_mel(waveforms[i][None])[0])
        return {"mel_fusion": torch.stack(stacks), "longer": torch.tensor(longer, device=self.device)}


def _mono_waveform(clip: Any) -> np.ndarray:
    if not isinstance(clip, np.ndarray) or clip.ndim != 1 or clip.size == 0:
        raise InputError("CLAP embeds non-empty 1-D mono 48 kHz waveforms; load files with cmcr.data.media.")
    return clip.astype(np.float32, copy=False)
