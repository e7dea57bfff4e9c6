"""Comparing rankings computed in two ways (batched vs single queries, FAISS vs torch).

Two float computations of the same scores can differ in the last bits (batch size, thread count,
the CPU's vector unit), so exact equality of ranked hits is a coin toss wherever two items score
within rounding of each other. What must hold: the scores agree within `tol`, and every item
whose score is more than `tol` away from its neighbours sits at the same rank.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TOLERANCE = 1e-5


def assert_same_ranking(got_ids: Sequence, got_scores: Sequence[float], want_ids: Sequence,
                        want_scores: Sequence[float], tol: float = TOLERANCE) -> None:
    """One ranked list against another, tolerant of near-ties only."""
    assert len(got_ids) == len(want_ids), (got_ids, want_ids)
    np.testing.assert_allclose(got_scores, want_scores, rtol=0, atol=tol)
    for rank, (got, want) in enumerate(zip(got_ids, want_ids)):
        neighbours = [want_scores[j] for j in (rank - 1, rank + 1) if 0 <= j < len(want_scores)]
        if all(abs(want_scores[rank] - score) > tol for score in neighbours):
            assert got == want, f"rank {rank + 1}: {got!r} != {want!r} (scores {list(want_scores)})"


def assert_same_hits(got: Sequence[Sequence], want: Sequence[Sequence], tol: float = TOLERANCE) -> None:
    """Per-query lists of gallery `Hit`s: same ranks, same items where scores are not tied."""
    assert len(got) == len(want)
    for got_hits, want_hits in zip(got, want):
        assert [hit.rank for hit in got_hits] == [hit.rank for hit in want_hits]
        assert_same_ranking([hit.item.id for hit in got_hits], [hit.score for hit in got_hits],
                            [hit.item.id for hit in want_hits], [hit.score for hit in want_hits], tol)
