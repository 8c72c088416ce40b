"""A training set held once, and the index views cells train on.

A `Dataset` keeps its samples in their stored form (`store`): uint8 pixels for images, float32
for vectors and toy points. The array may be a plain array, a memory-mapped cache file or a
read-only view of Ray's object store, so every process on a node shares one copy. A `Shard` is
a cell's part of it: indices only. Rows become float32 only when a batch is gathered, on the
device the batch is for, as `store * scale + shift` (uint8 pixels in [0, max] map to [-1, 1]).

This module imports torch only when a batch is converted, so the config can read the source
registry without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from raygan.config.catalog import DataKind, Form

if TYPE_CHECKING:
    import torch
    from torch import Tensor


@dataclass(frozen=True)
class Dataset:
    """A training set in its stored form.

    Attributes:
        name: `data.name` of the source it came from.
        store: (N, *sample_shape) samples as stored: uint8 (N, C, H, W) pixels, float32
            (N, C, H, W) images in [-1, 1], float32 (N, D) vectors or toy points.
        labels: (N,) int64 class labels in [0, num_classes), or None.
        scale, shift: the float value of a stored sample is `store * scale + shift`.
        num_classes: number of label classes (0 without labels).
        modes: (K, 2) mode means of a toy mixture, else None.
        std: per-mode standard deviation of a toy mixture, else None.
        natural: photographs (CIFAR-10, CelebA): their default metric is Inception FID.
    """

    name: str
    store: np.ndarray
    labels: np.ndarray | None = None
    scale: float = 1.0
    shift: float = 0.0
    num_classes: int = 0
    modes: np.ndarray | None = None
    std: float | None = None
    natural: bool = False

    @classmethod
    def from_pixels(cls, name: str, pixels: np.ndarray, labels: np.ndarray | None = None,
                    max_value: float = 255.0, natural: bool = False) -> Dataset:
        """Images stored as integers in [0, max_value], seen as floats in [-1, 1]."""
        classes = int(labels.max()) + 1 if labels is not None and len(labels) else 0
        return cls(name, pixels, labels, 2.0 / max_value, -1.0, classes, natural=natural)

    def __len__(self) -> int:
        return int(self.store.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample."""
        return tuple(int(d) for d in self.store.shape[1:])

    @property
    def is_image(self) -> bool:
        """True for (C, H, W) samples."""
        return len(self.sample_shape) == 3

    @property
    def kind(self) -> DataKind:
        """What the metrics need to know about this data."""
        form: Form = "toy" if self.modes is not None else "images" if self.is_image else "vectors"
        return DataKind(self.name, form, self.labels is not None, self.natural)

    @property
    def nbytes(self) -> int:
        """Bytes of the stored samples."""
        return int(self.store.nbytes)

    def take(self, idx: Any, device: str | torch.device | None = None) -> Tensor:
        """Rows `idx` (an index array, tensor, list or slice) as float32, converted on
        `device`."""
        import torch

        if isinstance(idx, torch.Tensor):
            idx = idx.cpu().numpy()
        rows = torch.from_numpy(np.ascontiguousarray(self.store[idx]))
        if device is not None:
            rows = rows.to(device)
        if self.scale == 1.0 and self.shift == 0.0 and rows.dtype == torch.float32:
            return rows
        return rows.to(torch.float32) * self.scale + self.shift

    def head(self, n: int) -> Tensor:
        """The first `n` samples as float32 (all of them when there are fewer)."""
        return self.take(np.arange(min(n, len(self))))

    def label_array(self, idx: Any) -> np.ndarray:
        """Labels of rows `idx` (int64); -1 for data without labels."""
        if self.labels is None:
            return np.full(len(np.asarray(idx)), -1, dtype=np.int64)
        return np.asarray(self.labels[np.asarray(idx)], dtype=np.int64)


class Shard:
    """A cell's part of a `Dataset`: indices into the shared store, gathered per batch.

    `shard[idx]` (idx indexes the shard, as a tensor or array) is the float32 batch on the
    shard's device, so the cell's rules read it like a tensor of samples.

    Args:
        dataset: the shared data set.
        indices: rows of `dataset` this shard holds.
        device: where gathered batches are converted to float.
    """

    def __init__(self, dataset: Dataset, indices: np.ndarray,
                 device: str | torch.device | None = None) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.device = device

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        """(len, *sample_shape), like a tensor of the shard's samples."""
        return (len(self), *self.dataset.sample_shape)

    def __getitem__(self, idx: Any) -> Tensor:
        import torch

        if isinstance(idx, torch.Tensor):
            idx = idx.cpu().numpy()
        return self.dataset.take(self.indices[idx], self.device)


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


def cell_shard(dataset: Dataset, sharding: str, num_cells: int, cell: int,
               device: str | torch.device | None = None) -> Shard:
    """The shard cell `cell` trains on (indices only; no sample is copied)."""
    return Shard(dataset, shard_indices(len(dataset), num_cells, cell, sharding), device)

