"""A rule, a network kind and a loss added from outside `raygan/` through the public API
(`raygan.register_rule`, `register_network`, `register_loss`): the config knows them, refuses
what they cannot do, and runs train with them, in this process, in Ray actors and in a Tune
trial (which cannot import this module: the registrations are shipped to them)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import config_error, tiny_toy_config
from torch import Tensor, nn

import raygan
from raygan.config import RunConfig, load_config
from raygan.core.losses import Loss
from raygan.core.rules.base import Generation, Pairing
from raygan.core.rules.lipizzaner import Lipizzaner

RULE, KIND, LOSS = "lipizzaner-fixed-rates", "tiny_mlp", "squared_hinge"


@raygan.register_rule(raygan.RuleSpec(
    RULE, "lipizzaner without learning-rate mutation or loss draws",
    inert=lambda config: {"evolution.lr_mutation_probability": f"rule {RULE!r} never mutates"}))
class FixedRates(Lipizzaner):
    """`lipizzaner` whose centres keep their learning rates and losses (no `vary`)."""

    def begin(self, gen: Generation) -> Pairing:
        neighbours = gen.members[1:]
        g_adv = [(gen.cell, gen.d.net), *zip(neighbours, gen.d_slots)]
        d_adv = [(gen.cell, gen.g.net), *zip(neighbours, gen.g_slots)]
        return Pairing([gen.g], [gen.d], g_adv, d_adv, {id(gen.g): False, id(gen.d): False})


class TinyG(nn.Module):
    """One hidden layer; the `body` name shows in the checkpoints' state dicts."""

    def __init__(self, latent_dim: int, data_shape: tuple[int, ...], hidden: int) -> None:
        super().__init__()
        self.shape = data_shape
        self.body = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(),
                                  nn.Linear(hidden, math.prod(data_shape)))

    def forward(self, z: Tensor) -> Tensor:
        return self.body(z).view(len(z), *self.shape)


class TinyD(nn.Module):
    def __init__(self, data_shape: tuple[int, ...], hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(data_shape), hidden),
                                  nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


@raygan.register_network(raygan.NetworkSpec(
    KIND, "one hidden layer each",
    inert=lambda config: {"networks.hidden_layers": f"{KIND!r} has one hidden layer"}))
def tiny_mlp(cfg: raygan.NetworksConfig, data_shape: tuple[int, ...],
             generator: torch.Generator) -> tuple[nn.Module, nn.Module]:
    g, d = TinyG(cfg.latent_dim, data_shape, cfg.g_hidden), TinyD(data_shape, cfg.d_hidden)
    for p in (*g.parameters(), *d.parameters()):  # drawn from the cell's generator only
        with torch.no_grad():
            p.copy_(0.1 * torch.randn(p.shape, generator=generator))
    return g, d


raygan.register_loss(raygan.LossSpec(LOSS, "hinge with squared margins"), Loss(
    LOSS, lambda fake: -fake.mean(),
    lambda real, fake: (F.relu(1.0 - real) ** 2).mean() + (F.relu(1.0 + fake) ** 2).mean()))


def _config(**overrides: object) -> RunConfig:
    return tiny_toy_config(**{
        "grid.cols": 1, "training.generations": 2, "training.max_batches": 4,
        "training.rule": RULE, "networks.kind": KIND, "networks.hidden_layers": 2,
        "losses.generator": [LOSS], "evolution.lr_mutation_probability": 0.5,
        "training.lr_g": 1e-3, **overrides})


def _check_run(history: pd.DataFrame, checkpoint: Path, config: RunConfig) -> None:
    """The run used all three: the rule's name and fixed rates, the loss's steps, the net."""
    from raygan.engine.checkpoint import load_checkpoint

    assert len(history) == 2 * config.training.generations
    assert set(history["rule"]) == {RULE}
    assert set(history["g_lr"]) == {config.training.lr_g}  # the rule never mutates rates
    counts = [dict(c) for c in history["g_loss_counts"]]  # Parquet maps read as pairs
    assert counts == [{LOSS: config.training.max_batches}] * len(history)
    _, _, cells = load_checkpoint(checkpoint)
    assert set(cells[0]["g"]["net"]) == {"body.0.weight", "body.0.bias", "body.2.weight",
                                         "body.2.bias"}


@pytest.mark.parametrize(("override", "key", "wrong", "names"), [
    ("training.rule=lipizaner", "training.rule", "lipizaner", ["lipizzaner", "egan", RULE]),
    ("networks.kind=tiny-mlp", "networks.kind", "tiny-mlp", ["mlp", "genome", KIND]),
    ("losses.generator=[squared-hinge]", "losses.generator[0]", "squared-hinge",
     ["minimax", "wasserstein_gp", LOSS]),
])
def test_an_unknown_name_lists_the_registered_ones_with_the_new(
    override: str, key: str, wrong: str, names: list[str]
) -> None:
    message = config_error(lambda: load_config(None, [override]), f"{key}: unknown", repr(wrong))
    assert all(repr(name) in message for name in names), message


def test_options_the_new_components_cannot_use_are_refused() -> None:
    config_error(lambda: _config(**{"networks.hidden_layers": 3}), "networks.hidden_layers",
                 "cannot act", f"'{KIND}' has one hidden layer")
    config_error(lambda: _config(**{"evolution.lr_mutation_probability": 0.9}),
                 "evolution.lr_mutation_probability", "cannot act", "never mutates")
    # the new loss has no labels to smooth, as its spec says
    config_error(lambda: _config(**{"losses.real_label": 0.9}), "losses.real_label",
                 LOSS, "no labels")


def test_the_new_components_train_in_this_process(tmp_path: Path) -> None:
    config = _config(**{"evolution.lr_mutation_probability": 0.5})
    result = raygan.train(config, storage=tmp_path, name="local")
    assert result.checkpoint is not None
    _check_run(result.history, result.checkpoint, config)


def test_the_new_components_reach_ray_actors(ray_session: None, tmp_path: Path) -> None:
    config = _config(**{"resources.cpus_per_cell": 0.5})
    result = raygan.train(config, storage=tmp_path, name="ray", backend="ray")
    assert result.checkpoint is not None
    _check_run(result.history, result.checkpoint, config)


def test_the_new_components_reach_a_tune_trial(ray_session: None, tmp_path: Path) -> None:
    config = _config(**{"resources.cpus_per_cell": 0.5, "tune.num_samples": 1})
    raygan.tune(config, storage=tmp_path, name="tune", backend="local", quiet=True)
    result = raygan.load(tmp_path / "tune")
    assert result.status == "TERMINATED" and result.checkpoint is not None
    _check_run(result.history, result.checkpoint, config)
