from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from raygan.core import operators as ops
from raygan.core.individual import Individual, make_optimizer
from raygan.core.losses import get_loss


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_mutated_lr_reaches_optimizer_param_groups() -> None:
    net = torch.nn.Linear(2, 1)
    ind = Individual(net, make_optimizer(net, 2e-4, (0.5, 0.999)), 2e-4, 0)
    # a trained optimizer state, as a centre carries from generation to generation
    net(torch.randn(4, 2)).sum().backward()
    ind.optimizer.step()
    child = ind.clone()  # reloads the optimizer state, as Lipizzaner does
    new_lr, record = ops.mutate_lr(child.lr, rng(1), probability=1.0, sigma=0.5)
    assert record.mutated and new_lr != pytest.approx(2e-4)
    ops.set_optimizer_lr(child.optimizer, new_lr)
    assert all(g["lr"] == new_lr for g in child.optimizer.param_groups)
    # the parent's optimizer is untouched
    assert all(g["lr"] == 2e-4 for g in ind.optimizer.param_groups)
    # and the step really uses the new rate: with Adam the first-order step scales with lr
    before = [p.detach().clone() for p in child.net.parameters()]
    child.net(torch.randn(4, 2)).sum().backward()
    child.optimizer.step()
    moved = max((p - b).abs().max().item() for p, b in zip(child.net.parameters(), before))
    assert moved > 0


def test_lr_mutation_rules_and_clipping() -> None:
    lr, rec = ops.mutate_lr(1e-3, rng(), rule="none", probability=1.0)
    assert lr == 1e-3 and not rec.mutated
    lr, rec = ops.mutate_lr(1e-3, rng(), probability=0.0)
    assert lr == 1e-3 and not rec.mutated
    lr, _ = ops.mutate_lr(1e-3, rng(), probability=1.0, sigma=50.0, lr_min=1e-4, lr_max=2e-3)
    assert 1e-4 <= lr <= 2e-3
    lr, rec = ops.mutate_lr(1e-3, rng(), rule="additive", probability=1.0, additive_sigma=1e-4)
    assert rec.mutated and abs(lr - 1e-3) < 1e-3
    with pytest.raises(ValueError):
        ops.mutate_lr(1e-3, rng(), rule="weird")


def test_operators_deterministic_for_a_given_rng() -> None:
    fitness = [0.3, 0.1, 0.7, 0.2, 0.9]
    a = [ops.tournament_select(fitness, 2, rng(5)) for _ in range(3)]
    b = [ops.tournament_select(fitness, 2, rng(5)) for _ in range(3)]
    assert a == b
    assert ops.mutate_lr(2e-4, rng(9), probability=1.0) == ops.mutate_lr(
        2e-4, rng(9), probability=1.0
    )
    names = ("minimax", "heuristic", "least_squares")
    r1, r2 = rng(4), rng(4)
    assert [ops.draw_loss(names, r1) for _ in range(20)] == [
        ops.draw_loss(names, r2) for _ in range(20)
    ]
    w = np.full(4, 0.25)
    assert np.array_equal(ops.perturb_mixture(w, 0.1, rng(2)), ops.perturb_mixture(w, 0.1, rng(2)))


def test_tournament_picks_best_contestant() -> None:
    fitness = [0.5, 0.1, 0.9]
    winner, rec = ops.tournament_select(fitness, 3, rng())
    assert winner == 1 and sorted(rec.contestants) == [0, 1, 2]
    for seed in range(30):
        w, rec = ops.tournament_select([0.4, math.nan, 0.2, 0.3], 2, rng(seed))
        assert w == min(
            rec.contestants, key=lambda i: (ops.finite_or_inf([0.4, math.nan, 0.2, 0.3][i]), i)
        )
        assert not (w == 1 and len(rec.contestants) > 1)  # NaN never wins against a number


def test_loss_draw_is_uniform() -> None:
    r = rng(0)
    names = ("minimax", "heuristic", "least_squares")
    counts = {n: 0 for n in names}
    for _ in range(3000):
        counts[ops.draw_loss(names, r)] += 1
    assert all(900 < c < 1100 for c in counts.values())


