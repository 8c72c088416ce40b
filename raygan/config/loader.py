"""Reading run configs: YAML files, `--set a.b=value` overrides, configs saved by raygan.

`load_config` is what the CLI calls; `config_from_saved` reads the config a checkpoint or a Tune
trial carries, which may come from an earlier version of raygan.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from raygan.config.coerce import REMOVED, set_dotted
from raygan.config.schema import RunConfig, config_from_dict
from raygan.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` as a float (YAML 1.1 wants `1.0e-3`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    """Parse YAML safely, reading `1e-3` as a number."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader subclass)


def config_from_saved(data: dict[str, Any]) -> RunConfig:
    """`config_from_dict` of a config raygan saved (a checkpoint's, a Tune trial's).

    An earlier version may have saved keys since removed (`REMOVED`): they are dropped instead
    of refused.

    Raises:
        ConfigError: on any other unknown key or a value that is not allowed.
    """
    data = copy.deepcopy(data)
    for key in REMOVED:
        section, name = key.split(".")
        if isinstance(data.get(section), dict):
            data[section].pop(name, None)
    return config_from_dict(data)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one `a.b=value` override; the value is read as YAML (`3`, `true`, `[a, b]`)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected the form section.key=value")
    return key.strip(), yaml_load(raw) if raw.strip() else None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's error on one line: what is wrong and where."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load a YAML run config and apply `a.b=value` overrides.

    Args:
        path: YAML file; None starts from the defaults.
        overrides: strings of the form `section.key=value`.

    Raises:
        ConfigError: on an unknown key, a bad value or malformed YAML.
        FileNotFoundError: when `path` does not exist.
    """
    data: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text()
        try:
            loaded = yaml_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        data = loaded or {}
    for text in overrides or []:
        key, value = parse_override(text)
        set_dotted(data, key, value)
    return config_from_dict(data)
