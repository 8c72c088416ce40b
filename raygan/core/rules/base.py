"""What every training rule shares: the generation it sees, the pairing it trains, its record.

A rule (one class per file in this package) answers two questions for one cell and one
generation. `begin` says who trains against whom: a `Pairing` of trainee generators and
discriminators and the adversary pools they draw from each batch. `end` says which networks
become the cell's centre afterwards: an `Outcome`. The batches in between are the same loop for
every rule (`train_batches`), so a rule is selection and replacement, not a GAN loop; the one
exception, `egan`, whose selection happens every step, overrides `Rule.train`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from raygan.config import RunConfig
from raygan.core import aae, multi_d, techniques
from raygan.core import operators as ops
from raygan.core.individual import Individual
from raygan.core.losses import Loss, get_loss, gradient_penalty
from raygan.core.report import SideReport
from raygan.core.task import Samples

T = TypeVar("T")

FitnessBatch = tuple[Tensor, Tensor]
"""A shared (real samples, latent noise) batch that fitness is measured on."""
FitnessFn = Callable[[Sequence[nn.Module], Sequence[nn.Module], FitnessBatch],
                     tuple[list[float], list[float]]]


@dataclass
class Generation:
    """One cell's generation as its rule sees it (built by `Cell.begin`).

    Attributes:
        config: the run configuration.
        members: cell indices of the neighbourhood, the cell itself first.
        g, d: the centre individuals at the start of the generation.
        g_slots, d_slots: the neighbours' networks, read-only, in `members[1:]` order. The
            exchange may reload them in place between rounds (rule `fresh`).
        start: the shared batch the start-of-generation fitness was measured on.
        g_fitness, d_fitness: start-of-generation fitness of every member (lower is better).
        batches: index tensors into `data`, one per training batch.
        data: the cell's shard.
        rng: the cell's numpy generator (adversary draws, mutation, selection).
        noise: `n -> (n, latent) tensor` drawn from the cell's torch generator.
        torch_rng: the cell's torch generator (gradient-penalty interpolation).
        adopt: `(member slot, "g" | "d") -> Individual`: a trainable copy of a member's
            network with its hyperparameters; slot 0 is a clone of the centre with its Adam
            state, a neighbour's copy carries its Adam state only if the snapshots do.
        fitness: all-vs-all fitness of some Gs and Ds on a batch (eval mode).
        fitness_batch: draws a fresh shared batch.
    """

    config: RunConfig
    members: list[int]
    g: Individual
    d: Individual
    g_slots: list[nn.Module]
    d_slots: list[nn.Module]
    start: FitnessBatch
    g_fitness: list[float]
    d_fitness: list[float]
    batches: list[Tensor]
    data: Samples
    rng: np.random.Generator
    noise: Callable[[int], Tensor]
    torch_rng: torch.Generator
    adopt: Callable[[int, str], Individual]
    fitness: FitnessFn
    fitness_batch: Callable[[], FitnessBatch]

    @property
    def cell(self) -> int:
        """This cell's index."""
        return self.members[0]


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

    Attributes:
        name: the `training.rule` value.
        needs_optimizer_state: snapshots must carry the networks' Adam state (rule `live`).
    """

    name: ClassVar[str] = ""
    needs_optimizer_state: ClassVar[bool] = False

    def exchange_every(self, config: RunConfig) -> int | None:
        """Batches between neighbour refreshes within a generation; None: once per generation."""
        return None

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
    """Train the pairing's trainees on batches `start..stop-1` of the generation.

    Per batch: every trainee D steps (on batches `b % d_every == 0`) against fakes of a G drawn
    from `d_adversaries`, then every trainee G steps against a D drawn from `g_adversaries`
    (against all of them at once under `losses.multi_discriminator`: `_multi_g_step`).
    For `networks.kind: aae` (`raygan.core.aae`) a D is a latent D: its real samples are prior
    codes (`gen.noise`), its fakes the drawn encoder's codes of the batch; a G step is the
    reconstruction phase, then the encoder's codes against the drawn latent D.
    Stops at the first non-finite loss.
    """
    cfg = gen.config
    is_aae = cfg.networks.kind == "aae"
    nets = [i.net for i in pairing.gs + pairing.ds]
    nets += [n for _, n in pairing.g_adversaries + pairing.d_adversaries]
    for net in nets:
        net.train()
    device = next(pairing.gs[0].net.parameters()).device
    for b in range(start, min(stop, len(gen.batches))):
        if tally.nonfinite:
            return
        idx = gen.batches[b]
        real = gen.data[idx].to(device)
        batch_losses(gen, pairing, tally)
        if b % cfg.training.d_every == 0:
            for i, d in enumerate(pairing.ds):
                cell, g_adv = draw(pairing.d_adversaries, gen.rng)
                loss = _d_loss(cfg, partner_loss(pairing, i))
                with torch.no_grad():
                    fake = aae.encoder_of(g_adv)(real) if is_aae else g_adv(gen.noise(len(idx)))
                d_real = gen.noise(len(idx)) if is_aae else real
                d_loss = loss.discriminator_loss(d.net(d_real), d.net(fake), cfg.losses.real_label)
                if loss.gradient_penalty:
                    gp = gradient_penalty(d.net, d_real, fake, gen.torch_rng)
                    d_loss = d_loss + cfg.losses.gradient_penalty * gp
                d_loss = techniques.step(d, d_loss, cfg.training.historical_averaging)
                tally.d_steps += 1
                tally.d_opponents[cell] += 1
                tally.d_loss_sum += finite_into(float(d_loss.detach()), tally)
        for g in pairing.gs:
            if cfg.losses.multi_discriminator != "none":
                _multi_g_step(gen, pairing, g, len(idx), tally)
                continue
            cell, d_adv = draw(pairing.g_adversaries, gen.rng)
            if is_aae:
                history = cfg.training.historical_averaging
                error = aae.reconstruction_step(g, real, history)
                tally.reconstruction_sum += finite_into(error, tally)
                fake = aae.encoder_of(g.net)(real)
            else:
                fake = g.net(gen.noise(len(idx)))
            g_loss = techniques.generator_loss(cfg.losses, get_loss(g.loss), d_adv, fake, real)
            g_loss = techniques.step(g, g_loss, cfg.training.historical_averaging)
            g.update_ema(cfg.training.g_ema)
            tally.g_steps += 1
            tally.g_opponents[cell] += 1
            tally.g_loss_sum += finite_into(float(g_loss.detach()), tally)
        tally.batches += 1
    for d in pairing.ds:  # G steps leave gradients in live Ds; they are never stepped on
        d.optimizer.zero_grad(set_to_none=True)


def batch_losses(gen: Generation, pairing: Pairing, tally: Tally) -> None:
    """A batch's generator losses: drawn anew under `losses.mutation: batch` (from the cell's
    stream, before any adversary draw), then counted in the tally."""
    losses = gen.config.losses
    if losses.mutation == "batch":
        for g in pairing.gs:
            g.loss = ops.draw_loss(losses.generator, gen.rng)
    for g in pairing.gs:
        tally.loss_counts[g.loss] += 1


def partner_loss(pairing: Pairing, i: int) -> str:
    """The G loss whose D loss trainee D `i` steps with (its G's, or the only G's)."""
    return pairing.gs[min(i, len(pairing.gs) - 1)].loss


def _multi_g_step(gen: Generation, pairing: Pairing, g: Individual, n: int, tally: Tally) -> None:
    """One step of `g` against K discriminators at once (`raygan.core.multi_d`): every D of
    `g_adversaries`, or with `losses.discriminators: local` the K heads of one D drawn from
    it. The tally counts each D faced as an opponent and records the mean of the K losses."""
    losses = gen.config.losses
    pool = pairing.g_adversaries
    if losses.discriminators == "local":
        pool = [draw(pool, gen.rng)]
    result = multi_d.generator_step(
        g.net, g.optimizer, [d for _, d in pool], get_loss(g.loss).generator, gen.noise(n),
        losses.multi_discriminator, losses.gman_temperature, losses.hv_delta,
    )
    g.update_ema(gen.config.training.g_ema)
    tally.g_steps += 1
    tally.g_opponents.update(cell for cell, _ in pool)
    tally.g_loss_sum += finite_into(sum(result.losses) / len(result.losses), tally)
    finite_into(result.objective, tally)


def draw(pool: list[tuple[int, T]], rng: np.random.Generator) -> tuple[int, T]:
    """An adversary drawn uniformly (a draw is made even from one, to keep streams aligned)."""
    return pool[int(rng.integers(len(pool)))]


def finite_into(value: float, tally: Tally) -> float:
    """`value` if finite; else 0.0, and the tally records that training hit a non-finite loss."""
    if math.isfinite(value):
        return value
    tally.nonfinite = True
    return 0.0


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
