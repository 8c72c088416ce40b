"""The names of every metric, what data each applies to, and how results are keyed and shown.

It sits in the config, the bottom layer, and imports neither torch nor numpy: the config
validates `metrics.names`, `metrics.rank_by` and `mixture.objective` against `METRICS` here,
and the offline readers (reports, the CLI) use `result_key` / `best_scores` /
`format_scores`. The functions that compute the metrics live in `raygan.metrics.registry`; a
test checks both list the same names.

Families: one feature extractor computes all the metrics of its family at once.
- `toy`: mode coverage of the 2-D Gaussian mixtures (PacGAN/VEEGAN protocol).
- `reference`: the reference protocol of ALGORITHM.md, a small CNN (conv 10 - conv 20 -
  fc 50 - fc K up to 28x28, `WideCNN` above) trained on the data set; FID on its K class
  logits, TVD between predicted-class histograms, the Inception-style score of its class
  probabilities.
- `lenet`: FID on the 128 pre-activation features of a larger LeNet (raygan's older `fid`).
- `inception`: FID on Inception-v3 pool3 features (natural images; needs a weights file).
- `swd`: sliced Wasserstein distance, on Laplacian-pyramid patches of images (ProGAN protocol)
  or in data space for vectors; any unlabelled data, no download.
- `kid`: kernel distance (KID) on the features of a fixed random convolutional network.
- `energy`: energy distance between vectors in data space.

Which metrics apply is a property of the data, a `DataKind`: its form (toy mixture, images,
vectors), whether it has class labels and whether it is natural (photographs). The config knows
the kind from `data.name` for the built-in sets; for a user's array or Python source it is known
only once the data is loaded, and the driver checks the names again then.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Family = Literal["toy", "reference", "lenet", "inception", "swd", "kid", "energy"]
Form = Literal["toy", "images", "vectors"]

BEST_PREFIX = "best/"
FLOOR_SUFFIX = "_floor"
UNLABELLED_DATASETS: tuple[str, ...] = ("celeba",)
NATURAL_DATASETS: tuple[str, ...] = ("cifar10", "celeba")
TOY_DATASETS: tuple[str, ...] = ("ring8", "grid25")
BUILTIN_IMAGE_DATASETS: tuple[str, ...] = (
    "mnist5k", "digits8x8", "mnist", "fashion_mnist", "cifar10", "celeba",
)
INCEPTION_URL = "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth"
INCEPTION_TORCHSCRIPT_URL = (
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
    "inception-2015-12-05.pt"
)
INCEPTION_HELP = (
    f"download {INCEPTION_URL} (torchvision's Inception-v3 state dict) or "
    f"{INCEPTION_TORCHSCRIPT_URL} (stylegan2-ada's TorchScript file) and set "
    "metrics.inception_weights to its path"
)


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its family, direction and whether a real-data floor is reported with it.

    Attributes:
        name: the key in score dicts, configs and logs.
        family: the feature extractor that computes it.
        lower_is_better: the direction rankings and the mixture ES use.
        floor: the value of real samples against other real samples is reported beside it
            as `<name>_floor`.
        description: one line for docs and errors.
    """

    name: str
    family: Family
    lower_is_better: bool
    floor: bool
    description: str


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("mode_tvd", "toy", True, False, "TVD of the mode histogram (missed bin too)"),
        MetricSpec("coverage_score", "toy", True, False, "mode TVD that ranks before any hit"),
        MetricSpec("modes_covered", "toy", False, False, "modes hit by a high-quality sample"),
        MetricSpec("hq_fraction", "toy", False, False, "share of samples within 3 std of a mode"),
        MetricSpec("reverse_kl", "toy", True, False, "KL of the mode histogram to uniform"),
        MetricSpec("fid", "reference", True, True, "FID on the reference CNN's class logits"),
        MetricSpec("tvd", "reference", True, True, "TVD of predicted-class histograms"),
        MetricSpec("inception_score", "reference", False, False, "IS of the reference CNN"),
        MetricSpec("fid_lenet", "lenet", True, True, "FID on 128-d LeNet features"),
        MetricSpec("fid_inception", "inception", True, True, "FID on Inception-v3 pool3"),
        MetricSpec("swd", "swd", True, True,
                   "sliced Wasserstein distance (x 1e3 on image pyramids; data space for vectors)"),
        MetricSpec("kid", "kid", True, True, "KID (x 1e3) on random convolutional features"),
        MetricSpec("energy", "energy", True, True, "energy distance in data space"),
    )
}

_FORMS: dict[Family, tuple[Form, ...]] = {
    "toy": ("toy",), "reference": ("images",), "lenet": ("images",), "inception": ("images",),
    "swd": ("images", "vectors"), "kid": ("images",), "energy": ("vectors",),
}
_NEEDS_LABELS: tuple[Family, ...] = ("reference", "lenet")


