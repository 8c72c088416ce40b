from __future__ import annotations

import pytest
import torch

from raygan.config import specs
from raygan.core.losses import LOSSES, get_loss, gradient_penalty


def test_registry_matches_config_names() -> None:
    assert set(LOSSES) == set(specs.LOSSES.names())


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("logit", [-1e4, -80.0, 0.0, 80.0, 1e4])
def test_losses_finite_at_saturation(name: str, logit: float) -> None:
    loss = get_loss(name)
    fake = torch.full((8,), logit, requires_grad=True)
    real = torch.full((8,), -logit, requires_grad=True)
    g = loss.generator(fake)
    d = loss.discriminator(real, fake)
    g.backward(retain_graph=True)
    d.backward()
    assert torch.isfinite(g) and torch.isfinite(d)
    assert torch.isfinite(fake.grad).all() and torch.isfinite(real.grad).all()


def test_minimax_and_heuristic_values() -> None:
    fake = torch.zeros(4)  # D(G(z)) = 0.5
    assert get_loss("minimax").generator(fake).item() == pytest.approx(
        torch.log(torch.tensor(0.5)).item()
    )
    assert get_loss("heuristic").generator(fake).item() == pytest.approx(0.6931, abs=1e-4)
    assert get_loss("least_squares").generator(fake).item() == pytest.approx(0.125)


def test_generator_losses_decrease_when_d_is_fooled() -> None:
    for name in LOSSES:
        loss = get_loss(name)
        assert loss.generator(torch.full((4,), 3.0)) < loss.generator(torch.full((4,), -3.0)), name


def test_gradient_penalty_is_zero_for_unit_gradient() -> None:
    d = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        d.weight.copy_(torch.tensor([[0.6, 0.8]]))  # gradient norm exactly 1
    gen = torch.Generator().manual_seed(0)
    gp = gradient_penalty(lambda x: d(x).squeeze(1), torch.randn(16, 2), torch.randn(16, 2), gen)
    assert gp.item() == pytest.approx(0.0, abs=1e-10)


def test_unknown_loss() -> None:
    with pytest.raises(KeyError, match="registered"):
        get_loss("nope")
