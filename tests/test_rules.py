"""Training rules: who trains against whom, what they keep, and what their records say."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from conftest import RULE_OVERRIDES, tiny_toy_config
from torch import nn

from raygan.config import RunConfig, specs
from raygan.core.cell import Cell
from raygan.core.losses import LOSSES
from raygan.core.progress import GenerationInProgress
from raygan.core.rules import RULES
from raygan.core.rules import base as rule_base
from raygan.engine.controller import Controller
from raygan.engine.pool import LocalCellPool


def _config(rule: str, **extra: object) -> RunConfig:
    return tiny_toy_config(**{**RULE_OVERRIDES[rule], "mixture.enabled": False, **extra})


def _weights(net: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def _begin(
    config: RunConfig,
) -> tuple[LocalCellPool, Cell, list[dict[str, Any]], GenerationInProgress]:
    """A pool whose cell 0 has begun generation 0 with its neighbours' snapshots."""
    pool = LocalCellPool(config)
    snaps = {c.index: c.publish() for c in pool.cells}
    cell = pool.cells[0]
    row = [snaps[j] for j in cell.neighbours]
    return pool, cell, row, cell.begin(0, row)


def test_every_configurable_rule_is_registered() -> None:
    assert set(RULES) == set(specs.RULES.names())
    assert all(cls.name == name for name, cls in RULES.items())


@pytest.fixture
def spy_slots() -> Iterator[list[tuple[Cell, list[tuple[int, int, float]]]]]:
    """Records, per adversary call of a neighbour slot in training, (the batch its training
    call started at, slot, weight checksum)."""
    spied: list[tuple[Cell, list[tuple[int, int, float]]]] = []
    patched: list[nn.Module] = []

    def spy(cell: Cell) -> list[tuple[int, int, float]]:
        calls: list[tuple[int, int, float]] = []
        training: dict[str, int] = {}  # set while the rule trains, not while fitness is measured
        train = cell.rule.train

        def traced(gen: Any, pairing: Any, start: int, stop: int, tally: Any) -> None:
            training["start"] = start
            try:
                train(gen, pairing, start, stop, tally)
            finally:
                del training["start"]

        cell.rule.train = traced  # type: ignore[method-assign]
        nbh = cell.neighbourhood
        for k, net in enumerate(nbh.g_slots + nbh.d_slots):
            forward = net.forward

            def recorded(x: torch.Tensor, _k: int = k, _net: nn.Module = net,
                         _forward: Any = forward) -> torch.Tensor:
                if "start" in training:
                    calls.append((training["start"], _k, float(_weights(_net).sum())))
                return _forward(x)

            net.forward = recorded  # type: ignore[method-assign]
            patched.append(net)
        spied.append((cell, calls))
        return calls

    yield spy  # type: ignore[misc]
    for net in patched:
        del net.forward


def test_lipizzaner_trains_the_centre_against_neighbours_it_never_updates(spy_slots) -> None:
    config = _config("lipizzaner", **{"training.d_every": 1})
    pool, cell, row, current = _begin(config)
    calls = spy_slots(cell)
    start = _weights(cell.g.net)
    current.train(8)
    report = cell.finish(current)
    # neighbours were adversaries on both sides, and their copies never changed
    assert set(report.g.opponents) | set(report.d.opponents) == {0, *cell.neighbours}
    assert set(report.g.opponents) - {0} and set(report.d.opponents) - {0}
    assert len({(k, s) for _, k, s in calls}) == len({k for _, k, _ in calls}) >= 2
    for k, snap in enumerate(row):
        for name, value in cell.neighbourhood.g_slots[k].state_dict().items():
            assert torch.equal(value, torch.from_numpy(snap["g"][name]))
    assert all(not p.requires_grad for p in cell.neighbourhood.d_slots[0].parameters())
    # the centre itself trained in place: nothing copied, nothing replaced
    assert not torch.equal(_weights(cell.g.net), start)
    assert report.g.parent == report.d.parent == 0
    assert not (report.g.replaced or report.g.discarded or report.d.replaced)


def test_a_generation_ends_only_once_all_its_batches_are_trained() -> None:
    _, cell, _, current = _begin(_config("lipizzaner"))
    current.train(3)
    with pytest.raises(RuntimeError, match="5 of 8 batches untrained"):
        cell.finish(current)  # finishing never trains what is left behind the caller's back
    assert cell.generation == 0 and current.tally.batches == 3
    current.train(current.left)
    assert cell.finish(current).steps == 8 and cell.generation == 1


