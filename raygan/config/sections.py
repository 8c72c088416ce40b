"""The sections that say how a run trains and runs: grid, evolution, mixture, training,
metrics, resources and output; what is trained (data, networks, losses) is `raygan.config.model`.

One frozen dataclass per YAML section but `tune`; each checks its own keys in `__post_init__`.
Checks that span sections are `RunConfig`'s (`raygan.config.schema`), and the `tune` section is
`raygan.config.tune`'s. The defaults here are the defaults of every run. The training rules'
names, and what each reads, are their specs' (`raygan.config.specs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from raygan.config import specs
from raygan.errors import check, check_nonnegative


@dataclass(frozen=True)
class GridConfig:
    """Toroidal grid shape and neighbourhood."""

    rows: int = 2
    cols: int = 2
    neighbourhood: Literal["von_neumann", "moore"] = "von_neumann"
    radius: int = 1

    def __post_init__(self) -> None:
        check(self.rows >= 1, "grid.rows", f"must be >= 1, got {self.rows}")
        check(self.cols >= 1, "grid.cols", f"must be >= 1, got {self.cols}")
        check(self.radius >= 1, "grid.radius", f"must be >= 1, got {self.radius}")

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
    fitness_loss: str = "heuristic"  # a registered loss (raygan.core.loss_specs)
    lr_mutation: Literal["multiplicative", "additive", "none"] = "multiplicative"
    lr_mutation_probability: float = 0.5
    lr_mutation_sigma: float = 0.2  # multiplicative: sigma of log-normal factor
    lr_additive_sigma: float = 1e-4  # additive (Lipizzaner) rule: sigma of the added noise
    lr_min: float = 1e-6
    lr_max: float = 1e-2
    replacement: bool = False
    # PBT-style exploit/explore inside the grid (raygan.core.exploit): with this probability
    # per cell and generation, score the neighbourhood's generators with the mixture
    # objective and, when a neighbour's beats the centre's by exploit_margin (relative),
    # copy that neighbour's G and D and multiply each rate by one of exploit_factors
    exploit_probability: float = 0.0
    exploit_margin: float = 0.2
    exploit_factors: tuple[float, ...] = (0.8, 1.2)
    # rule "egan" only: the weight of E-GAN's diversity term in its fitness F = Fq + gamma * Fd
    # (maximised; 2.0 is the authors' ring-of-8 script, see raygan.core.rules.egan), and how
    # many offspring survive each step as the next parents
    egan_gamma: float = 2.0
    egan_mu: int = 1

    def __post_init__(self) -> None:
        specs.LOSSES.get(self.fitness_loss, "evolution.fitness_loss")
        check(self.tournament_size >= 1, "evolution.tournament_size", "must be >= 1")
        check_nonnegative(self.egan_gamma, "evolution.egan_gamma")
        check(self.egan_mu >= 1, "evolution.egan_mu", f"must be >= 1, got {self.egan_mu}")
        check(self.fitness_sample_size >= 2, "evolution.fitness_sample_size", "must be >= 2")
        check(
            0.0 <= self.lr_mutation_probability <= 1.0,
            "evolution.lr_mutation_probability",
            f"must be in [0, 1], got {self.lr_mutation_probability}",
        )
        check(
            0.0 <= self.exploit_probability <= 1.0,
            "evolution.exploit_probability",
            f"must be in [0, 1] (0: off), got {self.exploit_probability}",
        )
        check(self.exploit_margin >= 0, "evolution.exploit_margin",
              f"must be >= 0 (relative; 0.2: a neighbour 20 % better), got {self.exploit_margin}")
        check(len(self.exploit_factors) >= 1 and all(f > 0 for f in self.exploit_factors),
              "evolution.exploit_factors",
              f"must be positive rate factors, got {list(self.exploit_factors)}")
        check(self.lr_mutation_sigma >= 0, "evolution.lr_mutation_sigma", "must be >= 0")
        check(self.lr_additive_sigma >= 0, "evolution.lr_additive_sigma", "must be >= 0")
        check(
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
        check(self.sigma >= 0, "mixture.sigma", f"must be >= 0, got {self.sigma}")
        check(self.samples >= 10, "mixture.samples", f"must be >= 10, got {self.samples}")


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
    # every exchange_every batches), "live" (neighbour copies trained in the cell too), "egan"
    # (E-GAN: every step one offspring of G per loss, the fittest survive; D trains in place);
    # or a rule registered with raygan.register_rule
    rule: str = "lipizzaner"
    d_every: int = 1  # D steps on every n-th batch only (the reference MNIST configs use 2)
    exchange_every: int | None = None  # rule "fresh": batches between neighbour refreshes
    # decay per step of the generator's weight average (0 = off); cells sample, publish for
    # mixtures and are scored on the average, which removes the jitter of the live weights
    g_ema: float = 0.0
    # historical averaging (Salimans et al. 2016): weight w of the penalty
    # w * ||theta - mean of past theta||^2 added to every G and D step (0 = off); the running
    # mean is part of each network's state (checkpoints, snapshots)
    historical_averaging: float = 0.0

    def __post_init__(self) -> None:
        specs.RULES.get(self.rule)
        check_nonnegative(self.historical_averaging, "training.historical_averaging", "0: off")
        check(self.generations >= 1, "training.generations", "must be >= 1")
        check(self.batch_size >= 2, "training.batch_size", f"must be >= 2, got {self.batch_size}")
        check(self.lr_g > 0, "training.lr_g", "must be > 0")
        check(self.lr_d > 0, "training.lr_d", "must be > 0")
        check(0 <= self.beta1 < 1, "training.beta1", "must be in [0, 1)")
        check(0 <= self.beta2 < 1, "training.beta2", "must be in [0, 1)")
        check(0 <= self.g_ema < 1, "training.g_ema", f"must be in [0, 1), got {self.g_ema}")
        check(self.d_every >= 1, "training.d_every", f"must be >= 1, got {self.d_every}")
        check(
            self.exchange_every is None or self.exchange_every >= 1,
            "training.exchange_every",
            f"must be >= 1 or null, got {self.exchange_every}",
        )
        check(
            self.max_batches is None or self.max_batches >= 1,
            "training.max_batches",
            "must be >= 1 or null",
        )


@dataclass(frozen=True)
class MetricsConfig:
    """Evaluation schedule and settings."""

    every: int = 1  # evaluate every N generations (and always at the end)
    samples: int | None = None  # per evaluation; None: 2,500 on toy data, 1,000 on images
    # names from raygan.config.catalog; None: the data set's defaults (toy coverage; fid,
    # tvd, inception_score on digits; fid_inception on CIFAR-10 / CelebA)
    names: tuple[str, ...] | None = None
    rank_by: str | None = None  # ranks cells and trials; None: mode_tvd / fid / fid_inception
    cache_dir: str = "~/.cache/raygan"
    # torchvision's inception_v3_google-0cc3c7bd.pth or stylegan2-ada's TorchScript
    # inception-2015-12-05.pt (see raygan.config.catalog.INCEPTION_HELP)
    inception_weights: str | None = None

    def __post_init__(self) -> None:
        check(self.every >= 1, "metrics.every", f"must be >= 1, got {self.every}")
        check(
            self.samples is None or self.samples >= 10,
            "metrics.samples",
            f"must be >= 10 or null, got {self.samples}",
        )
        check(self.names is None or len(self.names) >= 1, "metrics.names", "needs a metric")
        check(
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
    # cells hosted by one worker process (one Ray actor, one CUDA context); it reserves the sum
    # of its cells' shares, and neighbours inside it exchange without the object store
    cells_per_actor: int = 1
    # train a worker's cells as one stacked step (raygan.core.packed); needs cells_per_actor >= 2
    vectorise: bool = False

    def __post_init__(self) -> None:
        check(self.cpus_per_cell >= 0, "resources.cpus_per_cell", "must be >= 0")
        check(self.cells_per_actor >= 1, "resources.cells_per_actor",
              f"must be >= 1, got {self.cells_per_actor}")
        check(not self.vectorise or self.cells_per_actor >= 2, "resources.vectorise",
              "stacks the cells of one worker: set resources.cells_per_actor >= 2")
        gpus = self.gpus_per_cell * self.cells_per_actor
        check(gpus <= 1 + 1e-9 or self.cells_per_actor == 1, "resources.cells_per_actor",
              f"times gpus_per_cell is {gpus:g} GPUs per worker; a worker trains on one GPU, so "
              "keep cells_per_actor * gpus_per_cell <= 1")
        check(self.controller_cpus >= 0, "resources.controller_cpus", "must be >= 0")
        check(
            self.gpus_per_cell >= 0 and (self.gpus_per_cell <= 1 or self.gpus_per_cell % 1 == 0),
            "resources.gpus_per_cell",
            f"must be a fraction in [0, 1] or a whole number, got {self.gpus_per_cell}",
        )
        check(
            self.torch_threads is None or self.torch_threads >= 1,
            "resources.torch_threads",
            "must be >= 1 or null",
        )
        check(self.placement_timeout_s > 0, "resources.placement_timeout_s", "must be > 0")

    def workers(self, n_cells: int) -> list[list[int]]:
        """The cells each worker hosts: consecutive runs of `cells_per_actor` grid indices (the
        last may be shorter)."""
        k = self.cells_per_actor
        return [list(range(i, min(i + k, n_cells))) for i in range(0, n_cells, k)]

    def cell_threads(self, cells: int = 1) -> int:
        """Intra-op threads of a worker hosting `cells` cells: `torch_threads`, else the whole
        CPUs of their shares (>= 1).

        Small networks run far slower with more threads than cores (on 2 busy cores a 1x1 grid
        took 90x longer with 2 threads than with 1), so cells never take more than their share.
        """
        if self.torch_threads is not None:
            return self.torch_threads
        return max(1, int(self.cpus_per_cell * cells + 1e-9))


@dataclass(frozen=True)
class OutputConfig:
    """Where results go."""

    storage_path: str = "./results"  # Tune experiments: a directory or an s3:// / gs:// URI
    checkpoint_every: int = 1
    keep_checkpoints: int | None = None  # Tune; None: all under PBT/PB2 (exploits use them), else 2
    # figures are redrawn at every evaluation; every plot_every generations a numbered copy
    # (`samples_gen0020.png`, ...) is kept too (0: no copies)
    plot_every: int = 0
    # false: no figures at all (PNG files and their TensorBoard images); drawing them is most
    # of a tiny generation's time, and the scores, logs and checkpoints do not depend on them
    figures: bool = True

    def __post_init__(self) -> None:
        check(self.checkpoint_every >= 1, "output.checkpoint_every", "must be >= 1")
        check(self.plot_every >= 0, "output.plot_every", "must be >= 0")
        check(self.figures or self.plot_every == 0, "output.plot_every",
              "keeps copies of the figures, but output.figures is false: set plot_every: 0 or "
              "figures: true")
        check(bool(self.storage_path.strip()), "output.storage_path", "must not be empty")
        check(
            self.keep_checkpoints is None or self.keep_checkpoints >= 1,
            "output.keep_checkpoints",
            "must be >= 1 or null",
        )
