"""Adam over stacked networks: one update for N networks, each with its own rate and step.

It is `torch.optim.Adam`'s single-tensor update (no weight decay, no AMSGrad) written over a
leading network axis, so a stacked step equals N separate optimiser steps; `load` and `store`
move the state between the stack and each network's `torch.optim.Adam`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from raygan.core.individual import Individual


@dataclass
class AdamState:
    """The Adam state of N stacked networks.

    Attributes:
        exp_avg, exp_avg_sq: first and second moments by parameter name, shape (N, ...).
        steps: steps taken by each network (the bias corrections are computed from them on the
            host, as `torch.optim.Adam` does, so a step needs no device read).
        lr: each network's learning rate.
        betas, eps: shared by all networks (the run's optimizer settings).
    """

    exp_avg: dict[str, Tensor]
    exp_avg_sq: dict[str, Tensor]
    steps: np.ndarray
    lr: np.ndarray
    betas: tuple[float, float]
    eps: float


def load(individuals: Sequence[Individual], params: dict[str, Tensor]) -> AdamState:
    """The stacked state of the individuals' Adam optimizers (zeros where none has stepped).

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
    exp_avg = {k: torch.zeros_like(v) for k, v in params.items()}
    exp_avg_sq = {k: torch.zeros_like(v) for k, v in params.items()}
    steps = np.zeros(len(individuals))
    for i, ind in enumerate(individuals):
        for name, p in ind.net.named_parameters():
            state = ind.optimizer.state.get(p)
            if not state:
                continue
            exp_avg[name][i].copy_(state["exp_avg"])
            exp_avg_sq[name][i].copy_(state["exp_avg_sq"])
            steps[i] = float(state["step"])
    lr = np.array([float(g["lr"]) for g in groups])
    return AdamState(exp_avg, exp_avg_sq, steps, lr, (float(betas[0]), float(betas[1])),
                     float(groups[0]["eps"]))


@torch.no_grad()
def update(params: dict[str, Tensor], grads: dict[str, Tensor], state: AdamState,
           rows: Tensor | None = None) -> None:
    """One Adam step of the networks `rows` (all when None), in place.

    In place because the stack is the training state: a pure version would copy every
    parameter twice per step. `rows` must not repeat.
    """
    b1, b2 = state.betas
    take = slice(None) if rows is None else rows
    index = np.arange(len(state.steps)) if rows is None else rows.cpu().numpy()
    state.steps[index] += 1
    steps = state.steps[index]
    # the host computes the bias corrections in double, like torch.optim.Adam, then the
    # device applies them in the parameters' precision
    step_size = torch.as_tensor(-state.lr[index] / (1.0 - b1**steps))
    bc2_sqrt = torch.as_tensor((1.0 - b2**steps) ** 0.5)
    for name, grad in grads.items():
        p, m, v = params[name], state.exp_avg[name], state.exp_avg_sq[name]
        shape = (-1,) + (1,) * (p.dim() - 1)
        size = step_size.to(p.device, p.dtype).view(shape)
        corr = bc2_sqrt.to(p.device, p.dtype).view(shape)
        m_rows, v_rows = m[take].lerp_(grad, 1.0 - b1), v[take].mul_(b2)
        v_rows.addcmul_(grad, grad, value=1.0 - b2)
        denom = (v_rows.sqrt() / corr).add_(state.eps)
        new_p = p[take].add_(size * m_rows / denom)
        if rows is not None:  # fancy indexing copied the rows: put them back
            m[rows], v[rows], p[rows] = m_rows, v_rows, new_p


def store(individuals: Sequence[Individual], state: AdamState) -> None:
    """Write the stacked state back into each individual's Adam optimizer (the parameters are
    the bank's to write: `Bank.store`)."""
    with torch.no_grad():
        for i, ind in enumerate(individuals):
            group = ind.optimizer.param_groups[0]
            for name, p in ind.net.named_parameters():
                if state.steps[i] == 0:
                    continue
                ind.optimizer.state[p] = {
                    "step": torch.tensor(float(state.steps[i]), dtype=torch.float32),
                    "exp_avg": state.exp_avg[name][i].clone(),
                    "exp_avg_sq": state.exp_avg_sq[name][i].clone(),
                }
            group["lr"] = float(state.lr[i])

