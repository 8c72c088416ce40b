"""Typed, frozen run configuration loaded from YAML.

Every section is a frozen dataclass. `load_config` reads a YAML file, applies `--set a.b=value`
overrides and builds the dataclasses, rejecting unknown keys and bad values with a
`ConfigError` that names the key and what is allowed. Nothing here imports torch or ray.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from raygan.metrics import catalog
from raygan.metrics.catalog import TOY_DATASETS

LossName = Literal["minimax", "heuristic", "least_squares", "hinge", "wasserstein_gp"]
DatasetName = Literal[
    "ring8", "grid25", "mnist5k", "digits8x8", "mnist", "fashion_mnist", "cifar10", "celeba"
]
NetworkName = Literal["mlp", "dcgan"]
RuleName = Literal["lipizzaner", "lipizzaner-selection", "own", "fresh", "live"]
"""Training rules (raygan.core.rules; ALGORITHM.md "Training rules")."""
BCE_COMPATIBLE: tuple[str, ...] = ("minimax", "heuristic", "least_squares")
RENAMED: dict[str, str] = {
    "training.adversaries": "training.adversaries was replaced by training.rule: "
    "'neighbourhood' is now 'lipizzaner' (centre trained in place against adversaries drawn "
    "from the neighbourhood), 'own' stays 'own'; allowed: "
    + ", ".join(repr(r) for r in get_args(RuleName)),
}
"""Keys of earlier versions, with what to write instead."""
REMOVED: dict[str, str] = {
    "output.dir": "output.dir was removed (nothing read it): a plain run writes to "
    "`raygan train --out DIR`, a Tune experiment under output.storage_path",
}
"""Keys that did nothing and were removed: an error in a config a user writes, dropped from a
config an earlier version saved (`config_from_saved`)."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` as a float (YAML 1.1 wants `1.0e-3`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    """Parse YAML safely, reading `1e-3` as a number."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader subclass)


class ConfigError(ValueError):
    """A configuration key is unknown or its value is not allowed."""


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


@dataclass(frozen=True)
class DataConfig:
    """What the cells learn to generate and how it is split among them."""

    name: DatasetName = "ring8"
    samples: int = 20_000  # toy data only: total number of points generated
    std: float | None = None  # toy only; None = the PacGAN value (0.01 ring, 0.05 grid)
    radius: float = 1.0  # ring8 only
    sharding: Literal["split", "replicate"] = "split"
    root: str = "./data"
    download: bool = False
    image_size: int | None = None

    def __post_init__(self) -> None:
        _check(self.samples >= 1, "data.samples", f"must be >= 1, got {self.samples}")
        _check(self.std is None or self.std > 0, "data.std", f"must be > 0, got {self.std}")
        _check(self.radius > 0, "data.radius", f"must be > 0, got {self.radius}")

    @property
    def is_toy(self) -> bool:
        """True for the 2-D Gaussian mixtures."""
        return self.name in TOY_DATASETS


@dataclass(frozen=True)
class NetworksConfig:
    """Generator and discriminator architecture."""

    kind: NetworkName = "mlp"
    latent_dim: int = 64
    g_hidden: int = 256
    d_hidden: int = 256
    hidden_layers: int = 2  # MLP only: hidden layers between input and output
    # MLP generator only: ReLU can map whole latent regions onto one point, which the sharp
    # modes of the toy mixtures need; LeakyReLU (Lipizzaner's choice) keeps images smoother
    g_activation: Literal["leaky_relu", "relu"] = "leaky_relu"
    dcgan_width: int = 64

    def __post_init__(self) -> None:
        for key in ("latent_dim", "g_hidden", "d_hidden", "dcgan_width"):
            value = getattr(self, key)
            _check(value >= 1, f"networks.{key}", f"must be >= 1, got {value}")
        _check(
            self.hidden_layers >= 0,
            "networks.hidden_layers",
            f"must be >= 0, got {self.hidden_layers}",
        )


