"""Where the tests find the checkout's own folders, wherever a test file sits."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
SCRIPTS = REPO / "scripts"
