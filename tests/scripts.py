"""Scripts under scripts/ loaded as modules, so tests call their `main(argv)` in process."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from tests.paths import SCRIPTS


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
