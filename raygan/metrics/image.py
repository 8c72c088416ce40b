"""Image-quality metrics: FID, inception score and class-histogram TVD, with real-data floors.

A :class:`FeatureScorer` compares generated images with a fixed real reference set through a
feature extractor: a classifier trained by us (the reference protocol's CNN, whose class
logits are the features, or the 128-d LeNet) or Inception-v3 from a weights file. The
reference set's statistics and the *floor* (the same scores of another real set of the
evaluation's size against the reference) are computed once per data set and cached; those of
the shipped reference classifiers at the default size ship with them (`raygan.metrics.shipped`).
"""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import torch
from torch import Tensor

from raygan.atomic import atomic_write
from raygan.config.catalog import INCEPTION_HELP
from raygan.data.dataset import Dataset
from raygan.metrics.classifier import Classifier, data_fingerprint
from raygan.metrics.frechet import feature_statistics, features_frechet_distance
from raygan.metrics.shipped import shipped_stats

STATS_VERSION = "stats-v2"
REFERENCE_SAMPLES = 1000
"""Real images in the reference set (the reference protocol compares 1,000 with 1,000)."""
REFERENCE_SEED = 0
"""Seed of the permutation that picks the reference and floor sets (fixed, so every run of a
data set is compared with the same real images)."""
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class RealStatistics(NamedTuple):
    """Mean and covariance of real-data features (unpacks as ``mu, sigma``)."""

    mu: np.ndarray
    sigma: np.ndarray


def inception_score(probs: Tensor, splits: int = 1) -> float:
    """Inception score exp(E_x[KL(p(y|x) || p(y))]), averaged over ``splits`` chunks."""
    if probs.ndim != 2 or probs.shape[0] < splits or splits < 1:
        raise ValueError(
            f"need probs (N >= splits, K) and splits >= 1, got {tuple(probs.shape)} and {splits}"
        )
    p = probs.detach().cpu().to(torch.float64)
    scores = []
    for chunk in torch.tensor_split(p, splits):
        marginal = chunk.mean(0, keepdim=True)
        # xlogy gives 0 * log 0 = 0 for classes a sample never predicts.
        kl = (torch.xlogy(chunk, chunk) - torch.xlogy(chunk, marginal)).sum(1)
        scores.append(float(torch.exp(kl.mean())))
    return float(np.mean(scores))


def class_histogram(probs: Tensor) -> np.ndarray:
    """Share of samples whose predicted (arg-max) class is each class, shape ``(K,)``."""
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(f"need probs of shape (N > 0, K), got {tuple(probs.shape)}")
    counts = torch.bincount(probs.argmax(1).cpu(), minlength=probs.shape[1]).to(torch.float64)
    return (counts / counts.sum()).numpy()


def label_tvd(probs: Tensor, reference: np.ndarray) -> float:
    """TVD ``1/2 sum |p_ref - p_gen|`` between predicted-class histograms.

    Args:
        probs: Class probabilities of the generated samples, ``(N, K)``.
        reference: The real data's predicted-class histogram, ``(K,)``.

    With a uniform reference over K classes, samples of one class give ``1 - 1/K``.
    """
    if probs.ndim != 2 or probs.shape[1] != len(reference):
        raise ValueError(f"need probs of shape (N, {len(reference)}), got {tuple(probs.shape)}")
    return float(0.5 * np.abs(class_histogram(probs) - reference).sum())


