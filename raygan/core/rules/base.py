"""What every training rule shares: the generation it sees, the pairing it trains, its record.

A rule (one class per file in this package) answers two questions for one cell and one
generation. `begin` says who trains against whom: a `Pairing` of trainee generators and
discriminators and the adversary pools they draw from each batch. `end` says which networks
become the cell's centre afterwards: an `Outcome`. The batches in between are the same loop for
every rule (`train_batches`), so a rule is selection and replacement, not a GAN loop; the one
exception, `egan`, whose selection happens every step, overrides `Rule.train`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from raygan.config import RunConfig
from raygan.core import operators as ops
from raygan.core.fitness import FitnessBatch, all_vs_all, draw_noise, shared_batch
from raygan.core.individual import Individual
from raygan.core.losses import Loss, get_loss, interpolation_weights
from raygan.core.neighbourhood import Neighbourhood
from raygan.core.report import SideReport
from raygan.core.steps import BatchPlan, DStep, GStep, Tally, execute
from raygan.core.task import Samples

T = TypeVar("T")



@dataclass
class Generation:
    """One cell's generation as its rule sees it (built by `Cell.begin`).

    Members are numbered by slot: 0 is the cell itself, k its k-th neighbour.

    Attributes:
        config: the run configuration.
        neighbourhood: the cell's centre and its neighbours' networks; a rule that trains a
            member's network asks it for a copy (`neighbourhood.adopt(slot, "g" | "d")`).
        start: the shared batch the start-of-generation fitness was measured on.
        g_fitness, d_fitness: start-of-generation fitness of every member, by slot (lower is
            better).
        batches: index tensors into `data`, one per training batch.
        data: the cell's shard.
        rng: the cell's numpy generator (adversary draws, mutation, selection).
        torch_rng: the cell's torch generator (noise, gradient-penalty interpolation).
    """

    config: RunConfig
    neighbourhood: Neighbourhood
    start: FitnessBatch
    g_fitness: list[float]
    d_fitness: list[float]
    batches: list[Tensor]
    data: Samples
    rng: np.random.Generator
    torch_rng: torch.Generator

    @property
    def cell(self) -> int:
        """This cell's index."""
        return self.neighbourhood.cell

    @property
    def members(self) -> list[int]:
        """Cell indices of the neighbourhood, by slot (the cell itself first)."""
        return self.neighbourhood.members

    @property
    def g(self) -> Individual:
        """The centre G of the generation's start (`Cell.finish` replaces it after `end`)."""
        return self.neighbourhood.g

    @property
    def d(self) -> Individual:
        """The centre D of the generation's start."""
        return self.neighbourhood.d

    @property
    def g_slots(self) -> list[nn.Module]:
        """The neighbours' Gs, read-only, by slot from 1 (rule `fresh` reloads them between
        rounds)."""
        return self.neighbourhood.g_slots

    @property
    def d_slots(self) -> list[nn.Module]:
        """The neighbours' Ds, read-only, by slot from 1."""
        return self.neighbourhood.d_slots

    def noise(self, n: int) -> Tensor:
        """`n` latent vectors from the cell's torch stream."""
        return draw_noise(self.config, n, self.torch_rng, self.neighbourhood.device)

    def fitness(
        self, gs: Sequence[nn.Module], ds: Sequence[nn.Module], batch: FitnessBatch
    ) -> tuple[list[float], list[float]]:
        """All-vs-all fitness of some Gs and Ds on a shared batch (`fitness.all_vs_all`)."""
        return all_vs_all(self.config, gs, ds, batch)

    def fitness_batch(self) -> FitnessBatch:
        """A fresh shared batch from the cell's streams (`fitness.shared_batch`)."""
        return shared_batch(self.config, self.data, self.rng, self.torch_rng,
                            self.neighbourhood.device)


