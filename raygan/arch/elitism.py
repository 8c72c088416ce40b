"""The elitist step of architecture evolution, as pure functions.

In the style of Ray Tune's PBT ``_explore``: :func:`select` and :func:`refill` only decide and
return their decisions with a record; whatever reacts to trial events (stopping trials,
restarting them with new genomes, copying weights) calls them and applies the result.

Unlike the Neurales reference, which ranks with the inverse permutation and so keeps
individuals that are not the best, the elites here are exactly the best-ranked trials.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from raygan.arch.bounds import Bounds
from raygan.arch.genome import Genome
from raygan.arch.variation import Variation, mutate, random_genome


@dataclass(frozen=True)
class Refill:
    """How a replaced trial got its new genome.

    Args:
        parent: The elite's trial id the genome was mutated from; None for a random genome.
        variation: The mutation (or random draw) applied.
    """

    parent: str | None
    variation: Variation


def elite_count(n: int, elite_fraction: float) -> int:
    """``ceil(elite_fraction * n)`` elites, at least 1 and at most ``n``.

    Args:
        n: Population size (positive).
        elite_fraction: Share of the population kept, in (0, 1].
    """
    if n < 1:
        raise ValueError(f"the population is empty (n={n})")
    if not 0 < elite_fraction <= 1:
        raise ValueError(f"elite_fraction must be in (0, 1], got {elite_fraction}")
    # rounding first stops float noise from adding an elite: 0.3 * 10 is 3.0000000000000004
    return min(n, max(1, math.ceil(round(elite_fraction * n, 9))))


def select(
    fitness: Mapping[str, float], elite_fraction: float, lower_is_better: bool = True
) -> tuple[list[str], list[str]]:
    """Split trials into elites (kept) and the rest (replaced).

    Trials are ranked by fitness; NaN and +-inf rank last whatever the direction, and ties
    (equal fitness, or both non-finite) are broken by trial id in ascending order, so the
    result depends on the values only. The first :func:`elite_count` trials are the elites.

    Args:
        fitness: Trial id -> fitness.
        elite_fraction: Share kept, in (0, 1]; the count is ``ceil(fraction * n)``, at least 1.
        lower_is_better: True for losses, False for scores.

    Returns:
        ``(elites, replaced)``, each in rank order (best first).
    """
    sign = 1.0 if lower_is_better else -1.0

    def key(trial: str) -> tuple[bool, float, str]:
        value = float(fitness[trial])
        finite = math.isfinite(value)
        return (not finite, sign * value if finite else 0.0, trial)

    ranked = sorted(fitness, key=key)
    k = elite_count(len(ranked), elite_fraction)
    return ranked[:k], ranked[k:]


def refill(
    replaced: Sequence[str],
    elites: Sequence[str],
    genomes: Mapping[str, Genome],
    rng: np.random.Generator,
    mode: Literal["mutate", "random"],
    data_shape: tuple[int, ...],
    bounds: Bounds,
    latent_dim: int,
) -> dict[str, tuple[Genome, Refill]]:
    """A new genome for every replaced trial.

    In ``"mutate"`` mode each replaced trial draws an elite uniformly (as PBT draws from its
    top quantile) and gets a mutation of that elite's genome; in ``"random"`` mode it gets a
    fresh random genome. Trials are served in the order of ``replaced``, so the result is a
    function of the inputs and the RNG state.

    Args:
        replaced: Trials that get new genomes.
        elites: Trials that survive (parents in ``"mutate"`` mode).
        genomes: Trial id -> current genome; must hold every elite in ``"mutate"`` mode.
        rng: Source of every random choice.
        mode: ``"mutate"`` or ``"random"``.
        data_shape: ``(C, H, H)`` of one image.
        bounds: Limits of the new genomes.
        latent_dim: G's input size.

    Returns:
        Replaced trial id -> (new genome, :class:`Refill` record).
    """
    if mode not in ("mutate", "random"):
        raise ValueError(f"refill mode must be 'mutate' or 'random', got {mode!r}")
    overlap = set(replaced) & set(elites)
    if overlap:
        raise ValueError(f"trials both elite and replaced: {sorted(overlap)}")
    missing = [e for e in elites if e not in genomes]
    if mode == "mutate" and (not elites or missing):
        raise ValueError(f"mutate mode needs the genome of every elite; missing {missing or 'all'}")
    out: dict[str, tuple[Genome, Refill]] = {}
    for trial in replaced:
        if mode == "random":
            genome, record = random_genome(rng, data_shape, bounds, latent_dim)
            out[trial] = genome, Refill(None, record)
        else:
            parent = elites[int(rng.integers(len(elites)))]
            genome, record = mutate(genomes[parent], rng, data_shape, bounds, latent_dim)
            out[trial] = genome, Refill(parent, record)
    return out
