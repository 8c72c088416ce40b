from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from raygan.config import DataConfig
from raygan.data import cell_shard, load_dataset, shard_indices
from raygan.data.toy import grid_modes, ring_modes
from raygan.metrics.toy import toy_metrics


def test_pacgan_definitions() -> None:
    ring = ring_modes()
    assert ring.shape == (8, 2) and np.allclose(np.linalg.norm(ring, axis=1), 1.0)
    grid = grid_modes()
    assert grid.shape == (25, 2) and sorted(set(grid[:, 0])) == [-4, -2, 0, 2, 4]
    data = load_dataset(DataConfig(name="ring8", samples=4000), seed=0)
    assert data.std == 0.01 and data.store.shape == (4000, 2)
    assert load_dataset(DataConfig(name="grid25"), 0).std == 0.05
    assert load_dataset(DataConfig(name="ring8", std=0.02, radius=2.0), 0).modes[0, 0] == 2.0


def test_real_data_scores_perfectly() -> None:
    data = load_dataset(DataConfig(name="grid25", samples=5000), seed=1)
    m = toy_metrics(data.head(len(data)), data.modes, data.std)
    assert m["modes_covered"] == 25 and m["hq_fraction"] > 0.98
    assert m["reverse_kl"] < 0.02 and m["mode_tvd"] < 0.05 and m["coverage_score"] < 0.05


def test_collapsed_and_noisy_samples() -> None:
    modes = ring_modes()
    one_mode = torch.tensor(modes[[0] * 100], dtype=torch.float32)
    m = toy_metrics(one_mode, modes, 0.01)
    assert m["modes_covered"] == 1 and m["hq_fraction"] == 1.0
    assert m["reverse_kl"] == pytest.approx(math.log(8)) and m["mode_tvd"] == pytest.approx(7 / 8)
    assert m["coverage_score"] == pytest.approx(7 / 16)
    far = torch.full((50, 2), 10.0)
    m = toy_metrics(far, modes, 0.01)
    assert m["modes_covered"] == 0 and m["hq_fraction"] == 0 and m["mode_tvd"] == pytest.approx(1.0)
    nan = torch.full((10, 2), float("nan"))
    assert toy_metrics(nan, modes, 0.01)["hq_fraction"] == 0


def test_shards_are_disjoint_and_cover() -> None:
    parts = [shard_indices(103, 4, i) for i in range(4)]
    assert sorted(np.concatenate(parts)) == list(range(103))
    assert len(shard_indices(10, 3, 1, "replicate")) == 10
    with pytest.raises(ValueError):
        shard_indices(2, 3, 0)
    cfg = DataConfig(name="ring8", samples=400)
    data = load_dataset(cfg, 0)
    assert cell_shard(data, cfg.sharding, 4, 2).shape == (100, 2)


def test_coverage_score_ranks_spread_before_high_quality() -> None:
    modes = ring_modes()
    rng = np.random.default_rng(0)
    near_all = torch.tensor(modes[rng.integers(8, size=800)] * 1.2, dtype=torch.float32)
    near_one = torch.tensor(modes[[0] * 800] * 1.2, dtype=torch.float32)
    a, b = toy_metrics(near_all, modes, 0.01), toy_metrics(near_one, modes, 0.01)
    assert a["mode_tvd"] == b["mode_tvd"] == 1.0  # nothing is high quality yet
    assert a["coverage_score"] < b["coverage_score"]