def test_fresh_sees_neighbour_weights_that_change_every_k_batches(spy_slots) -> None:
    k = 3
    config = _config("fresh", **{"training.exchange_every": k, "training.generations": 1})
    pool = LocalCellPool(config)
    calls = spy_slots(pool.cells[0])
    controller = Controller(config, pool)
    report = controller.step().reports[0]
    assert report.steps == 8 and report.exchanges == math.ceil(8 / k) - 1
    by_slot: dict[int, dict[int, set[float]]] = {}
    for batch, slot, checksum in calls:
        by_slot.setdefault(slot, {}).setdefault(batch // k, set()).add(checksum)
    several = 0
    for windows in by_slot.values():
        assert all(len(sums) == 1 for sums in windows.values())  # constant within a round
        sums = [next(iter(windows[w])) for w in sorted(windows)]
        assert len(set(sums)) == len(sums)  # and new in every round: the neighbours trained
        several += len(sums) > 1
    assert several  # some slot was an adversary in more than one round


def test_lipizzaner_rounds_never_refresh(spy_slots) -> None:
    config = _config("lipizzaner", **{"training.generations": 1})
    pool = LocalCellPool(config)
    calls = spy_slots(pool.cells[0])
    report = Controller(config, pool).step().reports[0]
    assert report.exchanges == 0
    assert len({(k, s) for _, k, s in calls}) == len({k for _, k, _ in calls})


def test_live_trains_neighbour_copies_with_their_optimizer_state() -> None:
    config = _config("live", **{"training.generations": 2})
    pool = LocalCellPool(config)
    Controller(config, pool).step()  # every centre has Adam state now
    snaps = {c.index: c.publish() for c in pool.cells}
    cell = pool.cells[0]
    row = [snaps[j] for j in cell.neighbours]
    assert "g_opt" in row[0] and "d_opt" in row[0]
    current = cell.begin(1, row)
    pairing = current.pairing
    copy_g = pairing.gs[1]  # the first neighbour's generator, copied into this cell
    assert copy_g.source == cell.neighbours[0]
    before = _weights(copy_g.net)
    assert torch.equal(before, _weights(cell.neighbourhood.g_slots[0]))
    step = float(copy_g.optimizer.state_dict()["state"][0]["step"])
    assert step == float(row[0]["g_opt"]["state"][0]["step"]) > 0
    current.train(8)
    assert not torch.equal(_weights(copy_g.net), before)  # the copy trained ...
    assert float(copy_g.optimizer.state_dict()["state"][0]["step"]) == step + 8  # ... on
    assert torch.equal(_weights(cell.neighbourhood.g_slots[0]), before)  # stays as received
    report = cell.finish(current)
    members = 1 + len(cell.neighbours)
    assert report.g.steps == members * report.steps and report.d.steps == members * 8
    assert set(report.g.opponents) == {0, *cell.neighbours}


@pytest.mark.parametrize("planted, discarded", [(-1e9, True), (math.inf, False)])
def test_selection_discards_training_that_did_not_improve(planted: float, discarded: bool) -> None:
    pool, cell, _, run = _begin(_config("lipizzaner-selection"))
    start_g, start_d = _weights(cell.g.net), _weights(cell.d.net)
    run.gen.g_fitness[0] = run.gen.d_fitness[0] = planted  # the centre's start fitness
    run.train(8)
    report = cell.finish(run)
    assert report.g.discarded == report.d.discarded == discarded
    if discarded:  # the centre is the untrained start network, and the report does not lie
        assert torch.equal(_weights(cell.g.net), start_g)
        assert torch.equal(_weights(cell.d.net), start_d)
        assert not report.g.replaced and report.g.fitness == planted
    else:  # the trained clone is the centre
        assert not torch.equal(_weights(cell.g.net), start_g)
        selected = run.pairing.selected
        assert report.g.replaced == (selected[0] != 0)
        assert report.g.parent == run.gen.members[selected[0]]


@pytest.mark.parametrize("rule", sorted(RULE_OVERRIDES))
def test_records_match_what_happened_to_the_centre(rule: str) -> None:
    # over several generations: a discarded side kept its untrained start network, a kept one
    # holds trained weights, and replacement claims match the parent
    config = _config(rule, **{"training.generations": 4})
    pool = LocalCellPool(config)
    controller = Controller(config, pool)
    for _ in range(4):
        before = [(_weights(c.g.net), _weights(c.d.net)) for c in pool.cells]
        for report, cell, (g0, d0) in zip(controller.step().reports, pool.cells, before):
            for side, start in (("g", g0), ("d", d0)):
                now = _weights(getattr(cell, side).net)
                if getattr(report, side).discarded:
                    assert torch.equal(now, start) or getattr(report, side).replaced
                else:
                    assert not torch.equal(now, start)
                if getattr(report, side).parent != cell.index:
                    assert getattr(report, side).replaced


def test_d_every_two_halves_the_discriminator_steps() -> None:
    reports = {}
    for every in (1, 2):
        config = _config("lipizzaner", **{"training.d_every": every, "training.generations": 1})
        reports[every] = Controller(config, LocalCellPool(config)).step().reports
    for one, two in zip(reports[1], reports[2]):
        assert one.steps == two.steps == one.g.steps == two.g.steps == 8
        assert one.d.steps == 8 and two.d.steps == 4
        assert sum(two.d.opponents.values()) == 4


def test_bce_discriminator_ignores_the_generator_loss() -> None:
    matching = tiny_toy_config()
    bce = tiny_toy_config(**{"losses.discriminator": "bce"})
    ls, heuristic = LOSSES["least_squares"], LOSSES["heuristic"]
    assert rule_base._d_loss(matching, "least_squares").discriminator is ls.discriminator
    assert rule_base._d_loss(bce, "least_squares").discriminator is heuristic.discriminator
