"""Typed build of frozen dataclasses from plain nested mappings (YAML, JSON, ``--set key.sub=value``).

:func:`build` turns ``{"audio": {"sample_rate": 16000}}`` into the dataclass tree of :mod:`spectrotune.config` (or
any frozen dataclass with typed fields), checking every key and value against the field types: ``bool``, ``int``,
``float`` (ints widen), ``str`` (optionally restricted by :func:`choices`), ``X | None``, nested dataclasses,
``tuple[X, ...]`` (a comma-separated string is accepted for ``tuple[str, ...]``) and ``dict[str, X]``. Errors are
:class:`~spectrotune.errors.ConfigError` naming the key, the value and where it came from (an :class:`Origin`: the
``--set`` that gave it, else the YAML file or the defaults).

:func:`read_yaml_mapping` reads a YAML file, :func:`parse_override` one ``key.sub=value`` item with
``yaml.safe_load`` (never evaluated as code) and :func:`apply_overrides` layers them onto the mapping read from the
file. :func:`to_plain` goes the other way: a dataclass tree to the nested dict of lists that YAML and JSON save.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Union

import yaml

from spectrotune.errors import ConfigError

__all__ = [
    "Origin", "apply_overrides", "build", "choices", "parse_override", "read_yaml_mapping", "set_path", "to_plain",
]


_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")  #: 1e-4, 3E5, 2.5e-3: floats YAML leaves as text


def choices(*values: str) -> dict[str, tuple[str, ...]]:
    """Field metadata restricting a ``str`` field to ``values``: ``field(default="a", metadata=choices("a", "b"))``."""
    return {"choices": values}


class Origin:
    """Says where a key came from: the ``--set`` that gave it, else the YAML file (or the defaults).

    Parameters
    ----------
    default : str
        Where every key not in ``keys`` came from (a YAML path, ``"defaults"``, ``"saved"`` ...).
    keys : Mapping[str, str], optional
        ``{"noise.enabled": "--set noise.enabled=false", ...}``: dotted keys given on the command line.
    """

    def __init__(self, default: str, keys: Mapping[str, str] | None = None) -> None:
        self.default = default
        self.keys = dict(keys or {})

    def of(self, key: str) -> str:
        """Origin of ``key`` (``noise.variants[0].kind``): its own override, an enclosing one's, or the default."""
        parts = key.replace("[", ".[").split(".")
        for n in range(len(parts), 0, -1):
            found = self.keys.get(".".join(parts[:n]).replace(".[", "["))
            if found:
                return found
        return self.default

    def within(self, prefix: str) -> str:
        """Every origin that contributed to section ``prefix`` ("" = the whole config), joined with ``; ``."""
        hits = [v for k, v in self.keys.items() if k == prefix or k.startswith(prefix + ".") or not prefix]
        return "; ".join(dict.fromkeys([self.default, *hits])) if hits else self.default

    def __str__(self) -> str:
        return self.default


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of YAML file ``path`` (an empty file is ``{}``); ConfigError names the file."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read config: {e}") from e
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(loaded).__name__}")
    return loaded


