"""The sections that say what is trained: the data, the networks and the losses.

One frozen dataclass per YAML section, each checking its own keys in `__post_init__`; the
sections that say how it is trained and run are `raygan.config.sections`. The names of data
sources, network kinds and losses are their specs' (`raygan.config.specs`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from raygan.config import specs
from raygan.config.catalog import TOY_DATASETS, DataKind
from raygan.errors import check, check_nonnegative

MultiDName = Literal["none", "avg", "gman", "hv", "mgd"]
"""Multi-discriminator generator objectives (raygan.core.multi_d)."""
SUPPLIED: dict[str, dict[str, str]] = {
    "g": {"latent_dim": "networks.latent_dim", "data_shape": "one sample's shape"},
    "d": {"data_shape": "one sample's shape"},
}
"""Keywords raygan passes to a custom G ("g") or D ("d") whose signature names them, with
what they hold (`raygan.core.custom`)."""


@dataclass(frozen=True)
class DataConfig:
    """What the cells learn to generate and how it is split among them.

    `name` picks a registered source (`raygan.data.sources`): a built-in set (ring8, grid25,
    mnist5k, digits8x8, mnist, fashion_mnist, cifar10, celeba), `folder` (a directory of
    images), `array` (an .npy/.npz file), `python` (a function) or `hf` (Hugging Face
    `datasets`). Each source reads only some of the other keys; setting one it does not read
    is an error.
    """

    name: str = "ring8"
    sharding: Literal["split", "replicate"] = "split"
    samples: int = 20_000  # toy data only: total number of points generated
    std: float | None = None  # toy only; None = the PacGAN value (0.01 ring, 0.05 grid)
    radius: float = 1.0  # ring8 only
    root: str = "./data"  # torchvision sets: their directory; folder: the image directory
    download: bool = False
    image_size: int | None = None  # resize the short side, then centre crop
    channels: int | None = None  # folder, hf: 1 or 3 (default: from the files)
    labels: Literal["none", "folders"] = "none"  # folder: class = first sub-folder
    path: str = ""  # array: the .npy/.npz file; hf: a saved directory or a hub name
    source: str = ""  # python: "package.module:function"
    split: str = "train"  # hf only
    column: str = ""  # hf: the image/vector column (default: the first image column)
    label_column: str = ""  # hf: the class-label column (default: none)
    cache_dir: str = "~/.cache/raygan/data"  # folder, hf: decoded uint8 arrays

    def __post_init__(self) -> None:
        source = specs.SOURCES.get(self.name)
        check(self.samples >= 1, "data.samples", f"must be >= 1, got {self.samples}")
        check(self.std is None or self.std > 0, "data.std", f"must be > 0, got {self.std}")
        check(self.radius > 0, "data.radius", f"must be > 0, got {self.radius}")
        check(self.image_size is None or self.image_size >= 1, "data.image_size",
              f"must be >= 1, got {self.image_size}")
        check(self.channels in (None, 1, 3), "data.channels",
              f"must be 1 or 3, got {self.channels}")
        for key, default in DATA_DEFAULTS.items():
            if key not in source.keys and getattr(self, key) != default:
                readers = [s.name for s in specs.SOURCES if key in s.keys]
                check(False, f"data.{key}",
                      f"is not read by data.name {self.name!r} (only by {', '.join(readers)})")

    @property
    def is_toy(self) -> bool:
        """True for the 2-D Gaussian mixtures."""
        return self.name in TOY_DATASETS

    @property
    def kind(self) -> DataKind:
        """What is known about the data before it is loaded."""
        return specs.SOURCES.get(self.name).kind(self)


@dataclass(frozen=True)
class NetworksConfig:
    """Generator and discriminator architecture."""

    kind: str = "mlp"  # a registered network kind (raygan.core.network_specs)
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
    # kind "genome" only: the architecture and optimizers, as `raygan.arch.Genome.encode`
    # writes them (image data; `raygan evolve` draws and mutates them)
    genome: str = ""
    # kind "custom" only (raygan.core.custom): the user's G and D, "package.module:Class" or
    # "path/to/file.py:factory", called with g_kwargs / d_kwargs (plus latent_dim and
    # data_shape where their signatures name them); dicts are not hashed (a frozen dataclass
    # hashes its fields, and the config is a cache key)
    generator: str = ""
    discriminator: str = ""
    g_kwargs: dict[str, Any] = field(default_factory=dict, hash=False)
    d_kwargs: dict[str, Any] = field(default_factory=dict, hash=False)

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
        specs.NETWORKS.get(self.kind)


@dataclass(frozen=True)
class LossesConfig:
    """Generator loss set (Mustangs), how often a new one is drawn, and multi-discriminator
    objectives (raygan.core.multi_d, raygan.core.local_d)."""

    # registered losses (raygan.core.loss_specs)
    generator: tuple[str, ...] = ("minimax", "heuristic", "least_squares")
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
        for i, name in enumerate(self.generator):
            specs.LOSSES.get(name, f"losses.generator[{i}]")
        labelled = specs.labelled_losses()
        check(
            0.5 < self.real_label <= 1.0,
            "losses.real_label",
            f"must be in (0.5, 1] (0.9: one-sided label smoothing, 1: off), got {self.real_label}",
        )
        unlabelled = [name for name in self.generator if name not in labelled]
        check(
            self.real_label == 1.0 or self.discriminator == "bce" or not unlabelled,
            "losses.real_label",
            f"is {self.real_label} but the D losses of {', '.join(unlabelled)} have no labels "
            "to smooth; use only " + ", ".join(labelled) + " or leave it at 1.0",
        )
        check(len(self.generator) >= 1, "losses.generator", "needs at least one loss")
        check(
            len(set(self.generator)) == len(self.generator),
            "losses.generator",
            f"has duplicates: {list(self.generator)}",
        )
        check_nonnegative(self.gradient_penalty, "losses.gradient_penalty")
        check_nonnegative(self.gman_temperature, "losses.gman_temperature", "0: plain average")
        check(self.k >= 2, "losses.k", f"must be >= 2, got {self.k}")
        check(
            self.discriminators != "local" or self.multi_discriminator != "none",
            "losses.discriminators",
            "'local' needs losses.multi_discriminator (avg, gman, hv or mgd) to combine the "
            "local discriminators",
        )
        penalised = [n for n in self.generator if specs.LOSSES.get(n).gradient_penalty]
        check(
            self.discriminators != "local" or not penalised,
            "losses.discriminators",
            f"'local' cannot train {', '.join(penalised)} critics (the gradient penalty is per "
            f"critic); drop {', '.join(penalised)} from losses.generator",
        )
        check(
            math.isfinite(self.hv_delta) and self.hv_delta > 1,
            "losses.hv_delta",
            f"must be finite and > 1 (the nadir must lie beyond the worst loss), "
            f"got {self.hv_delta}",
        )
        check(
            self.discriminator != "bce" or not unlabelled,
            "losses.discriminator",
            f"'bce' cannot train the critic of {', '.join(unlabelled)}; use 'matching' or only "
            + ", ".join(labelled),
        )


DATA_DEFAULTS: dict[str, object] = {
    key: getattr(DataConfig, key)
    for key in ("samples", "std", "radius", "root", "download", "image_size", "channels",
                "labels", "path", "source", "split", "column", "label_column", "cache_dir")
}
"""Defaults of the source-specific `data.*` keys (a changed one must be read by the source)."""
