"""Metric registry: one function per metric, with per-data-set state built once.

A metric is `fn(ctx, samples) -> dict[str, float]`. `MetricContext` holds what metrics share
for one data set (toy modes, or the image classifier and its cached real-data statistics).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from raygan.data import Dataset
from raygan.metrics.toy import toy_metrics

MetricFn = Callable[["MetricContext", Tensor], dict[str, float]]
METRICS: dict[str, MetricFn] = {}


def register_metric(name: str) -> Callable[[MetricFn], MetricFn]:
    """Decorator adding a metric function to the registry under `name`."""

    def wrap(fn: MetricFn) -> MetricFn:
        METRICS[name] = fn
        return fn

    return wrap


@dataclass
class MetricContext:
    """Shared per-data-set state for metrics.

    Attributes:
        dataset: the real data.
        cache_dir: where trained classifiers and real statistics are cached.
        device: torch device for feature extraction.
    """

    dataset: Dataset
    cache_dir: Path = Path("~/.cache/raygan")
    device: str = "cpu"
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def image_scorer(self) -> Any:
        """The classifier-based scorer for image data, built (or loaded from cache) once."""
        if "scorer" not in self._cache:
            from raygan.data.images import ImageData
            from raygan.metrics.image import ImageScorer

            ds = self.dataset
            if ds.labels is None:
                raise ValueError(f"{ds.name}: classifier metrics need a labelled data set")
            data = ImageData(ds.samples, ds.labels, ds.name, int(ds.labels.max()) + 1)
            cache = Path(self.cache_dir).expanduser()
            self._cache["scorer"] = ImageScorer.create(data, cache, device=self.device)
        return self._cache["scorer"]


@register_metric("toy")
def toy(ctx: MetricContext, samples: Tensor) -> dict[str, float]:
    """Modes covered, high-quality fraction, reverse KL and mode TVD (toy data)."""
    ds = ctx.dataset
    if ds.modes is None or ds.std is None:
        raise ValueError(f"the toy metric needs a toy data set, not {ds.name!r}")
    return toy_metrics(samples, ds.modes, ds.std)


@register_metric("classifier")
def classifier(ctx: MetricContext, samples: Tensor) -> dict[str, float]:
    """FID on classifier features, Inception-style score and label TVD (image data)."""
    return dict(ctx.image_scorer().score(samples))


def default_metrics(dataset: Dataset) -> tuple[str, ...]:
    """The metrics reported for a data set."""
    return ("classifier",) if dataset.is_image else ("toy",)


def evaluate(ctx: MetricContext, samples: Tensor, names: tuple[str, ...]) -> dict[str, float]:
    """Run several registered metrics and merge their results."""
    out: dict[str, float] = {}
    for name in names:
        if name not in METRICS:
            raise KeyError(f"unknown metric {name!r}; registered: {', '.join(METRICS)}")
        out.update(METRICS[name](ctx, samples))
    return out


def mixture_score_fn(ctx: MetricContext) -> Callable[[Tensor], float]:
    """What the mixture ES minimises: FID for images, the coverage score for toy data."""
    if ctx.dataset.is_image:
        return lambda samples: float(ctx.image_scorer().fid(samples))
    return lambda samples: toy(ctx, samples)["coverage_score"]
