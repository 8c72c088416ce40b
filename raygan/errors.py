"""The error a configuration check raises, in a module that imports nothing of raygan.

`raygan.config` builds its schema on the `tune` section of `raygan.tuning.section`, and both
validate through `check`; keeping them here, outside both packages, leaves no import cycle
whichever of the two is imported first. Import `ConfigError` from `raygan.config`.
"""

from __future__ import annotations

import math


class ConfigError(ValueError):
    """A configuration key is unknown or its value is not allowed."""


def check(ok: bool, key: str, message: str) -> None:
    """Raise `ConfigError("<key>: <message>")` unless `ok`.

    Raises:
        ConfigError: when `ok` is false.
    """
    if not ok:
        raise ConfigError(f"{key}: {message}")


def check_nonnegative(value: float, key: str, meaning: str = "") -> None:
    """Raise `ConfigError` unless `value` is a finite number >= 0; `meaning` (e.g. "0: off")
    is shown in brackets in the message.

    Raises:
        ConfigError: when `value` is negative, NaN or infinite.
    """
    note = f" ({meaning})" if meaning else ""
    ok = math.isfinite(value) and value >= 0
    check(ok, key, f"must be a finite number >= 0{note}, got {value}")
