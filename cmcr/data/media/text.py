"""Text inputs, bounded before any tokenizer sees them.

Both text towers read at most 77 tokens, so characters past the first thousand or so can never
reach the model, yet their tokenizers would still spend time on them: byte-pair encoding is
quadratic in the length of a word, so one long random "word" costs seconds (docs/reliability.md has
the measurements). Every text therefore passes `bound_text` first: it is cut to `MAX_TEXT_CHARS`
characters and words longer than `MAX_WORD_CHARS` are split into pieces of that length, which makes
tokenizing linear in the text's length. Natural text is unchanged: no English word is that long,
and 1,000 characters hold well over 77 tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_TEXT_CHARS = 1000
MAX_WORD_CHARS = 64
_LONG_WORD = re.compile(r"\S{%d,}" % (MAX_WORD_CHARS + 1))


@dataclass(frozen=True)
class BoundedText:
    """A text as the encoders will read it, and how much of the original was cut off."""

    text: str
    cut_chars: int = 0

    @property
    def note(self) -> str | None:
        """What to tell a person whose text was cut (None when nothing was)."""
        if not self.cut_chars:
            return None
        return (f"Your text was cut to its first {MAX_TEXT_CHARS:,} characters "
                f"({self.cut_chars:,} more were left out); the text encoders read about 77 words at most.")


def bound_text(text: str) -> BoundedText:
    """`text` stripped, cut to `MAX_TEXT_CHARS` and with over-long words split (linear time)."""
    stripped = text.strip()
    kept = stripped[:MAX_TEXT_CHARS]
    split = _LONG_WORD.sub(lambda m: " ".join(m.group(0)[i:i + MAX_WORD_CHARS]
                                              for i in range(0, len(m.group(0)), MAX_WORD_CHARS)), kept)
    return BoundedText(split, cut_chars=len(stripped) - len(kept))


class BoundedCache(dict):
    """A dict that forgets its oldest entries beyond `limit` (except the `pinned` keys), for the word
    caches tokenizers keep: left unbounded they grow with every new word a visitor types."""

    def __init__(self, initial: dict, limit: int) -> None:
        super().__init__(initial)
        self.pinned = frozenset(initial)
        self.limit = limit

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        if len(self) > len(self.pinned) + self.limit + self.limit // 8:  # evict in bulk: amortised O(1)
            excess = len(self) - len(self.pinned) - self.limit
            for old in [k for k in self if k not in self.pinned][:excess]:
                del self[old]