@dataclass(frozen=True)
class LossesConfig:
    """Generator loss set (Mustangs) and how often a new one is drawn."""

    generator: tuple[LossName, ...] = ("minimax", "heuristic", "least_squares")
    mutation: Literal["generation", "batch"] = "generation"
    # "matching": D minimises the loss that pairs with G's (least-squares D for a least-squares
    # G); "bce": D always minimises BCE, as the reference Mustangs does
    discriminator: Literal["matching", "bce"] = "matching"
    gradient_penalty: float = 10.0  # wasserstein_gp only

    def __post_init__(self) -> None:
        _check(len(self.generator) >= 1, "losses.generator", "needs at least one loss")
        _check(
            len(set(self.generator)) == len(self.generator),
            "losses.generator",
            f"has duplicates: {list(self.generator)}",
        )
        _check(self.gradient_penalty >= 0, "losses.gradient_penalty", "must be >= 0")
        odd = [name for name in self.generator if name not in BCE_COMPATIBLE]
        _check(
            self.discriminator != "bce" or not odd,
            "losses.discriminator",
            f"'bce' cannot train the critic of {', '.join(odd)}; use 'matching' or only "
            + ", ".join(BCE_COMPATIBLE),
        )


@dataclass(frozen=True)
class GridConfig:
    """Toroidal grid shape and neighbourhood."""

    rows: int = 2
    cols: int = 2
    neighbourhood: Literal["von_neumann", "moore"] = "von_neumann"
    radius: int = 1

    def __post_init__(self) -> None:
        _check(self.rows >= 1, "grid.rows", f"must be >= 1, got {self.rows}")
        _check(self.cols >= 1, "grid.cols", f"must be >= 1, got {self.cols}")
        _check(self.radius >= 1, "grid.radius", f"must be >= 1, got {self.radius}")

    @property
    def size(self) -> int:
        """Number of cells."""
        return self.rows * self.cols


@dataclass(frozen=True)
class EvolutionConfig:
    """Selection, fitness, learning-rate mutation and replacement."""

    # rule "own" only: tournament selection over the neighbourhood, and elitist replacement of
    # the centre (the other rules fix whether they select: see training.rule)
    selection: bool = False
    tournament_size: int = 2
    fitness_sample_size: int = 1000
    fitness_aggregation: Literal["average", "worst", "best"] = "average"
    fitness_loss: LossName = "heuristic"
    lr_mutation: Literal["multiplicative", "additive", "none"] = "multiplicative"
    lr_mutation_probability: float = 0.5
    lr_mutation_sigma: float = 0.2  # multiplicative: sigma of log-normal factor
    lr_additive_sigma: float = 1e-4  # additive (Lipizzaner) rule: sigma of the added noise
    lr_min: float = 1e-6
    lr_max: float = 1e-2
    replacement: bool = False

    def __post_init__(self) -> None:
        _check(self.tournament_size >= 1, "evolution.tournament_size", "must be >= 1")
        _check(self.fitness_sample_size >= 2, "evolution.fitness_sample_size", "must be >= 2")
        _check(
            0.0 <= self.lr_mutation_probability <= 1.0,
            "evolution.lr_mutation_probability",
            f"must be in [0, 1], got {self.lr_mutation_probability}",
        )
        _check(self.lr_mutation_sigma >= 0, "evolution.lr_mutation_sigma", "must be >= 0")
        _check(self.lr_additive_sigma >= 0, "evolution.lr_additive_sigma", "must be >= 0")
        _check(
            0 < self.lr_min <= self.lr_max,
            "evolution.lr_min",
            f"need 0 < lr_min <= lr_max, got {self.lr_min} and {self.lr_max}",
        )


@dataclass(frozen=True)
class MixtureConfig:
    """(1+1)-ES over the mixture weights of a cell's neighbourhood generators."""

    enabled: bool = True
    sigma: float = 0.01
    samples: int = 2500  # samples drawn to score a weight vector
    # the metric the ES minimises (maximises, for a higher-is-better one); None: the data
    # set's default (`coverage_score` on toy data, `fid` on digits, `fid_inception` natural)
    objective: str | None = None

    def __post_init__(self) -> None:
        _check(self.sigma >= 0, "mixture.sigma", f"must be >= 0, got {self.sigma}")
        _check(self.samples >= 10, "mixture.samples", f"must be >= 10, got {self.samples}")


