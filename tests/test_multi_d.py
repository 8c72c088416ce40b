"""Multi-discriminator generator objectives: the formulas, the MGD solver, config, training."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import get_args

import pytest
import torch
from conftest import check_resume_equals_uninterrupted, config_error, tiny_toy_config
from torch import nn

from raygan.config import MultiDName, load_config
from raygan.core import multi_d
from raygan.core.local_d import LocalDiscriminators, projection_dim
from raygan.core.losses import LOSSES, get_loss
from raygan.engine.controller import Controller
from raygan.engine.pool import LocalCellPool


def test_every_mode_is_configurable() -> None:
    assert set(get_args(MultiDName)) == {"none", *multi_d.MODES}


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_hv_gradient_weights_are_one_over_eta_minus_loss(sign: float) -> None:
    torch.manual_seed(0)
    losses = (sign * (torch.rand(5, dtype=torch.float64) + 0.1)).requires_grad_(True)
    delta = 1.5
    eta = multi_d.hv_eta(losses, delta)
    if sign > 0:  # the paper's case: eta = delta * max_k l_k
        assert float(eta) == pytest.approx(delta * float(losses.detach().max()), rel=1e-15)
    assert bool((eta > losses).all())
    (grad,) = torch.autograd.grad(multi_d.objective(losses, "hv", delta=delta), losses)
    torch.testing.assert_close(grad, 1.0 / (eta - losses.detach()), rtol=1e-12, atol=0)


def test_hv_weights_reach_the_generator_through_the_chain_rule() -> None:
    torch.manual_seed(1)
    g = nn.Linear(3, 2).double()
    ds = [nn.Linear(2, 1).double() for _ in range(3)]
    z = torch.randn(16, 3, dtype=torch.float64)
    loss = get_loss("heuristic").generator
    losses = torch.stack([loss(d(g(z))) for d in ds])
    total = multi_d.objective(losses, "hv", delta=2.0)
    got = torch.autograd.grad(total, list(g.parameters()), retain_graph=True)
    eta = 2.0 * float(losses.detach().max())
    want = [torch.zeros_like(p) for p in g.parameters()]
    for k in range(3):
        grads = torch.autograd.grad(losses[k], list(g.parameters()), retain_graph=True)
        for acc, gk in zip(want, grads):
            acc += gk / (eta - float(losses[k].detach()))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_gman_temperature_zero_is_avg_and_large_temperature_is_max() -> None:
    torch.manual_seed(2)
    losses = torch.rand(4, dtype=torch.float64).requires_grad_(True)
    zero = multi_d.objective(losses, "gman", temperature=0.0)
    avg = multi_d.objective(losses, "avg")
    torch.testing.assert_close(zero, avg, rtol=1e-15, atol=0)
    g_zero, g_avg = (torch.autograd.grad(v, losses)[0] for v in (zero, avg))
    torch.testing.assert_close(g_zero, g_avg, rtol=1e-15, atol=0)
    torch.testing.assert_close(g_avg, torch.full_like(g_avg, 0.25))
    hot = multi_d.objective(losses, "gman", temperature=1e4)
    torch.testing.assert_close(hot, losses.max(), rtol=1e-9, atol=0)
    w = multi_d.gman_weights(losses, 1.0)
    assert float(w.sum()) == pytest.approx(1.0)
    assert int(w.argmax()) == int(losses.argmax())  # the hardest D counts most


def test_gman_temperature_zero_steps_exactly_like_avg() -> None:
    def step(mode: str, temperature: float) -> list[torch.Tensor]:
        torch.manual_seed(3)
        g = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        ds = [nn.Linear(2, 1) for _ in range(3)]
        opt = torch.optim.Adam(g.parameters(), lr=1e-2)
        z = torch.randn(32, 4)
        multi_d.generator_step(g, opt, ds, get_loss("least_squares").generator, z, mode,
                               temperature=temperature)
        return [p.detach().clone() for p in g.parameters()]

    for a, b in zip(step("gman", 0.0), step("avg", 1.0)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def _units(k: int, dim: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    grads = torch.randn(k, dim, generator=gen, dtype=torch.float64)
    return grads * torch.rand(k, 1, generator=gen, dtype=torch.float64).add(0.1) * 10


def _brute_force_min_norm(units: torch.Tensor) -> torch.Tensor:
    """The min-norm hull point by enumerating supports: each support's affine minimiser, kept
    when its weights are non-negative; the smallest of those is the optimum."""
    k = units.shape[0]
    best: torch.Tensor | None = None
    for size in range(1, k + 1):
        for support in itertools.combinations(range(k), size):
            sub = units[list(support)]
            kkt = torch.zeros(size + 1, size + 1, dtype=torch.float64)
            kkt[:size, :size] = sub @ sub.T
            kkt[:size, size] = kkt[size, :size] = 1.0
            rhs = torch.zeros(size + 1, dtype=torch.float64)
            rhs[size] = 1.0
            try:
                w = torch.linalg.solve(kkt, rhs)[:size]
            except RuntimeError:  # singular: a degenerate support, covered by a smaller one
                continue
            if bool((w >= -1e-12).all()):
                point = w @ sub
                if best is None or point.norm() < best.norm():
                    best = point
    assert best is not None
    return best


def _normalise(grads: torch.Tensor) -> torch.Tensor:
    return grads / grads.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("seed", range(6))
def test_mgd_pair_is_the_exact_closed_form(seed: int) -> None:
    grads = _units(2, 7, seed)
    if seed % 2:  # near-opposite pair: the hull is close to the origin
        grads[1] = -grads[0] + 0.05 * grads[1]
    p = multi_d.mgd_direction(grads)
    u1, u2 = _normalise(grads)
    # brute force over the segment [u1, u2]
    s = torch.linspace(0, 1, 200_001, dtype=torch.float64)[:, None]
    norms = ((1 - s) * u1 + s * u2).norm(dim=1)
    assert float(p.norm()) == pytest.approx(float(norms.min()), abs=1e-9)
    # the textbook formula: a = <u2 - u1, u2> / |u1 - u2|^2 clipped to [0, 1]
    a = float(((u2 - u1) @ u2) / (u1 - u2).norm() ** 2)
    a = min(max(a, 0.0), 1.0)
    torch.testing.assert_close(p, a * u1 + (1 - a) * u2, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("k", "dim", "seed"), [(3, 5, 0), (4, 6, 1), (5, 3, 2), (6, 2, 3),
                                                (4, 50, 4), (8, 4, 5), (9, 30, 6)])
def test_mgd_direction_descends_every_loss_and_matches_brute_force(
    k: int, dim: int, seed: int
) -> None:
    grads = _units(k, dim, seed)
    p = multi_d.mgd_direction(grads)
    torch.testing.assert_close(p, _brute_force_min_norm(_normalise(grads)), rtol=0, atol=1e-6)
    d = -p
    assert bool((grads @ d <= 1e-9).all()), grads @ d  # <d, grad l_k> <= 0 for every k


def test_mgd_solver_for_more_than_two_reduces_to_the_pair() -> None:
    grads = _units(2, 9, 7)
    pair = multi_d.mgd_direction(grads)
    # a duplicate and a vector inside the cone add nothing to the hull's min-norm point
    inside = 0.3 * _normalise(grads)[0] + 0.7 * _normalise(grads)[1]
    three = multi_d.mgd_direction(torch.stack([grads[0], grads[1], grads[0] * 3]))
    four = multi_d.mgd_direction(torch.stack([grads[1], inside * 5, grads[0], grads[1]]))
    torch.testing.assert_close(three, pair, rtol=0, atol=1e-9)
    torch.testing.assert_close(four, pair, rtol=0, atol=1e-9)


def test_an_mgd_step_lowers_every_discriminators_loss() -> None:
    torch.manual_seed(8)
    g = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))
    ds = [nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)) for _ in range(4)]
    loss = get_loss("heuristic").generator
    z = torch.randn(64, 4)
    opt = torch.optim.SGD(g.parameters(), lr=1e-3)
    before = multi_d.generator_step(g, opt, ds, loss, z, "mgd").losses
    with torch.no_grad():
        after = [float(loss(d(g(z)))) for d in ds]
    assert all(a < b for a, b in zip(after, before)), (before, after)


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (["losses.multi_discriminator=max"], ["losses.multi_discriminator", "'mgd'"]),
        (["losses.multi_discriminator=gman", "losses.gman_temperature=-1"],
         ["losses.gman_temperature", ">= 0"]),
        (["losses.multi_discriminator=gman", "losses.gman_temperature=.inf"],
         ["losses.gman_temperature", "finite"]),
        (["losses.multi_discriminator=hv", "losses.hv_delta=1.0"], ["losses.hv_delta", "> 1"]),
        (["losses.multi_discriminator=hv", "losses.hv_delta=.nan"],
         ["losses.hv_delta", "finite"]),
        (["losses.multi_discriminator=avg", "losses.hv_delta=2"],
         ["losses.hv_delta", "cannot act", "'avg', not 'hv'"]),
        (["losses.gman_temperature=2"], ["losses.gman_temperature", "cannot act", "'none'"]),
        (["losses.multi_discriminator=hv", "training.rule=own"],
         ["losses.multi_discriminator", "cannot act", "single adversary"]),
        (["losses.multi_discriminator=mgd", "training.rule=lipizzaner-selection"],
         ["losses.multi_discriminator", "cannot act", "single adversary"]),
        (["losses.multi_discriminator=avg", "grid.rows=1", "grid.cols=1"],
         ["losses.multi_discriminator", "cannot act", "1x1 grid"]),
        (["losses.discriminators=global"], ["losses.discriminators", "'local'"]),
        (["losses.discriminators=local"],
         ["losses.discriminators", "needs losses.multi_discriminator"]),
        (["losses.discriminators=local", "losses.multi_discriminator=avg", "losses.k=1"],
         ["losses.k", ">= 2"]),
        (["losses.multi_discriminator=avg", "losses.k=4"],
         ["losses.k", "cannot act", "'neighbourhood', not 'local'"]),
        (["losses.discriminators=local", "losses.multi_discriminator=hv",
          "losses.generator=[heuristic, wasserstein_gp]"],
         ["losses.discriminators", "wasserstein_gp"]),
        (["losses.discriminators=local", "losses.multi_discriminator=hv", "data.name=mnist5k",
          "networks.kind=dcgan"], ["losses.discriminators", "'mlp'", "'dcgan'"]),
        # methods whose steps do not compose are refused together
        (["training.rule=egan", "losses.multi_discriminator=avg"],
         ["losses.multi_discriminator", "rule 'egan'"]),
        (["losses.multi_discriminator=hv", "losses.feature_matching=true"],
         ["losses.feature_matching", "does not combine", "'hv'"]),
        (["losses.multi_discriminator=mgd", "training.historical_averaging=0.1"],
         ["training.historical_averaging", "does not combine", "'mgd'"]),
        (["losses.discriminators=local", "losses.multi_discriminator=avg",
          "networks.minibatch_discrimination=true"],
         ["networks.minibatch_discrimination", "does not combine", "local"]),
    ],
)
def test_bad_multi_discriminator_options_fail_in_one_line(
    overrides: list[str], fragments: list[str]
) -> None:
    config_error(lambda: load_config(None, overrides), *fragments)


def test_local_discriminators_make_a_single_pair_multi_discriminator() -> None:
    for overrides in (["training.rule=own"], ["grid.rows=1", "grid.cols=1"]):
        cfg = load_config(None, [*overrides, "losses.discriminators=local",
                                 "losses.multi_discriminator=mgd", "losses.k=3"])
        assert cfg.losses.k == 3


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_loss_of_k_heads_is_the_mean_of_the_heads_losses(name: str) -> None:
    torch.manual_seed(9)
    real, fake = torch.randn(3, 10), torch.randn(3, 10)
    loss = LOSSES[name]
    heads_g = torch.stack([loss.generator(fake[k]) for k in range(3)]).mean()
    heads_d = torch.stack([loss.discriminator(real[k], fake[k]) for k in range(3)]).mean()
    torch.testing.assert_close(loss.generator(fake), heads_g)
    torch.testing.assert_close(loss.discriminator(real, fake), heads_d)


def test_local_heads_train_like_k_independent_discriminators() -> None:
    gen = torch.Generator().manual_seed(10)
    d = LocalDiscriminators((2,), 3, 16, 2, gen)
    assert d.get_buffer("projections").shape == (3, 2, projection_dim(2))
    assert "projections" in d.state_dict()  # snapshots and checkpoints carry them
    singles = [copy.deepcopy(head) for head in d.heads]
    real, fake = torch.randn(40, 2), torch.randn(40, 2)
    loss = get_loss("heuristic").discriminator
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        loss(d(real), d(fake)).backward()
        opt.step()
    proj = d.get_buffer("projections")
    for k, head in enumerate(singles):
        own = torch.optim.Adam(head.parameters(), lr=1e-2)
        for _ in range(3):
            own.zero_grad()
            # the mean over K heads: each head's own loss, scaled 1/K
            (loss(head(real @ proj[k]), head(fake @ proj[k])) / 3).backward()
            own.step()
        for a, b in zip(head.parameters(), d.heads[k].parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    # the G step sees K = 3 losses from the one D
    g = nn.Linear(4, 2)
    result = multi_d.generator_step(g, torch.optim.Adam(g.parameters()), [d],
                                    get_loss("heuristic").generator, torch.randn(8, 4), "hv")
    assert len(result.losses) == 3


def test_defaults_leave_the_single_adversary_step() -> None:
    cfg = load_config(None)
    assert cfg.losses.multi_discriminator == "none"
    ok = load_config(None, ["losses.multi_discriminator=hv", "losses.hv_delta=2"])
    assert ok.losses.hv_delta == 2.0


@pytest.mark.parametrize("mode", multi_d.MODES)
@pytest.mark.parametrize("rule", ["lipizzaner", "live"])
def test_each_mode_trains_against_the_whole_neighbourhood(rule: str, mode: str) -> None:
    config = tiny_toy_config(**{"training.rule": rule, "training.generations": 2,
                                "losses.multi_discriminator": mode, "mixture.enabled": False})
    pool = LocalCellPool(config)
    start = [c.g.net.state_dict()["net.0.weight"].clone() for c in pool.cells]
    controller = Controller(config, pool)
    for _ in range(2):
        reports = controller.step().reports
        for cell, report in zip(pool.cells, reports):
            assert not report.nonfinite
            members = [cell.index, *cell.neighbours]
            steps = report.g.steps // (len(members) if rule == "live" else 1)
            # every G step faced every member's D (under live: each of the copies' steps)
            assert report.g.opponents == {m: report.g.steps for m in sorted(members)}
            assert steps == report.steps
            assert torch.isfinite(torch.tensor(report.g.train_loss))
            assert torch.isfinite(torch.tensor([report.g.fitness, report.d.fitness])).all()
    for cell, w0 in zip(pool.cells, start):
        assert not torch.equal(cell.g.net.state_dict()["net.0.weight"], w0)


@pytest.mark.parametrize(("rule", "mode", "local"), [
    ("lipizzaner", "hv", False), ("live", "mgd", False), ("fresh", "gman", False),
    ("own", "mgd", True), ("lipizzaner", "avg", True),
])
def test_resume_equals_uninterrupted_with_k_discriminators(
    tmp_path: Path, rule: str, mode: str, local: bool
) -> None:
    extra: dict[str, object] = {"training.exchange_every": 3} if rule == "fresh" else {}
    if local:
        extra.update({"losses.discriminators": "local", "losses.k": 3})
    cfg = tiny_toy_config(**{
        "training.generations": 3, "losses.mutation": "batch", "output.checkpoint_every": 1,
        "training.rule": rule, "losses.multi_discriminator": mode, **extra,
    })
    cells, rows = check_resume_equals_uninterrupted(cfg, tmp_path)
    assert all(not r["nonfinite"] for r in rows)
    if local:  # the projections are each cell's own, and the checkpoint holds them
        projections = [c["d"]["net"]["projections"] for c in cells]
        assert projections[0].shape == (3, 2, 1)
        assert not torch.equal(projections[0], projections[1])
