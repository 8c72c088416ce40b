"""`egan`: E-GAN (Wang et al. 2019) as a training rule; G evolves every step, D trains in place.

Each batch, every parent G (at the start of a generation: the centre) spawns one offspring per
loss of `losses.generator` (minimax, heuristic = non-saturating, least_squares): a copy of the
parent's weights, Adam state, learning rate and weight average, trained one G step with its
loss against the cell's live D (all offspring of a step on the same latent batch). Every
offspring is then scored on one fresh shared fitness batch (`evolution.fitness_sample_size`
real samples and as many latent vectors, D and the offspring in eval mode):

    F  = Fq + gamma * Fd                                 (higher is better: E-GAN maximises F)
    Fq = mean sigmoid(D(G(z)))                           quality: how real D finds the fakes
    Fd = -log || d/d theta_D  L_D(x, G(z)) ||_2          diversity: a small gradient of D's
                                                         loss means D cannot pull away from G

`L_D` is the BCE discriminator loss `-log D(x) - log(1 - D(G(z)))`, as in the paper, whatever
D trains with, so that F compares offspring of different losses on one scale. `gamma` is
`evolution.egan_gamma`. The best `evolution.egan_mu` offspring survive as the next parents
(`select_survivors`; ties go to the earlier offspring, a non-finite F ranks last). D then steps
(on every `training.d_every`-th batch) on the batch's real samples against fakes of the
survivors, split evenly among them, each share scored with the D loss matching its survivor's
loss (BCE with `losses.discriminator: bce`).

This F is the only higher-is-better fitness in raygan; it decides nothing but the survivors.
The fitness in reports is the usual one (a loss against the neighbourhood, lower is better).

At the end of the generation the best survivor of the last step becomes the centre G (its loss
is the report's `g_loss`; `g_loss_counts` counts, per loss, the offspring that survived a step)
and the trained D stays; other survivors are dropped, so each generation starts from the one
centre. Neighbours act only through the start-of-generation fitness and the mixture.

The default `gamma` is the authors' ring-of-8 script (github.com/WANG-Chaoyue/EvolutionaryGAN,
`toys/train_toy_8G.py`), which maximises `Fq - beta * log ||grad||^2` with `beta = 1`, i.e.
`gamma = 2 beta = 2` on the paper's `Fd`; their CIFAR-10 script's `beta = 0.002` is `gamma =
0.004`. Cost per batch: `mu * len(losses.generator)` G steps, each on a copy of its parent,
and as many fitness evaluations (a forward pass of G and D and a backward pass through D on
the fitness batch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from raygan.core import operators as ops
from raygan.core import techniques
from raygan.core.individual import Individual
from raygan.core.rules.base import Generation, Outcome, Pairing, Rule, _d_loss, kept, vary
from raygan.core.steps import GStep, Tally, g_step


@dataclass(frozen=True)
class EganFitness:
    """One offspring's E-GAN fitness (higher is better).

    Attributes:
        quality: Fq, the mean probability D gives the offspring's fakes.
        diversity: Fd, minus the log of the norm of the gradient of D's BCE loss with respect to
            D's parameters (+inf for a zero gradient).
        total: F = Fq + gamma * Fd (Fq alone when gamma is 0).
    """

    quality: float
    diversity: float
    total: float


def egan_fitness(
    discriminator: nn.Module, real: Tensor, fakes: Sequence[Tensor], gamma: float
) -> list[EganFitness]:
    """E-GAN's fitness of several generators' fakes against one discriminator.

    D's parameters are not changed and no `.grad` is written (the gradient is taken with
    `torch.autograd.grad`); the caller chooses D's mode (raygan scores in eval mode).

    Args:
        discriminator: D, returning logits; its trainable parameters span Fd's gradient.
        real: the real samples of the fitness batch (shared by every offspring).
        fakes: each offspring's samples (detached here).
        gamma: weight of the diversity term, >= 0.

    Returns:
        One `EganFitness` per entry of `fakes`, in order.

    Raises:
        ValueError: D has no trainable parameter.
    """
    params = [p for p in discriminator.parameters() if p.requires_grad]
    if not params:
        raise ValueError("E-GAN's diversity term needs a discriminator with trainable parameters")
    out = []
    with torch.enable_grad():
        # BCE's gradient is its real term's (the same for every offspring) plus its fake term's
        real_term = -F.logsigmoid(discriminator(real)).mean()
        real_grad = _flat_grad(real_term, params)
        for fake in fakes:
            fake_logits = discriminator(fake.detach())
            quality = float(torch.sigmoid(fake_logits.detach()).mean())
            fake_grad = _flat_grad(-F.logsigmoid(-fake_logits).mean(), params)
            norm = float(torch.linalg.vector_norm(real_grad + fake_grad))
            diversity = math.inf if norm == 0 else -math.log(norm)
            total = quality + gamma * diversity if gamma else quality
            out.append(EganFitness(quality, diversity, total))
    return out


def _flat_grad(loss: Tensor, params: Sequence[Tensor]) -> Tensor:
    """The gradient of `loss` with respect to `params`, flattened into one vector (zeros for a
    parameter `loss` does not depend on)."""
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([
        (torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads)
    ])


def select_survivors(fitness: Sequence[float], mu: int) -> list[int]:
    """Indices of the `mu` highest fitness values (all if fewer), best first.

    Ties go to the lower index; NaN and +-inf rank last (a zero D gradient gives Fd = +inf,
    which says nothing good about G).

    Raises:
        ValueError: `mu < 1` or no fitness values.
    """
    if mu < 1:
        raise ValueError(f"mu must be >= 1, got {mu}")
    if not fitness:
        raise ValueError("selection over no offspring")
    order = sorted(range(len(fitness)), key=lambda i: (ops.finite_or_inf(-fitness[i]), i))
    return order[:mu]


def spawn(parents: Sequence[Individual], losses: Sequence[str]) -> list[Individual]:
    """One offspring per (parent, loss), parents in order then losses in order: each a copy of
    its parent's weights, Adam state, learning rate and weight average, with the loss set."""
    offspring = []
    for parent in parents:
        for loss in losses:
            child = parent.clone()
            child.loss = loss
            offspring.append(child)
    return offspring


