"""SWD (ProGAN protocol), KID on random features and the energy distance, with their floors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from raygan.config import load_config
from raygan.data import Dataset, load_dataset
from raygan.metrics.kid import (
    KID,
    EnergyDistance,
    RandomFeatures,
    kernel_inception_distance,
    polynomial_kernel,
)
from raygan.metrics.registry import MetricContext, evaluate
from raygan.metrics.swd import (
    ImageSWD,
    VectorSWD,
    laplacian_pyramid,
    patch_descriptors,
    pyramid_sizes,
    sliced_distance,
    sorted_projections,
)


def two_shapes(
    n: int, size: int, seed: int, only: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Discs (label 0) and rings (label 1) of random colour, size and place on a random dark
    background: uint8 (n, 3, size, size) images and their labels (`only`: one shape)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n) if only is None else np.full(n, only)
    yy, xx = np.mgrid[0:size, 0:size] / size
    centre = rng.uniform(0.35, 0.65, (n, 2, 1, 1))
    radius = rng.uniform(0.15, 0.3, (n, 1, 1))
    distance = np.hypot(yy - centre[:, 0], xx - centre[:, 1])
    hole = np.where(labels == 1, 0.6, 0.0)[:, None, None] * radius
    mask = ((distance < radius) & (distance >= hole))[:, None]
    fg = rng.uniform(0.5, 1.0, (n, 3, 1, 1))
    bg = rng.uniform(0.0, 0.4, (n, 3, 1, 1))
    images = np.where(mask, fg, bg) + rng.normal(0.0, 0.03, (n, 3, size, size))
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8), labels.astype(np.int64)


def _reference_pyramid(images: np.ndarray, levels: int) -> list[np.ndarray]:
    """ProGAN's `generate_laplacian_pyramid` (scipy, mirrored borders), for comparison."""
    from scipy import ndimage

    kernel = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]).astype(np.float32)[None, None] / 256

    def down(x: np.ndarray) -> np.ndarray:
        return ndimage.convolve(x, kernel, mode="mirror")[:, :, ::2, ::2]

    def up(x: np.ndarray) -> np.ndarray:
        zeros = np.zeros((*x.shape[:2], 2 * x.shape[2], 2 * x.shape[3]), np.float32)
        zeros[:, :, ::2, ::2] = x
        return ndimage.convolve(zeros, kernel * 4, mode="mirror")

    pyramid = [images.astype(np.float32).copy()]
    for _ in range(1, levels):
        pyramid.append(down(pyramid[-1]))
        pyramid[-2] -= up(pyramid[-1])
    return pyramid


def test_laplacian_pyramid_matches_the_progan_reference() -> None:
    images = np.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    ours = laplacian_pyramid(torch.from_numpy(images), 3)
    for mine, theirs in zip(ours, _reference_pyramid(images, 3), strict=True):
        assert mine.shape == theirs.shape
        assert np.abs(mine.numpy() - theirs).max() < 1e-5
    assert [pyramid_sizes(s) for s in (64, 32, 28, 16, 8)] == [
        [64, 32, 16], [32, 16], [28, 14], [16, 8], [8]]
    with pytest.raises(ValueError, match="at least 7x7"):
        pyramid_sizes(6)


