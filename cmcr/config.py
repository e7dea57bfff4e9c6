"""Config files, command-line overrides and typed config objects, read one way for every CLI.

`scripts/train.py --config` (trainer fields) and the pipeline (sections of fields) both accept
YAML or TOML files and `key=value` overrides whose values are parsed as YAML, so `top_k=null`,
`amp=false` and `lr=3e-4` mean the same everywhere. Plain values become dataclasses through
`build`, which checks each value against the field's real annotation (not its default), so a
`float | None` field takes a float, an int or null alike. Every failure is an InputError naming
the file, override or option, which the CLIs print without a traceback.
"""

from __future__ import annotations

import dataclasses
import reprlib
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from cmcr.errors import InputError

T = TypeVar("T")
LABEL = "config"  # dataclasses.field(metadata={LABEL: ...}): what a nested section's options are called


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


def apply_overrides(values: Mapping, overrides: Iterable[str], *,
                    sections: Mapping[str, str] | None = None) -> dict:
    """`key=value` and `section.key=value` overrides on a copy of `values` (which is left as it
    is). `sections` maps a bare key to the section it belongs to, so `epochs=3` can mean
    `train.epochs=3`."""
    values = dict(values)
    for override in overrides:
        key, value = parse_override(override)
        *path, name = key.split(".")
        if not path and sections and name in sections:
            path = [sections[name]]
        table = values
        for section in path:
            inner = table.get(section, {})
            if not isinstance(inner, dict):
                raise InputError(f"{section} must be a section, not {reprlib.repr(inner)}")
            table[section] = table = dict(inner)
        table[name] = value
    return values


def build(cls: type[T], values: Any, label: str) -> T:
    """A `cls` dataclass from plain data, each value checked against its field's annotation.

    `label` names the options in messages ("training option": "unknown training option(s)
    ['epoch']"). Ints are accepted for floats, lists for tuples, null for optional fields and for
    a nested dataclass (its defaults); a nested dataclass field is labelled by its `LABEL`
    metadata, else "<field> option". Unknown keys and wrong types are InputErrors.
    """
    if not isinstance(values, Mapping):
        raise InputError(f"{label}s must be a mapping of option: value, not {reprlib.repr(values)}")
    fields = {spec.name: spec for spec in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields), key=str)  # YAML keys may be numbers or null
    if unknown:
        raise InputError(f"unknown {label}(s) {unknown}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    return cls(**{name: _field_value(fields[name], hints[name], value, label)
                  for name, value in values.items()})


def _field_value(spec: dataclasses.Field, kind: Any, value: Any, label: str) -> Any:
    if dataclasses.is_dataclass(kind):
        if value is not None and not isinstance(value, Mapping):
            raise InputError(f"{spec.name} must be a section of options, not {reprlib.repr(value)}")
        return build(kind, value or {}, spec.metadata.get(LABEL, f"{spec.name} option"))
    try:
        return _coerce(kind, value)
    except _Mismatch:
        raise InputError(f"{label} {spec.name}={reprlib.repr(value)} must be of type "
                         f"{_type_name(kind)}") from None


class _Mismatch(Exception):
    """A value that does not fit an annotation (turned into an InputError naming the option)."""


def _coerce(kind: Any, value: Any) -> Any:
    """`value` as an instance of the annotation `kind`, or _Mismatch."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if kind is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin in (typing.Union, types.UnionType):
        for option in sorted(args, key=lambda arg: arg is not type(None)):  # None first: exact
            try:
                return _coerce(option, value)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        if origin is list:
            return [_coerce(args[0] if args else Any, item) for item in value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], item) for item in value)
        if args and len(args) != len(value):
            raise _Mismatch
        return tuple(_coerce(arg, item) for arg, item in zip(args, value)) if args else tuple(value)
    return _coerce_scalar(kind, value)


def _coerce_scalar(kind: type, value: Any) -> Any:
    if isinstance(value, bool) != (kind is bool):  # bool is an int to Python, never to a config
        raise _Mismatch
    if kind is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, kind):
        raise _Mismatch
    return value


def _type_name(kind: Any) -> str:
    """`int`, `float | None`, `list[str]`: the annotation as it is written in the source."""
    if isinstance(kind, type) and not typing.get_args(kind):
        return kind.__name__
    return str(kind).replace("typing.", "").replace("NoneType", "None")
