"""The project's lint rules ([tool.ruff] in pyproject.toml) hold on the whole tree, so CI enforces them."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.paths import REPO


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is missing: it is part of the test dependencies (README's install command)")
    checked = subprocess.run([ruff, "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout[-4000:]
