"""Many cells per worker: stacked Adam, vectorised cells equal to sequential ones, k cells per
Ray actor, and the options' refusals."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import (
    RULE_OVERRIDES,
    check_resume_equals_uninterrupted,
    config_error,
    tiny_toy_config,
)
from torch import Tensor, nn

from raygan.config import RunConfig
from raygan.core.individual import Individual
from raygan.core.packed import adam
from raygan.core.packed.bank import Bank
from raygan.distributed.resources import actor_options, trial_bundles
from raygan.engine.controller import Controller
from raygan.engine.pool import LocalCellPool

TOL = 1e-5
"""How close vectorised and sequential results must be (bmm and mm round differently)."""

MUTATING = {"losses.generator": ["heuristic", "minimax", "least_squares"],
            "losses.mutation": "batch", "evolution.lr_mutation_probability": 1.0}
"""Per-batch loss draws and a learning-rate mutation every generation: every per-cell choice."""


def _run(config: RunConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    pool = LocalCellPool(config)
    controller = Controller(config, pool)
    while not controller.done:
        controller.step()
    return pool.state_dicts(), controller.history


def _max_gap(a: Any, b: Any, where: str = "") -> float:
    """Largest difference between two nested results; discrete values must be equal."""
    if isinstance(a, torch.Tensor):
        assert a.shape == b.shape and a.dtype == b.dtype, where
        if not a.is_floating_point():
            assert torch.equal(a, b), where
            return 0.0
        return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
    if isinstance(a, dict):
        assert a.keys() == b.keys(), (where, a.keys(), b.keys())
        return max([_max_gap(a[k], b[k], f"{where}.{k}") for k in a if k != "seconds"] + [0.0])
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        return max([_max_gap(x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b))]
                   + [0.0])
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            assert math.isnan(a) and math.isnan(b), where
            return 0.0
        return abs(a - b)
    assert a == b, (where, a, b)
    return 0.0


def test_stacked_adam_equals_torch_adam_per_network() -> None:
    torch.manual_seed(0)
    nets = [nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)) for _ in range(3)]
    inds = [Individual(n, torch.optim.Adam(n.parameters(), lr=lr, betas=(0.5, 0.999)), lr, 0)
            for n, lr in zip(nets, (1e-3, 3e-4, 2e-3))]
    # network 1 has stepped before: the stack must carry its moments and step count
    inds[1].net(torch.randn(4, 3)).sum().backward()
    inds[1].optimizer.step()
    bank = Bank(nets)
    state = adam.load(inds, bank)
    assert list(state.steps) == [0, 1, 0] and list(state.lr) == [1e-3, 3e-4, 2e-3]
    for step in range(4):
        # all, a subset by index, a leading subset by slice
        rows: Tensor | slice = [slice(0, 3), torch.tensor([0, 2]), slice(0, 2)][step % 3]
        chosen = [[0, 1, 2], [0, 2], [0, 1]][step % 3]
        grads = [{k: torch.randn_like(p) for k, p in inds[i].net.named_parameters()}
                 for i in chosen]
        flat = torch.stack([bank.flatten(g) for g in grads])
        adam.update(bank.flat, flat, state, rows)
        for i, grad in zip(chosen, grads):
            for name, p in inds[i].net.named_parameters():
                p.grad = grad[name]
            inds[i].optimizer.step()
    assert list(state.steps) == [4, 4, 3]
    for i, ind in enumerate(inds):
        mine = bank.unflatten(bank.flat[i])
        for name, p in ind.net.named_parameters():
            assert torch.allclose(mine[name], p.detach(), atol=1e-7, rtol=0)
    # writing back: into fresh networks and optimizers, equal to the ones that stepped alone
    copies = [nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)) for _ in range(3)]
    fresh = [Individual(c, torch.optim.Adam(c.parameters(), lr=1.0, betas=(0.5, 0.999)), 1.0, 0)
             for c in copies]
    bank.nets = copies
    bank.store(3)
    adam.store(fresh, bank, state)
    for copy, ind in zip(fresh, inds):
        assert copy.optimizer.param_groups[0]["lr"] == ind.optimizer.param_groups[0]["lr"]
        for p, q in zip(copy.net.parameters(), ind.net.parameters()):
            assert torch.allclose(p, q, atol=1e-7, rtol=0)
            mine, theirs = copy.optimizer.state[p], ind.optimizer.state[q]
            assert float(mine["step"]) == float(theirs["step"])
            assert mine["exp_avg"].is_contiguous()
            assert torch.allclose(mine["exp_avg_sq"], theirs["exp_avg_sq"], atol=1e-9, rtol=0)


def test_bank_runs_rows_and_keeps_batch_norm_statistics() -> None:
    torch.manual_seed(1)
    nets = [nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 1)) for _ in range(3)]
    bank = Bank(nets)
    x = torch.randn(2, 5, 4)
    out = bank.forward(torch.tensor([2, 0]), x)  # rows out of order: gathered, then put back
    for j, i in enumerate([2, 0]):
        assert torch.allclose(out[j], nets[i](x[j]), atol=1e-6)  # also updates nets' own stats
        assert torch.allclose(bank.buffers["1.running_mean"][i], nets[i][1].running_mean)
    assert torch.equal(bank.buffers["1.running_mean"][1], torch.zeros(6))  # row 1 did not run


def test_mlp_banks_run_without_vmap_and_agree_with_the_networks() -> None:
    from raygan.core.networks import build_networks

    config = tiny_toy_config()
    pairs = [build_networks(config.networks, (2,), torch.Generator().manual_seed(i))
             for i in range(3)]
    g_bank, d_bank = Bank([g for g, _ in pairs]), Bank([d for _, d in pairs])
    assert g_bank._stacked is not None and d_bank._stacked is not None  # the fast path
    z = torch.randn(3, 7, config.networks.latent_dim)
    fake = g_bank.forward(slice(0, 3), z)
    logits = d_bank.forward(torch.tensor([1, 2, 0]), fake)
    for i, (g, _) in enumerate(pairs):
        assert torch.allclose(fake[i], g(z[i]), atol=1e-6)
    for j, i in enumerate([1, 2, 0]):
        assert logits[j].shape == (7,)
        assert torch.allclose(logits[j], pairs[i][1](fake[j]), atol=1e-6)


@pytest.mark.parametrize("rule", ["own", "lipizzaner", "lipizzaner-selection", "fresh", "live"])
def test_vectorised_cells_equal_sequential_cells(rule: str) -> None:
    # 1,610 samples in 4 shards of 402 and 403: the last batches differ in size (2 and 3)
    config = tiny_toy_config(**RULE_OVERRIDES[rule], **MUTATING, **{
        "training.g_ema": 0.9, "resources.cells_per_actor": 4, "data.samples": 1610})
    states, history = _run(config)
    packed_states, packed_history = _run(config.replace(**{"resources.vectorise": True}))
    assert _max_gap(states, packed_states) <= TOL
    assert _max_gap(history, packed_history) <= TOL
    assert sum(row["g_steps"] for row in history) > 0  # the cells did train


def test_vectorised_dcgan_cells_equal_sequential_cells() -> None:
    """Batch norm: stacked running statistics of trainees and of the frozen adversaries."""
    config = tiny_toy_config(**RULE_OVERRIDES["lipizzaner"], **MUTATING, **{
        "data.name": "digits8x8", "networks.kind": "dcgan", "networks.dcgan_width": 8,
        "training.max_batches": 4, "training.batch_size": 16, "training.generations": 1,
        "metrics.names": ["tvd"], "metrics.rank_by": "tvd", "mixture.objective": "tvd",
        "resources.cells_per_actor": 2})
    states, history = _run(config)
    packed_states, packed_history = _run(config.replace(**{"resources.vectorise": True}))
    assert _max_gap(states, packed_states) <= TOL
    assert _max_gap(history, packed_history) <= TOL
    stats = [v for k, v in states[0]["g"]["net"].items() if k.endswith("running_var")]
    assert stats and not torch.equal(stats[0], torch.ones_like(stats[0]))  # they were updated


def test_vectorised_resume_equals_uninterrupted(tmp_path: Path) -> None:
    config = tiny_toy_config(**RULE_OVERRIDES["lipizzaner"], **MUTATING, **{
        "training.generations": 3, "resources.cells_per_actor": 2, "resources.vectorise": True,
        "output.checkpoint_every": 1})
    check_resume_equals_uninterrupted(config, tmp_path)


def test_vectorise_refuses_what_it_cannot_stack() -> None:
    on = {"resources.vectorise": True, "resources.cells_per_actor": 2}
    config_error(lambda: tiny_toy_config(**{"resources.vectorise": True}),
                 "resources.vectorise", "cells_per_actor >= 2")
    config_error(lambda: tiny_toy_config(**on, **RULE_OVERRIDES["egan"]),
                 "training.rule", "cannot be vectorised", "resources.vectorise: false")
    config_error(lambda: tiny_toy_config(**on, **{"losses.feature_matching": True}),
                 "losses.feature_matching", "cannot be vectorised")
    config_error(lambda: tiny_toy_config(**on, **{"training.historical_averaging": 0.1}),
                 "training.historical_averaging", "cannot be vectorised")
    config_error(lambda: tiny_toy_config(**{"resources.cells_per_actor": 0}),
                 "resources.cells_per_actor", ">= 1")
    config_error(lambda: tiny_toy_config(**{"resources.cells_per_actor": 8,
                                            "resources.gpus_per_cell": 0.25}),
                 "resources.cells_per_actor", "2 GPUs per worker")


def test_workers_reserve_the_sum_of_their_cells() -> None:
    res = tiny_toy_config(**{"resources.backend": "ray", "resources.cells_per_actor": 3,
                             "resources.cpus_per_cell": 0.5, "resources.gpus_per_cell": 0.25,
                             "resources.torch_threads": None}).resources
    assert res.workers(7) == [[0, 1, 2], [3, 4, 5], [6]]
    assert trial_bundles(res, 7) == [{"CPU": 1.0}, {"CPU": 1.5, "GPU": 0.75},
                                     {"CPU": 1.5, "GPU": 0.75}, {"CPU": 0.5, "GPU": 0.25}]
    options = actor_options(res, 3)
    assert options["num_cpus"] == 1.5 and options["num_gpus"] == 0.75
    assert options["runtime_env"]["env_vars"]["OMP_NUM_THREADS"] == "1"


@pytest.mark.parametrize("per_actor", [2, 4])
def test_ray_actors_host_several_cells_like_the_local_pool(ray_session: None,
                                                            per_actor: int) -> None:
    import ray

    from raygan.distributed import RayCellPool

    config = tiny_toy_config(**RULE_OVERRIDES["lipizzaner"], **{
        "resources.cpus_per_cell": 0.5, "resources.cells_per_actor": per_actor,
        "resources.vectorise": True, "training.generations": 2})
    states, history = _run(config)
    pool = RayCellPool(config)
    try:
        info = ray.get([a.ping.remote() for a in pool.actors])
        assert [i["cells"] for i in info] == pool.workers == config.resources.workers(4)
        controller = Controller(config, pool)
        while not controller.done:
            controller.step()
        assert _max_gap(controller.history, history) == 0.0
        assert _max_gap(pool.state_dicts(), states) == 0.0
        stored = ray.get(pool.publish())
        if per_actor == 4:  # one actor: no snapshot goes to the object store
            assert stored == [None] * 4
        else:  # on a 2x2 torus every cell has a neighbour on the other actor
            assert all(isinstance(s, ray.ObjectRef) for s in stored)
        samples = pool.sample(1, controller.route(pool.publish())[1], 10, seed=0)
        assert samples.shape == (10, 2) and torch.isfinite(samples).all()
        scored = controller.evaluate()
        assert len(scored) == 4 and all(np.isfinite(s.scores["hq_fraction"]) for s in scored)
    finally:
        pool.close()
