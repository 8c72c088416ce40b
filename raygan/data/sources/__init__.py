"""Data sources: every way raygan gets a training set, chosen by `data.name`.

A source is one file that calls `register_source` with a `Source`: the `data.*` keys it reads,
what it can say about its data before loading it (`kind`), and `load(cfg, seed) -> Dataset`.
The config rejects keys a source does not read (an option that cannot act is an error), and
the driver loads the data once, before Ray starts, so a bad folder or array is one line.

Modules here import only numpy at import time (the config reads this registry); torch,
Pillow and the rest are imported by `load`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from raygan.config.catalog import DataKind

if TYPE_CHECKING:
    from raygan.config.model import DataConfig
    from raygan.data.dataset import Dataset

COMMON_KEYS: tuple[str, ...] = ("name", "sharding")
"""`data.*` keys every source reads."""


@dataclass(frozen=True)
class Source:
    """One registered data source.

    Attributes:
        name: the `data.name` that selects it.
        keys: the `data.*` keys it reads besides `COMMON_KEYS`; setting any other is an error.
        load: `(cfg, seed) -> Dataset`; bad input raises a one-line `DataError`.
        kind: `cfg -> DataKind`, what is known before loading (None fields: known once loaded).
        description: one line for docs and errors.
    """

    name: str
    keys: tuple[str, ...]
    load: Callable[[DataConfig, int], Dataset]
    kind: Callable[[DataConfig], DataKind]
    description: str


SOURCES: dict[str, Source] = {}
_MODULES = ("builtin", "folder", "array", "python", "hf")


def register_source(source: Source) -> Source:
    """Add a source to the registry under `source.name` (a later one replaces it)."""
    SOURCES[source.name] = source
    return source


def _load_modules() -> None:
    for module in _MODULES:
        importlib.import_module(f"{__name__}.{module}")


def source_names() -> tuple[str, ...]:
    """Every registered `data.name`."""
    _load_modules()
    return tuple(SOURCES)


def get_source(name: str) -> Source:
    """The source registered as `name`.

    Raises:
        KeyError: naming the registered sources.
    """
    _load_modules()
    if name not in SOURCES:
        raise KeyError(f"unknown data source {name!r}; allowed: {', '.join(SOURCES)}")
    return SOURCES[name]
