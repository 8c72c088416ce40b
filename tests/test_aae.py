"""Adversarial autoencoders as individuals (`networks.kind: aae`, raygan.core.aae): the
reconstruction and regularisation phases on digits8x8, the priors, samples = decoder(prior),
fitness, snapshots, checkpoints, resume and the options' one-line errors."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import (
    RULE_OVERRIDES,
    assert_same_state,
    check_resume_equals_uninterrupted,
    config_error,
)
from conftest import tiny_toy_config as _tiny
from image_sets import image_data

from raygan.config import RunConfig
from raygan.core import aae
from raygan.core.cell import Cell, cell_seeds
from raygan.core.fitness import all_vs_all
from raygan.core.individual import Individual, make_optimizer
from raygan.core.losses import get_loss
from raygan.core.networks import build_networks
from raygan.core.task import CellTask
from raygan.engine.controller import Controller
from raygan.engine.pool import LocalCellPool

DIGITS_AAE = {
    "data.name": "digits8x8", "networks.kind": "aae", "networks.latent_dim": 8,
    "networks.g_hidden": 64, "networks.d_hidden": 32, "training.batch_size": 64,
    "training.lr_g": 1e-3, "training.lr_d": 1e-3, "evolution.fitness_sample_size": 256,
}
TRAIN = 1500  # digits8x8 images the cells train on; the other 297 are held out


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return image_data("digits8x8").images


def _one_cell(cfg: RunConfig, data: torch.Tensor) -> Cell:
    return Cell(cfg, 0, [], CellTask(data, lambda s: 0.0, lambda s: {}), cell_seeds(cfg.seed, 1)[0])


def _digits_cell(digits: torch.Tensor, **overrides: object) -> Cell:
    cfg = _tiny(**DIGITS_AAE, **{"grid.rows": 1, "grid.cols": 1, "training.max_batches": 25,
                                 "mixture.enabled": False, "evolution.lr_mutation": "none",
                                 **overrides})
    return _one_cell(cfg, digits[:TRAIN])


def _moment_gap(codes: torch.Tensor) -> float:
    """How far codes' per-dimension mean and std are from N(0, I)'s (0 and 1)."""
    return float((codes.mean(0) ** 2).mean() + ((codes.std(0) - 1.0) ** 2).mean())


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Small networks on shared cores run fastest on one thread (ResourcesConfig.cell_threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_reconstruction_error_falls_on_digits8x8_within_seconds(digits: torch.Tensor) -> None:
    cell = _digits_cell(digits)
    held = digits[TRAIN:]
    with torch.no_grad():
        before = float(aae.reconstruction_error(cell.g.net, held))
    start = time.perf_counter()
    reports = [cell.run_generation(g, []) for g in range(12)]  # 300 steps of each phase
    seconds = time.perf_counter() - start
    assert seconds < 30, seconds
    errors = [r.reconstruction for r in reports]
    assert all(math.isfinite(e) for e in errors) and not any(r.nonfinite for r in reports)
    assert errors[-1] < 0.5 * errors[0], errors
    with torch.no_grad():
        after = float(aae.reconstruction_error(cell.g.net, held))
        codes = cell.g.net.encoder(held)
        prior = aae.latent(cell.config.networks, len(held), torch.Generator().manual_seed(1))
        d = cell.d.net
        accuracy = float(((d(prior) > 0).float().mean() + (d(codes) < 0).float().mean()) / 2)
    assert after < 0.5 * before, (before, after)  # on held-out digits too
    # regularisation: the latent D can no longer tell the codes from the prior
    assert accuracy < 0.65, accuracy
    # ... and the codes are nearer N(0, I) than those of the same encoder trained on the
    # reconstruction phase alone
    alone = _digits_cell(digits).g
    batches = torch.randperm(TRAIN, generator=torch.Generator().manual_seed(0))
    for b in range(300):
        idx = batches[(b * 64) % (TRAIN - 64):][:64]
        aae.reconstruction_step(alone, digits[idx], 0.0)
    with torch.no_grad():
        plain = alone.net.encoder(held)
    assert _moment_gap(codes) < 0.5 * _moment_gap(plain), (_moment_gap(codes), _moment_gap(plain))


def test_samples_are_the_decoded_prior(digits: torch.Tensor) -> None:
    cell = _digits_cell(digits)
    samples = cell.sample([], 50, seed=7, centre_only=True)
    assert samples.shape == (50, 1, 8, 8) and float(samples.abs().max()) <= 1.0
    z = aae.latent(cell.config.networks, 50, torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert torch.equal(samples, cell.g.net.decoder(z))


def test_the_mixture_prior_is_ten_gaussians_on_a_circle() -> None:
    z = aae.sample_prior("mixture2d", 20_000, 2, torch.Generator().manual_seed(0))
    assert z.shape == (20_000, 2)
    radius, angle = z.norm(dim=1), torch.atan2(z[:, 1], z[:, 0])
    assert abs(float(radius.mean()) - aae.MIXTURE_RADIUS) < 0.05
    step = 2 * math.pi / aae.MIXTURE_COMPONENTS
    nearest = torch.round(angle / step)
    component = nearest.remainder(aae.MIXTURE_COMPONENTS).long()
    counts = torch.bincount(component, minlength=aae.MIXTURE_COMPONENTS).float()
    assert float(counts.min()) > 0.08 * len(z) and float(counts.max()) < 0.12 * len(z)
    means = aae.MIXTURE_RADIUS * torch.stack([(nearest * step).cos(), (nearest * step).sin()], 1)
    spread = (z - means).std(0)
    assert torch.allclose(spread, torch.full((2,), aae.MIXTURE_STD), atol=0.01), spread
    gaussian = aae.sample_prior("gaussian", 20_000, 3, torch.Generator().manual_seed(0))
    assert gaussian.shape == (20_000, 3) and abs(float(gaussian.std()) - 1.0) < 0.02
    with pytest.raises(ValueError, match="latent_dim 3"):
        aae.sample_prior("mixture2d", 4, 3, torch.Generator())


def test_fitness_is_the_encoders_codes_against_the_latent_d(digits: torch.Tensor) -> None:
    cell = _digits_cell(digits)
    real = digits[:64]
    z = aae.latent(cell.config.networks, 64, torch.Generator().manual_seed(3))
    g_fit, d_fit = all_vs_all(cell.config, [cell.g.net], [cell.d.net], (real, z))
    loss = get_loss(cell.config.evolution.fitness_loss)
    with torch.no_grad():
        codes = cell.g.net.encoder(real)
        assert g_fit[0] == pytest.approx(float(loss.generator(cell.d.net(codes))))
        want = float(loss.discriminator(cell.d.net(z), cell.d.net(codes)))
        assert d_fit[0] == pytest.approx(want)
    with pytest.raises(TypeError, match="not an adversarial autoencoder"):
        aae.encoder_of(torch.nn.Linear(2, 2))


def test_snapshots_and_checkpoints_carry_encoder_decoder_and_latent_d(
    digits: torch.Tensor,
) -> None:
    cfg = _tiny(**DIGITS_AAE, **{"grid.rows": 1, "grid.cols": 2, "training.max_batches": 3,
                                 "mixture.samples": 20, "training.g_ema": 0.9,
                                 "training.historical_averaging": 0.01})
    seeds = cell_seeds(cfg.seed, 2)
    cells = [Cell(cfg, i, [1 - i], CellTask(digits[i * 300:(i + 1) * 300], lambda s: 0.0,
                                            lambda s: {}), seeds[i]) for i in range(2)]
    for generation in range(2):
        snaps = [c.publish() for c in cells]
        for c in cells:
            report = c.run_generation(generation, [snaps[1 - c.index]])
            assert not report.nonfinite and math.isfinite(report.reconstruction)
    cells[1].neighbourhood.receive([cells[0].publish()])
    assert_same_state(cells[1].neighbourhood.g_slots[0].state_dict(), cells[0].g.net.state_dict())
    assert_same_state(cells[1].neighbourhood.d_slots[0].state_dict(), cells[0].d.net.state_dict())
    assert {"encoder.net.0.weight", "decoder.net.0.weight"} <= set(cells[0].g.net.state_dict())
    assert cells[0].d.net.net[0].in_features == cfg.networks.latent_dim  # a latent D
    twin = Cell(cfg, 0, [1], CellTask(digits[:300], lambda s: 0.0, lambda s: {}), seeds[1])
    twin.load_state_dict(copy.deepcopy(cells[0].state_dict()))  # Adam's state is shared
    assert_same_state(twin.state_dict(), cells[0].state_dict())
    snaps = [c.publish() for c in cells]
    a, b = cells[0].run_generation(2, [snaps[1]]), twin.run_generation(2, [snaps[1]])
    assert (a.reconstruction, a.g.fitness, a.d.train_loss) == (
        b.reconstruction, b.g.fitness, b.d.train_loss)
    assert_same_state(twin.state_dict(), cells[0].state_dict())


def test_resume_equals_uninterrupted_for_an_aae_grid(tmp_path: Path) -> None:
    cfg = _tiny(**DIGITS_AAE, **{"grid.rows": 2, "grid.cols": 1, "training.max_batches": 3,
                                 "training.generations": 3, "losses.mutation": "batch",
                                 "mixture.samples": 100, "metrics.samples": 200,
                                 "metrics.names": ["fid", "tvd"], "metrics.rank_by": "fid"})
    _, rows = check_resume_equals_uninterrupted(cfg, tmp_path)
    assert [(r["generation"], r["cell"]) for r in rows] == [(g, c) for g in range(3)
                                                           for c in range(2)]
    for row in rows:  # the reference FID of decoded prior samples, and the reconstruction
        assert math.isfinite(row["scores"]["fid"]) and math.isfinite(row["reconstruction"])


@pytest.mark.parametrize("rule", [r for r in RULE_OVERRIDES if r != "egan"])
def test_every_rule_trains_a_toy_aae_grid(rule: str) -> None:
    # toy data are allowed: the decoder maps the prior onto the plane, scored by coverage
    cfg = _tiny(**{"networks.kind": "aae", "networks.latent_dim": 2,
                   "networks.aae_prior": "mixture2d", "training.max_batches": 4,
                   "training.generations": 2, **RULE_OVERRIDES[rule]})
    controller = Controller(cfg, LocalCellPool(cfg))
    for _ in range(2):
        summary = controller.step()
    for report in summary.reports:
        assert not report.nonfinite and math.isfinite(report.reconstruction)
        assert math.isfinite(report.g.fitness) and math.isfinite(report.d.fitness)
        assert math.isfinite(summary.evaluation[report.cell].scores["mode_tvd"])


@pytest.mark.parametrize("losses", [["hinge", "wasserstein_gp"], ["least_squares"]])
def test_latent_ds_take_the_d_side_options(losses: list[str]) -> None:
    # every D loss (the gradient penalty on codes included), minibatch discrimination on
    # codes, label smoothing where the loss has labels, historical averaging of both sides
    smooth = {"losses.real_label": 0.9} if losses == ["least_squares"] else {}
    cfg = _tiny(**{"networks.kind": "aae", "networks.minibatch_discrimination": True,
                   "networks.minibatch_kernels": 6, "networks.minibatch_kernel_dims": 3,
                   "training.historical_averaging": 0.01, "losses.generator": losses,
                   "losses.mutation": "batch", "training.max_batches": 4,
                   "training.generations": 2, **smooth})
    controller = Controller(cfg, LocalCellPool(cfg))
    for _ in range(2):
        summary = controller.step()
    for report in summary.reports:
        assert not report.nonfinite and math.isfinite(report.reconstruction)
        assert math.isfinite(report.d.train_loss) and report.d.steps > 0


def test_gans_report_no_reconstruction() -> None:
    cfg = _tiny(**{"grid.rows": 1, "grid.cols": 1, "training.max_batches": 2})
    cell = _one_cell(cfg, torch.randn(200, 2))
    assert math.isnan(cell.run_generation(0, []).reconstruction)


def test_the_aae_builder_draws_from_the_given_generator() -> None:
    cfg = _tiny(**DIGITS_AAE).networks
    nets = [build_networks(cfg, (1, 8, 8), torch.Generator().manual_seed(s)) for s in (5, 5, 6)]
    assert_same_state(nets[0][0].state_dict(), nets[1][0].state_dict())
    assert not torch.equal(nets[0][1].net[0].weight, nets[2][1].net[0].weight)
    ae = nets[0][0]
    ind = Individual(ae, make_optimizer(ae, 1e-3, (0.5, 0.999)), 1e-3, 0)
    assert aae.reconstruction_step(ind, torch.zeros(4, 1, 8, 8), 0.0) >= 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"networks.kind": "aae", "networks.aae_prior": "mixture2d"},
         "networks.aae_prior: 'mixture2d' is a 2-D prior; set networks.latent_dim to 2, not 8"),
        ({"networks.aae_prior": "mixture2d", "networks.latent_dim": 2},
         "networks.aae_prior: is set to 'mixture2d' but cannot act: only networks.kind 'aae'"),
        ({"networks.kind": "aae", "networks.aae_prior": "uniform"}, "networks.aae_prior"),
        ({"networks.kind": "aae", **RULE_OVERRIDES["egan"]},
         "training.rule: does not combine with networks.kind 'aae'"),
        ({"networks.kind": "aae", "losses.multi_discriminator": "avg"},
         "losses.multi_discriminator: does not combine with networks.kind 'aae'"),
        ({"networks.kind": "aae", "losses.feature_matching": True},
         "losses.feature_matching: does not combine with networks.kind 'aae'"),
        ({"networks.kind": "aae", "losses.multi_discriminator": "avg",
          "losses.discriminators": "local"}, "networks.kind must be 'mlp', not 'aae'"),
    ],
)
def test_aae_options_reject_bad_values_in_one_line(
    overrides: dict[str, object], message: str
) -> None:
    config_error(lambda: _tiny(**overrides), message)
