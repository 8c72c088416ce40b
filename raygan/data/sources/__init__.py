"""Data sources: every way raygan gets a training set, chosen by `data.name`.

A source is one file that calls `register_source` with a `Source` (the config's `SourceSpec`,
`raygan.config.specs`): the `data.*` keys it reads, what it can say about its data before
loading it (`kind`), and `load(cfg, seed) -> Dataset`.
The config rejects keys a source does not read (an option that cannot act is an error), and
the driver loads the data once, before Ray starts, so a bad folder or array is one line.

Modules here import only numpy at import time (the config reads this registry); torch,
Pillow and the rest are imported by `load`.
"""

from __future__ import annotations

import importlib

from raygan.config.specs import SOURCES as _REGISTRY
from raygan.config.specs import SourceSpec as Source

__all__ = ["COMMON_KEYS", "MODULES", "Source", "get_source", "register_source", "source_names"]

COMMON_KEYS: tuple[str, ...] = ("name", "sharding")
"""`data.*` keys every source reads."""
MODULES = ("builtin", "folder", "array", "python", "hf")
"""The built-in sources' modules (`raygan.components` imports them with `raygan`)."""


def register_source(source: Source) -> Source:
    """Add a source to the config's registry (`raygan.config.specs.SOURCES`) under
    `source.name` (a later one replaces it)."""
    return _REGISTRY.add(source)


def _load_modules() -> None:
    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")


def source_names() -> tuple[str, ...]:
    """Every registered `data.name`."""
    _load_modules()
    return _REGISTRY.names()


def get_source(name: str) -> Source:
    """The source registered as `name`.

    Raises:
        KeyError: naming the registered sources.
    """
    _load_modules()
    if name not in _REGISTRY:
        raise KeyError(f"unknown data source {name!r}; allowed: {', '.join(_REGISTRY.names())}")
    return _REGISTRY.get(name)
