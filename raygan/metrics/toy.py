"""Mode-coverage metrics for the 2-D Gaussian mixtures (PacGAN/VEEGAN protocol)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def nearest_modes(samples: Tensor, modes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of, and distance to, the nearest mode of every sample."""
    x = samples.detach().cpu().double().reshape(len(samples), -1)
    dist = torch.cdist(x, torch.from_numpy(np.asarray(modes, dtype=np.float64)))
    d, idx = dist.min(dim=1)
    d_np = d.numpy()
    # a NaN sample is infinitely far from every mode, never high quality
    return idx.numpy(), np.where(np.isfinite(d_np), d_np, np.inf)


def toy_metrics(samples: Tensor, modes: np.ndarray, std: float) -> dict[str, float]:
    """Modes covered, high-quality fraction, reverse KL and mode TVD of a sample set.

    A sample is high quality if it lies within 3 standard deviations of its nearest mode; a
    mode is covered if it is the nearest mode of at least one high-quality sample. A NaN or
    infinite sample is near no mode: samples that are all non-finite score the worst on every
    metric (no mode, hq_fraction 0, reverse_kl log K, mode_tvd 1, coverage_score 1).

    Returns:
        modes_covered: number of covered modes.
        hq_fraction: share of high-quality samples.
        reverse_kl: KL(p || uniform) of the high-quality samples' mode histogram (log K when
            there is no high-quality sample: as bad as a single mode).
        mode_tvd: total variation between the histogram of all samples over K modes plus a
            "missed" bin and the ideal (uniform over modes, nothing missed); 0 is perfect.
        coverage_score: what the mixture ES minimises, `(assignment TVD + miss share) / 2`,
            where the assignment TVD compares every sample's nearest mode (high quality or not)
            with uniform: unlike `mode_tvd` it still ranks mixtures before any sample is
            within 3 std of a mode. 0 is perfect, 1 the worst.
    """
    k = len(modes)
    n = len(samples)
    if n == 0:
        raise ValueError("toy metrics need at least one sample")
    idx, dist = nearest_modes(samples, modes)
    # a non-finite sample is never high quality, not even against an infinite radius
    hq = np.isfinite(dist) & (dist <= 3.0 * std)
    hist = np.bincount(idx[hq], minlength=k).astype(np.float64)
    covered = int((hist > 0).sum())
    if hist.sum() > 0:
        p = hist / hist.sum()
        nz = p > 0
        reverse_kl = float((p[nz] * np.log(p[nz] * k)).sum())
    else:
        reverse_kl = math.log(k)
    observed = np.append(hist, n - hist.sum()) / n
    ideal = np.append(np.full(k, 1.0 / k), 0.0)
    assigned = np.bincount(idx[np.isfinite(dist)], minlength=k) / n
    assignment_tvd = 0.5 * (np.abs(assigned - 1.0 / k).sum() + (1.0 - assigned.sum()))
    return {
        "coverage_score": float(0.5 * (assignment_tvd + (1.0 - hq.mean()))),
        "modes_covered": float(covered),
        "hq_fraction": float(hq.mean()),
        "reverse_kl": reverse_kl,
        "mode_tvd": float(0.5 * np.abs(observed - ideal).sum()),
    }
