"""The one config reader: files, overrides and typed dataclasses built from the real annotations."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from cmcr import config
from cmcr.errors import InputError


@dataclass
class Inner:
    rate: float | None = 0.5  # an optional float: ints, floats and null all fit
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[str, int] = ("a", 1)


@dataclass
class Outer:
    name: str = "run"
    flag: bool = False
    tags: list[str] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner, metadata={config.LABEL: "inner setting"})
    other: Inner = field(default_factory=Inner)


@pytest.mark.parametrize("value, expected", [(0.25, 0.25), (3, 3.0), (None, None)])
def test_an_optional_float_takes_floats_ints_and_null(value, expected):
    built = config.build(Inner, {"rate": value}, "option")
    assert built.rate == expected and type(built.rate) is type(expected)


@pytest.mark.parametrize("value", ["fast", True, [0.5]])
def test_an_optional_float_refuses_other_types_naming_the_annotation(value):
    with pytest.raises(InputError, match=r"option rate=.* must be of type float \| None"):
        config.build(Inner, {"rate": value}, "option")


def test_nested_sections_tuples_and_lists_are_built_from_plain_data():
    built = config.build(Outer, {"flag": True, "tags": ["x"], "inner": {"sizes": [3, 4, 5], "pair": ["b", 2]},
                                 "other": None}, "config key")
    assert built.flag is True and built.tags == ["x"]
    assert built.inner == Inner(rate=0.5, sizes=(3, 4, 5), pair=("b", 2))
    assert built.other == Inner()  # a null section keeps its defaults


@pytest.mark.parametrize("values, message", [
    ({"nmae": "x"}, r"unknown config key\(s\) \['nmae'\]; known: \['flag', 'inner', 'name', 'other', 'tags'\]"),
    ({"flag": 1}, r"config key flag=1 must be of type bool"),
    ({"tags": "x"}, r"config key tags='x' must be of type list\[str\]"),
    ({"inner": {"size": [1]}}, r"unknown inner setting\(s\) \['size'\]"),
    ({"other": {"pair": ["b"]}}, r"other option pair=\['b'\] must be of type tuple\[str, int\]"),
    ({"other": {"sizes": [1.5]}}, r"other option sizes=\[1.5\] must be of type tuple\[int, ...\]"),
    ({"inner": 3}, r"inner must be a section of options, not 3"),
])
def test_unknown_keys_and_wrong_types_are_input_errors(values, message):
    with pytest.raises(InputError, match=message):
        config.build(Outer, values, "config key")


def test_overrides_reach_sections_and_leave_the_values_untouched():
    values = {"name": "run", "inner": {"rate": 0.1}}
    applied = config.apply_overrides(values, ["inner.rate=null", "flag=true", "sizes=[7]"],
                                     sections={"sizes": "other"})
    assert applied == {"name": "run", "flag": True, "inner": {"rate": None}, "other": {"sizes": [7]}}
    assert values == {"name": "run", "inner": {"rate": 0.1}}
    with pytest.raises(InputError, match="name must be a section"):
        config.apply_overrides(values, ["name.first=1"])
    with pytest.raises(InputError, match="must look like key=value"):
        config.apply_overrides(values, ["flag"])


def test_yaml_and_toml_files_read_alike(tmp_path):
    (tmp_path / "run.yaml").write_text("name: yaml\ninner: {rate: 2}\n")
    (tmp_path / "run.toml").write_text('name = "yaml"\n[inner]\nrate = 2\n')
    (tmp_path / "empty.yaml").write_text("")
    read = [config.read_config_file(tmp_path / name) for name in ("run.yaml", "run.toml")]
    assert read[0] == read[1] == {"name": "yaml", "inner": {"rate": 2}}
    assert config.build(Outer, read[0], "config key").inner.rate == 2.0
    assert config.read_config_file(tmp_path / "empty.yaml") == {}
    with pytest.raises(InputError, match="does not exist"):
        config.read_config_file(tmp_path / "missing.yaml")
