"""The training-side improved techniques (Salimans et al., 2016): feature matching and
historical averaging, and the optimiser step that applies the latter.

The D-side layers (minibatch discrimination, virtual batch norm) are in `raygan.core.layers`;
one-sided label smoothing is `Loss.discriminator_loss`. `train_batches` calls
`generator_loss` and `step` once per G and D step; with every option off they compute exactly
what the plain loop did.
"""

from __future__ import annotations

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


class ParameterHistory(nn.Module):
    """Running mean of a network's parameters over its optimiser steps (historical averaging).

    Attached to the network as the submodule `history` (`attach_history`), its buffers
    (`mean_<i>` for the i-th parameter, `count`) are part of the network's state: checkpoints,
    clones and neighbour snapshots carry the mean with the weights. The mean starts at the
    parameters' values when attached (count 1) and takes in the values after every step.

    Args:
        params: the network's parameters, in `parameters()` order.
    """

    count: Tensor

    def __init__(self, params: list[nn.Parameter]) -> None:
        super().__init__()
        self.size = len(params)
        for i, p in enumerate(params):
            self.register_buffer(f"mean_{i}", p.detach().clone())
        self.register_buffer("count", torch.ones((), dtype=torch.int64))

    def means(self) -> list[Tensor]:
        """The running mean of each parameter."""
        return [getattr(self, f"mean_{i}") for i in range(self.size)]

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
    """Give `net` a `ParameterHistory` starting at its current parameters (idempotent)."""
    if not isinstance(getattr(net, "history", None), ParameterHistory):
        net.history = ParameterHistory(list(net.parameters()))


def history_of(net: nn.Module) -> ParameterHistory | None:
    """`net`'s parameter history, None when it keeps none."""
    history = getattr(net, "history", None)
    return history if isinstance(history, ParameterHistory) else None


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
