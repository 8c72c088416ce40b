"""A batch's steps: the records planning makes, the tally they add to, and one network's step.

The batch loop is split in two. Planning (`raygan.core.rules.base.plan_batch`, the only
place a batch's draws happen) turns a batch into a `BatchPlan`: every D step's and G step's
adversary, loss, noise and gradient-penalty weights, drawn from the cell's streams in the
loop's order. An executor then runs the plan: `execute` here, network by network, or
`raygan.core.packed.train.PackedTrainer`, many cells' plans stacked into banks. Both count
what they did in one `Tally` through `Tally.record`.

Nothing here draws a random number: a step's randomness is in its record.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from raygan.config import RunConfig
from raygan.core import aae, multi_d, techniques
from raygan.core.individual import Individual
from raygan.core.losses import get_loss, gradient_penalty

Adversary = tuple[int, nn.Module]
"""An adversary drawn from a pool: (its cell, its network)."""


@dataclass
class Tally:
    """What the batches did: losses, gradient steps, loss choices, opponents, NaN events."""

    batches: int = 0
    g_steps: int = 0
    d_steps: int = 0
    g_loss_sum: float = 0.0
    d_loss_sum: float = 0.0
    loss_counts: Counter[str] = field(default_factory=Counter)
    g_opponents: Counter[int] = field(default_factory=Counter)
    d_opponents: Counter[int] = field(default_factory=Counter)
    nonfinite: bool = False
    reconstruction_sum: float = 0.0  # networks.kind "aae": the reconstruction phase's errors

    def record(self, side: str, opponents: Sequence[int], loss: float) -> None:
        """One gradient step of a G (`side` "g") or D ("d") against the networks of the
        `opponents` cells, with its loss."""
        if side == "g":
            self.g_steps += 1
            self.g_opponents.update(opponents)
            self.g_loss_sum += self.finite(loss)
        else:
            self.d_steps += 1
            self.d_opponents.update(opponents)
            self.d_loss_sum += self.finite(loss)

    def finite(self, value: float) -> float:
        """`value` if finite; else 0.0, and the tally records that training hit a
        non-finite loss (the loop stops before the next batch)."""
        if math.isfinite(value):
            return value
        self.nonfinite = True
        return 0.0


@dataclass(frozen=True)
class DStep:
    """One trainee D's step of a batch.

    Attributes:
        trainee: index of the D in the pairing's `ds`.
        adversary: the G whose fakes it sees (for an AAE: the encoder's codes of `real`).
        loss: name of the D loss it steps with.
        noise: the fakes' latent batch; for an AAE, the prior codes D takes as real.
        real: the batch's real samples.
        gp: the gradient penalty's interpolation weights, None for a loss without it.
    """

    trainee: int
    adversary: Adversary
    loss: str
    noise: Tensor
    real: Tensor
    gp: Tensor | None = None


@dataclass(frozen=True)
class GStep:
    """One trainee G's step of a batch.

    Attributes:
        trainee: index of the G in the pairing's `gs` (for rule `egan`: in the offspring).
        adversaries: the D it faces, or the K Ds of one multi-discriminator step.
        loss: name of the G loss it steps with.
        noise: its latent batch; None for an AAE, whose fakes are the codes of `real`.
        real: the batch's real samples.
    """

    trainee: int
    adversaries: list[Adversary]
    loss: str
    noise: Tensor | None
    real: Tensor

    @property
    def opponents(self) -> list[int]:
        """The cells of the adversaries."""
        return [cell for cell, _ in self.adversaries]


@dataclass(frozen=True)
class BatchPlan:
    """A batch's steps: every D step (none on batches a D skips), then every G step."""

    d_steps: list[DStep]
    g_steps: list[GStep]


def execute(config: RunConfig, gs: Sequence[Individual], ds: Sequence[Individual],
            plan: BatchPlan, tally: Tally) -> None:
    """Run a plan network by network: its D steps, then its G steps; count the batch."""
    for d in plan.d_steps:
        d_step(config, ds[d.trainee], d, tally)
    for g in plan.g_steps:
        g_step(config, gs[g.trainee], g, tally)
    tally.batches += 1


def d_step(config: RunConfig, d: Individual, step: DStep, tally: Tally) -> None:
    """One D step: the real batch (an AAE's prior codes) against the adversary's fakes (an
    AAE's codes of the batch), plus the gradient penalty when the step has its weights."""
    cell, adversary = step.adversary
    is_aae = config.networks.kind == "aae"
    with torch.no_grad():
        fake = aae.encoder_of(adversary)(step.real) if is_aae else adversary(step.noise)
    real = step.noise if is_aae else step.real
    loss = get_loss(step.loss).discriminator_loss(d.net(real), d.net(fake),
                                                  config.losses.real_label)
    if step.gp is not None:
        loss = loss + config.losses.gradient_penalty * gradient_penalty(d.net, real, fake, step.gp)
    loss = techniques.step(d, loss, config.training.historical_averaging)
    tally.record("d", [cell], float(loss.detach()))


def g_step(config: RunConfig, g: Individual, step: GStep, tally: Tally) -> None:
    """One G step against its adversary; for an AAE the reconstruction phase first, then the
    encoder's codes against the latent D; with `losses.multi_discriminator` `_multi_g_step`."""
    if config.losses.multi_discriminator != "none":
        _multi_g_step(config, g, step, tally)
        return
    (_, adversary), history = step.adversaries[0], config.training.historical_averaging
    if config.networks.kind == "aae":
        tally.reconstruction_sum += tally.finite(aae.reconstruction_step(g, step.real, history))
        fake = aae.encoder_of(g.net)(step.real)
    else:
        fake = g.net(step.noise)
    loss = techniques.generator_loss(config.losses, get_loss(step.loss), adversary, fake,
                                     step.real)
    loss = techniques.step(g, loss, history)
    g.update_ema(config.training.g_ema)
    tally.record("g", step.opponents, float(loss.detach()))


def _multi_g_step(config: RunConfig, g: Individual, step: GStep, tally: Tally) -> None:
    """One step of G against K discriminators at once (`raygan.core.multi_d`); the tally
    counts each D faced as an opponent and records the mean of the K losses."""
    losses = config.losses
    if step.noise is None:
        raise ValueError("a multi-discriminator G step needs a latent batch; an AAE's has none")
    result = multi_d.generator_step(
        g.net, g.optimizer, [d for _, d in step.adversaries], get_loss(step.loss).generator,
        step.noise, losses.multi_discriminator, losses.gman_temperature, losses.hv_delta,
    )
    g.update_ema(config.training.g_ema)
    tally.record("g", step.opponents, sum(result.losses) / len(result.losses))
    tally.finite(result.objective)