@dataclass
class Pairing:
    """Who trains in a generation and whom they train against.

    Attributes:
        gs, ds: the trainees; `ds[i]` matches its loss to `gs[i]` (or `gs[0]`).
        g_adversaries: `(cell, D)` pairs a G step draws its adversary from, uniformly.
        d_adversaries: `(cell, G)` pairs a D step draws the generator of its fakes from.
        lr_mutated: per trainee id, whether its learning rate was mutated in `begin`.
        selected: the member slots the G and D trainees were copied from (0: the centre).
    """

    gs: list[Individual]
    ds: list[Individual]
    g_adversaries: list[tuple[int, nn.Module]]
    d_adversaries: list[tuple[int, nn.Module]]
    lr_mutated: dict[int, bool] = field(default_factory=dict)
    selected: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class SideOutcome:
    """What became of one side's centre (G or D) at the end of a generation.

    Attributes:
        individual: the new centre.
        parent: the cell whose start-of-generation centre the new centre descends from (this
            cell for its own centre or its trained continuation).
        replaced: the start centre gave way to another individual (a trained clone of another
            cell's network, or an adopted neighbour); False for the centre, or its own trained
            continuation, kept.
        discarded: training ran but its result is not the new centre.
        lr_mutated: the new centre's learning rate was mutated this generation.
    """

    individual: Individual
    parent: int
    replaced: bool
    discarded: bool
    lr_mutated: bool


@dataclass(frozen=True)
class Outcome:
    """The new centres, as decided by a rule's `end`."""

    g: SideOutcome
    d: SideOutcome


class Rule:
    """Base of the training rules: selection in `begin`, replacement in `end`.

    A rule is registered with its spec, what the config knows of it (`raygan.register_rule`;
    the built-ins' specs are `raygan.core.rules.specs`).

    Attributes:
        name: the `training.rule` value (its spec's name).
        needs_optimizer_state: snapshots must carry the networks' Adam state (rule `live`).
    """

    name: ClassVar[str] = ""
    needs_optimizer_state: ClassVar[bool] = False

    def begin(self, gen: Generation) -> Pairing:
        """Who trains against whom this generation (may copy, select and mutate)."""
        raise NotImplementedError

    def end(self, gen: Generation, pairing: Pairing) -> Outcome:
        """Which networks become the centres after training."""
        raise NotImplementedError

    def train(self, gen: Generation, pairing: Pairing, start: int, stop: int, tally: Tally) -> None:
        """Train batches `start..stop-1`: the shared loop `train_batches`, unless a rule has its
        own step (`egan`)."""
        train_batches(gen, pairing, start, stop, tally)


def vary(gen: Generation, ind: Individual, draw_loss: bool = True) -> bool:
    """Learning-rate mutation (written into the optimizer) and the per-generation loss draw.

    Args:
        gen: the generation.
        ind: the individual to mutate in place.
        draw_loss: draw a generator's loss (with `losses.mutation: generation`); False for rules
            that set the losses themselves (`egan`).

    Returns:
        Whether the learning rate was mutated.
    """
    evo, losses = gen.config.evolution, gen.config.losses
    ind.lr, record = ops.mutate_lr(
        ind.lr,
        gen.rng,
        rule=evo.lr_mutation,
        probability=evo.lr_mutation_probability,
        sigma=evo.lr_mutation_sigma,
        additive_sigma=evo.lr_additive_sigma,
        lr_min=evo.lr_min,
        lr_max=evo.lr_max,
    )
    ops.set_optimizer_lr(ind.optimizer, ind.lr)
    if draw_loss and ind.loss and losses.mutation == "generation":
        ind.loss = ops.draw_loss(losses.generator, gen.rng)
    return record.mutated


def d_loss_name(config: RunConfig, g_loss: str) -> str:
    """The loss a D trains with when its G uses `g_loss`: BCE (heuristic's D loss) under
    `losses.discriminator: bce`, else the G loss's own D loss."""
    return "heuristic" if config.losses.discriminator == "bce" else g_loss


def _d_loss(config: RunConfig, g_loss: str) -> Loss:
    return get_loss(d_loss_name(config, g_loss))


def train_batches(gen: Generation, pairing: Pairing, start: int, stop: int, tally: Tally) -> None:
    """Train the pairing's trainees on batches `start..stop-1` of the generation: each batch
    planned (`plan_batch`), then run network by network (`raygan.core.steps.execute`).

    Stops at the first non-finite loss.
    """
    nets = [i.net for i in pairing.gs + pairing.ds]
    nets += [n for _, n in pairing.g_adversaries + pairing.d_adversaries]
    for net in nets:
        net.train()
    for b in range(start, min(stop, len(gen.batches))):
        if tally.nonfinite:
            break
        execute(gen.config, pairing.gs, pairing.ds, plan_batch(gen, pairing, tally, b), tally)
    for d in pairing.ds:  # G steps leave gradients in live Ds; they are never stepped on
        d.optimizer.zero_grad(set_to_none=True)


