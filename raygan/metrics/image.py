"""Image-quality metrics: FID, inception score and label balance.

For digit data the features come from a small cached :class:`LeNet` (no download needed).
For natural images :class:`InceptionFID` uses Inception-v3 pool3 features from a weights file
that the user downloads once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from raygan.data.images import ImageData
from raygan.metrics.classifier import (
    ClassifierSettings,
    LeNet,
    atomic_write,
    classifier_cache_key,
    data_fingerprint,
    load_or_train_classifier,
)

STATS_VERSION = "stats-v1"
INCEPTION_WEIGHTS_KEY = "metrics.inception_weights"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class RealStatistics(NamedTuple):
    """Mean and covariance of real-data features (unpacks as ``mu, sigma``)."""

    mu: np.ndarray
    sigma: np.ndarray


def feature_statistics(features: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of a ``(N, F)`` feature matrix, N >= 2."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need features of shape (N >= 2, F), got {tuple(features.shape)}")
    x = features.detach().cpu().to(torch.float64).numpy()
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a (numerically) positive semi-definite matrix."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    The trace of `sqrtm(sigma1 @ sigma2)` is the sum of the square roots of the eigenvalues of
    the symmetric matrix `sqrt(sigma1) @ sigma2 @ sqrt(sigma1)`, which has the same spectrum.
    Two symmetric eigendecompositions are much faster than scipy's general `sqrtm` (the mixture
    ES computes an FID every generation in every cell), always real, and need no
    singular-matrix retry.

    Args:
        mu1: Mean of the first feature set, shape ``(F,)``.
        sigma1: Covariance of the first feature set, shape ``(F, F)``.
        mu2: Mean of the second feature set.
        sigma2: Covariance of the second feature set.

    Returns:
        The distance, clipped at 0.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1 = np.atleast_2d(sigma1).astype(np.float64)
    sigma2 = np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"shape mismatch: means {mu1.shape}/{mu2.shape}, "
            f"covariances {sigma1.shape}/{sigma2.shape}"
        )
    if sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"covariance shape {sigma1.shape} does not match mean size {mu1.size}")
    if not (np.isfinite(sigma1).all() and np.isfinite(sigma2).all()):
        raise ValueError("covariances are not finite; are the features degenerate?")
    root = _psd_sqrt(sigma1)
    product = root @ sigma2 @ root
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2.0)
    trace_covmean = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_covmean
    return max(0.0, float(value))


@torch.no_grad()
def classifier_outputs(
    model: LeNet, images: Tensor, batch_size: int = 500
) -> tuple[Tensor, Tensor]:
    """Penultimate features ``(N, F)`` and class probabilities ``(N, K)`` on the CPU."""
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    model.eval()
    device = next(model.parameters()).device
    features, probs = [], []
    for i in range(0, images.shape[0], batch_size):
        f = model.features(images[i : i + batch_size].to(device, torch.float32))
        features.append(f.cpu())
        probs.append(torch.softmax(model.head(f), dim=1).cpu())
    return torch.cat(features), torch.cat(probs)


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


def label_tvd(probs: Tensor, num_classes: int) -> float:
    """Total variation distance between the predicted-label histogram and uniform.

    0 means perfectly balanced predictions; predicting a single class gives 1 - 1/K.
    """
    if probs.ndim != 2 or probs.shape[0] == 0 or probs.shape[1] != num_classes:
        raise ValueError(f"need probs of shape (N > 0, {num_classes}), got {tuple(probs.shape)}")
    counts = torch.bincount(probs.argmax(1).cpu(), minlength=num_classes).to(torch.float64)
    histogram = counts / counts.sum()
    return float(0.5 * (histogram - 1.0 / num_classes).abs().sum())


def _stats_path(cache_dir: str | Path, data: ImageData, key: str) -> Path:
    payload = f"{data.name}|{data_fingerprint(data)}|{key}|{STATS_VERSION}"
    digest = hashlib.sha256(payload.encode()).hexdigest()[:24]
    return Path(cache_dir) / f"real-stats-{data.name}-{digest}.npz"


def real_statistics(
    model: LeNet, data: ImageData, cache_dir: str | Path, key: str
) -> RealStatistics:
    """Feature statistics of all of ``data``, cached as ``.npz`` in ``cache_dir``.

    Args:
        model: The feature extractor.
        data: Real images.
        cache_dir: Cache directory; created when missing.
        key: Identifies ``model`` (e.g. :func:`classifier_cache_key`), so that statistics of
            a different classifier are never reused.

    Returns:
        ``(mu, sigma)`` as a :class:`RealStatistics`.
    """
    path = _stats_path(cache_dir, data, key)
    if path.is_file():
        try:
            with np.load(path) as saved:
                return RealStatistics(saved["mu"], saved["sigma"])
        except (OSError, KeyError, ValueError):
            pass  # an unreadable cache entry is simply recomputed
    features, _ = classifier_outputs(model, data.images)
    stats = RealStatistics(*feature_statistics(features))
    atomic_write(path, lambda h: np.savez(h, mu=stats.mu, sigma=stats.sigma), suffix=".npz")
    return stats


@dataclass
class ImageScorer:
    """FID, inception score and label balance of generated images for one data set.

    Build it with :meth:`create`; the classifier and real statistics are cached on disk.

    Attributes:
        model: The feature/label classifier.
        reference: Real-data feature statistics.
        classifier_accuracy: Held-out accuracy of ``model``.
        num_classes: Number of classes of the data set.
        image_shape: ``(C, H, W)`` that samples must have.
    """

    model: LeNet
    reference: RealStatistics
    classifier_accuracy: float
    num_classes: int
    image_shape: tuple[int, int, int]

    @classmethod
    def create(
        cls,
        data: ImageData,
        cache_dir: str | Path,
        settings: ClassifierSettings | None = None,
        device: str = "cpu",
    ) -> ImageScorer:
        """Load or train the classifier for ``data`` and load or compute its real statistics.

        Args:
            data: Labelled real data set.
            cache_dir: Directory caching the classifier and the real statistics.
            settings: Classifier training settings; ``ClassifierSettings()`` when None.
            device: Torch device for the classifier.

        Returns:
            A scorer for samples shaped like ``data``.
        """
        settings = settings or ClassifierSettings()
        model, accuracy = load_or_train_classifier(data, settings, cache_dir, device)
        reference = real_statistics(model, data, cache_dir, classifier_cache_key(data, settings))
        return cls(model, reference, accuracy, data.num_classes, data.shape)

    def _outputs(self, samples: Tensor) -> tuple[Tensor, Tensor]:
        if samples.ndim != 4 or tuple(samples.shape[1:]) != self.image_shape:
            raise ValueError(
                f"samples must have shape (N, {', '.join(map(str, self.image_shape))}), "
                f"got {tuple(samples.shape)}"
            )
        if samples.shape[0] < 2:
            raise ValueError("FID needs at least 2 samples (a few hundred for a stable value)")
        return classifier_outputs(self.model, samples.detach())

    def fid(self, samples: Tensor) -> float:
        """FID of ``samples`` (N, C, H, W) in [-1, 1] against the real data."""
        features, _ = self._outputs(samples)
        return frechet_distance(*feature_statistics(features), *self.reference)

    def score(self, samples: Tensor) -> dict[str, float]:
        """``{"fid", "inception_score", "tvd"}`` of ``samples`` (N, C, H, W) in [-1, 1]."""
        features, probs = self._outputs(samples)
        return {
            "fid": frechet_distance(*feature_statistics(features), *self.reference),
            "inception_score": inception_score(probs),
            "tvd": label_tvd(probs, self.num_classes),
        }


class InceptionWeightsMissingError(FileNotFoundError):
    """Raised when Inception-v3 weights for FID on natural images are not available."""


def inception_fid_available(weights_path: str | None) -> bool:
    """Whether ``weights_path`` names an existing Inception-v3 weights file."""
    return weights_path is not None and Path(weights_path).expanduser().is_file()


def _weights_missing(weights_path: str | Path | None) -> InceptionWeightsMissingError:
    from torchvision.models import Inception_V3_Weights

    url = Inception_V3_Weights.IMAGENET1K_V1.url
    where = "no path is configured" if weights_path is None else f"{weights_path} does not exist"
    return InceptionWeightsMissingError(
        f"Inception-v3 weights are needed for FID on natural images, but {where}. Download "
        f"{url} (file {Path(url).name}) on a machine with network access and set "
        f"{INCEPTION_WEIGHTS_KEY} to the downloaded file's path."
    )


class InceptionFID:
    """FID with Inception-v3 pool3 (2048-d) features for natural images.

    Args:
        weights_path: Path to torchvision's ``inception_v3_google-0cc3c7bd.pth``.
        device: Torch device to run the network on.
        batch_size: Images per forward pass.

    Raises:
        InceptionWeightsMissingError: When ``weights_path`` is None or missing.
    """

    def __init__(
        self, weights_path: str | Path | None, device: str = "cpu", batch_size: int = 50
    ) -> None:
        from torchvision.models import inception_v3

        if weights_path is None or not inception_fid_available(str(weights_path)):
            raise _weights_missing(weights_path)
        # transform_input=True converts ImageNet-normalised input to the scaling the Google
        # weights were trained with, matching how torchvision uses these weights.
        model = inception_v3(
            weights=None, aux_logits=True, init_weights=False, transform_input=True
        )
        state = torch.load(Path(weights_path).expanduser(), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        model.fc = torch.nn.Identity()  # the forward pass then ends at the pool3 features
        self.model = model.to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self._mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        self._std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)

    def _prepare(self, images: Tensor) -> Tensor:
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        images = torch.nn.functional.interpolate(
            images.float(), size=(299, 299), mode="bilinear", align_corners=False, antialias=True
        )
        unit = (images.clamp(-1.0, 1.0) + 1.0) / 2.0
        return (unit - self._mean) / self._std

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """Pool3 features ``(N, 2048)`` of images ``(N, C, H, W)`` in [-1, 1], C in {1, 3}."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must have shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
        out = []
        for i in range(0, images.shape[0], self.batch_size):
            batch = self._prepare(images[i : i + self.batch_size].cpu())
            out.append(self.model(batch.to(self.device)).cpu())
        return torch.cat(out)

    def statistics(self, images: Tensor) -> RealStatistics:
        """Feature mean and covariance of ``images`` (use it once for the real data)."""
        return RealStatistics(*feature_statistics(self.features(images)))

    def fid(self, samples: Tensor, reference: RealStatistics) -> float:
        """FID of ``samples`` against precomputed real statistics."""
        return frechet_distance(*feature_statistics(self.features(samples)), *reference)
