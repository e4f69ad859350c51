"""Tests of spectrotune.typed_config: typed build of frozen dataclasses, origins in errors, overrides, YAML files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from spectrotune.errors import ConfigError
from spectrotune.typed_config import (
    Origin,
    apply_overrides,
    build,
    choices,
    parse_override,
    read_yaml_mapping,
    set_path,
    to_plain,
)


@dataclass(frozen=True)
class Inner:
    level: float = 1.0
    mode: str = field(default="auto", metadata=choices("auto", "true", "false"))

    def __post_init__(self) -> None:
        if self.level < 0:
            raise ConfigError(f"inner.level: must be >= 0, got {self.level!r}")


@dataclass(frozen=True)
class Outer:
    count: int = 1
    flag: bool = False
    name: str | None = None
    tags: tuple[str, ...] = ()
    inner: Inner = Inner()
    table: dict[str, float] = field(default_factory=dict)
    free: dict[str, Any] = field(default_factory=dict)


def test_build_fills_defaults_and_widens_ints():
    built = build(Outer, {"count": 3, "inner": {"level": 2}}, origin="test")
    assert built == Outer(count=3, inner=Inner(level=2.0))
    assert type(built.inner.level) is float


@pytest.mark.parametrize(("text", "expected"), [("1e-4", 1e-4), ("3E5", 3e5), ("+2.5e-3", 2.5e-3), (".5e1", 5.0)])
def test_a_float_in_exponent_notation_is_a_number_although_yaml_reads_it_as_text(text, expected, tmp_path):
    """YAML 1.1 (PyYAML) reads ``1e-4`` (no dot) as a string: ``--set train.lr=1e-4`` and ``lr: 1e-4`` in a file
    were refused as "expected a number"."""
    data: dict[str, Any] = {}
    origin = apply_overrides(data, default_origin="defaults", overrides=[f"inner.level={text}"])
    assert build(Outer, data, origin=origin).inner.level == expected
    (tmp_path / "c.yaml").write_text(f"inner:\n  level: {text}\n")
    assert build(Outer, read_yaml_mapping(tmp_path / "c.yaml"), origin="test").inner.level == expected


@pytest.mark.parametrize("text", ["1e-4x", "e5", "1e", "0x1p3"])
def test_text_that_only_looks_like_an_exponent_is_still_refused(text):
    with pytest.raises(ConfigError, match="expected a number"):
        build(Outer, {"inner": {"level": text}}, origin="test")


def test_tuple_of_str_accepts_a_comma_separated_string():
    assert build(Outer, {"tags": "a, b,,c"}, origin="test").tags == ("a", "b", "c")
    assert build(Outer, {"tags": ["x"]}, origin="test").tags == ("x",)


def test_yaml_booleans_are_read_as_choices_of_a_string_field():
    assert build(Outer, {"inner": {"mode": False}}, origin="test").inner.mode == "false"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"count": True}, "count=True is not valid: expected an integer"),
        ({"flag": "yes"}, "flag='yes' is not valid: expected true or false"),
        ({"tags": 3}, "tags=3 is not valid: expected a list"),
        ({"inner": {"mode": "maybe"}}, "inner.mode='maybe' is not valid: expected one of auto, true, false"),
        ({"table": {"a": "x"}}, "table.a='x' is not valid: expected a number"),
        ({"table": {1: 2.0}}, "table: key 1 must be a string"),
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"inner": {"bogus": 1}}, "unknown key 'inner.bogus' (valid keys in inner: level, mode)"),
        ({"inner": 5}, "inner must be a mapping"),
    ],
)
def test_bad_values_name_origin_key_and_value(data, needle):
    with pytest.raises(ConfigError) as info:
        build(Outer, data, origin="mine.yaml")
    message = str(info.value)
    assert message.startswith("mine.yaml: ")
    assert needle in message


def test_rule_of_a_section_names_every_origin_that_touched_it():
    data: dict[str, Any] = {}
    origin = apply_overrides(data, default_origin="mine.yaml", overrides=["inner.level=-1"])
    with pytest.raises(ConfigError, match=r"^mine\.yaml; --set inner\.level=-1: inner\.level: must be >= 0"):
        build(Outer, data, origin=origin)


def test_origin_of_a_key_is_its_own_or_an_enclosing_override():
    origin = Origin("file.yaml", {"inner": "--set inner={level: 2}", "tags[1]": "--set tags[1]=x"})
    assert origin.of("inner.level") == "--set inner={level: 2}"
    assert origin.of("tags[1]") == "--set tags[1]=x"
    assert origin.of("count") == "file.yaml"
    assert origin.within("inner") == "file.yaml; --set inner={level: 2}"
    assert origin.within("count") == "file.yaml" == str(origin)


def test_overrides_layer_base_then_set_items_and_remember_where_each_came_from():
    data: dict[str, Any] = {"count": 1}
    origin = apply_overrides(data, default_origin="f.yaml", base={"flag": True}, overrides=["inner.level=3", "count=2"])
    assert data == {"count": 2, "flag": True, "inner": {"level": 3}}
    assert origin.of("flag") == "command line"
    assert origin.of("inner.level") == "--set inner.level=3"
    assert origin.of("name") == "f.yaml"


@pytest.mark.parametrize(("item", "needle"), [("count", "expected key.sub=value"), ("=3", "empty key"),
                                              ("count=[1", "cannot parse value")])
def test_bad_override_item_is_config_error(item, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_override(item)


def test_empty_override_value_is_none():
    assert parse_override("name=") == ("name", None)


def test_set_path_refuses_to_descend_into_a_value():
    data = {"count": 1}
    with pytest.raises(ConfigError, match=r"--set count\.x=1: key 'count' is a value, not a section"):
        set_path(data, "count.x", 1, origin="--set count.x=1")


def test_read_yaml_mapping(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("")
    assert read_yaml_mapping(path) == {}
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: top level must be a mapping, got list"):
        read_yaml_mapping(path)
    path.write_text("a: [1\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: cannot read config"):
        read_yaml_mapping(path)


def test_to_plain_round_trips_through_build():
    outer = Outer(tags=("a",), inner=Inner(level=0.5), table={"x": 1.0})
    plain = to_plain(outer)
    assert plain["tags"] == ["a"] and plain["inner"] == {"level": 0.5, "mode": "auto"}
    assert build(Outer, plain, origin="saved") == outer