def plan_batch(gen: Generation, pairing: Pairing, tally: Tally, b: int) -> BatchPlan:
    """Every draw of batch `b`, in the order of the cell's streams, as the steps to run.

    From the numpy stream (`gen.rng`): the G losses (under `losses.mutation: batch`), then
    each D step's adversary, then each G step's adversary (each K-headed D of a local
    multi-discriminator step). From the torch stream (`gen.noise`, `gen.torch_rng`): each D
    step's noise and gradient-penalty weights, then each G step's noise. D steps are planned
    on batches `b % training.d_every == 0`. The tally counts the batch's G losses.

    For `networks.kind: aae` (`raygan.core.aae`) a D step's noise is the prior codes it
    takes as real and a G step draws no noise (its fakes are the encoder's codes).
    """
    losses = gen.config.losses
    if losses.mutation == "batch":
        for g in pairing.gs:
            g.loss = ops.draw_loss(losses.generator, gen.rng)
    for g in pairing.gs:
        tally.loss_counts[g.loss] += 1
    real = gen.data[gen.batches[b]].to(next(pairing.gs[0].net.parameters()).device)
    d_steps: list[DStep] = []
    if b % gen.config.training.d_every == 0:
        d_steps = [_plan_d(gen, pairing, i, real) for i in range(len(pairing.ds))]
    return BatchPlan(d_steps, [_plan_g(gen, pairing, i, real) for i in range(len(pairing.gs))])


def _plan_d(gen: Generation, pairing: Pairing, i: int, real: Tensor) -> DStep:
    adversary = draw(pairing.d_adversaries, gen.rng)
    loss = d_loss_name(gen.config, partner_loss(pairing, i))
    noise = gen.noise(len(real))
    gp = None
    if get_loss(loss).gradient_penalty:  # D's real input: the data, or an AAE's prior codes
        d_real = noise if gen.config.networks.kind == "aae" else real
        gp = interpolation_weights(len(real), d_real.dim(), gen.torch_rng)
    return DStep(i, adversary, loss, noise, real, gp)


def _plan_g(gen: Generation, pairing: Pairing, i: int, real: Tensor) -> GStep:
    losses, pool = gen.config.losses, pairing.g_adversaries
    if losses.multi_discriminator == "none" or losses.discriminators == "local":
        pool = [draw(pool, gen.rng)]
    noise = None if gen.config.networks.kind == "aae" else gen.noise(len(real))
    return GStep(i, pool, pairing.gs[i].loss, noise, real)


def partner_loss(pairing: Pairing, i: int) -> str:
    """The G loss whose D loss trainee D `i` steps with (its G's, or the only G's)."""
    return pairing.gs[min(i, len(pairing.gs) - 1)].loss


def draw(pool: list[tuple[int, T]], rng: np.random.Generator) -> tuple[int, T]:
    """An adversary drawn uniformly (a draw is made even from one, to keep streams aligned)."""
    return pool[int(rng.integers(len(pool)))]


def kept(ind: Individual, cell: int, mutated: bool) -> SideOutcome:
    """The centre (or its own trained continuation) stays."""
    return SideOutcome(ind, cell, replaced=False, discarded=False, lr_mutated=mutated)


def discarded(gen: Generation, centre: Individual, fitness: float) -> SideOutcome:
    """The untrained centre stays (with `fitness`); this generation's training is dropped."""
    centre.fitness = fitness
    return SideOutcome(centre, gen.cell, replaced=False, discarded=True, lr_mutated=False)


def first_strictly_better(fitness: Sequence[float]) -> int:
    """Index of the lowest fitness, ties (and all-infinite) resolved to the first entry."""
    finite = [ops.finite_or_inf(f) for f in fitness]
    return min(range(len(finite)), key=lambda i: (finite[i], i))


def side_report(outcome: SideOutcome, tally: Tally, side: str) -> SideReport:
    """One side's record of a generation: its new centre (from the rule's outcome) and what
    its trainees did in the batches (from the tally)."""
    ind = outcome.individual
    steps = tally.g_steps if side == "g" else tally.d_steps
    loss_sum = tally.g_loss_sum if side == "g" else tally.d_loss_sum
    opponents = tally.g_opponents if side == "g" else tally.d_opponents
    return SideReport(
        lr=ind.lr,
        fitness=ind.fitness,
        replaced=outcome.replaced,
        discarded=outcome.discarded,
        parent=outcome.parent,
        lr_mutated=outcome.lr_mutated,
        opponents={int(k): int(v) for k, v in sorted(opponents.items())},
        steps=steps,
        train_loss=loss_sum / max(steps, 1),
    )
