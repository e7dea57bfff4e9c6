"""Every generated asset's randomness comes from its name, so generating twice gives the same bytes."""

from __future__ import annotations

import zlib

import numpy as np


def named_rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))
