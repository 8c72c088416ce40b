"""The `egan` rule: E-GAN fitness and selection, offspring, the D step, the record, options."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest
import torch
from conftest import RULE_OVERRIDES, config_error, tiny_toy_config
from torch import Tensor, nn

from raygan.config import RunConfig, load_config
from raygan.core.cell import Cell
from raygan.core.individual import Individual, make_optimizer
from raygan.core.losses import get_loss
from raygan.core.progress import GenerationInProgress
from raygan.core.rules import egan
from raygan.core.steps import Tally
from raygan.engine.controller import Controller
from raygan.engine.pool import LocalCellPool

LOSSES = ("minimax", "heuristic", "least_squares")


def _config(**extra: object) -> RunConfig:
    return tiny_toy_config(**{**RULE_OVERRIDES["egan"], "mixture.enabled": False, **extra})


def _weights(net: nn.Module) -> Tensor:
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def _begun(config: RunConfig) -> tuple[Cell, GenerationInProgress]:
    pool = LocalCellPool(config)
    snaps = {c.index: c.publish() for c in pool.cells}
    cell = pool.cells[0]
    return cell, cell.begin(0, [snaps[j] for j in cell.neighbours])


# -- selection ------------------------------------------------------------------------------
def test_select_survivors_keeps_the_highest_fitness_best_first() -> None:
    assert egan.select_survivors([0.1, 0.7, -2.0, 0.5], 1) == [1]
    assert egan.select_survivors([0.1, 0.7, -2.0, 0.5], 3) == [1, 3, 0]
    assert egan.select_survivors([0.3, 0.3, 0.3], 2) == [0, 1]  # ties: the earlier offspring
    assert egan.select_survivors([0.2, 0.4], 5) == [1, 0]  # fewer than mu: all of them


def test_select_survivors_ranks_non_finite_fitness_last() -> None:
    fitness = [math.nan, math.inf, -0.5, -math.inf, -3.0]
    assert egan.select_survivors(fitness, 2) == [2, 4]
    assert egan.select_survivors([math.nan, math.inf], 1) == [0]


def test_select_survivors_rejects_an_empty_selection() -> None:
    with pytest.raises(ValueError, match="mu must be >= 1"):
        egan.select_survivors([1.0], 0)
    with pytest.raises(ValueError, match="no offspring"):
        egan.select_survivors([], 1)


# -- fitness --------------------------------------------------------------------------------
def test_fitness_is_quality_plus_gamma_times_minus_log_gradient_norm() -> None:
    torch.manual_seed(0)
    d = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    real, fakes = torch.randn(16, 2), [torch.randn(16, 2), torch.randn(16, 2) + 3.0]
    before = _weights(d)
    scores = egan.egan_fitness(d, real, fakes, gamma=0.5)
    for fake, score in zip(fakes, scores):
        # the paper's terms, written out: Fq = E[D(G(z))], Fd = -log ||grad L_D||
        quality = float(torch.sigmoid(d(fake)).mean().detach())
        assert score.quality == pytest.approx(quality, rel=1e-6)
        d.zero_grad()
        loss = -(torch.log(torch.sigmoid(d(real))).mean()
                 + torch.log(1 - torch.sigmoid(d(fake))).mean())
        loss.backward()
        norm = math.sqrt(sum(float((p.grad**2).sum()) for p in d.parameters()))
        assert score.diversity == pytest.approx(-math.log(norm), rel=1e-5)
        assert score.total == pytest.approx(score.quality + 0.5 * score.diversity, rel=1e-6)
        d.zero_grad(set_to_none=True)
    assert scores[0].total != scores[1].total
    # D is read, never changed, and no gradient is left in it
    assert torch.equal(_weights(d), before)
    assert all(p.grad is None for p in d.parameters())
    # gamma 0: quality alone
    (alone,) = egan.egan_fitness(d, real, fakes[:1], gamma=0.0)
    assert alone.total == alone.quality == scores[0].quality


def test_fitness_needs_a_trainable_discriminator() -> None:
    d = nn.Linear(2, 1).requires_grad_(False)
    with pytest.raises(ValueError, match="trainable parameters"):
        egan.egan_fitness(d, torch.zeros(4, 2), [torch.zeros(4, 2)], gamma=1.0)


# -- offspring ------------------------------------------------------------------------------
def test_offspring_start_from_the_parents_weights_and_adam_state() -> None:
    torch.manual_seed(1)
    parents = []
    for lr in (1e-3, 3e-4):
        net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        parent = Individual(net, make_optimizer(net, lr, (0.5, 0.999)), lr, source=7, loss="x")
        for _ in range(3):  # Adam state with history
            parent.optimizer.zero_grad()
            parent.net(torch.randn(5, 3)).pow(2).sum().backward()
            parent.optimizer.step()
        parent.ema = nn.Linear(1, 1)
        parents.append(parent)
    offspring = egan.spawn(parents, LOSSES)
    assert [o.loss for o in offspring] == list(LOSSES) * 2
    for k, child in enumerate(offspring):
        parent = parents[k // len(LOSSES)]
        assert child.net is not parent.net and child.lr == parent.lr and child.source == 7
        assert torch.equal(_weights(child.net), _weights(parent.net))
        assert child.ema is not None and child.ema is not parent.ema
        mine, theirs = child.optimizer.state_dict(), parent.optimizer.state_dict()
        assert mine["param_groups"][0]["lr"] == parent.lr
        for i, entry in theirs["state"].items():
            assert float(mine["state"][i]["step"]) == float(entry["step"]) == 3
            assert torch.equal(mine["state"][i]["exp_avg"], entry["exp_avg"])
            assert torch.equal(mine["state"][i]["exp_avg_sq"], entry["exp_avg_sq"])
    # an offspring's step leaves its parent and its siblings as they were
    parent_w = _weights(parents[0].net)
    child = offspring[0]
    child.optimizer.zero_grad()
    child.net(torch.randn(5, 3)).sum().backward()
    child.optimizer.step()
    assert torch.equal(_weights(parents[0].net), parent_w)
    assert torch.equal(_weights(offspring[1].net), parent_w)
    assert float(parents[0].optimizer.state_dict()["state"][0]["step"]) == 3


# -- the rule in a cell ---------------------------------------------------------------------
class _Planted:
    """Stands in for `egan_fitness`: offspring with loss `winner` get the highest fitness.

    The offspring come in `spawn` order (parents, then `losses.generator`), so the planted
    fitness of offspring k is known from k alone; each call records the offspring's fakes.
    """

    def __init__(self, winner: str, runner_up: str | None = None) -> None:
        self.top = {winner: 10.0, **({runner_up: 5.0} if runner_up else {})}
        self.calls: list[list[Tensor]] = []

    def __call__(self, d: nn.Module, real: Tensor, fakes: Sequence[Tensor],
                 gamma: float) -> list[egan.EganFitness]:
        self.calls.append([f.clone() for f in fakes])
        values = [self.top.get(LOSSES[k % len(LOSSES)], -float(k)) for k in range(len(fakes))]
        return [egan.EganFitness(v, 0.0, v) for v in values]


@pytest.mark.parametrize("winner", LOSSES)
def test_the_offspring_with_the_best_fitness_becomes_the_parent_and_the_centre(
    monkeypatch: pytest.MonkeyPatch, winner: str
) -> None:
    planted = _Planted(winner)
    monkeypatch.setattr(egan, "egan_fitness", planted)
    cell, run = _begun(_config(**{"evolution.egan_mu": 1}))
    start = _weights(cell.g.net)
    picked: list[Tensor] = []
    spawn = egan.spawn

    def spy(parents: Sequence[Individual], losses: Sequence[str]) -> list[Individual]:
        assert len(parents) == 1  # mu 1: one parent each step
        if picked:  # the parent of this step is the winner of the last one
            assert torch.equal(_weights(parents[0].net), picked[-1])
        offspring = spawn(parents, losses)
        original = offspring[LOSSES.index(winner)].optimizer.step

        def step_and_record(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            picked.append(_weights(offspring[LOSSES.index(winner)].net))
            return out

        offspring[LOSSES.index(winner)].optimizer.step = step_and_record  # type: ignore
        return offspring

    monkeypatch.setattr(egan, "spawn", spy)
    run.train(8)
    report = cell.finish(run)
    assert len(planted.calls) == len(picked) == report.steps == 8
    assert all(len(fakes) == 3 for fakes in planted.calls)
    assert torch.equal(_weights(cell.g.net), picked[-1]) and not torch.equal(picked[-1], start)
    assert cell.g.loss == report.g_loss == winner
    assert report.g_loss_counts == {winner: 8}
    assert report.g.steps == 3 * 8 and report.d.steps == 8
    assert report.g.parent == report.d.parent == cell.index
    assert not (report.g.replaced or report.g.discarded or report.d.replaced or report.d.discarded)
    assert report.g.opponents == {cell.index: 24} and report.d.opponents == {cell.index: 8}


def test_mu_survivors_are_the_next_parents(monkeypatch: pytest.MonkeyPatch) -> None:
    planted = _Planted("least_squares", runner_up="minimax")
    monkeypatch.setattr(egan, "egan_fitness", planted)
    cell, run = _begun(_config(**{"evolution.egan_mu": 2}))
    run.train(1)
    # first step: one parent, three offspring; the two planted best survive, best first
    assert [g.loss for g in run.pairing.gs] == ["least_squares", "minimax"]
    assert len(planted.calls[0]) == 3
    run.train(1)
    # then two parents: six offspring, parents in rank order, then losses
    assert len(planted.calls[1]) == 6
    assert [g.loss for g in run.pairing.gs] == ["least_squares", "least_squares"]
    run.train(run.left)
    report = cell.finish(run)
    assert report.steps == 8 and report.g.steps == 3 + 6 * 7
    assert report.g_loss_counts == {"least_squares": 8 + 7, "minimax": 1}
    assert cell.g is run.pairing.gs[0]


def test_d_steps_on_fakes_of_every_survivor() -> None:
    class Constant(nn.Module):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, z: Tensor) -> Tensor:
            return torch.full((len(z), 2), self.value) * self.scale

    config = _config(**{"evolution.egan_mu": 2, "losses.generator": ["heuristic", "least_squares"]})
    cell, run = _begun(config)
    seen: list[Tensor] = []
    forward = cell.d.net.forward

    def recorded(x: Tensor) -> Tensor:
        seen.append(x.detach().clone())
        return forward(x)

    cell.d.net.forward = recorded  # type: ignore[method-assign]
    survivors = [
        Individual(Constant(v), torch.optim.Adam([torch.zeros(1)]), 1e-3, 0, loss)
        for v, loss in ((5.0, "heuristic"), (-5.0, "least_squares"))
    ]
    real = cell.task.data[:7]
    fake = torch.cat([torch.full((4, 2), 5.0), torch.full((3, 2), -5.0)])
    with torch.no_grad():  # each share scored with its survivor's D loss, weighted by its size
        r, f = forward(real), forward(fake)
        expected = (4 / 7) * get_loss("heuristic").discriminator(r, f[:4])
        expected += (3 / 7) * get_loss("least_squares").discriminator(r, f[4:])
    before = _weights(cell.d.net)
    tally = Tally()
    egan.Egan._step_d(run.gen, cell.d, survivors, real, tally)
    assert torch.equal(seen[0], real)  # D's real batch, then the survivors' fakes, split 4 + 3
    assert torch.equal(seen[1], fake)
    assert tally.d_loss_sum == pytest.approx(float(expected), rel=1e-6)
    assert not torch.equal(_weights(cell.d.net), before) and tally.d_steps == 1


@pytest.mark.parametrize("techniques", [{}, {"losses.real_label": 0.9,
                                             "training.historical_averaging": 0.1}],
                         ids=["plain", "smoothing+averaging"])
def test_a_short_ring8_run_trains_without_nan(techniques: dict[str, float]) -> None:
    config = tiny_toy_config(**{
        "training.rule": "egan", "training.generations": 3, "grid.rows": 1, "grid.cols": 2,
        **techniques,
    })
    pool = LocalCellPool(config)
    controller = Controller(config, pool)
    for _ in range(3):
        result = controller.step()
        for report in result.reports:
            assert not report.nonfinite and report.steps > 0
            assert math.isfinite(report.g.train_loss) and math.isfinite(report.d.train_loss)
            assert math.isfinite(report.g.fitness) and math.isfinite(report.d.fitness)
            assert sum(report.g_loss_counts.values()) == report.steps  # mu 1
            assert report.g_loss in report.g_loss_counts
    for cell in pool.cells:
        assert all(torch.isfinite(p).all() for p in cell.g.net.parameters())
        assert all(torch.isfinite(p).all() for p in cell.d.net.parameters())
    samples = pool.cells[0].sample([pool.cells[1].publish()], 200, seed=1)
    assert torch.isfinite(samples).all()


# -- options --------------------------------------------------------------------------------
BAD = [
    (["training.rule=egan", "evolution.egan_gamma=-0.5"], "evolution.egan_gamma: must be a finite"),
    (["training.rule=egan", "evolution.egan_gamma=.nan"], "evolution.egan_gamma: must be a finite"),
    (["training.rule=egan", "evolution.egan_mu=0"], "evolution.egan_mu: must be >= 1"),
    (["training.rule=egan", "evolution.egan_mu=4"], "evolution.egan_mu: must be <= the 3 losses"),
    (["training.rule=egan", "losses.generator=[heuristic, hinge]"],
     "losses.generator: rule 'egan' evolves offspring of minimax, heuristic, least_squares only"),
    (["training.rule=egan", "losses.mutation=batch"],
     "losses.mutation: is set to 'batch' but cannot act: rule 'egan' trains one offspring"),
    (["evolution.egan_gamma=0.5"],
     "evolution.egan_gamma: is set to 0.5 but cannot act: only training.rule 'egan' reads it"),
    (["training.rule=egan", "losses.feature_matching=true"],
     "losses.feature_matching: is set to True but cannot act: rule 'egan' selects among"),
    (["training.rule=live", "evolution.egan_mu=2"],
     "evolution.egan_mu: is set to 2 but cannot act: only training.rule 'egan' reads it, not"),
]


@pytest.mark.parametrize("overrides, message", BAD, ids=[b[1].split(":")[0] for b in BAD])
def test_bad_egan_options_give_one_line(overrides: list[str], message: str) -> None:
    assert config_error(lambda: load_config(None, overrides)).startswith(message)


def test_egan_options_load_and_the_default_config_is_unchanged() -> None:
    cfg = load_config(None, ["training.rule=egan", "evolution.egan_gamma=0", "evolution.egan_mu=3"])
    assert (cfg.evolution.egan_gamma, cfg.evolution.egan_mu) == (0.0, 3)
    default = load_config(None)
    assert default.training.rule == "lipizzaner"
    assert (default.evolution.egan_gamma, default.evolution.egan_mu) == (2.0, 1)
