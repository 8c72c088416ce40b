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


def read_config_text(path: str | Path) -> str:
    """The text of a config file.

    Raises:
        FileNotFoundError: when there is no such file.
        ConfigError: one line when `path` is a directory, unreadable or not UTF-8 text.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no config file at {path}")
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; pass a YAML config file (see tune_configs/)")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "a config is a YAML file"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None


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
        text = read_config_text(path)
        try:
            loaded = yaml_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from exc
        if not loaded:  # a file of comments or `{}` would silently train the built-in defaults
            raise ConfigError(
                f"{path}: the config is empty; write its sections (see tune_configs/), or run "
                "`raygan train` without a config for the default job"
            )
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        data = loaded
    for text in overrides or []:
        key, value = parse_override(text)
        set_dotted(data, key, value)
    return config_from_dict(data)
