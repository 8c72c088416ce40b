"""The `evolve` Tune scheduler's spec: what the config knows of it (`raygan.config.specs`).

Plain Python, imported with `raygan` (`raygan.components`); the scheduler itself is
`raygan.tuning.evolve`'s (it imports Ray).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from raygan.config.specs import SCHEDULERS, SchedulerSpec, network
from raygan.errors import check

if TYPE_CHECKING:
    from raygan.config.schema import RunConfig

NEURALES_FITNESS = "neurales_fitness"
"""The result key of `tune.fitness: neurales` (`raygan.tuning.evolve.neurales_fitness`)."""


def _inert(config: RunConfig) -> dict[str, str]:
    tune = config.tune
    if tune.fitness != "neurales":
        return {"tune.parameter_penalty": f"tune.fitness is {tune.fitness!r}, not 'neurales'"}
    return {"tune.metric": "tune.fitness 'neurales' ranks by neurales_fitness"}


def _check(config: RunConfig) -> None:
    tune = config.tune
    check(network(config).genome, "tune.scheduler",
          "'evolve' evolves architecture genomes: set networks.kind: genome")
    check(tune.num_samples >= 2, "tune.num_samples",
          f"evolve needs a population of at least 2 genomes, got {tune.num_samples}")
    # Tune creates no trial beyond the limit until one ends, so a limited population would
    # step with the running few only; the cluster's resources pace the trials instead
    check(tune.max_concurrent_trials is None or tune.max_concurrent_trials >= tune.num_samples,
          "tune.max_concurrent_trials",
          f"evolve steps the whole population together: leave it null or set it to at least "
          f"tune.num_samples ({tune.num_samples}), got {tune.max_concurrent_trials}")


def _ranking(config: RunConfig) -> tuple[str, Literal["min", "max"]] | None:
    return (NEURALES_FITNESS, "min") if config.tune.fitness == "neurales" else None


EVOLVE = SCHEDULERS.add(SchedulerSpec(
    "evolve", "architecture evolution: elitist selection over a population of genomes",
    options=("tune.elite_fraction", "tune.refill", "tune.fitness", "tune.parameter_penalty",
             "tune.max_parameters", "tune.channels"),
    inert=_inert, check=_check, perturbs=True, decides_every="tune.perturbation_interval",
    population=True, ranking=_ranking, implementation="raygan.tuning.evolve"))