def to_plain(instance: Any) -> dict[str, Any]:
    """Dataclass ``instance`` as a plain nested dict (tuples as lists), the form saved to YAML/JSON."""
    return _plain(dataclasses.asdict(instance))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def parse_override(item: str) -> tuple[str, Any]:
    """Split ``key.sub=value`` and parse the value as YAML (safe)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key.sub=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {item!r}: cannot parse value {raw!r}: {e}") from e
    return key, value


def set_path(data: dict[str, Any], key: str, value: Any, *, origin: str) -> None:
    """Set dotted ``key`` (``audio.hop_seconds.train``) in nested ``data``, creating sections on the way."""
    node = data
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{origin}: key {'.'.join(parts[: i + 1])!r} is a value, not a section (in {key!r})")
        node = child
    node[parts[-1]] = value


def apply_overrides(
    data: dict[str, Any], *, default_origin: str, base: Mapping[str, Any] | None = None, overrides: Sequence[str] = ()
) -> Origin:
    """Set ``base`` (``{dotted key: value}``, from the CLI's own options), then ``--set`` items, into ``data``.

    ``data`` is changed in place; the returned :class:`Origin` remembers which key came from where, with
    ``default_origin`` (the YAML file or ``"defaults"``) for the rest.
    """
    origins: dict[str, str] = {}
    for key, value in (base or {}).items():
        set_path(data, key, value, origin="command line")
        origins[key] = "command line"
    for item in overrides:
        key, value = parse_override(item)
        set_path(data, key, value, origin=f"--set {item}")
        origins[key] = f"--set {item}"
    return Origin(default_origin, origins)


def build(cls: type, data: Any, *, origin: str | Origin, prefix: str = "") -> Any:
    """Validate ``data`` (a nested mapping) into dataclass ``cls``; errors name key, value and origin."""
    if not isinstance(origin, Origin):
        origin = Origin(str(origin))
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin.of(prefix)}: {prefix or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    data = _without_retired(cls, data, origin=origin, prefix=prefix)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(
            f"{origin.of(where)}: unknown key {where!r} (valid keys{' in ' + prefix if prefix else ''}: {', '.join(fields)})"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(hints[name], value, key=key, origin=origin, meta=fields[name].metadata)
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{origin.within(prefix)}: {e}") from e


def _without_retired(cls: type, data: Mapping[str, Any], *, origin: Origin, prefix: str) -> Mapping[str, Any]:
    """``data`` less the keys ``cls.RETIRED`` names (a ClassVar ``{key: why}``) when they hold null.

    Every resolved config saved before a key was retired (next to a dataset, a bundle, a sweep) still spells it out
    with its null default, so those files keep loading; a retired key set to a value is refused, saying why.
    """
    retired = getattr(cls, "RETIRED", {})
    for name in sorted(set(data) & set(retired)):
        if data[name] is not None:
            key = f"{prefix}.{name}" if prefix else name
            raise ConfigError(f"{origin.of(key)}: {key} was removed: {retired[name]}")
    return {k: v for k, v in data.items() if k not in retired}


def _coerce(tp: Any, value: Any, *, key: str, origin: Origin, meta: Mapping[str, Any]) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{origin.of(key)}: {key}={value!r} is not valid: expected {expected}")

    origin_tp = typing.get_origin(tp)
    if origin_tp in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(inner[0], value, key=key, origin=origin, meta=meta)
        raise bad(str(tp))
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return build(tp, value, origin=origin, prefix=key)
    if origin_tp is dict:
        _key_tp, value_tp = typing.get_args(tp)
        if not isinstance(value, Mapping):
            raise bad("a mapping")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{origin.of(key)}: {key}: key {k!r} must be a string")
            out[k] = v if value_tp is Any else _coerce(value_tp, v, key=f"{key}.{k}", origin=origin, meta={})
        return out
    if origin_tp is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            if item_tp is str and isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            else:
                raise bad("a list")
        return tuple(_coerce(item_tp, v, key=f"{key}[{i}]", origin=origin, meta=meta) for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad("true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad("an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string; everyone writes it that way
        raise bad("a number")
    if tp is str:
        if isinstance(value, bool) and meta.get("choices") and str(value).lower() in meta["choices"]:
            value = str(value).lower()  # YAML reads `false` as a boolean; use_gpu=false means "false"
        if not isinstance(value, str):
            raise bad("a string")
        allowed = meta.get("choices")
        if allowed and value not in allowed:
            raise bad(f"one of {', '.join(allowed)}")
        return value
    raise bad(str(tp))  # pragma: no cover - every field type above is handled


class JsonRecord:
    """Base of the typed records one JSON file holds (the dataset manifest, the bundle metadata): the dataclass
    fields are the file's keys, in its order, and the same class writes and reads the file.

    Subclasses (frozen dataclasses) set ``FILE`` (file name), ``FORMAT`` (the ``format`` key's value written;
    other values are refused unless listed in ``READS``, the older formats still read), ``KIND`` and ``WHAT`` (words
    for messages, e.g. ``"dataset"`` / ``"manifest"``) and ``ERROR`` (the :mod:`spectrotune.errors` class raised for
    a file that does not fit).
    """

    FILE: ClassVar[str]
    FORMAT: ClassVar[str]
    READS: ClassVar[tuple[str, ...]] = ()
    KIND: ClassVar[str]
    WHAT: ClassVar[str]
    ERROR: ClassVar[type[Exception]]

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON types (tuples as lists), in the file's key order."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self) -> str:
        """The text of the file."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any, *, origin: str | None = None) -> Any:
        """Check and type a loaded file; ``ERROR`` names the file and what is wrong with it."""
        origin = origin or cls.FILE
        if not isinstance(data, dict):
            raise cls.ERROR(f"{origin}: unreadable {cls.WHAT}: not a JSON object")
        if data.get("format") != cls.FORMAT and data.get("format") not in cls.READS:
            expected = " or ".join((cls.FORMAT, *cls.READS))
            raise cls.ERROR(f"{origin}: unsupported {cls.KIND} format {data.get('format')!r} (expected {expected})")
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in data
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise cls.ERROR(f"{origin}: unreadable {cls.WHAT}: missing {', '.join(missing)}")
        try:
            return build(cls, data, origin=origin)
        except ConfigError as e:
            raise cls.ERROR(f"unreadable {cls.WHAT}: {e}") from e

    def write(self, directory: str | Path) -> None:
        """Write ``directory/FILE`` (a local folder or a URI; local files are written aside, then renamed)."""
        from spectrotune import storage

        storage.write_text(storage.join(directory, self.FILE), self.to_json())
