"""The batch loop's plan/execute split (`raygan.core.steps`, `rules.base.plan_batch`): planning
makes every draw of a batch in the streams' order, and both executors (network by network, and
stacked banks) run the plans it makes."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from conftest import RULE_OVERRIDES, tiny_toy_config

from raygan.config import RunConfig
from raygan.core.losses import get_loss
from raygan.core.packed import train as packed_train
from raygan.core.progress import GenerationInProgress
from raygan.core.rules import base
from raygan.core.steps import BatchPlan, Tally, execute
from raygan.engine.controller import Controller
from raygan.engine.pool import LocalCellPool

MUTATING = {"losses.generator": ["heuristic", "minimax", "least_squares"],
            "losses.mutation": "batch", "evolution.lr_mutation_probability": 1.0}


def _begun(config: RunConfig) -> GenerationInProgress:
    """Generation 0 of cell 0 of a fresh pool, begun against its neighbours."""
    pool = LocalCellPool(config)
    snaps = {c.index: c.publish() for c in pool.cells}
    cell = pool.cells[0]
    return cell.begin(0, [snaps[j] for j in cell.neighbours])


def test_the_tally_counts_a_step_and_zeroes_a_nonfinite_loss() -> None:
    tally = Tally()
    tally.record("g", [1, 2], 0.5)
    tally.record("d", [1], 0.25)
    assert (tally.g_steps, tally.d_steps, tally.g_loss_sum, tally.d_loss_sum) == (1, 1, 0.5, 0.25)
    assert tally.g_opponents == {1: 1, 2: 1} and tally.d_opponents == {1: 1}
    assert not tally.nonfinite
    tally.record("d", [3], math.nan)
    assert tally.d_steps == 2 and tally.d_loss_sum == 0.25 and tally.nonfinite


def test_a_plan_holds_every_draw_of_its_batch_in_the_streams_order() -> None:
    config = tiny_toy_config(**{"training.rule": "lipizzaner", "training.d_every": 2,
                                "losses.generator": ["wasserstein_gp"]})
    current = _begun(config)
    gen, pairing, tally = current.gen, current.pairing, current.tally
    replay = torch.Generator()
    replay.set_state(gen.torch_rng.get_state())
    plan = base.plan_batch(gen, pairing, tally, 0)
    n, latent = len(gen.batches[0]), config.networks.latent_dim
    # the torch stream: each D step's noise then its penalty weights, then each G step's noise
    for d in plan.d_steps:
        assert torch.equal(d.noise, torch.randn(n, latent, generator=replay))
        assert d.gp is not None and torch.equal(d.gp, torch.rand(n, 1, generator=replay))
    for g in plan.g_steps:
        assert g.noise is not None
        assert torch.equal(g.noise, torch.randn(n, latent, generator=replay))
    assert len(plan.d_steps) == len(pairing.ds) and len(plan.g_steps) == len(pairing.gs)
    assert all(any(d.adversary[1] is net for _, net in pairing.d_adversaries)
               for d in plan.d_steps)
    assert all(get_loss(d.loss).gradient_penalty for d in plan.d_steps)
    # running the plan draws nothing more from either stream
    rng_state, torch_state = gen.rng.bit_generator.state, gen.torch_rng.get_state()
    before = [p.detach().clone() for p in pairing.ds[0].net.parameters()]
    execute(config, pairing.gs, pairing.ds, plan, tally)
    assert gen.rng.bit_generator.state == rng_state
    assert torch.equal(gen.torch_rng.get_state(), torch_state)
    assert not all(torch.equal(a, p) for a, p in zip(before, pairing.ds[0].net.parameters()))
    assert tally.batches == 1 and tally.d_steps == len(plan.d_steps)
    # batch 1 is not a D batch (d_every 2): G steps only
    later = base.plan_batch(gen, pairing, tally, 1)
    assert later.d_steps == [] and len(later.g_steps) == len(pairing.gs)


def _spied_plans(monkeypatch: pytest.MonkeyPatch, config: RunConfig
                 ) -> tuple[dict[tuple[int, int], BatchPlan], list[dict[str, Any]]]:
    """Run `config` for its generations, recording every plan by (cell, batch); the states."""
    plans: dict[tuple[int, int], BatchPlan] = {}
    plan_batch = base.plan_batch

    def spy(gen: Any, pairing: Any, tally: Tally, b: int) -> BatchPlan:
        plan = plan_batch(gen, pairing, tally, b)
        plans[(gen.cell, b)] = plan
        return plan

    monkeypatch.setattr(base, "plan_batch", spy)
    monkeypatch.setattr(packed_train, "plan_batch", spy)
    pool = LocalCellPool(config)
    controller = Controller(config, pool)
    while not controller.done:
        controller.step()
    return plans, pool.state_dicts()


def _tensors(state: Any) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for k in sorted(state, key=str) for t in _tensors(state[k])]
    if isinstance(state, (list, tuple)):
        return [t for v in state for t in _tensors(v)]
    return []


def test_both_executors_run_the_plans_of_one_planner_to_the_same_networks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tiny_toy_config(**RULE_OVERRIDES["lipizzaner"], **MUTATING, **{
        "training.generations": 1, "training.max_batches": 4, "resources.cells_per_actor": 4})
    plans, states = _spied_plans(monkeypatch, config)
    packed_plans, packed_states = _spied_plans(
        monkeypatch, config.replace(**{"resources.vectorise": True}))
    assert plans.keys() == packed_plans.keys() == {(c, b) for c in range(4) for b in range(4)}
    for key, plan in plans.items():
        other = packed_plans[key]
        assert [(d.adversary[0], d.loss) for d in plan.d_steps] == \
            [(d.adversary[0], d.loss) for d in other.d_steps]
        assert [(g.opponents, g.loss) for g in plan.g_steps] == \
            [(g.opponents, g.loss) for g in other.g_steps]
        for a, b in zip(plan.d_steps + plan.g_steps, other.d_steps + other.g_steps):
            assert a.noise is not None and b.noise is not None and torch.equal(a.noise, b.noise)
    assert len({d.loss for p in plans.values() for d in p.d_steps}) > 1  # losses were drawn
    ours, theirs = _tensors(states), _tensors(packed_states)
    assert len(ours) == len(theirs) > 0
    assert max(float((a.double() - b.double()).abs().max()) for a, b in zip(ours, theirs)
               if a.is_floating_point() and a.numel()) <= 1e-5
