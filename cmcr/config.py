"""Config files and command-line overrides, read one way for every CLI.

`scripts/train.py --config` (trainer fields) and the pipeline (sections of fields) both accept
YAML or TOML files and `key=value` overrides whose values are parsed as YAML, so `top_k=null`,
`amp=false` and `lr=3e-4` mean the same everywhere. Every failure is an InputError naming the file
or override, which the CLIs print without a traceback.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

from cmcr.errors import InputError


def read_config_file(path: str | Path) -> dict:
    """A YAML (.yaml/.yml) or TOML (.toml) file holding a mapping; an empty file is `{}`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {path} does not exist")
    try:
        text = path.read_text()
        values = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, RecursionError, tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read config file {path}: {exc}") from exc
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise InputError(f"config file {path} must hold a mapping of option: value")
    return values


def parse_override(override: str) -> tuple[str, Any]:
    """`key=value` → (key, value parsed as YAML)."""
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InputError(f"override {override!r} must look like key=value, e.g. epochs=3")
    try:
        return key, yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"cannot parse the value of {override!r}: {exc}") from exc
