"""A cell's mixture: weights over its neighbourhood's generators, the centre first.

What a cell offers as its result is not its centre G alone but this mixture of its
neighbourhood's generators (`Neighbourhood.generators`). After every generation a (1+1)-ES
step (`ops.mixture_es_step`) tries perturbed weights and keeps them if the samples they draw
score better (`CellTask.mixture_score`). A non-finite generator never gets weight: its share
goes to the finite members (`ops.usable_mixture`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from raygan.config import RunConfig
from raygan.core import operators as ops
from raygan.core.fitness import draw_noise


def objective(score: Callable[[Tensor], float], samples: Tensor) -> float:
    """What the mixture ES minimises: `score(samples)`, or +inf (the worst) for non-finite
    samples, which the metrics are not asked to score (image metrics refuse them)."""
    if not bool(torch.isfinite(samples).all()):
        return math.inf
    return score(samples)


class Mixture:
    """Mixture weights over a neighbourhood's generators.

    Args:
        config: the run configuration (`mixture` section).
        members: how many generators the neighbourhood has (the centre and its neighbours).
        device: where the generators live (the latent vectors are drawn there).

    Attributes:
        weights: one per member, by slot; they sum to 1.
    """

    def __init__(self, config: RunConfig, members: int, device: torch.device) -> None:
        self.config = config
        self.device = device
        self.weights = np.full(members, 1.0 / members)

    def step(
        self,
        gens: Sequence[nn.Module],
        rng: np.random.Generator,
        torch_rng: torch.Generator,
        score: Callable[[Tensor], float],
    ) -> tuple[float, bool]:
        """One ES step over `gens` (by slot) on `mixture.samples` latent vectors from
        `torch_rng`, with the perturbation drawn from `rng`; no step (and no draw) when the
        mixture is off or no generator is finite.

        Returns:
            The weights' score (the new weights' if accepted, else the old; NaN without a
            step) and whether the step was accepted.
        """
        usable = [ops.all_finite(g) for g in gens] if self.config.mixture.enabled else []
        if not any(usable):
            return math.nan, False
        z = draw_noise(self.config, self.config.mixture.samples, torch_rng, self.device)
        self.weights, rec = ops.mixture_es_step(
            self.weights,
            self.config.mixture.sigma,
            rng,
            lambda w: objective(score, ops.mixture_samples(gens, w, z)),
            usable,
        )
        return (rec.new_score if rec.accepted else rec.old_score), rec.accepted

    def usable(self, gens: Sequence[nn.Module], centre_only: bool = False) -> np.ndarray | None:
        """The weights restricted to the finite generators of `gens` (None when none is);
        with `centre_only` (always when `mixture.enabled` is false) all on the centre."""
        weights, members = self.weights, len(gens)
        if centre_only or not self.config.mixture.enabled:
            weights, members = np.eye(len(weights))[0], 1
        return ops.usable_mixture(
            weights, [k < members and ops.all_finite(g) for k, g in enumerate(gens)])

    def sample(
        self,
        gens: Sequence[nn.Module],
        weights: np.ndarray | None,
        n: int,
        seed: int,
        sample_shape: tuple[int, ...],
    ) -> Tensor:
        """`n` samples of the mixture of `gens` with `weights` (from `usable`) on latent
        vectors of a generator seeded by `seed` (never a training stream); all NaN (the worst
        score) when `weights` is None: no generator is finite."""
        z = draw_noise(self.config, n, torch.Generator().manual_seed(seed), self.device)
        if weights is None:
            return torch.full((n, *sample_shape), math.nan)
        return ops.mixture_samples(gens, weights, z)