@dataclass(frozen=True)
class TrainingConfig:
    """Gradient training inside each cell."""

    generations: int = 10
    batch_size: int = 100
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_batches: int | None = None  # cap on batches per generation (None = whole shard)
    # who trains against whom (raygan.core.rules): "lipizzaner" (centre in place, adversaries
    # drawn per batch from the neighbourhood), "lipizzaner-selection" (tournament-selected
    # clones train against each other, kept only if better), "own" (each cell's own pair;
    # evolution.selection/replacement optional), "fresh" (lipizzaner with neighbours refreshed
    # every exchange_every batches), "live" (neighbour copies trained in the cell too)
    rule: RuleName = "lipizzaner"
    d_every: int = 1  # D steps on every n-th batch only (the reference MNIST configs use 2)
    exchange_every: int | None = None  # rule "fresh": batches between neighbour refreshes
    # decay per step of the generator's weight average (0 = off); cells sample, publish for
    # mixtures and are scored on the average, which removes the jitter of the live weights
    g_ema: float = 0.0

    def __post_init__(self) -> None:
        _check(self.generations >= 1, "training.generations", "must be >= 1")
        _check(self.batch_size >= 2, "training.batch_size", f"must be >= 2, got {self.batch_size}")
        _check(self.lr_g > 0, "training.lr_g", "must be > 0")
        _check(self.lr_d > 0, "training.lr_d", "must be > 0")
        _check(0 <= self.beta1 < 1, "training.beta1", "must be in [0, 1)")
        _check(0 <= self.beta2 < 1, "training.beta2", "must be in [0, 1)")
        _check(0 <= self.g_ema < 1, "training.g_ema", f"must be in [0, 1), got {self.g_ema}")
        _check(self.d_every >= 1, "training.d_every", f"must be >= 1, got {self.d_every}")
        _check(
            self.exchange_every is None or self.exchange_every >= 1,
            "training.exchange_every",
            f"must be >= 1 or null, got {self.exchange_every}",
        )
        _check(
            (self.exchange_every is not None) == (self.rule == "fresh"),
            "training.exchange_every",
            "rule 'fresh' needs it (batches between neighbour refreshes)"
            if self.rule == "fresh"
            else f"only rule 'fresh' refreshes neighbours during a generation, not {self.rule!r}",
        )
        _check(
            self.max_batches is None or self.max_batches >= 1,
            "training.max_batches",
            "must be >= 1 or null",
        )


@dataclass(frozen=True)
class MetricsConfig:
    """Evaluation schedule and settings."""

    every: int = 1  # evaluate every N generations (and always at the end)
    samples: int | None = None  # per evaluation; None: 2,500 on toy data, 1,000 on images
    # names from raygan.metrics.catalog; None: the data set's defaults (toy coverage; fid,
    # tvd, inception_score on digits; fid_inception on CIFAR-10 / CelebA)
    names: tuple[str, ...] | None = None
    rank_by: str | None = None  # ranks cells and trials; None: mode_tvd / fid / fid_inception
    cache_dir: str = "~/.cache/raygan"
    # torchvision's inception_v3_google-0cc3c7bd.pth or stylegan2-ada's TorchScript
    # inception-2015-12-05.pt (see raygan.metrics.catalog.INCEPTION_HELP)
    inception_weights: str | None = None

    def __post_init__(self) -> None:
        _check(self.every >= 1, "metrics.every", f"must be >= 1, got {self.every}")
        _check(
            self.samples is None or self.samples >= 10,
            "metrics.samples",
            f"must be >= 10 or null, got {self.samples}",
        )
        _check(self.names is None or len(self.names) >= 1, "metrics.names", "needs a metric")
        _check(
            self.names is None or len(set(self.names)) == len(self.names),
            "metrics.names",
            f"has duplicates: {list(self.names or [])}",
        )


