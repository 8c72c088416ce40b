"""Architecture evolution on Ray Tune (Neurales, COEGAN): the `evolve` scheduler.

Each trial trains one genome (`networks.kind: genome`, a grid of it) for
`tune.perturbation_interval` generations; then the best `tune.elite_fraction` of the population go
on unchanged and every other trial restarts from an elite's checkpoint with a mutation of that
elite's genome (`tune.refill: mutate`, the weights whose names and shapes still agree are kept) or
with a new random genome (`random`, fresh weights). Fitness is `tune.metric` (reference FID by
default) or the Neurales form (`tune.fitness: neurales`, see `neurales_fitness`).

Why a scheduler and not a searcher: a searcher only proposes configs for new trials, while the
elitist step must stop running trials at a generation boundary and restart them from another
trial's checkpoint with a changed config: that is PBT's exploit. `ElitistEvolution` is Tune's
synchronous PBT with the quantiles replaced by the elitist split (`raygan.arch.elitism.select`),
the clone drawn by this module's own RNG instead of Python's global one, and the explore step
replaced by `raygan.arch.elitism.refill`. Each step is also written to `evolve.jsonl` in the
experiment directory: every genome with its fitness, parameter counts and parent.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from ray import tune
from ray.tune.experiment import Trial

from raygan.arch.bounds import Bounds
from raygan.arch.build import parameter_count
from raygan.arch.elitism import Refill, refill, select
from raygan.arch.genome import Genome
from raygan.arch.variation import inherit_state, random_genome
from raygan.config import RunConfig
from raygan.tuning.schedulers import POPULATIONS, SCHEDULERS, PopulationBasedTraining

GENOME_KEY = "networks.genome"
"""The trial-config key each trial's genome is drawn into."""
LOG_NAME = "evolve.jsonl"
"""Where each elitist step is recorded, in the experiment directory."""


def data_shape_of(config: RunConfig) -> tuple[int, ...]:
    """One image's shape under `config.data`: known for the built-in sets, else read from the
    data (a folder's cache or an array's header make that cheap)."""
    from raygan.data.images import IMAGE_DATASETS, image_shape

    if config.data.name in IMAGE_DATASETS:
        return image_shape(config.data.name, config.data.image_size)
    from raygan.data import load_dataset

    return load_dataset(config.data, config.seed).sample_shape


def make_evolve_scheduler(config: RunConfig) -> ElitistEvolution:
    """The `evolve` scheduler of `config`'s tune section."""
    t = config.tune
    return ElitistEvolution(
        elite_fraction=t.elite_fraction, mode=t.refill, data_shape=data_shape_of(config),
        bounds=bounds_of(config), latent_dim=config.networks.latent_dim, seed=config.seed,
        perturbation_interval=t.perturbation_interval)


def population_space(config: RunConfig) -> list[str]:
    """The encoded genomes of the first generation (`initial_population`, seeded by `seed`)."""
    rng = np.random.default_rng(config.seed)
    return [g.encode() for g in initial_population(config, data_shape_of(config), rng)]


def bounds_of(config: RunConfig) -> Bounds:
    """The genome limits of an `evolve` sweep (`tune.max_parameters` per network, the conv
    widths of `tune.channels`, learning rates within a factor of 4-10 of DCGAN's 2e-4)."""
    return Bounds(channels=config.tune.channels, max_params=config.tune.max_parameters,
                  lr_min=5e-5, lr_max=2e-3)


def initial_population(
    config: RunConfig, data_shape: tuple[int, ...], rng: np.random.Generator
) -> list[Genome]:
    """`tune.num_samples` genomes: `networks.genome` first when set, then random ones."""
    given = [Genome.decode(config.networks.genome)] if config.networks.genome else []
    drawn = [
        random_genome(rng, data_shape, bounds_of(config), config.networks.latent_dim)[0]
        for _ in range(config.tune.num_samples - len(given))
    ]
    return given + drawn


def neurales_fitness(g_losses: Sequence[float], parameters: int, penalty: float) -> float:
    """The Neurales-style fitness (lower is better): the cells' mean G training loss plus
    `penalty` per million parameters; +inf when a loss is not finite."""
    loss = float(np.mean(g_losses)) if len(g_losses) else math.inf
    return loss + penalty * parameters / 1e6 if math.isfinite(loss) else math.inf


def adopt_genome(
    saved: Sequence[dict[str, Any]], fresh: Sequence[dict[str, Any]], inherit: bool
) -> tuple[list[dict[str, Any]], int]:
    """Cell states for a trial whose genome changed since `saved` was written.

    Every cell keeps its saved state (generation, RNG streams, mixture weights) except its
    networks, which are the `fresh` ones (the new genome, initialised, with new optimizers);
    with `inherit` the fresh networks and weight averages first take every tensor of the saved
    ones whose name and shape agree (`raygan.arch.variation.inherit_state`).

    Returns:
        The states, and how many tensors were inherited.
    """
    if len(saved) != len(fresh):
        raise ValueError(f"checkpoint has {len(saved)} cells, the grid has {len(fresh)}")
    out, copied = [], 0
    for old, new in zip(saved, fresh):
        state = dict(old)
        for side in ("g", "d"):
            side_state = dict(new[side])
            if inherit:
                copied += inherit_state(side_state["net"], old[side]["net"])
                if side_state.get("ema") is not None and old[side].get("ema") is not None:
                    copied += inherit_state(side_state["ema"], old[side]["ema"])
            state[side] = side_state
        out.append(state)
    return out, copied


