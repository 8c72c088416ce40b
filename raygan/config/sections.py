"""The sections of a run config: one frozen dataclass per YAML section but `tune`.

Each section checks its own keys in `__post_init__`; checks that span sections are
`RunConfig`'s (`raygan.config.schema`), and the `tune` section is `raygan.tuning.section`'s.
The defaults here are the defaults of every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from raygan.errors import check
from raygan.metrics.catalog import TOY_DATASETS

LossName = Literal["minimax", "heuristic", "least_squares", "hinge", "wasserstein_gp"]
DatasetName = Literal[
    "ring8", "grid25", "mnist5k", "digits8x8", "mnist", "fashion_mnist", "cifar10", "celeba"
]
NetworkName = Literal["mlp", "dcgan", "aae"]
MultiDName = Literal["none", "avg", "gman", "hv", "mgd"]
"""Multi-discriminator generator objectives (raygan.core.multi_d)."""
RuleName = Literal["lipizzaner", "lipizzaner-selection", "own", "fresh", "live", "egan"]
"""Training rules (raygan.core.rules; ALGORITHM.md "Training rules")."""
BCE_COMPATIBLE: tuple[str, ...] = ("minimax", "heuristic", "least_squares")


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
        check(self.samples >= 1, "data.samples", f"must be >= 1, got {self.samples}")
        check(self.std is None or self.std > 0, "data.std", f"must be > 0, got {self.std}")
        check(self.radius > 0, "data.radius", f"must be > 0, got {self.radius}")

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
    # improved techniques (Salimans et al. 2016): a minibatch-discrimination layer before D's
    # logit (MLP and DCGAN), with the reference code's 100 kernels of 5 dimensions
    minibatch_discrimination: bool = False
    minibatch_kernels: int = 100
    minibatch_kernel_dims: int = 5
    # the most samples the layer compares with each other: larger inputs (fitness samples) are
    # split into groups, so closeness keeps its training scale; keep it training.batch_size
    minibatch_group: int = 100
    # DCGAN generator only: "virtual_batch" normalises each example with the statistics of a
    # reference batch of latent vectors fixed at the start (vbn_reference_size of them) and
    # of the example itself
    g_norm: Literal["batch", "virtual_batch"] = "batch"
    vbn_reference_size: int = 100
    # kind "aae" only: the prior codes are drawn from (raygan.core.aae): N(0, I), or 10 2-D
    # Gaussians on a circle (latent_dim 2)
    aae_prior: Literal["gaussian", "mixture2d"] = "gaussian"

    def __post_init__(self) -> None:
        for key in ("latent_dim", "g_hidden", "d_hidden", "dcgan_width", "minibatch_kernels",
                    "minibatch_kernel_dims", "vbn_reference_size"):
            value = getattr(self, key)
            check(value >= 1, f"networks.{key}", f"must be >= 1, got {value}")
        check(self.minibatch_group >= 2, "networks.minibatch_group",
              f"must be >= 2 (a sample is compared with the others), got {self.minibatch_group}")
        check(
            self.hidden_layers >= 0,
            "networks.hidden_layers",
            f"must be >= 0, got {self.hidden_layers}",
        )
        check(
            self.aae_prior != "mixture2d" or self.latent_dim == 2,
            "networks.aae_prior",
            f"'mixture2d' is a 2-D prior; set networks.latent_dim to 2, not {self.latent_dim}",
        )


@dataclass(frozen=True)
class LossesConfig:
    """Generator loss set (Mustangs), how often a new one is drawn, and multi-discriminator
    objectives (raygan.core.multi_d, raygan.core.local_d)."""

    generator: tuple[LossName, ...] = ("minimax", "heuristic", "least_squares")
    mutation: Literal["generation", "batch"] = "generation"
    # "matching": D minimises the loss that pairs with G's (least-squares D for a least-squares
    # G); "bce": D always minimises BCE, as the reference Mustangs does
    discriminator: Literal["matching", "bce"] = "matching"
    gradient_penalty: float = 10.0  # wasserstein_gp only
    # improved techniques (Salimans et al. 2016): G minimises the squared distance between the
    # mean features of D's penultimate layer on real and on fake batches instead of its loss
    # (the loss still picks D's matching loss)
    feature_matching: bool = False
    # D's target on real samples (one-sided label smoothing; fakes stay 0): 0.9 is the
    # reference value, 1.0 is off; only losses with labels (BCE, least squares) can smooth
    real_label: float = 1.0
    # each G step against every D of its adversary pool (the neighbourhood) at once, combined
    # by raygan.core.multi_d: "avg", "gman", "hv", "mgd"; "none": one D drawn per step
    multi_discriminator: MultiDName = "none"
    gman_temperature: float = 1.0  # gman only: softmax(lambda * l_k) weights; 0 = avg
    hv_delta: float = 1.5  # hv only: nadir eta = hv_delta * max_k l_k
    # where the K discriminators come from: "neighbourhood" (the G step's adversary pool) or
    # "local" (every D is k MLP heads on fixed random projections of the input, the hGAN mode;
    # a G step draws one adversary and faces its k heads)
    discriminators: Literal["neighbourhood", "local"] = "neighbourhood"
    k: int = 8  # local only: heads per discriminator

    def __post_init__(self) -> None:
        check(
            0.5 < self.real_label <= 1.0,
            "losses.real_label",
            f"must be in (0.5, 1] (0.9: one-sided label smoothing, 1: off), got {self.real_label}",
        )
        unlabelled = [name for name in self.generator if name not in BCE_COMPATIBLE]
        check(
            self.real_label == 1.0 or self.discriminator == "bce" or not unlabelled,
            "losses.real_label",
            f"is {self.real_label} but the D losses of {', '.join(unlabelled)} have no labels "
            "to smooth; use only " + ", ".join(BCE_COMPATIBLE) + " or leave it at 1.0",
        )
        check(len(self.generator) >= 1, "losses.generator", "needs at least one loss")
        check(
            len(set(self.generator)) == len(self.generator),
            "losses.generator",
            f"has duplicates: {list(self.generator)}",
        )
        check(self.gradient_penalty >= 0, "losses.gradient_penalty", "must be >= 0")
        check(
            math.isfinite(self.gman_temperature) and self.gman_temperature >= 0,
            "losses.gman_temperature",
            f"must be finite and >= 0 (0: plain average), got {self.gman_temperature}",
        )
        check(self.k >= 2, "losses.k", f"must be >= 2, got {self.k}")
        check(
            self.discriminators != "local" or self.multi_discriminator != "none",
            "losses.discriminators",
            "'local' needs losses.multi_discriminator (avg, gman, hv or mgd) to combine the "
            "local discriminators",
        )
        check(
            self.discriminators != "local" or "wasserstein_gp" not in self.generator,
            "losses.discriminators",
            "'local' cannot train wasserstein_gp critics (the gradient penalty is per critic); "
            "drop wasserstein_gp from losses.generator",
        )
        check(
            math.isfinite(self.hv_delta) and self.hv_delta > 1,
            "losses.hv_delta",
            f"must be finite and > 1 (the nadir must lie beyond the worst loss), "
            f"got {self.hv_delta}",
        )
        odd = [name for name in self.generator if name not in BCE_COMPATIBLE]
        check(
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
    fitness_loss: LossName = "heuristic"
    lr_mutation: Literal["multiplicative", "additive", "none"] = "multiplicative"
    lr_mutation_probability: float = 0.5
    lr_mutation_sigma: float = 0.2  # multiplicative: sigma of log-normal factor
    lr_additive_sigma: float = 1e-4  # additive (Lipizzaner) rule: sigma of the added noise
    lr_min: float = 1e-6
    lr_max: float = 1e-2
    replacement: bool = False
    # rule "egan" only: the weight of E-GAN's diversity term in its fitness F = Fq + gamma * Fd
    # (maximised; 2.0 is the authors' ring-of-8 script, see raygan.core.rules.egan), and how
    # many offspring survive each step as the next parents
    egan_gamma: float = 2.0
    egan_mu: int = 1

    def __post_init__(self) -> None:
        check(self.tournament_size >= 1, "evolution.tournament_size", "must be >= 1")
        check(
            math.isfinite(self.egan_gamma) and self.egan_gamma >= 0,
            "evolution.egan_gamma",
            f"must be a finite number >= 0, got {self.egan_gamma}",
        )
        check(self.egan_mu >= 1, "evolution.egan_mu", f"must be >= 1, got {self.egan_mu}")
        check(self.fitness_sample_size >= 2, "evolution.fitness_sample_size", "must be >= 2")
        check(
            0.0 <= self.lr_mutation_probability <= 1.0,
            "evolution.lr_mutation_probability",
            f"must be in [0, 1], got {self.lr_mutation_probability}",
        )
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
    # (E-GAN: every step one offspring of G per loss, the fittest survive; D trains in place)
    rule: RuleName = "lipizzaner"
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
        check(
            math.isfinite(self.historical_averaging) and self.historical_averaging >= 0,
            "training.historical_averaging",
            f"must be a finite number >= 0 (0: off), got {self.historical_averaging}",
        )
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
            (self.exchange_every is not None) == (self.rule == "fresh"),
            "training.exchange_every",
            "rule 'fresh' needs it (batches between neighbour refreshes)"
            if self.rule == "fresh"
            else f"only rule 'fresh' refreshes neighbours during a generation, not {self.rule!r}",
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
    # names from raygan.metrics.catalog; None: the data set's defaults (toy coverage; fid,
    # tvd, inception_score on digits; fid_inception on CIFAR-10 / CelebA)
    names: tuple[str, ...] | None = None
    rank_by: str | None = None  # ranks cells and trials; None: mode_tvd / fid / fid_inception
    cache_dir: str = "~/.cache/raygan"
    # torchvision's inception_v3_google-0cc3c7bd.pth or stylegan2-ada's TorchScript
    # inception-2015-12-05.pt (see raygan.metrics.catalog.INCEPTION_HELP)
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

    def __post_init__(self) -> None:
        check(self.cpus_per_cell >= 0, "resources.cpus_per_cell", "must be >= 0")
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
        check(self.checkpoint_every >= 1, "output.checkpoint_every", "must be >= 1")
        check(self.plot_every >= 0, "output.plot_every", "must be >= 0")
        check(bool(self.storage_path.strip()), "output.storage_path", "must not be empty")
        check(
            self.keep_checkpoints is None or self.keep_checkpoints >= 1,
            "output.keep_checkpoints",
            "must be >= 1 or null",
        )
