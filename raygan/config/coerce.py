"""Turning plain nested dicts into the config dataclasses, and back.

`build` checks every key and value against the dataclass's type hints (the subset of typing
the config uses: Literal, unions with None, tuples, dicts, nested dataclasses, `Any` for plain
YAML values), so a bad key or value is a `ConfigError` that names it and what is allowed. Keys
of earlier versions are refused with what to write instead (`RENAMED`, `REMOVED`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Literal, get_args, get_origin

from raygan.errors import ConfigError

RENAMED: dict[str, str] = {
    "training.adversaries": "training.adversaries was replaced by training.rule: "
    "'neighbourhood' is now 'lipizzaner' (centre trained in place against adversaries drawn "
    "from the neighbourhood), 'own' stays 'own' (docs/training-rules.md lists the rules)",
}
"""Keys of earlier versions, with what to write instead."""
REMOVED: dict[str, str] = {
    "output.dir": "output.dir was removed (nothing read it): a plain run writes to "
    "`raygan train --out DIR`, a Tune experiment under output.storage_path",
}
"""Keys that did nothing and were removed: an error in a config a user writes, dropped from a
config an earlier version saved (`config_from_saved`)."""


def plain(value: Any) -> Any:
    """`value` with tuples as lists, all the way down (what YAML and JSON write)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _plain_value(value: Any, key: str) -> Any:
    """`value` if it is what YAML writes (a scalar, or lists and string-keyed mappings of them),
    with tuples as lists: an `Any` field is saved with the config and read back from it."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{key}: must be a finite number, got {value!r}")
        return value
    if isinstance(value, (list, tuple)):
        return [_plain_value(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain_value(v, f"{key}.{k}") for k, v in value.items()}
    raise ConfigError(f"{key}: {type(value).__name__} values are not allowed; use numbers, "
                      "strings, booleans, null, and lists or mappings of them")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against type `tp` (the subset of typing the config dataclasses use)."""
    if tp is Any:
        return _plain_value(value, key)
    origin = get_origin(tp)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            hint = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(
                f"{key}: {value!r} is not allowed; allowed values: "
                + ", ".join(repr(a) for a in allowed)
                + extra
            )
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as exc:
                errors.append(str(exc))
        if len(errors) == 1:  # `float | None`: the float's own reason ("must be finite", ...)
            raise ConfigError(errors[0])
        raise ConfigError(
            f"{key}: {value!r} is not allowed; expected "
            + " or ".join(_type_name(o) if o is not type(None) else "null" for o in options)
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        (key_tp, item_tp) = get_args(tp)
        return {
            _coerce(k, key_tp, key): _coerce(v, item_tp, f"{key}.{k}") for k, v in value.items()
        }
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp, _ellipsis) = get_args(tp)
        return tuple(_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):  # no option means "unbounded" or "undefined" by inf/nan
            raise ConfigError(f"{key}: must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    raise TypeError(f"unsupported config type {tp!r} at {key}")  # a bug in this module


def build(cls: Any, data: Any, prefix: str = "") -> Any:
    """An instance of dataclass `cls` from the mapping `data`, every value checked and coerced.

    Args:
        cls: the dataclass (its nested dataclass fields are built from nested mappings).
        data: a mapping of `cls`'s field names, or None for the defaults.
        prefix: the dotted key of `data` in the whole config, for error messages ("" at the top).

    Raises:
        ConfigError: on an unknown, renamed or removed key, or a value that is not allowed.
    """
    where = prefix or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if full in RENAMED or full in REMOVED:
            raise ConfigError(RENAMED.get(full) or REMOVED[full])
        if key not in names:
            hint = difflib.get_close_matches(str(key), names, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(
                f"unknown key {full!r}{extra}; allowed keys in {where}: " + ", ".join(names)
            )
        kwargs[key] = _coerce(value, hints[key], full)
    return cls(**kwargs)


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set `data["a"]["b"] = value` for `key` "a.b", creating missing sections.

    Raises:
        ConfigError: when a part of `key` before the last names a value, not a section.
    """
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value

