"""The training-side improved techniques (Salimans et al., 2016): feature matching and
historical averaging, and the optimiser step that applies the latter.

The D-side layers (minibatch discrimination, virtual batch norm) are in `raygan.core.layers`;
one-sided label smoothing is `Loss.discriminator_loss`. A network's G and D steps
(`raygan.core.steps`) call `generator_loss` and `step`; with every option off they compute
exactly what the plain loop did.
"""

from __future__ import annotations

import typing

import torch
from torch import Tensor, nn

from raygan.config import LossesConfig
from raygan.core.individual import Individual
from raygan.core.losses import Loss


def feature_matching(discriminator: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """`||mean f(real) - mean f(fake)||^2` over D's penultimate features `f` (`features(x)`).

    The real features are constants (no gradient flows into D or through the real batch).

    Raises:
        TypeError: the discriminator has no `features` method.
    """
    features = getattr(discriminator, "features", None)
    if features is None:
        raise TypeError(f"{type(discriminator).__name__} has no features(x) to match")
    with torch.no_grad():
        target = features(real).mean(0)
    return ((features(fake).mean(0) - target) ** 2).sum()


def generator_loss(
    cfg: LossesConfig, loss: Loss, discriminator: nn.Module, fake: Tensor, real: Tensor
) -> Tensor:
    """G's objective against one D: feature matching when `losses.feature_matching`, else
    `loss`'s generator loss on D's logits."""
    if cfg.feature_matching:
        return feature_matching(discriminator, real, fake)
    return loss.generator(discriminator(fake))


_MEAN = "history_mean_"
_COUNT = "history_count"


class ParameterHistory:
    """Running mean of a network's parameters over its optimiser steps (historical averaging).

    A view on buffers of the network itself (`history_mean_<i>` for its i-th parameter,
    `history_count`), added by `attach_history`: checkpoints, clones and neighbour snapshots
    carry the mean with the weights. (Buffers rather than a submodule, which an
    `nn.Sequential` would run as a layer.) The mean starts at the parameters' values when
    attached (count 1) and takes in their values after every step.

    Args:
        net: a network with `attach_history` applied.
    """

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.size = len(list(net.parameters()))

    @property
    def count(self) -> Tensor:
        """How many parameter values the mean holds (int64 scalar)."""
        return typing.cast(Tensor, getattr(self.net, _COUNT))

    def means(self) -> list[Tensor]:
        """The running mean of each parameter, in `parameters()` order."""
        return [typing.cast(Tensor, getattr(self.net, f"{_MEAN}{i}")) for i in range(self.size)]

    def penalty(self, params: list[nn.Parameter]) -> Tensor:
        """`sum_i ||theta_i - mean_i||^2` (differentiable in the parameters)."""
        return torch.stack([((p - m) ** 2).sum() for p, m in zip(params, self.means())]).sum()

    @torch.no_grad()
    def update(self, params: list[nn.Parameter]) -> None:
        """Take the current parameter values into the running mean."""
        self.count.add_(1)
        for p, m in zip(params, self.means()):
            m.add_((p.detach() - m) / self.count.to(m.dtype))


def attach_history(net: nn.Module) -> None:
    """Give `net` a running mean of its parameters, starting at their values (idempotent)."""
    if history_of(net) is not None:
        return
    for i, p in enumerate(net.parameters()):
        net.register_buffer(f"{_MEAN}{i}", p.detach().clone())
    net.register_buffer(_COUNT, torch.ones((), dtype=torch.int64))


def history_of(net: nn.Module) -> ParameterHistory | None:
    """`net`'s parameter history, None when it keeps none."""
    return ParameterHistory(net) if isinstance(getattr(net, _COUNT, None), Tensor) else None


def step(ind: Individual, loss: Tensor, historical_averaging: float) -> Tensor:
    """One optimiser step of `ind` on `loss` plus, when `historical_averaging` > 0, the penalty
    `historical_averaging * ||theta - mean of past theta||^2`; then the running mean takes in the
    new parameters.

    Returns:
        The minimised loss (with the penalty).

    Raises:
        ValueError: historical averaging is on but the network keeps no history.
    """
    history = None
    if historical_averaging > 0:
        history = history_of(ind.net)
        if history is None:
            raise ValueError("historical averaging needs attach_history on the network")
        params = list(ind.net.parameters())
        loss = loss + historical_averaging * history.penalty(params)
    ind.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    ind.optimizer.step()
    if history is not None:
        history.update(params)
    return loss
