"""The shared settings of quick pipeline runs, and one thread for torch as in CI.

Raw-data folders come from tests/fixtures/sources.py (fixture `sources`).
"""

from __future__ import annotations

import pytest
import torch

QUICK = ["extract.num_workers=0", "extract.device=cpu", "extract.shard_size=16", "extract.num_points=512",
         "sources.corpus_size=40", "train.epochs=2", "train.hidden=32", "train.batch_size=16",
         "train.device=cpu", "evaluation.holdout_fraction=0.25"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """As in CI: OpenMP spinning on a shared 2-core machine costs more than it gains."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