def test_patch_descriptors_are_7x7_patches_normalised_per_channel() -> None:
    level = torch.randn(4, 3, 14, 14, generator=torch.Generator().manual_seed(0)) * 5 + 2
    desc = patch_descriptors(level, 16, torch.Generator().manual_seed(1))
    assert desc.shape == (64, 3 * 49)
    per_channel = desc.reshape(64, 49, 3).transpose(1, 2)
    assert torch.allclose(per_channel.mean(dim=(0, 2)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(per_channel.std(dim=(0, 2), unbiased=False), torch.ones(3), atol=1e-4)


def test_sliced_distance_is_the_1d_wasserstein_distance_for_any_sizes() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4000, 1, generator=g), torch.randn(1500, 1, generator=g) + 0.5
    swd = VectorSWD(a)  # in 1-D every direction is +1 or -1: the plain W1 distance
    assert swd(b) == pytest.approx(0.5, abs=0.08)
    assert swd(b) == swd(b.clone())  # fixed directions: the same samples score the same
    rows = sorted_projections(torch.arange(10.0)[:, None], torch.ones(1, 1))
    assert sliced_distance(rows, rows + 1.0) == pytest.approx(1.0)
    # the quantiles of 0..9 at five mid-points are 0.5, 2.5, ...: 0.5 from 0, 2, 4, 6, 8
    assert sliced_distance(rows, rows[:, ::2]) == pytest.approx(0.5)


def _mnist() -> Dataset:
    return load_dataset(load_config(None, ["data.name=mnist5k"]).data, 0)


def test_image_swd_real_is_near_its_floor_and_noise_or_one_class_is_far(tmp_path: Path) -> None:
    ds = _mnist()
    ctx = MetricContext(ds, tmp_path, eval_samples=500)
    floor = ctx.scorer("swd").floors["swd"]
    order = np.random.default_rng(1).permutation(len(ds))
    real = ds.take(order[:500])
    ones = ds.take(np.flatnonzero(ds.labels == 1)[:500])
    noise = torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    scores = {name: evaluate(ctx, x, ["swd"]) for name, x in
              [("real", real), ("ones", ones), ("noise", noise)]}
    assert all(s["swd_floor"] == floor for s in scores.values())
    assert scores["real"]["swd"] < 1.5 * floor
    assert scores["ones"]["swd"] > 4 * floor and scores["noise"]["swd"] > 8 * floor
    with pytest.raises(ValueError, match="shape"):
        evaluate(ctx, torch.zeros(10, 3, 28, 28), ["swd"])


def test_swd_and_kid_of_colour_shapes_see_a_missing_shape() -> None:
    def images(n: int, seed: int, only: int | None = None) -> torch.Tensor:
        return Dataset.from_pixels("shapes", two_shapes(n, 32, seed, only)[0]).take(np.arange(n))

    ref, floor_set, real, discs = images(600, 0), images(400, 1), images(400, 2), images(400, 3, 0)
    noise = torch.rand(400, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    # SWD's floor is the bias of 32,768 descriptors a level; a missing shape adds about 2x it
    for metric, factor in ((ImageSWD(ref), 2.5), (KID(ref), 10.0)):
        floor = max(metric(floor_set), 1.0)  # KID's floor is near 0, either side
        assert metric(real) < 2 * floor
        assert metric(discs) > factor * floor and metric(noise) > 10 * floor
        assert metric(real) == metric(real.clone())  # seeded: the same images score the same


def test_kid_is_the_unbiased_polynomial_mmd_over_subsets() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 5, generator=g), torch.randn(20, 5, generator=g) + 0.3

    def mmd(a: torch.Tensor, b: torch.Tensor) -> float:
        m = len(a)
        kaa, kbb, kab = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)
        total = (kaa.sum() - kaa.trace() + kbb.sum() - kbb.trace()) / (m * (m - 1))
        return float(total - 2 * kab.mean())

    assert polynomial_kernel(x[:1], y[:1]).item() == pytest.approx(
        float((x[0] @ y[0] / 5 + 1) ** 3), rel=1e-5)
    assert kernel_inception_distance(x[:20], y) == pytest.approx(mmd(x[:20], y), rel=1e-5)
    # subsets of 10: the same draws as the function makes, scored one by one
    gen = torch.Generator().manual_seed(7)
    draws = [torch.randperm(30, generator=gen)[:10] for _ in range(4)]
    draws_y = [torch.randperm(20, generator=gen)[:10] for _ in range(4)]
    expected = np.mean([mmd(x[i], y[j]) for i, j in zip(draws, draws_y, strict=True)])
    got = kernel_inception_distance(x, y, subsets=4, subset_size=10, seed=7)
    assert got == pytest.approx(expected, rel=1e-4)


def test_random_features_are_fixed_and_serve_any_size() -> None:
    a, b = RandomFeatures(3), RandomFeatures(3)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb) and not pa.requires_grad
    for size in (8, 28, 32, 64):
        for channels in (1, 3):
            x = torch.zeros(2, channels, size, size)
            assert RandomFeatures(channels)(x).shape == (2, 1024)


def test_energy_distance_matches_its_formula_and_sees_a_missing_mode() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 3, generator=g), torch.randn(5, 3, generator=g)
    expected = (2 * torch.cdist(x.double(), y.double()).mean()
                - torch.cdist(x.double(), x.double()).mean()
                - torch.cdist(y.double(), y.double()).mean())
    assert EnergyDistance(y)(x) == pytest.approx(float(expected), rel=1e-6)
    centres = torch.randn(4, 8, generator=g) * 3

    def mixture(n: int, seed: int, modes: int = 4) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return centres[torch.randint(0, modes, (n,), generator=gen)] + 0.5 * torch.randn(
            n, 8, generator=gen)

    ctx = MetricContext(Dataset("vectors", mixture(4000, 1).numpy()), eval_samples=800)
    real = evaluate(ctx, mixture(800, 2), ["swd", "energy"])
    one = evaluate(ctx, mixture(800, 3, modes=1), ["swd", "energy"])
    noise = evaluate(ctx, torch.randn(800, 8, generator=g) * 3, ["swd", "energy"])
    assert list(real) == ["swd", "energy", "swd_floor", "energy_floor"]
    for name in ("swd", "energy"):
        floor = real[f"{name}_floor"]
        assert math.isfinite(floor) and real[name] < 3 * floor
        assert one[name] > 5 * floor and noise[name] > 5 * floor
