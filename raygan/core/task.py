"""What a cell is given and what its evaluation gives back.

`CellTask` is injected by the engine (data shard and scoring functions from the data and
metrics layers), so `raygan.core` imports neither; `Scored` is an evaluation's result: the
mixture's metrics and a preview of the very samples they were computed on (the figures).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor


class Samples(Protocol):
    """A cell's training samples: `samples[idx]` is the float batch of rows `idx` (an index
    tensor) on the cell's device. `raygan.data.Shard` gathers them from the shared data set."""

    def __len__(self) -> int: ...

    @property
    def shape(self) -> tuple[int, ...]:
        """(len, *sample_shape)."""
        ...

    def __getitem__(self, idx: Any) -> Tensor: ...


@dataclass
class CellTask:
    """What a cell needs from the data and metrics layers, injected so `core` stays pure.

    Attributes:
        data: the cell's shard (indices into the shared data set, gathered per batch).
        mixture_score: samples -> score minimised by the mixture ES (`mixture.objective`).
        evaluate: samples -> named metrics for reports.
    """

    data: Samples
    mixture_score: Callable[[Tensor], float]
    evaluate: Callable[[Tensor], dict[str, float]]


PREVIEW_IMAGES = 100
"""Scored images an evaluation keeps for the figures (a 10x10 grid)."""


@dataclass
class Scored:
    """One cell's evaluation.

    Attributes:
        scores: the metrics of the cell's mixture.
        preview: samples those metrics were computed on, spread evenly over the scored set
            (which is ordered by mixture member), so members appear in their weights' shares.
    """

    scores: dict[str, float]
    preview: Tensor


def preview_of(samples: Tensor, keep: int) -> Tensor:
    """`keep` samples spread evenly over `samples` (all of them when there are fewer)."""
    if keep >= len(samples):
        return samples
    return samples[torch.linspace(0, len(samples) - 1, keep).round().long()]
