"""The metric registry: one compute function per family, chosen by metric name.

`raygan.metrics.catalog` names the metrics and says which family computes each; here each
family registers `fn(ctx, samples) -> {name: value}`, and `evaluate` runs every family the
requested names need once, returning those names plus their real-data floors
(`fid_floor`, ...). `MetricContext` holds what the families share for one data set (toy modes,
the trained classifiers, Inception, cached real statistics), built on first use.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from raygan.data import Dataset
from raygan.metrics.catalog import METRICS, families, floor_name, lower_is_better
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
class MetricContext:
    """Shared per-data-set state for metrics.

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
        """The `FeatureScorer` of an image family, built (or loaded from cache) once."""
        if family not in self._scorers:
            self._scorers[family] = self._build_scorer(family)
        return self._scorers[family]

    def _build_scorer(self, family: str) -> Any:
        from raygan.data.images import ImageData
        from raygan.metrics.classifier import (
            DEFAULT_SETTINGS,
            classifier_cache_key,
            load_or_train_classifier,
        )
        from raygan.metrics.image import ClassifierExtractor, FeatureScorer, InceptionFID

        ds = self.dataset
        if not ds.is_image:
            raise ValueError(f"{family} metrics need image data, not {ds.name!r}")
        labels = ds.labels
        classes = int(labels.max()) + 1 if labels is not None else 0
        data = ImageData(ds.samples, labels if labels is not None else _no_labels(ds), ds.name,
                         classes)
        cache = Path(self.cache_dir).expanduser()
        extractor: Any
        if family == "inception":
            extractor = InceptionFID(self.inception_weights, device=self.device)
        else:
            settings = DEFAULT_SETTINGS[family]
            model, acc = load_or_train_classifier(data, settings, cache, self.device, family)
            extractor = ClassifierExtractor(model, acc, classifier_cache_key(data, settings,
                                                                             family))
        scorer = FeatureScorer.create(extractor, data, cache, self.eval_samples)
        accuracy = getattr(extractor, "accuracy", None)
        what = "" if accuracy is None else f", held-out accuracy {100 * accuracy:.1f} %"
        print(f"raygan: metrics: {family} features for {ds.name}{what}; real data scores "
              + " ".join(f"{k}={v:.3g}" for k, v in scorer.floors.items()),
              file=sys.stderr, flush=True)
        return scorer

    def classifier_accuracy(self, family: str = "reference") -> float:
        """Held-out accuracy of a classifier family's network."""
        return float(self.scorer(family).extractor.accuracy)


def _no_labels(ds: Dataset) -> Tensor:
    import torch

    return torch.full((len(ds.samples),), -1, dtype=torch.int64)


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
    return {_PUBLIC[family].get(key, key): value for key, value in raw.items()}


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
