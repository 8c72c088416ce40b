"""The metric registry: one compute function per family, chosen by metric name.

`raygan.config.catalog` names the metrics and says which family computes each; here each
family registers `fn(ctx, samples) -> {name: value}`, and `evaluate` runs every family the
requested names need once, returning those names plus their real-data floors
(`fid_floor`, ...). `MetricContext` holds what the families share for one data set (toy modes,
the trained classifiers, Inception, cached real statistics, the distance families' reference
sets), built on first use. The distance families (`swd`, `kid`, `energy`) need no labels and
no download; their floor is a real floor set's distance to the reference set, as for FID.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from raygan.config.catalog import METRICS, families, floor_name, lower_is_better
from raygan.data import Dataset
from raygan.metrics.toy import toy_metrics

FamilyFn = Callable[["MetricContext", Tensor], dict[str, float]]
FAMILIES: dict[str, FamilyFn] = {}


def register_family(name: str) -> Callable[[FamilyFn], FamilyFn]:
    """Decorator adding a family's compute function to the registry under `name`."""

    def wrap(fn: FamilyFn) -> FamilyFn:
        FAMILIES[name] = fn
        return fn

    return wrap


@dataclass
class DistanceScorer:
    """A distance of samples to a fixed real reference set, with its real-data floor.

    Attributes:
        name: the metric it computes (`swd`, `kid`, `energy`).
        distance: samples -> distance to the reference set.
        floors: `{name: the distance of a real floor set}`.
    """

    name: str
    distance: Callable[[Tensor], float]
    floors: dict[str, float]

    def score(self, samples: Tensor) -> dict[str, float]:
        """`{name: distance}` of `samples`."""
        return {self.name: self.distance(samples)}


def _distance(family: str, reference: Tensor, device: str) -> Callable[[Tensor], float]:
    """The distance of `family` to the real `reference` samples."""
    if family == "swd":
        from raygan.metrics.swd import ImageSWD, VectorSWD

        return ImageSWD(reference) if reference.ndim == 4 else VectorSWD(reference)
    from raygan.metrics.kid import KID, EnergyDistance

    if family == "kid":
        if reference.ndim != 4:
            raise ValueError(f"kid needs images, got samples of shape {tuple(reference.shape)}")
        return KID(reference, device)
    return EnergyDistance(reference)


DISTANCE_FAMILIES: tuple[str, ...] = ("swd", "kid", "energy")


@dataclass
class MetricContext:
    """Shared per-data-set state for metrics.

    It holds no float copy of the data set: the distance families and Inception read their
    real reference and floor sets (at most 1,000 and `eval_samples` samples) with
    `Dataset.take`, and the classifier families train on a capped float subset
    (`raygan.metrics.classifier.classifier_data`) that is dropped once the classifier is
    trained or loaded.

    Attributes:
        dataset: the real data.
        cache_dir: where trained classifiers and real statistics are cached.
        device: torch device for feature extraction.
        eval_samples: samples an evaluation scores (the size of the real floor set).
        inception_weights: Inception-v3 weights file (`fid_inception` only).
    """

    dataset: Dataset
    cache_dir: Path = Path("~/.cache/raygan")
    device: str = "cpu"
    eval_samples: int = 1000
    inception_weights: str | None = None
    _scorers: dict[str, Any] = field(default_factory=dict, repr=False)

    def scorer(self, family: str) -> Any:
        """The scorer of a family (`FeatureScorer` or `DistanceScorer`), built once."""
        if family not in self._scorers:
            build = self._build_distance if family in DISTANCE_FAMILIES else self._build_scorer
            scorer = build(family)
            scores = " ".join(f"{k}={v:.3g}" for k, v in scorer.floors.items())
            print(f"raygan: metrics: {family} features for {self.dataset.name}"
                  f"{_accuracy_note(scorer)}; real data scores {scores}", file=sys.stderr,
                  flush=True)
            self._scorers[family] = scorer
        return self._scorers[family]

    def _build_distance(self, family: str) -> DistanceScorer:
        from raygan.metrics.image import reference_split

        ds = self.dataset
        ref_idx, floor_idx = reference_split(len(ds), self.eval_samples)
        distance = _distance(family, ds.take(ref_idx, self.device), self.device)
        return DistanceScorer(family, distance, {family: distance(ds.take(floor_idx, self.device))})

    def _build_scorer(self, family: str) -> Any:
        from raygan.metrics.classifier import (
            DEFAULT_SETTINGS,
            architecture_for,
            classifier_cache_key,
            classifier_data,
            load_or_train_classifier,
        )
        from raygan.metrics.image import ClassifierExtractor, FeatureScorer, InceptionFID

        ds = self.dataset
        if not ds.is_image:
            raise ValueError(f"{family} metrics need image data, not {ds.name!r}")
        cache = Path(self.cache_dir).expanduser()
        extractor: Any
        if family == "inception":
            extractor = InceptionFID(self.inception_weights, device=self.device)
        else:
            data = classifier_data(ds)  # the float subset lives only while this runs
            arch = architecture_for(family, ds.sample_shape)
            settings = DEFAULT_SETTINGS[arch]
            model, acc = load_or_train_classifier(data, settings, cache, self.device, arch)
            extractor = ClassifierExtractor(model, acc, classifier_cache_key(data, settings, arch))
            del data
        return FeatureScorer.create(extractor, ds, cache, self.eval_samples)