class Egan(Rule):
    """E-GAN: offspring of G per loss every step, the fittest `mu` survive; D in place."""

    name = "egan"

    def begin(self, gen: Generation) -> Pairing:
        """The centre G is the one parent; the centre D trains in place (learning rates mutate;
        no loss is drawn: every step tries every loss)."""
        mutated = {id(gen.g): vary(gen, gen.g, draw_loss=False), id(gen.d): vary(gen, gen.d)}
        return Pairing(
            [gen.g], [gen.d], [(gen.cell, gen.d.net)], [(gen.cell, gen.g.net)], mutated
        )

    def train(self, gen: Generation, pairing: Pairing, start: int, stop: int, tally: Tally) -> None:
        """Batches `start..stop-1`: per batch, offspring, selection, then a D step.

        `pairing.gs` holds the parents, best first; each batch replaces them by the survivors.
        Stops at the first non-finite loss.
        """
        cfg, d = gen.config, pairing.ds[0]
        d.net.train()
        device = next(d.net.parameters()).device
        for b in range(start, min(stop, len(gen.batches))):
            if tally.nonfinite:
                return
            real = gen.data[gen.batches[b]].to(device)
            offspring = spawn(pairing.gs, cfg.losses.generator)
            self._step_offspring(gen, d, offspring, real, tally)
            fit_real, fit_z = gen.fitness_batch()
            with ops.eval_mode([d.net, *(o.net for o in offspring)]), torch.no_grad():
                fakes = [o.net(fit_z) for o in offspring]
            with ops.eval_mode([d.net]):
                scores = egan_fitness(d.net, fit_real, fakes, cfg.evolution.egan_gamma)
            chosen = select_survivors([s.total for s in scores], cfg.evolution.egan_mu)
            pairing.gs[:] = [offspring[i] for i in chosen]
            for survivor in pairing.gs:
                tally.loss_counts[survivor.loss] += 1
            if b % cfg.training.d_every == 0:
                self._step_d(gen, d, pairing.gs, real, tally)
            tally.batches += 1

    @staticmethod
    def _step_offspring(
        gen: Generation, d: Individual, offspring: list[Individual], real: Tensor, tally: Tally
    ) -> None:
        """One G step of every offspring with its loss against D (the shared loop's G step,
        `steps.g_step`), all on one latent batch: the offspring are compared on equal terms,
        so unlike `plan_batch` there is one noise draw and no adversary draw."""
        z = gen.noise(len(real))
        d.net.requires_grad_(False)  # G steps need no gradient in D's parameters
        try:
            for i, child in enumerate(offspring):
                child.net.train()
                step = GStep(i, [(gen.cell, d.net)], child.loss, z, real)
                g_step(gen.config, child, step, tally)
        finally:
            d.net.requires_grad_(True)

    @staticmethod
    def _step_d(
        gen: Generation, d: Individual, survivors: list[Individual], real: Tensor, tally: Tally
    ) -> None:
        """One D step on `real` against as many fakes, split evenly among the survivors."""
        n, k = len(real), len(survivors)
        sizes = [n // k + (i < n % k) for i in range(k)]
        shares = [(s, size) for s, size in zip(survivors, sizes) if size > 0]
        z = gen.noise(n)
        parts = [size for _, size in shares]
        with torch.no_grad():
            fake = torch.cat([s.net(part) for (s, _), part in zip(shares, z.split(parts))])
        real_logits = d.net(real)
        fake_logits = d.net(fake).split(parts)
        cfg = gen.config
        d_loss = torch.stack([
            (size / n) * _d_loss(cfg, s.loss).discriminator_loss(real_logits, logits,
                                                                  cfg.losses.real_label)
            for (s, size), logits in zip(shares, fake_logits)
        ]).sum()
        d_loss = techniques.step(d, d_loss, cfg.training.historical_averaging)
        tally.record("d", [gen.cell], float(d_loss.detach()))

    def end(self, gen: Generation, pairing: Pairing) -> Outcome:
        """The best survivor of the last step is the centre G, the trained D stays; both are
        measured again against the neighbourhood."""
        best = pairing.gs[0]
        g_fit, d_fit = gen.fitness(
            [best.net, *gen.g_slots], [gen.d.net, *gen.d_slots], gen.fitness_batch()
        )
        best.fitness, gen.d.fitness = g_fit[0], d_fit[0]
        # every offspring inherits the centre's learning rate, mutated or not in `begin`
        return Outcome(
            kept(best, gen.cell, pairing.lr_mutated[id(gen.g)]),
            kept(gen.d, gen.cell, pairing.lr_mutated[id(gen.d)]),
        )