@pytest.mark.parametrize("seed", range(20))
def test_elitist_replacement_never_loses_the_best(seed: int) -> None:
    r = rng(seed)
    pop = list(r.normal(size=int(r.integers(1, 6))))
    off = float(r.normal())
    rec = ops.elitist_replacement(pop, off)
    assert min(rec.fitness) <= min(pop)
    assert rec.fitness[rec.centre] == min(rec.fitness)
    if off < max(pop):
        assert rec.replaced == int(np.argmax(pop)) and rec.fitness[rec.replaced] == off
    else:
        assert rec.replaced is None and list(rec.fitness) == pop


def test_replacement_needs_strict_improvement_and_handles_nan() -> None:
    assert ops.elitist_replacement([1.0, 2.0], 2.0).replaced is None
    rec = ops.elitist_replacement([math.nan, 2.0], 3.0)
    assert rec.replaced == 0 and rec.centre == 1
    assert ops.elitist_replacement([1.0], math.nan).replaced is None


@pytest.mark.parametrize("seed", range(10))
def test_mixture_weights_stay_on_simplex(seed: int) -> None:
    r = rng(seed)
    w = np.full(5, 0.2)
    for _ in range(200):
        w = ops.perturb_mixture(w, 0.3, r)
        assert np.all(w >= 0) and w.sum() == pytest.approx(1.0)
    counts = ops.mixture_counts(w, 997)
    assert counts.sum() == 997 and np.all(np.abs(counts - w * 997) < 1.0)


def test_mixture_counts_exact() -> None:
    assert list(ops.mixture_counts(np.array([0.5, 0.25, 0.25]), 8)) == [4, 2, 2]
    assert list(ops.mixture_counts(np.array([1.0, 0.0]), 5)) == [5, 0]
    with pytest.raises(ValueError):
        ops.mixture_counts(np.array([0.0, 0.0]), 5)


def test_mixture_es_improves_known_objective() -> None:
    target = np.array([0.7, 0.2, 0.1, 0.0])
    score = lambda w: float(np.abs(w - target).sum())  # noqa: E731
    w = np.full(4, 0.25)
    r = rng(0)
    start = score(w)
    scores = [start]
    for _ in range(400):
        w, rec = ops.mixture_es_step(w, 0.05, r, score)
        assert rec.new_score < rec.old_score if rec.accepted else True
        scores.append(score(w))
    assert all(b <= a for a, b in zip(scores, scores[1:]))  # (1+1)-ES never gets worse
    assert scores[-1] < 0.1 * start


def test_all_vs_all_fitness_shapes_and_order() -> None:
    torch.manual_seed(0)
    gs = [torch.nn.Linear(2, 2) for _ in range(3)]
    good_d = lambda x: torch.full((len(x),), 10.0)  # noqa: E731  (calls every sample real)
    bad_d = lambda x: torch.full((len(x),), -10.0)  # noqa: E731
    real, z = torch.randn(16, 2), torch.randn(16, 2)
    g_fit, d_fit = ops.all_vs_all_fitness(gs, [good_d, bad_d], real, z, get_loss("heuristic"))
    assert len(g_fit) == 3 and len(d_fit) == 2
    assert all(math.isfinite(f) for f in g_fit + d_fit)
    worst_g, _ = ops.all_vs_all_fitness(gs, [bad_d], real, z, get_loss("heuristic"), "worst")
    best_g, _ = ops.all_vs_all_fitness(gs, [good_d], real, z, get_loss("heuristic"), "best")
    assert all(w > b for w, b in zip(worst_g, best_g))


def test_aggregate_skips_broken_opponents() -> None:
    assert ops.aggregate([1.0, math.nan, 3.0], "average") == 2.0
    assert ops.aggregate([1.0, math.inf, 3.0], "worst") == 3.0
    assert ops.aggregate([math.nan, math.nan], "best") == math.inf
