"""The `tune` section of a run config and the sweep policy it implies, without Ray.

What may be searched (`STRUCTURAL_KNOBS`, drawn once per trial, and `LIVE_KNOBS`, which
PBT/PB2 may also perturb in a running population), how a knob's domain is written
(`SearchDomain`), the `TuneSection` dataclass with its own checks, the checks against the
evaluation schedule (`check_against_metrics`) and the bounds perturbed values are kept in
(`perturbation_bounds`, `clamp_to_space`). Like the rest of `raygan.config` it imports neither
torch nor Ray; `raygan.tuning.experiment` turns the section into Tune's
search space and schedulers. What each scheduler does with the section is its spec's
(`raygan.config.specs.SchedulerSpec`: `raygan.tuning.scheduler_specs`, `.evolve_spec`).
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from raygan.config import specs
from raygan.errors import check, check_nonnegative

STRUCTURAL_KNOBS: tuple[str, ...] = (
    "seed", "grid.rows", "grid.cols", "training.lr_g", "training.lr_d", "training.exchange_every",
    "losses.multi_discriminator",
)
"""Searchable keys that shape the population or its start: drawn once per trial, never
perturbed (the learning rates are every individual's initial rates; lr mutation moves them)."""

LIVE_KNOBS: tuple[str, ...] = (
    "evolution.lr_mutation_sigma",
    "evolution.lr_mutation_probability",
    "evolution.lr_additive_sigma",
    "evolution.tournament_size",
    "mixture.sigma",
    "losses.gman_temperature",
    "losses.hv_delta",
    "losses.real_label",
    "evolution.egan_gamma",
    "training.historical_averaging",
)
"""Searchable keys a running population can switch to between generations (PBT/PB2 mutate)."""


@dataclass(frozen=True)
class SearchDomain:
    """Where one knob is drawn from: exactly one of the fields is set.

    `choice` draws one value, `grid` runs every value (times `tune.num_samples`), `uniform` and
    `loguniform` draw a float in `[low, high]`, `randint` an integer in `[low, high)`.
    """

    choice: tuple[int | float | str, ...] | None = None
    grid: tuple[int | float | str, ...] | None = None
    uniform: tuple[float, ...] | None = None
    loguniform: tuple[float, ...] | None = None
    randint: tuple[int, ...] | None = None

    @property
    def kind(self) -> str:
        """Name of the field that is set."""
        return next(f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None)

    @property
    def continuous(self) -> bool:
        """True for `uniform` and `loguniform` (what PB2 can model)."""
        return self.uniform is not None or self.loguniform is not None

    @property
    def listed(self) -> bool:
        """True for `choice` and `grid`, whose values are written out."""
        return self.choice is not None or self.grid is not None

    def values(self) -> tuple[Any, ...]:
        """The listed values (`choice`, `grid`) or the bounds."""
        return typing.cast(tuple[Any, ...], getattr(self, self.kind))

    def extremes(self) -> tuple[Any, ...]:
        """The values that stand for the whole domain: what a check must try.

        Every listed value, else the lowest and the highest value a draw can take (`randint`'s
        high bound is exclusive).
        """
        values = self.values()
        if self.randint is not None:
            return (values[0], values[1] - 1)
        return values


@dataclass(frozen=True)
class TuneSection:
    """Ray Tune settings for `raygan train` and `raygan tune` (the `tune` section)."""

    scheduler: str = "none"  # a registered scheduler (raygan.tuning.scheduler_specs)
    metric: str | None = None  # None: `best/<metrics.rank_by>`
    mode: Literal["min", "max"] | None = None  # None: the direction of the metric
    num_samples: int = 1
    max_concurrent_trials: int | None = None
    space: dict[str, SearchDomain] = field(default_factory=dict)
    perturbation_interval: int = 5  # PBT/PB2: generations between exploit/explore steps
    quantile_fraction: float = 0.25  # PBT/PB2: bottom fraction that copies the top one
    resample_probability: float = 0.25  # PBT: chance a mutated knob is redrawn from its domain
    synch: bool = False  # PBT/PB2: wait for every trial before perturbing
    grace_period: int = 5  # ASHA: generations before a trial may be stopped
    reduction_factor: int = 3  # ASHA: 1/reduction_factor of the trials go on at each rung
    max_failures: int = 2  # restarts of a failed trial from its last checkpoint
    reuse_actors: bool = True
    # evolve only (architecture evolution, raygan.tuning.evolve): every perturbation_interval
    # generations the best elite_fraction of the num_samples genomes go on unchanged; the
    # others restart from an elite's checkpoint with a mutation of its genome ("mutate": the
    # weights whose shapes still agree are kept) or with a new random genome ("random")
    elite_fraction: float = 0.25
    refill: Literal["mutate", "random"] = "mutate"
    # "metric": tune.metric (reference FID by default); "neurales": the cells' mean G training
    # loss plus parameter_penalty per million parameters of G and D (lower is better)
    fitness: Literal["metric", "neurales"] = "metric"
    parameter_penalty: float = 0.1
    max_parameters: int = 1_500_000  # per network, for the genomes evolve draws and mutates
    # the conv widths those genomes may use (a CPU sweep keeps them narrow: the cost of a conv
    # block grows with its width squared at full resolution, which max_parameters cannot see)
    channels: tuple[int, ...] = (8, 16, 32, 64, 128)

    def __post_init__(self) -> None:
        spec = specs.scheduler(self.scheduler)
        check(self.num_samples >= 1, "tune.num_samples", "must be >= 1")
        check(
            self.max_concurrent_trials is None or self.max_concurrent_trials >= 1,
            "tune.max_concurrent_trials",
            "must be >= 1 or null",
        )
        check(self.perturbation_interval >= 1, "tune.perturbation_interval", "must be >= 1")
        check(
            0 < self.quantile_fraction <= 0.5,
            "tune.quantile_fraction",
            f"must be in (0, 0.5], got {self.quantile_fraction}",
        )
        check(
            0 <= self.resample_probability <= 1,
            "tune.resample_probability",
            f"must be in [0, 1], got {self.resample_probability}",
        )
        check(self.grace_period >= 1, "tune.grace_period", "must be >= 1")
        check(self.reduction_factor >= 2, "tune.reduction_factor", "must be >= 2")
        check(self.max_failures >= -1, "tune.max_failures", "must be >= 0 (or -1: forever)")
        check(0 < self.elite_fraction < 1, "tune.elite_fraction",
              f"must be in (0, 1) (some genomes survive, some are replaced), got "
              f"{self.elite_fraction}")
        check_nonnegative(self.parameter_penalty, "tune.parameter_penalty")
        check(self.max_parameters >= 1000, "tune.max_parameters",
              f"must be >= 1000, got {self.max_parameters}")
        check(len(self.channels) >= 1 and min(self.channels) >= 1, "tune.channels",
              f"must list conv widths >= 1, got {list(self.channels)}")
        check(self.metric is None or bool(self.metric), "tune.metric", "must not be empty")
        allowed = STRUCTURAL_KNOBS + LIVE_KNOBS
        for key, domain in self.space.items():
            where = f"tune.space.{key}"
            hint = difflib.get_close_matches(key, allowed, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            check(key in allowed, where, f"not a searchable key{extra}; allowed: "
                  + ", ".join(allowed))
            _check_domain(domain, where)
        if spec.mutates != "none":
            live = list(self.mutable())
            kinds = "uniform/loguniform " if spec.mutates == "continuous" else ""
            check(
                bool(live),
                "tune.space",
                f"{self.scheduler} needs at least one {kinds}domain over a key it can change "
                "during a run: " + ", ".join(LIVE_KNOBS),
            )

    @property
    def perturbs(self) -> bool:
        """True under schedulers that restart trials from others' checkpoints (PBT, PB2,
        evolve)."""
        return specs.scheduler(self.scheduler).perturbs

    def mutable(self) -> dict[str, SearchDomain]:
        """The domains the scheduler perturbs: live knobs (PB2: only the continuous ones);
        none for the others (evolve changes genomes only)."""
        mutates = specs.scheduler(self.scheduler).mutates
        if mutates == "none":
            return {}
        return {
            k: d for k, d in self.space.items()
            if k in LIVE_KNOBS and (d.continuous or mutates != "continuous")
        }


def _check_domain(domain: SearchDomain, where: str) -> None:
    """Exactly one field set, with values it can draw from (`where` names the knob)."""
    kinds = [f.name for f in dataclasses.fields(domain) if getattr(domain, f.name) is not None]
    check(
        len(kinds) == 1,
        where,
        "set exactly one of " + ", ".join(f.name for f in dataclasses.fields(domain))
        + (f", got {', '.join(kinds)}" if kinds else ""),
    )
    values = domain.values()
    if domain.listed:
        check(len(values) >= 1, f"{where}.{kinds[0]}", "needs at least one value")
        return
    check(len(values) == 2, f"{where}.{kinds[0]}", f"expected [low, high], got {list(values)}")
    low, high = values
    check(low < high, f"{where}.{kinds[0]}", f"needs low < high, got {list(values)}")
    check(
        domain.loguniform is None or low > 0,
        f"{where}.loguniform",
        f"needs low > 0, got {list(values)}",
    )


def check_against_metrics(tune: TuneSection, metrics_every: int) -> None:
    """Check that the scheduler decides only at evaluations (every `metrics_every` generations).

    Between evaluations a trial reports the scores it carried forward, so a scheduler deciding
    there would compare stale scores.

    Raises:
        ConfigError: when `tune.perturbation_interval` (PBT/PB2) or `tune.grace_period` (ASHA)
            is not a multiple of `metrics_every`.
    """
    key = specs.scheduler(tune.scheduler).decides_every
    if key is None:
        return
    value = getattr(tune, key.removeprefix("tune."))
    check(
        value % metrics_every == 0,
        key,
        f"must be a multiple of metrics.every ({metrics_every}), got {value}",
    )


def perturbation_bounds(tune: TuneSection) -> dict[str, tuple[float, float]]:
    """The closed range each perturbed numeric knob must stay in.

    Listed domains (`choice`, `grid`) are left out: PBT only ever picks one of their values.
    """
    return {k: d.extremes() for k, d in tune.mutable().items() if not d.listed}


def clamp_to_space(
    bounds: dict[str, tuple[float, float]], config: dict[str, Any]
) -> dict[str, Any]:
    """Keep perturbed knobs inside their domains (PBT multiplies by 0.8 / 1.2 unbounded)."""
    out = dict(config)
    for key, (low, high) in bounds.items():
        value = min(max(out[key], low), high)
        out[key] = int(round(value)) if isinstance(out[key], int) else value
    return out