@dataclass(frozen=True)
class ResourcesConfig:
    """Where the cells run (the Ray backend reads this)."""

    backend: Literal["local", "ray"] = "local"
    cpus_per_cell: float = 1.0
    gpus_per_cell: float = 0.0
    controller_cpus: float = 1.0  # Tune trials with backend ray: the controller's own bundle
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    placement_timeout_s: float = 60.0
    torch_threads: int | None = None  # None: the cell's CPU share, at least 1

    def __post_init__(self) -> None:
        _check(self.cpus_per_cell >= 0, "resources.cpus_per_cell", "must be >= 0")
        _check(self.controller_cpus >= 0, "resources.controller_cpus", "must be >= 0")
        _check(
            self.gpus_per_cell >= 0 and (self.gpus_per_cell <= 1 or self.gpus_per_cell % 1 == 0),
            "resources.gpus_per_cell",
            f"must be a fraction in [0, 1] or a whole number, got {self.gpus_per_cell}",
        )
        _check(
            self.torch_threads is None or self.torch_threads >= 1,
            "resources.torch_threads",
            "must be >= 1 or null",
        )
        _check(self.placement_timeout_s > 0, "resources.placement_timeout_s", "must be > 0")

    def cell_threads(self) -> int:
        """Intra-op threads per cell: `torch_threads`, else the cell's whole CPUs (>= 1).

        Small networks run far slower with more threads than cores (on 2 busy cores a 1x1 grid
        took 90x longer with 2 threads than with 1), so cells never take more than their share.
        """
        if self.torch_threads is not None:
            return self.torch_threads
        return max(1, int(self.cpus_per_cell))


@dataclass(frozen=True)
class OutputConfig:
    """Where results go."""

    storage_path: str = "./results"  # Tune experiments: a directory or an s3:// / gs:// URI
    checkpoint_every: int = 1
    keep_checkpoints: int | None = None  # Tune; None: all under PBT/PB2 (exploits use them), else 2
    # figures are redrawn at every evaluation; every plot_every generations a numbered copy
    # (`samples_gen0020.png`, ...) is kept too (0: no copies)
    plot_every: int = 0

    def __post_init__(self) -> None:
        _check(self.checkpoint_every >= 1, "output.checkpoint_every", "must be >= 1")
        _check(self.plot_every >= 0, "output.plot_every", "must be >= 0")
        _check(bool(self.storage_path.strip()), "output.storage_path", "must not be empty")
        _check(
            self.keep_checkpoints is None or self.keep_checkpoints >= 1,
            "output.keep_checkpoints",
            "must be >= 1 or null",
        )


SchedulerName = Literal["none", "pbt", "pb2", "asha"]

STRUCTURAL_KNOBS: tuple[str, ...] = (
    "seed", "grid.rows", "grid.cols", "training.lr_g", "training.lr_d", "training.exchange_every",
)
"""Searchable keys that shape the population or its start: drawn once per trial, never
perturbed (the learning rates are every individual's initial rates; lr mutation moves them)."""

