"""The improved techniques (Salimans et al. 2016): label smoothing, feature matching, minibatch
discrimination, historical averaging and virtual batch norm, alone and in short runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    assert_same_state,
    check_resume_equals_uninterrupted,
    config_error,
    tiny_toy_config,
)
from image_sets import image_data
from torch import nn

from raygan.config import RunConfig
from raygan.core.cell import Cell, cell_seeds
from raygan.core.dcgan import DCGANDiscriminator, DCGANGenerator
from raygan.core.individual import Individual, load_numpy, make_optimizer, module_to_numpy
from raygan.core.init import init_dcgan_weights, reset_parameters
from raygan.core.layers import MinibatchDiscrimination, VirtualBatchNorm2d
from raygan.core.losses import get_loss
from raygan.core.mlp import MLPDiscriminator
from raygan.core.networks import build_networks
from raygan.core.task import CellTask
from raygan.core.techniques import (
    attach_history,
    feature_matching,
    generator_loss,
    history_of,
    step,
)
from raygan.engine.controller import Controller
from raygan.engine.pool import LocalCellPool

ALL_MLP = {
    "losses.feature_matching": True,
    "losses.real_label": 0.9,
    "networks.minibatch_discrimination": True,
    "networks.minibatch_kernels": 8,
    "networks.minibatch_kernel_dims": 3,
    "training.historical_averaging": 0.1,
}


def _real_logit_grad(loss_name: str, logit: float, real_label: float) -> float:
    r = torch.tensor([logit], requires_grad=True)
    get_loss(loss_name).discriminator_loss(r, torch.tensor([-2.0]), real_label).backward()
    assert r.grad is not None
    return float(r.grad)


@pytest.mark.parametrize("name", ["minimax", "heuristic", "least_squares"])
def test_label_smoothing_moves_the_optimal_real_logit_to_log_9(name: str) -> None:
    best = math.log(9.0)  # sigmoid(log 9) = 0.9
    assert abs(_real_logit_grad(name, best, 0.9)) < 1e-6
    assert _real_logit_grad(name, best - 1.0, 0.9) < 0 < _real_logit_grad(name, best + 1.0, 0.9)
    grid = torch.linspace(-5.0, 10.0, 15001)
    losses = [get_loss(name).discriminator_loss(torch.tensor([r]), torch.zeros(1), 0.9)
              for r in grid]
    assert abs(float(grid[int(torch.stack(losses).argmin())]) - best) < 2e-3
    # without smoothing the loss still falls past log 9: its optimum is +inf
    assert _real_logit_grad(name, best, 1.0) < 0 and _real_logit_grad(name, best + 5.0, 1.0) < 0


def test_label_smoothing_is_one_sided_and_off_at_one() -> None:
    loss = get_loss("minimax")
    real, fake = torch.randn(6), torch.randn(6)
    assert torch.equal(loss.discriminator_loss(real, fake, 1.0), loss.discriminator(real, fake))
    fake_only = lambda t: loss.discriminator_loss(torch.zeros(1), fake, t)  # noqa: E731
    # the fakes' part is the same for any target: at real logit 0 both targets cost log 2
    assert torch.allclose(fake_only(0.9), fake_only(1.0))
    with pytest.raises(ValueError, match="'hinge' has no labels"):
        get_loss("hinge").discriminator_loss(real, fake, 0.9)


def _discriminators() -> dict[str, nn.Module]:
    gen = torch.Generator().manual_seed(0)
    nets: dict[str, nn.Module] = {
        "mlp": MLPDiscriminator((1, 8, 8), 16, 2),
        "mlp_mbd": MLPDiscriminator((1, 8, 8), 16, 2, minibatch=(6, 3)),
        "dcgan": DCGANDiscriminator((1, 8, 8), width=8),
        "dcgan_mbd": DCGANDiscriminator((1, 8, 8), width=8, minibatch=(6, 3)),
    }
    for net in nets.values():
        init_dcgan_weights(net, gen)
        for m in net.modules():
            if isinstance(m, MinibatchDiscrimination):
                m.reset_parameters(gen)
    return nets


@pytest.mark.parametrize("kind", ["mlp", "mlp_mbd", "dcgan", "dcgan_mbd"])
def test_feature_matching_is_zero_on_the_real_features_and_positive_otherwise(kind: str) -> None:
    d = _discriminators()[kind]
    real = torch.rand(10, 1, 8, 8) * 2 - 1
    fake = real.clone().requires_grad_(True)
    assert float(feature_matching(d, real, fake).detach()) == pytest.approx(0.0, abs=1e-10)
    other = (torch.rand(10, 1, 8, 8) * 2 - 1).requires_grad_(True)
    loss = feature_matching(d, real, other)
    assert float(loss.detach()) > 1e-6
    loss.backward()
    assert other.grad is not None and float(other.grad.abs().sum()) > 0
    # by hand: squared distance of the mean penultimate features
    with torch.no_grad():
        want = ((d.features(real).mean(0) - d.features(other).mean(0)) ** 2).sum()
    assert float(loss) == pytest.approx(float(want), rel=1e-5)


def test_generator_loss_is_the_plain_loss_without_feature_matching() -> None:
    d = _discriminators()["mlp"]
    real, fake = torch.randn(5, 1, 8, 8), torch.randn(5, 1, 8, 8)
    cfg = RunConfig().losses
    loss = get_loss("heuristic")
    assert torch.equal(generator_loss(cfg, loss, d, fake, real), loss.generator(d(fake)))
    fm = RunConfig().replace(**{"losses.feature_matching": True}).losses
    assert torch.equal(generator_loss(fm, loss, d, fake, real), feature_matching(d, real, fake))


@pytest.mark.parametrize("kind", ["mlp", "dcgan"])
def test_minibatch_discrimination_makes_a_sample_depend_on_its_batch(kind: str) -> None:
    nets = _discriminators()
    x = torch.randn(6, 1, 8, 8)
    y = x.clone()
    y[3] = torch.randn(1, 8, 8)
    with_mbd, without = nets[f"{kind}_mbd"].eval(), nets[kind].eval()
    with torch.no_grad():
        assert not torch.allclose(with_mbd(x)[0], with_mbd(y)[0])
        assert torch.equal(without(x)[0], without(y)[0])


def test_minibatch_layer_matches_the_formula() -> None:
    layer = MinibatchDiscrimination(4, kernels=3, kernel_dims=2)
    layer.reset_parameters(torch.Generator().manual_seed(1))
    x = torch.randn(5, 4)
    out = layer(x)
    m = (x @ layer.T).view(5, 3, 2)
    want = torch.zeros(5, 3)
    for i in range(5):
        for j in range(5):
            if i != j:
                want[i] += torch.exp(-(m[i] - m[j]).abs().sum(-1))
    assert out.shape == (5, 7) and torch.equal(out[:, :4], x)
    assert torch.allclose(out[:, 4:], want, atol=1e-6)
    # large batches go in chunks: same values
    import raygan.core.layers as layers

    saved = layers._CHUNK_ELEMENTS
    try:
        layers._CHUNK_ELEMENTS = 6
        assert torch.allclose(layer(x), out, atol=1e-6)
    finally:
        layers._CHUNK_ELEMENTS = saved


def test_minibatch_layer_compares_a_large_input_within_groups() -> None:
    # 10 samples in groups of at most 4: three groups (4, 3, 3), each sample summing over its own
    layer = MinibatchDiscrimination(4, kernels=3, kernel_dims=2, group=4)
    layer.reset_parameters(torch.Generator().manual_seed(1))
    x = torch.randn(10, 4)
    out = layer(x)
    parts = [layer(part) for part in (x[:4], x[4:7], x[7:])]
    assert torch.allclose(out, torch.cat(parts), atol=1e-6)
    # a sample's closeness ignores the samples outside its group
    y = x.clone()
    y[9] = torch.randn(4)
    assert torch.equal(layer(y)[:7], out[:7]) and not torch.allclose(layer(y)[7], out[7])
    # an input up to the group size is one group
    assert torch.allclose(layer(x[:4]), out[:4], atol=1e-6)


def _mlp_individual() -> Individual:
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    reset_parameters(net, torch.Generator().manual_seed(2))
    attach_history(net)
    return Individual(net, make_optimizer(net, 0.05, (0.5, 0.999)), 0.05, 0)


def test_historical_averaging_penalises_the_distance_to_the_running_mean() -> None:
    ind = _mlp_individual()
    history = history_of(ind.net)
    assert history is not None
    params = list(ind.net.parameters())
    assert float(history.penalty(params)) == 0.0  # the mean starts at the initial weights
    seen = [[p.detach().clone() for p in params]]
    x = torch.randn(16, 3)
    for _ in range(4):
        loss = ind.net(x).pow(2).mean()
        total = step(ind, loss, 0.5)
        assert float(total) >= float(loss)
        seen.append([p.detach().clone() for p in params])
    assert int(history.count) == 5
    for i, mean in enumerate(history.means()):
        assert torch.allclose(mean, torch.stack([s[i] for s in seen]).mean(0), atol=1e-6)
    assert float(history.penalty(params)) > 0
    with torch.no_grad():
        for p, m in zip(params, history.means()):
            p.copy_(m)
    assert float(history.penalty(params)) == 0.0
    # weight 0: exactly the plain step, and the mean stays
    before = [m.clone() for m in history.means()]
    loss = ind.net(x).pow(2).mean()
    assert torch.equal(step(ind, loss, 0.0), loss)
    assert all(torch.equal(a, b) for a, b in zip(before, history.means()))


def test_the_running_mean_survives_checkpoints_and_snapshots() -> None:
    ind = _mlp_individual()
    for _ in range(3):
        step(ind, ind.net(torch.randn(8, 3)).sum(), 0.1)
    fresh = _mlp_individual()
    fresh.load_state_dict(ind.state_dict())
    got, want = history_of(fresh.net), history_of(ind.net)
    assert got is not None and want is not None and int(got.count) == 4
    assert all(torch.equal(a, b) for a, b in zip(got.means(), want.means()))
    other = _mlp_individual().net
    load_numpy(other, module_to_numpy(ind.net))
    assert_same_state(other.state_dict(), ind.net.state_dict())
    clone = ind.clone()
    assert_same_state(clone.net.state_dict(), ind.net.state_dict())


def test_resume_equals_uninterrupted_with_the_techniques_on(tmp_path: Path) -> None:
    cfg = tiny_toy_config(
        **{"training.generations": 3, "output.checkpoint_every": 1, "training.rule": "live",
           **ALL_MLP}
    )
    cells, _ = check_resume_equals_uninterrupted(cfg, tmp_path)
    count = cells[0]["d"]["net"]["history_count"]
    assert int(count) > 1  # the running mean took in the steps


def _vbn_generator(norm: str, seed: int = 0) -> DCGANGenerator:
    g = DCGANGenerator(8, (1, 16, 16), width=8, norm=norm, reference=12)  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(seed)
    init_dcgan_weights(g, gen)
    if g.reference_z is not None:
        g.reference_z.copy_(torch.randn(g.reference_z.shape, generator=gen))
    return g


def test_virtual_batch_norm_output_ignores_the_rest_of_the_batch() -> None:
    z = torch.randn(6, 8)
    z2 = z.clone()
    z2[1:] = torch.randn(5, 8)
    vbn, bn = _vbn_generator("virtual_batch").train(), _vbn_generator("batch").train()
    with torch.no_grad():
        assert torch.allclose(vbn(z)[0], vbn(z2)[0], atol=1e-6)
        assert torch.allclose(vbn(z)[:1], vbn(z[:1]), atol=1e-6)
        assert not torch.allclose(bn(z)[0], bn(z2)[0], atol=1e-4)
        # deterministic given the reference batch, and the reference batch matters
        same = _vbn_generator("virtual_batch")
        assert torch.equal(same(z), vbn(z))
        assert same.reference_z is not None
        same.reference_z.add_(0.5)
        assert not torch.allclose(same(z), vbn(z), atol=1e-4)


def test_virtual_batch_norm_uses_reference_plus_example_statistics() -> None:
    layer = VirtualBatchNorm2d(3, reference=4)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        layer.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    ref, x = torch.randn(4, 3, 2, 2), torch.randn(2, 3, 2, 2) * 3 + 1
    out = layer(torch.cat([ref, x]))
    w, b = layer.weight[None, :, None, None], layer.bias[None, :, None, None]
    for i in range(2):
        pool = torch.cat([ref, x[i : i + 1]])
        # the example counts as one more member of the reference batch
        mean = (ref.mean((0, 2, 3)) * 4 + x[i].mean((1, 2))) / 5
        sq = ((ref**2).mean((0, 2, 3)) * 4 + (x[i] ** 2).mean((1, 2))) / 5
        var = sq - mean**2
        want = (x[i : i + 1] - mean[None, :, None, None]) / torch.sqrt(
            var[None, :, None, None] + 1e-5) * w + b
        assert torch.allclose(out[4 + i : 5 + i], want, atol=1e-5), i
        assert pool.shape[0] == 5
    ref_want = nn.functional.batch_norm(ref, None, None, layer.weight, layer.bias, True, 0.0, 1e-5)
    assert torch.allclose(out[:4], ref_want, atol=1e-5)


BAD = [
    ({"losses.real_label": 0.4}, "losses.real_label: must be in (0.5, 1]"),
    ({"losses.real_label": 1.1}, "losses.real_label: must be in (0.5, 1]"),
    ({"losses.real_label": 0.9, "losses.generator": ["minimax", "hinge"]},
     "losses.real_label: is 0.9 but the D losses of hinge have no labels"),
    ({"losses.real_label": 0.9, "losses.generator": ["wasserstein_gp"]},
     "D losses of wasserstein_gp have no labels"),
    ({"losses.feature_matching": "yes"}, "losses.feature_matching"),
    ({"losses.feature_matching": True, "networks.hidden_layers": 0},
     "losses.feature_matching: needs an intermediate D layer"),
    ({"losses.feature_matching": True, "losses.discriminator": "bce",
      "losses.mutation": "batch"}, "losses.mutation: is set to 'batch' but cannot act"),
    ({"networks.minibatch_kernels": 0, "networks.minibatch_discrimination": True},
     "networks.minibatch_kernels: must be >= 1"),
    ({"networks.minibatch_kernel_dims": 0, "networks.minibatch_discrimination": True},
     "networks.minibatch_kernel_dims: must be >= 1"),
    ({"networks.minibatch_group": 1, "networks.minibatch_discrimination": True},
     "networks.minibatch_group: must be >= 2"),
    ({"networks.minibatch_kernels": 50},
     "networks.minibatch_kernels: is set to 50 but cannot act: "
     "networks.minibatch_discrimination is false"),
    ({"networks.g_norm": "virtual_batch"},
     "networks.g_norm: is set to 'virtual_batch' but cannot act: the 'mlp' generator"),
    ({"networks.g_norm": "layer"}, "networks.g_norm: 'layer' is not allowed"),
    ({"networks.vbn_reference_size": 0}, "networks.vbn_reference_size: must be >= 1"),
    ({"networks.vbn_reference_size": 64},
     "networks.vbn_reference_size: is set to 64 but cannot act"),
    ({"training.historical_averaging": -0.1}, "training.historical_averaging: must be a finite"),
    ({"training.historical_averaging": float("inf")}, "training.historical_averaging"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[m for _, m in BAD])
def test_every_option_rejects_bad_values_in_one_line(
    overrides: dict[str, object], message: str
) -> None:
    config_error(lambda: tiny_toy_config(**overrides), message)


def test_the_options_are_accepted_where_they_act() -> None:
    tiny_toy_config(**ALL_MLP, **{"losses.generator": ["least_squares"]})
    tiny_toy_config(**{"losses.real_label": 0.9, "losses.discriminator": "bce"})
    tiny_toy_config(**{"losses.feature_matching": True, "networks.hidden_layers": 0,
                       "networks.minibatch_discrimination": True})
    tiny_toy_config(**{"data.name": "digits8x8", "networks.kind": "dcgan",
                       "networks.g_norm": "virtual_batch", "networks.vbn_reference_size": 32})


def test_a_toy_grid_trains_with_every_technique_on() -> None:
    cfg = tiny_toy_config(**ALL_MLP, **{"training.generations": 2})
    pool = LocalCellPool(cfg)
    controller = Controller(cfg, pool)
    for _ in range(2):
        summary = controller.step()
    for report in summary.reports:
        assert not report.nonfinite
        assert math.isfinite(report.g.train_loss) and math.isfinite(report.d.train_loss)
        assert math.isfinite(report.g.fitness) and math.isfinite(report.d.fitness)
    assert "net.mbd.T" not in pool.cells[0].d.net.state_dict()
    assert "mbd.T" in pool.cells[0].d.net.state_dict()


def test_dcgan_cells_train_and_exchange_with_every_technique_on() -> None:
    cfg = tiny_toy_config(
        **ALL_MLP,
        **{"data.name": "digits8x8", "networks.kind": "dcgan", "networks.dcgan_width": 8,
           "networks.g_norm": "virtual_batch", "networks.vbn_reference_size": 16,
           "training.batch_size": 32, "training.max_batches": 4,
           "evolution.fitness_sample_size": 64, "mixture.samples": 20,
           "grid.rows": 1, "grid.cols": 2, "metrics.names": ["tvd"], "metrics.rank_by": "tvd"},
    )
    images = image_data("digits8x8").images
    seeds = cell_seeds(cfg.seed, 2)
    cells = [
        Cell(cfg, i, [1 - i], CellTask(images[i * 300 : (i + 1) * 300], lambda s: 0.0,
                                        lambda s: {}), seeds[i])
        for i in range(2)
    ]
    before = module_to_numpy(cells[0].g.net)
    for generation in range(2):
        snaps = [c.publish() for c in cells]
        reports = [c.run_generation(generation, [snaps[1 - c.index]]) for c in cells]
        for report in reports:
            assert not report.nonfinite and math.isfinite(report.g.train_loss)
            assert math.isfinite(report.d.train_loss)
    after = module_to_numpy(cells[0].g.net)
    assert not np.array_equal(before["net.0.weight"], after["net.0.weight"])
    # the reference batch is fixed; it and T and the running means travel in the snapshots
    np.testing.assert_array_equal(before["reference_z"], after["reference_z"])
    nbh = cells[1].neighbourhood
    nbh.receive([cells[0].publish()])
    slot_g, slot_d = nbh.g_slots[0], nbh.d_slots[0]
    assert_same_state(slot_g.state_dict(), cells[0].g.net.state_dict())
    assert_same_state(slot_d.state_dict(), cells[0].d.net.state_dict())
    assert {"mbd.T", "history_count", "history_mean_0"} <= set(slot_d.state_dict())
    # the same seeds give the same networks (the reference batch included)
    g2, _ = build_networks(cfg.networks, (1, 8, 8), torch.Generator().manual_seed(5))
    g3, _ = build_networks(cfg.networks, (1, 8, 8), torch.Generator().manual_seed(5))
    assert_same_state(g2.state_dict(), g3.state_dict())