class Extractor(Protocol):
    """Features (and class probabilities, for classifiers) of images in [-1, 1]."""

    key: str  # identifies the extractor in cache keys

    def outputs(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(features (N, F), class probabilities (N, K) or None)`` on the CPU."""
        ...


@dataclass
class ClassifierExtractor:
    """A trained classifier as extractor: its `features` and the softmax of its logits.

    Attributes:
        model: The classifier (eval mode).
        accuracy: Its held-out accuracy.
        key: Its cache key (architecture, data, settings).
        batch_size: Images per forward pass.
    """

    model: Classifier
    accuracy: float
    key: str
    batch_size: int = 500

    @torch.no_grad()
    def outputs(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """Features and class probabilities of ``images`` (N, C, H, W)."""
        self.model.eval()
        device = next(self.model.parameters()).device
        features, probs = [], []
        for i in range(0, images.shape[0], self.batch_size):
            f = self.model.features(images[i : i + self.batch_size].to(device, torch.float32))
            features.append(f.cpu())
            probs.append(torch.softmax(self.model.head(f), dim=1).cpu())
        return torch.cat(features), torch.cat(probs)


def reference_split(n: int, n_eval: int) -> tuple[Tensor, Tensor]:
    """Indices of the real reference set and of the disjoint floor set.

    The reference set has ``min(REFERENCE_SAMPLES, n // 2)`` images; the floor set as many as
    an evaluation draws (``n_eval``), or what is left.
    """
    n_ref = min(REFERENCE_SAMPLES, n // 2)
    n_floor = min(n_eval, n - n_ref)
    if n_ref < 2 or n_floor < 2:
        raise ValueError(f"{n} real images are too few for a reference set and a floor set")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(REFERENCE_SEED))
    return order[:n_ref], order[n_ref : n_ref + n_floor]


@dataclass
class FeatureScorer:
    """FID (and, for classifiers, TVD and IS) of generated images against real references.

    Build it with :meth:`create`. Attributes:
        extractor: The feature extractor.
        reference: Feature statistics of the real reference set.
        histogram: Predicted-class histogram of the reference set (None without classes).
        floors: The scores of a real floor set against the reference (``{"fid": ...}``).
        image_shape: ``(C, H, W)`` that samples must have.
    """

    extractor: Extractor
    reference: RealStatistics
    histogram: np.ndarray | None
    floors: dict[str, float]
    image_shape: tuple[int, int, int]

    @classmethod
    def create(
        cls, extractor: Extractor, data: Dataset, cache_dir: str | Path, n_eval: int
    ) -> FeatureScorer:
        """Load or compute the reference statistics and the floor for ``data``.

        Args:
            extractor: The feature extractor.
            data: The real data set in stored form (only the reference and floor sets are
                converted to float).
            cache_dir: Directory of cached statistics; created when missing.
            n_eval: Samples an evaluation scores (the floor set's size).
        """
        shape = data.sample_shape
        if len(shape) != 3:
            raise ValueError(f"image metrics need images (C, H, W), got samples of {shape}")
        ref_idx, floor_idx = reference_split(len(data), n_eval)
        payload = (f"{data.name}|{data_fingerprint(data)}|{extractor.key}|{len(ref_idx)}|"
                   f"{len(floor_idx)}|{STATS_VERSION}")
        digest = hashlib.sha256(payload.encode()).hexdigest()[:24]
        path = Path(cache_dir) / f"real-stats-{data.name}-{digest}.npz"
        cached = _read_stats(shipped_stats(path.name) or path)  # shipped ones come first
        image_shape = (int(shape[0]), int(shape[1]), int(shape[2]))
        if cached is not None:
            return cls(extractor, *cached, image_shape)
        features, probs = extractor.outputs(data.take(ref_idx))
        scorer = cls(
            extractor,
            RealStatistics(*feature_statistics(features)),
            None if probs is None else class_histogram(probs),
            {},
            image_shape,
        )
        scorer.floors = scorer.score(data.take(floor_idx))
        scorer.floors.pop("inception_score", None)  # a real-data value, not a floor
        hist = np.zeros(0) if scorer.histogram is None else scorer.histogram
        atomic_write(
            path,
            lambda h: np.savez(h, mu=scorer.reference.mu, sigma=scorer.reference.sigma,
                               histogram=hist, floors=json.dumps(scorer.floors)),
            suffix=".npz",
        )
        return scorer

    def _outputs(self, samples: Tensor) -> tuple[Tensor, Tensor | None]:
        if samples.ndim != 4 or tuple(samples.shape[1:]) != self.image_shape:
            raise ValueError(
                f"samples must have shape (N, {', '.join(map(str, self.image_shape))}), "
                f"got {tuple(samples.shape)}"
            )
        if samples.shape[0] < 2:
            raise ValueError("FID needs at least 2 samples (a few hundred for a stable value)")
        return self.extractor.outputs(samples.detach())

    def fid(self, samples: Tensor) -> float:
        """FID of ``samples`` (N, C, H, W) in [-1, 1] against the reference set."""
        features, _ = self._outputs(samples)
        return features_frechet_distance(features, *self.reference)

    def score(self, samples: Tensor) -> dict[str, float]:
        """``{"fid"}``, plus ``"tvd"`` and ``"inception_score"`` for classifier features."""
        features, probs = self._outputs(samples)
        out = {"fid": features_frechet_distance(features, *self.reference)}
        if probs is not None and self.histogram is not None:
            out["tvd"] = label_tvd(probs, self.histogram)
            out["inception_score"] = inception_score(probs)
        return out


def _read_stats(
    path: Path,
) -> tuple[RealStatistics, np.ndarray | None, dict[str, float]] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as saved:
            hist = saved["histogram"]
            floors = {k: float(v) for k, v in json.loads(str(saved["floors"])).items()}
            stats = RealStatistics(saved["mu"], saved["sigma"])
            return stats, (hist if hist.size else None), floors
    except (OSError, KeyError, ValueError):
        return None  # an unreadable cache entry is simply recomputed


class InceptionWeightsMissingError(FileNotFoundError):
    """Raised when Inception-v3 weights for FID on natural images are not available."""


def inception_fid_available(weights_path: str | None) -> bool:
    """Whether ``weights_path`` names an existing Inception-v3 weights file."""
    return weights_path is not None and Path(weights_path).expanduser().is_file()


def check_inception_weights(weights_path: str | None) -> None:
    """Raise :class:`InceptionWeightsMissingError` (one line) unless the file exists."""
    if not inception_fid_available(weights_path):
        where = "no path is set" if weights_path is None else f"{weights_path} does not exist"
        raise InceptionWeightsMissingError(
            f"fid_inception needs Inception-v3 weights, but {where}: {INCEPTION_HELP}"
        )


def is_torchscript(path: str | Path) -> bool:
    """Whether a file is a TorchScript archive (it holds code), not a pickled state dict."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.split("/")[1:2] == ["code"] for name in archive.namelist())
    except zipfile.BadZipFile:
        return False


class InceptionFID:
    """Inception-v3 pool3 (2048-d) features for natural images, from one of two weights files.

    - torchvision's state dict ``inception_v3_google-0cc3c7bd.pth``;
    - stylegan2-ada's TorchScript ``inception-2015-12-05.pt`` (the TensorFlow FID network,
      giving values comparable with published FIDs): called as ``module(x, return_features=
      True)`` on images in [0, 255], resized to 299 inside.

    Args:
        weights_path: One of the files above.
        device: Torch device to run the network on.
        batch_size: Images per forward pass.

    Raises:
        InceptionWeightsMissingError: When ``weights_path`` is None or missing.
    """

    def __init__(
        self, weights_path: str | Path | None, device: str = "cpu", batch_size: int = 50
    ) -> None:
        check_inception_weights(None if weights_path is None else str(weights_path))
        path = Path(str(weights_path)).expanduser()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        self.key = f"inception-{digest}"
        self.device = device
        self.batch_size = batch_size
        self._forward: Callable[[Tensor], Tensor]
        if is_torchscript(path):
            with warnings.catch_warnings():  # TorchScript is deprecated; the file format is not
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(path), map_location=device).eval()
            self._forward = lambda x: module((x + 1.0) * 127.5, return_features=True)
            self._prepare: Callable[[Tensor], Tensor] = lambda x: x.clamp(-1.0, 1.0)
        else:
            from torchvision.models import inception_v3

            # transform_input=True converts ImageNet-normalised input to the scaling the Google
            # weights were trained with, matching how torchvision uses these weights.
            model = inception_v3(
                weights=None, aux_logits=True, init_weights=False, transform_input=True
            )
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            model.fc = torch.nn.Identity()  # the forward pass then ends at the pool3 features
            net = model.to(device).eval()
            self._forward = net
            self._prepare = self._resize_normalise

    @staticmethod
    def _resize_normalise(images: Tensor) -> Tensor:
        images = torch.nn.functional.interpolate(
            images.float(), size=(299, 299), mode="bilinear", align_corners=False, antialias=True
        )
        unit = (images.clamp(-1.0, 1.0) + 1.0) / 2.0
        mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        return (unit - mean) / std

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """Pool3 features ``(N, 2048)`` of images ``(N, C, H, W)`` in [-1, 1], C in {1, 3}."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must have shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
        out = []
        for i in range(0, images.shape[0], self.batch_size):
            batch = images[i : i + self.batch_size].cpu().float()
            if batch.shape[1] == 1:
                batch = batch.repeat(1, 3, 1, 1)
            out.append(self._forward(self._prepare(batch).to(self.device)).cpu())
        return torch.cat(out)

    def outputs(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """Pool3 features and no class probabilities (the :class:`Extractor` interface)."""
        return self.features(images), None
