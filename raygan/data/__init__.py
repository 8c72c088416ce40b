"""Data: where a training set comes from, how it is held, and what each cell trains on.

`load_dataset(cfg, seed)` asks the source registered as `data.name` (`raygan.data.sources`) for
the whole set, held once in its stored form (`Dataset`); `cell_shard` gives a cell its indices
into it (`Shard`), gathered and converted to float per batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raygan.data.dataset import Dataset, Shard, cell_shard, shard_indices

if TYPE_CHECKING:
    from raygan.config.model import DataConfig

__all__ = ["Dataset", "Shard", "cell_shard", "load_dataset", "shard_indices"]


def load_dataset(cfg: DataConfig, seed: int) -> Dataset:
    """The whole training set named by `cfg`.

    Args:
        cfg: data section of the run config.
        seed: run seed; toy data are generated from it, so every process gets the same set.

    Raises:
        DataError: one line for data that cannot be used (see the source).
        FileNotFoundError: a built-in set's files are missing (naming what to download).
    """
    from raygan.data.sources import get_source

    return get_source(cfg.name).load(cfg, seed)
