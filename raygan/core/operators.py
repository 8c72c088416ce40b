"""Evolutionary operators as pure functions.

Each operator takes an explicit `numpy.random.Generator` where it needs randomness and returns
its result together with a record of what it did, so the cell that applies them stays a thin
sequence of calls and every decision can be logged and tested.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from raygan.core.losses import Loss

ScoreFn = Callable[[np.ndarray], float]


def finite_or_inf(value: float) -> float:
    """Map NaN and +-inf to +inf so that a broken individual always ranks last."""
    return value if math.isfinite(value) else math.inf


def aggregate(values: Sequence[float], how: str) -> float:
    """Combine one individual's losses against several opponents (lower is better).

    Non-finite entries come from a broken opponent (or a broken individual); they are left out
    while any finite entry remains, so one NaN neighbour cannot make every member unrankable.
    An individual with no finite entry gets +inf.
    """
    finite = [float(v) for v in values if math.isfinite(v)]
    if not finite:
        return math.inf
    vals = finite
    if how == "average":
        return float(sum(vals) / len(vals))
    if how == "worst":
        return float(max(vals))
    if how == "best":
        return float(min(vals))
    raise ValueError(f"unknown fitness aggregation {how!r}; allowed: average, worst, best")


@torch.no_grad()
def all_vs_all_fitness(
    generators: Sequence[nn.Module],
    discriminators: Sequence[nn.Module],
    real: Tensor,
    z: Tensor,
    loss: Loss,
    how: str = "average",
) -> tuple[list[float], list[float]]:
    """Fitness of every generator against every discriminator on one shared batch.

    Args:
        generators: the G sub-population.
        discriminators: the D sub-population.
        real: shared real batch.
        z: shared latent noise.
        loss: loss used to score both sides.
        how: "average", "worst" or "best" over opponents.

    Returns:
        (generator fitness, discriminator fitness), lower is better, inf for non-finite.
    """
    fakes = [g(z) for g in generators]
    g_losses = [[0.0] * len(discriminators) for _ in generators]
    d_losses = [[0.0] * len(generators) for _ in discriminators]
    for j, d in enumerate(discriminators):
        real_logits = d(real)
        for i, fake in enumerate(fakes):
            fake_logits = d(fake)
            g_losses[i][j] = float(loss.generator(fake_logits))
            d_losses[j][i] = float(loss.discriminator(real_logits, fake_logits))
    return [aggregate(r, how) for r in g_losses], [aggregate(r, how) for r in d_losses]


@dataclass(frozen=True)
class TournamentRecord:
    """Who took part in a tournament and who won."""

    contestants: tuple[int, ...]
    winner: int


def tournament_select(
    fitness: Sequence[float], size: int, rng: np.random.Generator
) -> tuple[int, TournamentRecord]:
    """Pick `size` distinct members at random (all if fewer) and return the fittest's index."""
    n = len(fitness)
    if n == 0:
        raise ValueError("tournament over an empty population")
    picked = rng.choice(n, size=min(size, n), replace=False)
    contestants = tuple(int(i) for i in picked)
    winner = min(contestants, key=lambda i: (finite_or_inf(fitness[i]), i))
    return winner, TournamentRecord(contestants, winner)


@dataclass(frozen=True)
class LrMutationRecord:
    """A learning-rate mutation: before, after and whether it fired."""

    old: float
    new: float
    mutated: bool


def mutate_lr(
    lr: float,
    rng: np.random.Generator,
    *,
    rule: str = "multiplicative",
    probability: float = 0.5,
    sigma: float = 0.2,
    additive_sigma: float = 1e-4,
    lr_min: float = 1e-6,
    lr_max: float = 1e-2,
) -> tuple[float, LrMutationRecord]:
    """Perturb a learning rate with probability `probability`.

    multiplicative: `lr * exp(N(0, sigma))`; additive (Lipizzaner): `lr + N(0, additive_sigma)`;
    "none" never changes it. The result is clipped to [lr_min, lr_max].
    """
    if rule not in ("multiplicative", "additive", "none"):
        raise ValueError(f"unknown lr mutation {rule!r}; allowed: multiplicative, additive, none")
    fire = rule != "none" and bool(rng.random() < probability)
    new = lr
    if fire and rule == "multiplicative":
        new = lr * math.exp(float(rng.normal(0.0, sigma)))
    elif fire:
        new = lr + float(rng.normal(0.0, additive_sigma))
    new = float(min(max(new, lr_min), lr_max))
    return new, LrMutationRecord(lr, new, fire)


def set_optimizer_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Write a learning rate into every param group (what actually changes the step size)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def draw_loss(names: Sequence[str], rng: np.random.Generator) -> str:
    """Mustangs loss mutation: one loss drawn uniformly from the configured set."""
    return str(names[int(rng.integers(len(names)))])


@dataclass(frozen=True)
class ReplacementRecord:
    """Outcome of elitist replacement.

    Attributes:
        replaced: population slot the offspring took, or None if it was not good enough.
        centre: slot of the best member after replacement (the new centre).
        fitness: population fitness after replacement.
    """

    replaced: int | None
    centre: int
    fitness: tuple[float, ...]


