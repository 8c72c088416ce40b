"""Data sets and per-cell shards.

`load_dataset` gives the whole training set as one tensor; `cell_shard` gives the part a cell
trains on. Toy mixtures are generated from the run seed; images come from `data.images`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from raygan.config import DataConfig
from raygan.data.toy import default_std, sample_mixture, toy_modes


@dataclass(frozen=True)
class Dataset:
    """A training set held in memory.

    Attributes:
        name: data set name.
        samples: (N, *shape) float32; toy points or images in [-1, 1].
        labels: (N,) int64 class labels, or None (toy data, unlabelled images).
        modes: (K, 2) mode means for toy data, else None.
        std: per-mode standard deviation for toy data, else None.
    """

    name: str
    samples: Tensor
    labels: Tensor | None = None
    modes: np.ndarray | None = None
    std: float | None = None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample."""
        return tuple(self.samples.shape[1:])

    @property
    def is_image(self) -> bool:
        """True for (C, H, W) samples."""
        return len(self.sample_shape) == 3


def load_dataset(cfg: DataConfig, seed: int) -> Dataset:
    """The whole training set named by the config.

    Args:
        cfg: data section of the run config.
        seed: run seed; toy data are generated from it, so every process gets the same set.
    """
    if cfg.is_toy:
        modes = toy_modes(cfg.name, cfg.radius)
        std = cfg.std if cfg.std is not None else default_std(cfg.name)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x70F]))
        return Dataset(cfg.name, sample_mixture(modes, std, cfg.samples, rng), None, modes, std)
    from raygan.data.images import load_image_dataset

    data = load_image_dataset(cfg.name, cfg.root, cfg.download, cfg.image_size)
    labels = data.labels if bool((data.labels >= 0).all()) else None
    return Dataset(cfg.name, data.images, labels)


def shard_indices(n: int, num_shards: int, shard: int, mode: str = "split") -> np.ndarray:
    """Indices of one cell's shard: a strided disjoint split, or everything ("replicate")."""
    if not 0 <= shard < num_shards:
        raise IndexError(f"shard {shard} of {num_shards}")
    if mode == "replicate":
        return np.arange(n)
    if mode != "split":
        raise ValueError(f"unknown sharding {mode!r}; allowed: split, replicate")
    if n < num_shards:
        raise ValueError(f"{n} samples cannot be split into {num_shards} non-empty shards")
    return np.arange(shard, n, num_shards)


def cell_shard(dataset: Dataset, cfg: DataConfig, num_cells: int, cell: int) -> Tensor:
    """The samples cell `cell` trains on."""
    idx = shard_indices(len(dataset.samples), num_cells, cell, cfg.sharding)
    return dataset.samples[torch.from_numpy(idx)].contiguous()
