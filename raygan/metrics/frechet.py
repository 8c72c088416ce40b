"""The Fréchet distance of FID: between two Gaussians, or between features and a Gaussian.

The trace of `sqrtm(sigma1 @ sigma2)` is the sum of the square roots of the eigenvalues of
`sigma1 @ sigma2`. Two forms reach those eigenvalues through a symmetric matrix:

- `F x F`: `sqrt(sigma1) @ sigma2 @ sqrt(sigma1)` (two symmetric eigendecompositions of
  `F x F` matrices), for any two covariances;
- `N x N`: with `sigma1 = X^T X / (N - 1)` of `N` centred features `X`, the non-zero
  eigenvalues of `sigma1 @ sigma2` are those of `X @ sigma2 @ X^T / (N - 1)`. With fewer
  samples than features (an evaluation of a few hundred images on 2048-d Inception features)
  this is one small eigendecomposition instead of two of `2048 x 2048`, the same value up to
  rounding.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _features64(features: Tensor) -> np.ndarray:
    """`features` as a float64 `(N >= 2, F)` array of finite values."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need features of shape (N >= 2, F), got {tuple(features.shape)}")
    x = features.detach().cpu().to(torch.float64).numpy()
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values")
    return x


def feature_statistics(features: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of a ``(N, F)`` feature matrix, N >= 2."""
    x = _features64(features)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a (numerically) positive semi-definite matrix."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def _sqrt_trace(product: np.ndarray) -> float:
    """Sum of the square roots of the eigenvalues of a (numerically) symmetric PSD matrix."""
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2.0)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def _checked(
    mu1: np.ndarray, sigma1: np.ndarray | None, mu2: np.ndarray, sigma2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`mu2, sigma2` as float64, after checking them against `mu1` (and `sigma1`)."""
    mu2, sigma2 = np.atleast_1d(mu2).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    shape1 = sigma2.shape if sigma1 is None else sigma1.shape
    if mu1.shape != mu2.shape or shape1 != sigma2.shape:
        raise ValueError(
            f"shape mismatch: means {mu1.shape}/{mu2.shape}, covariances {shape1}/{sigma2.shape}"
        )
    if sigma2.shape != (mu2.size, mu2.size):
        raise ValueError(f"covariance shape {sigma2.shape} does not match mean size {mu2.size}")
    if not (np.isfinite(sigma2).all() and (sigma1 is None or np.isfinite(sigma1).all())):
        raise ValueError("covariances are not finite; are the features degenerate?")
    return mu2, sigma2


def _distance(diff: np.ndarray, trace1: float, sigma2: np.ndarray, trace_covmean: float) -> float:
    value = diff @ diff + trace1 + np.trace(sigma2) - 2.0 * trace_covmean
    return max(0.0, float(value))


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    Uses the `F x F` form (module docstring): two symmetric eigendecompositions are much
    faster than scipy's general `sqrtm`, always real, and need no singular-matrix retry.

    Args:
        mu1: Mean of the first feature set, shape ``(F,)``.
        sigma1: Covariance of the first feature set, shape ``(F, F)``.
        mu2: Mean of the second feature set.
        sigma2: Covariance of the second feature set.

    Returns:
        The distance, clipped at 0.
    """
    mu1, sigma1 = np.atleast_1d(mu1).astype(np.float64), np.atleast_2d(sigma1).astype(np.float64)
    mu2, sigma2 = _checked(mu1, sigma1, mu2, sigma2)
    root = _psd_sqrt(sigma1)
    return _distance(mu1 - mu2, float(np.trace(sigma1)), sigma2, _sqrt_trace(root @ sigma2 @ root))


def features_frechet_distance(features: Tensor, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """`frechet_distance(*feature_statistics(features), mu2, sigma2)`, by the cheaper form.

    With at most as many samples as features (N <= F) through the `N x N` matrix (module
    docstring), which never forms the `F x F` covariance of `features`; else the `F x F` form.

    Args:
        features: The first feature set, ``(N >= 2, F)``.
        mu2: Mean of the second feature set, shape ``(F,)``.
        sigma2: Covariance of the second feature set, shape ``(F, F)``.

    Returns:
        The distance, clipped at 0.
    """
    x = _features64(features)
    n, f = x.shape
    if n > f:
        return frechet_distance(x.mean(axis=0), np.cov(x, rowvar=False), mu2, sigma2)
    mu1 = x.mean(axis=0)
    mu2, sigma2 = _checked(mu1, None, mu2, sigma2)
    centred = x - mu1
    trace1 = float(np.einsum("ij,ij->", centred, centred)) / (n - 1)
    gram = (centred @ sigma2 @ centred.T) / (n - 1)
    return _distance(mu1 - mu2, trace1, sigma2, _sqrt_trace(gram))
