"""Adam over a bank: one update for N networks, each with its own learning rate and step.

It is `torch.optim.Adam`'s single-tensor update (no weight decay, no AMSGrad) written over the
bank's (N, P) parameter rows, so a stacked step equals N separate optimiser steps; `load` and
`store` move the state between the bank and each network's `torch.optim.Adam`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from raygan.core.individual import Individual
from raygan.core.packed.bank import Bank, Rows


@dataclass
class AdamState:
    """The Adam state of N networks of a bank.

    Attributes:
        exp_avg, exp_avg_sq: first and second moments, shape (N, P) like the bank's rows.
        steps: steps taken by each network (the bias corrections are computed from them on the
            host, as `torch.optim.Adam` does, so a step needs no device read).
        lr: each network's learning rate.
        betas, eps: shared by all networks (the run's optimizer settings).
    """

    exp_avg: Tensor
    exp_avg_sq: Tensor
    steps: np.ndarray
    lr: np.ndarray
    betas: tuple[float, float]
    eps: float


def load(individuals: Sequence[Individual], bank: Bank) -> AdamState:
    """The stacked state of the individuals' Adam optimizers (the bank's first rows; zeros
    where an optimizer has not stepped).

    Raises:
        ValueError: an optimizer that is not plain Adam, or optimizers with different betas.
    """
    groups = [ind.optimizer.param_groups[0] for ind in individuals]
    for ind, group in zip(individuals, groups):
        plain = not (group.get("weight_decay") or group.get("amsgrad") or group.get("maximize"))
        if not isinstance(ind.optimizer, torch.optim.Adam) or not plain:
            raise ValueError("vectorised training needs plain Adam optimizers "
                             f"(got {type(ind.optimizer).__name__})")
    betas = tuple(groups[0]["betas"])
    if any(tuple(g["betas"]) != betas or g["eps"] != groups[0]["eps"] for g in groups):
        raise ValueError("vectorised training needs one Adam beta and eps for all networks")
    n = len(individuals)
    exp_avg = torch.zeros_like(bank.flat[:n])
    exp_avg_sq = torch.zeros_like(bank.flat[:n])
    steps = np.zeros(n)
    for i, ind in enumerate(individuals):
        named = dict(ind.net.named_parameters())
        states = {k: ind.optimizer.state.get(p) or {} for k, p in named.items()}
        if not all(states.values()):
            continue  # a fresh optimizer (Adam creates its state at the first step)
        exp_avg[i] = bank.flatten({k: s["exp_avg"] for k, s in states.items()})
        exp_avg_sq[i] = bank.flatten({k: s["exp_avg_sq"] for k, s in states.items()})
        steps[i] = float(next(iter(states.values()))["step"])
    lr = np.array([float(g["lr"]) for g in groups])
    return AdamState(exp_avg, exp_avg_sq, steps, lr, (float(betas[0]), float(betas[1])),
                     float(groups[0]["eps"]))


@torch.no_grad()
def update(params: Tensor, grad: Tensor, state: AdamState, rows: Rows) -> None:
    """One Adam step of the networks `rows` of `params` (N, P), in place.

    In place because the bank is the training state: a pure version would copy every
    parameter twice per step. `rows` must not repeat; `grad` has one row per stepped network.
    """
    b1, b2 = state.betas
    index = np.arange(len(state.steps))[rows if isinstance(rows, slice) else rows.cpu().numpy()]
    state.steps[index] += 1
    steps = state.steps[index]
    # the host computes the bias corrections in double, like torch.optim.Adam, then the
    # device applies them in the parameters' precision
    size = torch.as_tensor(-state.lr[index] / (1.0 - b1**steps)).to(params.device, params.dtype)
    corr = torch.as_tensor((1.0 - b2**steps) ** 0.5).to(params.device, params.dtype)
    m, v = state.exp_avg[rows].lerp_(grad, 1.0 - b1), state.exp_avg_sq[rows].mul_(b2)
    v.addcmul_(grad, grad, value=1.0 - b2)
    denom = (v.sqrt() / corr[:, None]).add_(state.eps)
    p = params[rows].add_(size[:, None] * m / denom)
    if isinstance(rows, Tensor):  # fancy indexing copied the rows: put them back
        state.exp_avg[rows], state.exp_avg_sq[rows], params[rows] = m, v, p


def store(individuals: Sequence[Individual], bank: Bank, state: AdamState) -> None:
    """Write the stacked state back into each individual's Adam optimizer (the parameters are
    the bank's to write: `Bank.store`)."""
    with torch.no_grad():
        for i, ind in enumerate(individuals):
            ind.optimizer.param_groups[0]["lr"] = float(state.lr[i])
            if state.steps[i] == 0:
                continue
            m, v = bank.unflatten(state.exp_avg[i]), bank.unflatten(state.exp_avg_sq[i])
            for name, p in ind.net.named_parameters():
                ind.optimizer.state[p] = {
                    "step": torch.tensor(float(state.steps[i]), dtype=torch.float32),
                    "exp_avg": m[name].clone(memory_format=torch.contiguous_format),
                    "exp_avg_sq": v[name].clone(memory_format=torch.contiguous_format),
                }