def _accuracy_note(scorer: Any) -> str:
    """Where the classifier of `scorer` comes from, and its held-out accuracy.

    A classifier trained here is this machine's: another machine trains one of slightly
    different accuracy, and every FID on its features moves with it. Shipped ones are the
    same everywhere.
    """
    from raygan.metrics.shipped import shipped_entry

    extractor: Any = getattr(scorer, "extractor", None)
    accuracy = getattr(extractor, "accuracy", None)
    if accuracy is None:
        return ""
    held = f"held-out accuracy {100 * accuracy:.1f} %"
    if shipped_entry(str(extractor.key)) is not None:
        return f": the shipped reference classifier ({held}, as recorded)"
    return (f": a classifier trained on this machine ({held}), so its FID scale is this "
            "machine's")


@register_family("toy")
def toy(ctx: MetricContext, samples: Tensor) -> dict[str, float]:
    """Modes covered, high-quality fraction, reverse KL, mode TVD, coverage score."""
    ds = ctx.dataset
    if ds.modes is None or ds.std is None:
        raise ValueError(f"the toy metrics need a toy data set, not {ds.name!r}")
    return toy_metrics(samples, ds.modes, ds.std)


# what each image family's `FeatureScorer` keys ("fid", "tvd", ...) are called in the catalog
_PUBLIC: dict[str, dict[str, str]] = {
    "reference": {},
    "lenet": {"fid": "fid_lenet"},
    "inception": {"fid": "fid_inception"},
}


def _public(family: str, raw: dict[str, float]) -> dict[str, float]:
    names = _PUBLIC.get(family, {})
    return {names.get(key, key): value for key, value in raw.items()}


@register_family("reference")
def reference(ctx: MetricContext, samples: Tensor) -> dict[str, float]:
    """The reference protocol: FID on the class logits, TVD of class histograms, IS."""
    return _public("reference", ctx.scorer("reference").score(samples))


@register_family("lenet")
def lenet(ctx: MetricContext, samples: Tensor) -> dict[str, float]:
    """FID on the 128-d LeNet features."""
    return _public("lenet", {"fid": ctx.scorer("lenet").fid(samples)})


@register_family("inception")
def inception(ctx: MetricContext, samples: Tensor) -> dict[str, float]:
    """FID on Inception-v3 pool3 features."""
    return _public("inception", {"fid": ctx.scorer("inception").fid(samples)})


@register_family("swd")
def swd(ctx: MetricContext, samples: Tensor) -> dict[str, float]:
    """Sliced Wasserstein distance: Laplacian-pyramid patches of images, or vectors."""
    return ctx.scorer("swd").score(samples)


@register_family("kid")
def kid(ctx: MetricContext, samples: Tensor) -> dict[str, float]:
    """KID (x 1e3) on the features of a fixed random convolutional network."""
    return ctx.scorer("kid").score(samples)


@register_family("energy")
def energy(ctx: MetricContext, samples: Tensor) -> dict[str, float]:
    """Energy distance in data space."""
    return ctx.scorer("energy").score(samples)


def floors(ctx: MetricContext, names: Sequence[str]) -> dict[str, float]:
    """The real-data floors of the named metrics that have one (`{"fid_floor": ...}`)."""
    out = {}
    for name in names:
        spec = METRICS[name]
        if spec.floor:
            out[floor_name(name)] = _public(spec.family, ctx.scorer(spec.family).floors)[name]
    return out


def evaluate(ctx: MetricContext, samples: Tensor, names: Sequence[str]) -> dict[str, float]:
    """The named metrics of `samples` (each family computed once) and their floors.

    Raises:
        KeyError: naming the registered metrics, for a name outside the catalog.
    """
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise KeyError(f"unknown metric {unknown[0]!r}; registered: {', '.join(METRICS)}")
    computed: dict[str, float] = {}
    for family in families(names):
        computed.update(FAMILIES[family](ctx, samples))
    return {**{n: computed[n] for n in names}, **floors(ctx, names)}


def objective_fn(ctx: MetricContext, name: str) -> Callable[[Tensor], float]:
    """`samples -> value` minimised by the mixture ES: the metric, negated if higher is better.

    FID-type objectives compute only the FID (no histogram or IS), the ES's hot path.
    """
    spec = METRICS[name]
    sign = 1.0 if lower_is_better(name) else -1.0
    if name == _PUBLIC.get(spec.family, {}).get("fid", "fid"):
        return lambda samples: sign * float(ctx.scorer(spec.family).fid(samples))
    family = FAMILIES[spec.family]
    return lambda samples: sign * float(family(ctx, samples)[name])
