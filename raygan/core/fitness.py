"""Fitness: how networks of a neighbourhood do against each other on a shared batch.

A cell measures it at the start of every generation (`Cell.begin`) and a rule measures it again
to choose the new centres (through `Generation.fitness`); both draw their shared batches from the
cell's streams with `shared_batch`. Lower is better; a non-finite loss scores as +inf.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from raygan.config import RunConfig
from raygan.core import aae
from raygan.core import operators as ops
from raygan.core.losses import get_loss
from raygan.core.task import Samples

FitnessBatch = tuple[Tensor, Tensor]
"""A shared (real samples, latent noise) batch that fitness is measured on."""


def draw_noise(
    config: RunConfig, n: int, torch_rng: torch.Generator, device: torch.device
) -> Tensor:
    """`n` latent vectors from a cell's torch stream (`aae.latent`), on `device`."""
    return aae.latent(config.networks, n, torch_rng).to(device)


def shared_batch(
    config: RunConfig,
    data: Samples,
    rng: np.random.Generator,
    torch_rng: torch.Generator,
    device: torch.device,
) -> FitnessBatch:
    """`evolution.fitness_sample_size` samples of the shard (drawn from `rng`, without
    replacement) and as many latent vectors (from `torch_rng`), in that order."""
    n = min(config.evolution.fitness_sample_size, len(data))
    idx = rng.choice(len(data), size=n, replace=False)
    return data[torch.from_numpy(idx)].to(device), draw_noise(config, n, torch_rng, device)


def all_vs_all(
    config: RunConfig, gs: Sequence[nn.Module], ds: Sequence[nn.Module], batch: FitnessBatch
) -> tuple[list[float], list[float]]:
    """Every G against every D on `batch`, in eval mode, with `evolution.fitness_loss`
    aggregated by `evolution.fitness_aggregation` (`ops.all_vs_all_fitness`).

    For `networks.kind: aae` a G is scored by its encoder's codes of the real samples against
    the latent Ds, whose real samples are the batch's prior codes.

    Returns:
        (G fitness, D fitness), in the order of `gs` and `ds`.
    """
    nets = [*gs, *ds]
    evo = config.evolution
    if config.networks.kind == "aae":
        gs, batch = [aae.encoder_of(g) for g in gs], (batch[1], batch[0])
    with ops.eval_mode(nets):
        return ops.all_vs_all_fitness(
            list(gs), list(ds), *batch, get_loss(evo.fitness_loss), evo.fitness_aggregation
        )