@dataclass(frozen=True)
class DataKind:
    """What the metrics need to know about a data set.

    Attributes:
        name: `data.name`, for messages.
        form: toy mixture, images (C, H, W) or vectors (D,); None while unknown (a user's
            array or Python source before it is loaded).
        labelled: whether every sample has a class label; None while unknown.
        natural: photographs (CIFAR-10, CelebA), whose default metric is Inception FID.
    """

    name: str
    form: Form | None = None
    labelled: bool | None = None
    natural: bool = False


def builtin_kind(name: str) -> DataKind | None:
    """The kind of a built-in data set, or None for a source whose kind depends on its files."""
    if name in TOY_DATASETS:
        return DataKind(name, "toy", False)
    if name in BUILTIN_IMAGE_DATASETS:
        return DataKind(name, "images", name not in UNLABELLED_DATASETS, name in NATURAL_DATASETS)
    return None


def _problem(spec: MetricSpec, kind: DataKind) -> str | None:
    """Why `spec` cannot be computed on data of `kind` (None: it can, or it may once the data
    is loaded)."""
    forms = _FORMS[spec.family]
    if kind.form is not None and kind.form not in forms:
        if spec.family == "toy":
            return "needs a Gaussian mixture with known modes (data.name ring8 or grid25)"
        return f"needs {' or '.join(forms)}, but {kind.name!r} holds {kind.form}"
    if kind.form is None and forms == ("toy",):
        return "needs a Gaussian mixture with known modes (data.name ring8 or grid25)"
    if spec.family in _NEEDS_LABELS and kind.labelled is False:
        return (f"trains a classifier on class labels, which {kind.name!r} does not have "
                "(data.labels: folders for an image folder, a y array in an .npz)")
    return None


def applies_to(spec: MetricSpec, kind: DataKind) -> bool:
    """Whether the metric can be computed on data of this kind (or may be, while unknown)."""
    return _problem(spec, kind) is None


def default_names(kind: DataKind) -> tuple[str, ...]:
    """The metrics reported when `metrics.names` is not set."""
    if kind.form == "toy":
        return ("mode_tvd", "modes_covered", "hq_fraction", "reverse_kl", "coverage_score")
    if kind.natural:
        return ("fid_inception",)
    if kind.form == "images" and kind.labelled:
        return ("fid", "tvd", "inception_score")
    if kind.form == "images":
        return ("swd", "kid")
    if kind.form == "vectors":
        return ("swd", "energy")
    return ("swd",)  # unknown until loaded: the one metric of both images and vectors


def default_rank_by(kind: DataKind) -> str:
    """The metric that ranks cells and trials when `metrics.rank_by` is not set."""
    return default_names(kind)[0]


def check_name(name: str, kind: DataKind) -> str | None:
    """None if `name` is a metric that applies to data of `kind`, else a one-line reason."""
    allowed = [n for n, s in METRICS.items() if applies_to(s, kind)]
    if name in allowed:
        return None
    if name in METRICS:
        return (f"{name!r} {_problem(METRICS[name], kind)}; allowed for {kind.name!r}: "
                f"{', '.join(allowed)}")
    hint = difflib.get_close_matches(name, allowed, n=1)
    extra = f" (did you mean {hint[0]!r}?)" if hint else ""
    return f"unknown metric {name!r}{extra}; allowed: {', '.join(allowed)}"


def lower_is_better(name: str) -> bool:
    """Direction of a metric (a floor, or a name outside the catalog, counts as lower)."""
    spec = METRICS.get(name)
    return True if spec is None else spec.lower_is_better


def families(names: Iterable[str]) -> list[str]:
    """The families needed to compute `names`, in first-use order."""
    out: list[str] = []
    for name in names:
        family = METRICS[name].family
        if family not in out:
            out.append(family)
    return out


def floor_name(name: str) -> str:
    """The key of a metric's real-data floor."""
    return name + FLOOR_SUFFIX


def result_key(name: str) -> str:
    """The key of the best mixture's `name` in generation summaries and Tune results."""
    return BEST_PREFIX + name


def best_scores(result: Mapping[str, Any]) -> dict[str, float]:
    """The best mixture's finite scores in a summary or Tune result, by metric name."""
    out = {}
    for key, value in result.items():
        if key.startswith(BEST_PREFIX) and isinstance(value, (int, float)):
            if not isinstance(value, bool) and math.isfinite(value):
                out[key[len(BEST_PREFIX) :]] = float(value)
    return out


def format_scores(scores: Mapping[str, float]) -> str:
    """`fid=41.2 (real data: 3.1) tvd=0.12 (real data: 0.02) ...`: every floor beside its metric."""
    parts = []
    for name, value in scores.items():
        if name.endswith(FLOOR_SUFFIX) and name[: -len(FLOOR_SUFFIX)] in scores:
            continue
        text = f"{name}={value:.4g}"
        floor = scores.get(floor_name(name))
        if floor is not None:
            text += f" (real data: {floor:.3g})"
        parts.append(text)
    return " ".join(parts)