def elitist_replacement(
    population_fitness: Sequence[float], offspring_fitness: float
) -> ReplacementRecord:
    """The offspring replaces the worst member only if strictly better; the best is kept.

    Ties between members are broken by the lower slot, so the cell's own centre (slot 0) stays
    when nothing is better.
    """
    fit = [finite_or_inf(f) for f in population_fitness]
    if not fit:
        raise ValueError("replacement over an empty population")
    off = finite_or_inf(offspring_fitness)
    worst = max(range(len(fit)), key=lambda i: (fit[i], i))
    replaced: int | None = None
    if off < fit[worst]:
        fit[worst] = off
        replaced = worst
    centre = min(range(len(fit)), key=lambda i: (fit[i], i))
    return ReplacementRecord(replaced, centre, tuple(fit))


@dataclass(frozen=True)
class MixtureRecord:
    """One (1+1)-ES step on mixture weights."""

    old_weights: tuple[float, ...]
    candidate: tuple[float, ...]
    old_score: float
    new_score: float
    accepted: bool


def perturb_mixture(weights: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian step on the weights, clipped at 0 and renormalised onto the simplex.

    If every weight is clipped to 0 the old vector is kept, so the result is always valid.
    """
    candidate = np.clip(weights + rng.normal(0.0, sigma, size=weights.shape), 0.0, None)
    total = candidate.sum()
    if not np.isfinite(total) or total <= 0:
        return weights.copy()
    return candidate / total


@torch.no_grad()
def all_finite(net: nn.Module) -> bool:
    """Whether every floating-point parameter and buffer of `net` is finite (one device sync)."""
    flags = [torch.isfinite(t).all() for t in net.state_dict().values() if t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def usable_mixture(weights: np.ndarray, usable: Sequence[bool]) -> np.ndarray | None:
    """The mixture weights restricted to the `usable` members (finite generators).

    The other members' weights become 0 and the rest is renormalised; usable members that
    all had weight 0 share it equally, so a mixture whose weight sat on broken members falls
    back to its finite ones. `weights` itself comes back when every member is usable, so
    finite runs stay bit-identical.

    Returns:
        The restricted weights, or None when no member is usable.
    """
    mask = np.asarray(usable, dtype=bool)
    if mask.all():
        return weights
    if not mask.any():
        return None
    w = np.where(mask, np.asarray(weights, dtype=np.float64), 0.0)
    total = w.sum()
    if not np.isfinite(total) or total <= 0:
        w = mask.astype(np.float64)
        total = w.sum()
    return w / total


def mixture_counts(weights: np.ndarray, n: int) -> np.ndarray:
    """How many of `n` samples each member draws: exact proportions by largest remainder."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or len(w) == 0 or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"mixture weights must be non-negative and not all 0, got {w}")
    raw = w / w.sum() * n
    counts = np.floor(raw).astype(np.int64)
    short = n - int(counts.sum())
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:short]] += 1
    return counts


@contextmanager
def eval_mode(nets: Sequence[nn.Module]) -> Iterator[None]:
    """Put `nets` in eval mode for the block and give each back its own mode after it."""
    modes = [n.training for n in nets]
    for n in nets:
        n.eval()
    try:
        yield
    finally:
        for n, mode in zip(nets, modes):
            n.train(mode)


@torch.no_grad()
def mixture_samples(gens: Sequence[nn.Module], weights: np.ndarray, z: Tensor) -> Tensor:
    """Samples of the mixture of `gens` (in eval mode) on the noise `z`, on the CPU: member k
    maps its `mixture_counts` share of consecutive rows of `z`."""
    counts = mixture_counts(weights, len(z))
    parts, start = [], 0
    for g, c in zip(gens, counts):
        if c > 0:
            with eval_mode([g]):
                parts.append(g(z[start : start + int(c)]))
        start += int(c)
    return torch.cat(parts).cpu()


def mixture_es_step(
    weights: np.ndarray,
    sigma: float,
    rng: np.random.Generator,
    score: ScoreFn,
    usable: Sequence[bool] | None = None,
) -> tuple[np.ndarray, MixtureRecord]:
    """One (1+1)-ES step: keep the perturbed weights only if they score strictly lower.

    Args:
        weights: the current weights.
        sigma: the step size.
        rng: the cell's generator (one normal draw per member, usable or not).
        score: weights -> objective (lower is better).
        usable: which members may get weight (default all): both the current weights and the
            candidate are restricted to them (`usable_mixture`), so a non-finite generator
            keeps weight 0. At least one member must be usable.
    """
    mask = [True] * len(weights) if usable is None else list(usable)
    restricted = usable_mixture(weights, mask)
    if restricted is None:
        raise ValueError("mixture ES step with no usable member")
    weights = restricted
    old_score = finite_or_inf(score(weights))
    candidate = usable_mixture(perturb_mixture(weights, sigma, rng), mask)
    assert candidate is not None  # the same mask as `weights`
    new_score = finite_or_inf(score(candidate))
    accepted = new_score < old_score
    kept = candidate if accepted else weights
    record = MixtureRecord(
        tuple(float(w) for w in weights),
        tuple(float(w) for w in candidate),
        old_score,
        new_score,
        accepted,
    )
    return kept, record