class ElitistEvolution(PopulationBasedTraining):
    """Synchronous PBT whose exploit is the elitist step (see the module docstring).

    Args:
        elite_fraction: share of the population kept at each step (at least one trial).
        mode: "mutate" or "random" (`tune.refill`).
        data_shape: one image's (C, H, W), for the genomes it draws.
        bounds: limits of those genomes.
        latent_dim: G's input size.
        seed: seed of the RNG that draws parents and genomes.
        perturbation_interval: generations between elitist steps.
    """

    def __init__(
        self,
        *,
        elite_fraction: float,
        mode: Literal["mutate", "random"],
        data_shape: tuple[int, ...],
        bounds: Bounds,
        latent_dim: int,
        seed: int,
        perturbation_interval: int,
    ) -> None:
        super().__init__(
            time_attr="generation",
            perturbation_interval=perturbation_interval,
            synch=True,
            # PBT needs an explore function; `_get_new_config` below replaces the explore step
            custom_explore_fn=lambda config: config,
        )
        self._elite_fraction = elite_fraction
        self._refill = mode
        self._data_shape = data_shape
        self._bounds = bounds
        self._latent_dim = latent_dim
        self._rng = np.random.default_rng(seed)
        self._plan: dict[Trial, tuple[Trial, Genome, Refill]] = {}
        self._steps = 0

    def _quantiles(self) -> tuple[list[Trial], list[Trial]]:
        """(replaced, elites) of the trials still running, and the plan of the step."""
        live = {t.trial_id: t for t, s in self._trial_state.items()
                if s.last_score is not None and not t.is_finished()}
        if len(live) <= 1:
            return [], []
        # PBT's scores are signed so that higher is better; NaN ranks last
        scores = {i: float(self._trial_state[t].last_score or math.nan) for i, t in live.items()}
        elite_ids, replaced_ids = select(scores, self._elite_fraction, lower_is_better=False)
        genomes = {i: Genome.decode(t.config[GENOME_KEY]) for i, t in live.items()}
        planned = refill(replaced_ids, elite_ids, genomes, self._rng, self._refill,
                         self._data_shape, self._bounds, self._latent_dim)
        self._plan = {}
        for trial_id, (genome, record) in planned.items():
            # a random genome restarts from an elite's checkpoint too (its generation count and
            # history), with fresh weights: the elite it continues is drawn like a parent
            source = record.parent or elite_ids[int(self._rng.integers(len(elite_ids)))]
            self._plan[live[trial_id]] = (live[source], genome, record)
        self._log_step(live, genomes, elite_ids + replaced_ids, len(elite_ids), planned)
        return [live[i] for i in replaced_ids], [live[i] for i in elite_ids]

    def _checkpoint_or_exploit(
        self,
        trial: Trial,
        tune_controller: Any,
        upper_quantile: list[Trial],
        lower_quantile: list[Trial],
    ) -> None:
        # PBT clones `random.choice(upper_quantile)`: offering only the planned source makes
        # the clone this module's RNG's draw
        if trial in self._plan:
            upper_quantile = [self._plan[trial][0]]
        super()._checkpoint_or_exploit(trial, tune_controller, upper_quantile, lower_quantile)

    def _get_new_config(self, trial: Trial, trial_to_clone: Trial) -> tuple[dict, dict]:
        """The elite's config with the planned genome, and the variation made."""
        _, genome, record = self._plan[trial]
        config = {**trial_to_clone.config, GENOME_KEY: genome.encode()}
        return config, {GENOME_KEY: f"{record.variation.op} ({record.parent or 'random'})"}

    def _log_step(
        self,
        live: dict[str, Trial],
        genomes: dict[str, Genome],
        ranked: list[str],
        elites: int,
        planned: dict[str, tuple[Genome, Refill]],
    ) -> None:
        """Append this step's population (best first) and decisions to `evolve.jsonl`."""
        self._steps += 1
        any_trial = next(iter(live.values()))
        rows = []
        for rank, trial_id in enumerate(ranked):
            trial = live[trial_id]
            g_params, d_params = parameter_count(
                genomes[trial_id], self._latent_dim, self._data_shape)
            state = self._trial_state[trial]
            new = planned.get(trial_id)
            rows.append({
                "trial": trial_id,
                "genome": genomes[trial_id].encode(),
                "fitness": (state.last_result or {}).get(self._metric or ""),
                "g_params": g_params,
                "d_params": d_params,
                "elite": rank < elites,
                "rank": rank,
                "parent": None if new is None else new[1].parent,
                "variation": None if new is None else new[1].variation.op,
                "new_genome": None if new is None else new[0].encode(),
            })
        record = {"step": self._steps, "generation": max(
            (s.last_train_time for s in self._trial_state.values()), default=0),
            "trials": rows}
        path = os.path.join(any_trial.local_experiment_path, LOG_NAME)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


# a built-in scheduler: its spec (`raygan.tuning.evolve_spec`) is registered with raygan and
# names this module, imported when the scheduler is first built
SCHEDULERS["evolve"] = make_evolve_scheduler
POPULATIONS["evolve"] = lambda config: {GENOME_KEY: tune.grid_search(population_space(config))}