LIVE_KNOBS: tuple[str, ...] = (
    "evolution.lr_mutation_sigma",
    "evolution.lr_mutation_probability",
    "evolution.lr_additive_sigma",
    "evolution.tournament_size",
    "mixture.sigma",
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

    def values(self) -> tuple[Any, ...]:
        """The listed values (`choice`, `grid`) or the bounds."""
        return typing.cast(tuple[Any, ...], getattr(self, self.kind))


@dataclass(frozen=True)
class TuneSection:
    """Ray Tune settings for `raygan train` and `raygan tune` (the `tune` section)."""

    scheduler: SchedulerName = "none"
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

    def __post_init__(self) -> None:
        _check(self.num_samples >= 1, "tune.num_samples", "must be >= 1")
        _check(
            self.max_concurrent_trials is None or self.max_concurrent_trials >= 1,
            "tune.max_concurrent_trials",
            "must be >= 1 or null",
        )
        _check(self.perturbation_interval >= 1, "tune.perturbation_interval", "must be >= 1")
        _check(
            0 < self.quantile_fraction <= 0.5,
            "tune.quantile_fraction",
            f"must be in (0, 0.5], got {self.quantile_fraction}",
        )
        _check(
            0 <= self.resample_probability <= 1,
            "tune.resample_probability",
            f"must be in [0, 1], got {self.resample_probability}",
        )
        _check(self.grace_period >= 1, "tune.grace_period", "must be >= 1")
        _check(self.reduction_factor >= 2, "tune.reduction_factor", "must be >= 2")
        _check(self.max_failures >= -1, "tune.max_failures", "must be >= 0 (or -1: forever)")
        _check(self.metric is None or bool(self.metric), "tune.metric", "must not be empty")
        allowed = STRUCTURAL_KNOBS + LIVE_KNOBS
        for key, domain in self.space.items():
            where = f"tune.space.{key}"
            hint = difflib.get_close_matches(key, allowed, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            _check(key in allowed, where, f"not a searchable key{extra}; allowed: "
                   + ", ".join(allowed))
            _check_domain(domain, where)
        if self.scheduler in ("pbt", "pb2"):
            live = [k for k, d in self.space.items()
                    if k in LIVE_KNOBS and (d.continuous or self.scheduler == "pbt")]
            kinds = "uniform/loguniform " if self.scheduler == "pb2" else ""
            _check(
                bool(live),
                "tune.space",
                f"{self.scheduler} needs at least one {kinds}domain over a key it can change "
                "during a run: " + ", ".join(LIVE_KNOBS),
            )

    def mutable(self) -> dict[str, SearchDomain]:
        """The domains PBT/PB2 perturb: live knobs (PB2: only the continuous ones)."""
        return {
            k: d for k, d in self.space.items()
            if k in LIVE_KNOBS and (d.continuous or self.scheduler != "pb2")
        }


def _check_domain(domain: SearchDomain, where: str) -> None:
    kinds = [f.name for f in dataclasses.fields(domain) if getattr(domain, f.name) is not None]
    _check(
        len(kinds) == 1,
        where,
        "set exactly one of " + ", ".join(f.name for f in dataclasses.fields(domain))
        + (f", got {', '.join(kinds)}" if kinds else ""),
    )
    values = domain.values()
    if domain.choice is not None or domain.grid is not None:
        _check(len(values) >= 1, f"{where}.{kinds[0]}", "needs at least one value")
        return
    _check(len(values) == 2, f"{where}.{kinds[0]}", f"expected [low, high], got {list(values)}")
    low, high = values
    _check(low < high, f"{where}.{kinds[0]}", f"needs low < high, got {list(values)}")
    _check(
        domain.loguniform is None or low > 0,
        f"{where}.loguniform",
        f"needs low > 0, got {list(values)}",
    )


def inert_options(config: RunConfig) -> dict[str, str]:
    """The options that nothing reads under `config`'s other settings, with the reason."""
    evo, rule = config.evolution, config.training.rule
    out: dict[str, str] = {}
    if not (rule == "lipizzaner-selection" or (rule == "own" and evo.selection)):
        out["evolution.tournament_size"] = (
            f"rule {rule!r} holds no tournaments (only 'lipizzaner-selection', and 'own' with "
            "evolution.selection: true, do)")
    mutation = {"multiplicative": "evolution.lr_mutation_sigma",
                "additive": "evolution.lr_additive_sigma"}
    for kind, key in mutation.items():
        if evo.lr_mutation != kind:
            out[key] = f"evolution.lr_mutation is {evo.lr_mutation!r}, not {kind!r}"
    if evo.lr_mutation == "none":
        out["evolution.lr_mutation_probability"] = "evolution.lr_mutation is 'none'"
    return out


@dataclass(frozen=True)
class RunConfig:
    """A whole coevolution run."""

    name: str = "raygan"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    networks: NetworksConfig = field(default_factory=NetworksConfig)
    losses: LossesConfig = field(default_factory=LossesConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    evolution: EvolutionConfig = field(default_factory=EvolutionConfig)
    mixture: MixtureConfig = field(default_factory=MixtureConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    tune: TuneSection = field(default_factory=TuneSection)

    def __post_init__(self) -> None:
        _check(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        _check(
            self.networks.kind != "dcgan" or not self.data.is_toy,
            "networks.kind",
            f"'dcgan' needs image data, but data.name is {self.data.name!r}",
        )
        # schedulers compare the carried-forward scores, so they must decide at evaluations
        every, t = self.metrics.every, self.tune
        _check(
            t.scheduler not in ("pbt", "pb2") or t.perturbation_interval % every == 0,
            "tune.perturbation_interval",
            f"must be a multiple of metrics.every ({every}), got {t.perturbation_interval}",
        )
        _check(
            t.scheduler != "asha" or t.grace_period % every == 0,
            "tune.grace_period",
            f"must be a multiple of metrics.every ({every}), got {t.grace_period}",
        )
        # figures are drawn from an evaluation's samples, so copies can only be kept at one
        _check(
            self.output.plot_every % every == 0,
            "output.plot_every",
            f"must be a multiple of metrics.every ({every}), got {self.output.plot_every}",
        )
        evo, rule = self.evolution, self.training.rule
        for key in ("selection", "replacement"):
            _check(
                rule == "own" or not getattr(evo, key),
                f"evolution.{key}",
                f"only training.rule 'own' has this option; rule {rule!r} "
                + ("selects by itself" if rule == "lipizzaner-selection" else "never selects")
                + ": set it false",
            )
        self._check_inert()
        self._check_metrics()
        self._check_space()

    def _check_inert(self) -> None:
        """An option set away from its default where nothing reads it is an error, not silence
        (`inert_options` says where each one acts)."""
        for key, why in inert_options(self).items():
            section, name = key.split(".")
            value = getattr(getattr(self, section), name)
            default = getattr(type(getattr(self, section))(), name)
            _check(value == default, key, f"is set to {value!r} but cannot act: {why}")

    def _check_metrics(self) -> None:
        """Every metric name must be in the catalog and apply to the data set."""
        data = self.data.name
        for i, name in enumerate(self.metrics.names or ()):
            problem = catalog.check_name(name, data)
            _check(problem is None, f"metrics.names[{i}]", str(problem))
        for key, chosen in (("metrics.rank_by", self.metrics.rank_by),
                            ("mixture.objective", self.mixture.objective)):
            problem = None if chosen is None else catalog.check_name(chosen, data)
            _check(problem is None, key, str(problem))
        _check(
            self.rank_by in self.metric_names,
            "metrics.rank_by",
            f"{self.rank_by!r} is not among the reported metrics.names "
            f"({', '.join(self.metric_names)}); add it there",
        )
        needs_inception = "fid_inception" in (*self.metric_names, self.mixture_objective)
        _check(
            not needs_inception or self.metrics.inception_weights is not None,
            "metrics.inception_weights",
            f"fid_inception (data set {data!r}) needs Inception-v3 weights: "
            + catalog.INCEPTION_HELP,
        )

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The metrics every evaluation reports (`metrics.names` or the data set's default)."""
        return self.metrics.names or catalog.default_names(self.data.name)

    @property
    def rank_by(self) -> str:
        """The metric that ranks cells (and, by default, trials)."""
        return self.metrics.rank_by or catalog.default_rank_by(self.data.name)

    @property
    def mixture_objective(self) -> str:
        """The metric the mixture ES optimises."""
        return self.mixture.objective or catalog.default_objective(self.data.name)

    @property
    def eval_samples(self) -> int:
        """Samples drawn per evaluation (`metrics.samples`, else 2,500 toy / 1,000 images)."""
        if self.metrics.samples is not None:
            return self.metrics.samples
        return 2500 if self.data.is_toy else 1000

    @property
    def tune_metric(self) -> str:
        """The result key trials are ranked by: `tune.metric`, else the best `rank_by`."""
        return self.tune.metric or catalog.result_key(self.rank_by)

    @property
    def tune_mode(self) -> Literal["min", "max"]:
        """`tune.mode`, else the ranking metric's direction."""
        if self.tune.mode is not None:
            return self.tune.mode
        name = self.tune_metric.removeprefix(catalog.BEST_PREFIX)
        return "min" if catalog.lower_is_better(name) else "max"

    def _check_space(self) -> None:
        """Every listed value (and both bounds) of `tune.space` must give a valid config."""
        if not self.tune.space:
            return
        base = self.to_dict()
        base["tune"] = {}  # the candidates carry no space, so this does not recurse
        for key, domain in self.tune.space.items():
            values = domain.values()
            if domain.randint is not None:
                values = (values[0], values[1] - 1)
            for value in values:
                data = copy.deepcopy(base)
                _set_dotted(data, key, value)
                try:
                    config_from_dict(data)
                except ConfigError as exc:
                    raise ConfigError(
                        f"tune.space.{key}: the value {value!r} is not allowed ({exc})"
                    ) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists) that round-trips through `config_from_dict`."""
        return _plain(dataclasses.asdict(self))

    def replace(self, **overrides: Any) -> RunConfig:
        """Copy with dotted-key overrides, e.g. `cfg.replace(**{"grid.rows": 3})`."""
        data = self.to_dict()
        for key, value in overrides.items():
            _set_dotted(data, key, value)
        return config_from_dict(data)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against type `tp` (the subset of typing used in this module)."""
    origin = get_origin(tp)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            hint = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(
                f"{key}: {value!r} is not allowed; allowed values: "
                + ", ".join(repr(a) for a in allowed)
                + extra
            )
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(
            f"{key}: {value!r} is not allowed; expected "
            + " or ".join(_type_name(o) if o is not type(None) else "null" for o in options)
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        (key_tp, item_tp) = get_args(tp)
        return {
            _coerce(k, key_tp, key): _coerce(v, item_tp, f"{key}.{k}") for k, v in value.items()
        }
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp, _ellipsis) = get_args(tp)
        return tuple(_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    raise TypeError(f"unsupported config type {tp!r} at {key}")  # a bug in this module


def _build(cls: Any, data: Any, prefix: str) -> Any:
    where = prefix or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if full in RENAMED or full in REMOVED:
            raise ConfigError(RENAMED.get(full) or REMOVED[full])
        if key not in names:
            hint = difflib.get_close_matches(str(key), names, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(
                f"unknown key {full!r}{extra}; allowed keys in {where}: " + ", ".join(names)
            )
        kwargs[key] = _coerce(value, hints[key], full)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Build a validated `RunConfig` from a nested dict.

    Raises:
        ConfigError: on an unknown key or a value that is not allowed.
    """
    return typing.cast(RunConfig, _build(RunConfig, data, ""))


def config_from_saved(data: dict[str, Any]) -> RunConfig:
    """`config_from_dict` of a config an earlier raygan saved (a checkpoint's, a Tune trial's):
    keys since removed (`REMOVED`) are dropped instead of refused."""
    data = copy.deepcopy(data)
    for key in REMOVED:
        section, name = key.split(".")
        if isinstance(data.get(section), dict):
            data[section].pop(name, None)
    return config_from_dict(data)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one `a.b=value` override; the value is read as YAML (`3`, `true`, `[a, b]`)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected the form section.key=value")
    return key.strip(), yaml_load(raw) if raw.strip() else None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's error on one line: what is wrong and where."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load a YAML run config and apply `a.b=value` overrides.

    Args:
        path: YAML file; None starts from the defaults.
        overrides: strings of the form `section.key=value`.

    Raises:
        ConfigError: on an unknown key, a bad value or malformed YAML.
        FileNotFoundError: when `path` does not exist.
    """
    data: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text()
        try:
            loaded = yaml_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        data = loaded or {}
    for text in overrides or []:
        key, value = parse_override(text)
        _set_dotted(data, key, value)
    return config_from_dict(data)
