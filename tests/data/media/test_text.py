"""Text is bounded before any tokenizer sees it: linear work whatever a visitor types."""

from __future__ import annotations

import random
import string

import pytest

from cmcr.data.media.text import MAX_TEXT_CHARS, MAX_WORD_CHARS, BoundedCache, bound_text
from cmcr.models.encoders import build_encoder


def _random_word(length: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters) for _ in range(length))  # byte-pair encoding's worst case


def test_natural_text_is_unchanged():
    text = "a wooden chair with four legs, next to a small round table"
    assert bound_text(f"  {text}\n").text == text and bound_text(text).note is None


def test_long_text_is_cut_with_a_note_and_long_words_are_split():
    bounded = bound_text(_random_word(100_000))
    assert len(bounded.text.replace(" ", "")) == MAX_TEXT_CHARS and bounded.cut_chars == 100_000 - MAX_TEXT_CHARS
    assert max(len(word) for word in bounded.text.split()) == MAX_WORD_CHARS
    assert "1,000 characters" in bounded.note and "99,000 more" in bounded.note


@pytest.mark.parametrize("encoder_name", ["clip", "clap"])
def test_encoders_hand_their_tokenizer_only_bounded_text(encoder_name, monkeypatch):
    encoder = build_encoder(encoder_name, "tiny", device="cpu").load()
    seen = []
    real = encoder.tokenizer.__call__ if encoder_name == "clap" else encoder.tokenizer

    def spy(texts, *args, **kwargs):
        seen.extend([texts] if isinstance(texts, str) else texts)
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(encoder, "tokenizer", spy if encoder_name == "clip" else _Spying(encoder.tokenizer, spy))
    encoder.embed("text", [_random_word(50_000), "a dog"])
    assert len(seen) == 2 and all(len(text) <= MAX_TEXT_CHARS + MAX_TEXT_CHARS // MAX_WORD_CHARS for text in seen)
    assert max(len(word) for text in seen for word in text.split()) <= MAX_WORD_CHARS and seen[1] == "a dog"
    with pytest.raises(Exception, match="must be strings"):
        encoder.embed("text", [b"bytes are not text"])


class _Spying:
    """A tokenizer stand-in that records its inputs and forwards everything to the real one."""

    def __init__(self, tokenizer, spy):
        self._tokenizer, self._spy = tokenizer, spy

    def __call__(self, *args, **kwargs):
        return self._spy(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


def test_the_clip_word_cache_stays_bounded():
    encoder = build_encoder("clip", "tiny", device="cpu").load()
    cache = encoder.tokenizer.cache
    assert isinstance(cache, BoundedCache) and cache.pinned  # open_clip's special tokens stay
    cache.limit = 100
    for batch in range(10):
        encoder.embed("text", [" ".join(_random_word(8, seed=batch * 100 + i) for i in range(60))])
    assert len(cache) <= len(cache.pinned) + 100 + 100 // 8 and cache.pinned <= set(cache)


def test_a_bounded_cache_forgets_the_oldest_entries_first():
    cache = BoundedCache({"<start>": "<start>"}, limit=8)
    for index in range(30):
        cache[f"w{index}"] = index
    assert "<start>" in cache and "w29" in cache and "w0" not in cache and len(cache) <= 1 + 8 + 1
